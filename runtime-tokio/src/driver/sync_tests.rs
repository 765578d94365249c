//! Purgatory sync between real servers on 127.0.0.1: a state published to A whose data
//! lives only on B (or split over B and C) is fetched and released on A.

use std::time::{Duration, Instant};

use grasp_core::nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use grasp_core::npub;
use serde_json::json;

use crate::test_keys::keys;
use crate::testing::{TestServer, WsClient, git, git_ok, work_tree};

const FAST: &[&str] = &[
    "--allow-private-addresses",
    "--client-sync-delay",
    "100ms",
    "--sync-delay",
    "100ms",
];

fn sign(k: &Keys, kind: Kind, at: u64, tags: Vec<Vec<String>>) -> Event {
    let tags = tags.into_iter().map(|t| Tag::parse(t).expect("tag"));
    EventBuilder::new(kind, "")
        .tags(tags)
        .custom_created_at(Timestamp::from(at))
        .finalize(k)
        .expect("sign")
}

fn clone_url(s: &TestServer, owner: &Keys) -> String {
    format!("{}/{}/proj.git", s.base(), npub(&owner.public_key()))
}

/// The owner's announcement on `home`, also naming `mirrors`' clone URLs.
fn announcement(home: &TestServer, owner: &Keys, mirrors: &[&TestServer], at: u64) -> Event {
    let mut clone = vec!["clone".to_owned(), clone_url(home, owner)];
    clone.extend(mirrors.iter().map(|m| clone_url(m, owner)));
    let relays = vec!["relays".to_owned(), format!("ws://{}", home.addr)];
    sign(
        owner,
        Kind::GitRepoAnnouncement,
        at,
        vec![vec!["d".into(), "proj".into()], clone, relays],
    )
}

fn state(owner: &Keys, refs: &[(&str, &str)], at: u64) -> Event {
    let mut tags = vec![vec!["d".to_owned(), "proj".to_owned()]];
    tags.extend(refs.iter().map(|(n, o)| vec![n.to_string(), o.to_string()]));
    let head = refs
        .first()
        .map(|(n, _)| format!("ref: {n}"))
        .unwrap_or_default();
    tags.push(vec!["HEAD".to_owned(), head]);
    sign(owner, Kind::RepoState, at, tags)
}

async fn publish(server: &TestServer, e: &Event) -> (bool, String) {
    let mut c = WsClient::connect(server).await;
    c.publish(e).await;
    let r = c.recv().await;
    (
        r[2].as_bool().unwrap_or(false),
        r[3].as_str().unwrap_or_default().to_owned(),
    )
}

/// Serves `refs` on `mirror`: announcement, state, push from `wt`.
async fn host(
    mirror: &TestServer,
    owner: &Keys,
    wt: &std::path::Path,
    refs: &[(&str, &str)],
    push: &[&str],
) {
    publish(mirror, &announcement(mirror, owner, &[], 10)).await;
    publish(mirror, &state(owner, refs, 11)).await;
    let mut args = vec!["push", "--quiet"];
    let url = clone_url(mirror, owner);
    args.push(&url);
    args.extend_from_slice(push);
    let out = git(wt, &args).await;
    assert!(out.ok, "push to mirror: {}", out.stderr);
}

async fn wait_stored(server: &TestServer, id: &str, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        let mut c = WsClient::connect(server).await;
        if !c.req("w", json!([{"ids": [id]}])).await.is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_server_fetch_releases() {
    let (a, b) = (
        TestServer::start_engine(FAST).await,
        TestServer::start_engine(FAST).await,
    );
    let owner = keys(1);
    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"one").await;
    let tip = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    host(&b, &owner, &wt, &[("refs/heads/main", &tip)], &["main"]).await;

    assert!(publish(&a, &announcement(&a, &owner, &[&b], 20)).await.0);
    let st = state(&owner, &[("refs/heads/main", &tip)], 21);
    assert_eq!(
        publish(&a, &st).await.1,
        "purgatory: won't be served until git data arrives"
    );
    assert!(
        wait_stored(&a, &st.id.to_hex(), Duration::from_secs(20)).await,
        "released on A after fetching from B"
    );
    let back = git(
        tmp.path(),
        &["clone", "--quiet", &clone_url(&a, &owner), "back"],
    )
    .await;
    assert!(back.ok, "{}", back.stderr);
    assert_eq!(
        git_ok(&tmp.path().join("back"), &["rev-parse", "HEAD"]).await,
        tip
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_oid_aggregation() {
    let a = TestServer::start_engine(FAST).await;
    let b = TestServer::start_engine(FAST).await;
    let c = TestServer::start_engine(FAST).await;
    let owner = keys(1);
    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"one").await;
    let main = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    git_ok(&wt, &["checkout", "--quiet", "--orphan", "dev"]).await;
    std::fs::write(wt.join("file"), b"two").unwrap();
    git_ok(&wt, &["commit", "--quiet", "-am", "dev"]).await;
    let dev = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    // B holds only main, C only dev; A needs both.
    host(&b, &owner, &wt, &[("refs/heads/main", &main)], &["main"]).await;
    host(&c, &owner, &wt, &[("refs/heads/dev", &dev)], &["dev"]).await;
    assert!(
        publish(&a, &announcement(&a, &owner, &[&b, &c], 20))
            .await
            .0
    );
    let st = state(
        &owner,
        &[("refs/heads/main", &main), ("refs/heads/dev", &dev)],
        21,
    );
    publish(&a, &st).await;
    assert!(
        wait_stored(&a, &st.id.to_hex(), Duration::from_secs(20)).await,
        "released after both fetches"
    );
    let view = crate::testing::http_get(&format!("{}/purgatory.json", a.base())).await;
    assert!(view.contains("\"waiting\":[]"), "{view}");
    let metrics = crate::testing::http_get(&format!("{}/metrics", a.base())).await;
    assert!(
        metrics.contains("graspd_events_released_total{path=\"sync\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("graspd_fetch_failures_total{kind=\"notourref\"}"),
        "nothing asked that B or C cannot serve: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_url_scheme_guard() {
    let a = TestServer::start_engine(&["--client-sync-delay", "100ms"]).await;
    let owner = keys(1);
    let ann = sign(
        &owner,
        Kind::GitRepoAnnouncement,
        20,
        vec![
            vec!["d".into(), "proj".into()],
            vec![
                "clone".into(),
                clone_url(&a, &owner),
                "file:///etc".into(),
                "http://127.0.0.1:9/x.git".into(),
            ],
            vec!["relays".into(), format!("ws://{}", a.addr)],
        ],
    );
    publish(&a, &ann).await;
    publish(
        &a,
        &state(&owner, &[("refs/heads/main", &"1".repeat(40))], 21),
    )
    .await;
    let start = Instant::now();
    let mut view = String::new();
    while start.elapsed() < Duration::from_secs(10) {
        view = crate::testing::http_get(&format!("{}/purgatory.json", a.base())).await;
        if view.contains("127.0.0.1:9") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(view.contains("scheme 'file' is not allowed"), "{view}");
    assert!(
        view.contains("loopback, private"),
        "private addresses refused without the flag: {view}"
    );
}
