//! Identifiers that need percent-encoding in clone URLs (issue 13, item 3): announced
//! with the encoded clone URL clients write, pushed to and cloned from with stock git
//! over that URL.

use grasp_tests::events::{self, Announcement};
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::Keys;

#[tokio::test]
async fn encoded_identifiers_announce_push_and_clone() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    for d in ["my repo", "100%", "a+b", "über", "x y+z%ü"] {
        let url = world.server.encoded_repo_url(&pk, d);
        let mut announcement = Announcement::on(&world.server, &pk, d);
        announcement.clone = vec![url.clone()];
        let announcement = announcement.sign(&owner);
        world
            .publish(&announcement)
            .await
            .assert_purgatory(&format!("announcement of {d:?} listing {url}"));
        assert!(
            world.server.repo_dir(&pk, d).join("HEAD").is_file(),
            "the bare repository of {d:?} is named by the decoded identifier"
        );

        let work = Work::init().await;
        let main = work.commit(&format!("first commit of {d}")).await;
        let state = events::main_state(&owner, d, &main, events::now());
        world
            .publish_purgatory(&state, &format!("state of {d:?}"))
            .await;
        work.push(&url, &["main"])
            .await
            .expect_ok(&format!("git push to {url}"));
        world
            .wait_served(
                &[announcement.id, state.id],
                &format!("announcement and state of {d:?} released by the push"),
            )
            .await;

        let refs = world.git.ls_remote(&url).await;
        assert_eq!(refs.get("refs/heads/main"), Some(&main), "ls-remote {url}");
        let (out, dir) = world.git.clone_repo(&url, &[]).await;
        out.expect_ok(&format!("git clone {url}"));
        let head = world
            .git
            .run(Some(&dir.path().join("repo")), &["rev-parse", "HEAD"])
            .await;
        assert_eq!(
            head.stdout.trim(),
            main,
            "the clone of {d:?} has the pushed commit"
        );
    }
}

#[tokio::test]
async fn a_plus_is_not_a_space_and_bad_escapes_are_refused() {
    let world = World::start().await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let base = world.server.base_url();
    let npub = grasp_tests::server::npub(&pk);
    for (d, url) in [
        ("my repo", format!("{base}/{npub}/my+repo.git")),
        ("100%", format!("{base}/{npub}/100%.git")),
    ] {
        let mut announcement = Announcement::on(&world.server, &pk, d);
        announcement.clone = vec![url.clone()];
        let reply = world.publish(&announcement.sign(&owner)).await;
        reply.assert_refused("blocked:", &format!("{url} does not name {d:?}"));
        let encoded = world.server.encoded_repo_url(&pk, d);
        assert!(
            reply.message.contains(&encoded),
            "the refusal names the URL to list ({encoded}): {reply}"
        );
        assert!(!world.server.repo_dir(&pk, d).exists(), "nothing created");
    }
}
