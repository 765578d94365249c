//! Behind a reverse proxy (issue 14): `--trusted-proxy` makes graspd take the client
//! address from the proxy's forwarding headers — for every per-address limit — and only
//! from those peers; `--metrics-allow` decides who reads `/metrics` and the purgatory view.

use grasp_tests::fixture::{World, random_event_id};
use grasp_tests::git::Work;
use grasp_tests::http;
use grasp_tests::nostr_sdk::prelude::Keys;
use grasp_tests::server::Options;

async fn status(url: &str, headers: &[(&str, &str)]) -> u16 {
    http::get(url, headers).await.expect("a response").status
}

#[tokio::test]
async fn operator_routes_follow_metrics_allow_and_trusted_forwarding() {
    // Loopback is the proxy; operators sit in 192.0.2.0/24 behind it.
    let options = Options::default()
        .flag("--trusted-proxy", "127.0.0.1/32")
        .flag("--metrics-allow", "192.0.2.0/24");
    let world = World::start_with(options).await;
    let base = world.server.base_url();
    for path in ["/metrics", "/purgatory.json"] {
        let url = format!("{base}{path}");
        assert_eq!(
            status(&url, &[]).await,
            403,
            "{path}: the proxy itself is no operator"
        );
        let forwarded = [("x-forwarded-for", "192.0.2.9")];
        assert_eq!(
            status(&url, &forwarded).await,
            200,
            "{path}: an operator behind it"
        );
        let spoofed = [("x-forwarded-for", "192.0.2.9, 203.0.113.5")];
        assert_eq!(
            status(&url, &spoofed).await,
            403,
            "{path}: the rightmost untrusted hop counts, not what the client claims"
        );
    }
    // Without --trusted-proxy the headers are ignored and loopback is the default operator.
    let plain = World::start().await;
    let url = format!("{}/metrics", plain.server.base_url());
    assert_eq!(
        status(&url, &[("x-forwarded-for", "203.0.113.5")]).await,
        200
    );
}

#[tokio::test]
async fn per_address_limits_count_the_forwarded_client() {
    let options = Options::default()
        .flag("--trusted-proxy", "127.0.0.1/32")
        .flag("--max-placeholders-per-address", "1");
    let world = World::start_with(options).await;
    let repo = world.hosted(&Keys::generate(), "proxied", &[]).await;
    let work = Work::init().await;
    work.git(&["fetch", "-q", &repo.url, "main:refs/remotes/origin/main"])
        .await
        .expect_ok("fetch main");
    work.branch_from("feature", "refs/remotes/origin/main")
        .await;
    let tip = work.commit("a feature").await;
    let push_from = |client: &'static str| {
        let spec = format!("{tip}:refs/nostr/{}", random_event_id());
        let header = format!("http.extraHeader=X-Forwarded-For: {client}");
        let url = repo.url.clone();
        let work = &work;
        async move { work.git(&["-c", &header, "push", &url, &spec]).await }
    };
    push_from("198.51.100.1")
        .await
        .expect_ok("the first client's placeholder");
    push_from("198.51.100.2")
        .await
        .expect_ok("another client behind the same proxy");
    let out = push_from("198.51.100.1").await;
    out.expect_refused("the first client's second placeholder");
    assert!(
        out.rejections().iter().any(|r| r.contains("your address")),
        "{:?}",
        out.rejections()
    );
}
