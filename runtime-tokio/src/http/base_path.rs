//! Serving every route under the public URL's path (`--public-url https://host/git/`),
//! for operators who share a host with other sites behind one reverse proxy.
//!
//! The prefix is stripped before routing rather than nesting the router, so the git
//! routes, which read the raw request path, the relay at `/` and the operator routes
//! see the same paths as at the root; `/git` and `/git/` both reach `/`. A request
//! outside the prefix is a 404, with the CORS headers every response carries.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use axum::http::uri::PathAndQuery;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

/// `app` served under `prefix` (`/git`, no trailing slash); `app` itself when `prefix`
/// is empty.
pub fn under(prefix: &str, app: Router) -> Router {
    if prefix.is_empty() {
        return app;
    }
    let prefix: Arc<str> = prefix.into();
    let service = tower::service_fn(move |mut request: Request| {
        let app = app.clone();
        let prefix = Arc::clone(&prefix);
        async move {
            let Some(uri) = strip(&prefix, request.uri()) else {
                return Ok::<Response, Infallible>(super::not_found().await);
            };
            *request.uri_mut() = uri;
            Ok(app.oneshot(request).await.into_response())
        }
    });
    Router::new()
        .fallback_service(service)
        .layer(axum::middleware::from_fn(super::cors::cors))
}

/// The request URI with `prefix` taken off its path, or `None` outside the prefix.
fn strip(prefix: &str, uri: &Uri) -> Option<Uri> {
    let rest = uri.path().strip_prefix(prefix)?;
    let path = match rest {
        "" => "/",
        rest if rest.starts_with('/') => rest,
        // `/gitfoo` is not under `/git`.
        _ => return None,
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(uri: &str) -> Option<String> {
        strip("/git", &uri.parse().expect("uri")).map(|u| u.to_string())
    }

    #[test]
    fn only_paths_under_the_prefix_pass() {
        assert_eq!(stripped("/git").as_deref(), Some("/"));
        assert_eq!(stripped("/git/").as_deref(), Some("/"));
        assert_eq!(
            stripped("/git/npub1x/r.git/info/refs?service=git-upload-pack").as_deref(),
            Some("/npub1x/r.git/info/refs?service=git-upload-pack")
        );
        assert_eq!(stripped("/git/metrics").as_deref(), Some("/metrics"));
        assert_eq!(stripped("/gitx"), None);
        assert_eq!(stripped("/"), None);
        assert_eq!(stripped("/metrics"), None);
        assert_eq!(stripped("/other/git/"), None);
    }
}
