//! ../shared/spec/MAINTAINERS.md end to end, as ngit 3.x users meet it: an invitation
//! (`m` role tag plus the legacy `maintainers` tag ngit writes for older readers) confers
//! nothing until the invitee accepts, so an invitee's older fork with the same `d` cannot
//! rule the inviting repository; after acceptance the invitee pushes like any maintainer.

use grasp_tests::events::{self, Announcement};
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::{Keys, PublicKey};
use grasp_tests::server::Options;

/// The owner's announcement of `d` as ngit 3.x writes it when inviting `invitee`: the
/// owner as lead, the invitee as maintainer, and both in the legacy tag.
fn inviting(world: &World, owner: &Keys, invitee: &PublicKey, d: &str) -> Announcement {
    let (o, i) = (owner.public_key(), *invitee);
    Announcement::on(&world.server, &o, d)
        .with_tag(&["M", &o.to_hex()])
        .with_tag(&["m", &i.to_hex()])
        .maintainers(&[o, i])
}

/// The attack: the invitee already hosts a fork of `proj` here; its next ordinary push
/// must not move the owner's refs. Under `--maintainer-model listed` (the flat rule) it
/// does — which shows what the reciprocal default prevents.
async fn fork_rules_the_owners_repository(world: World) -> bool {
    let (owner, invitee) = (Keys::generate(), Keys::generate());
    let (o, i) = (owner.public_key(), invitee.public_key());
    world.announce(&invitee, "proj", &[]).await;
    let fork = Work::init().await;
    let f1 = fork.commit("the invitee's old fork").await;
    let s1 = events::main_state(&invitee, "proj", &f1, events::at(-100));
    world.publish_purgatory(&s1, "the fork's state").await;
    fork.push(&world.repo_url(&i, "proj"), &["main"])
        .await
        .expect_ok("push to the invitee's own fork");
    world.wait_served(&[s1.id], "the fork's state").await;

    let ann = inviting(&world, &owner, &i, "proj").sign(&owner);
    world
        .publish_purgatory(&ann, "the inviting announcement")
        .await;
    let work = Work::init().await;
    let c1 = work.commit("the owner's work").await;
    let ours = events::main_state(&owner, "proj", &c1, events::at(-50));
    world.publish_purgatory(&ours, "the owner's state").await;
    // Forced: under the flat rule the fork's refs were copied in on announcement.
    work.push(&world.repo_url(&o, "proj"), &["+main"])
        .await
        .expect_ok("the owner's push");
    world
        .wait_refs(&o, "proj", &[("refs/heads/main", &c1)])
        .await;

    let f2 = fork.commit("an ordinary push to the fork").await;
    let s2 = events::main_state(&invitee, "proj", &f2, events::now());
    world.publish_purgatory(&s2, "the fork's new state").await;
    fork.push(&world.repo_url(&i, "proj"), &["main"])
        .await
        .expect_ok("push to the fork");
    world.wait_served(&[s2.id], "the fork's new state").await;
    // The release path aligns every governed repository before the push returns.
    world.refs(&o, "proj").await.get("refs/heads/main") == Some(&f2)
}

#[tokio::test]
async fn an_invitees_older_fork_does_not_rule_the_repository() {
    let world = World::start().await;
    assert!(
        !fork_rules_the_owners_repository(world).await,
        "an invitee's fork moved the inviting repository's refs"
    );
}

#[tokio::test]
async fn the_listed_model_keeps_the_flat_rule() {
    let world = World::start_with(Options::default().flag("--maintainer-model", "listed")).await;
    assert!(
        fork_rules_the_owners_repository(world).await,
        "under the flat rule the invitee's state governs at once"
    );
}

/// The acceptance flow: the invitee's push is refused with the reason until their own
/// announcement lists the owner back; then the same push is accepted.
#[tokio::test]
async fn an_invitee_accepts_and_then_pushes() {
    let world = World::start().await;
    let (owner, invitee) = (Keys::generate(), Keys::generate());
    let (o, i) = (owner.public_key(), invitee.public_key());
    let ann = inviting(&world, &owner, &i, "team").sign(&owner);
    world
        .publish_purgatory(&ann, "the inviting announcement")
        .await;
    let work = Work::init().await;
    let c1 = work.commit("the owner's work").await;
    let ours = events::main_state(&owner, "team", &c1, events::at(-10));
    world.publish_purgatory(&ours, "the owner's state").await;
    let url = world.repo_url(&o, "team");
    work.push(&url, &["main"])
        .await
        .expect_ok("the owner's push");

    let c2 = work.commit("the invitee's work").await;
    let theirs = events::main_state(&invitee, "team", &c2, events::now());
    world
        .publish_purgatory(&theirs, "the invitee's state (accepted, not authoritative)")
        .await;
    let refused = work.push(&url, &["main"]).await;
    refused.expect_refused("the invitee's push before accepting");
    assert!(
        refused
            .rejections()
            .iter()
            .any(|r| r.contains("is invited as a maintainer of 'team' but has not accepted")),
        "the refusal says why: {refused}"
    );

    let accepts = Announcement::elsewhere(&i, "team")
        .with_tag(&["m", &i.to_hex()])
        .with_tag(&["M", &o.to_hex()])
        .sign(&invitee);
    world
        .publish(&accepts)
        .await
        .assert_served("the invitee's acceptance (it does not list this server)");
    work.push(&url, &["main"])
        .await
        .expect_ok("the invitee's push after accepting");
    world.wait_served(&[theirs.id], "the invitee's state").await;
    world
        .wait_refs(&o, "team", &[("refs/heads/main", &c2)])
        .await;
}
