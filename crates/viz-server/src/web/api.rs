//! The REST API (JSON): room information, participants, the admin operations of the
//! rooms issue (volume, mute, rename, kick), room settings and the statistics history.
//! Admin calls need `Authorization: Bearer <admin token>`. Documented in docs/api.md.
//!
//! Every client mistake is a 4xx with `{"error": "..."}`: malformed JSON 400, wrong
//! content type 415, a field of the wrong type or out of range 422, unknown
//! participant 404, missing or wrong token 401, too many wrong tokens 429. Only a
//! failure of the server itself (the settings file cannot be written) is a 500.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;
use viz_proto::AdminOp;
use viz_proto::control::MAX_GAIN_PERCENT;

use super::WebState;
use super::client::client_addr;
use super::messages::{AdminError, ApiReply, ApiRequest, RoomPatch, WebEvent};
use crate::room::admin::Change;
use crate::room::browser::constant_time_eq;

/// How long a request waits for the room's answer.
const ROOM_TIMEOUT: Duration = Duration::from_secs(5);

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/room", get(get_room).patch(patch_room))
        .route("/participants", get(list_participants))
        .route("/participants/{id}", get(get_participant).patch(patch_participant).delete(kick_participant))
        .route("/stats", get(get_stats))
        .route("/rtp", get(super::api_rtp::get_rtp))
        .route("/rtp/senders/{ssrc}", put(super::api_rtp::put_sender).delete(super::api_rtp::delete_sender))
        .route("/rtp/forwards", get(super::api_rtp::list_forwards).post(super::api_rtp::post_forward))
        .route("/rtp/forwards/{id}", axum::routing::delete(super::api_rtp::delete_forward))
        .route("/rtp/forwards/{id}/sdp", get(super::api_rtp::get_sdp))
        .route("/recordings", get(super::api_rtp::get_recordings))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API endpoint (see docs/api.md)") })
}

/// A client or server error as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::new(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("bad participant id: {}", r.body_text()))
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let status = match e {
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
        };
        Self::new(status, e.to_string())
    }
}

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequestParts<WebState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| client_addr(&parts.headers, c.0, state.access.trust_proxy).ip().to_canonical());
        let now = Instant::now();
        let blocked = ip.is_some_and(|ip| state.admin_limiter.is_blocked(ip, now));
        if blocked {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many wrong admin tokens from this address; try again in a minute",
            ));
        }
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "admin calls need the header 'Authorization: Bearer <admin token>'",
                )
            })?;
        if constant_time_eq(given.as_bytes(), state.admin_token.as_bytes()) {
            return Ok(Admin);
        }
        if let Some(ip) = ip {
            state.admin_limiter.failed(ip, now);
        }
        tracing::warn!(?ip, "bad admin token (web)");
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong admin token"))
    }
}

/// Asks the room and waits for its answer.
pub(crate) async fn ask(state: &WebState, request: ApiRequest) -> Result<ApiReply, ApiError> {
    let (reply, answer) = oneshot::channel();
    let gone = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the room is shutting down");
    state.events.send(WebEvent::Api { request, reply }).await.map_err(|_| gone())?;
    match tokio::time::timeout(ROOM_TIMEOUT, answer).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(_)) => Err(gone()),
        Err(_) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the room did not answer in time")),
    }
}

pub(crate) fn unexpected() -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the room gave an unexpected answer")
}

async fn get_room(State(s): State<WebState>) -> Result<Response, ApiError> {
    match ask(&s, ApiRequest::Room).await? {
        ApiReply::Room(r) => Ok(Json(r).into_response()),
        _ => Err(unexpected()),
    }
}

async fn patch_room(
    _: Admin,
    State(s): State<WebState>,
    body: Result<Json<RoomPatch>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(patch) = body?;
    done(ask(&s, ApiRequest::SetRoom(patch)).await?)?;
    get_room(State(s)).await
}

async fn list_participants(_: Admin, State(s): State<WebState>) -> Result<Response, ApiError> {
    match ask(&s, ApiRequest::Participants).await? {
        ApiReply::Participants(p) => Ok(Json(p).into_response()),
        _ => Err(unexpected()),
    }
}

async fn get_participant(
    _: Admin,
    State(s): State<WebState>,
    id: Result<Path<u32>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    participant(&s, id).await
}

async fn participant(s: &WebState, id: u32) -> Result<Response, ApiError> {
    match ask(s, ApiRequest::Participant(id)).await? {
        ApiReply::Participant(Some(p)) => Ok(Json(p).into_response()),
        ApiReply::Participant(None) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("no participant with id {id}")))
        }
        _ => Err(unexpected()),
    }
}

/// The changes a PATCH may make; all optional, made together or not at all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantPatch {
    /// Taken as a wide integer so an out-of-range volume gets a message naming the range.
    gain_percent: Option<i64>,
    muted: Option<bool>,
    name: Option<String>,
}

async fn patch_participant(
    _: Admin,
    State(s): State<WebState>,
    id: Result<Path<u32>, PathRejection>,
    body: Result<Json<ParticipantPatch>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let Json(patch) = body?;
    let gain_percent = match patch.gain_percent {
        Some(g) => Some(u16::try_from(g).ok().filter(|p| *p <= MAX_GAIN_PERCENT).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("gain_percent {g} is outside 0..={MAX_GAIN_PERCENT}"),
            )
        })?),
        None => None,
    };
    // One request: the room checks all of it before changing any of it.
    let change = Change { gain_percent, muted: patch.muted, name: patch.name };
    done(ask(&s, ApiRequest::ChangeParticipant { target: id, change }).await?)?;
    participant(&s, id).await
}

async fn kick_participant(
    _: Admin,
    State(s): State<WebState>,
    id: Result<Path<u32>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let message = done(ask(&s, ApiRequest::Admin(AdminOp::Kick { target: id })).await?)?;
    Ok(Json(json!({ "message": message })).into_response())
}

async fn get_stats(_: Admin, State(s): State<WebState>) -> Result<Response, ApiError> {
    match ask(&s, ApiRequest::Stats).await? {
        ApiReply::Stats(st) => Ok(Json(st).into_response()),
        _ => Err(unexpected()),
    }
}

pub(crate) fn done(reply: ApiReply) -> Result<String, ApiError> {
    match reply {
        ApiReply::Done(r) => r.map_err(ApiError::from),
        _ => Err(unexpected()),
    }
}
