//! CORS on every response, and `OPTIONS` preflights answered before routing.
//!
//! Browsers' git clients (isomorphic-git and the web clients built on it) fetch
//! `info/refs` and POST packs cross-origin and send `Git-Protocol`; nostr web clients
//! fetch NIP-11. Errors and 404s carry the headers too, or the browser hides the
//! status from the page.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Methods allowed cross-origin, and the `Allow` header of an `OPTIONS` answer (one
/// list, so the two never disagree).
pub const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Request headers allowed cross-origin: browser git clients send `Git-Protocol`,
/// `Content-Encoding` (gzipped request bodies) and `X-Requested-With`.
pub const ALLOW_HEADERS: &str =
    "Content-Type, Authorization, Git-Protocol, Accept, Content-Encoding, X-Requested-With";

fn add_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
}

/// Middleware: `OPTIONS` on any path → 204; every other response gets the headers.
pub async fn cors(request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        response.headers_mut().insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        // Set here, or the router adds the route's own `Allow` (`GET,HEAD`) on the way
        // out, which disagrees with `Access-Control-Allow-Methods`.
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW_METHODS));
        response
    } else {
        next.run(request).await
    };
    add_headers(response.headers_mut());
    response
}
