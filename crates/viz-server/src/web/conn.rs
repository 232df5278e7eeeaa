//! Bounds on the web port's connections: how many, from where, and how long a client
//! may take to send its request headers (against slowloris: connections that trickle a
//! header, or nothing, to hold a descriptor each).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::limits::{ConnectionSlot, ConnectionTable};

/// Connections open at once on the web port.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections from one address: a browser opens six or so, an admin page a few more.
pub const MAX_PER_ADDRESS: usize = 32;
/// A request's headers must arrive within this, and a connection waiting for its next
/// request closes after it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake must finish within this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Wraps an acceptor (plain or TLS): refuses a connection over the limits at once,
/// before any TLS work, and counts the ones it lets in until they close.
#[derive(Clone)]
pub struct LimitedAcceptor<A> {
    inner: A,
    table: Arc<ConnectionTable>,
}

impl<A> LimitedAcceptor<A> {
    pub fn new(inner: A, table: Arc<ConnectionTable>) -> Self {
        Self { inner, table }
    }
}

impl<A, S> Accept<TcpStream, S> for LimitedAcceptor<A>
where
    A: Accept<TcpStream, S> + Send + Sync,
    A::Future: Send + 'static,
    A::Stream: Unpin + Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Counted<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let peer = stream.peer_addr().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let slot = match ConnectionSlot::take(&self.table, peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(%peer, "web connection refused: {why}");
                return Box::pin(std::future::ready(Err(io::Error::other(why))));
            }
        };
        let _ = stream.set_nodelay(true);
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            Ok((Counted { inner: stream, _slot: slot }, service))
        })
    }
}

/// A stream that holds its connection's place in the table while it lives.
pub struct Counted<S> {
    inner: S,
    _slot: ConnectionSlot,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
