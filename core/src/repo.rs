//! Repository identity: one bare repository per (owner, identifier) on this server.

use nostr::nips::nip19::ToBech32;
use nostr::prelude::PublicKey;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A hosted repository, `/<npub of owner>/<d>.git`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RepoId {
    /// The announcing pubkey.
    pub owner: PublicKey,
    /// The announcement's `d` identifier.
    pub d: String,
}

impl RepoId {
    /// A repository id from its parts (not validated: the runtime validates URL paths).
    pub fn new(owner: PublicKey, d: impl Into<String>) -> Self {
        RepoId { owner, d: d.into() }
    }

    /// `<npub>/<d>.git`, the path of the repository below a server's root.
    pub fn path(&self) -> String {
        format!("{}/{}.git", npub(&self.owner), self.d)
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
