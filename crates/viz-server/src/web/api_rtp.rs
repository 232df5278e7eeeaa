//! REST endpoints for plain RTP and recordings (admin only; see docs/api.md):
//!
//! * `GET /api/rtp`: the input (port, counters), every sender seen (pending or
//!   accepted, with its address), the forwards.
//! * `PUT /api/rtp/senders/{ssrc}`: accept a sender (or allow one before it sends),
//!   body `{"address": "IP[:PORT]" | "*", "name": "..."}`, both optional.
//! * `DELETE /api/rtp/senders/{ssrc}`: stop mixing it (it is pending again).
//! * `GET|POST /api/rtp/forwards`, `DELETE /api/rtp/forwards/{id}`,
//!   `GET /api/rtp/forwards/{id}/sdp`: plain RTP out, and its SDP.
//! * `GET /api/recordings`: the files being written.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::WebState;
use super::api::{Admin, ApiError, ask, done, unexpected};
use super::messages::{ApiReply, ApiRequest};
use crate::room::rtp_allow::parse_ssrc;

fn ssrc_from(path: Result<Path<String>, PathRejection>) -> Result<u32, ApiError> {
    let Path(text) = path.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    parse_ssrc(&text).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
}

fn forward_id(path: Result<Path<u32>, PathRejection>) -> Result<u32, ApiError> {
    let Path(id) =
        path.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad forward id: {}", e.body_text())))?;
    Ok(id)
}

pub(crate) async fn get_rtp(_: Admin, State(s): State<WebState>) -> Result<Response, ApiError> {
    match ask(&s, ApiRequest::Rtp).await? {
        ApiReply::Rtp(r) => Ok(Json(r).into_response()),
        _ => Err(unexpected()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SenderPut {
    /// "IP", "IP:PORT", "[IPv6]:PORT" or "*"; missing or "": where it was seen.
    address: Option<String>,
    name: Option<String>,
}

pub(crate) async fn put_sender(
    _: Admin,
    State(s): State<WebState>,
    ssrc: Result<Path<String>, PathRejection>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let ssrc = ssrc_from(ssrc)?;
    let put = optional_json::<SenderPut>(&headers, &body)?;
    match ask(&s, ApiRequest::RtpAllow { ssrc, from: put.address, name: put.name }).await? {
        ApiReply::Sender(r) => Ok(Json(r?).into_response()),
        _ => Err(unexpected()),
    }
}

/// A JSON body that may be left out entirely (then the defaults apply); when given,
/// the same rules as everywhere: JSON content type (415), well-formed (400), fields
/// of the right names and types (422).
fn optional_json<T: Default + serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let status = match e.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, format!("bad JSON body: {e}"))
    })
}

pub(crate) async fn delete_sender(
    _: Admin,
    State(s): State<WebState>,
    ssrc: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let ssrc = ssrc_from(ssrc)?;
    let message = done(ask(&s, ApiRequest::RtpRevoke(ssrc)).await?)?;
    Ok(Json(json!({ "message": message })).into_response())
}

pub(crate) async fn list_forwards(_: Admin, State(s): State<WebState>) -> Result<Response, ApiError> {
    match ask(&s, ApiRequest::Rtp).await? {
        ApiReply::Rtp(r) => Ok(Json(r.forwards).into_response()),
        _ => Err(unexpected()),
    }
}

/// `source`: "mix" (the default) or a participant id.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ForwardSource {
    Id(u32),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardPost {
    /// HOST:PORT to send to.
    target: String,
    source: Option<ForwardSource>,
    /// Taken wide so an out-of-range value gets a message naming the range.
    payload_type: Option<i64>,
}

pub(crate) async fn post_forward(
    _: Admin,
    State(s): State<WebState>,
    body: Result<Json<ForwardPost>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(post) = body?;
    let source = match post.source {
        None => None,
        Some(ForwardSource::Id(id)) => Some(id),
        Some(ForwardSource::Name(n)) if n == "mix" => None,
        Some(ForwardSource::Name(n)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("source '{n}' is neither \"mix\" nor a participant id"),
            ));
        }
    };
    let payload_type = match post.payload_type {
        None => None,
        Some(pt) => Some(u8::try_from(pt).ok().filter(|p| (96..=127).contains(p)).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("payload_type {pt} is outside the dynamic range 96..=127"),
            )
        })?),
    };
    let target = tokio::net::lookup_host(&post.target).await.ok().and_then(|mut a| a.next()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("target '{}' is not HOST:PORT that resolves", post.target),
        )
    })?;
    match ask(&s, ApiRequest::AddForward { target, source, payload_type }).await? {
        ApiReply::Forward(r) => Ok((StatusCode::CREATED, Json(r?)).into_response()),
        _ => Err(unexpected()),
    }
}

pub(crate) async fn delete_forward(
    _: Admin,
    State(s): State<WebState>,
    id: Result<Path<u32>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = forward_id(id)?;
    let message = done(ask(&s, ApiRequest::RemoveForward(id)).await?)?;
    Ok(Json(json!({ "message": message })).into_response())
}

pub(crate) async fn get_sdp(
    _: Admin,
    State(s): State<WebState>,
    id: Result<Path<u32>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = forward_id(id)?;
    match ask(&s, ApiRequest::ForwardSdp(id)).await? {
        ApiReply::Sdp(Some(sdp)) => Ok(([(header::CONTENT_TYPE, "application/sdp")], sdp).into_response()),
        ApiReply::Sdp(None) => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no RTP forward with id {id}"))),
        _ => Err(unexpected()),
    }
}

pub(crate) async fn get_recordings(_: Admin, State(s): State<WebState>) -> Result<Response, ApiError> {
    match ask(&s, ApiRequest::Recordings).await? {
        ApiReply::Recordings(r) => Ok(Json(r).into_response()),
        _ => Err(unexpected()),
    }
}
