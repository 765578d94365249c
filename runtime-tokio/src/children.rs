//! git children that die with graspd, and cleaning up after a graspd that was killed.
//!
//! A `git receive-pack` that outlives a `kill -9`ed graspd can finish the push and move
//! a ref after the restart, when nobody checks it any more: the acknowledged state then
//! stays unserved. Three things prevent that:
//! - every git child runs under `setpriv --pdeathsig KILL` (util-linux; our code has no
//!   `unsafe` for a `prctl` before exec), so the kernel kills it when graspd dies, and
//!   in its own process group, so a terminal's Ctrl-C reaches graspd alone;
//! - at start, before hydration, [`clean_leftovers`] kills any git process still
//!   working inside our repositories (a child spawned from a thread that exited, or
//!   one left by an older graspd) and waits for it to be gone;
//! - then it removes the quarantines (`objects/tmp_objdir-incoming-*`) such children
//!   left: objects of a push that was never acknowledged.
//!
//! Hydration then checks the objects of every waiting event again (the engine's
//! `Hydrated` step), so the repository on disk and the engine agree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the start waits for killed leftovers to disappear.
const LEFTOVER_WAIT: Duration = Duration::from_secs(10);

/// Prefix of the quarantine directory `git receive-pack` writes a push's objects to.
pub const QUARANTINE_PREFIX: &str = "tmp_objdir-incoming-";

/// Whether `setpriv --pdeathsig` works here (checked once).
pub fn pdeathsig_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let works = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !works {
            tracing::warn!(
                "setpriv --pdeathsig is unavailable (install util-linux): git children \
                 may outlive a killed graspd until its next start"
            );
        }
        works
    })
}

/// A `git` command that the kernel kills when graspd dies (when `setpriv` is there),
/// in its own process group. Arguments go after it as for plain `git`.
pub fn git() -> Command {
    let mut command = if pdeathsig_available() {
        let mut command = Command::new("setpriv");
        command.args(["--pdeathsig", "KILL", "--", "git"]);
        command
    } else {
        Command::new("git")
    };
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
}

/// [`git`] for tokio.
pub fn tokio_git() -> tokio::process::Command {
    tokio::process::Command::from(git())
}

/// What [`clean_leftovers`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// Leftover git processes killed.
    pub killed: Vec<u32>,
    /// Of those, how many were still there after the wait.
    pub surviving: usize,
    /// Quarantine directories removed.
    pub quarantines: Vec<PathBuf>,
}

/// Kills git processes working inside `repos_root` (leftovers of a killed graspd),
/// waits for them to be gone, then removes the quarantines they left. Blocking: run it
/// before serving (or in `spawn_blocking`).
pub fn clean_leftovers(repos_root: &Path) -> Cleanup {
    let mut cleanup = Cleanup::default();
    let Ok(root) = repos_root.canonicalize() else {
        return cleanup;
    };
    cleanup.killed = leftover_gits(&root);
    for &pid in &cleanup.killed {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    let deadline = Instant::now() + LEFTOVER_WAIT;
    loop {
        let alive = cleanup.killed.iter().filter(|&&pid| is_alive(pid)).count();
        if alive == 0 || Instant::now() >= deadline {
            cleanup.surviving = alive;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !cleanup.killed.is_empty() {
        tracing::warn!(
            killed = ?cleanup.killed,
            surviving = cleanup.surviving,
            "killed git processes left by an earlier graspd"
        );
    }
    cleanup.quarantines = remove_quarantines(&root);
    if !cleanup.quarantines.is_empty() {
        tracing::warn!(
            count = cleanup.quarantines.len(),
            "removed quarantines of pushes that never finished"
        );
    }
    cleanup
}

/// Pids of `git` processes (not ours) whose working directory is inside `root`
/// (git enters the repository it works on; its helpers inherit that).
fn leftover_gits(root: &Path) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.trim_end() == "git"
                && std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(root))
                && is_alive(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `pid` exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S …`: the state follows the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Removes `<root>/<npub>/<id>.git/objects/tmp_objdir-incoming-*`.
fn remove_quarantines(root: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for owner in read_dirs(root) {
        for repo in read_dirs(&owner) {
            for dir in read_dirs(&repo.join("objects")) {
                let is_quarantine = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(QUARANTINE_PREFIX));
                if is_quarantine {
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => removed.push(dir),
                        Err(e) => {
                            tracing::error!(dir = %dir.display(), "cannot remove quarantine: {e}")
                        }
                    }
                }
            }
        }
    }
    removed
}

/// The subdirectories of `dir` (not following symlinks), or none.
fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_git_inside_the_repos_is_killed_and_quarantines_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("repos");
        let repo = root.join("npub1x").join("r.git");
        let quarantine = repo.join("objects").join(format!("{QUARANTINE_PREFIX}abc"));
        std::fs::create_dir_all(quarantine.join("pack")).expect("dirs");
        std::fs::write(quarantine.join("pack").join("tmp_pack_1"), b"x").expect("file");
        let kept = repo.join("objects").join("pack");
        std::fs::create_dir_all(&kept).expect("dirs");
        // A git that waits on its stdin forever, working inside the repository.
        let mut child = Command::new("git")
            .args(["hash-object", "--stdin"])
            .current_dir(&repo)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git");
        // An unrelated git elsewhere stays.
        let mut other = Command::new("git")
            .args(["hash-object", "--stdin"])
            .current_dir(tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("git");
        // Wait until git runs (comm is `git` and the cwd is the repository).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !leftover_gits(&root.canonicalize().expect("root")).contains(&child.id()) {
            assert!(Instant::now() < deadline, "git never showed up in /proc");
            std::thread::sleep(Duration::from_millis(10));
        }
        let cleanup = clean_leftovers(&root);
        assert!(cleanup.killed.contains(&child.id()), "{cleanup:?}");
        assert!(!cleanup.killed.contains(&other.id()), "{cleanup:?}");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "killed, not finished: {status:?}");
        assert!(!quarantine.exists(), "quarantine removed");
        assert!(kept.exists(), "the real pack directory stays");
        assert_eq!(cleanup.quarantines.len(), 1, "{cleanup:?}");
        assert!(is_alive(other.id()), "unrelated git untouched");
        drop(other.stdin.take());
        let _ = other.wait();
    }

    #[test]
    fn git_children_run_under_pdeathsig_in_their_own_group() {
        let command = git();
        if pdeathsig_available() {
            assert_eq!(command.get_program(), "setpriv");
            let args: Vec<_> = command.get_args().collect();
            assert_eq!(args, ["--pdeathsig", "KILL", "--", "git"]);
        }
        let output = git().arg("--version").output().expect("git runs");
        assert!(output.status.success());
    }
}
