//! `/.well-known/nostr.json`: the relay owner's NIP-05 identity.
//!
//! With `--relay-owner` set, the document maps `_` (the domain's root identifier, so
//! `_@host` and plain `host` name the owner) and the relay name (when `--relay-name` is a
//! valid NIP-05 name: `a-z0-9-_.`, compared without case) to the owner's key, and lists
//! this relay under `relays`. `?name=` narrows it to that name (an unknown name gets an
//! empty `names`), as NIP-05 clients ask. Without an owner the route does not exist.
//! The CORS middleware gives it `Access-Control-Allow-Origin: *`, which NIP-05 requires
//! for web clients.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::config::Config;

/// The route, or an empty router when no owner is configured.
pub fn routes(config: &Config) -> Router {
    let Some(owner) = config.relay_owner else {
        return Router::new();
    };
    let identity = Arc::new(Identity {
        names: names(&config.relay_name),
        owner: owner.to_hex(),
        relay: config.relay_url(),
    });
    Router::new()
        .route("/.well-known/nostr.json", get(nostr_json))
        .with_state(identity)
}

/// Who the document names.
#[derive(Debug)]
struct Identity {
    /// Lower-case names mapped to the owner.
    names: Vec<String>,
    /// The owner's hex key.
    owner: String,
    /// This relay's ws(s) URL.
    relay: String,
}

/// `_`, and the relay name lower-cased when NIP-05 allows it as a name.
fn names(relay_name: &str) -> Vec<String> {
    let mut names = vec!["_".to_owned()];
    let lower = relay_name.to_ascii_lowercase();
    if is_nip05_name(&lower) && lower != "_" {
        names.push(lower);
    }
    names
}

/// NIP-05 local parts: `a-z0-9-_.`, not empty.
fn is_nip05_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

async fn nostr_json(
    State(identity): State<Arc<Identity>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let asked = query.get("name").map(|n| n.to_ascii_lowercase());
    let mut names = Map::new();
    for name in &identity.names {
        if asked.as_ref().is_none_or(|a| a == name) {
            names.insert(name.clone(), Value::String(identity.owner.clone()));
        }
    }
    let relays = if names.is_empty() {
        json!({})
    } else {
        json!({ identity.owner.clone(): [identity.relay.clone()] })
    };
    let mut response = json!({ "names": names, "relays": relays })
        .to_string()
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_relay_names_become_nip05_names() {
        assert_eq!(names("graspd"), ["_", "graspd"]);
        assert_eq!(names("Git.Example"), ["_", "git.example"]);
        assert_eq!(names("My Relay"), ["_"]);
        assert_eq!(names("_"), ["_"]);
        assert_eq!(names("ü"), ["_"]);
    }
}
