//! Inputs: everything that happens to the engine, including the results of its effects.

use crate::effect::{CheckId, ReplyToken, RequestId};
use crate::event::{Origin, VerifiedEvent};
use crate::journal::JournalRecord;
use crate::oid::Oid;
use crate::peer::{JobId, PeerFailureKind, PeerId, PeerSub};
use crate::repo::RepoId;
use nostr::prelude::Timestamp;
use serde::{Deserialize, Serialize};

/// One input to [`crate::Engine::handle_input`].
#[derive(Clone, Debug)]
pub enum Input {
    /// An event from a client or from relay sync. The verdict comes back as an
    /// [`crate::Effect::Reply`] with `token`, in this step or after a check of the
    /// repository's objects.
    Event {
        /// Echoed in the reply.
        token: ReplyToken,
        /// The verified event.
        event: VerifiedEvent,
        /// Client or relay sync.
        origin: Origin,
        /// Wall-clock now, for the `created_at` sanity check.
        received_at: Timestamp,
        /// The relay it was synced from (`None` from a client): its verdict is counted
        /// for that peer, never sent.
        peer: Option<PeerId>,
    },
    /// A push that [`crate::Engine::handle_push_request`] accepted has been written by git.
    PushApplied {
        /// The repository pushed to.
        repo: RepoId,
        /// The ref updates git applied.
        updates: Vec<RefUpdate>,
        /// Every ref of the repository after the push.
        refs: Vec<(String, Oid)>,
        /// The pushing client's address, as in its [`PushRequest`].
        client: Option<String>,
    },
    /// A repository's refs as a push's ref advertisement showed them: the objects they
    /// name are here. Releases what they satisfy — the push that changed nothing
    /// ("Everything up-to-date") after a ref moved by a path the engine did not see.
    /// Anyone may ask for an advertisement, so this only ever releases: it neither
    /// restarts a deadline nor writes anything else.
    RefsSeen {
        /// The repository.
        repo: RepoId,
        /// Its refs.
        refs: Vec<(String, Oid)>,
    },
    /// The answer to [`crate::Effect::CheckObjects`]: which objects exist where.
    ObjectsChecked {
        /// The check.
        check: CheckId,
        /// Each object found, with a repository that holds it.
        found: Vec<(Oid, RepoId)>,
    },
    /// An [`crate::Effect::CheckObjects`] could not look everywhere it was asked to (a
    /// repository could not be opened or read): not an answer that the rest is absent.
    /// What `found` names is noted as present, as in [`Input::ObjectsChecked`]; the
    /// event waiting for the check gets its verdict (it waits); a check that expiry
    /// waits for is asked again, at most [`crate::MAX_CHECK_RETRIES`] times, before
    /// expiry goes on by the deadlines alone.
    CheckFailed {
        /// The check.
        check: CheckId,
        /// Objects found in the repositories that could be read.
        found: Vec<(Oid, RepoId)>,
    },
    /// The answer to [`crate::Effect::ListRefs`].
    RefsListed {
        /// The request.
        request: RequestId,
        /// The advertised refs and their object ids.
        refs: Vec<(String, Oid)>,
    },
    /// The answer to a successful [`crate::Effect::Fetch`].
    Fetched {
        /// The request.
        request: RequestId,
        /// Which of the requested objects now exist in the target repository.
        present: Vec<Oid>,
        /// Bytes received, for metrics.
        bytes: u64,
    },
    /// A remote request failed; the engine stays consistent and retries by backoff.
    RequestFailed {
        /// The request.
        request: RequestId,
        /// Why.
        failure: Failure,
    },
    /// The websocket to `peer` is open (answer to [`crate::Effect::PeerConnect`]).
    PeerConnected {
        /// The peer.
        peer: PeerId,
    },
    /// The connection to `peer` failed or ended; the runtime has dropped it.
    PeerFailed {
        /// The peer.
        peer: PeerId,
        /// What the engine does about it.
        kind: PeerFailureKind,
        /// For the operator view and the log.
        detail: String,
    },
    /// `peer` sent `EOSE` for a live subscription.
    PeerEose {
        /// The peer.
        peer: PeerId,
        /// The subscription.
        sub: PeerSub,
    },
    /// `peer` sent `CLOSED` for a subscription (it is gone on the peer's side).
    PeerClosed {
        /// The peer.
        peer: PeerId,
        /// The subscription.
        sub: PeerSub,
        /// The peer's message (`rate-limited:`, `auth-required:`…).
        message: String,
    },
    /// `peer` sent a `NOTICE`.
    PeerNotice {
        /// The peer.
        peer: PeerId,
        /// The notice.
        message: String,
    },
    /// A catch-up page ended (its `EOSE`): what it brought, for the next page's bounds.
    PageDone {
        /// The peer.
        peer: PeerId,
        /// The job.
        job: JobId,
        /// Events received on the page.
        received: u32,
        /// Of those, how many the job had not seen on an earlier page.
        new: u32,
        /// The oldest `created_at` on the page.
        oldest: Option<Timestamp>,
    },
    /// `peer` sent events the runtime dropped before the engine: bad id or signature,
    /// malformed, too large, or not matching the subscription's filters.
    PeerMisbehaved {
        /// The peer.
        peer: PeerId,
        /// How many.
        count: u32,
        /// What the last one was, for the operator view.
        detail: String,
    },
    /// Startup: an event from the event store (only its indexes are rebuilt).
    Stored(VerifiedEvent),
    /// Startup: a record from the purgatory journal.
    Restore(JournalRecord),
    /// Startup: every stored event and journal record has been given; expire what expired
    /// while down and resume syncing.
    Hydrated,
}

/// One ref update of a push: git's `<old> <new> <name>` command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefUpdate {
    /// Full ref name as sent by the client.
    pub name: String,
    /// The old value (`None` when creating).
    pub old: Option<Oid>,
    /// The new value (`None` when deleting).
    pub new: Option<Oid>,
}

/// Why a remote request failed, by who is at fault.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// No answer within the time limit.
    Timeout,
    /// Connection refused, reset or unresolvable.
    Unreachable,
    /// The server does not have (or will not serve) the objects asked for.
    NotOurRef,
    /// The server sent something that is not a valid pack or advertisement, or too much.
    BadResponse,
    /// The server asked us to slow down (HTTP 429/503).
    RateLimited,
    /// Our own guard refused the URL (scheme, credentials, private address).
    Refused,
    /// Anything else (HTTP error status, git error).
    Other,
}

/// A failed request: the kind decides metrics; the detail is shown to operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The kind of failure.
    pub kind: FailureKind,
    /// Human-readable detail.
    pub detail: String,
}

/// A push as received, before git runs: what [`crate::Engine::handle_push_request`] decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRequest {
    /// The repository pushed to.
    pub repo: RepoId,
    /// The repository's refs now (at least every `refs/heads/*` and `refs/tags/*`).
    pub current: Vec<(String, Oid)>,
    /// The ref updates the client asks for.
    pub updates: Vec<RefUpdate>,
    /// The pushing client's address, for per-address budgets (`None` when unknown: only
    /// the other budgets apply).
    pub client: Option<String>,
}

/// The decision on a push: per ref, accepted or refused with a reason the git client shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushVerdict {
    /// One entry per update, in request order.
    pub refs: Vec<(String, Result<(), String>)>,
}

impl PushVerdict {
    /// Whether every ref was accepted (git runs only then).
    pub fn is_accepted(&self) -> bool {
        self.refs.iter().all(|(_, r)| r.is_ok())
    }
}
