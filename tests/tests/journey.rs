//! The whole journey of a new user, and a snapshot of the OK messages of a scripted
//! session.

use std::time::Duration;

use grasp_tests::events::{self, Announcement, coordinate};
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::{Client, Filter, JsonUtil, Keys, Kind, ToBech32};
use grasp_tests::server::Options;

/// A new user announces a repository, publishes its state, pushes with stock git,
/// clones it back, and a second client (nostr-sdk) sees the events.
#[tokio::test]
async fn new_user_journey() {
    let world = World::start().await;
    let alice = Keys::generate();
    let pk = alice.public_key();
    let d = "hello-world";
    let url = world.repo_url(&pk, d);

    // 1. Announce with a stock nostr client.
    let client = Client::new(alice.clone());
    client
        .add_relay(world.server.relay_url())
        .await
        .expect("add relay");
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    let announcement = Announcement::on(&world.server, &pk, d).sign(&alice);
    let output = client
        .send_event(&announcement)
        .await
        .expect("send announcement");
    assert!(
        !output.success.is_empty(),
        "announcement refused: {:?}",
        output.failed
    );
    assert!(world.repo_exists(&pk, d).await, "repository created");

    // 2. Make commits and publish the state.
    let work = Work::init().await;
    work.commit("README").await;
    let main = work.commit("first feature").await;
    work.git(&["tag", "v0.1.0"]).await.expect_ok("tag");
    let state = events::state(
        &alice,
        d,
        &[("refs/heads/main", &main), ("refs/tags/v0.1.0", &main)],
        Some("ref: refs/heads/main"),
        events::now(),
    );
    world.publish_purgatory(&state, "state").await;

    // 3. Push with stock git.
    work.git(&["remote", "add", "origin", &url])
        .await
        .expect_ok("remote add");
    work.git(&["push", "-u", "origin", "main", "--tags"])
        .await
        .expect_ok("git push");

    // 4. Clone it back.
    let (out, dir) = world.git.clone_repo(&url, &[]).await;
    out.expect_ok("git clone");
    let clone = dir.path().join("repo");
    let head = world.git.run(Some(&clone), &["rev-parse", "HEAD"]).await;
    assert_eq!(head.stdout.trim(), main);
    let tags = world.git.run(Some(&clone), &["tag"]).await;
    assert_eq!(tags.stdout.trim(), "v0.1.0");
    assert!(clone.join("file-1.txt").is_file());

    // 5. Someone opens an issue.
    let bob = Keys::generate();
    let issue = events::issue(&bob, &coordinate(&pk, d), "it does not say hello");
    world.publish(&issue).await.assert_served("issue");

    // 6. A second client sees everything.
    let reader = Client::default();
    reader
        .add_relay(world.server.relay_url())
        .await
        .expect("add relay");
    reader.connect().await;
    reader.wait_for_connection(Duration::from_secs(5)).await;
    let found = reader
        .fetch_events(
            Filter::new()
                .kinds([Kind::from(30617), Kind::from(30618), Kind::from(1621)])
                .identifier(d),
            Duration::from_secs(10),
        )
        .await
        .expect("fetch by #d");
    let ids: Vec<_> = found.iter().map(|e| e.id).collect();
    World::assert_ids(&ids, &[announcement.id, state.id], "second client, #d");
    let issues = reader
        .fetch_events(
            Filter::new().kind(Kind::from(1621)).coordinate(
                &grasp_tests::nostr_sdk::prelude::Coordinate::new(Kind::from(30617), pk)
                    .identifier(d),
            ),
            Duration::from_secs(10),
        )
        .await
        .expect("fetch issues by #a");
    assert!(issues.iter().any(|e| e.id == issue.id), "issue not seen");
    client.disconnect().await;
    reader.disconnect().await;
}

/// Replaces what differs between runs (ports, keys, ids) with placeholders.
fn normalize(text: &str, world: &World) -> String {
    let mut text = text.replace(&world.server.authority(), "127.0.0.1:[port]");
    // npubs, then 64- and 40-hex runs.
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("npub1") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        out.push_str("[npub]");
        rest = &tail[end..];
    }
    out.push_str(rest);
    text = out;
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        match run.len() {
            64 => out.push_str("[hex64]"),
            40 => out.push_str("[hex40]"),
            _ => out.push_str(&run),
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

#[tokio::test]
async fn ok_messages_snapshot() {
    let world = World::start_with(Options::default().flag("--max-event-size", "4KiB")).await;
    let owner = Keys::generate();
    let stranger = Keys::generate();
    let pk = owner.public_key();
    let d = "scripted";
    let mut session: Vec<String> = Vec::new();
    macro_rules! step {
        ($label:expr, $ok:expr) => {{
            let ok = $ok;
            session.push(normalize(&format!("{}: {ok}", $label), &world));
            ok
        }};
    }

    let mut no_clone = Announcement::on(&world.server, &pk, d);
    no_clone.clone = vec![events::elsewhere_clone(&pk, d)];
    step!(
        "announcement without our clone URL",
        world.publish(&no_clone.sign(&owner)).await
    );
    let mut no_relay = Announcement::on(&world.server, &pk, d);
    no_relay.relays = vec![events::ELSEWHERE_RELAY.to_owned()];
    step!(
        "announcement without our relay",
        world.publish(&no_relay.sign(&owner)).await
    );
    let announcement = world.announcement(&owner, d, &[]);
    step!("new announcement", world.publish(&announcement).await);
    step!(
        "same announcement again",
        world.publish(&announcement).await
    );

    let work = Work::init().await;
    let main = work.commit("one").await;
    step!(
        "state by a non-maintainer",
        world
            .publish(&events::main_state(&stranger, d, &main, events::now()))
            .await
    );
    step!(
        "state for an unknown repository",
        world
            .publish(&events::main_state(&owner, "unknown", &main, events::now()))
            .await
    );
    let state = events::main_state(&owner, d, &main, events::now());
    step!("owner's state", world.publish(&state).await);
    step!("owner's state again", world.publish(&state).await);
    let out = work.push(&world.repo_url(&pk, d), &["main"]).await;
    out.expect_ok("push");
    step!(
        "owner's state again after the push",
        world.publish(&state).await
    );
    step!(
        "announcement again after the push",
        world.publish(&announcement).await
    );

    let issue = events::issue(&stranger, &coordinate(&pk, d), "bug");
    step!("issue on the repository", world.publish(&issue).await);
    step!("issue again", world.publish(&issue).await);
    step!(
        "issue on an unknown repository",
        world
            .publish(&events::issue(
                &stranger,
                &coordinate(&stranger.public_key(), d),
                "bug"
            ))
            .await
    );
    step!(
        "note with only a p tag",
        world
            .publish(&events::note(
                &stranger,
                "hi",
                vec![events::tag(&["p", &pk.to_hex()])]
            ))
            .await
    );
    let mut bad: serde_json::Value = serde_json::from_str(&issue.as_json()).expect("json");
    bad["content"] = "changed".into();
    step!(
        "event whose id does not match",
        world
            .relay
            .publish_raw(&issue.id.to_hex(), bad.to_string())
            .await
    );
    let mut bad: serde_json::Value = serde_json::from_str(&issue.as_json()).expect("json");
    let forged = events::issue(&owner, &coordinate(&pk, d), "bug");
    bad["sig"] = forged.sig.to_string().into();
    step!(
        "event with a bad signature",
        world
            .relay
            .publish_raw(&issue.id.to_hex(), bad.to_string())
            .await
    );
    step!(
        "event over the size limit",
        world
            .publish(&events::issue(
                &stranger,
                &coordinate(&pk, d),
                &"x".repeat(5000)
            ))
            .await
    );
    let deletion = events::deletion(&stranger, &[issue.id], &[], &[1621], events::now());
    step!(
        "deletion of the issue by its author",
        world.publish(&deletion).await
    );
    step!("the deleted issue again", world.publish(&issue).await);

    let pr = events::pull_request(
        &stranger,
        &[coordinate(&pk, d)],
        &main,
        &[world.repo_url(&pk, d)],
        events::now(),
    );
    step!(
        "pull request whose commit is present",
        world.publish(&pr).await
    );
    let tip = work.commit("feature").await;
    let pr2 = events::pull_request(&stranger, &[coordinate(&pk, d)], &tip, &[], events::now());
    step!(
        "pull request whose commit is missing",
        world.publish(&pr2).await
    );
    step!("that pull request again", world.publish(&pr2).await);

    let npub = pk.to_bech32().expect("npub");
    assert!(!session.iter().any(|line| line.contains(&npub)));
    insta::assert_yaml_snapshot!("ok_messages", session);
}
