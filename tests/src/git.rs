//! The real `git` binary, isolated: its own `HOME` (with only `user.name`,
//! `user.email` and `init.defaultBranch`), no system config, no prompts, no proxies,
//! and a timeout on every command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tempfile::TempDir;

/// How long one git command may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a git command did.
#[derive(Debug, Clone)]
pub struct GitOutput {
    /// The command line, for messages.
    pub command: String,
    /// Exit status 0.
    pub success: bool,
    /// stdout.
    pub stdout: String,
    /// stderr (where git reports refusals: `! [remote rejected] … (reason)`).
    pub stderr: String,
}

impl std::fmt::Display for GitOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command,
            if self.success { "succeeded" } else { "failed" },
            self.stdout,
            self.stderr
        )
    }
}

impl GitOutput {
    /// Panics (showing the output) unless the command succeeded.
    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> &Self {
        assert!(self.success, "{what}: expected success, got {self}");
        self
    }

    /// Panics unless the command failed.
    #[track_caller]
    pub fn expect_failed(&self, what: &str) -> &Self {
        assert!(!self.success, "{what}: expected failure, got {self}");
        self
    }

    /// Panics unless this push failed with a refusal the git client reports per ref
    /// (`[remote rejected]`, or the server's message lines) with a readable reason.
    #[track_caller]
    pub fn expect_refused(&self, what: &str) -> &Self {
        assert!(
            !self.success && self.stderr.contains("rejected"),
            "{what}: expected the push to be refused with a readable reason, got {self}"
        );
        self
    }

    /// The reasons git printed for refused refs: the text in parentheses of every
    /// `! [remote rejected] <src> -> <dst> (<reason>)` line.
    pub fn rejections(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter(|l| l.contains("[remote rejected]"))
            .filter_map(|l| {
                let start = l.find('(')?;
                let end = l.rfind(')')?;
                (start < end).then(|| l[start + 1..end].to_owned())
            })
            .collect()
    }
}

/// An isolated git environment (its own `HOME`).
#[derive(Debug, Clone)]
pub struct Git {
    home: Arc<TempDir>,
}

impl Default for Git {
    fn default() -> Self {
        Self::new()
    }
}

impl Git {
    /// A fresh environment with a minimal global config.
    pub fn new() -> Self {
        let home = tempfile::Builder::new()
            .prefix("grasp-git-home-")
            .tempdir()
            .expect("temp HOME");
        std::fs::write(
            home.path().join(".gitconfig"),
            "[user]\n\tname = Grasp Tester\n\temail = tester@example.invalid\n\
             [init]\n\tdefaultBranch = main\n\
             [advice]\n\tdetachedHead = false\n\
             [http]\n\tlowSpeedLimit = 1\n\tlowSpeedTime = 30\n",
        )
        .expect("write .gitconfig");
        Self {
            home: Arc::new(home),
        }
    }

    /// The `HOME` every git child gets.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `git <args>` in `dir` (`None`: the home directory), isolated, output piped, not
    /// started: for callers that run it their own way (benchmarks time it).
    pub fn command(&self, dir: Option<&Path>, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new("git");
        command
            .args(args)
            .current_dir(dir.unwrap_or(self.home.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::server::isolate_env(&mut command, self.home.path());
        command
    }

    /// Runs `git <args>` in `dir` (`None`: the home directory).
    pub async fn run(&self, dir: Option<&Path>, args: &[&str]) -> GitOutput {
        let mut command = tokio::process::Command::from(self.command(dir, args));
        command.kill_on_drop(true);
        let line = format!("git {}", args.join(" "));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
        let output = match tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => panic!("`{line}`: {e}"),
            Err(_) => panic!("`{line}` did not finish within {GIT_TIMEOUT:?}"),
        };
        GitOutput {
            command: line,
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `git ls-remote <url>`: ref name → object id (including `HEAD` when the remote has
    /// one). Panics if ls-remote fails.
    pub async fn ls_remote(&self, url: &str) -> BTreeMap<String, String> {
        let out = self.run(None, &["ls-remote", url]).await;
        out.expect_ok("git ls-remote");
        parse_ls_remote(&out.stdout)
    }

    /// `git clone <args> <url> <fresh dir>`; returns the output and the directory.
    pub async fn clone_repo(&self, url: &str, args: &[&str]) -> (GitOutput, TempDir) {
        let dir = tempfile::Builder::new()
            .prefix("grasp-clone-")
            .tempdir()
            .expect("temp clone dir");
        let target = dir.path().join("repo");
        let target = target.to_str().expect("utf-8 path");
        let mut argv = vec!["clone"];
        argv.extend_from_slice(args);
        argv.push(url);
        argv.push(target);
        let out = self.run(None, &argv).await;
        (out, dir)
    }
}

/// Parses `git ls-remote` output.
pub fn parse_ls_remote(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| {
            let (oid, name) = line.split_once('\t')?;
            Some((name.to_owned(), oid.to_owned()))
        })
        .collect()
}

/// A local working repository with helpers to make commits and push them.
#[derive(Debug)]
pub struct Work {
    git: Git,
    dir: TempDir,
    counter: AtomicU32,
}

impl Work {
    /// `git init` on branch `main` in a fresh directory.
    pub async fn init() -> Self {
        Self::init_with(Git::new()).await
    }

    /// Like [`init`](Self::init) in the environment `git`.
    pub async fn init_with(git: Git) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("grasp-work-")
            .tempdir()
            .expect("temp work dir");
        let work = Self {
            git,
            dir,
            counter: AtomicU32::new(0),
        };
        work.git(&["init", "-q", "-b", "main"])
            .await
            .expect_ok("git init");
        work
    }

    /// The git environment.
    pub fn env(&self) -> &Git {
        &self.git
    }

    /// The working directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// `git <args>` in the working directory.
    pub async fn git(&self, args: &[&str]) -> GitOutput {
        self.git.run(Some(self.dir.path()), args).await
    }

    /// Commits a new file on the current branch; returns the commit id.
    pub async fn commit(&self, message: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let file = format!("file-{n}.txt");
        std::fs::write(
            self.dir.path().join(&file),
            format!("{message}\n{}\n", "content ".repeat(50)),
        )
        .expect("write file");
        self.git(&["add", &file]).await.expect_ok("git add");
        self.git(&["commit", "-q", "-m", message])
            .await
            .expect_ok("git commit");
        self.rev("HEAD").await
    }

    /// `git checkout -q -B <branch> <start>`.
    pub async fn branch_from(&self, branch: &str, start: &str) {
        self.git(&["checkout", "-q", "-B", branch, start])
            .await
            .expect_ok("git checkout -B");
    }

    /// `git checkout -q <what>`.
    pub async fn checkout(&self, what: &str) {
        self.git(&["checkout", "-q", what])
            .await
            .expect_ok("git checkout");
    }

    /// The object id of `rev`.
    pub async fn rev(&self, rev: &str) -> String {
        let out = self.git(&["rev-parse", rev]).await;
        out.expect_ok("git rev-parse");
        out.stdout.trim().to_owned()
    }

    /// `git push <url> <refspecs…>` (refusals are in the output, not a panic).
    pub async fn push(&self, url: &str, refspecs: &[&str]) -> GitOutput {
        let mut argv = vec!["push", url];
        argv.extend_from_slice(refspecs);
        self.git(&argv).await
    }
}
