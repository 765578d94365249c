//! Reading and writing refs and HEAD.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use git2::{Oid, Reference, Repository};

use super::{GitOpsError, RepoRefs, is_branch_or_tag, is_object_id, run_git};

/// Lists `refs/heads/*`, `refs/tags/*` and `refs/nostr/*` with their ids, and HEAD.
pub fn list_refs(dir: &Path) -> Result<RepoRefs, GitOpsError> {
    let repo = Repository::open_bare(dir)?;
    let mut refs = BTreeMap::new();
    for reference in repo.references()? {
        let reference = reference?;
        let Ok(name) = reference.name() else {
            continue;
        };
        if !(is_branch_or_tag(name) || name.starts_with("refs/nostr/")) {
            continue;
        }
        let name = name.to_owned();
        let target = match reference.target() {
            Some(oid) => oid,
            None => match reference.resolve() {
                Ok(resolved) => match resolved.target() {
                    Some(oid) => oid,
                    None => continue,
                },
                Err(_) => continue,
            },
        };
        refs.insert(name, target.to_string());
    }
    let head = repo
        .find_reference("HEAD")
        .ok()
        .and_then(|head| head.symbolic_target().ok().flatten().map(str::to_owned));
    Ok(RepoRefs { refs, head })
}

/// Makes the repository's branches and tags exactly `wanted` (ref name → object id):
/// creates and moves the listed refs and deletes every other `refs/heads/*` and
/// `refs/tags/*` ref, in one `git update-ref --stdin` transaction (all or nothing, each
/// ref compare-and-swapped against the value read just before). `refs/nostr/*` and
/// HEAD are left alone. Every object named must already be present.
pub fn align_refs(dir: &Path, wanted: &BTreeMap<String, String>) -> Result<(), GitOpsError> {
    for (name, id) in wanted {
        if !is_branch_or_tag(name) || !Reference::is_valid_name(name) {
            return Err(GitOpsError::InvalidRef(name.clone()));
        }
        if !is_object_id(id) {
            return Err(GitOpsError::InvalidOid(id.clone()));
        }
    }
    let current = list_refs(dir)?;
    let deletes: Vec<(&String, &String)> = current
        .branches_and_tags()
        .filter(|(name, _)| !wanted.contains_key(*name))
        .collect();
    let updates: Vec<(&String, &String, Option<&String>)> = wanted
        .iter()
        .filter_map(|(name, new)| match current.refs.get(name) {
            Some(old) if old == new => None,
            old => Some((name, new, old)),
        })
        .collect();
    if deletes.is_empty() && updates.is_empty() {
        return Ok(());
    }
    if updates
        .iter()
        .any(|(_, new, _)| !super::objects::is_sha1_id(new))
    {
        // libgit2 as built here speaks SHA-1 only; git itself handles SHA-256 repos.
        return align_with_update_ref(dir, &deletes, &updates);
    }
    // In-process (a `git update-ref` child cost ~2 ms of every release): every object
    // checked first, every ref locked, then nothing may have moved since it was read.
    let repo = Repository::open_bare(dir)?;
    let odb = repo.odb()?;
    let mut targets = Vec::with_capacity(updates.len());
    for (name, new, _) in &updates {
        let oid = Oid::from_str(new)?;
        if !odb.exists(oid) {
            return Err(GitOpsError::MissingObject(new.to_string()));
        }
        targets.push((name.as_str(), oid));
    }
    let mut tx = repo.transaction()?;
    let expected = deletes
        .iter()
        .map(|(name, old)| (name.as_str(), Some(old.as_str())))
        .chain(
            updates
                .iter()
                .map(|(name, _, old)| (name.as_str(), old.map(String::as_str))),
        );
    for (name, old) in expected {
        tx.lock_ref(name)?;
        let now = repo.refname_to_id(name).ok().map(|o| o.to_string());
        if now.as_deref() != old {
            return Err(GitOpsError::RefMoved(name.to_owned()));
        }
    }
    for (name, oid) in targets {
        tx.set_target(name, oid, None, "graspd: align with the state")?;
    }
    for (name, _) in &deletes {
        tx.remove(name)?;
    }
    tx.commit()?;
    Ok(())
}

/// [`align_refs`] through `git update-ref --stdin` (one atomic transaction).
fn align_with_update_ref(
    dir: &Path,
    deletes: &[(&String, &String)],
    updates: &[(&String, &String, Option<&String>)],
) -> Result<(), GitOpsError> {
    let mut script = String::from("start\n");
    for (name, old) in deletes {
        let _ = writeln!(script, "delete {name} {old}");
    }
    for (name, new, old) in updates {
        let zero = "0".repeat(new.len());
        let old = old.map_or(zero.as_str(), |o| o.as_str());
        let _ = writeln!(script, "update {name} {new} {old}");
    }
    script.push_str("prepare\ncommit\n");
    run_git(dir, &["update-ref", "--stdin"], Some(script.as_bytes()))?;
    Ok(())
}

/// Points HEAD at `branch` (`refs/heads/<name>`), which need not exist yet (HEAD is
/// then unborn until a push or an alignment creates it).
pub fn set_head(dir: &Path, branch: &str) -> Result<(), GitOpsError> {
    if !branch.starts_with("refs/heads/") || !Reference::is_valid_name(branch) {
        return Err(GitOpsError::InvalidRef(branch.to_owned()));
    }
    let repo = Repository::open_bare(dir)?;
    repo.set_head(branch)?;
    Ok(())
}

/// Creates or moves one ref (typically `refs/nostr/<event-id>`) to `id`, which must be
/// present.
pub fn set_ref(dir: &Path, name: &str, id: &str) -> Result<(), GitOpsError> {
    if !name.starts_with("refs/") || !Reference::is_valid_name(name) {
        return Err(GitOpsError::InvalidRef(name.to_owned()));
    }
    if !super::objects::is_sha1_id(id) {
        return Err(GitOpsError::InvalidOid(id.to_owned()));
    }
    let repo = Repository::open_bare(dir)?;
    let oid = Oid::from_str(id)?;
    repo.reference(name, oid, true, "graspd: set ref")?;
    Ok(())
}

/// Deletes one ref if it exists; returns whether it existed.
pub fn delete_ref(dir: &Path, name: &str) -> Result<bool, GitOpsError> {
    if !name.starts_with("refs/") || !Reference::is_valid_name(name) {
        return Err(GitOpsError::InvalidRef(name.to_owned()));
    }
    let repo = Repository::open_bare(dir)?;
    match repo.find_reference(name) {
        Ok(mut reference) => {
            reference.delete()?;
            Ok(true)
        }
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git_ops::test_util::{annotated_tag, commit, init_bare};

    #[test]
    fn align_creates_moves_and_deletes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = init_bare(tmp.path(), "r.git");
        let one = commit(&dir, "refs/heads/main", "one");
        let two = commit(&dir, "refs/heads/main", "two");
        commit(&dir, "refs/heads/old", "old");
        let tag = annotated_tag(&dir, "v1", &one);
        let nostr = format!("refs/nostr/{}", "a".repeat(64));
        set_ref(&dir, &nostr, &one).expect("nostr ref");

        let listed = list_refs(&dir).expect("list");
        assert_eq!(
            listed.refs.get("refs/tags/v1"),
            Some(&tag),
            "tag object, not peeled"
        );
        assert_eq!(listed.refs.get("refs/heads/main"), Some(&two));

        let wanted: BTreeMap<String, String> = [
            ("refs/heads/main".to_owned(), one.clone()),
            ("refs/heads/dev".to_owned(), two.clone()),
        ]
        .into();
        align_refs(&dir, &wanted).expect("align");
        let after = list_refs(&dir).expect("list");
        let branches: BTreeMap<String, String> = after
            .branches_and_tags()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            branches, wanted,
            "old branch and tag deleted, main moved, dev created"
        );
        assert_eq!(after.refs.get(&nostr), Some(&one), "refs/nostr untouched");
        align_refs(&dir, &wanted).expect("aligning again is a no-op");

        let missing: BTreeMap<String, String> =
            [("refs/heads/main".to_owned(), "1".repeat(40))].into();
        assert!(align_refs(&dir, &missing).is_err(), "absent object");
        assert_eq!(
            list_refs(&dir).expect("list").refs.get("refs/heads/main"),
            Some(&one),
            "all or nothing"
        );
        // A 64-hex id goes through `git update-ref` (libgit2 here speaks SHA-1 only): in
        // a SHA-1 repository it names nothing, so the whole alignment fails and no ref,
        // not even the valid one beside it, moves.
        let sha256: BTreeMap<String, String> = [
            ("refs/heads/main".to_owned(), two.clone()),
            ("refs/heads/wide".to_owned(), "b".repeat(64)),
        ]
        .into();
        assert!(align_refs(&dir, &sha256).is_err(), "unknown SHA-256 id");
        assert_eq!(
            list_refs(&dir).expect("list").refs.get("refs/heads/main"),
            Some(&one),
            "all or nothing through update-ref too"
        );
        let outside: BTreeMap<String, String> = [("refs/nostr/x".to_owned(), one.clone())].into();
        assert!(matches!(
            align_refs(&dir, &outside),
            Err(GitOpsError::InvalidRef(_))
        ));
    }

    #[test]
    fn head_and_single_refs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = init_bare(tmp.path(), "r.git");
        let one = commit(&dir, "refs/heads/main", "one");
        set_head(&dir, "refs/heads/dev").expect("unborn head");
        assert_eq!(
            list_refs(&dir).expect("list").head.as_deref(),
            Some("refs/heads/dev")
        );
        set_head(&dir, "refs/heads/main").expect("head");
        assert_eq!(
            list_refs(&dir).expect("list").head.as_deref(),
            Some("refs/heads/main")
        );
        assert!(set_head(&dir, "refs/tags/v1").is_err());
        assert!(set_head(&dir, "main").is_err());

        let name = format!("refs/nostr/{}", "b".repeat(64));
        set_ref(&dir, &name, &one).expect("set");
        assert_eq!(list_refs(&dir).expect("list").refs.get(&name), Some(&one));
        assert!(delete_ref(&dir, &name).expect("delete"));
        assert!(!delete_ref(&dir, &name).expect("delete again"));
        assert!(set_ref(&dir, "refs/nostr/../../x", &one).is_err());
        assert!(set_ref(&dir, &name, "abc").is_err());
    }
}
