//! `viz join` and `viz host` as a person runs them: inside a real pseudo-terminal, with
//! nobody typing, and with single keys pressed (no Enter). Each run goes through a
//! shell in the terminal that first sets the ordinary interactive mode (`stty sane`),
//! then runs viz, then prints viz's exit status and the terminal's mode afterwards, so
//! every test also checks that line editing and echo came back.
#![cfg(unix)]

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rexpect::session::PtySession;

mod common;
use common::{Proc, viz};

/// A viz command running in its own pseudo-terminal.
struct Terminal {
    session: PtySession,
    /// The terminal's device, to read its mode from outside while viz runs.
    tty: String,
}

/// Exit status of viz and the terminal mode flags the shell printed after it.
struct Ended {
    status: i32,
    mode: String,
    /// What the terminal showed from the start until viz exited.
    screen: String,
    /// From the start of `Terminal::ended` until the exit status appeared.
    waited: Duration,
}

impl Terminal {
    fn start(config: &Path, args: &[&str]) -> Self {
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let script = format!(
            "stty sane; echo \"TTY=$(tty)\"; '{viz}' {args}; echo \"EXIT=$?\"; \
             echo \"MODE=$(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo|isig)' | tr '\\n' ' ')\"; \
             echo DONE",
            viz = env!("CARGO_BIN_EXE_viz"),
            args = quoted.join(" ")
        );
        let mut command = Command::new("bash");
        command.args(["-c", &script]).env("VIZ_CONFIG_DIR", config).env("RUST_LOG", "warn").env("TERM", "xterm");
        let mut session = rexpect::session::spawn_command(command, Some(30_000)).expect("spawn a pseudo-terminal");
        session.exp_string("TTY=").expect("the shell starts");
        let tty = session.read_line().expect("the terminal's name").trim().to_owned();
        Terminal { session, tty }
    }

    /// Waits for `text` on the screen; returns everything shown before it.
    fn expect(&mut self, text: &str) -> String {
        self.session.exp_string(text).unwrap_or_else(|e| panic!("waiting for {text:?}: {e}"))
    }

    /// Presses one key, without Enter.
    fn press(&mut self, key: &str) {
        self.session.send(key).expect("type");
        self.session.flush().expect("type");
    }

    fn ctrl_c(&mut self) {
        self.session.send_control('c').expect("Ctrl-C");
    }

    /// The terminal's mode flags right now, read from outside (`stty -F`).
    fn mode_now(&self) -> String {
        let out = Command::new("stty").args(["-F", &self.tty, "-a"]).output().expect("stty");
        String::from_utf8_lossy(&out.stdout).replace(';', " ")
    }

    /// Waits until viz has exited; `screen` is what was shown before the exit status.
    fn ended(mut self) -> Ended {
        let started = Instant::now();
        let screen = self.expect("EXIT=");
        let waited = started.elapsed();
        let status = self.session.read_line().expect("exit status").trim().parse().expect("a number");
        self.expect("MODE=");
        let mode = self.session.read_line().expect("mode").trim().to_owned();
        self.expect("DONE");
        Ended { status, mode, screen, waited }
    }
}

impl Ended {
    /// Line editing, echo and signals are back as `stty sane` left them.
    fn assert_terminal_restored(&self) {
        assert_eq!(self.mode, "isig icanon echo", "terminal mode after viz exited; screen:\n{}", self.screen);
    }
}

fn has_flag(stty: &str, flag: &str) -> bool {
    stty.split_whitespace().any(|w| w == flag)
}

/// A host on a free port, run with pipes (the other side of the call); returns it,
/// its port and its fingerprint.
fn host(config: &Path, extra: &[&str]) -> (Proc, u16, String) {
    let mut args = vec!["host", "--port", "0", "--input", "tone", "--output", "null"];
    args.extend_from_slice(extra);
    let mut p = viz(config, &args);
    let line = p.expect_line("Hosting on port", Duration::from_secs(10));
    let port = line.split_whitespace().nth(3).and_then(|w| w.parse().ok()).expect("port");
    let fingerprint = line.rsplit(' ').next().expect("fingerprint").to_owned();
    (p, port, fingerprint)
}

fn join_args(address: &str) -> Vec<&str> {
    vec!["join", address, "--input", "silence", "--output", "null"]
}

/// A host (run with pipes, `host_extra` added) in `dir/NAME-host`, and a joiner in a
/// terminal (`join_extra` added) in `dir/NAME-join`, once the call has started.
fn call(dir: &Path, name: &str, host_extra: &[&str], join_extra: &[&str]) -> (Proc, Terminal) {
    let (host, port, _) = host(&dir.join(format!("{name}-host")), host_extra);
    let address = format!("127.0.0.1:{port}");
    let mut args = join_args(&address);
    args.extend_from_slice(join_extra);
    let mut term = Terminal::start(&dir.join(format!("{name}-join")), &args);
    term.expect("In a call");
    (host, term)
}

#[test]
fn nobody_there_the_error_shows_and_viz_exits() {
    let dir = tempfile::tempdir().unwrap();
    let free = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("udp://127.0.0.1:{free}");
    let term = Terminal::start(dir.path(), &join_args(&address));
    let ended = term.ended();
    eprintln!("no host: exited {} after {:?}", ended.status, ended.waited);
    assert_eq!(ended.status, 1, "{}", ended.screen);
    assert!(ended.screen.contains("viz: error: no Viz host answered"), "{}", ended.screen);
    assert!(!ended.screen.contains("Connected"), "{}", ended.screen);
    ended.assert_terminal_restored();
}

#[test]
fn a_wrong_fingerprint_is_refused_and_viz_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, port, fingerprint) = host(&dir.path().join("host"), &[]);
    let wrong = "aaaa-bbbb-cccc-dddd-eeee";
    assert_ne!(fingerprint, wrong);
    let address = format!("viz://127.0.0.1:{port}#{wrong}");
    let ended = Terminal::start(&dir.path().join("join"), &join_args(&address)).ended();
    assert_eq!(ended.status, 1, "{}", ended.screen);
    assert!(ended.screen.contains("viz: error:") && ended.screen.contains(&fingerprint), "{}", ended.screen);
    assert!(!ended.screen.contains("In a call"), "{}", ended.screen);
    ended.assert_terminal_restored();
}

#[test]
fn a_busy_host_is_reported_before_anything_says_connected() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, port, _) = host(&dir.path().join("host"), &[]);
    let address = format!("127.0.0.1:{port}");
    let mut first = viz(&dir.path().join("first"), &join_args(&address));
    first.expect_line("In a call", Duration::from_secs(10));
    let ended = Terminal::start(&dir.path().join("second"), &join_args(&address)).ended();
    assert_eq!(ended.status, 1, "{}", ended.screen);
    assert!(ended.screen.contains("the host is busy"), "{}", ended.screen);
    assert!(!ended.screen.contains("Connected") && !ended.screen.contains("Security code"), "{}", ended.screen);
    ended.assert_terminal_restored();
}

#[test]
fn the_call_ends_at_its_duration_and_viz_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, mut term) = call(dir.path(), "a", &[], &["--duration", "2"]);
    term.expect("Press m to mute, d to deafen, q or Ctrl-C to leave.");
    let ended = term.ended();
    eprintln!("--duration 2: exit status after {:?} of the call", ended.waited);
    assert_eq!(ended.status, 0, "{}", ended.screen);
    assert!(ended.screen.contains("Call ended after") && ended.screen.contains("the duration was reached"));
    ended.assert_terminal_restored();
}

#[test]
fn single_keys_mute_and_leave_without_enter() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, mut term) = call(dir.path(), "a", &[], &[]);
    term.expect("Press m to mute, d to deafen, q or Ctrl-C to leave.");
    // During the call the terminal is in single-key mode: no line editing, no echo.
    let mode = term.mode_now();
    assert!(has_flag(&mode, "-icanon") && has_flag(&mode, "-echo") && has_flag(&mode, "isig"), "{mode}");
    term.press("m");
    term.expect("Microphone muted");
    term.press("m");
    term.expect("Microphone on");
    let pressed = Instant::now();
    term.press("q");
    let ended = term.ended();
    eprintln!("q: exit status {:?} after the key", pressed.elapsed());
    assert_eq!(ended.status, 0, "{}", ended.screen);
    assert!(ended.screen.contains("Call ended after") && ended.screen.contains("you left"), "{}", ended.screen);
    ended.assert_terminal_restored();
}

#[test]
fn ctrl_c_leaves_and_a_second_ctrl_c_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, mut term) = call(dir.path(), "a", &[], &[]);
    let pressed = Instant::now();
    term.ctrl_c();
    let ended = term.ended();
    eprintln!("Ctrl-C: exit status {:?} after the key", pressed.elapsed());
    assert_eq!(ended.status, 0, "{}", ended.screen);
    assert!(ended.screen.contains("you left"), "{}", ended.screen);
    ended.assert_terminal_restored();

    // A host that stopped answering (SIGSTOP) makes leaving wait for its goodbye;
    // the second Ctrl-C does not wait.
    let (host, mut term) = call(dir.path(), "b", &[], &[]);
    let host_pid = host.child.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &host_pid]).status().unwrap().success());
    term.ctrl_c();
    std::thread::sleep(Duration::from_millis(150));
    term.ctrl_c();
    let ended = term.ended();
    let _ = Command::new("kill").args(["-CONT", &host_pid]).status();
    assert_eq!(ended.status, 130, "{}", ended.screen);
    assert!(ended.screen.contains("Interrupted again"), "{}", ended.screen);
    ended.assert_terminal_restored();
}

#[test]
fn the_host_leaving_or_vanishing_is_said_and_handled() {
    let dir = tempfile::tempdir().unwrap();
    // The host stops cleanly (Ctrl-C): the joiner is told, says so and exits.
    let (mut host1, mut term) = call(dir.path(), "a", &["--name", "alice"], &[]);
    term.expect("with alice");
    let stopped = Instant::now();
    assert!(Command::new("kill").args(["-INT", &host1.child.id().to_string()]).status().unwrap().success());
    let ended = term.ended();
    eprintln!("host stopped: joiner exited {:?} later", stopped.elapsed());
    host1.finish(Duration::from_secs(10));
    assert_eq!(ended.status, 0, "{}", ended.screen);
    assert!(ended.screen.contains("alice shut down"), "{}", ended.screen);
    assert_eq!(ended.screen.matches("shut down").count(), 1, "said once: {}", ended.screen);
    ended.assert_terminal_restored();

    // The host vanishes (SIGKILL): after the idle timeout the joiner says the
    // connection is lost and keeps trying, as the README says; q stops it.
    let (mut host2, mut term) = call(dir.path(), "b", &["--name", "bob"], &[]);
    term.expect("with bob");
    host2.child.kill().unwrap();
    host2.child.wait().unwrap();
    term.expect("Connection lost");
    term.expect("Reconnecting");
    term.press("q");
    let ended = term.ended();
    assert_eq!(ended.status, 1, "{}", ended.screen);
    assert!(ended.screen.contains("viz: error: stopped while reconnecting"), "{}", ended.screen);
    ended.assert_terminal_restored();

    // With --no-reconnect it exits by itself.
    let (mut host3, term) = call(dir.path(), "c", &[], &["--no-reconnect"]);
    host3.child.kill().unwrap();
    host3.child.wait().unwrap();
    let ended = term.ended();
    assert_eq!(ended.status, 1, "{}", ended.screen);
    assert!(ended.screen.contains("nothing heard from the host"), "{}", ended.screen);
    ended.assert_terminal_restored();
}

#[test]
fn the_host_in_a_terminal_stops_on_q() {
    let dir = tempfile::tempdir().unwrap();
    let mut term =
        Terminal::start(&dir.path().join("host"), &["host", "--port", "0", "--input", "tone", "--output", "null"]);
    let before = term.expect("Host fingerprint:");
    let port: u16 = before
        .split("Hosting on port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no port in {before:?}"));
    let mut joiner = viz(&dir.path().join("join"), &join_args(&format!("127.0.0.1:{port}")));
    joiner.expect_line("In a call", Duration::from_secs(10));
    term.expect("Press m to mute, d to deafen, q or Ctrl-C to stop hosting.");
    let pressed = Instant::now();
    term.press("q");
    let ended = term.ended();
    eprintln!("host q: exit status {:?} after the key", pressed.elapsed());
    assert_eq!(ended.status, 0, "{}", ended.screen);
    assert!(ended.screen.contains("Stopped hosting"), "{}", ended.screen);
    ended.assert_terminal_restored();
    let (status, out) = joiner.finish(Duration::from_secs(10));
    assert!(status.success(), "{out}");

    // The same with the web page on (the call is a room with the host's audio in it):
    // the friend is told the host left and is done, not left waiting for a restart.
    let mut term = Terminal::start(
        &dir.path().join("room-host"),
        &["host", "--port", "0", "--http", "127.0.0.1:0", "--input", "tone", "--output", "null"],
    );
    let before = term.expect("Press m to mute, d to deafen, q or Ctrl-C to stop hosting.");
    let port: u16 = before
        .split(" on port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no port in {before:?}"));
    let mut joiner = viz(&dir.path().join("room-join"), &join_args(&format!("127.0.0.1:{port}")));
    joiner.expect_line("Joined room", Duration::from_secs(10));
    term.press("q");
    let ended = term.ended();
    assert_eq!(ended.status, 0, "{}", ended.screen);
    assert!(ended.screen.contains("Stopped hosting"), "{}", ended.screen);
    ended.assert_terminal_restored();
    let (status, out) = joiner.finish(Duration::from_secs(10));
    assert!(status.success() && out.contains(" left"), "{out}");
    assert!(!out.contains("reconnecting"), "{out}");
}

/// Issue 13: `d` deafens. While deafened the joiner hears nothing (its recording is
/// silent) and its microphone is off (the host sees it muted); `d` again brings both
/// back.
#[test]
fn deafen_silences_the_call_and_mutes_you_until_pressed_again() {
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.wav");
    let (mut host, port, _) = host(&dir.path().join("d-host"), &[]);
    let address = format!("127.0.0.1:{port}");
    let args = ["join", &address, "--input", "silence", "--output", heard.to_str().unwrap()];
    let mut term = Terminal::start(&dir.path().join("d-join"), &args);
    term.expect("In a call");
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    term.press("d");
    term.expect("Deafened: you hear nothing");
    let deafened = began.elapsed();
    // The host sees it as deafened, not only muted.
    host.expect_line("deafened (hears nothing)", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    term.press("d");
    term.expect("Hearing again, microphone on");
    let heard_again = began.elapsed();
    host.expect_line("unmuted", Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    term.press("q");
    let ended = term.ended();
    assert_eq!(ended.status, 0, "{}", ended.screen);

    let audio = viz_audio::wav::read_mono_48k(&heard).unwrap();
    let level = |from: Duration, to: Duration| {
        let (a, b) = ((from.as_secs_f64() * 48_000.0) as usize, (to.as_secs_f64() * 48_000.0) as usize);
        viz_audio::analysis::rms_dbfs(&audio[a.min(audio.len())..b.min(audio.len())])
    };
    let ms = Duration::from_millis;
    let before = level(ms(500), deafened - ms(300));
    let during = level(deafened + ms(300), heard_again - ms(300));
    let after = level(heard_again + ms(500), heard_again + ms(1500));
    println!("heard {before:.1} dBFS, deafened {during:.1} dBFS, then {after:.1} dBFS");
    assert!(before > -30.0 && after > -30.0, "the host's tone: {before:.1} and {after:.1} dBFS");
    assert!(during < -80.0, "deafened, the joiner still heard {during:.1} dBFS");
}

/// `--muted`: the host is told at once, and the first `m` unmutes (it used to say
/// "Microphone muted" then, the keys not knowing the call started muted).
#[test]
fn joining_muted_tells_the_host_and_the_first_m_unmutes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, mut term) = call(dir.path(), "muted", &[], &["--muted"]);
    host.expect_line("muted their microphone", Duration::from_secs(5));
    term.press("m");
    term.expect("Microphone on");
    host.expect_line("unmuted", Duration::from_secs(5));
    term.press("q");
    let ended = term.ended();
    assert_eq!(ended.status, 0, "{}", ended.screen);
}

/// A tmux terminal (a real terminal emulator) running one command, read as a person
/// sees it: `capture-pane` gives the screen, not the bytes.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(config: &Path, args: &[&str]) -> Self {
        let socket = format!("viz-test-{}-{}", std::process::id(), config.display().to_string().len());
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let script = format!(
            "VIZ_CONFIG_DIR='{}' RUST_LOG=warn '{}' {}; echo EXIT=$?; sleep 60",
            config.display(),
            env!("CARGO_BIN_EXE_viz"),
            quoted.join(" ")
        );
        let ok = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-x", "100", "-y", "32", &script])
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux (Debian package tmux) runs");
        assert!(ok.success());
        Tmux { socket }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p"]).output().expect("capture");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(Instant::now() < deadline, "waiting for {text:?}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Presses keys by tmux name ("Down", "-", "0").
    fn press(&self, keys: &[&str]) {
        for key in keys {
            Command::new("tmux").args(["-L", &self.socket, "send-keys", key]).status().expect("send-keys");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

/// The live view in a real terminal: it lists the room and redraws in place, and the
/// volume keys change what this listener hears of one person only, remembered in the
/// config file. Two senders play 440 Hz (bob) and 1100 Hz (dan); carol's recording
/// is measured per tone.
#[test]
fn the_live_view_lists_the_room_and_the_volume_keys_change_what_you_hear() {
    use common::room::{serve, tone_in};
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"), &[]);
    let sender = |name: &str, tone: &str| {
        let mut p = viz(
            &dir.path().join(name),
            &["join", &server.join, "--name", name, "--input", tone, "--output", "null", "--duration", "40"],
        );
        p.expect_line("Joined room", Duration::from_secs(10));
        p
    };
    let _bob = sender("bob", "tone:440");
    let _dan = sender("dan", "tone:1100");
    let heard = dir.path().join("heard.wav");
    let carol_dir = dir.path().join("carol");
    let args = ["join", &server.join, "--name", "carol", "--input", "silence", "--output", heard.to_str().unwrap()];
    let term = Tmux::start(&carol_dir, &args);
    term.wait_for("Joined room", Duration::from_secs(10));
    let began = Instant::now();
    // The view: both senders, talking, bob selected (he came first), carol below.
    let screen = term.wait_for("dan ", Duration::from_secs(5));
    // A person's line in the panel (inside its border).
    let row = |screen: &str, name: &str| {
        screen.lines().find(|l| l.starts_with('│') && l.contains(&format!(" {name} "))).map(str::to_owned)
    };
    let bob_row = row(&screen, "bob").unwrap_or_default();
    assert!(bob_row.contains("▶ bob") && bob_row.contains("volume 100 %"), "{screen}");
    assert!(screen.contains("You (carol)") && screen.contains("q leave"), "{screen}");
    term.wait_for("talking", Duration::from_secs(3));

    std::thread::sleep(Duration::from_secs(3));
    let turned_down = began.elapsed();
    term.press(&["-", "-", "-", "-", "-"]);
    term.wait_for("You hear bob at 50 %", Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(3));
    let silenced = began.elapsed();
    term.press(&["0"]);
    let screen = term.wait_for("volume silenced", Duration::from_secs(3));
    assert!(row(&screen, "dan").is_some_and(|r| r.contains("volume 100 %")), "dan is as he was:\n{screen}");
    // The view is redrawn in place: one panel on the screen, not one per redraw.
    assert_eq!(screen.matches("You (carol)").count(), 1, "{screen}");
    std::thread::sleep(Duration::from_secs(3));
    term.press(&["Down", "q"]);
    let last_screen = term.wait_for("EXIT=", Duration::from_secs(10));
    assert!(last_screen.contains("EXIT=0"), "{last_screen}");

    // Remembered by bob's identity in the config file.
    let config = std::fs::read_to_string(carol_dir.join("config.toml")).expect("the config file was written");
    assert!(config.contains("[volumes]\n# bob\n"), "{config}");
    assert!(config.lines().any(|l| l.ends_with(" = 0")), "{config}");

    let audio = viz_audio::wav::read_mono_48k(&heard).unwrap();
    let part = |from: Duration, to: Duration| {
        let (a, b) = ((from.as_secs_f64() * 48_000.0) as usize, (to.as_secs_f64() * 48_000.0) as usize);
        audio[a.min(audio.len())..b.min(audio.len())].to_vec()
    };
    // Each tone's level: its share of the energy times the level.
    let level = |x: &[f32], hz: f32| {
        let (share, dbfs) = tone_in(x, hz);
        dbfs + 10.0 * share.max(1e-9).log10()
    };
    let ms = Duration::from_millis;
    let both = part(ms(1000), turned_down - ms(300));
    let down = part(turned_down + ms(800), silenced - ms(300));
    let none = part(silenced + ms(1200), silenced + ms(2700));
    let gap = |x: &[f32]| level(x, 440.0) - level(x, 1100.0);
    println!("bob - dan: {:.1} dB at 100 %, {:.1} dB at 50 %, {:.1} dB silenced", gap(&both), gap(&down), gap(&none));
    for (what, x) in [("100 %", &both), ("50 %", &down), ("silenced", &none)] {
        println!("{what}: bob {:.1} dB, dan {:.1} dB", level(x, 440.0), level(x, 1100.0));
    }
    assert!(gap(&both).abs() < 3.0, "at 100 % both are heard alike: {:.1} dB", gap(&both));
    // 50 % is -6 dB.
    assert!((gap(&down) - gap(&both) + 6.0).abs() < 2.0, "at 50 %: {:.1} dB", gap(&down));
    // Silenced: what is left at 440 Hz is the codec's noise around dan's tone (about
    // -54 dB on a quiet machine, -38 dB once under load).
    assert!(gap(&none) < -30.0, "silenced, bob is still heard: {:.1} dB; the last screen:\n{last_screen}", gap(&none));
    assert!(level(&none, 1100.0) > -40.0, "dan is still heard");
}

/// An X server for push-to-talk tests (Debian package xvfb), on a free display number.
struct Xvfb {
    child: std::process::Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        for n in 90..120 {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists() {
                continue;
            }
            let display = format!(":{n}");
            let child = Command::new("Xvfb")
                .args([&display, "-screen", "0", "640x480x24", "-nolisten", "tcp"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("Xvfb (Debian package xvfb) runs");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                assert!(Instant::now() < deadline, "Xvfb {display} did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            return Xvfb { child, display };
        }
        panic!("no free X display number");
    }

    /// Presses or lets go of a key on this X server, as the user would in any window.
    fn key(&self, action: &str, key: &str) {
        let ok = Command::new("xdotool").args([action, key]).env("DISPLAY", &self.display).status();
        assert!(ok.expect("xdotool (Debian package xdotool) runs").success());
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--ptt F9`: the global push-to-talk key, read from the X server while no viz window
/// has focus (viz has none, and its stdin is not even a terminal): the host hears
/// nothing until the key is down, the joiner's tone while it is held, and nothing again
/// from 250 ms after it is let go. The key is pressed with xdotool on a real X server.
#[test]
fn push_to_talk_opens_the_microphone_only_while_the_global_key_is_held() {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let heard = dir.path().join("heard.wav");
    let heard_arg = heard.to_str().unwrap();
    // The host ends 8 s into the call, which finishes its recording.
    let host_args = ["host", "--port", "0", "--input", "silence", "--output", heard_arg, "--duration", "8"];
    let mut host = viz(&dir.path().join("host"), &host_args);
    let line = host.expect_line("Hosting on port", Duration::from_secs(10));
    let port: u16 = line.split_whitespace().nth(3).and_then(|w| w.parse().ok()).expect("port");
    let address = format!("127.0.0.1:{port}");
    let join_dir = dir.path().join("join");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_viz"));
    cmd.args(["join", &address, "--input", "tone:440", "--output", "null", "--ptt", "F9"]);
    cmd.env("DISPLAY", &x.display);
    let mut joiner = common::spawn_command(&mut cmd, &join_dir);
    joiner.expect_line("Push to talk: hold F9", Duration::from_secs(10));
    host.expect_line("joined", Duration::from_secs(10));
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let pressed = began.elapsed();
    x.key("keydown", "F9");
    std::thread::sleep(Duration::from_secs(2));
    let released = began.elapsed();
    x.key("keyup", "F9");
    std::thread::sleep(Duration::from_secs(2));
    let end = began.elapsed();
    let (status, output) = host.finish(Duration::from_secs(10));
    assert!(status.success(), "{output}");
    drop(joiner);

    let audio = viz_audio::wav::read_mono_48k(&heard).unwrap();
    let level = |from: Duration, to: Duration| {
        let (a, b) = ((from.as_secs_f64() * 48_000.0) as usize, (to.as_secs_f64() * 48_000.0) as usize);
        viz_audio::analysis::rms_dbfs(&audio[a.min(audio.len())..b.min(audio.len())])
    };
    let ms = Duration::from_millis;
    let before = level(ms(300), pressed - ms(200));
    let held = level(pressed + ms(500), released - ms(100));
    let after = level(released + ms(900), end - ms(200));
    println!("host heard {before:.1} dBFS before F9, {held:.1} dBFS while held, {after:.1} dBFS after");
    assert!(before < -80.0, "the microphone was open before the key: {before:.1} dBFS");
    assert!(held > -30.0, "the key was held and nothing was heard: {held:.1} dBFS");
    assert!(after < -80.0, "the microphone stayed open after the key: {after:.1} dBFS");
}

/// Without an X server, `--ptt` fails at once with a way out, before any call.
#[test]
fn push_to_talk_without_an_x_server_says_so_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_viz"));
    cmd.args(["join", "127.0.0.1:9", "--input", "silence", "--output", "null", "--ptt", "F9"]).env_remove("DISPLAY");
    let mut p = common::spawn_command(&mut cmd, dir.path());
    let (status, output) = p.finish(Duration::from_secs(10));
    assert!(!status.success());
    assert!(output.contains("DISPLAY is not set") && output.contains("--vad"), "{output}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_viz"));
    cmd.args(["join", "127.0.0.1:9", "--ptt", "Hyper"]);
    let (status, output) = common::spawn_command(&mut cmd, dir.path()).finish(Duration::from_secs(10));
    assert!(!status.success() && output.contains("no key called 'Hyper'"), "{output}");
}
