//! Issue 5 ("Purgatory sync for real"): several graspd instances fetching from each
//! other, and persistence across `kill -9`.

use std::time::Duration;

use grasp_tests::events::{self, Announcement};
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::{Event, Keys, PublicKey};
use grasp_tests::relay::RelayClient;
use grasp_tests::server::Graspd;

/// An announcement by `owner` listing every server in `servers` (clone and relays).
fn announcement_on(servers: &[&Graspd], owner: &Keys, d: &str) -> Event {
    let pk = owner.public_key();
    let mut ann = Announcement::on(servers[0], &pk, d);
    ann.clone = servers.iter().map(|s| s.repo_url(&pk, d)).collect();
    ann.relays = servers.iter().map(|s| s.relay_url()).collect();
    ann.sign(owner)
}

async fn served_on(relay: &RelayClient, ids: &[grasp_tests::nostr_sdk::prelude::EventId]) -> bool {
    let found = relay
        .query_ids(grasp_tests::nostr_sdk::prelude::Filter::new().ids(ids.iter().copied()))
        .await;
    ids.iter().all(|id| found.contains(id))
}

async fn refs_on(
    world: &World,
    server: &Graspd,
    owner: &PublicKey,
    d: &str,
) -> Vec<(String, String)> {
    world
        .git
        .ls_remote(&server.repo_url(owner, d))
        .await
        .into_iter()
        .filter(|(n, _)| n.starts_with("refs/heads/"))
        .collect()
}

#[tokio::test]
async fn single_server_fetch_releases() {
    // A: where the state is published without a push. B: where the data is.
    let a = World::start().await;
    let b = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let d = "fetched";
    let announcement = announcement_on(&[&a.server, &b.server], &owner, d);
    a.publish_purgatory(&announcement, "announcement on A")
        .await;
    b.publish_purgatory(&announcement, "announcement on B")
        .await;

    let work = Work::init().await;
    let c1 = work.commit("only on B").await;
    let state = events::main_state(&owner, d, &c1, events::now());
    b.publish_purgatory(&state, "state on B").await;
    work.push(&b.repo_url(&pk, d), &["main"])
        .await
        .expect_ok("push to B");
    b.wait_served(&[state.id], "state released on B").await;

    // A hears of the state from a client; after the (test: 200 ms) client delay it
    // fetches from B and releases.
    a.publish_purgatory(&state, "state on A").await;
    grasp_tests::eventually(
        Duration::from_secs(20),
        "A fetches from B and releases",
        || async {
            served_on(&a.relay, &[state.id, announcement.id])
                .await
                .then_some(())
        },
    )
    .await;
    a.wait_refs(&pk, d, &[("refs/heads/main", &c1)]).await;
    assert_eq!(
        refs_on(&a, &a.server, &pk, d).await,
        vec![("refs/heads/main".to_owned(), c1.clone())]
    );
}

#[tokio::test]
async fn partial_oid_aggregation() {
    // A needs main (on B only) and dev (on C only).
    let a = World::start().await;
    let b = World::start().await;
    let c = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let d = "partial";
    let announcement = announcement_on(&[&a.server, &b.server, &c.server], &owner, d);
    for (world, name) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        world
            .publish_purgatory(&announcement, &format!("announcement on {name}"))
            .await;
    }
    let work = Work::init().await;
    let base = work.commit("base").await;
    let c_main = work.commit("main work").await;
    work.branch_from("dev", &base).await;
    let c_dev = work.commit("dev work").await;

    let on_b = events::main_state(&owner, d, &c_main, events::at(-20));
    b.publish_purgatory(&on_b, "state on B").await;
    work.push(&b.repo_url(&pk, d), &["main"])
        .await
        .expect_ok("push to B");
    let on_c = events::state(
        &owner,
        d,
        &[("refs/heads/dev", &c_dev)],
        Some("ref: refs/heads/dev"),
        events::at(-10),
    );
    c.publish_purgatory(&on_c, "state on C").await;
    work.push(&c.repo_url(&pk, d), &["dev"])
        .await
        .expect_ok("push to C");

    let full = events::state(
        &owner,
        d,
        &[("refs/heads/main", &c_main), ("refs/heads/dev", &c_dev)],
        Some("ref: refs/heads/main"),
        events::now(),
    );
    a.publish_purgatory(&full, "state on A needing both").await;
    grasp_tests::eventually(
        Duration::from_secs(30),
        "A aggregates B's and C's objects and releases",
        || async { served_on(&a.relay, &[full.id]).await.then_some(()) },
    )
    .await;
    a.wait_refs(
        &pk,
        d,
        &[("refs/heads/main", &c_main), ("refs/heads/dev", &c_dev)],
    )
    .await;
}

#[tokio::test]
async fn restart_keeps_purgatory() {
    let mut world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let work = Work::init().await;
    let mut waiting = Vec::new();
    let mut commits = Vec::new();
    for d in ["one", "two", "three"] {
        let ann = world.announce(&owner, d, &[]).await;
        let c = work.commit(d).await;
        let state = events::main_state(&owner, d, &c, events::now());
        world.publish_purgatory(&state, "state").await;
        waiting.push((d, ann, state));
        commits.push(c);
    }

    world.server.kill9();
    world.server.restart().await;
    let relay = RelayClient::connect(&world.server.relay_url()).await;
    world.relay = relay;

    for (d, ann, state) in &waiting {
        assert!(
            world.repo_exists(&pk, d).await,
            "repository {d} after restart"
        );
        assert_eq!(
            world.publish(state).await.message,
            grasp_tests::DUPLICATE_IN_PURGATORY,
            "state of {d} still waits after kill -9"
        );
        world
            .assert_not_served(ann.id, "announcement after restart")
            .await;
    }
    for ((d, ann, state), c) in waiting.iter().zip(&commits) {
        work.push(&world.repo_url(&pk, d), &[&format!("{c}:refs/heads/main")])
            .await
            .expect_ok("push after the restart");
        world
            .wait_served(&[ann.id, state.id], "released after the restart")
            .await;
    }
}

/// kill -9 while a fetch is in flight, down longer than the purgatory expiry: on restart
/// the state is expired (downtime counts) and the announcement's repository is gone,
/// not given a fresh 30 min.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_counts() {
    let stall = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = stall.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stall.accept().await {
            held.push(s); // accepts and never answers
        }
    });
    let options = grasp_tests::server::Options::default()
        .purgatory_expiry("4s")
        .flag("--fetch-timeout", "60s");
    let mut world = World::start_with(options).await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let mut ann = Announcement::on(&world.server, &pk, "down");
    ann.clone.push(format!("http://127.0.0.1:{port}/x.git"));
    let ann = ann.sign(&owner);
    world.publish_purgatory(&ann, "announcement").await;
    let state = events::main_state(&owner, "down", &"3".repeat(40), events::now());
    world.publish_purgatory(&state, "state").await;
    let metrics_url = format!("{}/metrics", world.server.base_url());
    let in_flight = format!("graspd_domain_in_flight{{domain=\"127.0.0.1:{port}\"}} 1");
    grasp_tests::eventually(Duration::from_secs(10), "a fetch in flight", || async {
        let r = grasp_tests::http::get(&metrics_url, &[]).await.ok()?;
        r.text().contains(&in_flight).then_some(())
    })
    .await;

    world.server.kill9();
    tokio::time::sleep(Duration::from_secs(5)).await;
    world.server.restart().await;
    world.relay = RelayClient::connect(&world.server.relay_url()).await;

    let view = grasp_tests::http::get(&format!("{}/purgatory.json", world.server.base_url()), &[])
        .await
        .expect("view")
        .text();
    assert!(
        !view.contains(&state.id.to_hex()),
        "the state expired while down: {view}"
    );
    assert!(
        view.contains("\"soft_expired\":true"),
        "the announcement soft-expired: {view}"
    );
    assert!(
        !world.repo_exists(&pk, "down").await,
        "its repository is deleted"
    );
    hold.abort();
}

/// kill -9 in the middle of a large push: whether graspd died before or after git wrote
/// the refs, the restart leaves no half-written ref, nothing acknowledged is lost, and a
/// push afterwards releases the waiting events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_push_leaves_nothing_half_written() {
    let mut world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let ann = world.announce(&owner, "big", &[]).await;
    let work = Work::init().await;
    // ~24 MB of incompressible data, so the push takes a while on loopback.
    let mut data = vec![0u8; 24 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(work.path().join("blob.bin"), &data).expect("write");
    work.git(&["add", "blob.bin"]).await.expect_ok("git add");
    let tip = work.commit("big").await;
    let state = events::main_state(&owner, "big", &tip, events::now());
    world.publish_purgatory(&state, "state").await;

    let url = world.repo_url(&pk, "big");
    let pushing = {
        let work_dir = work.path();
        let git = work.env().clone();
        let url = url.clone();
        tokio::spawn(async move { git.run(Some(&work_dir), &["push", &url, "main"]).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    world.server.kill9();
    let _ = pushing.await;
    world.server.restart().await;
    world.relay = RelayClient::connect(&world.server.relay_url()).await;

    let refs = world.refs(&pk, "big").await;
    match refs.get("refs/heads/main") {
        // The push finished before the kill: released then, or by the restart's check.
        Some(oid) => {
            assert_eq!(oid, &tip, "no other value can be there");
            world.wait_served(&[ann.id, state.id], "released").await;
        }
        // Killed mid-push: no ref, and the state still waits.
        None => {
            assert!(
                refs.keys().all(|r| !r.starts_with("refs/heads/")),
                "no half-written ref: {refs:?}"
            );
            assert_eq!(
                world.publish(&state).await.message,
                grasp_tests::DUPLICATE_IN_PURGATORY,
                "the acknowledged state survived"
            );
            work.push(&url, &["main"])
                .await
                .expect_ok("push after the restart");
            world
                .wait_served(&[ann.id, state.id], "released by the second push")
                .await;
        }
    }
}
