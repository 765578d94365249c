//! The push authorization hook: who decides whether a push may land.
//!
//! The HTTP layer parses the ref updates a push asks for and reads the repository's
//! current refs; the decision (does the result align with an authorized state event,
//! is `refs/nostr/<id>` acceptable…) belongs to the engine. After `git receive-pack`
//! succeeds, [`PushAuthorizer::after_push`] runs the release path before the push's
//! HTTP response completes, so a client that queries right after `git push` returns
//! sees the released events.

use std::collections::BTreeMap;
use std::net::IpAddr;

use async_trait::async_trait;

use super::pktline::RefUpdate;
use crate::git_ops::RepoRefs;
use crate::repo::RepoPath;

/// The decision on one push: every ref accepted, or a reason per refused ref.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushDecision {
    refused: BTreeMap<String, String>,
}

impl PushDecision {
    /// Accept every ref update.
    pub fn accept_all() -> Self {
        Self::default()
    }

    /// Refuse `refname` with `reason` (shown by `git push` next to the ref).
    #[must_use]
    pub fn refuse(mut self, refname: impl Into<String>, reason: impl Into<String>) -> Self {
        self.refused.insert(refname.into(), reason.into());
        self
    }

    /// Whether no ref was refused (git may run).
    pub fn is_accepted(&self) -> bool {
        self.refused.is_empty()
    }

    /// The reason `refname` was refused, if it was.
    pub fn reason(&self, refname: &str) -> Option<&str> {
        self.refused.get(refname).map(String::as_str)
    }

    /// Every refused ref with its reason.
    pub fn refused(&self) -> &BTreeMap<String, String> {
        &self.refused
    }
}

/// Decides pushes and is told when they land; implemented by the engine driver.
#[async_trait]
pub trait PushAuthorizer: Send + Sync + 'static {
    /// Decides whether `updates` may be applied to `repo`, whose refs are `current`.
    /// Called before git runs; a push with any refused ref writes nothing. `client` is the
    /// pushing address, for per-address budgets (refs/nostr/ placeholders).
    async fn authorize_push(
        &self,
        repo: &RepoPath,
        current: &RepoRefs,
        updates: &[RefUpdate],
        client: Option<IpAddr>,
    ) -> PushDecision;

    /// A client read the push ref advertisement of `repo`, whose refs are `refs`: a push
    /// that finds nothing to send ends there ("Everything up-to-date"), so this is the
    /// only sign of it. Run in the background, after the advertisement was sent; anyone
    /// may cause it, so it may only release what the refs satisfy.
    async fn refs_seen(&self, repo: &RepoPath, refs: &RepoRefs) {
        let _ = (repo, refs);
    }

    /// Called after `git receive-pack` exited successfully, with the refs as they are
    /// now. The push's HTTP response completes only when this returns, so the release
    /// (storing and publishing events, aligning other repos) should be done by then.
    async fn after_push(
        &self,
        repo: &RepoPath,
        updates: &[RefUpdate],
        refs: &RepoRefs,
        client: Option<IpAddr>,
    );
}
