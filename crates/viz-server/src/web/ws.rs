//! A browser participant's WebSocket: JSON control in text frames, media packets in
//! binary frames (one packet per frame, the native payload format). This task only
//! parses and relays; the room decides everything.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use viz_proto::{MediaFrame, OwnedMedia};

use super::WebState;
use super::client::{client_addr, origin_allowed};
use super::messages::{BrowserFrame, BrowserIn, BrowserOut, MAX_BROWSER_TEXT, WebEvent};

/// Frames queued towards one browser before media is dropped (about 2 s of audio).
const BROWSER_QUEUE: usize = 128;
/// A page sends at least a report a second; silence this long means it is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest WebSocket message accepted: a media packet or a control message.
const MAX_MESSAGE: usize =
    if viz_proto::MAX_DATAGRAM > MAX_BROWSER_TEXT { viz_proto::MAX_DATAGRAM } else { MAX_BROWSER_TEXT };

pub(super) async fn upgrade(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let access = &state.access;
    let peer = client_addr(&headers, peer, access.trust_proxy);
    if !origin_allowed(&headers, &access.allowed_origins, access.trust_proxy) {
        let origin = headers.get(ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("?");
        tracing::info!(%peer, origin, "WebSocket from another site's page refused");
        let text = format!(
            "a page from {origin} may not join this room (start the server with --allow-origin {origin} to let it)"
        );
        return (StatusCode::FORBIDDEN, text).into_response();
    }
    ws.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE).on_upgrade(move |socket| run(socket, peer, state))
}

fn bye(reason: &str) -> BrowserFrame {
    let msg = BrowserOut::Bye { reason: reason.to_owned(), reconnect: false };
    BrowserFrame::Close(serde_json::to_string(&msg).unwrap_or_default())
}

async fn run(socket: WebSocket, peer: SocketAddr, state: WebState) {
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(BROWSER_QUEUE);
    if state.events.send(WebEvent::BrowserOpen { conn, peer, tx: tx.clone() }).await.is_err() {
        return;
    }
    let (mut sink, mut stream) = socket.split();
    let writer = async move {
        while let Some(frame) = rx.recv().await {
            let sent = match frame {
                BrowserFrame::Text(t) => sink.send(Message::Text(t.into())).await,
                BrowserFrame::Binary(b) => sink.send(Message::Binary(b.into())).await,
                BrowserFrame::Close(t) => {
                    let _ = sink.send(Message::Text(t.into())).await;
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
    };
    let events = state.events.clone();
    let reader = async move {
        loop {
            let msg = match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(_)) | None) => break,
                Err(_) => {
                    let _ = tx.try_send(bye("nothing heard from the page for 10 s"));
                    break;
                }
            };
            match msg {
                Message::Binary(b) => match MediaFrame::parse(&b) {
                    // Media is dropped rather than queued when the room falls behind.
                    Ok(f) => {
                        let media = OwnedMedia::from_frame(&f);
                        let _ = events.try_send(WebEvent::BrowserMedia { conn, at: Instant::now(), media });
                    }
                    Err(e) => tracing::debug!(%peer, reason = e.as_str(), "browser media dropped"),
                },
                Message::Text(t) => match BrowserIn::parse(&t) {
                    Ok(msg) => {
                        if events.send(WebEvent::BrowserControl { conn, msg }).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::info!(%peer, "browser closed: {e}");
                        let _ = tx.try_send(bye(&e));
                        break;
                    }
                },
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    };
    let mut writer = tokio::spawn(writer);
    tokio::select! {
        _ = reader => {
            // Let a goodbye already queued reach the page before the socket goes.
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
        }
        _ = &mut writer => {}
    }
    writer.abort();
    let _ = state.events.send(WebEvent::BrowserClosed { conn }).await;
}
