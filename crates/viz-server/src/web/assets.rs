//! The web page's files, compiled into the binary from the workspace's `web/`
//! directory: nothing to install beside `viz`.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::WebState;

/// (name, content type, bytes)
const FILES: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../../../web/app.css")),
    ("viz.js", "text/javascript; charset=utf-8", include_bytes!("../../../../web/viz.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_bytes!("../../../../web/admin.js")),
    ("admin-rtp.js", "text/javascript; charset=utf-8", include_bytes!("../../../../web/admin-rtp.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_bytes!("../../../../web/dom.js")),
    ("worklets.js", "text/javascript; charset=utf-8", include_bytes!("../../../../web/worklets.js")),
    ("codec.js", "text/javascript; charset=utf-8", include_bytes!("../../../../web/codec.js")),
    ("opus.wasm", "application/wasm", include_bytes!("../../../../web/vendor/opus.wasm")),
    ("icon.svg", "image/svg+xml", include_bytes!("../../../../web/icon.svg")),
];

const INDEX: &str = include_str!("../../../../web/index.html");
const ADMIN: &str = include_str!("../../../../web/admin.html");

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(|| async { page(INDEX) }))
        .route("/admin", get(|| async { page(ADMIN) }))
        .route("/assets/{name}", get(asset))
        // Browsers ask for it whatever the page says.
        .route("/favicon.ico", get(|| asset(Path("icon.svg".to_owned()))))
}

fn page(html: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], html).into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
