//! `--public-url http://127.0.0.1:<port>/git/`: every route is served under `/git` —
//! relay, NIP-11, git smart HTTP, pages, `/metrics`, the purgatory view, NIP-05 — and
//! nothing outside it.

use grasp_tests::fixture::World;
use grasp_tests::http;
use grasp_tests::nostr_sdk::prelude::{Filter, Keys, ToBech32};
use grasp_tests::relay::RelayClient;
use grasp_tests::server::{Graspd, Options, free_port};

async fn status(url: &str, headers: &[(&str, &str)]) -> u16 {
    http::get(url, headers).await.expect("a response").status
}

#[tokio::test]
async fn everything_is_served_under_the_base_path_and_nothing_outside() {
    let owner = Keys::generate();
    let port = free_port();
    let options = Options::default()
        .flag("--public-url", &format!("http://127.0.0.1:{port}/git/"))
        .flag(
            "--relay-owner",
            &owner.public_key().to_bech32().expect("npub"),
        );
    let server = Graspd::start_on(port, options).await;
    let base = server.base_url();
    assert_eq!(base, format!("http://127.0.0.1:{port}/git"));
    assert_eq!(server.relay_url(), format!("ws://127.0.0.1:{port}/git"));
    let relay = RelayClient::connect(&server.relay_url()).await;
    let world = World::with_relay(server, relay);

    // Announce, state, push and release, all under /git (the clone URL the engine
    // accepts carries the base path).
    let alice = Keys::generate();
    let repo = world.hosted(&alice, "based", &[]).await;
    assert!(
        repo.url.starts_with(&format!("{base}/npub1")),
        "{}",
        repo.url
    );
    let (out, dir) = world.git.clone_repo(&repo.url, &[]).await;
    out.expect_ok("clone under the base path");
    let head = world
        .git
        .run(
            Some(dir.path().join("repo").as_path()),
            &["rev-parse", "HEAD"],
        )
        .await;
    assert_eq!(head.stdout.trim(), repo.main);
    let found = world.relay.query_ids(Filter::new().id(repo.state.id)).await;
    assert_eq!(found, [repo.state.id], "REQ on ws://…/git");

    // Under /git: NIP-11 (with and without the slash), pages, operator routes, NIP-05.
    let nip11 = [("accept", "application/nostr+json")];
    for url in [base.clone(), format!("{base}/")] {
        let response = http::get(&url, &nip11).await.expect("NIP-11");
        assert_eq!(response.status, 200, "{url}");
        assert_eq!(
            response.header("content-type"),
            Some("application/nostr+json"),
            "{url}"
        );
        let doc: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
        let criteria = doc["repo_acceptance_criteria"].as_str().expect("criteria");
        assert!(criteria.contains(&format!("{base}/<npub>")), "{criteria}");
    }
    for path in [
        "/",
        "/metrics",
        "/purgatory",
        "/purgatory.json",
        "/.well-known/nostr.json",
    ] {
        assert_eq!(
            status(&format!("{base}{path}"), &[]).await,
            200,
            "/git{path}"
        );
    }
    let view = std::process::Command::new(grasp_tests::binary::graspd())
        .args([
            "purgatory",
            "--json",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--public-url", &format!("{base}/")])
        .output()
        .expect("graspd purgatory");
    assert!(
        view.status.success(),
        "graspd purgatory under the base path: {}",
        String::from_utf8_lossy(&view.stderr)
    );
    let page = repo.url.trim_end_matches(".git");
    assert_eq!(status(page, &[]).await, 200, "repository page under /git");

    // Outside /git: 404, with CORS like every other answer.
    let root = format!("http://127.0.0.1:{port}");
    let refs_at_root = repo.url.replacen("/git/", "/", 1) + "/info/refs?service=git-upload-pack";
    for url in [
        format!("{root}/"),
        format!("{root}/metrics"),
        format!("{root}/purgatory.json"),
        format!("{root}/.well-known/nostr.json"),
        format!("{root}/gitx"),
        refs_at_root,
    ] {
        let response = http::get(&url, &nip11).await.expect("a response");
        assert_eq!(response.status, 404, "{url}");
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("*"),
            "{url}"
        );
    }
    let upgrade = grasp_tests::within(
        std::time::Duration::from_secs(10),
        "websocket connect at the root",
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/")),
    )
    .await;
    assert!(upgrade.is_err(), "no relay at the root");
}
