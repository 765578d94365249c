//! What an operator sees (issue 13, item 6): the log, startup errors, the command line.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use grasp_tests::fixture::{PROMPTLY, World};
use grasp_tests::nostr_sdk::prelude::Keys;
use grasp_tests::server::{Options, isolate_env, npub};
use grasp_tests::{binary, eventually, within};

/// Runs graspd with `args` (isolated environment, stdin closed) until it exits; it must
/// exit within 20 s (it is killed when the test gives up).
async fn run_graspd(home: &Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(binary::graspd());
    command.args(args).stdin(std::process::Stdio::null());
    isolate_env(&mut command, home);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    within(
        Duration::from_secs(20),
        &format!("graspd {args:?} exits"),
        command.output(),
    )
    .await
    .expect("run graspd")
}

/// With stderr a file (not a terminal) and `NO_COLOR` unset, the log is plain text and
/// has one info line for the push, the accepted announcement and the accepted state,
/// each naming the repository and the refs.
#[tokio::test]
async fn log_is_plain_and_names_pushes_and_accepted_events() {
    let world = World::start_with(Options::default().env_remove("NO_COLOR")).await;
    let owner = Keys::generate();
    let hosted = world.hosted(&owner, "logged", &[]).await;
    let repo = format!("{}/logged.git", npub(&owner.public_key()));
    let short = &hosted.main[..12];
    let log = eventually(PROMPTLY, "the three info lines", || {
        let log = world.server.log();
        let has = |what: &str, extra: &str| {
            log.lines().any(|l| {
                l.contains(" INFO ")
                    && l.contains(what)
                    && l.contains(&format!("repo={repo}"))
                    && l.contains(extra)
            })
        };
        let found = has("push accepted", &format!("refs/heads/main=+{short}"))
            && has("announcement accepted", "")
            && has(
                "repository state accepted",
                &format!("refs/heads/main={short}"),
            );
        std::future::ready(found.then_some(log.clone()))
    })
    .await;
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a log that is not a terminal:\n{log}"
    );
}

#[tokio::test]
async fn startup_error_is_printed_once() {
    let home = tempfile::tempdir().expect("home");
    let not_a_dir = home.path().join("file");
    std::fs::write(&not_a_dir, b"x").expect("write");
    let data = not_a_dir.join("data");
    let out = run_graspd(
        home.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "graspd started on a file: {stderr}");
    assert_eq!(
        stderr.matches("data directory").count(),
        1,
        "the error once:\n{stderr}"
    );
}

#[tokio::test]
async fn unknown_log_level_is_refused() {
    let home = tempfile::tempdir().expect("home");
    let data = home.path().join("data");
    let out = run_graspd(
        home.path(),
        &[
            "--log-level",
            "loud",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("names no log level"), "{stderr}");
    assert!(!data.exists(), "nothing was created");
}

#[tokio::test]
async fn bad_relay_owner_reports_its_own_length() {
    let home = tempfile::tempdir().expect("home");
    let out = run_graspd(home.path(), &["--relay-owner", "notakey"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("got 7 characters"), "{stderr}");
    assert!(!stderr.contains("length 64"), "{stderr}");
}

#[tokio::test]
async fn purgatory_subcommand_takes_listen_after_it() {
    let world = World::start().await;
    let home = tempfile::tempdir().expect("home");
    let authority = world.server.authority();
    for args in [
        ["purgatory", "--listen", authority.as_str(), "--json"],
        ["--listen", authority.as_str(), "purgatory", "--json"],
    ] {
        let out = run_graspd(home.path(), &args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "graspd {args:?}: {stderr}");
        let view: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("purgatory JSON on stdout");
        assert!(view["waiting"].is_array(), "{view}");
    }
}
