//! The engine wired into the daemon, in-process: relay verdicts, a real `git push`
//! authorized by a state event, the release finished before `git push` returns, and the
//! metrics and operator view that follow.

use grasp_core::nostr::prelude::{Event, Kind};
use grasp_core::npub;
use serde_json::json;

use super::sync_fixture::sign;
use crate::test_keys::keys;
use crate::testing::{TestServer, WsClient, git, git_ok, work_tree};

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn ok(client: &mut WsClient, e: &Event) -> (bool, String) {
    client.publish(e).await;
    let mut reply = client.recv().await;
    while reply[0] == "EVENT" {
        reply = client.recv().await; // live deliveries to earlier subscriptions
    }
    assert_eq!(reply[0], "OK", "{reply}");
    (
        reply[2].as_bool().unwrap(),
        reply[3].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_state_push_release_and_observe() {
    let server = TestServer::start_engine(&["--client-sync-delay", "1h"]).await;
    let owner = keys(1);
    let base = server.base();
    let url = format!("{base}/{}/proj.git", npub(&owner.public_key()));
    let relay = format!("ws://{}", server.addr);
    let mut c = WsClient::connect(&server).await;

    let ann = sign(
        &owner,
        Kind::GitRepoAnnouncement,
        100,
        vec![
            v(&["d", "proj"]),
            v(&["clone", &url]),
            v(&["relays", &relay]),
        ],
    );
    assert_eq!(
        ok(&mut c, &ann).await,
        (
            true,
            "purgatory: won't be served until git data arrives".into()
        )
    );
    assert!(
        c.req("a", json!([{"ids": [ann.id.to_hex()]}]))
            .await
            .is_empty(),
        "purgatory never leaks"
    );

    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"hello").await;
    let head = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    // No state yet: the push is refused with a reason git shows.
    let refused = git(&wt, &["push", &url, "main"]).await;
    assert!(
        !refused.ok && refused.stderr.contains("no state event"),
        "{}",
        refused.stderr
    );

    let st = sign(
        &owner,
        Kind::RepoState,
        101,
        vec![
            v(&["d", "proj"]),
            v(&["refs/heads/main", &head]),
            v(&["HEAD", "ref: refs/heads/main"]),
        ],
    );
    assert_eq!(
        ok(&mut c, &st).await.1,
        "purgatory: won't be served until git data arrives"
    );
    let pushed = git(&wt, &["push", &url, "main"]).await;
    assert!(pushed.ok, "{}", pushed.stderr);
    // Released before `git push` returned (a fresh client: "a" is still live on `c`).
    let mut second = WsClient::connect(&server).await;
    let got = second
        .req("b", json!([{"ids": [ann.id.to_hex(), st.id.to_hex()]}]))
        .await;
    assert_eq!(got.len(), 2, "both released by the push: {got:?}");

    let clone = git(tmp.path(), &["clone", &url, "back"]).await;
    assert!(clone.ok, "{}", clone.stderr);
    assert_eq!(
        git_ok(&tmp.path().join("back"), &["rev-parse", "HEAD"]).await,
        head
    );

    // A related issue is served; an unrelated note is refused.
    let coord = format!("30617:{}:proj", owner.public_key().to_hex());
    let issue = sign(&keys(2), Kind::GitIssue, 102, vec![v(&["a", &coord])]);
    assert_eq!(ok(&mut c, &issue).await, (true, String::new()));
    let note = sign(&keys(2), Kind::TextNote, 103, vec![]);
    assert!(ok(&mut c, &note).await.1.starts_with("blocked:"));

    let metrics = crate::testing::http_get(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains("graspd_events_released_total{path=\"push\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("graspd_release_latency_seconds_bucket"),
        "{metrics}"
    );
    let view = crate::testing::http_get(&format!("{base}/purgatory.json")).await;
    assert!(view.contains("\"waiting\":[]"), "{view}");
}
