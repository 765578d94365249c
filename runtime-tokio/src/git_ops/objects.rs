//! Object existence and copying objects between our own repositories.

use std::collections::BTreeSet;
use std::path::Path;

use git2::{Oid, Repository};

use super::{GitOpsError, run_git};

/// Whether `id` is an object id as state events and git write them (40 or 64
/// lowercase hex digits): grasp-core's [`grasp_core::Oid`] decides.
pub fn is_object_id(id: &str) -> bool {
    grasp_core::Oid::parse(id).is_some()
}

/// Whether `id` is a SHA-1 object id, the only kind libgit2 reads here.
pub(crate) fn is_sha1_id(id: &str) -> bool {
    matches!(grasp_core::Oid::parse(id), Some(grasp_core::Oid::Sha1(_)))
}

/// The ids among `oids` whose objects exist in the repository at `dir`.
///
/// Malformed ids (not 40 lowercase hex: libgit2 here reads SHA-1 repositories) are
/// simply not present: a state naming `abc123` waits in purgatory until it expires.
pub fn existing_oids(dir: &Path, oids: &[String]) -> Result<BTreeSet<String>, GitOpsError> {
    let repo = Repository::open_bare(dir)?;
    let odb = repo.odb()?;
    let mut present = BTreeSet::new();
    for id in oids {
        if !is_sha1_id(id) {
            continue;
        }
        if let Ok(oid) = Oid::from_str(id) {
            if odb.exists(oid) {
                present.insert(id.clone());
            }
        }
    }
    Ok(present)
}

/// Copies into `to` every object reachable from `tips` in `from` (both bare
/// repositories on this machine), without creating refs in `to`.
///
/// Uses `git fetch <from> <oid>…` with the local transport only: it negotiates, so
/// objects `to` already has are not copied again, and it reaches tips held only by
/// `refs/nostr/*` since any reachable id may be asked for.
pub fn copy_objects(from: &Path, to: &Path, tips: &[String]) -> Result<(), GitOpsError> {
    if tips.is_empty() {
        return Ok(());
    }
    if let Some(bad) = tips.iter().find(|tip| !is_object_id(tip)) {
        return Err(GitOpsError::InvalidOid(bad.clone()));
    }
    let from = from
        .to_str()
        .ok_or_else(|| GitOpsError::OutsideRoot(from.display().to_string()))?;
    let mut args = vec![
        "-c",
        "protocol.allow=never",
        "-c",
        "protocol.file.allow=always",
        "-c",
        "uploadpack.allowAnySHA1InWant=true",
        "-c",
        "gc.auto=0",
        "-c",
        "maintenance.auto=false",
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        from,
    ];
    args.extend(tips.iter().map(String::as_str));
    run_git(to, &args, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git_ops::test_util::{commit, init_bare};
    use crate::git_ops::{list_refs, set_ref};

    #[test]
    fn object_ids_are_recognised() {
        assert!(is_object_id(&"a".repeat(40)));
        assert!(is_object_id(&"0".repeat(64)));
        assert!(!is_object_id(&"A".repeat(40)));
        assert!(!is_object_id("abc123"));
        assert!(!is_object_id(&"g".repeat(40)));
    }

    #[test]
    fn existence_check_tolerates_garbage() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = init_bare(tmp.path(), "a.git");
        let tip = commit(&repo, "refs/heads/main", "one");
        let absent = "1".repeat(40);
        let asked = vec![
            tip.clone(),
            absent,
            "abc123".into(),
            "Z".repeat(40),
            String::new(),
        ];
        let present = existing_oids(&repo, &asked).expect("check");
        assert_eq!(present.into_iter().collect::<Vec<_>>(), vec![tip]);
    }

    #[test]
    fn copy_reaches_nostr_refs_and_skips_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = init_bare(tmp.path(), "a.git");
        let b = init_bare(tmp.path(), "b.git");
        let main = commit(&a, "refs/heads/main", "one");
        let second = commit(&a, "refs/heads/main", "two");
        // A PR tip only reachable from refs/nostr/<id>.
        let pr = commit(&a, "refs/heads/pr", "pr");
        let nostr_ref = format!("refs/nostr/{}", "e".repeat(64));
        set_ref(&a, &nostr_ref, &pr).expect("nostr ref");
        crate::git_ops::delete_ref(&a, "refs/heads/pr").expect("drop branch");

        copy_objects(&a, &b, &[second.clone(), pr.clone()]).expect("copy");
        let present =
            existing_oids(&b, &[main.clone(), second.clone(), pr.clone()]).expect("check");
        assert_eq!(present.len(), 3, "history and PR tip copied");
        assert!(
            list_refs(&b).expect("refs").refs.is_empty(),
            "no refs created"
        );
        // Copying again is a no-op, and bad ids are refused before git runs.
        copy_objects(&a, &b, &[second]).expect("copy again");
        assert!(matches!(
            copy_objects(&a, &b, &["--upload-pack=evil".into()]),
            Err(GitOpsError::InvalidOid(_))
        ));
        assert!(
            copy_objects(&a, &b, &["1".repeat(40)]).is_err(),
            "unknown object"
        );
    }
}
