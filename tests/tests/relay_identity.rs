//! The relay's identity: `/.well-known/nostr.json` (NIP-05) naming `--relay-owner`
//! under `_` and the relay name, and NIP-11's `pubkey` and `icon`.

use grasp_tests::http;
use grasp_tests::nostr_sdk::prelude::{Keys, ToBech32};
use grasp_tests::server::{Graspd, Options};
use serde_json::{Value, json};

async fn nostr_json(server: &Graspd, query: &str) -> (u16, Option<String>, Value) {
    let url = format!("{}/.well-known/nostr.json{query}", server.base_url());
    let response = http::get(&url, &[]).await.expect("nostr.json");
    let cors = response
        .header("access-control-allow-origin")
        .map(str::to_owned);
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, cors, body)
}

#[tokio::test]
async fn nip05_and_nip11_name_the_relay_owner() {
    let owner = Keys::generate();
    let hex = owner.public_key().to_hex();
    let server = Graspd::start_with(
        Options::default()
            .flag(
                "--relay-owner",
                &owner.public_key().to_bech32().expect("npub"),
            )
            .flag("--relay-name", "Git-Relay")
            .flag("--relay-icon", "https://example.com/icon.png"),
    )
    .await;
    let relays = json!({ hex.clone(): [server.relay_url()] });

    let (status, cors, doc) = nostr_json(&server, "").await;
    assert_eq!(status, 200);
    assert_eq!(
        cors.as_deref(),
        Some("*"),
        "NIP-05 needs CORS for web clients"
    );
    assert_eq!(
        doc,
        json!({ "names": { "_": hex, "git-relay": hex }, "relays": relays })
    );
    for query in ["?name=_", "?name=git-relay", "?name=GIT-RELAY"] {
        let (status, _, doc) = nostr_json(&server, query).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(doc["relays"], relays, "{query}");
        assert_eq!(
            doc["names"].as_object().map(|m| m.len()),
            Some(1),
            "{query}"
        );
        assert!(
            doc["names"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| v == &hex)
        );
    }
    let (status, _, doc) = nostr_json(&server, "?name=bob").await;
    assert_eq!(status, 200);
    assert_eq!(doc, json!({ "names": {}, "relays": {} }), "an unknown name");

    let nip11 = http::get(
        &format!("{}/", server.base_url()),
        &[("accept", "application/nostr+json")],
    )
    .await
    .expect("NIP-11");
    let nip11: Value = serde_json::from_slice(&nip11.body).expect("json");
    assert_eq!(nip11["pubkey"], hex);
    assert_eq!(nip11["icon"], "https://example.com/icon.png");
    assert_eq!(nip11["name"], "Git-Relay");
}

#[tokio::test]
async fn without_an_owner_there_is_no_nip05_document() {
    let server = Graspd::start().await;
    let (status, cors, _) = nostr_json(&server, "").await;
    assert_eq!(status, 404);
    assert_eq!(cors.as_deref(), Some("*"));
    // A relay name that NIP-05 does not allow as a name is left out, not mangled.
    let owner = Keys::generate();
    let server = Graspd::start_with(
        Options::default()
            .flag("--relay-owner", &owner.public_key().to_hex())
            .flag("--relay-name", "My Relay"),
    )
    .await;
    let (_, _, doc) = nostr_json(&server, "").await;
    assert_eq!(doc["names"], json!({ "_": owner.public_key().to_hex() }));
}

#[tokio::test]
async fn bad_identity_flags_are_refused_at_start() {
    for args in [
        &["--relay-icon", "ftp://example.com/icon.png"][..],
        &["--relay-icon", "not a url"],
        &["--relay-owner", "npub1nope"],
        &["--public-url", "https://example.com/git?x=1"],
    ] {
        let out = std::process::Command::new(grasp_tests::binary::graspd())
            .args(args)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "/nonexistent/never-created",
            ])
            .output()
            .expect("run graspd");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: a reason on stderr");
    }
}
