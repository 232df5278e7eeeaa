//! `viz admin ADDR ACTION`: room operations over the encrypted control channel.
//!
//! The admin connects like a joiner (Noise, the server's key pinned or known), logs in
//! with the token, receives the roster, resolves WHO to a participant and sends one
//! operation. The server answers only after the change is on disk.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use viz_client::address::JoinAddress;
use viz_client::join::{self, JoinConfig};
use viz_client::roster::Roster;
use viz_client::status::Console;
use viz_client::store;
use viz_proto::{AdminOp, AdminRequest, ControlMessage, Event, MAX_DATAGRAM, RosterEntry};

use crate::cli::{AdminAction, AdminArgs};

/// How long the server has to answer each step.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

fn token(args: &AdminArgs) -> Result<String> {
    if let Some(path) = &args.token_file {
        return Ok(crate::cli::read_secret_line(path, "admin token")?.trim().to_owned());
    }
    args.token.clone().context("the admin token is needed: --token-file FILE or VIZ_ADMIN_TOKEN")
}

/// Finds the one participant WHO names: an id, a name (any case) or a key prefix.
pub fn resolve<'a>(roster: &'a Roster, who: &str) -> Result<&'a RosterEntry> {
    if let Ok(id) = who.parse::<u32>()
        && let Some(e) = roster.get(id)
    {
        return Ok(e);
    }
    let by_name = roster.find_by_name(who);
    if by_name.len() == 1 {
        return Ok(by_name[0]);
    }
    if by_name.len() > 1 {
        bail!("{} participants are called '{who}'; use the id from `viz admin ADDR list`", by_name.len());
    }
    let prefix: String = who.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    let by_key: Vec<&RosterEntry> = roster
        .entries()
        .filter(|e| prefix.len() >= 4 && e.key.to_ascii_lowercase().replace(' ', "").starts_with(&prefix))
        .collect();
    match by_key.as_slice() {
        [one] => Ok(one),
        [] => bail!("nobody in the room matches '{who}' (by id, name or key)"),
        _ => bail!("'{who}' matches several keys; give more of it"),
    }
}

fn listing(roster: &Roster) -> String {
    let mut out = format!("{:>5}  {:<24} {:>6}  {:<8} {:<26} key\n", "id", "name", "gain", "state", "role");
    for e in roster.entries() {
        let state = match (e.admin_muted, e.self_muted) {
            (true, _) => "muted",
            (false, true) => "mic off",
            _ => "",
        };
        let role = match (e.test_source, e.sends, e.receives) {
            (true, _, _) => "test source",
            (_, true, true) => "talks and listens",
            (_, true, false) => "send-only",
            (_, false, true) => "listen-only",
            _ => "no audio",
        };
        let talking = if state.is_empty() && roster.is_talking(e.id) { "talking" } else { state };
        out.push_str(&format!(
            "{:>5}  {:<24} {:>5}%  {:<8} {:<26} {}\n",
            e.id, e.name, e.gain_percent, talking, role, e.key
        ));
    }
    out
}

pub async fn run(args: AdminArgs) -> Result<()> {
    let console = Console { quiet: true, single_keys: false };
    let token = token(&args)?;
    let address = JoinAddress::parse(&args.address).with_context(|| format!("invalid address '{}'", args.address))?;
    let identity = match &args.identity {
        Some(p) => p.clone(),
        None => store::default_identity_path()?,
    };
    let (keypair, _) = store::load_or_create_identity(&identity).with_context(|| format!("{}", identity.display()))?;
    let known_hosts = match &args.known_hosts {
        Some(p) => p.clone(),
        None => store::default_known_hosts_path()?,
    };
    let cfg = JoinConfig::new(address, keypair, known_hosts);
    let join::Connected { mut transport, mut conn, .. } = join::establish(&cfg, &console).await?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut plain = vec![0u8; MAX_DATAGRAM];
    let mut roster = Roster::default();
    let mut request = 1u32;
    conn.send_control(ControlMessage::Admin(AdminRequest { request, token: token.clone(), op: AdminOp::LogIn }));
    join::flush(&mut conn, &mut transport, &mut buf).await?;

    // Log in, then wait for the roster (it ends with the talking list).
    let mut logged_in = false;
    let mut have_roster = false;
    let mut op_sent = false;
    let mut deadline = Instant::now() + ANSWER_WAIT;
    loop {
        if Instant::now() >= deadline {
            bail!("the server did not answer within {} s", ANSWER_WAIT.as_secs());
        }
        let wake = conn.poll_timeout().unwrap_or(deadline).min(deadline);
        tokio::select! {
            got = transport.rx.recv() => match got {
                Some((at, data)) => { let _ = conn.handle_datagram(at, &data, &mut plain); }
                None => bail!("the connection to the server closed"),
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        conn.handle_timeout(Instant::now());
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Control(ControlMessage::AdminResult { request: r, ok, message }) if r == request => {
                    if !ok {
                        bail!("the server refused: {message}");
                    }
                    if op_sent {
                        println!("{message}");
                        conn.close(Instant::now(), viz_proto::ByeReason::Leaving);
                        join::flush(&mut conn, &mut transport, &mut buf).await?;
                        // Give the goodbye a moment to be acknowledged; nothing depends on it.
                        let _ = tokio::time::timeout(Duration::from_millis(200), transport.rx.recv()).await;
                        return Ok(());
                    }
                    logged_in = true;
                }
                Event::Control(msg @ (ControlMessage::Roster(_) | ControlMessage::Left { .. })) => {
                    roster.apply(&msg);
                }
                Event::Control(msg @ ControlMessage::Talking(_)) => {
                    roster.apply(&msg);
                    have_roster = true;
                }
                Event::PeerLeft(reason) => bail!("the server {reason}"),
                Event::TimedOut => bail!("the server stopped answering"),
                _ => {}
            }
        }
        if logged_in && have_roster && !op_sent {
            let op = match &args.action {
                AdminAction::List => {
                    print!("{}", listing(&roster));
                    conn.close(Instant::now(), viz_proto::ByeReason::Leaving);
                    join::flush(&mut conn, &mut transport, &mut buf).await?;
                    return Ok(());
                }
                AdminAction::Gain { who, percent } => {
                    AdminOp::Gain { target: resolve(&roster, who)?.id, percent: *percent }
                }
                AdminAction::Mute { who } => AdminOp::Mute { target: resolve(&roster, who)?.id, muted: true },
                AdminAction::Unmute { who } => AdminOp::Mute { target: resolve(&roster, who)?.id, muted: false },
                AdminAction::Rename { who, name } => {
                    AdminOp::Rename { target: resolve(&roster, who)?.id, name: name.clone() }
                }
                AdminAction::Kick { who } => AdminOp::Kick { target: resolve(&roster, who)?.id },
            };
            request += 1;
            conn.send_control(ControlMessage::Admin(AdminRequest { request, token: token.clone(), op }));
            op_sent = true;
            deadline = Instant::now() + ANSWER_WAIT;
        }
        join::flush(&mut conn, &mut transport, &mut buf).await?;
    }
}
