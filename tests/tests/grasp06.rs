//! GRASP-06.md §11: the contributor endpoint `/prs/<npub>/<identifier>.git`, black-box
//! (a real graspd, real git). "Contributor" is a key with no repository here; a "fresh
//! path" is `/prs/<its npub>/<random>.git`.

use std::time::Duration;

use grasp_tests::events::{self, coordinate};
use grasp_tests::eventually;
use grasp_tests::fixture::{PROMPTLY, World, random_event_id};
use grasp_tests::git::{GitOutput, Work};
use grasp_tests::http;
use grasp_tests::nostr_sdk::prelude::{Event, Keys, PublicKey};
use grasp_tests::server::{Options, npub};

fn on() -> Options {
    Options::default().switch("--grasp06")
}

fn prs_url(world: &World, author: &PublicKey, d: &str) -> String {
    format!("{}/prs/{}/{d}.git", world.server.base_url(), npub(author))
}

fn prs_dir(world: &World, author: &PublicKey, d: &str) -> std::path::PathBuf {
    world
        .server
        .data_dir()
        .join("prs")
        .join(npub(author))
        .join(format!("{d}.git"))
}

fn fresh() -> String {
    format!("pr-{}", &random_event_id()[..12])
}

fn nostr_ref(id: &str) -> String {
    format!("refs/nostr/{id}")
}

/// A contributor's PR for `(target, d)` with tip `tip`, `clone` naming `clone`.
fn pr(c: &Keys, target: &PublicKey, d: &str, tip: &str, clone: &str) -> Event {
    events::pull_request(
        c,
        &[coordinate(target, d)],
        tip,
        &[clone.to_owned()],
        events::now(),
    )
}

/// A work tree with one commit; returns it and the commit.
async fn work() -> (Work, String) {
    let work = Work::init().await;
    let tip = work.commit("a contribution").await;
    (work, tip)
}

#[track_caller]
fn assert_rejected(out: &GitOutput, reason: &str, what: &str) {
    out.expect_refused(what);
    assert!(
        out.rejections().iter().any(|r| r == reason),
        "{what}: expected the reason {reason:?}, got {out}"
    );
}

#[tokio::test]
async fn prs_off_404() {
    let world = World::start().await;
    let c = Keys::generate();
    let url = format!(
        "{}/info/refs?service=git-upload-pack",
        prs_url(&world, &c.public_key(), "x")
    );
    let response = http::get(&url, &[("Origin", "https://example.org")])
        .await
        .expect("request");
    assert_eq!(response.status, 404, "{}", response.text());
    assert!(
        response.header("access-control-allow-origin").is_some(),
        "CORS headers kept on the 404: {:?}",
        response.headers
    );
    let doc = http::get(
        &format!("{}/", world.server.base_url()),
        &[("Accept", "application/nostr+json")],
    )
    .await
    .expect("NIP-11");
    let doc: serde_json::Value = serde_json::from_slice(&doc.body).expect("json");
    assert!(
        !doc["supported_grasps"]
            .as_array()
            .expect("supported_grasps")
            .iter()
            .any(|g| g == "GRASP-06"),
        "{doc}"
    );
    let p = pr(
        &c,
        &Keys::generate().public_key(),
        "x",
        &"a".repeat(40),
        &prs_url(&world, &c.public_key(), "x"),
    );
    world
        .publish(&p)
        .await
        .assert_refused("blocked:", "a PR naming /prs/ with GRASP-06 off");
}

#[tokio::test]
async fn prs_nip11_lists_grasp06_when_on() {
    let world = World::start_with(on()).await;
    let doc = http::get(
        &format!("{}/", world.server.base_url()),
        &[("Accept", "application/nostr+json")],
    )
    .await
    .expect("NIP-11");
    let doc: serde_json::Value = serde_json::from_slice(&doc.body).expect("json");
    assert_eq!(
        doc["supported_grasps"],
        serde_json::json!(["GRASP-01", "GRASP-06"])
    );
}

#[tokio::test]
async fn prs_fresh_path_empty_clone() {
    let world = World::start_with(on()).await;
    let c = Keys::generate();
    let d = fresh();
    let url = prs_url(&world, &c.public_key(), &d);
    let (out, _dir) = world.git.clone_repo(&url, &[]).await;
    out.expect_ok("clone of a fresh /prs/ path");
    assert!(world.git.ls_remote(&url).await.is_empty());
    let v0 = world
        .git
        .run(None, &["-c", "protocol.version=0", "ls-remote", &url])
        .await;
    v0.expect_ok("protocol v0 ls-remote");
    assert!(v0.stdout.trim().is_empty(), "{v0}");
    let push_ad = http::get(&format!("{url}/info/refs?service=git-receive-pack"), &[])
        .await
        .expect("receive-pack advertisement");
    assert_eq!(push_ad.status, 200);
    assert!(
        !world
            .server
            .data_dir()
            .join("prs")
            .join(npub(&c.public_key()))
            .exists(),
        "nothing is created by a fetch"
    );
}

#[tokio::test]
async fn prs_push_nostr_ref_accepted() {
    let world = World::start_with(on()).await;
    let c = Keys::generate();
    let url = prs_url(&world, &c.public_key(), &fresh());
    let (work, tip) = work().await;
    let target = nostr_ref(&random_event_id());
    work.push(&url, &[&format!("{tip}:{target}")])
        .await
        .expect_ok("push to refs/nostr/<random id> on a fresh path");
    let refs = world.git.ls_remote(&url).await;
    assert_eq!(refs.get(&target), Some(&tip), "{refs:?}");
    let metrics = metrics(&world).await;
    for line in [
        "graspd_prs_repositories 1",
        "graspd_prs_pushes_total{outcome=\"accepted\"} 1",
        "graspd_purgatory_entries{kind=\"prs_placeholder\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
}

async fn metrics(world: &World) -> String {
    http::get(&format!("{}/metrics", world.server.base_url()), &[])
        .await
        .expect("metrics")
        .text()
}

#[tokio::test]
async fn prs_other_refs_refused() {
    let world = World::start_with(on()).await;
    let c = Keys::generate();
    let d = fresh();
    let url = prs_url(&world, &c.public_key(), &d);
    let (work, tip) = work().await;
    assert_rejected(
        &work.push(&url, &[&format!("{tip}:refs/heads/main")]).await,
        "only refs/nostr/<event-id> may be pushed to /prs/ URLs",
        "a branch",
    );
    assert_rejected(
        &work
            .push(&url, &[&format!("{tip}:refs/nostr/not-a-valid-event-id")])
            .await,
        "refs/nostr/ refs must be named refs/nostr/<64 lowercase hex event id>",
        "a bad event id",
    );
    assert!(
        !prs_dir(&world, &c.public_key(), &d).exists(),
        "no repository is left behind by refused pushes"
    );
    let metrics = metrics(&world).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "graspd_prs_pushes_total{outcome=\"refused\"} 2"),
        "{metrics}"
    );
    let target = nostr_ref(&random_event_id());
    work.push(&url, &[&format!("{tip}:{target}")])
        .await
        .expect_ok("a valid push");
    assert_rejected(
        &work.push(&url, &[&format!(":{target}")]).await,
        "refs/nostr/<event-id> refs cannot be deleted by a push",
        "a deletion",
    );
    assert_eq!(world.git.ls_remote(&url).await.get(&target), Some(&tip));
}

#[tokio::test]
async fn prs_bad_path_404() {
    let world = World::start_with(on()).await;
    let c = Keys::generate();
    let base = world.server.base_url();
    let good = npub(&c.public_key());
    let mut broken = good.clone();
    broken.pop();
    broken.push(if good.ends_with('q') { 'p' } else { 'q' });
    for path in [
        format!("/prs/{}/x.git", c.public_key().to_hex()),
        format!("/prs/{broken}/x.git"),
        format!("/prs/{good}/a..b.git"),
        format!("/prs/{good}/%2E%2E.git"),
        format!("/prs/{good}/a%2Fb.git"),
    ] {
        let response = http::get(
            &format!("{base}{path}/info/refs?service=git-upload-pack"),
            &[],
        )
        .await
        .expect("request");
        assert_eq!(response.status, 404, "{path}: {}", response.text());
    }
    // No web page either.
    let page = http::get(&format!("{base}/prs/{good}/x.git"), &[])
        .await
        .expect("request");
    assert_eq!(page.status, 404);
}

#[tokio::test]
async fn relaxed_pr_waits_in_purgatory() {
    let world = World::start_with(on()).await;
    let c = Keys::generate();
    let d = fresh();
    let p = pr(
        &c,
        &Keys::generate().public_key(),
        &d,
        &"b".repeat(40),
        &prs_url(&world, &c.public_key(), &d),
    );
    world.publish_purgatory(&p, "a relaxed PR").await;
    world
        .assert_not_served(p.id, "a relaxed PR before its push")
        .await;
}

#[tokio::test]
async fn relaxed_pr_needs_clone_tag() {
    let world = World::start_with(on()).await;
    let (c, other) = (Keys::generate(), Keys::generate());
    let target = Keys::generate().public_key();
    let d = fresh();
    let tip = "c".repeat(40);
    let elsewhere = format!(
        "https://elsewhere.example/prs/{}/{d}.git",
        npub(&c.public_key())
    );
    for (clone, what) in [
        (elsewhere, "another host"),
        (prs_url(&world, &other.public_key(), &d), "another npub"),
        (
            prs_url(&world, &c.public_key(), "not-tagged"),
            "a d not in its a tags",
        ),
    ] {
        world
            .publish(&pr(&c, &target, &d, &tip, &clone))
            .await
            .assert_refused("blocked:", what);
    }
}

#[tokio::test]
async fn prs_event_first_release() {
    let world = World::start_with(on()).await;
    let c = Keys::generate();
    let d = fresh();
    let url = prs_url(&world, &c.public_key(), &d);
    let (work, tip) = work().await;
    let p = pr(&c, &Keys::generate().public_key(), &d, &tip, &url);
    world.publish_purgatory(&p, "PR first").await;
    work.push(&url, &[&format!("{tip}:{}", nostr_ref(&p.id.to_hex()))])
        .await
        .expect_ok("push of the PR's commit");
    assert!(
        world.is_served(p.id).await,
        "the PR is served when git push returns"
    );
}

#[tokio::test]
async fn prs_git_first_release() {
    let world = World::start_with(on()).await;
    let c = Keys::generate();
    let d = fresh();
    let url = prs_url(&world, &c.public_key(), &d);
    let (work, tip) = work().await;
    let p = pr(&c, &Keys::generate().public_key(), &d, &tip, &url);
    work.push(&url, &[&format!("{tip}:{}", nostr_ref(&p.id.to_hex()))])
        .await
        .expect_ok("push before the PR");
    world.publish(&p).await.assert_served("PR after its push");
    assert!(world.is_served(p.id).await);
}

#[tokio::test]
async fn prs_mirror_one_way() {
    let world = World::start_with(on()).await;
    let repo = world.hosted(&Keys::generate(), "mirrored", &[]).await;
    let c = Keys::generate();
    let work = Work::init().await;
    work.git(&["fetch", "-q", &repo.url, "main:refs/remotes/origin/main"])
        .await
        .expect_ok("fetch main");
    work.branch_from("feature", "refs/remotes/origin/main")
        .await;
    let tip = work.commit("the feature").await;
    let url = prs_url(&world, &c.public_key(), &repo.d);
    let p = events::pull_request(
        &c,
        &[repo.coordinate()],
        &tip,
        std::slice::from_ref(&url),
        events::now(),
    );
    world
        .publish_purgatory(&p, "PR of a hosted repository")
        .await;
    let target = nostr_ref(&p.id.to_hex());
    work.push(&url, &[&format!("{tip}:{target}")])
        .await
        .expect_ok("push to /prs/");
    assert!(world.is_served(p.id).await, "released by the /prs/ push");
    let refs = world.refs(&repo.owner_pk(), &repo.d).await;
    assert_eq!(refs.get(&target), Some(&tip), "mirrored: {refs:?}");
    let check = Work::init().await;
    check
        .git(&["fetch", "-q", &repo.url, &format!("{target}:refs/fetched")])
        .await
        .expect_ok("the commit is in the owner repository");
    assert_eq!(check.rev("refs/fetched").await, tip);
    // One way: a push to the standard endpoint writes nothing under /prs/.
    let d2 = Keys::generate();
    let tip2 = work.commit("another").await;
    let q = events::pull_request(
        &d2,
        &[repo.coordinate()],
        &tip2,
        std::slice::from_ref(&repo.url),
        events::now(),
    );
    world
        .publish_purgatory(&q, "PR via the standard endpoint")
        .await;
    work.push(
        &repo.url,
        &[&format!("{tip2}:{}", nostr_ref(&q.id.to_hex()))],
    )
    .await
    .expect_ok("standard-endpoint push");
    world
        .wait_served(&[q.id], "released by the standard push")
        .await;
    assert!(
        !world
            .server
            .data_dir()
            .join("prs")
            .join(npub(&d2.public_key()))
            .exists(),
        "nothing under /prs/ for a standard-endpoint push"
    );
}

#[tokio::test]
async fn prs_tip_mismatch() {
    let world = World::start_with(on()).await;
    let c = Keys::generate();
    let d = fresh();
    let url = prs_url(&world, &c.public_key(), &d);
    let work = Work::init().await;
    let a = work.commit("A").await;
    let b = work.commit("B").await;
    let target_pk = Keys::generate().public_key();
    // Event first naming B; C pushes A.
    let p = pr(&c, &target_pk, &d, &b, &url);
    world.publish_purgatory(&p, "PR naming B").await;
    let target = nostr_ref(&p.id.to_hex());
    assert_rejected(
        &work.push(&url, &[&format!("{a}:{target}")]).await,
        &format!(
            "the pull request event {} names tip {b}, not {a}",
            p.id.to_hex()
        ),
        "a push of the wrong tip",
    );
    assert!(world.git.ls_remote(&url).await.is_empty());
    world.assert_not_served(p.id, "PR after a wrong push").await;
    // Git first with A, then the PR naming B: the ref goes on arrival, the PR waits.
    let q = pr(&c, &target_pk, &d, &b, &format!("{url}/"));
    let target = nostr_ref(&q.id.to_hex());
    work.push(&url, &[&format!("{a}:{target}")])
        .await
        .expect_ok("git first with A");
    world
        .publish_purgatory(&q, "PR naming B after A was pushed")
        .await;
    eventually(PROMPTLY, "the wrong tip's ref deleted", || async {
        (!world.git.ls_remote(&url).await.contains_key(&target)).then_some(())
    })
    .await;
    world
        .assert_not_served(q.id, "PR whose tip was not pushed")
        .await;
}

#[tokio::test]
async fn prs_placeholder_expiry_and_limits() {
    let world = World::start_with(
        on().flag("--prs-placeholder-expiry", "2s")
            .flag("--prs-max-push-size", "1MiB"),
    )
    .await;
    let c = Keys::generate();
    let d = fresh();
    let url = prs_url(&world, &c.public_key(), &d);
    let (work, tip) = work().await;
    let target = nostr_ref(&random_event_id());
    work.push(&url, &[&format!("{tip}:{target}")])
        .await
        .expect_ok("an unknown-id push");
    assert!(prs_dir(&world, &c.public_key(), &d).exists());
    eventually(
        Duration::from_secs(15),
        "the placeholder and its repository gone",
        || async { (!prs_dir(&world, &c.public_key(), &d).exists()).then_some(()) },
    )
    .await;
    assert!(world.git.ls_remote(&url).await.is_empty());

    // 20 unconfirmed pushes for one npub, then the 21st is refused.
    for batch in 0..2 {
        let specs: Vec<String> = (0..10)
            .map(|_| format!("{tip}:{}", nostr_ref(&random_event_id())))
            .collect();
        let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
        work.push(&url, &specs)
            .await
            .expect_ok(&format!("batch {batch}"));
    }
    assert_rejected(
        &work
            .push(&url, &[&format!("{tip}:{}", nostr_ref(&random_event_id()))])
            .await,
        &format!(
            "too many unconfirmed pushes for {} (limit 20); publish the pull request event first",
            npub(&c.public_key())
        ),
        "the 21st unconfirmed push",
    );

    // A pack over --prs-max-push-size (1 MiB here: the same check as the 100 MiB default).
    let big = Work::init().await;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..3usize << 20)
        .map(|_| {
            // xorshift64: incompressible enough that the pack stays over 1 MiB.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(big.path().join("big.bin"), noise).expect("write");
    big.git(&["add", "big.bin"]).await.expect_ok("add");
    let big_tip = big.commit("big").await;
    let other = Keys::generate();
    let out = big
        .push(
            &prs_url(&world, &other.public_key(), "big"),
            &[&format!("{big_tip}:{}", nostr_ref(&random_event_id()))],
        )
        .await;
    out.expect_failed("a push over the size limit");
    assert!(
        out.stderr.contains("push too large") || out.stderr.contains("413"),
        "{out}"
    );
    eventually(
        PROMPTLY,
        "no repository left by the oversized push",
        || async { (!prs_dir(&world, &other.public_key(), "big").exists()).then_some(()) },
    )
    .await;

    // Pushes per address and hour (3 here, 30 by default): the next gets 429.
    let limited = World::start_with(on().flag("--prs-pushes-per-ip-per-hour", "3")).await;
    let url = prs_url(&limited, &c.public_key(), &d);
    for _ in 0..3 {
        work.push(&url, &[&format!("{tip}:{}", nostr_ref(&random_event_id()))])
            .await
            .expect_ok("within the hourly count");
    }
    let out = work
        .push(&url, &[&format!("{tip}:{}", nostr_ref(&random_event_id()))])
        .await;
    out.expect_failed("over the hourly count");
    assert!(out.stderr.contains("429"), "{out}");
}

#[tokio::test]
async fn prs_disk_quotas() {
    // Tiny quotas: the first push fits (nothing stored yet), the next one does not.
    let world = World::start_with(on().flag("--prs-max-bytes-per-pubkey", "1KiB")).await;
    let c = Keys::generate();
    let url = prs_url(&world, &c.public_key(), &fresh());
    let (work, tip) = work().await;
    work.push(&url, &[&format!("{tip}:{}", nostr_ref(&random_event_id()))])
        .await
        .expect_ok("the first push");
    assert_rejected(
        &work
            .push(&url, &[&format!("{tip}:{}", nostr_ref(&random_event_id()))])
            .await,
        &format!("contributor storage for {} is full", npub(&c.public_key())),
        "over the per-npub quota",
    );
    let all = World::start_with(on().flag("--prs-max-total-size", "1KiB")).await;
    work.push(
        &prs_url(&all, &c.public_key(), "one"),
        &[&format!("{tip}:{}", nostr_ref(&random_event_id()))],
    )
    .await
    .expect_ok("the first push");
    let other = Keys::generate();
    assert_rejected(
        &work
            .push(
                &prs_url(&all, &other.public_key(), "two"),
                &[&format!("{tip}:{}", nostr_ref(&random_event_id()))],
            )
            .await,
        "contributor storage on this server is full",
        "over the total quota",
    );
    let metrics = metrics(&all).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "graspd_prs_pushes_total{outcome=\"quota\"} 1"),
        "{metrics}"
    );
}
