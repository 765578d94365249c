//! Creating and deleting whole bare repositories.

use std::path::PathBuf;

use git2::{Repository, RepositoryInitOptions};

use super::GitOpsError;
use crate::repo::{RepoPath, Repos};

/// Creates the bare repository for `repo` (as `git init --bare` would, with libgit2
/// honouring `init.defaultBranch`), or leaves an existing one untouched. Returns its
/// directory.
pub fn create_bare_repo(repos: &Repos, repo: &RepoPath) -> Result<PathBuf, GitOpsError> {
    let dir = repos.dir(repo);
    if repos.exists(repo) {
        return Ok(dir);
    }
    let mut options = RepositoryInitOptions::new();
    options.bare(true).mkpath(true);
    Repository::init_opts(&dir, &options)?;
    Ok(dir)
}

/// Deletes the bare repository for `repo` and, if it was the owner's last one, the
/// owner's directory. Returns whether anything was deleted.
///
/// The directory is canonicalized and checked to lie inside the repos directory before
/// anything is removed, even though [`RepoPath`] already forbids traversal: deleting
/// is the one operation where a mistake cannot be undone.
pub fn delete_repo(repos: &Repos, repo: &RepoPath) -> Result<bool, GitOpsError> {
    let dir = repos.dir(repo);
    let Ok(canonical) = dir.canonicalize() else {
        return Ok(false);
    };
    let root = repos.root_of(repo).canonicalize()?;
    if !canonical.starts_with(&root) || canonical == root {
        return Err(GitOpsError::OutsideRoot(canonical.display().to_string()));
    }
    std::fs::remove_dir_all(&canonical)?;
    if let Some(owner_dir) = canonical.parent() {
        if owner_dir != root {
            // Fails harmlessly when other repositories of the owner remain.
            let _ = std::fs::remove_dir(owner_dir);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git_ops::list_refs;
    use crate::git_ops::test_util::repo_path;

    #[test]
    fn create_is_idempotent_and_delete_removes_everything() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repos = Repos::new(tmp.path().join("repos"));
        let repo = repo_path("project");
        let dir = create_bare_repo(&repos, &repo).expect("create");
        assert!(repos.exists(&repo));
        assert!(dir.join("objects").is_dir());
        let refs = list_refs(&dir).expect("refs");
        assert!(refs.refs.is_empty());
        assert!(
            refs.head
                .as_deref()
                .is_some_and(|h| h.starts_with("refs/heads/"))
        );
        assert_eq!(create_bare_repo(&repos, &repo).expect("again"), dir);

        let other = repo_path("other");
        create_bare_repo(&repos, &other).expect("create other");
        assert!(delete_repo(&repos, &repo).expect("delete"));
        assert!(!dir.exists());
        assert!(repos.dir(&other).exists(), "sibling untouched");
        assert!(!delete_repo(&repos, &repo).expect("delete again"));
        assert!(delete_repo(&repos, &other).expect("delete other"));
        assert!(
            !repos.root().join(other.npub()).exists(),
            "empty owner dir removed"
        );
        assert!(repos.root().exists(), "root kept");
    }
}
