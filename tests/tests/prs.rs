//! SCENARIOS.md "Pull requests".

use std::time::Duration;

use grasp_tests::events::{self, coordinate};
use grasp_tests::eventually;
use grasp_tests::fixture::{Hosted, PROMPTLY, World, random_event_id};
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::Keys;
use grasp_tests::server::Options;

/// A contributor's clone of `repo` with two alternative commits on top of `main`.
struct Contributor {
    keys: Keys,
    work: Work,
    /// The commit the PR names.
    tip: String,
    /// Another commit (the wrong tip).
    other: String,
}

async fn contributor(repo: &Hosted) -> Contributor {
    // A fresh repository that fetched main, so the commits sit on top of it.
    let work = Work::init().await;
    work.git(&["fetch", "-q", &repo.url, "main:refs/remotes/origin/main"])
        .await
        .expect_ok("fetch main");
    work.branch_from("feature", "refs/remotes/origin/main")
        .await;
    let tip = work.commit("the feature").await;
    work.branch_from("alternative", "refs/remotes/origin/main")
        .await;
    let other = work.commit("something else").await;
    Contributor {
        keys: Keys::generate(),
        work,
        tip,
        other,
    }
}

fn nostr_ref(id: &str) -> String {
    format!("refs/nostr/{id}")
}

#[tokio::test]
async fn pr_event_first() {
    let world = World::start().await;
    let repo = world.hosted(&Keys::generate(), "prs", &[]).await;
    let c = contributor(&repo).await;
    let pr = events::pull_request(
        &c.keys,
        &[repo.coordinate()],
        &c.tip,
        std::slice::from_ref(&repo.url),
        events::now(),
    );
    world.publish_purgatory(&pr, "PR before its commit").await;
    world.assert_not_served(pr.id, "PR before its commit").await;
    let target = nostr_ref(&pr.id.to_hex());
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.tip)])
        .await
        .expect_ok("push of the PR's commit to refs/nostr/<id>");
    world.wait_served(&[pr.id], "PR released by the push").await;
    let refs = world.refs(&repo.owner_pk(), &repo.d).await;
    assert_eq!(refs.get(&target), Some(&c.tip), "refs: {refs:?}");
    assert_eq!(
        refs.get("refs/heads/main"),
        Some(&repo.main),
        "main untouched"
    );
}

#[tokio::test]
async fn pr_git_first_placeholder() {
    let world = World::start().await;
    let repo = world.hosted(&Keys::generate(), "gitfirst", &[]).await;
    let c = contributor(&repo).await;
    let pr = events::pull_request(
        &c.keys,
        &[repo.coordinate()],
        &c.tip,
        std::slice::from_ref(&repo.url),
        events::now(),
    );
    let target = nostr_ref(&pr.id.to_hex());
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.tip)])
        .await
        .expect_ok("push to refs/nostr/<id> before the event exists");
    world
        .publish(&pr)
        .await
        .assert_served("PR whose commit was pushed first");
    assert!(world.is_served(pr.id).await, "PR not released at once");
    let refs = world.refs(&repo.owner_pk(), &repo.d).await;
    assert_eq!(refs.get(&target), Some(&c.tip));
}

#[tokio::test]
async fn pr_tip_mismatch_refused() {
    let world = World::start().await;
    let repo = world.hosted(&Keys::generate(), "mismatch", &[]).await;
    let c = contributor(&repo).await;
    let pr = events::pull_request(
        &c.keys,
        &[repo.coordinate()],
        &c.tip,
        std::slice::from_ref(&repo.url),
        events::now(),
    );
    world.publish_purgatory(&pr, "PR").await;
    let target = nostr_ref(&pr.id.to_hex());
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.other)])
        .await
        .expect_refused("push of another commit than the PR's c tag");
    let refs = world.refs(&repo.owner_pk(), &repo.d).await;
    assert!(!refs.contains_key(&target), "wrong tip written: {refs:?}");
    world
        .assert_not_served(pr.id, "PR after a wrong push")
        .await;
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.tip)])
        .await
        .expect_ok("push of the right commit");
    world.wait_served(&[pr.id], "PR released").await;
}

#[tokio::test]
async fn pr_git_first_wrong_tip() {
    let world = World::start().await;
    let repo = world.hosted(&Keys::generate(), "wrongtip", &[]).await;
    let c = contributor(&repo).await;
    let pr = events::pull_request(
        &c.keys,
        &[repo.coordinate()],
        &c.tip,
        std::slice::from_ref(&repo.url),
        events::now(),
    );
    let target = nostr_ref(&pr.id.to_hex());
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.other)])
        .await
        .expect_ok("git-first push (of what will be the wrong commit)");
    let refs = world.refs(&repo.owner_pk(), &repo.d).await;
    assert_eq!(refs.get(&target), Some(&c.other));

    world
        .publish_purgatory(&pr, "PR naming another commit than the one pushed")
        .await;
    eventually(PROMPTLY, "the wrong refs/nostr ref is deleted", || async {
        let refs = world.refs(&repo.owner_pk(), &repo.d).await;
        (!refs.contains_key(&target)).then_some(())
    })
    .await;
    world
        .assert_not_served(pr.id, "PR with a wrong tip on the server")
        .await;

    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.other)])
        .await
        .expect_refused("re-push of the wrong commit");
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.tip)])
        .await
        .expect_ok("push of the right commit");
    world
        .wait_served(&[pr.id], "PR released by the right commit")
        .await;
    let refs = world.refs(&repo.owner_pk(), &repo.d).await;
    assert_eq!(refs.get(&target), Some(&c.tip));
}

#[tokio::test]
async fn nostr_ref_requires_event_id() {
    let world = World::start().await;
    let repo = world.hosted(&Keys::generate(), "nostrref", &[]).await;
    let c = contributor(&repo).await;
    let upper = random_event_id().to_uppercase();
    let short = &random_event_id()[..63];
    let long = format!("{}0", random_event_id());
    for name in [
        "123",
        upper.as_str(),
        short,
        long.as_str(),
        "not-hex",
        "x/y",
    ] {
        let target = nostr_ref(name);
        c.work
            .push(&repo.url, &[&format!("{}:{target}", c.tip)])
            .await
            .expect_refused(&format!("push to {target}"));
    }
    let refs = world.refs(&repo.owner_pk(), &repo.d).await;
    assert!(
        refs.keys().all(|r| !r.starts_with("refs/nostr/")),
        "malformed refs/nostr refs written: {refs:?}"
    );
    // A well-formed one is fine.
    let target = nostr_ref(&random_event_id());
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.tip)])
        .await
        .expect_ok("push to a well-formed refs/nostr/<id>");
}

#[tokio::test]
async fn pr_update() {
    let world = World::start().await;
    let repo = world.hosted(&Keys::generate(), "updates", &[]).await;
    let c = contributor(&repo).await;
    let pr = events::pull_request(
        &c.keys,
        &[repo.coordinate()],
        &c.tip,
        std::slice::from_ref(&repo.url),
        events::at(-10),
    );
    world.publish_purgatory(&pr, "PR").await;
    c.work
        .push(
            &repo.url,
            &[&format!("{}:{}", c.tip, nostr_ref(&pr.id.to_hex()))],
        )
        .await
        .expect_ok("push of the PR");
    world.wait_served(&[pr.id], "PR released").await;

    // The update moves the tip on top of the old one.
    c.work.checkout("feature").await;
    let new_tip = c.work.commit("review fixes").await;
    let update = events::pull_request_update(
        &c.keys,
        &[repo.coordinate()],
        &pr,
        &new_tip,
        std::slice::from_ref(&repo.url),
        events::now(),
    );
    world
        .publish_purgatory(&update, "PR update before its commit")
        .await;
    let target = nostr_ref(&update.id.to_hex());
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.other)])
        .await
        .expect_refused("push of a commit other than the update's c tag");
    c.work
        .push(&repo.url, &[&format!("{new_tip}:{target}")])
        .await
        .expect_ok("push of the update's commit");
    world.wait_served(&[update.id], "PR update released").await;

    // Git first works for updates too.
    let newer_tip = c.work.commit("more fixes").await;
    let second = events::pull_request_update(
        &c.keys,
        &[repo.coordinate()],
        &pr,
        &newer_tip,
        std::slice::from_ref(&repo.url),
        events::at(1),
    );
    c.work
        .push(
            &repo.url,
            &[&format!("{newer_tip}:{}", nostr_ref(&second.id.to_hex()))],
        )
        .await
        .expect_ok("git-first push of an update");
    world
        .publish(&second)
        .await
        .assert_served("update whose commit was pushed first");
}

#[tokio::test]
async fn pr_mirrored_to_owner_repos() {
    let world = World::start().await;
    let owner = Keys::generate();
    let maintainer = Keys::generate();
    let (pk, mpk) = (owner.public_key(), maintainer.public_key());
    world.announce(&maintainer, "mirror", &[pk]).await;
    let repo = world.hosted(&owner, "mirror", &[mpk]).await;
    let mirror_url = world.repo_url(&mpk, "mirror");
    world
        .wait_refs(&mpk, "mirror", &[("refs/heads/main", &repo.main)])
        .await;

    let c = contributor(&repo).await;
    let pr = events::pull_request(
        &c.keys,
        &[coordinate(&pk, "mirror"), coordinate(&mpk, "mirror")],
        &c.tip,
        std::slice::from_ref(&repo.url),
        events::now(),
    );
    world
        .publish_purgatory(&pr, "PR tagging both owners' repos")
        .await;
    let target = nostr_ref(&pr.id.to_hex());
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.tip)])
        .await
        .expect_ok("push of the PR to the owner's repo");
    world.wait_served(&[pr.id], "PR released").await;
    for (who, key) in [("owner", pk), ("maintainer", mpk)] {
        eventually(
            PROMPTLY,
            &format!("{target} in the {who}'s repo"),
            || async {
                let refs = world.refs(&key, "mirror").await;
                (refs.get(&target) == Some(&c.tip)).then_some(())
            },
        )
        .await;
    }
    // The commit itself is in the maintainer's repo.
    let fresh = Work::init().await;
    fresh
        .git(&[
            "fetch",
            "-q",
            &mirror_url,
            &format!("{target}:refs/heads/pr"),
        ])
        .await
        .expect_ok("fetch of the PR ref from the maintainer's repo");
    assert_eq!(fresh.rev("refs/heads/pr").await, c.tip);
}

#[tokio::test]
async fn placeholder_expires() {
    let world = World::start_with(Options::default().purgatory_expiry("3s")).await;
    let owner = Keys::generate();
    // The repository must be served before the short expiry removes its announcement.
    let repo = world.hosted(&owner, "placeholder", &[]).await;
    let c = contributor(&repo).await;
    let target = nostr_ref(&random_event_id());
    c.work
        .push(&repo.url, &[&format!("{}:{target}", c.tip)])
        .await
        .expect_ok("git-first push with no event");
    let refs = world.refs(&repo.owner_pk(), &repo.d).await;
    assert_eq!(refs.get(&target), Some(&c.tip));
    eventually(
        Duration::from_secs(12),
        "the placeholder ref is removed",
        || async {
            let refs = world.refs(&repo.owner_pk(), &repo.d).await;
            (!refs.contains_key(&target)).then_some(())
        },
    )
    .await;
    let refs = world.refs(&repo.owner_pk(), &repo.d).await;
    assert_eq!(
        refs.get("refs/heads/main"),
        Some(&repo.main),
        "main untouched"
    );
}

/// Issue 14: anonymous `refs/nostr/<random id>` pushes filled purgatory's events' total.
/// Placeholders now have budgets of their own, checked before git writes: a push of too
/// many new ones is refused whole, an address is capped, and none of it keeps a
/// maintainer's state out of purgatory.
#[tokio::test]
async fn placeholder_budget_keeps_anonymous_pushes_apart() {
    let options = Options::default()
        .flag("--max-placeholders-per-push", "5")
        .flag("--max-placeholders-per-address", "8");
    let world = World::start_with(options).await;
    let owner = Keys::generate();
    let repo = world.hosted(&owner, "budget", &[]).await;
    let c = contributor(&repo).await;
    let specs = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| format!("{}:{}", c.tip, nostr_ref(&random_event_id())))
            .collect()
    };
    let too_many = specs(6);
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let out = c.work.push(&repo.url, &refs).await;
    out.expect_refused("six new placeholders in one push");
    assert!(
        out.rejections().iter().any(|r| r.contains("limit 5")),
        "the reason names the limit: {:?}",
        out.rejections()
    );
    let after = world.refs(&repo.owner_pk(), &repo.d).await;
    assert!(
        after.keys().all(|r| !r.starts_with("refs/nostr/")),
        "nothing written: {after:?}"
    );
    for _ in 0..2 {
        let four = specs(4);
        let refs: Vec<&str> = four.iter().map(String::as_str).collect();
        c.work
            .push(&repo.url, &refs)
            .await
            .expect_ok("four placeholders");
    }
    let one = specs(1);
    let out = c.work.push(&repo.url, &[one[0].as_str()]).await;
    out.expect_refused("a ninth placeholder from this address");
    assert!(
        out.rejections().iter().any(|r| r.contains("your address")),
        "{:?}",
        out.rejections()
    );
    // Maintainers' events still get into purgatory (a commit nobody pushed yet).
    let missing = "1234567890abcdef1234567890abcdef12345678";
    let st = events::state(
        &owner,
        &repo.d,
        &[("refs/heads/main", missing)],
        Some("refs/heads/main"),
        events::now(),
    );
    world
        .publish_purgatory(&st, "a state after the placeholders")
        .await;
}
