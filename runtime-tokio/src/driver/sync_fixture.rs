//! Shared fixtures of the multi-server sync tests: events, publishing, waiting.

use crate::testing::{TestServer, WsClient, git};
use grasp_core::nostr::prelude::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};
use grasp_core::npub;
use serde_json::json;
use std::time::{Duration, Instant};

pub(super) const FAST: &[&str] = &[
    "--allow-private-addresses",
    "--client-sync-delay",
    "100ms",
    "--sync-delay",
    "100ms",
];

pub(super) fn sign(k: &Keys, kind: Kind, at: u64, tags: Vec<Vec<String>>) -> Event {
    let tags = tags.into_iter().map(|t| Tag::parse(t).expect("tag"));
    EventBuilder::new(kind, "")
        .tags(tags)
        .custom_created_at(Timestamp::from(at))
        .finalize(k)
        .expect("sign")
}

pub(super) fn clone_url(s: &TestServer, owner: &Keys) -> String {
    format!("{}/{}/proj.git", s.base(), npub(&owner.public_key()))
}

/// The owner's announcement of `proj` on `home`, also naming `mirrors`' clone URLs.
pub(super) fn announcement(
    home: &TestServer,
    owner: &Keys,
    mirrors: &[&TestServer],
    at: u64,
) -> Event {
    let extra: Vec<String> = mirrors.iter().map(|m| clone_url(m, owner)).collect();
    announcement_with(home, owner, &extra, &[], at)
}

/// The owner's announcement of `proj` on `home`: our clone URL plus `extra` clone URLs,
/// our relay, and `maintainers`.
pub(super) fn announcement_with(
    home: &TestServer,
    owner: &Keys,
    extra: &[String],
    maintainers: &[&Keys],
    at: u64,
) -> Event {
    let mut clone = vec!["clone".to_owned(), clone_url(home, owner)];
    clone.extend(extra.iter().cloned());
    let mut tags = vec![
        vec!["d".into(), "proj".into()],
        clone,
        vec!["relays".into(), format!("ws://{}", home.addr)],
    ];
    if !maintainers.is_empty() {
        let mut m = vec!["maintainers".to_owned()];
        m.extend(maintainers.iter().map(|k| k.public_key().to_hex()));
        tags.push(m);
    }
    sign(owner, Kind::GitRepoAnnouncement, at, tags)
}

pub(super) fn state(owner: &Keys, refs: &[(&str, &str)], at: u64) -> Event {
    let mut tags = vec![vec!["d".to_owned(), "proj".to_owned()]];
    tags.extend(refs.iter().map(|(n, o)| vec![n.to_string(), o.to_string()]));
    let head = refs
        .first()
        .map(|(n, _)| format!("ref: {n}"))
        .unwrap_or_default();
    tags.push(vec!["HEAD".to_owned(), head]);
    sign(owner, Kind::RepoState, at, tags)
}

pub(super) async fn publish(server: &TestServer, e: &Event) -> (bool, String) {
    let mut c = WsClient::connect(server).await;
    c.publish(e).await;
    let r = c.recv().await;
    (
        r[2].as_bool().unwrap_or(false),
        r[3].as_str().unwrap_or_default().to_owned(),
    )
}

/// Serves `refs` on `mirror`: announcement, state, push from `wt`.
pub(super) async fn host(
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

pub(super) async fn wait_stored(server: &TestServer, id: &str, within: Duration) -> bool {
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

/// Polls `/purgatory.json` until `pred` holds (or 15 s pass); returns the last view.
pub(super) async fn view_until(server: &TestServer, pred: impl Fn(&str) -> bool) -> String {
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
pub(super) async fn waiting_with(a: &TestServer, owner: &Keys, remotes: &[String]) -> Event {
    let ann = announcement_with(a, owner, remotes, &[], 20);
    publish(a, &ann).await;
    let st = state(owner, &[("refs/heads/main", &"2".repeat(40))], 21);
    publish(a, &st).await;
    st
}
