//! The HTTP surface on one listener: relay, NIP-11, landing page, git smart HTTP.
//!
//! `/` serves three things on one URL, chosen from the request: a websocket upgrade
//! goes to the relay, `Accept: application/nostr+json` gets the NIP-11 document, and
//! anything else the landing page. `/<npub>/…` is git. Every response carries CORS
//! headers and `OPTIONS` is answered with 204 on any path.

mod base_path;
mod cors;
mod nip05;
mod nip11;

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

pub use base_path::under as under_base_path;
pub use cors::{ALLOW_HEADERS, ALLOW_METHODS};
pub use nip05::routes as nip05_routes;
pub use nip11::{Nip11Document, SUPPORTED_GRASPS, SUPPORTED_NIPS};

use crate::git_http::{self, GitHttp};
use crate::relay::Relay;

/// The prepared responses and services the router dispatches to.
#[derive(Clone)]
pub struct AppState {
    relay: Arc<Relay>,
    git: Arc<GitHttp>,
    nip11_json: Arc<str>,
    landing_html: Arc<str>,
}

impl AppState {
    /// Everything the routes need. The NIP-11 document and landing page are rendered
    /// once here: they only change with the configuration.
    pub fn new(
        relay: Arc<Relay>,
        git: Arc<GitHttp>,
        nip11: &Nip11Document,
        landing_html: String,
    ) -> Self {
        Self {
            relay,
            git,
            nip11_json: nip11.to_json().into(),
            landing_html: landing_html.into(),
        }
    }
}

impl FromRef<AppState> for Arc<GitHttp> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.git)
    }
}

/// The complete router; `extra` routes (metrics, operator pages) get the same CORS
/// treatment and 404 fallback as the rest.
pub fn router(state: AppState, extra: Router) -> Router {
    let mut routes = Router::new().route("/", get(root));
    if state.git.prs().is_some() {
        // GRASP-06, before the standard endpoint; off, `/prs/…` is no npub there: 404.
        routes = routes.route(
            "/prs/{npub}/{*rest}",
            get(git_http::prs::get).post(git_http::prs::post),
        );
    }
    routes
        .route("/{npub}/{*rest}", get(git_http::get).post(git_http::post))
        .with_state(state)
        .merge(extra)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(cors::cors))
}

fn wants_nip11(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("application/nostr+json"))
}

async fn root(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return state.relay.upgrade(upgrade);
    }
    if wants_nip11(&headers) {
        let mut response = state.nip11_json.to_string().into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/nostr+json"),
        );
        return response;
    }
    Html(state.landing_html.to_string()).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

#[cfg(test)]
mod tests;
