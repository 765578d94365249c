//! SCENARIOS.md "Announcements and acceptance" (the relay side), plus
//! `oversized_event_refused` and `state_malformed_oid_waits`.

use std::time::Duration;

use grasp_tests::events::{self, Announcement, coordinate, tag};
use grasp_tests::fixture::{PROMPTLY, World};
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::{Filter, JsonUtil, Keys, Kind};
use grasp_tests::server::Options;
use grasp_tests::{DUPLICATE_IN_PURGATORY, eventually};

#[tokio::test]
async fn oversized_event_refused() {
    let world = World::start_with(Options::default().flag("--max-event-size", "4KiB")).await;
    let keys = Keys::generate();
    let big = events::note(&keys, &"x".repeat(8 * 1024), Vec::new());
    let ok = world.publish(&big).await;
    ok.assert_refused("invalid:", "an 8 KiB event over a 4 KiB limit");
    assert!(
        ok.message.contains("too large") || ok.message.contains("size"),
        "the refusal says why: {ok}"
    );
    assert!(
        !world.relay.is_closed(),
        "connection closed after a refused event"
    );

    // The connection stays usable: another event gets its own verdict, a REQ its EOSE.
    let small = events::note(&keys, "small", Vec::new());
    let ok = world.publish(&small).await;
    assert_eq!(ok.id, small.id.to_hex());
    assert!(
        world
            .relay
            .query(vec![Filter::new().id(big.id)])
            .await
            .is_empty(),
        "the oversized event was stored"
    );
    assert!(!world.relay.is_closed());
}

#[tokio::test]
async fn bad_signature_refused() {
    let world = World::start().await;
    let owner = Keys::generate();
    let good = world.announcement(&owner, "sig", &[]);
    let mut json: serde_json::Value = serde_json::from_str(&good.as_json()).expect("json");

    // Content changed after signing: the id no longer matches.
    let mut wrong_id = json.clone();
    wrong_id["content"] = "tampered".into();
    let ok = world
        .relay
        .publish_raw(&good.id.to_hex(), wrong_id.to_string())
        .await;
    ok.assert_refused("invalid:", "event whose id does not match");

    // A signature by another key.
    let other = world.announcement(&Keys::generate(), "sig", &[]);
    json["sig"] = other.sig.to_string().into();
    let ok = world
        .relay
        .publish_raw(&good.id.to_hex(), json.to_string())
        .await;
    ok.assert_refused("invalid:", "event with a bad signature");

    // Nothing changed: not stored, no repository created, and the real event is new.
    world
        .assert_not_served(good.id, "tampered announcement")
        .await;
    assert!(
        !world.repo_exists(&owner.public_key(), "sig").await,
        "a refused announcement created a repository"
    );
    world
        .publish(&good)
        .await
        .assert_purgatory("the genuine announcement afterwards");
}

#[tokio::test]
async fn purgatory_never_leaks() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let d = "leaky";
    let watcher = world.client().await;
    let mut live = watcher
        .subscribe(vec![
            Filter::new().author(pk),
            Filter::new().kinds([Kind::from(30617), Kind::from(30618)]),
        ])
        .await;
    let announcement = Announcement::on(&world.server, &pk, d)
        .with_tag(&["t", "alpha"])
        .with_tag(&["t", "beta"])
        .with_tag(&["r", "0123456789abcdef0123456789abcdef01234567", "euc"])
        .sign(&owner);
    world
        .publish_purgatory(&announcement, "new announcement")
        .await;
    let work = Work::init().await;
    let main = work.commit("never pushed").await;
    let state = events::state(
        &owner,
        d,
        &[("refs/heads/main", &main)],
        Some("ref: refs/heads/main"),
        events::now(),
    );
    world.publish_purgatory(&state, "state without data").await;

    let ids = [announcement.id, state.id];
    let filters = vec![
        Filter::new().ids(ids),
        Filter::new().id(announcement.id),
        Filter::new().author(pk),
        Filter::new().author(pk).kind(Kind::from(30617)),
        Filter::new().kinds([Kind::from(30617), Kind::from(30618)]),
        Filter::new().identifier(d),
        Filter::new().kind(Kind::from(30618)).identifier(d),
        Filter::new().hashtags(["alpha", "beta", "gamma"]),
        Filter::new().hashtag("beta"),
        Filter::new().reference("0123456789abcdef0123456789abcdef01234567"),
        Filter::new(),
        Filter::new().limit(100),
    ];
    for filter in filters {
        let found = world.relay.query(vec![filter.clone()]).await;
        assert!(
            found.iter().all(|e| !ids.contains(&e.id)),
            "filter {} returned a purgatory event",
            filter.as_json()
        );
    }
    // All filters in one REQ, on another connection.
    let other = world.client().await;
    let found = other
        .query(vec![
            Filter::new().ids(ids),
            Filter::new().author(pk),
            Filter::new().identifier(d),
        ])
        .await;
    assert!(found.is_empty(), "purgatory events returned: {found:?}");
    let delivered = live.drain(Duration::from_millis(500)).await;
    assert!(
        delivered.iter().all(|e| !ids.contains(&e.id)),
        "purgatory event delivered live"
    );
    assert!(live.stored.is_empty());
}

#[tokio::test]
async fn duplicate_in_purgatory() {
    let world = World::start().await;
    let owner = Keys::generate();
    let announcement = world.announce(&owner, "dup", &[]).await;
    let ok = world.publish(&announcement).await;
    assert!(
        ok.accepted && ok.message == DUPLICATE_IN_PURGATORY,
        "announcement sent again: expected OK true {DUPLICATE_IN_PURGATORY:?}, got {ok}"
    );
    let state = events::main_state(
        &owner,
        "dup",
        "1111111111111111111111111111111111111111",
        events::now(),
    );
    world.publish_purgatory(&state, "state").await;
    let ok = world.publish(&state).await;
    assert!(
        ok.accepted && ok.message == DUPLICATE_IN_PURGATORY,
        "state sent again: expected OK true {DUPLICATE_IN_PURGATORY:?}, got {ok}"
    );
    // Changes nothing: still waiting, still not served, from a second connection too.
    let other = world.client().await;
    let ok = other.publish(&state).await;
    assert_eq!(ok.message, DUPLICATE_IN_PURGATORY, "{ok}");
    world
        .assert_not_served(announcement.id, "announcement")
        .await;
    world.assert_not_served(state.id, "state").await;
    assert!(world.repo_exists(&owner.public_key(), "dup").await);
}

#[tokio::test]
async fn related_events_accepted() {
    let world = World::start().await;
    let owner = Keys::generate();
    let repo = world.hosted(&owner, "related", &[]).await;
    let user = Keys::generate();
    let coord = repo.coordinate();

    let issue = events::issue(&user, &coord, "a bug");
    let patch = events::patch(&user, &coord);
    let comment = events::comment(&owner, &issue, &coord);
    let status = events::status_open(&user, &patch, &coord);
    for (event, what) in [
        (&issue, "issue"),
        (&patch, "patch"),
        (&comment, "comment on the issue"),
        (&status, "status on the patch"),
    ] {
        world.publish(event).await.assert_served(what);
    }
    let ids = [issue.id, patch.id, comment.id, status.id];
    let found = world.relay.query_ids(Filter::new().ids(ids)).await;
    World::assert_ids(&found, &ids, "related events");
    let by_tag = world
        .relay
        .query_ids(Filter::new().custom_tag(
            grasp_tests::nostr_sdk::prelude::SingleLetterTag::lowercase(
                grasp_tests::nostr_sdk::prelude::Alphabet::A,
            ),
            coord.clone(),
        ))
        .await;
    World::assert_ids(&by_tag, &[issue.id, patch.id], "#a filter");

    // The same events for a repository nobody announced here.
    let unknown = coordinate(&Keys::generate().public_key(), "related");
    let issue = events::issue(&user, &unknown, "a bug");
    let patch = events::patch(&user, &unknown);
    let comment = events::comment(&owner, &issue, &unknown);
    let status = events::status_open(&user, &patch, &unknown);
    for (event, what) in [
        (&issue, "issue on an unknown repo"),
        (&patch, "patch on an unknown repo"),
        (&comment, "comment on an unknown issue"),
        (&status, "status on an unknown patch"),
    ] {
        world.publish(event).await.assert_refused("blocked:", what);
        world.assert_not_served(event.id, what).await;
    }
}

#[tokio::test]
async fn related_by_any_reference() {
    let world = World::start().await;
    let owner = Keys::generate();
    let repo = world.hosted(&owner, "refs", &[]).await;
    let user = Keys::generate();
    let coord = repo.coordinate();

    let issue = events::issue(&user, &coord, "root");
    world.publish(&issue).await.assert_served("issue (a)");
    let issue_id = issue.id.to_hex();
    let cases = [
        ("A coordinate", vec![tag(&["A", &coord])]),
        ("e id", vec![tag(&["e", &issue_id])]),
        ("E id", vec![tag(&["E", &issue_id])]),
        ("q id", vec![tag(&["q", &issue_id])]),
        ("q coordinate", vec![tag(&["q", &coord])]),
    ];
    let mut accepted = vec![issue.id];
    for (what, tags) in cases {
        let event = events::note(&user, what, tags);
        world.publish(&event).await.assert_served(what);
        accepted.push(event.id);
    }
    // Transitive: a reply to an accepted reply.
    let reply = events::note(&user, "reply", vec![tag(&["e", &accepted[2].to_hex()])]);
    world
        .publish(&reply)
        .await
        .assert_served("reply to an accepted reply");
    let reply2 = events::note(&owner, "reply 2", vec![tag(&["e", &reply.id.to_hex()])]);
    world
        .publish(&reply2)
        .await
        .assert_served("reply to that reply");
    accepted.extend([reply.id, reply2.id]);

    // Forward: an accepted issue q-tags an event that arrives later.
    let later = events::note(&user, "quoted before it existed", Vec::new());
    let quoting = events::sign(
        &user,
        events::ISSUE,
        "see the note",
        vec![
            tag(&["a", &coord]),
            tag(&["subject", "quoting"]),
            tag(&["q", &later.id.to_hex()]),
        ],
        events::now(),
    );
    world
        .publish(&quoting)
        .await
        .assert_served("issue quoting a future event");
    world
        .publish(&later)
        .await
        .assert_served("the event an accepted issue quoted");
    accepted.extend([quoting.id, later.id]);

    let found = world
        .relay
        .query_ids(Filter::new().ids(accepted.clone()))
        .await;
    World::assert_ids(&found, &accepted, "related by reference");

    // An event whose only reference is unknown is refused.
    let stray = events::note(
        &user,
        "stray",
        vec![tag(&["e", &grasp_tests::fixture::random_event_id()])],
    );
    world
        .publish(&stray)
        .await
        .assert_refused("blocked:", "unrelated note");
}

#[tokio::test]
async fn p_tag_not_a_reference() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let _repo = world.hosted(&owner, "known", &[]).await;
    let user = Keys::generate();
    let other_d = coordinate(&pk, "not-announced");

    let comment = events::sign(
        &user,
        events::COMMENT,
        "hello",
        vec![
            tag(&["p", &pk.to_hex()]),
            tag(&["A", &other_d]),
            tag(&["K", "30617"]),
        ],
        events::now(),
    );
    world
        .publish(&comment)
        .await
        .assert_refused("blocked:", "comment with a p tag and another d");
    let only_p = events::note(&user, "hi", vec![tag(&["p", &pk.to_hex()])]);
    world
        .publish(&only_p)
        .await
        .assert_refused("blocked:", "note with only a p tag");
    let issue = events::issue(&user, &other_d, "wrong repo");
    world
        .publish(&issue)
        .await
        .assert_refused("blocked:", "issue naming another d of a known owner");
    // A coordinate matches kind, pubkey and d exactly. (30618:<owner>:known would name
    // the accepted state event, which is a legitimate reference.)
    let wrong_kind = events::issue(&user, &format!("30619:{}:known", pk.to_hex()), "wrong kind");
    world
        .publish(&wrong_kind)
        .await
        .assert_refused("blocked:", "issue naming kind 30619 instead of 30617");
    let wrong_case = events::issue(&user, &coordinate(&pk, "Known"), "wrong case");
    world
        .publish(&wrong_case)
        .await
        .assert_refused("blocked:", "issue naming d `Known` instead of `known`");
    for id in [
        comment.id,
        only_p.id,
        issue.id,
        wrong_kind.id,
        wrong_case.id,
    ] {
        world.assert_not_served(id, "refused event").await;
    }
}

#[tokio::test]
async fn ann_requires_service_in_clone_and_relays() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();

    let mut no_clone = Announcement::on(&world.server, &pk, "noclone");
    no_clone.clone = vec![events::elsewhere_clone(&pk, "noclone")];
    let ok = world.publish(&no_clone.sign(&owner)).await;
    ok.assert_refused("blocked:", "announcement without our clone URL");
    assert!(
        ok.message.contains("clone"),
        "message names the clone tag: {ok}"
    );

    let mut no_relay = Announcement::on(&world.server, &pk, "norelay");
    no_relay.relays = vec![events::ELSEWHERE_RELAY.to_owned()];
    let ok = world.publish(&no_relay.sign(&owner)).await;
    ok.assert_refused("blocked:", "announcement without our relay URL");
    assert!(
        ok.message.contains("relays"),
        "message names the relays tag: {ok}"
    );

    let mut neither = Announcement::elsewhere(&pk, "neither");
    neither.maintainers = Vec::new();
    world
        .publish(&neither.sign(&owner))
        .await
        .assert_refused("blocked:", "announcement listing neither");

    // Our host with somebody else's npub is not our clone URL for this owner.
    let mut wrong_npub = Announcement::on(&world.server, &pk, "wrongnpub");
    wrong_npub.clone = vec![world.repo_url(&Keys::generate().public_key(), "wrongnpub")];
    world
        .publish(&wrong_npub.sign(&owner))
        .await
        .assert_refused("blocked:", "clone URL with another npub");

    for d in ["noclone", "norelay", "neither", "wrongnpub"] {
        assert!(!world.repo_exists(&pk, d).await, "repository {d} created");
    }

    // Several URLs per tag, ours among them, and a trailing slash on the relay: fine.
    let mut several = Announcement::on(&world.server, &pk, "several");
    several
        .clone
        .insert(0, events::elsewhere_clone(&pk, "several"));
    several.relays = vec![
        events::ELSEWHERE_RELAY.to_owned(),
        format!("{}/", world.server.relay_url()),
    ];
    world
        .publish(&several.sign(&owner))
        .await
        .assert_purgatory("announcement listing us among others");
}

#[tokio::test]
async fn ann_new_goes_to_purgatory() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let announcement = world.announcement(&owner, "fresh", &[]);
    world
        .publish(&announcement)
        .await
        .assert_purgatory("new announcement");
    world
        .assert_not_served(announcement.id, "new announcement")
        .await;
    let found = world
        .relay
        .query(vec![
            Filter::new().author(pk),
            Filter::new().identifier("fresh"),
        ])
        .await;
    assert!(
        found.is_empty(),
        "purgatory announcement returned: {found:?}"
    );

    let refs = world.info_refs(&pk, "fresh").await;
    assert_eq!(refs.status, 200, "info/refs of the new (empty) repository");
    assert_eq!(
        refs.header("content-type"),
        Some("application/x-git-upload-pack-advertisement")
    );
    let advertised = world.refs(&pk, "fresh").await;
    assert!(
        advertised.keys().all(|r| r == "HEAD"),
        "empty repository advertises {advertised:?}"
    );
    assert!(
        world.server.repo_dir(&pk, "fresh").join("objects").is_dir(),
        "bare repository on disk"
    );
}

#[tokio::test]
async fn ann_replacement_served_at_once() {
    let world = World::start().await;
    let owner = Keys::generate();
    let repo = world.hosted(&owner, "replaced", &[]).await;
    let newer = Announcement::on(&world.server, &repo.owner_pk(), "replaced")
        .with_tag(&["t", "renamed"])
        .created_at(events::at(5))
        .sign(&owner);
    world
        .publish(&newer)
        .await
        .assert_served("replacement of a served announcement");
    assert!(
        world.is_served(newer.id).await,
        "replacement not served at once"
    );
    let latest = world
        .relay
        .query_ids(
            Filter::new()
                .author(repo.owner_pk())
                .kind(Kind::from(30617))
                .identifier("replaced"),
        )
        .await;
    assert_eq!(
        latest,
        vec![newer.id],
        "the newest announcement replaces the old"
    );
}

#[tokio::test]
async fn ann_maintainer_without_service_accepted() {
    let world = World::start().await;
    let owner = Keys::generate();
    let maintainer = Keys::generate();
    let mpk = maintainer.public_key();
    // The owner's announcement waits in purgatory; that is enough.
    world.announce(&owner, "shared", &[mpk]).await;
    let theirs = Announcement::elsewhere(&mpk, "shared")
        .maintainers(&[owner.public_key()])
        .sign(&maintainer);
    world
        .publish(&theirs)
        .await
        .assert_served("maintainer's announcement listing another server");
    assert!(world.is_served(theirs.id).await);
    assert!(
        !world.repo_exists(&mpk, "shared").await,
        "a bare repository was created for the maintainer's announcement"
    );
    assert!(!world.server.repo_dir(&mpk, "shared").exists());

    // Someone who is not a maintainer gets nothing of the sort.
    let stranger = Keys::generate();
    let stranger_ann = Announcement::elsewhere(&stranger.public_key(), "shared").sign(&stranger);
    world.publish(&stranger_ann).await.assert_refused(
        "blocked:",
        "non-maintainer's announcement listing another server",
    );
}

#[tokio::test]
async fn ann_timer_reset_and_withdrawal() {
    const EXPIRY: u64 = 6;
    let world = World::start_with(Options::default().purgatory_expiry(&format!("{EXPIRY}s"))).await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let step = Duration::from_millis(EXPIRY * 1000 * 2 / 3);

    // t0: two new announcements; "control" gets no reset and expires.
    world.announce(&owner, "control", &[]).await;
    let first = world.announce(&owner, "reset", &[]).await;
    tokio::time::sleep(step).await;
    // t0+4s: a replacement announcement restarts the timer.
    let replacement = Announcement::on(&world.server, &pk, "reset")
        .created_at(events::at(1))
        .with_tag(&["t", "v2"])
        .sign(&owner);
    let ok = world.publish(&replacement).await;
    ok.assert_purgatory("replacement of a purgatory announcement");
    tokio::time::sleep(step).await;
    // t0+8s: past the first deadline (6s) but within the reset one (10s).
    eventually(
        Duration::from_secs(EXPIRY * 2),
        "the control repository expires",
        || async { (!world.repo_exists(&pk, "control").await).then_some(()) },
    )
    .await;
    assert!(
        world.repo_exists(&pk, "reset").await,
        "the replacement did not restart the expiry timer"
    );
    // A state restarts it too.
    let state = events::main_state(
        &owner,
        "reset",
        "2222222222222222222222222222222222222222",
        events::now(),
    );
    world
        .publish_purgatory(&state, "state for the purgatory repo")
        .await;
    tokio::time::sleep(step).await;
    // t0+12s: past the replacement's deadline (10s), within the state's (14s).
    assert!(
        world.repo_exists(&pk, "reset").await,
        "a state did not restart the announcement's expiry timer"
    );

    // A replacement that no longer lists us takes it out of purgatory.
    let withdrawal = Announcement::elsewhere(&pk, "reset")
        .created_at(events::at(2))
        .sign(&owner);
    let ok = world.publish(&withdrawal).await;
    assert!(
        !ok.message.starts_with("purgatory:"),
        "a withdrawal waits in purgatory: {ok}"
    );
    let ok = world.publish(&replacement).await;
    assert_ne!(
        ok.message, DUPLICATE_IN_PURGATORY,
        "the withdrawn announcement is still in purgatory"
    );
    world
        .assert_not_served(first.id, "original announcement")
        .await;
    world
        .assert_not_served(replacement.id, "withdrawn announcement")
        .await;
}

#[tokio::test]
async fn ann_soft_expiry_and_revival() {
    let world = World::start_with(
        Options::default()
            .purgatory_expiry("5s")
            .announcement_soft_expiry("60s"),
    )
    .await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let announcement = world.announce(&owner, "revived", &[]).await;
    let work = Work::init().await;
    let main = work.commit("late data").await;
    assert!(world.repo_exists(&pk, "revived").await);

    // Soft expiry: the repository goes, the event is kept.
    // git stops serving it once its HEAD is gone, a moment before the rest of the
    // directory is: wait for both.
    eventually(
        Duration::from_secs(15),
        "the bare repository is deleted",
        || async {
            let gone = !world.repo_exists(&pk, "revived").await
                && !world.server.repo_dir(&pk, "revived").exists();
            gone.then_some(())
        },
    )
    .await;
    world
        .assert_not_served(announcement.id, "soft-expired announcement")
        .await;

    // A state revives it: the repository is back, with a fresh timer.
    let state = events::main_state(&owner, "revived", &main, events::now());
    world
        .publish(&state)
        .await
        .assert_purgatory("state for a soft-expired announcement");
    eventually(PROMPTLY, "the bare repository is recreated", || async {
        world.repo_exists(&pk, "revived").await.then_some(())
    })
    .await;
    // A push then releases both.
    work.push(&world.repo_url(&pk, "revived"), &["main"])
        .await
        .expect_ok("push of the state's commit");
    world
        .wait_served(
            &[announcement.id, state.id],
            "announcement and state after the push",
        )
        .await;
    world
        .wait_refs(&pk, "revived", &[("refs/heads/main", &main)])
        .await;
}

#[tokio::test]
async fn ann_forgotten_after_24h() {
    let world = World::start_with(
        Options::default()
            .purgatory_expiry("2s")
            .announcement_soft_expiry("2s"),
    )
    .await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let announcement = world.announce(&owner, "forgotten", &[]).await;
    eventually(
        Duration::from_secs(10),
        "the bare repository is deleted",
        || async { (!world.repo_exists(&pk, "forgotten").await).then_some(()) },
    )
    .await;
    // Past soft expiry too: a state finds no announcement to revive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let state = events::main_state(
        &owner,
        "forgotten",
        "3333333333333333333333333333333333333333",
        events::now(),
    );
    let ok = world.publish(&state).await;
    ok.assert_refused("blocked:", "state for a forgotten announcement");
    assert!(!world.repo_exists(&pk, "forgotten").await);
    world
        .assert_not_served(announcement.id, "forgotten announcement")
        .await;
}

#[tokio::test]
async fn state_malformed_oid_waits() {
    let world = World::start_with(Options::default().purgatory_expiry("3s")).await;
    let owner = Keys::generate();
    world.announce(&owner, "malformed", &[]).await;
    let state = events::state(
        &owner,
        "malformed",
        &[("refs/heads/main", "abc123")],
        Some("ref: refs/heads/main"),
        events::now(),
    );
    world
        .publish(&state)
        .await
        .assert_purgatory("state whose ref value is not an object id");
    assert_eq!(world.publish(&state).await.message, DUPLICATE_IN_PURGATORY);
    // It can never be satisfied, so it expires.
    eventually(
        Duration::from_secs(12),
        "the malformed state leaves purgatory",
        || async {
            let ok = world.relay.publish(&state).await;
            (ok.message != DUPLICATE_IN_PURGATORY).then_some(())
        },
    )
    .await;
    world.assert_not_served(state.id, "malformed state").await;
}
