//! ngit 3.x, the standard GRASP client, driven as a user drives it: `ngit` and git with
//! its `git-remote-nostr` helper, pointed at one graspd through ngit's `NGIT_*_SET`
//! variables so that it asks nothing else (no default relays, no DNS).
//!
//! Where the binaries come from:
//! 1. `GRASP_TESTS_NGIT_DIR=<dir>` holding `ngit` and `git-remote-nostr` (what
//!    `scripts/test` installs, pinned, before running the suite);
//! 2. otherwise the first directory on `PATH` that holds both.
//!
//! Without them a test that needs ngit says so and passes, unless
//! `GRASP_TESTS_REQUIRE_NGIT=1` (set by `scripts/test`, so CI always runs it) makes it
//! fail instead.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::git::{GitOutput, Work};
use crate::server::{Graspd, isolate_env};

/// The ngit release line these tests are written against.
pub const NGIT_MAJOR: &str = "3.";

/// How long one ngit or git step may take (each step is quick; a hang fails the test).
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// The directory holding `ngit` and `git-remote-nostr`, or `None` (after printing why)
/// when the test should be skipped. Panics when `GRASP_TESTS_REQUIRE_NGIT=1` and they
/// are missing.
pub fn ngit_dir() -> Option<PathBuf> {
    let holds_both =
        |dir: &Path| dir.join("ngit").is_file() && dir.join("git-remote-nostr").is_file();
    let found = match std::env::var_os("GRASP_TESTS_NGIT_DIR") {
        Some(dir) => Some(PathBuf::from(dir)).filter(|d| holds_both(d)),
        None => std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).find(|d| holds_both(d))),
    };
    if found.is_none() {
        let why = "ngit and git-remote-nostr not found (set GRASP_TESTS_NGIT_DIR, or run \
                   scripts/test, which installs the pinned ngit)";
        assert!(
            std::env::var("GRASP_TESTS_REQUIRE_NGIT").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("skipped: {why}");
    }
    found
}

/// One ngit user at one graspd: their home directory (ngit's cache and credentials),
/// the binaries, and the server every `NGIT_*_SET` variable names.
#[derive(Debug)]
pub struct NgitUser {
    dir: PathBuf,
    relay: String,
    grasp: String,
    nsec: String,
}

impl NgitUser {
    /// A user with secret key `nsec` (hex or bech32), using the ngit in `dir`, whose only
    /// relay and GRASP server is `server`.
    pub fn new(dir: PathBuf, server: &Graspd, nsec: String) -> Self {
        Self {
            dir,
            relay: server.relay_url(),
            grasp: server.base_url(),
            nsec,
        }
    }

    /// `ngit --version`, checked to be of [`NGIT_MAJOR`].
    pub async fn version(&self, work: &Work) -> String {
        let out = self.ngit(work, &["--version"]).await;
        out.expect_ok("ngit --version");
        let version = out.stdout.trim().to_owned();
        assert!(
            version
                .split_whitespace()
                .last()
                .is_some_and(|v| v.starts_with(NGIT_MAJOR)),
            "these tests drive ngit {NGIT_MAJOR}x, found {version:?}"
        );
        version
    }

    /// `ngit <args>` in `work`, non-interactive.
    pub async fn ngit(&self, work: &Work, args: &[&str]) -> GitOutput {
        self.run(work, &self.dir.join("ngit"), args).await
    }

    /// `ngit <args> --nsec <key>`: for the commands that sign before any login exists.
    pub async fn ngit_signed(&self, work: &Work, args: &[&str]) -> GitOutput {
        let mut all = args.to_vec();
        all.extend(["--nsec", self.nsec.as_str()]);
        self.ngit(work, &all).await
    }

    /// Logs this user in for `work`'s repository only (what `git push` through
    /// `git-remote-nostr` signs with).
    pub async fn login(&self, work: &Work) {
        self.ngit(
            work,
            &[
                "account",
                "login",
                "--nsec",
                &self.nsec,
                "--local",
                "--offline",
            ],
        )
        .await
        .expect_ok("ngit account login");
    }

    /// `git <args>` in `work`, with `git-remote-nostr` on `PATH` for `nostr://` remotes.
    pub async fn git(&self, work: &Work, args: &[&str]) -> GitOutput {
        self.run(work, Path::new("git"), args).await
    }

    async fn run(&self, work: &Work, program: &Path, args: &[&str]) -> GitOutput {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        isolate_env(command.as_std_mut(), work.env().home());
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.dir.clone()];
        dirs.extend(std::env::split_paths(&path));
        command
            .env("PATH", std::env::join_paths(dirs).unwrap_or(path))
            // Every relay list ngit keeps names this graspd: an empty list would mean
            // ngit's public defaults, which a test must never reach.
            .env("NGIT_RELAY_DEFAULT_SET", &self.relay)
            .env("NGIT_RELAY_BLASTER_SET", &self.relay)
            .env("NGIT_RELAY_ANNOUNCEMENT_INDEXER_SET", &self.relay)
            .env("NGIT_RELAY_SIGNER_FALLBACK_SET", &self.relay)
            .env("NGIT_GRASP_DEFAULT_SET", &self.grasp)
            .env("NGIT_INTERACTIVE_MODE", "false")
            .env("NGIT_SECRET_STORAGE", "none");
        let line = format!("{} {}", program.display(), args.join(" "));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
        let output = match tokio::time::timeout(STEP_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => panic!("`{line}`: {e}"),
            Err(_) => panic!("`{line}` did not finish within {STEP_TIMEOUT:?}"),
        };
        GitOutput {
            command: line.replace(&self.nsec, "<nsec>"),
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
