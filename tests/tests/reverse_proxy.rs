//! graspd behind a real nginx running the deployment guide's configuration
//! (`docs/deploy/nginx.conf`), over TLS with a certificate made for the test: a push of
//! a state-authorized commit bigger than nginx's default body limit, a clone, and a
//! relay session (EVENT, then REQ) over `wss://`, at the root and under a base path.
//! Skipped, saying so, without nginx (unless `GRASP_TESTS_REQUIRE_NGINX=1`).

use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::nginx::{Nginx, nginx_binary};
use grasp_tests::nostr_sdk::prelude::{Filter, Keys};
use grasp_tests::relay::RelayClient;
use grasp_tests::server::{Graspd, Options, free_port};
use grasp_tests::tls::TestTls;

/// Bytes of the pushed file: past nginx's default `client_max_body_size` (1 MiB), and
/// incompressible, so the pack is as big.
const BIG_FILE: usize = 3 << 20;

/// Announce, state, push, clone and REQ through nginx serving `location` (`/` or
/// `/git`), with graspd's public URL `https://127.0.0.1:<nginx port><location>`.
async fn journey_through_nginx(location: &str) {
    let Some(nginx_bin) = nginx_binary() else {
        return;
    };
    let tls = TestTls::generate();
    let port = free_port();
    let public = format!(
        "https://127.0.0.1:{port}{}/",
        location.trim_end_matches('/')
    );
    let server = Graspd::start_with(
        Options::default()
            .flag("--public-url", &public)
            .flag("--trusted-proxy", "127.0.0.1/32"),
    )
    .await;
    let nginx = Nginx::start(&nginx_bin, port, &tls, location, &server.authority()).await;
    let relay = RelayClient::connect_tls(&server.relay_url(), &tls).await;
    assert!(
        server.relay_url().starts_with("wss://"),
        "{}",
        server.relay_url()
    );
    let world = World::with_relay(server, relay);

    // EVENT over wss:// through nginx: the announcement waits for its data.
    let alice = Keys::generate();
    let d = "behind-nginx";
    let announcement = world.announcement(&alice, d, &[]);
    world
        .publish_purgatory(&announcement, "announcement through nginx")
        .await;

    // A commit too big for nginx's default body limit, named by a state.
    let work = Work::init().await;
    std::fs::write(work.path().join("big.bin"), noise(BIG_FILE)).expect("big file");
    work.git(&["add", "big.bin"]).await.expect_ok("git add");
    let main = work.commit("a big file").await;
    let state = events::main_state(&alice, d, &main, events::at(-60));
    world.publish_purgatory(&state, "state through nginx").await;

    // git push over https:// through nginx, trusting only the test's certificate.
    let url = world.repo_url(&alice.public_key(), d);
    assert!(url.starts_with(&public), "{url} under {public}");
    let ca = format!("http.sslCAInfo={}", tls.cert().display());
    work.git(&["-c", &ca, "push", &url, "main"])
        .await
        .expect_ok("push through nginx");
    world
        .wait_served(
            &[announcement.id, state.id],
            "announcement and state released by the push through nginx",
        )
        .await;

    // git clone through nginx.
    let target = tempfile::tempdir().expect("clone dir");
    let into = target.path().join("repo");
    let into = into.to_str().expect("utf-8");
    world
        .git
        .run(None, &["-c", &ca, "clone", &url, into])
        .await
        .expect_ok("clone through nginx");
    let head = world
        .git
        .run(
            Some(target.path().join("repo").as_path()),
            &["rev-parse", "HEAD"],
        )
        .await;
    assert_eq!(head.stdout.trim(), main, "the clone has the pushed commit");
    let cloned = std::fs::metadata(target.path().join("repo").join("big.bin")).expect("big.bin");
    assert_eq!(cloned.len(), BIG_FILE as u64);

    // REQ over the same wss:// connection.
    let found = world.relay.query_ids(Filter::new().id(state.id)).await;
    assert_eq!(found, [state.id], "REQ through nginx");

    // NIP-11 through nginx names the public URLs.
    let (status, body) = tls
        .get(&public, &[("accept", "application/nostr+json")])
        .await;
    assert_eq!(status, 200, "NIP-11 through nginx: {body}");
    assert!(body.contains(&format!("{}<npub>", public)), "{body}");

    // Forwarding headers reach graspd through nginx and --trusted-proxy reads them: with
    // an address in front of the test's own (loopback: an operator), that address is
    // the client, and no operator. (The test's client and nginx share 127.0.0.1, so
    // this cannot tell nginx's appending of the peer address from passing the header
    // on; tests/tests/proxy.rs checks graspd's rightmost-untrusted rule.)
    let metrics = format!("{public}metrics");
    assert_eq!(tls.get(&metrics, &[]).await.0, 200, "a loopback client");
    let forwarded = [("x-forwarded-for", "192.0.2.7")];
    assert_eq!(
        tls.get(&metrics, &forwarded).await.0,
        403,
        "the forwarded chain reaches graspd through nginx"
    );

    // The git requests really went through nginx (the websocket did too: graspd itself
    // speaks no TLS; nginx logs it only when it closes).
    let log = nginx.access_log();
    for what in ["git-receive-pack", "git-upload-pack"] {
        assert!(log.contains(what), "nginx saw no {what:?}:\n{log}");
    }
}

#[tokio::test]
async fn git_and_relay_through_nginx_with_tls() {
    journey_through_nginx("/").await;
}

#[tokio::test]
async fn git_and_relay_through_nginx_under_a_base_path() {
    journey_through_nginx("/git").await;
}

/// `len` bytes that do not compress (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
