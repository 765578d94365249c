//! Startup: the `refs/nostr/<id>` refs on disk, for the executor's hydration, which
//! adopts those the engine does not know as placeholders again (`grasp_executor::hydrate`).
//!
//! Why: a push's placeholder record is written to the journal after git moved the ref, and
//! the push's report does not wait for it (nothing a client was told depends on it: the
//! ref itself is durable in git). A crash in between — or a `git receive-pack` that
//! wrote its ref just before graspd died — leaves a ref without a record, which would
//! then never expire and never count against the placeholder budgets. The repository
//! holds all a placeholder is (its ref and commit), so it is rebuilt here, before
//! hydration ends: with a fresh deadline (the original is unknown; a crash extends a
//! placeholder's life by at most one expiry) and no client address.

use std::path::Path;

use grasp_core::nostr::prelude::EventId;
use grasp_core::{Oid, RepoId};

use super::convert::repo_id;
use crate::git_ops::list_refs;
use crate::repo::RepoPath;

/// Every `refs/nostr/<64 hex>` ref of every repository under `root` (contributor
/// repositories if `prs`).
pub(super) fn nostr_refs(root: &Path, prs: bool) -> Vec<(RepoId, EventId, Oid)> {
    let mut found = Vec::new();
    let Ok(owners) = std::fs::read_dir(root) else {
        return found;
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
            let Ok(path) = RepoPath::parse(&npub, identifier) else {
                continue;
            };
            let path = if prs { path.into_prs() } else { path };
            let Ok(refs) = list_refs(&dir.path()) else {
                continue;
            };
            let repo = repo_id(&path);
            for (name, oid) in &refs.refs {
                let id = name
                    .strip_prefix("refs/nostr/")
                    .filter(|h| h.len() == 64)
                    .and_then(|h| EventId::from_hex(h).ok());
                if let (Some(id), Some(oid)) = (id, Oid::parse(oid)) {
                    found.push((repo.clone(), id, oid));
                }
            }
        }
    }
    found
}
