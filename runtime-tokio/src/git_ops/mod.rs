//! Local git operations the engine's effects need, on our own bare repositories.
//!
//! Every function here is synchronous and meant to run inside
//! `tokio::task::spawn_blocking`: libgit2 and short `git` subprocesses block. `git2`
//! is used where it fits (object existence, refs, HEAD); the `git` binary where
//! libgit2 falls short (`fetch` between repositories by object id, atomic multi-ref
//! transactions with `update-ref --stdin`).

mod lifecycle;
mod maintenance;
mod objects;
mod refs;
#[cfg(test)]
pub(crate) mod test_util;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Output, Stdio};

pub use lifecycle::{create_bare_repo, delete_repo};
pub use maintenance::{MAX_PRUNE_ROOTS, Pruned, auto_maintenance, prune_unreachable};
pub use objects::{copy_objects, existing_oids, is_object_id};
pub use refs::{align_refs, delete_ref, list_refs, set_head, set_ref};

/// A failed git operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitOpsError {
    /// libgit2 reported an error.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// A filesystem operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A `git` subprocess exited unsuccessfully.
    #[error("`git {command}` failed ({status}): {stderr}")]
    Command {
        /// The subcommand that failed.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// A ref name is invalid or outside the namespace the operation allows.
    #[error("invalid ref name `{0}`")]
    InvalidRef(String),
    /// An object id is not 40 or 64 lowercase hex characters.
    #[error("invalid object id `{0}`")]
    InvalidOid(String),
    /// A ref would point at an object the repository does not have.
    #[error("object {0} is not in the repository")]
    MissingObject(String),
    /// A ref changed between reading it and locking it (a concurrent writer).
    #[error("ref `{0}` moved while it was being updated")]
    RefMoved(String),
    /// A path resolved outside the repos directory.
    #[error("refusing to touch `{0}`: outside the repos directory")]
    OutsideRoot(String),
}

/// The refs of a repository that matter to GRASP: `refs/heads/*`, `refs/tags/*` and
/// `refs/nostr/*`, each with its object id (direct target: an annotated tag's ref
/// gives the tag object, as state events list it), plus what HEAD points at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoRefs {
    /// Ref name → lowercase hex object id.
    pub refs: BTreeMap<String, String>,
    /// HEAD's symbolic target (`refs/heads/main`), if HEAD is symbolic.
    pub head: Option<String>,
}

impl RepoRefs {
    /// Only the branches and tags (the refs a state event describes).
    pub fn branches_and_tags(&self) -> impl Iterator<Item = (&String, &String)> {
        self.refs.iter().filter(|(name, _)| is_branch_or_tag(name))
    }
}

/// Whether `name` is under `refs/heads/` or `refs/tags/`: the engine's rule.
pub use grasp_core::is_branch_or_tag;

/// Runs `git` with prompts disabled, returning its output or a [`GitOpsError::Command`].
fn run_git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Output, GitOpsError> {
    use std::io::Write;

    let mut command = crate::children::git();
    command
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)?;
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr
        .chars()
        .rev()
        .take(2000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(GitOpsError::Command {
        command: args
            .iter()
            .find(|arg| !arg.starts_with('-') && !arg.contains('='))
            .unwrap_or(&"")
            .to_string(),
        status: output.status.to_string(),
        stderr: tail.trim().to_owned(),
    })
}
