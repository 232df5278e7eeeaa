//! Keys during a call, turned into call commands.
//!
//! On a terminal, single keys act at once: `m` mutes, `q` leaves. The terminal is put
//! in single-key mode (no line editing, no echo) and read through crossterm's event
//! stream, whose reader lives outside the async runtime, so nothing waits for a key
//! when the call ends. When stdin is not a terminal (a pipe, a file, /dev/null), lines
//! are read instead (`m` + Enter), on a detached thread for the same reason.
//!
//! Ctrl-C leaves cleanly; a second Ctrl-C exits at once with status 130. The terminal
//! mode is restored on every way out: when the [`KeyMode`] guard drops, in the panic hook,
//! and before that immediate exit.

use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use viz_client::join::UserCommand;
use viz_client::status::Console;

/// The exit status of a second Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT: i32 = 130;

/// Keeps the terminal in single-key mode (and the live view on) while it lives.
pub struct KeyMode(());

impl Drop for KeyMode {
    fn drop(&mut self) {
        viz_client::view::screen::stop();
        terminal::restore();
    }
}

/// Starts reading keys and Ctrl-C (and the push-to-talk key, with `ptt`); the
/// commands arrive on the receiver. `console` learns whether keys act without Enter,
/// for its hints. With `live`, single keys and a terminal on stdout, the live view
/// starts too. Fails when the push-to-talk key cannot be read here.
pub fn spawn(
    console: &mut Console,
    live: bool,
    ptt: Option<viz_client::ptt::PttKey>,
) -> anyhow::Result<(mpsc::Receiver<UserCommand>, KeyMode)> {
    let (tx, commands) = mpsc::channel(16);
    if let Some(key) = ptt {
        viz_client::ptt::spawn(key, tx.clone()).map_err(anyhow::Error::msg)?;
        console.line(format!("Push to talk: hold {} to talk (it works while other windows have focus).", key.name));
    }
    let ctrl_c = tx.clone();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if ctrl_c.send(interrupt()).await.is_err() {
                return;
            }
        }
    });
    let single_keys = terminal::enter_single_key_mode();
    if single_keys {
        tokio::spawn(read_keys(tx));
    } else {
        spawn_line_reader(tx);
    }
    console.single_keys = single_keys;
    if single_keys && live {
        viz_client::view::screen::start();
    }
    Ok((commands, KeyMode(())))
}

/// One Ctrl-C: the first leaves; the second restores the terminal and exits.
fn interrupt() -> UserCommand {
    static PRESSES: AtomicU32 = AtomicU32::new(0);
    if PRESSES.fetch_add(1, Ordering::SeqCst) >= 1 {
        terminal::restore();
        eprintln!("Interrupted again: exiting without waiting.");
        std::process::exit(INTERRUPTED_EXIT);
    }
    UserCommand::Leave
}

/// What a key means during a call.
fn command_for_key(key: &str) -> Option<UserCommand> {
    match key {
        "m" | "M" | "mute" => Some(UserCommand::ToggleMute),
        "d" | "D" | "deafen" => Some(UserCommand::ToggleDeafen),
        "+" | "=" | "louder" => Some(UserCommand::VolumeUp),
        "-" | "_" | "quieter" => Some(UserCommand::VolumeDown),
        "0" | "silence" => Some(UserCommand::ToggleSilence),
        "up" => Some(UserCommand::SelectPrevious),
        "down" => Some(UserCommand::SelectNext),
        "q" | "Q" | "quit" | "exit" => Some(UserCommand::Leave),
        _ => None,
    }
}

async fn read_keys(tx: mpsc::Sender<UserCommand>) {
    use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers};
    let mut events = crossterm::event::EventStream::new();
    while let Some(Ok(event)) = events.next().await {
        let Event::Key(key) = event else { continue };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        let cmd = match key.code {
            // Windows delivers Ctrl-C as a key in this mode (Unix keeps it a signal).
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Some(interrupt()),
            KeyCode::Char(c) => command_for_key(c.encode_utf8(&mut [0; 4])),
            KeyCode::Up => Some(UserCommand::SelectPrevious),
            KeyCode::Down => Some(UserCommand::SelectNext),
            _ => None,
        };
        if let Some(cmd) = cmd
            && tx.send(cmd).await.is_err()
        {
            return;
        }
    }
}

/// Reads commands line by line. A plain thread, detached: a read that never returns
/// (an open pipe) must not keep the process alive after the call.
fn spawn_line_reader(tx: mpsc::Sender<UserCommand>) {
    let spawned = std::thread::Builder::new().name("viz-stdin".into()).spawn(move || {
        use std::io::BufRead;
        // EOF (stdin is /dev/null, or closed) just ends this thread.
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match command_for_key(line) {
                Some(cmd) => {
                    if tx.blocking_send(cmd).is_err() {
                        return;
                    }
                }
                None => println!(
                    "Unknown command '{line}': m = mute, d = deafen, up/down = select a person, + / - = their volume, 0 = silence them, q = leave"
                ),
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot read commands from stdin: {e}");
    }
}

/// Single-key mode of the controlling terminal, and its restoration.
mod terminal {
    use std::io::IsTerminal;
    use std::sync::Once;

    /// Puts stdin's terminal in single-key mode; false when stdin is no terminal or the
    /// mode cannot be set (then lines are read).
    pub fn enter_single_key_mode() -> bool {
        if !std::io::stdin().is_terminal() || !platform::enter() {
            return false;
        }
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        true
    }

    /// Gives the terminal back its mode (line editing, echo). Idempotent.
    pub fn restore() {
        platform::restore();
    }

    /// Unix: "cbreak" — no line editing, no echo, but output processing and signals
    /// stay on, so `\n` still starts a line and Ctrl-C stays SIGINT. (crossterm's raw
    /// mode would turn both off.)
    #[cfg(unix)]
    mod platform {
        use std::sync::Mutex;

        static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

        pub fn enter() -> bool {
            let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
            // SAFETY: tcgetattr fills the termios it is given when it returns 0.
            if unsafe { libc::tcgetattr(libc::STDIN_FILENO, saved.as_mut_ptr()) } != 0 {
                return false;
            }
            // SAFETY: initialised by the successful tcgetattr above.
            let saved = unsafe { saved.assume_init() };
            let mut keys = saved;
            keys.c_lflag &= !(libc::ICANON | libc::ECHO);
            keys.c_cc[libc::VMIN] = 1;
            keys.c_cc[libc::VTIME] = 0;
            // SAFETY: a valid termios for stdin, which is a terminal.
            if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &keys) } != 0 {
                return false;
            }
            *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(saved);
            true
        }

        pub fn restore() {
            if let Some(saved) = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take() {
                // SAFETY: the termios read from this terminal when the mode was entered.
                unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved) };
            }
        }
    }

    /// Windows: crossterm's raw mode only changes the console's input mode (line
    /// input, echo, Ctrl-C processing); output is untouched. Ctrl-C then arrives as a
    /// key, which `read_keys` treats as the signal.
    #[cfg(not(unix))]
    mod platform {
        use std::sync::atomic::{AtomicBool, Ordering};

        static ENTERED: AtomicBool = AtomicBool::new(false);

        pub fn enter() -> bool {
            let ok = crossterm::terminal::enable_raw_mode().is_ok();
            ENTERED.store(ok, Ordering::SeqCst);
            ok
        }

        pub fn restore() {
            if ENTERED.swap(false, Ordering::SeqCst) {
                let _ = crossterm::terminal::disable_raw_mode();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lines_map_to_commands() {
        assert_eq!(command_for_key("m"), Some(UserCommand::ToggleMute));
        assert_eq!(command_for_key("mute"), Some(UserCommand::ToggleMute));
        assert_eq!(command_for_key("d"), Some(UserCommand::ToggleDeafen));
        assert_eq!(command_for_key("Q"), Some(UserCommand::Leave));
        assert_eq!(command_for_key("exit"), Some(UserCommand::Leave));
        assert_eq!(command_for_key("+"), Some(UserCommand::VolumeUp));
        assert_eq!(command_for_key("-"), Some(UserCommand::VolumeDown));
        assert_eq!(command_for_key("0"), Some(UserCommand::ToggleSilence));
        assert_eq!(command_for_key("down"), Some(UserCommand::SelectNext));
        assert_eq!(command_for_key("x"), None);
        assert_eq!(command_for_key(""), None);
    }
}
