//! The room's HTTP side (axum): the web page and admin page embedded in the binary
//! ([`assets`]), the browser participant's WebSocket ([`ws`]), the REST API ([`api`])
//! and Prometheus `/metrics`, over plain HTTP or HTTPS ([`tls`]).
//!
//! Handlers never touch room state: they send a [`messages::WebEvent`] to the room's
//! task and await its answer, so the REST API runs exactly the operations the native
//! admin channel runs.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

pub mod api;
mod api_rtp;
pub mod assets;
pub mod client;
pub mod conn;
pub mod messages;
pub mod tls;
mod ws;

pub use tls::TlsMode;

use crate::limits::ConnectionTable;
use crate::room::RoomError;
use crate::room::metrics::{self, Snapshot};
use crate::room::ratelimit::SharedLimiter;
use messages::WebEvent;

/// Events queued from the HTTP side to the room before senders wait (control) or
/// drop (browser media).
pub const EVENT_QUEUE: usize = 4096;

#[derive(Clone)]
pub struct WebState {
    events: mpsc::Sender<WebEvent>,
    snapshot: Arc<Mutex<Snapshot>>,
    admin_token: Arc<Zeroizing<String>>,
    /// Bad admin tokens per address: the same limiter as the native admin channel's.
    admin_limiter: SharedLimiter,
    next_conn: Arc<AtomicU64>,
    access: Arc<WebAccess>,
}

/// What the HTTP port gives out beyond the page, and to whom.
#[derive(Debug, Clone, Default)]
pub struct WebAccess {
    /// `/metrics` without the admin token (`--public-metrics`).
    pub public_metrics: bool,
    /// Participants' names as metric labels (`--metrics-names`); numbers otherwise.
    pub metrics_names: bool,
    /// A tunnel or reverse proxy on this machine forwards visitors (`--trust-proxy`):
    /// their address is the one it names in `X-Forwarded-For` or `CF-Connecting-IP`,
    /// and loopback connections are limited only in total.
    pub trust_proxy: bool,
    /// Origins besides the page's own whose pages may open `/ws` (`--allow-origin`).
    pub allowed_origins: Vec<String>,
}

impl WebState {
    pub fn new(
        events: mpsc::Sender<WebEvent>,
        snapshot: Arc<Mutex<Snapshot>>,
        admin_token: Zeroizing<String>,
        admin_limiter: SharedLimiter,
        access: WebAccess,
    ) -> Self {
        Self {
            events,
            snapshot,
            admin_token: Arc::new(admin_token),
            admin_limiter,
            next_conn: Arc::new(AtomicU64::new(1)),
            access: Arc::new(access),
        }
    }
}

/// Where the web server listens.
#[derive(Debug, Clone)]
pub struct Served {
    pub addr: SocketAddr,
    /// The page's address as a user types it (`https://` when TLS is on).
    pub url: String,
    /// Plain HTTP reachable from other machines, where browsers refuse audio.
    pub needs_tls_for_lan: bool,
    pub cert_fingerprint: Option<String>,
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/ws", get(ws::upgrade))
        .merge(assets::routes())
        .nest("/api", api::routes())
        .with_state(state)
}

/// Prometheus figures; they tell who is in the room and when each talks, so they need
/// the admin token (a scraper's `authorization` setting) unless `--public-metrics`.
async fn metrics_text(admin: Result<api::Admin, api::ApiError>, State(s): State<WebState>) -> Response {
    if !s.access.public_metrics
        && let Err(refused) = admin
    {
        return refused.into_response();
    }
    let snap = s.snapshot.lock().map(|g| g.clone()).unwrap_or_default();
    let text = metrics::render(&snap, s.access.metrics_names);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Request headers within [`conn::HEADER_TIMEOUT`] (hyper has the timer, but only
/// uses it when given a clock).
fn with_header_timeout(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(conn::HEADER_TIMEOUT);
}

/// Binds `addr` and serves in the background; errors (port taken, bad certificate)
/// come back before anything is served. With `trust_proxy`, connections from loopback
/// are a local tunnel's on behalf of many visitors, limited only in total.
pub async fn serve(addr: SocketAddr, tls: &TlsMode, state: WebState, trust_proxy: bool) -> Result<Served, RoomError> {
    let http_err = |e: std::io::Error| RoomError::Http { addr, reason: e.to_string() };
    let loaded = tls::load(tls)?;
    let listener = std::net::TcpListener::bind(addr).map_err(http_err)?;
    listener.set_nonblocking(true).map_err(http_err)?;
    let bound = listener.local_addr().map_err(http_err)?;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // What to print: with HTTPS the address friends use; without, the local one (other
    // machines get no microphone over plain HTTP; see the README).
    let shown = match (bound.ip().is_unspecified(), loaded.is_some()) {
        (true, true) => crate::host::guess_local_ip()
            .map_or_else(|| format!("localhost:{}", bound.port()), |ip| SocketAddr::new(ip, bound.port()).to_string()),
        (true, false) => format!("localhost:{}", bound.port()),
        (false, _) => bound.to_string(),
    };
    let table = ConnectionTable::new(conn::MAX_CONNECTIONS, conn::MAX_PER_ADDRESS, trust_proxy);
    let served = match loaded {
        Some(l) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(l.config);
            let tls =
                axum_server::tls_rustls::RustlsAcceptor::new(config).handshake_timeout(conn::TLS_HANDSHAKE_TIMEOUT);
            let mut server =
                axum_server::from_tcp(listener).map_err(http_err)?.acceptor(conn::LimitedAcceptor::new(tls, table));
            with_header_timeout(server.http_builder());
            tokio::spawn(async move {
                if let Err(e) = server.serve(app).await {
                    tracing::error!("HTTPS server stopped: {e}");
                }
            });
            Served {
                addr: bound,
                url: format!("https://{shown}"),
                cert_fingerprint: Some(l.fingerprint),
                needs_tls_for_lan: false,
            }
        }
        None => {
            let mut server = axum_server::from_tcp(listener)
                .map_err(http_err)?
                .acceptor(conn::LimitedAcceptor::new(axum_server::accept::DefaultAcceptor, table));
            with_header_timeout(server.http_builder());
            tokio::spawn(async move {
                if let Err(e) = server.serve(app).await {
                    tracing::error!("HTTP server stopped: {e}");
                }
            });
            Served {
                addr: bound,
                url: format!("http://{shown}"),
                cert_fingerprint: None,
                needs_tls_for_lan: !bound.ip().is_loopback(),
            }
        }
    };
    tracing::debug!(addr = %served.addr, "web page at {}, API at {}/api, metrics at {}/metrics", served.url, served.url, served.url);
    Ok(served)
}
