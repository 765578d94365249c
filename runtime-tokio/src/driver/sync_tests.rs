//! Purgatory sync between real servers on 127.0.0.1: a state published to A whose data
//! lives only on B (or split over B and C) is fetched and released on A.

use std::time::{Duration, Instant};

use grasp_core::nostr::prelude::Kind;
use grasp_core::npub;
use serde_json::json;

use super::sync_fixture::*;
use crate::test_keys::keys;
use crate::testing::{TestServer, WsClient, git, git_ok, work_tree};

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
    let hostile = [
        "file:///etc".to_owned(),
        "http://127.0.0.1:9/x.git".to_owned(),
    ];
    let ann = announcement_with(&a, &owner, &hostile, &[], 20);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_during_sync() {
    // The remote accepts and stalls, so a fetch is in flight when the push lands.
    let (port, hold) = crate::testing::stalling_remote().await;
    let mut args = FAST.to_vec();
    args.extend(["--fetch-timeout", "2s"]);
    let a = TestServer::start_engine(&args).await;
    let owner = keys(1);
    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"one").await;
    let tip = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    let stalled = [format!("http://127.0.0.1:{port}/x.git")];
    let ann = announcement_with(&a, &owner, &stalled, &[], 20);
    publish(&a, &ann).await;
    let st = state(&owner, &[("refs/heads/main", &tip)], 21);
    publish(&a, &st).await;
    let metrics_url = format!("{}/metrics", a.base());
    let in_flight = format!("graspd_domain_in_flight{{domain=\"127.0.0.1:{port}\"}} 1");
    let start = Instant::now();
    while !crate::testing::http_get(&metrics_url)
        .await
        .contains(&in_flight)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the fetch never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pushed = git(&wt, &["push", "--quiet", &clone_url(&a, &owner), "main"]).await;
    assert!(pushed.ok, "{}", pushed.stderr);
    let mut c = WsClient::connect(&a).await;
    assert_eq!(
        c.req("p", json!([{"ids": [st.id.to_hex()]}])).await.len(),
        1,
        "released by the push"
    );
    // The stalled fetch ends at its timeout: nothing is released twice, nothing breaks.
    let start = Instant::now();
    let mut metrics = String::new();
    while start.elapsed() < Duration::from_secs(10) {
        metrics = crate::testing::http_get(&metrics_url).await;
        if metrics.contains("graspd_fetch_failures_total{kind=\"timeout\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("graspd_fetch_failures_total{kind=\"timeout\"} 1"),
        "{metrics}"
    );
    let view = crate::testing::http_get(&format!("{}/purgatory.json", a.base())).await;
    assert!(
        view.contains("\"waiting\":[]") && view.contains("\"sync\":[]"),
        "{view}"
    );
    assert!(
        metrics.contains("graspd_events_released_total{path=\"push\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("graspd_events_released_total{path=\"sync\"} 0"),
        "{metrics}"
    );
    let mut c = WsClient::connect(&a).await;
    assert_eq!(c.req("q", json!([{"kinds": [30618]}])).await.len(), 1);
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_syncs_all_owner_repos() {
    // A hosts the owner's repo and a co-maintainer's; the data lives only on B.
    let (a, b) = (
        TestServer::start_engine(FAST).await,
        TestServer::start_engine(FAST).await,
    );
    let (owner, m) = (keys(1), keys(2));
    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"shared").await;
    let tip = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    host(&b, &owner, &wt, &[("refs/heads/main", &tip)], &["main"]).await;
    let on_b = [clone_url(&b, &owner)];
    assert!(
        publish(&a, &announcement_with(&a, &owner, &on_b, &[&m], 30))
            .await
            .0
    );
    assert!(
        publish(&a, &announcement_with(&a, &m, &[], &[&owner], 30))
            .await
            .0
    );
    let st = state(&owner, &[("refs/heads/main", &tip)], 31);
    publish(&a, &st).await;
    assert!(
        wait_stored(&a, &st.id.to_hex(), Duration::from_secs(20)).await,
        "released on A"
    );
    for who in [&owner, &m] {
        let dir = format!("clone-{}", npub(&who.public_key()));
        let out = git(tmp.path(), &["clone", "--quiet", &clone_url(&a, who), &dir]).await;
        assert!(out.ok, "{}", out.stderr);
        let got = git_ok(&tmp.path().join(&dir), &["rev-parse", "HEAD"]).await;
        assert_eq!(got, tip, "every owner repo on A is aligned");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_per_fetch() {
    // Two states of one identifier: the owner's data is on B, the maintainer's behind a
    // remote that stalls. The owner's state is released after B's fetch, without waiting.
    let (port, hold) = crate::testing::stalling_remote().await;
    let (a, b) = (
        TestServer::start_engine(FAST).await,
        TestServer::start_engine(FAST).await,
    );
    let (owner, m) = (keys(1), keys(2));
    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"one").await;
    let tip = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    host(&b, &owner, &wt, &[("refs/heads/main", &tip)], &["main"]).await;
    let remotes = [
        clone_url(&b, &owner),
        format!("http://127.0.0.1:{port}/x.git"),
    ];
    assert!(
        publish(&a, &announcement_with(&a, &owner, &remotes, &[&m], 30))
            .await
            .0
    );
    let s1 = state(&owner, &[("refs/heads/main", &tip)], 31);
    let mut s2_tags = vec![vec!["d".to_owned(), "proj".to_owned()]];
    s2_tags.push(vec!["refs/heads/dev".into(), "4".repeat(40)]);
    let s2 = sign(&m, Kind::RepoState, 32, s2_tags);
    publish(&a, &s1).await;
    publish(&a, &s2).await;
    assert!(
        wait_stored(&a, &s1.id.to_hex(), Duration::from_secs(20)).await,
        "released after B's fetch"
    );
    let view = crate::testing::http_get(&format!("{}/purgatory.json", a.base())).await;
    assert!(
        view.contains(&s2.id.to_hex()),
        "the other still waits: {view}"
    );
    hold.abort();
}
