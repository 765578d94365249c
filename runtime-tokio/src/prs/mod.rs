//! GRASP-06's contributor repositories on disk (`<data>/prs/<npub>/<identifier>.git`):
//! the empty template fresh paths are served from, the pushes in flight per repository,
//! removal of repositories whose last ref went, and the disk measures the quotas use.
//!
//! A contributor repository exists only while it holds a `refs/nostr/<id>` ref: it is
//! made by the first accepted push (never by a fetch, which is served from the one empty
//! template made at startup), and removed when its last ref goes — by expiry, a tip
//! mismatch, a deletion, or a push that wrote nothing — unless a push into it is in
//! flight (that push's end removes it if it is still empty).

mod limits;

pub use limits::{Outcome, PrsLimits, PushRate, RateRefusal, Running};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::git_ops::{GitOpsError, delete_repo, list_refs};
use crate::repo::{RepoPath, Repos};

/// The contributor repositories' root and the pushes in flight into each.
#[derive(Debug)]
pub struct PrsDisk {
    root: PathBuf,
    in_flight: Mutex<HashMap<PathBuf, usize>>,
    /// GRASP-06 is on (set at startup): the metrics are exposed.
    enabled: AtomicBool,
    /// Pushes by [`Outcome`].
    outcomes: [AtomicU64; 5],
}

impl PrsDisk {
    /// Contributor repositories under `root` (`<data>/prs`).
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            in_flight: Mutex::new(HashMap::new()),
            enabled: AtomicBool::new(false),
            outcomes: Default::default(),
        }
    }

    /// Counts a push's outcome (`graspd_prs_pushes_total`).
    pub fn record(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The outcome counters, labelled.
    pub fn outcomes(&self) -> Vec<(&'static str, u64)> {
        Outcome::ALL
            .iter()
            .map(|(o, l)| (*l, self.outcomes[*o as usize].load(Ordering::Relaxed)))
            .collect()
    }

    /// `<data>/prs`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn count(&self, dir: &Path) -> usize {
        let map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        map.get(dir).copied().unwrap_or(0)
    }

    fn add(&self, dir: &Path, delta: isize) -> usize {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(dir.to_path_buf()).or_insert(0);
        *n = n.saturating_add_signed(delta);
        let now = *n;
        if now == 0 {
            map.remove(dir);
        }
        now
    }
}

/// A push into a contributor repository, from before the repository is made until git
/// and the post-push release have finished. Dropped, it removes the repository if it
/// holds no ref and no other push into it is in flight (git failed, or wrote nothing).
#[derive(Debug)]
pub struct InFlight {
    repos: Repos,
    repo: RepoPath,
    dir: PathBuf,
}

impl InFlight {
    /// Counts a push into `repo` as in flight.
    pub fn begin(repos: &Repos, repo: &RepoPath) -> Self {
        let dir = repos.dir(repo);
        repos.prs().add(&dir, 1);
        Self {
            repos: repos.clone(),
            repo: repo.clone(),
            dir,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.repos.prs().add(&self.dir, -1) > 0 {
            return;
        }
        let (repos, repo) = (self.repos.clone(), self.repo.clone());
        let cleanup = move || {
            if let Err(e) = remove_if_empty(&repos, &repo) {
                tracing::warn!(%repo, "cannot remove an empty contributor repository: {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(cleanup);
            }
            Err(_) => cleanup(),
        }
    }
}

/// After a ref of `repo` was deleted: a contributor repository with no ref left and no
/// push in flight is removed at once.
pub fn after_ref_deleted(repos: &Repos, repo: &RepoPath) -> Result<(), GitOpsError> {
    if !repo.is_prs() || repos.prs().count(&repos.dir(repo)) > 0 {
        return Ok(());
    }
    remove_if_empty(repos, repo)
}

/// Removes contributor repository `repo` if it exists and holds no ref.
pub fn remove_if_empty(repos: &Repos, repo: &RepoPath) -> Result<(), GitOpsError> {
    if !repo.is_prs() || !repos.exists(repo) {
        return Ok(());
    }
    if list_refs(&repos.dir(repo))?.refs.is_empty() {
        delete_repo(repos, repo)?;
        tracing::debug!(%repo, "empty contributor repository removed");
    }
    Ok(())
}

/// Startup: contributor repositories left with no ref by a crash are removed. Returns
/// how many remain.
pub fn sweep(repos: &Repos) -> usize {
    let mut kept = 0;
    for repo in all(repos) {
        match remove_if_empty(repos, &repo) {
            Ok(()) if repos.exists(&repo) => kept += 1,
            Ok(()) => {}
            Err(e) => tracing::warn!(%repo, "cannot check a contributor repository: {e}"),
        }
    }
    kept
}

/// Every contributor repository on disk.
pub fn all(repos: &Repos) -> Vec<RepoPath> {
    let mut out = Vec::new();
    let Ok(owners) = std::fs::read_dir(repos.prs().root()) else {
        return out;
    };
    for owner in owners.filter_map(Result::ok) {
        let npub = owner.file_name().to_string_lossy().into_owned();
        let Ok(dirs) = std::fs::read_dir(owner.path()) else {
            continue;
        };
        for dir in dirs.filter_map(Result::ok) {
            let name = dir.file_name().to_string_lossy().into_owned();
            let Some(identifier) = name.strip_suffix(".git") else {
                continue;
            };
            if let Ok(path) = RepoPath::parse(&npub, identifier) {
                out.push(path.into_prs());
            }
        }
    }
    out
}

/// Startup with GRASP-06 on: `<data>/prs` exists, the empty template is made, and
/// repositories a crash left without refs are removed.
pub async fn start(config: &crate::config::Config, repos: &Repos) -> std::io::Result<()> {
    std::fs::create_dir_all(repos.prs().root())?;
    repos.prs().enabled.store(true, Ordering::Relaxed);
    let (data, repos) = (config.data_dir.clone(), repos.clone());
    tokio::task::spawn_blocking(move || {
        make_template(&data)?;
        let kept = sweep(&repos);
        tracing::info!(repositories = kept, "contributor endpoint (GRASP-06) on");
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The contributor figures in Prometheus text (nothing with GRASP-06 off):
/// `graspd_prs_repositories`, `graspd_prs_bytes`, `graspd_prs_pushes_total{outcome}`.
/// The first two walk `<data>/prs` (off the async threads), at scrape time only.
pub async fn prometheus(repos: &Repos) -> String {
    use std::fmt::Write as _;
    if !repos.prs().enabled.load(Ordering::Relaxed) {
        return String::new();
    }
    let walk = repos.clone();
    let (count, bytes) =
        tokio::task::spawn_blocking(move || (all(&walk).len(), dir_size(walk.prs().root())))
            .await
            .unwrap_or((0, 0));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP graspd_prs_repositories Contributor repositories (/prs/, GRASP-06) on disk\n# TYPE graspd_prs_repositories gauge\ngraspd_prs_repositories {count}"
    );
    let _ = writeln!(
        out,
        "# HELP graspd_prs_bytes Bytes of every contributor repository\n# TYPE graspd_prs_bytes gauge\ngraspd_prs_bytes {bytes}"
    );
    let _ = writeln!(
        out,
        "# HELP graspd_prs_pushes_total Pushes to /prs/ URLs by outcome\n# TYPE graspd_prs_pushes_total counter"
    );
    for (label, n) in repos.prs().outcomes() {
        let _ = writeln!(out, "graspd_prs_pushes_total{{outcome=\"{label}\"}} {n}");
    }
    out
}

/// Where [`make_template`] puts the template.
pub fn template_dir(config: &crate::config::Config) -> PathBuf {
    config.data_dir.join("prs-template.git")
}

/// Makes (or re-makes) the empty bare repository fresh `/prs/` paths are served from,
/// `<data>/prs-template.git`, outside `<data>/prs` so no sweep or quota counts it. It is
/// never pushed to: receive-pack on a fresh path only runs after the path's own
/// repository was made.
pub fn make_template(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = data_dir.join("prs-template.git");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let mut options = git2::RepositoryInitOptions::new();
    options.bare(true).mkpath(true);
    git2::Repository::init_opts(&dir, &options).map_err(std::io::Error::other)?;
    Ok(dir)
}

/// Bytes of the files under `dir` (0 if absent). Symlinks are not followed.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_contributor_repository_goes_with_its_last_in_flight_push() {
        let tmp = tempfile::tempdir().unwrap();
        let repos = Repos::new(tmp.path().join("repos"));
        let owner = crate::test_keys::keys(1).public_key();
        let repo = RepoPath::new(owner, "x").unwrap().into_prs();
        let a = InFlight::begin(&repos, &repo);
        crate::git_ops::create_bare_repo(&repos, &repo).unwrap();
        let b = InFlight::begin(&repos, &repo);
        drop(a);
        after_ref_deleted(&repos, &repo).unwrap();
        assert!(repos.exists(&repo), "kept while a push is in flight");
        drop(b);
        assert!(!repos.exists(&repo), "removed when the last push ended");
        assert!(repos.dir(&repo).starts_with(tmp.path().join("prs")));
    }

    #[test]
    fn the_startup_sweep_removes_only_empty_repositories() {
        let tmp = tempfile::tempdir().unwrap();
        let repos = Repos::new(tmp.path().join("repos"));
        let owner = crate::test_keys::keys(1).public_key();
        let empty = RepoPath::new(owner, "empty").unwrap().into_prs();
        let full = RepoPath::new(owner, "full").unwrap().into_prs();
        for r in [&empty, &full] {
            crate::git_ops::create_bare_repo(&repos, r).unwrap();
        }
        let dir = repos.dir(&full);
        let repo = git2::Repository::open_bare(&dir).unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let commit = repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap();
        repo.reference(
            &format!("refs/nostr/{}", "a".repeat(64)),
            commit,
            false,
            "t",
        )
        .unwrap();
        assert_eq!(sweep(&repos), 1);
        assert!(!repos.exists(&empty) && repos.exists(&full));
    }
}
