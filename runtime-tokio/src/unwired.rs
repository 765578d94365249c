//! What the daemon answers while no engine is attached.
//!
//! The relay, git serving and HTTP surface work without the engine, but every write
//! needs its decision. Until the engine driver is wired in, `graspd` uses
//! [`EngineNotWired`], which refuses every event and every push with a clear message
//! rather than pretending to accept them.

use async_trait::async_trait;
use nostr::prelude::Event;

use crate::git_http::{PushAuthorizer, PushDecision, RefUpdate};
use crate::git_ops::RepoRefs;
use crate::relay::{ConnId, EventSink, Verdict};
use crate::repo::RepoPath;

/// The message every refused write carries.
pub const NOT_WIRED: &str = "this server has no engine attached yet; writes are refused";

/// Refuses every event and every push (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineNotWired;

#[async_trait]
impl EventSink for EngineNotWired {
    async fn submit(&self, _event: Event, _origin: ConnId) -> Verdict {
        Verdict::refuse(format!("error: {NOT_WIRED}"))
    }
}

#[async_trait]
impl PushAuthorizer for EngineNotWired {
    async fn authorize_push(
        &self,
        _repo: &RepoPath,
        _current: &RepoRefs,
        updates: &[RefUpdate],
    ) -> PushDecision {
        updates
            .iter()
            .fold(PushDecision::accept_all(), |decision, update| {
                decision.refuse(update.name.clone(), NOT_WIRED)
            })
    }

    async fn after_push(&self, _repo: &RepoPath, _refs: &RepoRefs) {}
}
