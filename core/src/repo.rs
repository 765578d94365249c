//! Repository identity: one bare repository per (owner, identifier) on this server.

use nostr::nips::nip19::ToBech32;
use nostr::prelude::PublicKey;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which URL space a repository lives in: the standard endpoint's hosted repositories,
/// or GRASP-06's contributor repositories (`/prs/<npub>/<d>.git`), which are never
/// announced, listed or synced and only ever hold `refs/nostr/<event-id>` refs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Namespace {
    /// `/<npub>/<d>.git`: a repository announced here.
    #[default]
    Hosted,
    /// `/prs/<npub>/<d>.git`: pull request commits pushed by `npub` for repositories `d`.
    Prs,
}

impl Namespace {
    fn is_hosted(&self) -> bool {
        *self == Namespace::Hosted
    }
}

/// A repository on this server: a hosted one, `/<npub of owner>/<d>.git`, or a
/// contributor one, `/prs/<npub of author>/<d>.git` (GRASP-06).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RepoId {
    /// The announcing pubkey (for a contributor repository: the pull requests' author).
    pub owner: PublicKey,
    /// The announcement's `d` identifier (the target repository's).
    pub d: String,
    /// Hosted or contributor. Last, so hosted repositories order as before; left out of
    /// the journal when hosted, so older journals read unchanged.
    #[serde(default, skip_serializing_if = "Namespace::is_hosted")]
    pub ns: Namespace,
}

impl RepoId {
    /// A hosted repository id from its parts (not validated: the runtime validates URL paths).
    pub fn new(owner: PublicKey, d: impl Into<String>) -> Self {
        RepoId {
            owner,
            d: d.into(),
            ns: Namespace::Hosted,
        }
    }

    /// The contributor repository `/prs/<npub of author>/<d>.git` (GRASP-06).
    pub fn prs(author: PublicKey, d: impl Into<String>) -> Self {
        RepoId {
            owner: author,
            d: d.into(),
            ns: Namespace::Prs,
        }
    }

    /// Whether this is a contributor repository (`/prs/…`).
    pub fn is_prs(&self) -> bool {
        self.ns == Namespace::Prs
    }

    /// `<npub>/<d>.git` (`prs/<npub>/<d>.git` for a contributor repository), the path of
    /// the repository below a server's root.
    pub fn path(&self) -> String {
        let prefix = if self.is_prs() { "prs/" } else { "" };
        format!("{prefix}{}/{}.git", npub(&self.owner), self.d)
    }
}

/// The bech32 `npub1…` form of a public key.
pub fn npub(pk: &PublicKey) -> String {
    // Encoding a valid key to bech32 cannot fail; fall back to hex rather than panic.
    pk.to_bech32().unwrap_or_else(|_| pk.to_hex())
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

impl fmt::Debug for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoId({})", self.path())
    }
}

/// Whether `d` is safe to use as a path component: non-empty, at most 128 bytes, no `/`
/// or `\`, no `..`, no control characters, not starting with `.` (hidden files) or `-`
/// (git option injection).
///
/// The engine refuses announcements whose `d` fails this, so that no repository path it
/// emits can escape the data directory; the runtime applies the same rule to URL paths.
pub fn is_safe_identifier(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 128
        && !d.starts_with(['.', '-'])
        && !d.contains("..")
        && !d.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_safe_identifier("my-repo_1.x"));
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "-x",
            "a..b",
            "a\nb",
            &"x".repeat(129),
        ] {
            assert!(!is_safe_identifier(bad), "{bad:?}");
        }
    }
}
