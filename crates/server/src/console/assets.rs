//! The console's pages, compiled into the binary (no CDN, works offline): `console/` beside
//! this crate's `src/`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::aws::error::ApiError;

const INDEX: &str = include_str!("../../console/index.html");
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../console/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/app.js"),
    ),
    (
        "sigv4.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/sigv4.js"),
    ),
];

/// Bytes of the console's assets together (docs/console.md states it).
pub fn total_size() -> usize {
    INDEX.len() + ASSETS.iter().map(|(_, _, a)| a.len()).sum::<usize>()
}

/// Scripts and styles from this origin only; the signaling WebSocket and TURN are the only
/// other connections a page makes.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
     connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => page(ct, body),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("The console has no asset {name:?}."),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_assets_are_small() {
        // docs/console.md states the size; keep it honest.
        assert!(super::total_size() < 96 * 1024, "{}", super::total_size());
    }
}
