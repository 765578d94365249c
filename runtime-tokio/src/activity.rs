//! One `info` line for each thing an operator watches for: a push that landed, and an
//! announcement or repository state that is now served. Refusals are logged where they
//! are decided; these lines say that something worked, with the repository and refs.

use grasp_core::nostr::prelude::{Event, Kind};
use grasp_core::{RepoId, ServePath};

use crate::git_http::RefUpdate;
use crate::git_ops::RepoRefs;
use crate::repo::RepoPath;

/// Most refs named in one line; a push of thousands of tags says how many more.
const MAX_REFS_LISTED: usize = 16;

/// `name=value` pairs joined by spaces, at most [`MAX_REFS_LISTED`] of them.
fn ref_list<'a>(refs: impl ExactSizeIterator<Item = (&'a str, String)>) -> String {
    let total = refs.len();
    let mut line: Vec<String> = refs
        .take(MAX_REFS_LISTED)
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    if total > MAX_REFS_LISTED {
        line.push(format!("(+{} more)", total - MAX_REFS_LISTED));
    }
    if line.is_empty() {
        "(none)".to_owned()
    } else {
        line.join(" ")
    }
}

/// The first 12 hex digits of an object id, as `git log --oneline` would show it.
fn short(oid: &str) -> String {
    oid.chars().take(12).collect()
}

/// Logs a push git accepted: each requested update that is now in place
/// (`old..new`, `+new` for a created ref, `-` for a deleted one).
pub(crate) fn push_landed(repo: &RepoPath, updates: &[RefUpdate], refs: &RepoRefs) {
    let landed: Vec<(&str, String)> = updates
        .iter()
        .filter(|u| match refs.refs.get(&u.name) {
            Some(now) => !u.is_delete() && now == &u.new,
            None => u.is_delete(),
        })
        .map(|u| {
            let change = if u.is_delete() {
                "-".to_owned()
            } else if u.is_create() {
                format!("+{}", short(&u.new))
            } else {
                format!("{}..{}", short(&u.old), short(&u.new))
            };
            (u.name.as_str(), change)
        })
        .collect();
    tracing::info!(
        %repo,
        refs = %ref_list(landed.into_iter()),
        "push accepted"
    );
}

/// Logs an announcement or a repository state that was just stored and published.
pub(crate) fn event_served(event: &Event, path: ServePath) {
    let what = match event.kind {
        Kind::GitRepoAnnouncement => "announcement accepted",
        Kind::RepoState => "repository state accepted",
        _ => return,
    };
    let Some(d) = event.tags.identifier() else {
        return;
    };
    let repo = RepoId::new(event.pubkey, d);
    let how = match path {
        ServePath::Direct => "direct",
        ServePath::Arrival => "data present",
        ServePath::Push => "released by a push",
        ServePath::Sync => "released by a fetch",
    };
    if event.kind == Kind::RepoState {
        let refs: Vec<(&str, String)> = event
            .tags
            .iter()
            .filter_map(|t| match t.as_slice() {
                [name, value, ..] if name == "HEAD" || name.starts_with("refs/") => {
                    let value = value
                        .strip_prefix("ref: ")
                        .map_or_else(|| short(value), str::to_owned);
                    Some((name.as_str(), value))
                }
                _ => None,
            })
            .collect();
        tracing::info!(%repo, id = %event.id, how, refs = %ref_list(refs.into_iter()), "{what}");
    } else {
        tracing::info!(%repo, id = %event.id, how, "{what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_lists_are_capped() {
        let refs: Vec<(String, String)> = (0..20)
            .map(|i| (format!("refs/tags/v{i}"), "x".to_owned()))
            .collect();
        let line = ref_list(refs.iter().map(|(n, v)| (n.as_str(), v.clone())));
        assert!(line.starts_with("refs/tags/v0=x refs/tags/v1=x"), "{line}");
        assert!(line.ends_with("(+4 more)"), "{line}");
        assert_eq!(ref_list(std::iter::empty::<(&str, String)>()), "(none)");
    }
}
