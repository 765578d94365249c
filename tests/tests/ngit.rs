//! ngit 3.x's everyday flow against graspd, as a script runs it: no pause between steps
//! (issue 13). ngit publishes a new state in the same second as the previous one and
//! mines its id lower, relying on NIP-01's tie rule; before graspd followed it, a push
//! right after `ngit init` or a tag push right after a push was refused 3 times in 4.
//!
//! Each round: `ngit init` (announcement, state, first push), `git push` of a commit,
//! `git push --tags`, a new branch, a PR (`git push origin pr/…`), `ngit pr merge` and
//! the merge's push. Afterwards graspd must serve exactly what the user has: the refs
//! over git, the latest state over the relay, the PR and its `refs/nostr/<id>`.

use std::collections::BTreeMap;

use grasp_tests::events::STATE;
use grasp_tests::fixture::World;
use grasp_tests::git::{Git, GitOutput, Work};
use grasp_tests::ngit::{NgitUser, ngit_dir};
use grasp_tests::nostr_sdk::prelude::{Filter, Keys, Kind};

/// Rounds of the whole flow, each with a fresh user and repository.
const ROUNDS: usize = 3;

#[track_caller]
fn ok<'a>(out: &'a GitOutput, what: &str) -> &'a GitOutput {
    out.expect_ok(what);
    assert!(
        !out.stderr.contains("rejected") && !out.stdout.contains("rejected"),
        "{what}: a ref was rejected: {out}"
    );
    out
}

/// The refs a local repository has under `refs/heads` and `refs/tags`.
async fn local_refs(work: &Work) -> BTreeMap<String, String> {
    let out = work
        .git(&[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
            "refs/tags",
        ])
        .await;
    out.expect_ok("git for-each-ref");
    out.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| !name.starts_with("refs/heads/pr/"))
        .map(|(n, o)| (n.to_owned(), o.to_owned()))
        .collect()
}

#[tokio::test]
async fn ngit_scripted_flow_without_pauses() {
    let Some(dir) = ngit_dir() else { return };
    let world = World::start().await;
    for round in 0..ROUNDS {
        let keys = Keys::generate();
        let user = NgitUser::new(
            dir.clone(),
            &world.server,
            keys.secret_key().to_secret_hex(),
        );
        let d = format!("flow{round}");
        let work = Work::init_with(Git::new()).await;
        if round == 0 {
            eprintln!("driving {}", user.version(&work).await);
        }
        work.commit("first").await;

        let init = user
            .ngit_signed(&work, &["init", "--name", &d, "--identifier", &d, "-d"])
            .await;
        ok(&init, "ngit init");
        assert!(
            init.stdout.contains("pushed main branch")
                || init.stderr.contains("pushed main branch"),
            "ngit init did not push: {init}"
        );
        user.login(&work).await;

        work.commit("second").await;
        ok(
            &user.git(&work, &["push", "origin", "main"]).await,
            "push after init",
        );
        ok(&work.git(&["tag", "v1"]).await, "git tag");
        ok(
            &user.git(&work, &["push", "origin", "--tags"]).await,
            "tag push right after a push",
        );

        ok(
            &work.git(&["checkout", "-q", "-b", "dev"]).await,
            "checkout dev",
        );
        work.commit("on dev").await;
        ok(
            &user.git(&work, &["push", "origin", "dev"]).await,
            "branch push",
        );

        ok(
            &work.git(&["checkout", "-q", "main"]).await,
            "checkout main",
        );
        ok(
            &work.git(&["checkout", "-q", "-b", "pr/feature"]).await,
            "checkout pr/feature",
        );
        let tip = work.commit("a feature").await;
        let pr = user.git(&work, &["push", "origin", "pr/feature"]).await;
        ok(&pr, "PR push");

        ok(&user.ngit(&work, &["pr", "merge"]).await, "ngit pr merge");
        ok(
            &user.git(&work, &["push", "origin", "main"]).await,
            "merge push",
        );

        // What graspd serves is what the user has.
        let url = world.repo_url(&keys.public_key(), &d);
        let mut served = world.git.ls_remote(&url).await;
        let nostr_refs: Vec<(String, String)> = served
            .iter()
            .filter(|(name, _)| name.starts_with("refs/nostr/"))
            .map(|(n, o)| (n.clone(), o.clone()))
            .collect();
        served.retain(|name, _| name != "HEAD" && !name.starts_with("refs/nostr/"));
        let local = local_refs(&work).await;
        assert_eq!(
            served, local,
            "round {round}: graspd's refs differ from the user's"
        );

        let states = world
            .relay
            .query(vec![
                Filter::new()
                    .author(keys.public_key())
                    .kind(Kind::Custom(STATE))
                    .identifier(d.clone()),
            ])
            .await;
        assert_eq!(
            states.len(),
            1,
            "round {round}: one current state is served"
        );
        let state_refs: BTreeMap<String, String> = states[0]
            .tags
            .iter()
            .map(|t| t.as_slice())
            .filter(|t| t.len() >= 2 && t[0].starts_with("refs/"))
            .map(|t| (t[0].clone(), t[1].clone()))
            .collect();
        assert_eq!(
            state_refs, local,
            "round {round}: the served state is not the last push"
        );

        let prs = world
            .relay
            .query(vec![
                Filter::new()
                    .author(keys.public_key())
                    .kind(Kind::Custom(1618)),
            ])
            .await;
        assert_eq!(prs.len(), 1, "round {round}: the PR is served");
        let placeholder = format!("refs/nostr/{}", prs[0].id.to_hex());
        assert!(
            nostr_refs
                .iter()
                .any(|(n, o)| *n == placeholder && *o == tip),
            "round {round}: {placeholder} should hold the PR tip {tip}; served {nostr_refs:?}"
        );
    }
}
