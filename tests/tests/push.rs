//! SCENARIOS.md "State events and push authorization", plus `ann_released_by_push`.

use std::time::Duration;

use grasp_tests::events::{self, Announcement, state_coordinate};
use grasp_tests::fixture::{PROMPTLY, World};
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::{Client, Filter, Keys, Kind, RelayPoolNotification};
use grasp_tests::server::Options;
use grasp_tests::within;

/// A server under the flat maintainer rule (`--maintainer-model listed`): the SCENARIOS.md
/// maintainer scenarios assume a listed key counts without listing anyone back
/// (tests/tests/maintainers.rs has the reciprocal default).
async fn listed_world() -> World {
    World::start_with(Options::default().flag("--maintainer-model", "listed")).await
}

#[tokio::test]
async fn state_first_then_push() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let announcement = world.announce(&owner, "first", &[]).await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let c2 = work.commit("two").await;
    work.branch_from("dev", &c1).await;
    let state = events::state(
        &owner,
        "first",
        &[("refs/heads/main", &c2), ("refs/heads/dev", &c1)],
        Some("ref: refs/heads/main"),
        events::now(),
    );
    world
        .publish_purgatory(&state, "state before the push")
        .await;
    world
        .assert_not_served(state.id, "state before the push")
        .await;

    work.push(&world.repo_url(&pk, "first"), &["main", "dev"])
        .await
        .expect_ok("push that makes the refs equal to the state");
    world
        .wait_served(&[state.id, announcement.id], "state released by the push")
        .await;
    world
        .wait_refs(
            &pk,
            "first",
            &[("refs/heads/main", &c2), ("refs/heads/dev", &c1)],
        )
        .await;
    assert_eq!(
        world.head_symref(&pk, "first").await.as_deref(),
        Some("refs/heads/main"),
        "HEAD points where the state says"
    );
}

#[tokio::test]
async fn push_first_then_state() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "pushfirst", &[]).await;
    let url = world.repo_url(&pk, "pushfirst");
    let work = Work::init().await;
    let c1 = work.commit("one").await;

    let out = work.push(&url, &["main"]).await;
    out.expect_refused("push with no authorizing state");
    assert!(
        out.rejections().iter().all(|r| r.len() > 3),
        "refusal without a readable reason: {out}"
    );
    world.wait_refs(&pk, "pushfirst", &[]).await;

    let state = events::main_state(&owner, "pushfirst", &c1, events::now());
    world
        .publish_purgatory(&state, "state after a refused push")
        .await;
    work.push(&url, &["main"])
        .await
        .expect_ok("push matching the state");
    world.wait_served(&[state.id], "state released").await;

    // A state whose objects are all present is stored at once, and a push matching a
    // state already in the store is accepted.
    let c2 = work.commit("two").await;
    let tag_state = events::state(
        &owner,
        "pushfirst",
        &[("refs/heads/main", &c1), ("refs/tags/v1", &c1)],
        Some("ref: refs/heads/main"),
        events::at(1),
    );
    world
        .publish(&tag_state)
        .await
        .assert_served("state whose objects are present");
    world
        .wait_refs(
            &pk,
            "pushfirst",
            &[("refs/heads/main", &c1), ("refs/tags/v1", &c1)],
        )
        .await;
    let next = events::state(
        &owner,
        "pushfirst",
        &[("refs/heads/main", &c2), ("refs/tags/v1", &c1)],
        Some("ref: refs/heads/main"),
        events::at(2),
    );
    world.publish_purgatory(&next, "next state").await;
    work.push(&url, &["main"])
        .await
        .expect_ok("push of the next state");
    world.wait_served(&[next.id], "next state released").await;
}

#[tokio::test]
async fn push_must_fully_align() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "align", &[]).await;
    let url = world.repo_url(&pk, "align");
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    work.branch_from("dev", &c1).await;
    let c2 = work.commit("dev work").await;
    work.branch_from("extra", &c1).await;
    let state = events::state(
        &owner,
        "align",
        &[("refs/heads/main", &c1), ("refs/heads/dev", &c2)],
        Some("ref: refs/heads/main"),
        events::now(),
    );
    world
        .publish_purgatory(&state, "state with main and dev")
        .await;

    work.push(&url, &["main"])
        .await
        .expect_refused("push missing the dev branch the state names");
    work.push(&url, &["main", "dev", "extra"])
        .await
        .expect_refused("push with an extra branch not in the state");
    world.wait_refs(&pk, "align", &[]).await;
    work.push(&url, &["main", "dev"])
        .await
        .expect_ok("push equal to the state");
    world.wait_served(&[state.id], "state released").await;

    // The next state drops dev and moves main.
    work.checkout("main").await;
    let c3 = work.commit("three").await;
    let next = events::main_state(&owner, "align", &c3, events::at(1));
    world.publish_purgatory(&next, "state without dev").await;
    work.push(&url, &["main"])
        .await
        .expect_refused("push that keeps dev, which the state omits");
    work.push(&url, &["main", ":refs/heads/dev"])
        .await
        .expect_ok("push that deletes the omitted branch");
    world
        .wait_refs(&pk, "align", &[("refs/heads/main", &c3)])
        .await;
    world.wait_served(&[next.id], "next state released").await;
}

#[tokio::test]
async fn maintainer_push_accepted() {
    let world = listed_world().await;
    let owner = Keys::generate();
    let maintainer = Keys::generate();
    let stranger = Keys::generate();
    let pk = owner.public_key();
    world
        .announce(&owner, "team", &[maintainer.public_key()])
        .await;
    let url = world.repo_url(&pk, "team");
    let work = Work::init().await;
    let c1 = work.commit("by the maintainer").await;

    let theirs = events::main_state(&stranger, "team", &c1, events::now());
    world
        .publish(&theirs)
        .await
        .assert_refused("blocked:", "state by a non-maintainer");
    work.push(&url, &["main"])
        .await
        .expect_refused("push authorized only by a non-maintainer's state");

    let state = events::main_state(&maintainer, "team", &c1, events::now());
    world.publish_purgatory(&state, "maintainer's state").await;
    work.push(&url, &["main"])
        .await
        .expect_ok("push authorized by the maintainer's state");
    world
        .wait_served(&[state.id], "maintainer's state released")
        .await;
    world
        .wait_refs(&pk, "team", &[("refs/heads/main", &c1)])
        .await;
    world
        .assert_not_served(theirs.id, "non-maintainer's state")
        .await;
}

#[tokio::test]
async fn recursive_maintainers() {
    let world = listed_world().await;
    let owner = Keys::generate();
    let m1 = Keys::generate();
    let m2 = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "chain", &[m1.public_key()]).await;
    // M1 lists M2, M2 lists M1: a cycle, hosted elsewhere.
    let m1_ann = Announcement::elsewhere(&m1.public_key(), "chain")
        .maintainers(&[m2.public_key()])
        .sign(&m1);
    world
        .publish(&m1_ann)
        .await
        .assert_served("M1's announcement");
    let m2_ann = Announcement::elsewhere(&m2.public_key(), "chain")
        .maintainers(&[m1.public_key()])
        .sign(&m2);
    world
        .publish(&m2_ann)
        .await
        .assert_served("M2's announcement (cycle)");

    let work = Work::init().await;
    let c1 = work.commit("by M2").await;
    let stranger = Keys::generate();
    world
        .publish(&events::main_state(&stranger, "chain", &c1, events::now()))
        .await
        .assert_refused("blocked:", "state by someone outside the chain");
    let state = events::main_state(&m2, "chain", &c1, events::now());
    world.publish_purgatory(&state, "M2's state").await;
    work.push(&world.repo_url(&pk, "chain"), &["main"])
        .await
        .expect_ok("push authorized by M2's state in the owner's repo");
    world.wait_served(&[state.id], "M2's state released").await;
    world
        .wait_refs(&pk, "chain", &[("refs/heads/main", &c1)])
        .await;
}

#[tokio::test]
async fn newest_state_wins() {
    let world = listed_world().await;
    let owner = Keys::generate();
    let maintainer = Keys::generate();
    let pk = owner.public_key();
    world
        .announce(&owner, "newest", &[maintainer.public_key()])
        .await;
    let url = world.repo_url(&pk, "newest");
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let c2 = work.commit("two").await;
    work.branch_from("side", &c1).await;
    let side = work.commit("side").await;

    let older = events::main_state(&owner, "newest", &c1, events::at(-100));
    let newer = events::main_state(&maintainer, "newest", &c2, events::at(-50));
    world
        .publish_purgatory(&newer, "newer state (maintainer)")
        .await;
    world.publish_purgatory(&older, "older state (owner)").await;
    work.push(&url, &[&format!("{c2}:refs/heads/main")])
        .await
        .expect_ok("push matching the newer state");
    world.wait_served(&[newer.id], "newer state released").await;
    world
        .wait_refs(&pk, "newest", &[("refs/heads/main", &c2)])
        .await;
    // The older state's data (c1, an ancestor of c2) is present too: it does not win.
    tokio::time::sleep(Duration::from_millis(300)).await;
    world
        .wait_refs(&pk, "newest", &[("refs/heads/main", &c2)])
        .await;

    // An older state whose data arrives later does not roll refs back. Its data lands
    // through a refs/nostr push (a git-first placeholder).
    let stale = events::main_state(&owner, "newest", &side, events::at(-75));
    let ok = world.publish(&stale).await;
    assert!(ok.accepted, "older owner state: {ok}");
    let placeholder = grasp_tests::fixture::random_event_id();
    work.push(&url, &[&format!("{side}:refs/nostr/{placeholder}")])
        .await
        .expect_ok("refs/nostr push bringing the older state's data");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refs = world.refs(&pk, "newest").await;
    assert_eq!(
        refs.get("refs/heads/main").map(String::as_str),
        Some(c2.as_str()),
        "main rolled back by an older state: {refs:?}"
    );
    let latest = world
        .relay
        .query_ids(
            Filter::new()
                .kind(Kind::from(30618))
                .identifier("newest")
                .author(maintainer.public_key()),
        )
        .await;
    assert_eq!(latest, vec![newer.id]);
}

#[tokio::test]
async fn head_tag_both_forms() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    for (d, head) in [
        ("symbolic", "ref: refs/heads/dev"),
        ("plain", "refs/heads/dev"),
    ] {
        world.announce(&owner, d, &[]).await;
        let work = Work::init().await;
        let c1 = work.commit("main").await;
        work.branch_from("dev", &c1).await;
        let c2 = work.commit("dev").await;
        let state = events::state(
            &owner,
            d,
            &[("refs/heads/main", &c1), ("refs/heads/dev", &c2)],
            Some(head),
            events::now(),
        );
        world.publish_purgatory(&state, "state").await;
        work.push(&world.repo_url(&pk, d), &["main", "dev"])
            .await
            .expect_ok("push");
        let symref = grasp_tests::eventually(PROMPTLY, "HEAD set to dev", || async {
            let symref = world.head_symref(&pk, d).await;
            (symref.as_deref() == Some("refs/heads/dev")).then_some(symref)
        })
        .await;
        assert_eq!(
            symref.as_deref(),
            Some("refs/heads/dev"),
            "HEAD tag {head:?}"
        );
        let text = world.info_refs(&pk, d).await.text();
        assert!(text.contains("symref=HEAD:refs/heads/dev"), "{text}");
        // A clone checks out dev.
        let (out, dir) = world.git.clone_repo(&world.repo_url(&pk, d), &[]).await;
        out.expect_ok("clone");
        let branch = world
            .git
            .run(Some(&dir.path().join("repo")), &["symbolic-ref", "HEAD"])
            .await;
        assert_eq!(branch.stdout.trim(), "refs/heads/dev", "HEAD tag {head:?}");
    }
}

#[tokio::test]
async fn state_applied_without_push() {
    let world = listed_world().await;
    let owner = Keys::generate();
    let maintainer = Keys::generate();
    let pk = owner.public_key();
    world
        .announce(&owner, "nopush", &[maintainer.public_key()])
        .await;
    let work = Work::init().await;
    let c1 = work.commit("main").await;
    work.branch_from("dev", &c1).await;
    let c2 = work.commit("dev").await;
    let state = events::state(
        &owner,
        "nopush",
        &[("refs/heads/main", &c1), ("refs/heads/dev", &c2)],
        Some("ref: refs/heads/main"),
        events::at(-10),
    );
    world.publish_purgatory(&state, "state").await;
    work.push(&world.repo_url(&pk, "nopush"), &["main", "dev"])
        .await
        .expect_ok("push");
    world.wait_served(&[state.id], "first state").await;

    let newer = events::state(
        &maintainer,
        "nopush",
        &[("refs/heads/dev", &c2)],
        Some("ref: refs/heads/dev"),
        events::now(),
    );
    world
        .publish(&newer)
        .await
        .assert_served("newer state whose commit is present");
    world
        .wait_refs(&pk, "nopush", &[("refs/heads/dev", &c2)])
        .await;
    let head = grasp_tests::eventually(PROMPTLY, "HEAD moves to dev", || async {
        let head = world.head_symref(&pk, "nopush").await;
        (head.as_deref() == Some("refs/heads/dev")).then_some(head)
    })
    .await;
    assert_eq!(head.as_deref(), Some("refs/heads/dev"));
    assert!(world.is_served(newer.id).await);
}

#[tokio::test]
async fn release_before_push_response() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let announcement = world.announce(&owner, "prompt", &[]).await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let state = events::main_state(&owner, "prompt", &c1, events::now());
    world.publish_purgatory(&state, "state").await;
    let observer = world.client().await;
    work.push(&world.repo_url(&pk, "prompt"), &["main"])
        .await
        .expect_ok("push");
    // One REQ, no retry: the release happened before git push returned.
    let found = observer
        .query_ids(Filter::new().ids([announcement.id, state.id]))
        .await;
    World::assert_ids(
        &found,
        &[announcement.id, state.id],
        "REQ right after git push returned",
    );
    let refs = world.refs(&pk, "prompt").await;
    assert_eq!(refs.get("refs/heads/main"), Some(&c1));
}

#[tokio::test]
async fn maintainer_without_announcement() {
    let world = listed_world().await;
    let owner = Keys::generate();
    let maintainer = Keys::generate();
    let pk = owner.public_key();
    world
        .announce(&owner, "quiet", &[maintainer.public_key()])
        .await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let state = events::main_state(&maintainer, "quiet", &c1, events::now());
    world
        .publish_purgatory(&state, "state by a maintainer without an announcement")
        .await;
    work.push(&world.repo_url(&pk, "quiet"), &["main"])
        .await
        .expect_ok("push authorized by that state");
    world.wait_served(&[state.id], "state released").await;
    world
        .wait_refs(&pk, "quiet", &[("refs/heads/main", &c1)])
        .await;
}

#[tokio::test]
async fn unauthorized_ref_namespaces() {
    let world = World::start().await;
    let owner = Keys::generate();
    let repo = world.hosted(&owner, "namespaces", &[]).await;
    let main = repo.main.clone();
    for target in [
        "refs/foo/bar",
        "refs/notes/commits",
        "refs/pull/1/head",
        "refs/remotes/origin/main",
        "refs/changes/01/1/1",
    ] {
        let out = repo
            .work
            .push(&repo.url, &[&format!("{main}:{target}")])
            .await;
        out.expect_refused(&format!("push to {target}"));
        assert!(
            out.rejections().iter().all(|r| r.contains("refs/")),
            "the reason for {target} does not mention ref names: {out}"
        );
    }
    let refs = world.refs(&repo.owner_pk(), "namespaces").await;
    let names: Vec<&String> = refs.keys().collect();
    assert!(
        refs.keys()
            .all(|r| r == "HEAD" || r.starts_with("refs/heads/") || r.starts_with("refs/tags/")),
        "refs written outside heads/tags: {names:?}"
    );
}

#[tokio::test]
async fn deletion_removes_purgatory_state() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "deleted", &[]).await;
    let url = world.repo_url(&pk, "deleted");
    let work = Work::init().await;
    let c1 = work.commit("one").await;

    // By id.
    let state = events::main_state(&owner, "deleted", &c1, events::at(-20));
    world.publish_purgatory(&state, "state").await;
    let deletion = events::deletion(&owner, &[state.id], &[], &[events::STATE], events::at(-15));
    world
        .publish(&deletion)
        .await
        .assert_served("deletion by id of a purgatory state");
    work.push(&url, &["main"])
        .await
        .expect_refused("push matching the deleted state");
    world.assert_not_served(state.id, "deleted state").await;

    // By coordinate: every version up to the deletion's created_at.
    let again = events::main_state(&owner, "deleted", &c1, events::at(-10));
    world.publish_purgatory(&again, "a newer version").await;
    let deletion = events::deletion(
        &owner,
        &[],
        &[state_coordinate(&pk, "deleted")],
        &[events::STATE],
        events::at(-5),
    );
    world
        .publish(&deletion)
        .await
        .assert_served("deletion by coordinate");
    work.push(&url, &["main"])
        .await
        .expect_refused("push matching the state deleted by coordinate");
    world.assert_not_served(again.id, "deleted state").await;
    world.wait_refs(&pk, "deleted", &[]).await;
    assert!(
        world.is_served(deletion.id).await,
        "the deletion itself is stored"
    );
}

#[tokio::test]
async fn deletion_accepted_for_purgatory_events() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "gone", &[]).await;
    let url = world.repo_url(&pk, "gone");
    let work = Work::init().await;
    let c1 = work.commit("one").await;

    let by_e = events::main_state(&owner, "gone", &c1, events::at(-20));
    world.publish_purgatory(&by_e, "state").await;
    let deletion = events::deletion(&owner, &[by_e.id], &[], &[events::STATE], events::at(-18));
    world
        .publish(&deletion)
        .await
        .assert_served("kind 5 by e with k 30618");
    work.push(&url, &["main"])
        .await
        .expect_refused("push of the deleted state's commit");
    let ok = world.publish(&by_e).await;
    ok.assert_refused("invalid:", "deleted state sent again");

    let by_a = events::main_state(&owner, "gone", &c1, events::at(-10));
    world.publish_purgatory(&by_a, "another state").await;
    let deletion = events::deletion(
        &owner,
        &[],
        &[state_coordinate(&pk, "gone")],
        &[],
        events::at(-5),
    );
    world.publish(&deletion).await.assert_served("kind 5 by a");
    work.push(&url, &["main"])
        .await
        .expect_refused("push of the state deleted by coordinate");
    world
        .publish(&by_a)
        .await
        .assert_refused("invalid:", "state deleted by coordinate sent again");

    // Someone else cannot delete the owner's events.
    let later = events::main_state(&owner, "gone", &c1, events::now());
    world
        .publish_purgatory(&later, "a state after the deletions")
        .await;
    let forged = events::deletion(
        &Keys::generate(),
        &[later.id],
        &[],
        &[events::STATE],
        events::now(),
    );
    let _ = world.publish(&forged).await;
    work.push(&url, &["main"])
        .await
        .expect_ok("push authorized by the state a stranger tried to delete");
    world.wait_served(&[later.id], "state released").await;
}

#[tokio::test]
async fn ann_released_by_push() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();

    // A live subscriber through nostr-sdk, connected before anything happens.
    let client = Client::default();
    client
        .add_relay(world.server.relay_url())
        .await
        .expect("add relay");
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    let mut notifications = client.notifications();
    client
        .subscribe(Filter::new().author(pk), None)
        .await
        .expect("subscribe");
    let raw = world.client().await;
    let mut live = raw.subscribe(vec![Filter::new().author(pk)]).await;

    let announcement = world.announce(&owner, "released", &[]).await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let state = events::main_state(&owner, "released", &c1, events::now());
    world.publish_purgatory(&state, "state").await;
    assert!(
        live.drain(Duration::from_millis(300)).await.is_empty(),
        "purgatory events delivered live"
    );
    work.push(&world.repo_url(&pk, "released"), &["main"])
        .await
        .expect_ok("push");
    let found = world
        .relay
        .query_ids(Filter::new().ids([announcement.id, state.id]))
        .await;
    World::assert_ids(&found, &[announcement.id, state.id], "REQ after the push");
    live.expect_ids(&[announcement.id, state.id], PROMPTLY)
        .await;

    let wanted = [announcement.id, state.id];
    let mut seen = Vec::new();
    within(PROMPTLY, "nostr-sdk receives both events live", async {
        while !wanted.iter().all(|id| seen.contains(id)) {
            match notifications.recv().await {
                Ok(RelayPoolNotification::Event { event, .. }) => seen.push(event.id),
                Ok(_) => {}
                Err(e) => panic!("notifications: {e}"),
            }
        }
    })
    .await;
    client.disconnect().await;
}

#[tokio::test]
async fn state_syncs_all_owner_repos() {
    let world = World::start().await;
    let owner = Keys::generate();
    let maintainer = Keys::generate();
    let (pk, mpk) = (owner.public_key(), maintainer.public_key());
    let owner_ann = world.announce(&owner, "mirrored", &[mpk]).await;
    let _maint_ann = world.announce(&maintainer, "mirrored", &[pk]).await;
    assert!(world.repo_exists(&mpk, "mirrored").await);

    let work = Work::init().await;
    let c1 = work.commit("one").await;
    work.branch_from("dev", &c1).await;
    let c2 = work.commit("two").await;
    let state = events::state(
        &owner,
        "mirrored",
        &[("refs/heads/main", &c1), ("refs/heads/dev", &c2)],
        Some("ref: refs/heads/dev"),
        events::now(),
    );
    world.publish_purgatory(&state, "owner's state").await;
    work.push(&world.repo_url(&pk, "mirrored"), &["main", "dev"])
        .await
        .expect_ok("push to the owner's repo");
    world
        .wait_served(&[state.id, owner_ann.id], "released by the push")
        .await;
    let expected = [
        ("refs/heads/main", c1.as_str()),
        ("refs/heads/dev", c2.as_str()),
    ];
    world.wait_refs(&pk, "mirrored", &expected).await;
    world.wait_refs(&mpk, "mirrored", &expected).await;
    assert_eq!(
        world.head_symref(&mpk, "mirrored").await.as_deref(),
        Some("refs/heads/dev"),
        "HEAD of the other owner's repo"
    );
    // The objects really are there: clone the maintainer's copy.
    let (out, dir) = world
        .git
        .clone_repo(&world.repo_url(&mpk, "mirrored"), &[])
        .await;
    out.expect_ok("clone of the other owner's repo");
    let head = world
        .git
        .run(Some(&dir.path().join("repo")), &["rev-parse", "HEAD"])
        .await;
    assert_eq!(head.stdout.trim(), c2);
}
