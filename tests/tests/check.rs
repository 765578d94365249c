//! `graspd check --data-dir …`: a clean data directory passes; one with each kind of
//! problem (an unreadable journal record, a state whose refs are not in its repository,
//! a repository no announcement names, leftovers of killed git processes, stray files)
//! fails with a line naming each.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use grasp_tests::fixture::World;
use grasp_tests::nostr_sdk::prelude::Keys;
use grasp_tests::server::npub;

/// `graspd check --data-dir <data>`: exit code and stdout.
fn check(data: &Path) -> (Option<i32>, String) {
    let out = Command::new(grasp_tests::binary::graspd())
        .arg("check")
        .arg("--data-dir")
        .arg(data)
        .env("NO_COLOR", "1")
        .output()
        .expect("run graspd check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stdout)
}

/// A data directory with a hosted repository (stored announcement and state, refs
/// pushed) and an announcement waiting in the journal; graspd stopped.
async fn populated() -> (World, grasp_tests::fixture::Hosted) {
    let world = World::start().await;
    let hosted = world.hosted(&Keys::generate(), "checked", &[]).await;
    world.announce(&Keys::generate(), "waiting", &[]).await;
    (world, hosted)
}

#[tokio::test]
async fn a_clean_data_dir_passes() {
    let (mut world, _hosted) = populated().await;
    let (code, out) = check(world.server.data_dir());
    assert_eq!(
        code,
        Some(1),
        "graspd still runs: the journal is locked\n{out}"
    );
    assert!(out.contains("stop it first"), "{out}");
    world.server.terminate(Duration::from_secs(20));
    let (code, out) = check(world.server.data_dir());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("no problems found"), "{out}");
    assert!(out.contains("1 waiting events"), "{out}");
    assert!(out.contains("repos: 2 on disk"), "{out}");
}

#[tokio::test]
async fn every_kind_of_problem_is_reported() {
    let (mut world, hosted) = populated().await;
    world.server.terminate(Duration::from_secs(20));
    let data = world.server.data_dir().to_path_buf();
    let repo = world.server.repo_dir(&hosted.owner_pk(), &hosted.d);

    // The state's branch gone from its repository.
    let git = |dir: &Path, args: &[&str]| {
        let ok = Command::new("git")
            .arg("--git-dir")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&repo, &["update-ref", "-d", "refs/heads/main"]);
    // A repository nothing announces.
    let stranger = npub(&Keys::generate().public_key());
    let orphan = data.join("repos").join(&stranger).join("orphan.git");
    let made = Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&orphan)
        .status()
        .expect("git init");
    assert!(made.success(), "git init --bare");
    // Leftovers of a killed push and a killed ref update, and stray files.
    std::fs::create_dir(repo.join("objects").join("tmp_objdir-incoming-x1")).expect("quarantine");
    std::fs::write(repo.join("packed-refs.lock"), "").expect("lock");
    std::fs::write(data.join("notes.txt"), "mine").expect("stray file");
    std::fs::create_dir(data.join("repos").join("not-an-npub")).expect("stray dir");

    let (code, out) = check(&data);
    assert_eq!(code, Some(1), "{out}");
    let d = &hosted.d;
    for expected in [
        format!(
            "{d}.git: refs/heads/main is missing (state {}",
            hosted.state.id.to_hex()
        ),
        format!("repos/{stranger}/orphan.git: no announcement names it"),
        format!("{d}.git: leftover objects/tmp_objdir-incoming-x1"),
        format!("{d}.git: leftover lock packed-refs.lock"),
        "stray: notes.txt in the data directory".to_owned(),
        "stray: repos/not-an-npub".to_owned(),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert!(out.contains("6 problem(s)"), "exactly these:\n{out}");
}

#[tokio::test]
async fn an_unreadable_journal_record_is_reported_and_the_rest_still_checked() {
    let (mut world, hosted) = populated().await;
    world.server.terminate(Duration::from_secs(20));
    let data = world.server.data_dir().to_path_buf();
    let repo = world.server.repo_dir(&hosted.owner_pk(), &hosted.d);
    // A journal record that does not decode.
    let db = redb::Database::create(data.join("journal.redb")).expect("journal");
    let tx = db.begin_write().expect("write");
    tx.open_table(redb::TableDefinition::<&str, &[u8]>::new("purgatory"))
        .expect("table")
        .insert("w:garbage", b"\x01{not json".as_slice())
        .expect("insert");
    tx.commit().expect("commit");
    drop(db);
    std::fs::write(repo.join("HEAD.lock"), "").expect("lock");

    let (code, out) = check(&data);
    assert_eq!(code, Some(1), "{out}");
    for expected in [
        "record \"w:garbage\" is unreadable",
        "graspd will refuse to start on it",
        "not checked (the journal",
        "leftover lock HEAD.lock",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(out.contains("2 problem(s)"), "exactly these:\n{out}");
}
