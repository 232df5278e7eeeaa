//! Command-line interface. The original Viz forms `viz -s PORT` and `viz -c ADDR` are
//! rewritten to `viz host --port PORT` and `viz join ADDR` before parsing.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use viz_audio::{AudioParams, FrameDuration, JitterConfig};
use viz_client::engine::InputSpec;

#[derive(Debug, Parser)]
#[command(
    name = "viz",
    version,
    about = "Low-latency, end-to-end encrypted voice calls.",
    long_about = "Low-latency, end-to-end encrypted voice calls.\n\n\
        One person hosts (viz host), friends join with the address it prints (viz join ADDR), \
        directly, through a UDP relay, or through an HTTP-only tunnel (wss://...). \
        The original Viz forms work too: viz -s PORT hosts, viz -c ADDR joins.",
    after_help = "Examples:\n  viz demo                         try it on this machine, no audio hardware needed\n  viz host                         host on port 8443 with the default microphone and speakers\n  viz join viz://203.0.113.7:8443#k3xq-7m2a-pq4z-rt6b-ya2c\n  viz join wss://abc.trycloudflare.com#k3xq-7m2a-pq4z-rt6b-ya2c\n  viz -s 8443 / viz -c 203.0.113.7:8443"
)]
pub struct Cli {
    /// Verbose logs (same as RUST_LOG=debug).
    #[arg(short, long, global = true)]
    pub debug: bool,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Host a call that a friend joins (original form: viz -s PORT).
    Host(HostArgs),
    /// Join a call (original form: viz -c ADDR).
    Join(JoinArgs),
    /// Send audio without listening: a capture PC, a music feed (encrypted to a room or
    /// call, or plain RTP/Opus with --rtp).
    Send(SendArgs),
    /// List audio input and output devices.
    Devices,
    /// Run a host and a joiner in this process over an impaired loopback network and
    /// report latency, loss, bitrate and CPU.
    Demo(DemoArgs),
    /// Run a room server: any number of people join, each hears everybody else.
    Serve(ServeArgs),
    /// Change a room's participants: gain, mute, rename, kick (needs the admin token).
    Admin(AdminArgs),
    /// Load a room with many real encrypted clients from this process.
    Loadtest(LoadtestArgs),
    /// Measure parts of Viz on this machine.
    Bench(BenchArgs),
    /// Relay UDP through a simulated bad network (loss, bursts, delay, jitter), to
    /// hear or measure a call on one machine as it would sound over the internet.
    Netsim(NetsimArgs),
    /// The config file: your name, devices, noise suppression, the address you usually
    /// join (options on the command line win over it).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ConfigCommand {
    /// Print where the config file is (or would be).
    Path,
    /// Print the settings in force, and which are defaults.
    Show,
    /// Open the file in $VISUAL or $EDITOR (created with every key explained, if
    /// missing), and check it when the editor closes.
    Edit,
}

#[derive(Debug, Args, Clone)]
pub struct PasswordArgs {
    /// File whose first line is the room password.
    #[arg(long, value_name = "PATH", conflicts_with = "password")]
    pub password_file: Option<PathBuf>,

    /// Room password (visible to other local users in the process list; prefer
    /// --password-file or the VIZ_PASSWORD environment variable).
    #[arg(long, env = "VIZ_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// UDP and TCP (WebSocket) port to listen on.
    #[arg(short, long, default_value_t = viz_client::address::DEFAULT_PORT)]
    pub port: u16,

    /// Address to listen on (default: all interfaces, IPv4 and IPv6).
    #[arg(long, value_name = "IP")]
    pub bind: Option<std::net::IpAddr>,

    /// Do not accept WebSocket connections (UDP only).
    #[arg(long)]
    pub no_websocket: bool,

    /// The room's name, shown to joiners.
    #[arg(long, default_value = "viz")]
    pub room: String,

    #[command(flatten)]
    pub password: PasswordArgs,

    /// File holding the admin token (default: a fresh token, printed at start).
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,

    /// Where participant settings are kept (default: the config directory's server/).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Add a participant that loops a music-like test signal.
    #[arg(long)]
    pub test_source: bool,

    /// Always decode, mix and re-encode, even when a listener hears exactly one
    /// speaker (for measuring what pass-through saves).
    #[arg(long)]
    pub no_pass_through: bool,

    #[command(flatten)]
    pub web: WebArgs,

    #[command(flatten)]
    pub rtp: RtpArgs,

    /// Record the room mix as Ogg Opus files in this directory (one per run, named
    /// ROOM-mix-UTCTIME.opus; pages reach the disk every 200 ms).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,

    /// With --record: also a file per participant (ROOM-NAME-ID-UTCTIME.opus), of the
    /// packets they send, from when they join until they leave.
    #[arg(long, requires = "record")]
    pub record_each: bool,

    /// Seconds between statistics log lines.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub stats_interval: u64,

    /// Threads that send a large tick's datagrams (512 or more: a room of hundreds)
    /// beside the network thread, so that a big room's sending uses more than one
    /// core. Default: one per core beyond the first, at most 3; 0 sends from the
    /// network thread alone.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=16))]
    pub send_threads: Option<u8>,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Server identity key file (default: in the config directory; created on first run).
    #[arg(long, value_name = "PATH")]
    pub identity: Option<PathBuf>,

    #[command(flatten)]
    pub audio: AudioArgs,
}

/// The web page, REST API and metrics.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// Serve the web page (join, listen, admin), the REST API and /metrics on this TCP
    /// port or address (PORT, IP:PORT or [IPv6]:PORT; default: all interfaces).
    #[arg(long, value_name = "ADDR", default_value = "4011", value_parser = parse_http_addr)]
    pub http: std::net::SocketAddr,

    /// No web page, API or metrics.
    #[arg(long, conflicts_with_all = ["http", "tls_cert", "tls_self_signed"])]
    pub no_http: bool,

    /// Serve /metrics without the admin token (it tells who is present and when each
    /// participant talks; by default a scraper sends 'Authorization: Bearer TOKEN').
    #[arg(long)]
    pub public_metrics: bool,

    /// Label participants in /metrics with their names, not only their numbers.
    #[arg(long)]
    pub metrics_names: bool,

    /// A tunnel or reverse proxy on this machine (cloudflared, ngrok, nginx) forwards
    /// the web port or the native port's WebSocket: take each visitor's address from
    /// X-Forwarded-For or CF-Connecting-IP for limits and display. Without it every
    /// tunnelled visitor is 127.0.0.1 and shares one address's limits.
    #[arg(long)]
    pub trust_proxy: bool,

    /// Let pages from this origin (scheme://host[:port]) open the room's WebSocket, as
    /// well as the server's own page (repeatable). Pages from other sites are refused,
    /// so a site a user visits cannot listen in through their browser.
    #[arg(long, value_name = "ORIGIN", value_parser = parse_origin)]
    pub allow_origin: Vec<String>,

    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Plain RTP/Opus in and out (RFC 3550 + RFC 7587), for ffmpeg, GStreamer, VLC and
/// hardware senders. Unencrypted and unauthenticated by nature: only allowed SSRCs
/// are mixed.
#[derive(Debug, Args)]
pub struct RtpArgs {
    /// Accept plain RTP/Opus on this UDP port (RTCP on the next one); off unless given.
    /// The usual port is 4010.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "4010")]
    pub rtp_port: Option<u16>,

    /// RTP payload type of Opus, in and out (a dynamic type, 96..=127).
    #[arg(long, value_name = "PT", default_value_t = viz_proto::rtp::DEFAULT_OPUS_PAYLOAD_TYPE,
          value_parser = clap::value_parser!(u8).range(96..=127))]
    pub rtp_payload_type: u8,

    /// Mix this sender: SSRC (held to the address its first packet comes from),
    /// SSRC@IP (any port of that host) or SSRC@IP:PORT; SSRC in decimal or 0x-hex.
    /// Repeat for more. Other SSRCs wait for an admin (web page or API).
    #[arg(long, value_name = "SSRC[@ADDR]", requires = "rtp_port")]
    pub rtp_allow: Vec<viz_server::room::rtp_allow::AllowRule>,

    /// Mix every SSRC without asking (a trusted LAN only: anyone who reaches the port
    /// is heard).
    #[arg(long, requires = "rtp_port")]
    pub rtp_open: bool,

    /// Send the room mix as plain RTP/Opus to HOST:PORT (repeatable). An SDP file for
    /// players (ffmpeg, VLC) is written to the state directory; more forwards, also of
    /// single participants, through the API.
    #[arg(long, value_name = "HOST:PORT")]
    pub rtp_forward: Vec<String>,
}

/// HTTPS for the web page.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// HTTPS with this certificate chain (PEM). Browsers give the microphone only to
    /// https:// pages (or http://localhost), so friends on a LAN need HTTPS.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// HTTPS with a self-signed certificate, generated on first use and kept in the
    /// state directory; its SHA-256 fingerprint is printed at start so visitors can
    /// check the one their browser shows.
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
}

/// "4011", "127.0.0.1:4011" or "[::1]:4011".
/// `https://host[:port]` or `http://host[:port]`, as a browser sends it in `Origin`.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(s.to_owned()),
        _ => Err(format!("'{s}' is not an origin: give scheme://host[:port], such as https://example.com")),
    }
}

pub fn parse_http_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), port));
    }
    s.parse().map_err(|_| format!("'{s}' is not a port or IP:PORT"))
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Room server address, as for viz join.
    #[arg(value_name = "ADDR")]
    pub address: String,

    /// File holding the admin token the server printed (or VIZ_ADMIN_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    #[arg(long, env = "VIZ_ADMIN_TOKEN", hide_env_values = true, hide = true)]
    pub token: Option<String>,

    /// Known-hosts file (default: in the config directory).
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,

    /// Identity key file (default: in the config directory).
    #[arg(long, value_name = "PATH")]
    pub identity: Option<PathBuf>,

    #[command(subcommand)]
    pub action: AdminAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminAction {
    /// Show who is in the room.
    List,
    /// Set a participant's volume, 0..=200 percent.
    Gain {
        /// Participant id, name, or the start of their key fingerprint.
        who: String,
        #[arg(value_parser = clap::value_parser!(u16).range(0..=200))]
        percent: u16,
    },
    /// Mute a participant for everyone.
    Mute { who: String },
    /// Unmute a participant.
    Unmute { who: String },
    /// Give a participant another name.
    Rename { who: String, name: String },
    /// Remove a participant from the room.
    Kick { who: String },
}

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// Room server address, as for viz join.
    #[arg(value_name = "ADDR")]
    pub address: String,

    /// Clients to connect.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,

    /// How many of them talk (the rest listen).
    #[arg(long, default_value_t = 10)]
    pub speakers: usize,

    /// Seconds to run after the last client joined.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub duration: f64,

    /// Seconds over which clients join.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub ramp: f64,

    /// The clients are plain RTP/Opus senders to this HOST:PORT (the room's --rtp-port;
    /// their SSRCs count up from 0x7e570000: start the room with --rtp-open); ADDR is
    /// then where the --listeners join.
    #[arg(long, value_name = "HOST:PORT")]
    pub rtp: Option<String>,

    /// With --rtp: RTP payload type of Opus.
    #[arg(long, value_name = "PT", default_value_t = viz_proto::rtp::DEFAULT_OPUS_PAYLOAD_TYPE,
          value_parser = clap::value_parser!(u8).range(96..=127))]
    pub rtp_payload_type: u8,

    /// With --rtp: encrypted clients that join ADDR and listen to the mix.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "rtp")]
    pub listeners: usize,

    /// The room's /metrics URL (http://HOST:4011/metrics): report its mixer's cycle
    /// time during the run.
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,

    /// With --metrics: a file holding the room's admin token, which /metrics asks for
    /// unless the room runs with --public-metrics (or VIZ_ADMIN_TOKEN).
    #[arg(long, value_name = "PATH", requires = "metrics")]
    pub metrics_token_file: Option<PathBuf>,

    #[arg(long, env = "VIZ_ADMIN_TOKEN", hide_env_values = true, hide = true)]
    pub metrics_token: Option<String>,

    /// With --metrics: the server's process id, to report its CPU use (Linux).
    #[arg(long, value_name = "PID", requires = "metrics")]
    pub server_pid: Option<u32>,

    #[command(flatten)]
    pub password: PasswordArgs,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchWhat {
    /// Mixer tick time for 1/10/50 speakers and 10/100/1000 listeners, beside the
    /// codec-only floor (the same decodes and encodes alone).
    Mixer {
        /// Ticks measured per case.
        #[arg(long, default_value_t = 500)]
        ticks: usize,
        /// Opus complexity of the mix encoders (0..=10), as `viz serve --complexity`.
        #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u8).range(0..=10))]
        complexity: u8,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What libopus's loss tools cost per 20 ms frame: DRED in the encoder (time and
    /// bitrate), the decoder at the complexities that add deep PLC and OSCE, and one
    /// lost frame rebuilt by FEC, DRED or concealment.
    Codec {
        /// Opus encoder complexity (0..=10).
        #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u8).range(0..=10))]
        complexity: u8,
    },
    /// What encrypting and decrypting one transport datagram costs, at the payload
    /// sizes of voice (a room seals one per listener per frame).
    Seal {
        /// Datagrams sealed and opened per payload size.
        #[arg(long, default_value_t = 200_000)]
        datagrams: usize,
    },
}

#[derive(Debug, Args)]
pub struct HostArgs {
    /// UDP and TCP (WebSocket) port to listen on.
    #[arg(short, long, default_value_t = viz_client::address::DEFAULT_PORT)]
    pub port: u16,

    /// Address to listen on (default: all interfaces, IPv4 and IPv6).
    #[arg(long, value_name = "IP")]
    pub bind: Option<std::net::IpAddr>,

    /// Do not accept WebSocket connections (UDP only).
    #[arg(long)]
    pub no_websocket: bool,

    /// Also serve the web page on this port or address (default 4011): the call becomes
    /// a room that browsers, and more than one native friend, can join, with the admin
    /// page and REST API (the admin token is printed at start).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "4011", value_parser = parse_http_addr)]
    pub http: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// With --http: where the room keeps participant settings and the TLS certificate
    /// (default: the config directory's host/).
    #[arg(long, value_name = "DIR", requires = "http")]
    pub state_dir: Option<PathBuf>,

    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Host address: HOST[:PORT], viz://HOST:PORT#FINGERPRINT, udp://..., ws://..., wss://...
    /// (default: `address` in the config file).
    #[arg(value_name = "ADDR")]
    pub address: Option<String>,

    /// Known-hosts file (default: in the config directory).
    #[arg(long, value_name = "PATH")]
    pub known_hosts: Option<PathBuf>,

    #[command(flatten)]
    pub password: PasswordArgs,

    /// Only listen: send no audio.
    #[arg(long, conflicts_with = "send_only")]
    pub listen_only: bool,

    /// Only talk: receive no audio.
    #[arg(long)]
    pub send_only: bool,

    /// Talk to the server's echo service: hear yourself back and measure the round
    /// trip. With a generated or file input, prints the measured latency.
    #[arg(long, conflicts_with_all = ["listen_only", "send_only"])]
    pub echo_test: bool,

    /// Do not reconnect when the connection breaks.
    #[arg(long)]
    pub no_reconnect: bool,

    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    viz send viz://203.0.113.7:8443#k3xq-7m2a-pq4z-rt6b-ya2c --input music.wav --loop\n  \
    viz send 192.168.1.20 --rtp --input loopback        plain RTP to a room's --rtp-port 4010\n  \
    viz send 127.0.0.1:5004 --rtp --ssrc 0x1234 --input tone:440 --duration 10")]
pub struct SendArgs {
    /// Where to send: a room or host address as for viz join; with --rtp, HOST[:PORT] of
    /// an RTP receiver (port 4010 unless given).
    #[arg(value_name = "ADDR")]
    pub address: String,

    /// What to send: a device name or index (see `viz devices`), loopback[:OUTPUT] (what
    /// an output device plays, where the platform allows), PATH.wav, tone[:HZ] or silence.
    #[arg(short, long, value_name = "SOURCE", default_value = "default")]
    pub input: String,

    /// Send plain RTP/Opus (RFC 3550/7587) instead: no encryption, no handshake, to any
    /// RTP receiver (viz serve --rtp-port, ffmpeg, GStreamer).
    #[arg(long)]
    pub rtp: bool,

    /// With --rtp: the SSRC that names this sender (decimal or 0x-hex; default: one made
    /// once and kept in the config directory, so a room admin accepts it once).
    #[arg(long, value_name = "SSRC", requires = "rtp", value_parser = viz_server::room::rtp_allow::parse_ssrc)]
    pub ssrc: Option<u32>,

    /// With --rtp: the RTP payload type of Opus (96..=127).
    #[arg(long, value_name = "PT", default_value_t = viz_proto::rtp::DEFAULT_OPUS_PAYLOAD_TYPE,
          value_parser = clap::value_parser!(u8).range(96..=127))]
    pub payload_type: u8,

    /// Your name as the room shows it (default: your login name).
    #[arg(short, long)]
    pub name: Option<String>,

    /// Repeat a WAV input; without it a file is sent once and viz send ends.
    #[arg(long = "loop")]
    pub loop_input: bool,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Known-hosts file (default: in the config directory).
    #[arg(long, value_name = "PATH", conflicts_with = "rtp")]
    pub known_hosts: Option<PathBuf>,

    #[command(flatten)]
    pub password: PasswordArgs,

    /// Do not reconnect when the connection breaks.
    #[arg(long, conflicts_with = "rtp")]
    pub no_reconnect: bool,

    /// Identity key file (default: in the config directory; created on first run).
    #[arg(long, value_name = "PATH", conflicts_with = "rtp")]
    pub identity: Option<PathBuf>,

    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub audio: AudioArgs,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Your name as the other side sees it (default: your login name).
    #[arg(short, long)]
    pub name: Option<String>,

    /// Microphone: a device name or index (see `viz devices`), PATH.wav, tone[:HZ] or silence.
    #[arg(short, long, value_name = "SOURCE", default_value = "default")]
    pub input: String,

    /// Speakers: a device name or index, PATH.wav (records what you hear) or null.
    #[arg(short, long, value_name = "SINK", default_value = "default")]
    pub output: String,

    /// Repeat a WAV input when it ends.
    #[arg(long = "loop")]
    pub loop_input: bool,

    /// End the call cleanly after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Start with the microphone muted.
    #[arg(long)]
    pub muted: bool,

    /// Push to talk: the microphone is open only while KEY is held (and 250 ms after),
    /// even while another window such as a game has focus. KEY: A-Z, 0-9, F1-F16,
    /// Space, CapsLock, ScrollLock, Pause, Insert, Home, End, PageUp, PageDown,
    /// LeftCtrl, RightCtrl, LeftShift, RightShift, LeftAlt, RightAlt, Backquote.
    /// Windows and X11 (Linux, BSD); on Wayland only XWayland windows' keys are seen.
    #[arg(long, value_name = "KEY")]
    pub ptt: Option<viz_client::ptt::PttKey>,

    /// Identity key file (default: in the config directory; created on first run).
    #[arg(long, value_name = "PATH")]
    pub identity: Option<PathBuf>,

    /// Print nothing but errors (no status lines).
    #[arg(short, long)]
    pub quiet: bool,

    /// Print status lines instead of the live view, even on a terminal.
    #[arg(long)]
    pub plain: bool,

    #[command(flatten)]
    pub audio: AudioArgs,

    /// How loud you hear each person (from the config file's `[volumes]`).
    #[arg(skip)]
    pub volumes: std::collections::BTreeMap<String, u16>,
}

#[derive(Debug, Args, Clone)]
pub struct AudioArgs {
    /// Opus frame duration in milliseconds: 10, 20, 40 or 60.
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = parse_frame_ms)]
    pub frame_ms: u32,

    /// Opus bitrate in bits per second (6000..=510000).
    #[arg(long, value_name = "BPS", default_value_t = 32_000)]
    pub bitrate: u32,

    /// Opus complexity 0..=10 (lower saves CPU on old machines).
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u8).range(0..=10))]
    pub complexity: u8,

    /// Opus decoder complexity 0..=10: 5 and up conceal lost speech with libopus's
    /// neural deep PLC; 6 adds LACE and 7+ NoLACE speech enhancement (OSCE, made for low
    /// bitrates; costs about 0.3 and 1.3 % of a core). See `viz bench codec`.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=10))]
    pub decoder_complexity: u8,

    /// Opus frames per datagram (1..=16); more means fewer packets for tunnels that
    /// limit packet rate, at the cost of delay.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub batch: u8,

    /// In-band forward error correction (default on).
    #[arg(long, overrides_with = "no_fec")]
    pub fec: bool,
    /// Turn in-band FEC off.
    #[arg(long, overrides_with = "fec")]
    pub no_fec: bool,

    /// Discontinuous transmission: send (almost) nothing during silence (default on).
    #[arg(long, overrides_with = "no_dtx")]
    pub dtx: bool,
    /// Turn DTX off: send every frame, silent or not.
    #[arg(long, overrides_with = "dtx")]
    pub no_dtx: bool,

    /// Deep redundancy (DRED, default on): while the other side reports loss, packets
    /// carry a neural-coded summary of the last 100 ms, so lost speech is rebuilt
    /// instead of guessed. Costs nothing on a clean link.
    #[arg(long, overrides_with = "no_dred")]
    pub dred: bool,
    /// Turn deep redundancy off.
    #[arg(long, overrides_with = "dred")]
    pub no_dred: bool,

    /// Noise suppression (RNNoise) on what you send: takes fans, hum and keyboard
    /// clicks out and adds 20 ms of delay. On by default for a microphone, off for
    /// files, tones and what a device plays (--input loopback).
    #[arg(long, overrides_with = "no_denoise")]
    pub denoise: bool,
    /// Turn noise suppression off.
    #[arg(long, overrides_with = "denoise")]
    pub no_denoise: bool,

    /// Automatic gain control: bring a quiet (or loud) microphone towards a common
    /// speech level, slowly and within +20/-10 dB; pauses leave the gain alone.
    #[arg(long)]
    pub agc: bool,

    /// Voice activation: send only while your microphone hears more than the
    /// threshold (after noise suppression), and 300 ms after, so words are not cut.
    #[arg(long)]
    pub vad: bool,
    /// The voice activation threshold in dBFS (-80..=0).
    #[arg(long, value_name = "DBFS", default_value_t = viz_audio::gate::DEFAULT_THRESHOLD_DBFS,
          requires = "vad", allow_negative_numbers = true,
          value_parser = parse_threshold)]
    pub vad_threshold: f32,

    /// Largest playout delay the jitter buffer may use, in milliseconds (40..=2000).
    #[arg(long, value_name = "MS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(40..=2000))]
    pub max_delay_ms: u64,
}

fn parse_threshold(s: &str) -> Result<f32, String> {
    let db: f32 = s.parse().map_err(|_| format!("'{s}' is not a number of dBFS"))?;
    if (-80.0..=0.0).contains(&db) { Ok(db) } else { Err(format!("{db} dBFS is outside -80..=0")) }
}

fn parse_frame_ms(s: &str) -> Result<u32, String> {
    let ms: u32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    FrameDuration::from_millis(ms)
        .map(|_| ms)
        .ok_or_else(|| format!("{ms} ms is not an Opus frame size Viz supports (10, 20, 40, 60)"))
}

/// The first line of a secret file (password, admin token), without its line ending.
pub fn read_secret_line(path: &std::path::Path, what: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the {what} file {}: {e}", path.display()))?,
    );
    Ok(zeroize::Zeroizing::new(text.lines().next().unwrap_or("").trim_end_matches('\r').to_owned()))
}

impl PasswordArgs {
    /// The password from the file, the option or the environment.
    pub fn load(&self) -> anyhow::Result<Option<zeroize::Zeroizing<String>>> {
        if let Some(path) = &self.password_file {
            let line = read_secret_line(path, "password")?;
            if line.is_empty() {
                anyhow::bail!("the password file {} is empty", path.display());
            }
            return Ok(Some(line));
        }
        match &self.password {
            Some(p) if p.is_empty() => anyhow::bail!("the password is empty"),
            Some(p) => Ok(Some(zeroize::Zeroizing::new(p.clone()))),
            None => Ok(None),
        }
    }
}

impl AudioArgs {
    pub fn params(&self) -> anyhow::Result<AudioParams> {
        let params = AudioParams {
            frame: FrameDuration::from_millis(self.frame_ms).ok_or_else(|| anyhow::anyhow!("bad frame size"))?,
            bitrate: self.bitrate,
            complexity: self.complexity,
            fec: !self.no_fec,
            dtx: !self.no_dtx,
            dred: !self.no_dred,
        };
        params.validate().map_err(anyhow::Error::msg)?;
        Ok(params)
    }

    /// Whether to denoise `input`: as asked, or by default a microphone only (a file
    /// or a tone is what the user chose to send, and RNNoise would change it).
    pub fn denoise_for(&self, input: &InputSpec) -> bool {
        if self.denoise || self.no_denoise {
            return self.denoise;
        }
        matches!(input, InputSpec::Device(_))
    }

    /// The voice activation threshold, if voice activation is on.
    pub fn voice_gate(&self) -> Option<f32> {
        self.vad.then_some(self.vad_threshold)
    }

    pub fn jitter(&self) -> JitterConfig {
        JitterConfig {
            max_delay: std::time::Duration::from_millis(self.max_delay_ms),
            decoder_complexity: self.decoder_complexity,
            ..Default::default()
        }
    }
}

/// A simulated bad network: what `viz demo` and `viz netsim` do to each datagram.
#[derive(Debug, Args, Clone)]
pub struct ImpairmentArgs {
    /// Packet loss in percent (each direction).
    #[arg(long, value_name = "PCT", default_value_t = 0.0)]
    pub loss: f64,

    /// Mean length of loss bursts in packets (1 = independent losses).
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub burst: f64,

    /// Jitter: each packet is delayed by a random 0..=MS extra (reorders when larger
    /// than the packet interval).
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    pub jitter_ms: f64,

    /// Fixed one-way network delay in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    pub delay_ms: f64,

    /// Seed of the impairments (the same seed drops the same packets).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl ImpairmentArgs {
    pub fn impairment(&self) -> anyhow::Result<viz_netsim::Impairment> {
        if !(0.0..=100.0).contains(&self.loss) {
            anyhow::bail!("--loss must be a percentage between 0 and 100");
        }
        let ms_ok = |ms: f64| (0.0..=5000.0).contains(&ms);
        if !ms_ok(self.jitter_ms) || !ms_ok(self.delay_ms) {
            anyhow::bail!("--jitter-ms and --delay-ms must be between 0 and 5000");
        }
        let impairment = viz_netsim::Impairment {
            loss: self.loss / 100.0,
            burst: self.burst,
            delay: std::time::Duration::from_secs_f64(self.delay_ms / 1000.0),
            jitter: std::time::Duration::from_secs_f64(self.jitter_ms / 1000.0),
            duplicate: 0.0,
        };
        impairment.validate().map_err(|e| anyhow::anyhow!("--burst: {e}"))?;
        Ok(impairment)
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Example, a call over a lossy, jittery path on one machine:\n  \
    viz host --port 9000\n  \
    viz netsim --listen 127.0.0.1:9100 --to 127.0.0.1:9000 --loss 10 --jitter-ms 20\n  \
    viz join 127.0.0.1:9100")]
pub struct NetsimArgs {
    /// Where clients send to.
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,

    /// The server every datagram is relayed to (answers go back to the client that
    /// sent last).
    #[arg(long, value_name = "ADDR")]
    pub to: std::net::SocketAddr,

    #[command(flatten)]
    pub impairment: ImpairmentArgs,

    /// Stop after this many seconds (default: at Ctrl-C); prints what was dropped.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub impairment: ImpairmentArgs,

    /// Seconds of audio each way.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,

    /// What both sides say instead of generated speech-like audio: FILE.wav, silence
    /// (to measure DTX) or tone[:HZ] (its delay is ambiguous to one period).
    #[arg(short, long, value_name = "SOURCE")]
    pub input: Option<String>,

    /// Where to write what each side heard.
    #[arg(long, value_name = "DIR", default_value = "viz-demo-out")]
    pub out_dir: PathBuf,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Two joiners talk through a room server (`viz serve`) instead of a direct call.
    #[arg(long)]
    pub room: bool,

    /// With --room: always decode, mix and re-encode (no pass-through).
    #[arg(long, requires = "room")]
    pub no_pass_through: bool,

    #[command(flatten)]
    pub audio: AudioArgs,
}

/// Rewrites the original Viz forms: `-s PORT` → `host --port PORT`, `-c ADDR` → `join
/// ADDR`, keeping every other argument in place.
pub fn rewrite_legacy(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut iter = args.into_iter();
    if let Some(bin) = iter.next() {
        out.push(bin);
    }
    let rest: Vec<String> = iter.collect();
    let is_command = |a: &str| {
        matches!(a, "host" | "join" | "send" | "devices" | "demo" | "serve" | "admin" | "loadtest" | "bench" | "help")
    };
    let first_positional = rest.iter().position(|a| !a.starts_with('-'));
    let legacy = rest.iter().position(|a| {
        matches!(a.as_str(), "-s" | "-c" | "--server" | "--client") || a.starts_with("-s=") || a.starts_with("-c=")
    });
    match legacy {
        Some(i) if first_positional.is_none_or(|p| !is_command(&rest[p]) || p > i) => {
            let flag = &rest[i];
            let (cmd, inline) = match flag.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (flag.clone(), None),
            };
            let host = matches!(cmd.as_str(), "-s" | "--server");
            out.extend(rest[..i].iter().cloned());
            out.push(if host { "host".into() } else { "join".into() });
            let value = inline.or_else(|| rest.get(i + 1).cloned());
            let skip = if flag.contains('=') { 1 } else { 2 };
            if let Some(v) = value {
                if host {
                    out.push("--port".into());
                }
                out.push(v);
            }
            out.extend(rest.into_iter().skip(i + skip));
        }
        _ => out.extend(rest),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn legacy_forms_are_rewritten() {
        assert_eq!(rewrite_legacy(v("viz -s 9000")), v("viz host --port 9000"));
        assert_eq!(rewrite_legacy(v("viz -d -s 9000 --name bob")), v("viz -d host --port 9000 --name bob"));
        assert_eq!(rewrite_legacy(v("viz -c 1.2.3.4:9000")), v("viz join 1.2.3.4:9000"));
        assert_eq!(rewrite_legacy(v("viz -c=h:1 -d")), v("viz join h:1 -d"));
        assert_eq!(rewrite_legacy(v("viz join h:1")), v("viz join h:1"));
        // `-s` is not rewritten inside a subcommand that already appears first.
        assert_eq!(rewrite_legacy(v("viz demo --seed 3")), v("viz demo --seed 3"));
        assert_eq!(rewrite_legacy(v("viz host -p 1")), v("viz host -p 1"));
    }

    #[test]
    fn parses_common_invocations() {
        let cli =
            Cli::try_parse_from(rewrite_legacy(v("viz -s 9000 --no-fec --frame-ms 10 --input tone:300 --output null")))
                .unwrap();
        let Command::Host(h) = cli.command else { panic!() };
        assert_eq!(h.port, 9000);
        let p = h.common.audio.params().unwrap();
        assert!(!p.fec && p.dtx);
        assert_eq!(p.frame, FrameDuration::Ms10);
        assert!(Cli::try_parse_from(v("viz join h --frame-ms 25")).is_err());
        assert!(Cli::try_parse_from(v("viz join h --batch 0")).is_err());
        assert!(Cli::try_parse_from(v("viz join h --max-delay-ms 10")).is_err());
        assert!(Cli::try_parse_from(v("viz host --bitrate 100")).is_ok());
        let cli = Cli::try_parse_from(v("viz join h --bitrate 100")).unwrap();
        let Command::Join(j) = cli.command else { panic!() };
        assert!(j.common.audio.params().is_err());
        let cli = Cli::try_parse_from(v("viz join h --no-dtx --dtx")).unwrap();
        let Command::Join(j) = cli.command else { panic!() };
        assert!(j.common.audio.params().unwrap().dtx);
    }
}
