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

/// Polls `/purgatory.json` until `pred` holds (or 15 s pass); returns the last view.
async fn view_until(server: &TestServer, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let view = crate::testing::http_get(&format!("{}/purgatory.json", server.base())).await;
        if pred(&view) || start.elapsed() > Duration::from_secs(15) {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A waiting state on A whose announcement names `remotes` (extra clone URLs).
async fn waiting_with(a: &TestServer, owner: &Keys, remotes: &[String]) -> Event {
    let mut clone = vec!["clone".to_owned(), clone_url(a, owner)];
    clone.extend(remotes.iter().cloned());
    let ann = sign(
        owner,
        Kind::GitRepoAnnouncement,
        20,
        vec![
            vec!["d".into(), "proj".into()],
            clone,
            vec!["relays".into(), format!("ws://{}", a.addr)],
        ],
    );
    publish(a, &ann).await;
    let st = state(owner, &[("refs/heads/main", &"2".repeat(40))], 21);
    publish(a, &st).await;
    st
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_remote_bounded() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s); // accepts and never answers
        }
    });
    let mut args = FAST.to_vec();
    args.extend(["--fetch-timeout", "1s"]);
    let a = TestServer::start_engine(&args).await;
    let st = waiting_with(&a, &keys(1), &[format!("http://127.0.0.1:{port}/x.git")]).await;
    let view = view_until(&a, |v| v.contains("Timeout")).await;
    assert!(
        view.contains("failed (Timeout)"),
        "cut at the fetch timeout and counted: {view}"
    );
    assert!(
        view.contains(&st.id.to_hex()),
        "the event still waits: {view}"
    );
    let metrics = crate::testing::http_get(&format!("{}/metrics", a.base())).await;
    assert!(
        metrics.contains("graspd_fetch_failures_total{kind=\"timeout\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "graspd_domain_in_flight{{domain=\"127.0.0.1:{port}\"}} 0"
        )),
        "slot freed: {metrics}"
    );
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_failure_is_input() {
    // A refused connection, and a server that answers garbage.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage_port = garbage.local_addr().unwrap().port();
    let serve = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = garbage.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = "this is not a pkt-line stream";
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    let a = TestServer::start_engine(FAST).await;
    let urls = [
        format!("http://127.0.0.1:{closed_port}/x.git"),
        format!("http://127.0.0.1:{garbage_port}/x.git"),
    ];
    let st = waiting_with(&a, &keys(1), &urls).await;
    let view = view_until(&a, |v| v.matches("failed (").count() >= 2).await;
    assert_eq!(
        view.matches("failed (").count(),
        2,
        "both failures recorded: {view}"
    );
    assert!(
        view.contains(&st.id.to_hex()),
        "the event still waits, retried by backoff: {view}"
    );
    assert!(view.contains("\"attempts\":1"), "{view}");
    serve.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_domain_excluded() {
    let a = TestServer::start_engine(FAST).await;
    let other_owner = keys(9);
    // A second clone URL on our own authority (another owner's path) is never fetched.
    let st = waiting_with(&a, &keys(1), &[clone_url(&a, &other_owner)]).await;
    let view = view_until(&a, |v| v.contains("own URL")).await;
    assert!(view.contains("refused: this server's own URL"), "{view}");
    assert!(view.contains(&st.id.to_hex()));
    let metrics = crate::testing::http_get(&format!("{}/metrics", a.base())).await;
    assert!(
        !metrics.contains("graspd_remote_requests_started_total{"),
        "no request was made: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_during_sync() {
    // The remote accepts and stalls, so a fetch is in flight when the push lands.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut args = FAST.to_vec();
    args.extend(["--fetch-timeout", "2s"]);
    let a = TestServer::start_engine(&args).await;
    let owner = keys(1);
    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"one").await;
    let tip = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    let mut clone = vec![
        "clone".to_owned(),
        clone_url(&a, &owner),
        format!("http://127.0.0.1:{port}/x.git"),
    ];
    clone.shrink_to_fit();
    let ann = sign(
        &owner,
        Kind::GitRepoAnnouncement,
        20,
        vec![
            vec!["d".into(), "proj".into()],
            clone,
            vec!["relays".into(), format!("ws://{}", a.addr)],
        ],
    );
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
    let with_maintainer = |who: &Keys, other: &Keys, mirrors: &[&TestServer]| {
        let base = announcement(&a, who, mirrors, 30);
        let mut tags: Vec<Vec<String>> = base.tags.iter().map(|t| t.as_slice().to_vec()).collect();
        tags.push(vec!["maintainers".into(), other.public_key().to_hex()]);
        sign(who, Kind::GitRepoAnnouncement, 30, tags)
    };
    assert!(publish(&a, &with_maintainer(&owner, &m, &[&b])).await.0);
    assert!(publish(&a, &with_maintainer(&m, &owner, &[])).await.0);
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
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = stall.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stall.accept().await {
            held.push(s);
        }
    });
    let (a, b) = (
        TestServer::start_engine(FAST).await,
        TestServer::start_engine(FAST).await,
    );
    let (owner, m) = (keys(1), keys(2));
    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"one").await;
    let tip = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    host(&b, &owner, &wt, &[("refs/heads/main", &tip)], &["main"]).await;
    let base = announcement(&a, &owner, &[&b], 30);
    let mut tags: Vec<Vec<String>> = base.tags.iter().map(|t| t.as_slice().to_vec()).collect();
    tags.push(vec!["maintainers".into(), m.public_key().to_hex()]);
    tags.push(vec![
        "clone".into(),
        format!("http://127.0.0.1:{port}/x.git"),
    ]);
    assert!(
        publish(&a, &sign(&owner, Kind::GitRepoAnnouncement, 30, tags))
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

/// A remote that advertises a real repository's refs but answers every fetch with
/// "not our ref" (its refs moved, or it lies).
async fn lying_remote(advertised_repo: std::path::PathBuf) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = std::process::Command::new("git")
        .args(["upload-pack", "--stateless-rpc", "--advertise-refs"])
        .arg(&advertised_repo)
        .output()
        .expect("git upload-pack");
    let mut advert = b"001e# service=git-upload-pack\n0000".to_vec();
    advert.extend_from_slice(&out.stdout);
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let (ctype, body) = if head.starts_with("GET") {
                (
                    "application/x-git-upload-pack-advertisement",
                    advert.clone(),
                )
            } else {
                let msg = "ERR upload-pack: not our ref\n";
                (
                    "application/x-git-upload-pack-result",
                    format!("{:04x}{msg}", msg.len() + 4).into_bytes(),
                )
            };
            let headers = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(headers.as_bytes()).await;
            let _ = s.write_all(&body).await;
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_our_ref_is_input() {
    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"one").await;
    let tip = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    let bare = tmp.path().join("bare.git");
    git_ok(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            "--bare",
            wt.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    )
    .await;
    let (port, task) = lying_remote(bare).await;
    let a = TestServer::start_engine(FAST).await;
    let owner = keys(1);
    let clone = vec![
        "clone".to_owned(),
        clone_url(&a, &owner),
        format!("http://127.0.0.1:{port}/x.git"),
    ];
    let ann = sign(
        &owner,
        Kind::GitRepoAnnouncement,
        20,
        vec![
            vec!["d".into(), "proj".into()],
            clone,
            vec!["relays".into(), format!("ws://{}", a.addr)],
        ],
    );
    publish(&a, &ann).await;
    let st = state(&owner, &[("refs/heads/main", &tip)], 21);
    publish(&a, &st).await;
    let view = view_until(&a, |v| v.contains("NotOurRef")).await;
    assert!(view.contains("failed (NotOurRef)"), "{view}");
    assert!(
        view.contains(&st.id.to_hex()),
        "the state still waits, retried by backoff: {view}"
    );
    task.abort();
}
