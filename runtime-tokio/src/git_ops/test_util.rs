//! Test helpers: real repositories made with the `git` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::repo::RepoPath;

/// A valid repository coordinate for tests.
pub(crate) fn repo_path(identifier: &str) -> RepoPath {
    RepoPath::new(crate::test_keys::keys(7).public_key(), identifier).expect("valid repo path")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

/// `git init --bare <parent>/<name>`.
pub(crate) fn init_bare(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    git(parent, &["init", "--quiet", "--bare", name]);
    dir
}

/// Adds a commit on top of `refname` (or a root commit) with a file named after
/// `message`, and moves `refname` to it. Returns the commit id.
pub(crate) fn commit(bare: &Path, refname: &str, message: &str) -> String {
    let parent = Command::new("git")
        .arg("-C")
        .arg(bare)
        .args(["rev-parse", "--verify", "--quiet", refname])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    let blob = {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(bare)
            .args(["hash-object", "-w", "--stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("hash-object");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(message.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    };
    let tree = {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(bare)
            .arg("mktree")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mktree");
        use std::io::Write;
        let line = format!("100644 blob {blob}\t{message}.txt\n");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(line.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    };
    let mut args = vec!["commit-tree", tree.as_str(), "-m", message];
    if !parent.is_empty() {
        args.extend(["-p", parent.as_str()]);
    }
    let id = git(bare, &args);
    git(bare, &["update-ref", refname, &id]);
    id
}

/// Creates an annotated tag `refs/tags/<name>` on `target`; returns the tag object id.
pub(crate) fn annotated_tag(bare: &Path, name: &str, target: &str) -> String {
    git(
        bare,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "tag",
            "-a",
            name,
            target,
            "-m",
            name,
        ],
    );
    git(bare, &["rev-parse", &format!("refs/tags/{name}")])
}
