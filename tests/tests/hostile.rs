//! Issue 14, hostile load on the runtime: item 4 (connections), item 6 (stalled
//! pushes), item 8 (kill -9 during a push). Every wait is bounded; no assertion is
//! about how long something took, only that it happened before the test's deadline.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use grasp_tests::events;
use grasp_tests::eventually;
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::hostile::{
    PACK_HEADER, connect_from, create_command, get_status, gits_in, quarantines, read_until_closed,
    receive_pack_head, send,
};
use grasp_tests::nostr_sdk::prelude::{Filter, Keys};
use grasp_tests::relay::RelayClient;
use grasp_tests::server::{Graspd, Options};

/// Longer than any timeout a test sets: "closed before the test's own deadline".
const DEADLINE: Duration = Duration::from_secs(20);

/// Item 8: a `git receive-pack` whose graspd is `kill -9`ed dies with it (here it
/// waits in a pre-receive hook, as a big pack's checks would, with the pack already
/// in its quarantine); the restart removes the quarantine, no ref moved, and the
/// retried push is a real push that releases the acknowledged state.
#[tokio::test]
async fn item8_kill9_during_push_kills_git_and_the_retry_releases() {
    let mut world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "killed", &[]).await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let state = events::main_state(&owner, "killed", &c1, events::now());
    world
        .publish_purgatory(&state, "state before the push")
        .await;

    let repo = world.server.repo_dir(&pk, "killed");
    let marker_dir = tempfile::tempdir().expect("tempdir");
    let marker = marker_dir.path().join("hook-pid");
    let hooks = repo.join("hooks");
    std::fs::create_dir_all(&hooks).expect("hooks dir");
    let hook = hooks.join("pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec sleep 60\n",
            marker.display()
        ),
    )
    .expect("hook");
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&hook)
        .status()
        .expect("chmod");

    let url = world.repo_url(&pk, "killed");
    let pushing = tokio::spawn(async move {
        let out = work.push(&url, &["main"]).await;
        (work, out)
    });
    let hook_pid: u32 = eventually(DEADLINE, "the pre-receive hook runs", || {
        let marker = marker.clone();
        async move { std::fs::read_to_string(&marker).ok()?.trim().parse().ok() }
    })
    .await;
    assert!(
        !gits_in(&repo).is_empty(),
        "receive-pack waits for its hook"
    );
    assert!(
        !quarantines(&repo).is_empty(),
        "the pack sits in its quarantine"
    );

    world.server.kill9();
    eventually(DEADLINE, "git receive-pack dies with graspd", || {
        let left = gits_in(&repo);
        async move { left.is_empty().then_some(()) }
    })
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-9", &hook_pid.to_string()])
        .status();
    std::fs::remove_file(&hook).expect("remove the hook");
    let (work, out) = pushing.await.expect("push task");
    out.expect_failed("push cut by the kill");
    assert!(
        !quarantines(&repo).is_empty(),
        "the killed push left its quarantine"
    );

    world.server.restart().await;
    assert_eq!(
        quarantines(&repo),
        Vec::<std::path::PathBuf>::new(),
        "removed at start"
    );
    world.relay = RelayClient::connect(&world.server.relay_url()).await;
    world.wait_refs(&pk, "killed", &[]).await;
    world
        .assert_not_served(state.id, "state whose push never finished")
        .await;
    work.push(&world.repo_url(&pk, "killed"), &["main"])
        .await
        .expect_ok("the retried push is a real push");
    world
        .wait_served(&[state.id], "state released by the retried push")
        .await;
    world
        .wait_refs(&pk, "killed", &[("refs/heads/main", &c1)])
        .await;
}

/// Item 6: a push that stops sending after its command list (and the start of the
/// pack) is aborted after the body stall timeout: the connection is cut, git is gone,
/// no ref moved, nothing is left in the repository.
#[tokio::test]
async fn item6_stalled_push_is_aborted_and_writes_nothing() {
    let world = World::start_with(Options::default().flag("--body-stall-timeout", "1s")).await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "stall", &[]).await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let state = events::main_state(&owner, "stall", &c1, events::now());
    world.publish_purgatory(&state, "state").await;
    let repo = world.server.repo_dir(&pk, "stall");

    let mut stream = connect_from("127.0.0.1", &world.server).await;
    send(
        &mut stream,
        receive_pack_head(&world.server, &pk, "stall", 1 << 20).as_bytes(),
    )
    .await;
    send(&mut stream, &create_command(&c1, "refs/heads/main")).await;
    send(&mut stream, PACK_HEADER).await;
    let answer = read_until_closed(&mut stream, DEADLINE).await;
    assert!(
        answer.is_ok(),
        "the stalled push is still open after {DEADLINE:?}"
    );
    eventually(DEADLINE, "git gone after the stall", || {
        let left = gits_in(&repo);
        async move { left.is_empty().then_some(()) }
    })
    .await;
    eventually(DEADLINE, "no quarantine left", || {
        let left = quarantines(&repo);
        async move { left.is_empty().then_some(()) }
    })
    .await;
    world.wait_refs(&pk, "stall", &[]).await;
    world
        .assert_not_served(state.id, "state of the stalled push")
        .await;
}

/// git's probe request (`0000`) from `source`: the HTTP status.
async fn probe(server: &Graspd, owner: &Keys, d: &str, source: &str) -> Option<u16> {
    let mut stream = connect_from(source, server).await;
    send(
        &mut stream,
        receive_pack_head(server, &owner.public_key(), d, 4).as_bytes(),
    )
    .await;
    send(&mut stream, b"0000").await;
    let read = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let bytes = match read {
        Ok(bytes) | Err(bytes) => bytes,
    };
    let status = String::from_utf8_lossy(&bytes)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok();
    eprintln!("probe from {source}: {status:?}");
    status
}

/// Item 6: concurrent pushes are capped per client address and in total; a push over
/// the cap gets 503 at once, and a slot freed by its client is usable again.
#[tokio::test]
async fn item6_concurrent_pushes_are_capped_per_client_and_in_total() {
    let options = Options::default()
        .flag("--max-pushes", "2")
        .flag("--max-pushes-per-client", "1")
        .flag("--body-stall-timeout", "60s");
    let world = World::start_with(options).await;
    let owner = Keys::generate();
    world.announce(&owner, "capped", &[]).await;
    let server = &world.server;
    let pk = owner.public_key();
    assert_eq!(
        probe(server, &owner, "capped", "127.0.0.1").await,
        Some(200)
    );

    // A push that stops inside its command list holds its slot. One that raced a
    // probe for the last slot is answered 503 at once: then it is sent again.
    let stalled = |source: &'static str| async move {
        for _ in 0..20 {
            let mut stream = connect_from(source, server).await;
            send(
                &mut stream,
                receive_pack_head(server, &pk, "capped", 1000).as_bytes(),
            )
            .await;
            send(&mut stream, b"00").await;
            let mut buf = [0u8; 64];
            let answered =
                tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
            if answered.is_err() {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no push slot for {source}");
    };
    let first = stalled("127.0.0.1").await;
    eventually(
        DEADLINE,
        "a second push from the same address gets 503",
        || async {
            (probe(server, &owner, "capped", "127.0.0.1").await == Some(503)).then_some(())
        },
    )
    .await;
    assert_eq!(
        probe(server, &owner, "capped", "127.0.0.2").await,
        Some(200),
        "another address may push"
    );
    let _second = stalled("127.0.0.2").await;
    eventually(
        DEADLINE,
        "the second stalled push holds its slot",
        || async {
            (probe(server, &owner, "capped", "127.0.0.2").await == Some(503)).then_some(())
        },
    )
    .await;
    eventually(DEADLINE, "a push beyond the total gets 503", || async {
        (probe(server, &owner, "capped", "127.0.0.3").await == Some(503)).then_some(())
    })
    .await;
    drop(first);
    eventually(
        DEADLINE,
        "the freed slot serves its address again",
        || async {
            (probe(server, &owner, "capped", "127.0.0.1").await == Some(200)).then_some(())
        },
    )
    .await;
}

/// Item 4: slowloris. A connection that sends part of a request's headers, or
/// nothing at all, is closed after the header timeout.
#[tokio::test]
async fn item4_slow_headers_and_silent_connections_are_closed() {
    let server = Graspd::start_with(Options::default().flag("--header-timeout", "1s")).await;
    let mut partial = connect_from("127.0.0.1", &server).await;
    send(&mut partial, b"GET / HTTP/1.1\r\nHost: graspd\r\nX-Slow: a").await;
    let mut silent = connect_from("127.0.0.1", &server).await;
    assert!(
        read_until_closed(&mut partial, DEADLINE).await.is_ok(),
        "a connection still sending its headers after {DEADLINE:?} is open"
    );
    assert!(
        read_until_closed(&mut silent, DEADLINE).await.is_ok(),
        "a silent connection is open after {DEADLINE:?}"
    );
    let mut kept_alive = connect_from("127.0.0.1", &server).await;
    assert_eq!(get_status(&mut kept_alive).await, Some(200));
    assert!(
        read_until_closed(&mut kept_alive, DEADLINE).await.is_ok(),
        "an idle kept-alive connection is open after {DEADLINE:?}"
    );
}

/// Item 4: connections are capped per client address and in total; the connection
/// over a cap is refused at once (503, or closed), and closing one makes room.
#[tokio::test]
async fn item4_connections_are_capped_per_client_and_in_total() {
    let options = Options::default()
        .flag("--max-connections", "5")
        .flag("--max-connections-per-client", "3")
        .flag("--header-timeout", "60s");
    let server = Graspd::start_with(options).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let mut stream = connect_from("127.0.0.1", &server).await;
        assert_eq!(get_status(&mut stream).await, Some(200), "connection {i}");
        held.push(stream);
    }
    let mut over = connect_from("127.0.0.1", &server).await;
    let refused = read_until_closed(&mut over, DEADLINE)
        .await
        .expect("the 4th connection from one address is closed at once");
    let text = String::from_utf8_lossy(&refused);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 503"),
        "refused with 503: {text}"
    );
    for i in 0..2 {
        let mut stream = connect_from("127.0.0.2", &server).await;
        assert_eq!(
            get_status(&mut stream).await,
            Some(200),
            "other address {i}"
        );
        held.push(stream);
    }
    let mut beyond = connect_from("127.0.0.3", &server).await;
    let refused = read_until_closed(&mut beyond, DEADLINE)
        .await
        .expect("a connection beyond the total is closed at once");
    let text = String::from_utf8_lossy(&refused);
    assert!(
        text.is_empty() || text.contains("connection limit"),
        "{text}"
    );

    drop(held.remove(0));
    eventually(
        DEADLINE,
        "a closed connection makes room for its address",
        || {
            let server = &server;
            async move {
                let mut stream = connect_from("127.0.0.1", server).await;
                (get_status(&mut stream).await == Some(200)).then_some(())
            }
        },
    )
    .await;
}

/// Item 4: a websocket with no subscription that sends nothing is closed after the
/// idle timeout; one with a subscription stays.
#[tokio::test]
async fn item4_idle_websocket_without_subscriptions_is_closed() {
    let server =
        Graspd::start_with(Options::default().flag("--idle-websocket-timeout", "1s")).await;
    let subscribed = RelayClient::connect(&server.relay_url()).await;
    let _live = subscribed.subscribe(vec![Filter::new().limit(0)]).await;
    let idle = RelayClient::connect(&server.relay_url()).await;
    eventually(DEADLINE, "the idle websocket is closed", || {
        let closed = idle.is_closed();
        async move { closed.then_some(()) }
    })
    .await;
    // Idle as long as the closed one and more, but subscribed: still served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!subscribed.is_closed(), "a subscribed websocket stays open");
    assert!(
        subscribed
            .try_query(vec![Filter::new().limit(1)])
            .await
            .is_ok(),
        "the subscribed websocket still answers"
    );
}

/// Item 8: a ref change graspd did not make (here a push straight into the bare
/// repository while graspd was down, as a leftover git child finishing would) is
/// seen at the next start: hydration checks the waiting state's objects again and
/// serves it.
#[tokio::test]
async fn item8_ref_changed_while_graspd_was_down_is_seen_at_start() {
    let mut world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "behind", &[]).await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let state = events::main_state(&owner, "behind", &c1, events::now());
    world.publish_purgatory(&state, "state").await;
    world.server.kill9();
    let repo = world.server.repo_dir(&pk, "behind");
    work.push(&repo.display().to_string(), &["main"])
        .await
        .expect_ok("push straight into the bare repository");
    world.server.restart().await;
    world.relay = RelayClient::connect(&world.server.relay_url()).await;
    world
        .wait_served(
            &[state.id],
            "state whose objects arrived while graspd was down",
        )
        .await;
}

/// Issue 14, push exit time: the push's response no longer waits for journal commits,
/// only for the released event's save. What a push reports `ok` must survive a
/// `kill -9` right after: the ref (git's), the released state (stored before the
/// response ended) and the PR tip's placeholder (rebuilt from the ref if its journal
/// record was not yet durable).
#[tokio::test]
async fn kill9_right_after_a_push_reports_ok_keeps_what_it_released() {
    let mut world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "acked", &[]).await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let state = events::main_state(&owner, "acked", &c1, events::now());
    world
        .publish_purgatory(&state, "state before the push")
        .await;
    let url = world.repo_url(&pk, "acked");
    let placeholder = grasp_tests::fixture::random_event_id();
    let pr_ref = format!("{c1}:refs/nostr/{placeholder}");
    work.push(&url, &["main", &pr_ref])
        .await
        .expect_ok("push of the state's commit and a placeholder");
    world.server.kill9();

    world.server.restart().await;
    world.relay = RelayClient::connect(&world.server.relay_url()).await;
    world
        .wait_served(&[state.id], "state released by the acknowledged push")
        .await;
    world
        .wait_refs(&pk, "acked", &[("refs/heads/main", &c1)])
        .await;
    let name = format!("refs/nostr/{placeholder}");
    assert_eq!(world.refs(&pk, "acked").await.get(&name), Some(&c1));
    assert_eq!(
        placeholders(&world.server).await,
        1,
        "the placeholder is tracked after the restart"
    );
}

/// A `refs/nostr/<id>` ref without its journal record (written by git while graspd was
/// down, as a push cut by a crash leaves it) is adopted at start as a placeholder, so
/// it expires like any other instead of staying forever.
#[tokio::test]
async fn a_placeholder_ref_without_its_record_is_adopted_at_start_and_expires() {
    let options = Options::default().flag("--purgatory-expiry", "6s");
    let mut world = World::start_with(options).await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let hosted = world.hosted(&owner, "orphan", &[]).await;
    world.server.kill9();
    let repo = world.server.repo_dir(&pk, "orphan");
    let name = format!("refs/nostr/{}", grasp_tests::fixture::random_event_id());
    let tip = hosted.work.commit("orphan tip").await;
    hosted
        .work
        .push(&repo.display().to_string(), &[&format!("{tip}:{name}")])
        .await
        .expect_ok("push straight into the bare repository");
    world.server.restart().await;
    world.relay = RelayClient::connect(&world.server.relay_url()).await;
    assert_eq!(placeholders(&world.server).await, 1, "adopted at start");
    assert_eq!(world.refs(&pk, "orphan").await.get(&name), Some(&tip));
    // Expired like any placeholder: the ref goes, the branch stays.
    eventually(
        Duration::from_secs(60),
        "the adopted placeholder expires",
        || async {
            let refs = world.refs(&pk, "orphan").await;
            (!refs.contains_key(&name)).then_some(refs)
        },
    )
    .await;
    assert_eq!(placeholders(&world.server).await, 0);
    world
        .wait_refs(&pk, "orphan", &[("refs/heads/main", &hosted.main)])
        .await;
}

/// The number of placeholders graspd holds, from `/metrics`.
async fn placeholders(server: &Graspd) -> u64 {
    let url = format!("{}/metrics", server.base_url());
    let text = grasp_tests::http::get(&url, &[])
        .await
        .expect("metrics")
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix("graspd_purgatory_entries{kind=\"placeholder\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the placeholder gauge")
}

/// Item 2: the objects of lapsed anonymous placeholders are pruned. A placeholder
/// carrying 8 MiB of incompressible data lapses; its repository's object store shrinks
/// back, and the branch's objects stay whole.
#[tokio::test]
async fn item2_objects_of_lapsed_placeholders_are_pruned() {
    let options = Options::default()
        .flag("--purgatory-expiry", "6s")
        .flag("--prune-delay", "1s")
        .flag("--prune-grace", "0s");
    let world = World::start_with(options).await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let hosted = world.hosted(&owner, "pruned", &[]).await;
    let repo = world.server.repo_dir(&pk, "pruned");
    let baseline = objects_size(&repo);

    let work = &hosted.work;
    work.git(&["checkout", "-q", "-b", "junk"])
        .await
        .expect_ok("side branch");
    std::fs::write(work.path().join("junk.bin"), noise(8 << 20)).expect("write junk");
    work.git(&["add", "junk.bin"]).await.expect_ok("git add");
    work.git(&["commit", "-q", "-m", "junk"])
        .await
        .expect_ok("git commit");
    let junk = work.rev("HEAD").await;
    let name = format!("refs/nostr/{}", grasp_tests::fixture::random_event_id());
    work.push(&hosted.url, &[&format!("{junk}:{name}")])
        .await
        .expect_ok("anonymous placeholder push");
    let grown = objects_size(&repo);
    assert!(
        grown >= baseline + (8 << 20),
        "the placeholder's data landed: {baseline} → {grown} bytes"
    );

    let shrunk = eventually(
        Duration::from_secs(60),
        "the lapsed placeholder's objects are pruned",
        || {
            let size = objects_size(&repo);
            async move { (size < baseline + (1 << 20)).then_some(size) }
        },
    )
    .await;
    // Reported for docs/performance.md (sizes, not times).
    eprintln!(
        "objects of the repository: {baseline} B hosted, {grown} B with the placeholder, \
         {shrunk} B after its expiry and prune"
    );
    assert!(
        !world.refs(&pk, "pruned").await.contains_key(&name),
        "the placeholder lapsed"
    );
    let fsck = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["fsck", "--connectivity-only", "--no-dangling"])
        .output()
        .expect("git fsck");
    assert!(
        fsck.status.success(),
        "the repository is whole after the prune ({shrunk} bytes): {}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    world
        .wait_refs(&pk, "pruned", &[("refs/heads/main", &hosted.main)])
        .await;
    let (clone, _dir) = world
        .git
        .clone_repo(&world.repo_url(&pk, "pruned"), &[])
        .await;
    clone.expect_ok("the branch still clones");
}

/// Bytes of every file under the repository's `objects/`.
fn objects_size(repo: &std::path::Path) -> u64 {
    fn walk(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
    }
    walk(&repo.join("objects"))
}

/// `len` bytes git cannot compress (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Item 8: a ref moved while graspd runs by a path it does not see (here a push straight
/// into the bare repository, as a git child that outlived a killed graspd would) is
/// picked up by the retried push, which finds nothing to send ("Everything up-to-date"):
/// its ref advertisement releases the state.
#[tokio::test]
async fn item8_a_push_that_changes_nothing_releases_what_is_already_there() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "unseen", &[]).await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let state = events::main_state(&owner, "unseen", &c1, events::now());
    world.publish_purgatory(&state, "state").await;
    let repo = world.server.repo_dir(&pk, "unseen");
    work.push(&repo.display().to_string(), &["main"])
        .await
        .expect_ok("push straight into the bare repository");
    world
        .assert_not_served(state.id, "nothing told graspd yet")
        .await;
    let out = work.push(&world.repo_url(&pk, "unseen"), &["main"]).await;
    out.expect_ok("the retried push");
    assert!(
        out.stderr.contains("Everything up-to-date"),
        "the retry had nothing to send: {}",
        out.stderr
    );
    world
        .wait_served(&[state.id], "state released by the up-to-date push")
        .await;
}
