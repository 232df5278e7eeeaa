//! `viz host`, `viz join` and `viz devices`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use viz_client::address::JoinAddress;
use viz_client::engine::{EngineConfig, EngineHandle, InputSpec, OutputSpec};
use viz_client::join::{self, EndReason, JoinConfig};
use viz_client::status::Console;
use viz_client::store;
use viz_proto::{Keypair, SessionConfig};
use viz_server::host::{self, HostConfig};

use crate::cli::{CommonArgs, HostArgs, JoinArgs, ServeArgs};
use crate::keyboard;
use viz_server::room::{self, RoomConfig};

fn load_identity(common: &CommonArgs, console: Console) -> Result<Keypair> {
    let path = match &common.identity {
        Some(p) => p.clone(),
        None => store::default_identity_path()?,
    };
    let (key, created) =
        store::load_or_create_identity(&path).with_context(|| format!("identity {}", path.display()))?;
    if created {
        console.line(format!("Created your identity key in {} (fingerprint {})", path.display(), key.fingerprint()));
    }
    Ok(key)
}

fn engine_config(common: &CommonArgs) -> Result<EngineConfig> {
    let input = InputSpec::parse(&common.input).map_err(anyhow::Error::msg).context("--input")?;
    Ok(EngineConfig {
        params: common.audio.params()?,
        batch: usize::from(common.audio.batch),
        jitter: common.audio.jitter(),
        denoise: common.audio.denoise_for(&input),
        voice_gate: common.audio.voice_gate(),
        agc: common.audio.agc,
        input,
        output: OutputSpec::parse(&common.output),
        loop_input: common.loop_input,
        start_muted: common.muted,
        push_to_talk: common.ptt.is_some(),
    })
}

fn duration(common: &CommonArgs) -> Result<Option<Duration>> {
    common
        .duration
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .context("--duration must be a positive number of seconds")
        })
        .transpose()
}

/// The live view is wanted unless lines were asked for (it needs a terminal too).
fn live_view(common: &CommonArgs) -> bool {
    !common.plain && !common.quiet
}

/// The remembered volumes, saved back into the config file.
fn volumes(common: &CommonArgs) -> Result<viz_client::volumes::Volumes> {
    Ok(viz_client::volumes::Volumes::new(common.volumes.clone(), Some(crate::config::path()?)))
}

fn console(common: &CommonArgs) -> Console {
    Console { quiet: common.quiet, single_keys: false }
}

/// What this side sends and where it plays what it hears.
fn audio_line(config: &EngineConfig) -> String {
    format!("Audio: you send {}; you hear the call on {}.", config.input.describe(), config.output.describe())
}

/// Spawns the engine (opening inputs and outputs, so their errors come first).
fn start_engine(config: EngineConfig) -> Result<(EngineHandle, mpsc::Receiver<viz_proto::OwnedMedia>)> {
    let (tx, rx) = mpsc::channel(256);
    let engine = EngineHandle::spawn(config, tx).map_err(anyhow::Error::msg)?;
    Ok((engine, rx))
}

fn report_engine(engine: EngineHandle, console: Console) -> Result<()> {
    let report = engine.stop();
    let st = &report.status.jitter;
    tracing::info!(
        received = st.packets_received,
        lost = st.packets_lost,
        concealed = st.frames_concealed,
        fec = st.frames_fec,
        dred = st.frames_dred,
        late = st.frames_late,
        cpu_ms = report.cpu_time.as_millis() as u64,
        "audio engine stopped"
    );
    if report.late_ticks > 50 {
        console.line(format!(
            "Note: the audio engine was late {} times; the machine may be overloaded",
            report.late_ticks
        ));
    }
    match report.error {
        Some(e) => Err(anyhow::anyhow!("audio: {e}")),
        None => Ok(()),
    }
}

pub async fn host(args: HostArgs) -> Result<()> {
    let descriptors = viz_server::limits::raise_descriptor_limit();
    tracing::debug!(?descriptors, "open descriptor limit");
    if args.http.is_none() && (args.tls.tls_cert.is_some() || args.tls.tls_self_signed) {
        anyhow::bail!("--tls-cert and --tls-self-signed are for the web page: add --http");
    }
    let mut console = console(&args.common);
    let keypair = load_identity(&args.common, console)?;
    let config = engine_config(&args.common)?;
    console.line(audio_line(&config));
    let (engine, outgoing) = start_engine(config)?;
    let bind = SocketAddr::new(args.bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), args.port);
    let cfg = HostConfig {
        bind,
        websocket: !args.no_websocket,
        keypair,
        name: args.common.name.clone().unwrap_or_else(join::default_name),
        params: args.common.audio.params()?,
        session: SessionConfig::default(),
        duration: duration(&args.common)?,
        status_interval: Duration::from_secs(5),
        volumes: volumes(&args.common)?,
    };
    // Restores the terminal (and ends the live view) when hosting ends.
    let (commands, _key_mode) = keyboard::spawn(&mut console, live_view(&args.common), args.common.ptt)?;
    if let Some(http) = args.http {
        let state_dir = match &args.state_dir {
            Some(d) => d.clone(),
            None => store::config_dir()?.join("host"),
        };
        let room_cfg = RoomConfig {
            bind: cfg.bind,
            websocket: cfg.websocket,
            keypair: cfg.keypair,
            room_name: cfg.name.clone(),
            params: cfg.params,
            jitter: args.common.audio.jitter(),
            session: cfg.session,
            password: None,
            admin_token: room::generate_admin_token(),
            tls: web_tls(&args.tls, &state_dir),
            state_dir,
            test_source: false,
            pass_through: true,
            http: Some(http),
            web: viz_server::web::WebAccess::default(),
            stats_interval: Duration::from_secs(5),
            duration: cfg.duration,
            announce: true,
            media: Default::default(),
            // A host's room is a few friends: ticks never reach the shared size.
            send_threads: 0,
        };
        let local = viz_server::room::local::LocalAudio {
            engine: &engine,
            outgoing,
            commands,
            console,
            name: cfg.name,
            volumes: cfg.volumes,
        };
        let result = room::run_with_local(room_cfg, Some(local), std::future::pending(), None).await;
        report_engine(engine, console)?;
        let summary = result?;
        console.line(format!(
            "Stopped hosting: {} joins, at most {} in the room (you included).",
            summary.joins,
            summary.peak_participants.max(1)
        ));
        return Ok(());
    }
    let result = host::run(cfg, &engine, outgoing, commands, console, None).await;
    report_engine(engine, console)?;
    let summary = result?;
    console.line(format!(
        "Stopped hosting after {} call(s), {:.0} s in calls.",
        summary.calls,
        summary.call_time.as_secs_f64()
    ));
    Ok(())
}

pub async fn join(args: JoinArgs) -> Result<()> {
    let mut console = console(&args.common);
    let Some(text) = args.address.as_deref() else {
        anyhow::bail!(
            "no address to join: give one (viz join ADDR), or set `address` in the config file (viz config edit)"
        )
    };
    let address = JoinAddress::parse(text).with_context(|| format!("invalid address '{text}'"))?;
    let keypair = load_identity(&args.common, console)?;
    let known_hosts = match &args.known_hosts {
        Some(p) => p.clone(),
        None => store::default_known_hosts_path()?,
    };
    let mut config = engine_config(&args.common)?;
    // Nothing to capture or play when only listening or only talking.
    if args.listen_only && args.common.input == "default" {
        config.input = InputSpec::Silence;
    }
    if args.send_only && args.common.output == "default" {
        config.output = OutputSpec::Null;
    }
    let echo = if args.echo_test { Some(crate::echo::prepare(&args.common, &mut config)?) } else { None };
    console.line(audio_line(&config));
    let (engine, outgoing) = start_engine(config)?;
    let mut cfg = JoinConfig::new(address, keypair, known_hosts);
    cfg.name = args.common.name.clone().unwrap_or_else(join::default_name);
    cfg.params = args.common.audio.params()?;
    cfg.duration = duration(&args.common)?;
    cfg.password = args.password.load()?;
    cfg.sends = !args.listen_only;
    cfg.receives = !args.send_only;
    cfg.echo_test = args.echo_test;
    if args.echo_test && cfg.duration.is_none() {
        cfg.duration = Some(crate::echo::default_duration());
    }
    cfg.reconnect = !args.no_reconnect && !args.echo_test;
    cfg.volumes = volumes(&args.common)?;
    let (commands, key_mode) =
        keyboard::spawn(&mut console, live_view(&args.common) && !args.echo_test, args.common.ptt)?;
    cfg.levels = viz_client::view::screen::is_on();
    let result = join::join(cfg, &engine, outgoing, commands, console).await;
    drop(key_mode);
    let engine_result = report_engine(engine, console);
    let summary = result?;
    engine_result?;
    if let Some(echo) = echo {
        echo.report(console)?;
    }
    let seconds = summary.call_time.as_secs_f64();
    console.line(match summary.ended {
        EndReason::Left => format!("Call ended after {seconds:.1} s: you left."),
        EndReason::DurationReached => format!("Call ended after {seconds:.1} s: the duration was reached."),
        // Why the other side ended it was said when it happened.
        EndReason::PeerLeft(_) => format!("Call ended after {seconds:.1} s."),
    });
    Ok(())
}

pub fn devices() -> Result<()> {
    let found = viz_client::device::list().context("cannot list audio devices")?;
    for (title, kind, list, default) in [
        ("Input", "input", &found.inputs, &found.default_input),
        ("Output", "output", &found.outputs, &found.default_output),
    ] {
        println!("{title} devices (* = default):");
        if list.is_empty() {
            println!("  (none)");
        }
        for d in list {
            println!("  {:>2}{} {}  [{}]", d.index, if d.is_default { "*" } else { " " }, d.name, d.config);
        }
        match default {
            _ if list.iter().any(|d| d.is_default) => {}
            Some(name) => {
                println!("  The default {kind} device, '{name}', is not in this list; --{kind} default uses it.")
            }
            None => println!("  There is no default {kind} device."),
        }
    }
    println!("Use --input/--output with a name or number; files: --input x.wav, tone, silence; --output x.wav, null.");
    Ok(())
}

pub async fn serve(args: ServeArgs) -> Result<()> {
    let descriptors = viz_server::limits::raise_descriptor_limit();
    tracing::debug!(?descriptors, "open descriptor limit");
    let identity = match &args.identity {
        Some(p) => p.clone(),
        None => store::default_identity_path()?,
    };
    let (keypair, created) =
        store::load_or_create_identity(&identity).with_context(|| format!("identity {}", identity.display()))?;
    if created {
        println!("Created the server identity in {} (fingerprint {})", identity.display(), keypair.fingerprint());
    }
    let admin_token = match &args.admin_token_file {
        Some(path) => {
            let token = crate::cli::read_secret_line(path, "admin token")?.trim().to_owned();
            if token.len() < 16 {
                anyhow::bail!("the admin token in {} is shorter than 16 characters", path.display());
            }
            zeroize::Zeroizing::new(token)
        }
        None => room::generate_admin_token(),
    };
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => store::config_dir()?.join("server"),
    };
    let state_dir_for_tls = state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    let bind_ip = args.bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let rtp = args.rtp.rtp_port.map(|port| viz_server::room::rtp_in::RtpInputConfig {
        bind: SocketAddr::new(bind_ip, port),
        payload_type: args.rtp.rtp_payload_type,
        allow: args.rtp.rtp_allow.clone(),
        open: args.rtp.rtp_open,
    });
    let mut rtp_forwards = Vec::new();
    for target in &args.rtp.rtp_forward {
        let addr = tokio::net::lookup_host(target.as_str())
            .await
            .with_context(|| format!("--rtp-forward {target}: not HOST:PORT that resolves"))?
            .next()
            .with_context(|| format!("--rtp-forward {target}: no address"))?;
        rtp_forwards.push(addr);
    }
    let record =
        args.record.clone().map(|dir| viz_server::room::recorder::RecordConfig { dir, each: args.record_each });
    let duration = args
        .duration
        .map(|s| Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero()).context("--duration must be positive"))
        .transpose()?;
    let cfg = RoomConfig {
        bind: SocketAddr::new(bind_ip, args.port),
        websocket: !args.no_websocket,
        keypair,
        room_name: viz_proto::control::sanitize_name(&args.room),
        params: args.audio.params()?,
        jitter: args.audio.jitter(),
        session: SessionConfig::default(),
        password: args.password.load()?,
        admin_token,
        state_dir,
        test_source: args.test_source,
        pass_through: !args.no_pass_through,
        http: (!args.web.no_http).then_some(args.web.http),
        web: viz_server::web::WebAccess {
            public_metrics: args.web.public_metrics,
            metrics_names: args.web.metrics_names,
            trust_proxy: args.web.trust_proxy,
            allowed_origins: args.web.allow_origin.clone(),
        },
        tls: web_tls(&args.web.tls, &state_dir_for_tls),
        stats_interval: Duration::from_secs(args.stats_interval.max(1)),
        duration,
        announce: true,
        send_threads: args
            .send_threads
            .map(usize::from)
            .unwrap_or_else(viz_server::send_pool::SendPool::helpers_for_this_machine),
        media: viz_server::room::MediaOptions {
            rtp,
            rtp_forwards,
            rtp_payload_type: args.rtp.rtp_payload_type,
            record,
        },
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let stop = async move {
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => tokio::select! { _ = stop => {}, _ = term.recv() => {} },
                Err(e) => {
                    tracing::warn!("cannot watch for SIGTERM ({e}); stop the server with Ctrl-C");
                    stop.await;
                }
            }
        }
        #[cfg(not(unix))]
        stop.await;
    };
    let summary = room::run(cfg, stop, None).await?;
    println!(
        "Room closed: {} joins, {} refused, at most {} participants at once.",
        summary.joins, summary.refused, summary.peak_participants
    );
    Ok(())
}

/// The TLS choice of `viz serve`'s flags. A self-signed certificate names localhost,
/// the loopback addresses, this machine's LAN address and its host name.
fn web_tls(web: &crate::cli::TlsArgs, state_dir: &std::path::Path) -> viz_server::web::TlsMode {
    use viz_server::web::TlsMode;
    if let (Some(cert), Some(key)) = (&web.tls_cert, &web.tls_key) {
        return TlsMode::Files { cert: cert.clone(), key: key.clone() };
    }
    if !web.tls_self_signed {
        return TlsMode::Off;
    }
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Some(ip) = viz_server::host::guess_local_ip() {
        names.push(ip.to_string());
    }
    names.extend(viz_client::join::machine_name());
    TlsMode::SelfSigned { dir: state_dir.to_owned(), names }
}
