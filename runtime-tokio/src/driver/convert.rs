//! Conversions between the runtime's git and path types and the engine's.

use std::collections::BTreeMap;

use grasp_core::{Oid, RefUpdate as CoreUpdate, RepoId};

use crate::git_http::RefUpdate;
use crate::git_ops::RepoRefs;
use crate::repo::{PathError, RepoPath};

/// The engine's repository id for a validated path.
pub fn repo_id(path: &RepoPath) -> RepoId {
    if path.is_prs() {
        RepoId::prs(*path.owner(), path.identifier())
    } else {
        RepoId::new(*path.owner(), path.identifier())
    }
}

/// The validated path for an engine repository id (the engine only emits safe ids).
pub fn repo_path(id: &RepoId) -> Result<RepoPath, PathError> {
    let path = RepoPath::new(id.owner, &id.d)?;
    Ok(if id.is_prs() { path.into_prs() } else { path })
}

/// Refs whose values are object ids (anything else cannot matter to the engine).
pub fn refs(refs: &RepoRefs) -> Vec<(String, Oid)> {
    refs.refs
        .iter()
        .filter_map(|(n, o)| Oid::parse(o).map(|o| (n.clone(), o)))
        .collect()
}

/// One client ref update; the all-zero id means "none".
pub fn update(u: &RefUpdate) -> CoreUpdate {
    let parse = |s: &str| Oid::parse(s).filter(|o| !o.is_zero());
    CoreUpdate {
        name: u.name.clone(),
        old: parse(&u.old),
        new: parse(&u.new),
    }
}

/// Refs as hex strings, for the git helpers.
pub fn hex_refs(refs: &[(String, Oid)]) -> BTreeMap<String, String> {
    refs.iter()
        .map(|(n, o)| (n.clone(), o.to_string()))
        .collect()
}
