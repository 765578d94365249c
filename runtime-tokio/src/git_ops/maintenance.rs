//! Repository upkeep: git's automatic maintenance after pushes, and removing the objects
//! nothing references any more (those of expired placeholders).

use std::path::Path;
use std::time::Duration;

use super::{GitOpsError, existing_oids, run_git};

/// The most roots one prune keeps: they go on git's command line (40 bytes each).
pub const MAX_PRUNE_ROOTS: usize = 20_000;

/// What a prune did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Whether the packs were rewritten first (unreachable packed objects loosened).
    pub repacked: bool,
    /// Loose objects before and after.
    pub loose: (u64, u64),
}

/// `git maintenance run --auto`: what `git receive-pack` runs after a push (gc when
/// there are many loose objects or packs). graspd runs it after the push's response
/// instead, so that the client does not wait for it.
pub fn auto_maintenance(dir: &Path) -> Result<(), GitOpsError> {
    run_git(dir, &["maintenance", "run", "--auto", "--quiet"], None)?;
    Ok(())
}

/// Removes the objects of `dir` that no ref reaches, keeping everything reachable from
/// `keep` (objects waiting events need before any ref names them) and every object
/// younger than `grace` (a fetch or copy that just landed, which the engine has not
/// learnt of yet). Packed unreachable objects are loosened first (`git repack -A -d`,
/// which gives them their pack's age) when there is more than one pack; then `git prune`.
///
/// The caller makes sure no push into `dir` runs meanwhile: `git prune` would take a
/// quarantine older than `grace`, and a push's objects are unreachable until its refs move.
pub fn prune_unreachable(
    dir: &Path,
    keep: &[String],
    grace: Duration,
) -> Result<Pruned, GitOpsError> {
    let mut roots: Vec<String> = existing_oids(dir, keep)?.into_iter().collect();
    roots.truncate(MAX_PRUNE_ROOTS);
    let before = loose_objects(dir);
    let repacked = packs(dir) > 1;
    if repacked {
        run_git(
            dir,
            &[
                "-c",
                "gc.auto=0",
                "repack",
                "-A",
                "-d",
                "-q",
                "--no-write-bitmap-index",
            ],
            None,
        )?;
    }
    let expire = if grace.is_zero() {
        "now".to_owned()
    } else {
        format!("{}.seconds.ago", grace.as_secs().max(1))
    };
    let mut args = vec!["prune", "--expire", expire.as_str(), "--"];
    args.extend(roots.iter().map(String::as_str));
    run_git(dir, &args, None)?;
    Ok(Pruned {
        repacked,
        loose: (before, loose_objects(dir)),
    })
}

/// Pack files in the repository.
fn packs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("objects/pack")).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
            .count()
    })
}

/// Loose objects in the repository (files in `objects/xx/`).
fn loose_objects(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir.join("objects")) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|e| std::fs::read_dir(e.path()).map_or(0, |d| d.count() as u64))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git_ops::test_util::{commit, init_bare};
    use crate::git_ops::{delete_ref, existing_oids, set_ref};

    fn has(dir: &Path, oid: &str) -> bool {
        existing_oids(dir, &[oid.to_owned()]).unwrap().contains(oid)
    }

    #[test]
    fn unreachable_objects_go_and_kept_or_referenced_ones_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = init_bare(tmp.path(), "r.git");
        let kept_by_ref = commit(&dir, "refs/heads/main", "main");
        let doomed = commit(&dir, "refs/nostr/doomed", "placeholder");
        let kept_by_root = commit(&dir, "refs/nostr/waiting", "waiting");
        delete_ref(&dir, "refs/nostr/doomed").unwrap();
        delete_ref(&dir, "refs/nostr/waiting").unwrap();
        let missing = "1".repeat(40);
        let pruned =
            prune_unreachable(&dir, &[kept_by_root.clone(), missing], Duration::ZERO).unwrap();
        assert!(pruned.loose.1 < pruned.loose.0, "{pruned:?}");
        assert!(!has(&dir, &doomed), "the unreferenced commit is gone");
        assert!(has(&dir, &kept_by_ref));
        assert!(has(&dir, &kept_by_root), "a root waiting events need stays");
    }

    #[test]
    fn unreachable_packed_objects_go_too() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = init_bare(tmp.path(), "r.git");
        let repack = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(&dir)
                .args(args)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        let main = commit(&dir, "refs/heads/main", "main");
        repack(&["repack", "-q", "-d"]);
        let doomed = commit(&dir, "refs/nostr/doomed", "a packed placeholder");
        repack(&["repack", "-q", "-d"]);
        assert_eq!(packs(&dir), 2);
        delete_ref(&dir, "refs/nostr/doomed").unwrap();
        let pruned = prune_unreachable(&dir, &[], Duration::ZERO).unwrap();
        assert!(pruned.repacked);
        assert!(
            !has(&dir, &doomed),
            "the packed unreferenced commit is gone"
        );
        assert!(has(&dir, &main));
    }

    #[test]
    fn young_objects_survive_the_grace_period() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = init_bare(tmp.path(), "r.git");
        let young = commit(&dir, "refs/nostr/young", "young");
        delete_ref(&dir, "refs/nostr/young").unwrap();
        prune_unreachable(&dir, &[], Duration::from_secs(600)).unwrap();
        assert!(has(&dir, &young));
        set_ref(&dir, "refs/heads/main", &young).unwrap();
        auto_maintenance(&dir).unwrap();
    }
}
