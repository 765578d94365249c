//! Effects: what the engine asks its driver to do, in order.

use crate::journal::{JournalKey, JournalRecord};
use crate::oid::Oid;
use crate::peer::{PeerId, PeerSub};
use crate::relay_url::RelayUrl;
use crate::repo::RepoId;
use nostr::prelude::{Coordinate, Event, EventId, Filter, PublicKey, Timestamp};
use serde::{Deserialize, Serialize};

/// A token the driver gives with an event so that it can route the verdict back to the
/// connection that sent it. The engine only echoes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyToken(pub u64);

/// Correlates an [`Effect::CheckObjects`] with its [`crate::Input::ObjectsChecked`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CheckId(pub(crate) u64);

/// Correlates a remote request with its result input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub(crate) u64);

impl CheckId {
    /// The raw number, for logs and driver-side maps.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl RequestId {
    /// The raw number, for logs and driver-side maps.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// How an event came to be served: the label of the "released" metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServePath {
    /// Accepted and served on arrival, with nothing to wait for.
    Direct,
    /// Its git data was already here when it arrived.
    Arrival,
    /// Released from purgatory by a push to this server.
    Push,
    /// Released from purgatory by a fetch from another server.
    Sync,
}

/// One thing for the driver to do. Effects are emitted in dependency order and must be
/// executed in that order: a [`Effect::Persist`] is durable before the [`Effect::Reply`]
/// after it is sent, a [`Effect::StoreEvent`] is stored before its reply.
///
/// Local git effects (`CreateRepo`, `DeleteRepo`, `CopyObjects`, `AlignRepo`, `SetRef`)
/// have no result input: they act on our own repositories and are idempotent, so a driver
/// that fails one logs it; the next push or release brings the repository into line again.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send `["OK", event_id, accepted, message]` to the connection behind `token`.
    Reply {
        /// The token the event came with.
        token: ReplyToken,
        /// The event the verdict is for.
        event_id: EventId,
        /// OK true or false.
        accepted: bool,
        /// The NIP-01 message, with its machine-readable prefix.
        message: String,
    },
    /// Store the event in the relay database and deliver it to matching subscriptions.
    StoreEvent {
        /// The event to store. Boxed: an effect is moved through the queue several times,
        /// and inline the event made every effect 232 bytes (most are far smaller).
        event: Box<Event>,
        /// How it came to be served, for metrics.
        path: ServePath,
    },
    /// Remove the author's stored events named by id, and every version of the named
    /// coordinates up to the given `created_at` (NIP-09).
    DeleteEvents {
        /// Only events by this author may be removed.
        author: PublicKey,
        /// Event ids to remove.
        ids: Vec<EventId>,
        /// Coordinates to remove, each up to and including the timestamp.
        coordinates: Vec<(Coordinate, Timestamp)>,
    },
    /// Create the bare repository (as `git init --bare` does) if it does not exist.
    CreateRepo {
        /// The repository.
        repo: RepoId,
    },
    /// Delete the bare repository from disk.
    DeleteRepo {
        /// The repository.
        repo: RepoId,
    },
    /// Tell which of `oids` exist in which of `repos`; answer with
    /// [`crate::Input::ObjectsChecked`], at any later time (off the effect loop: it
    /// reads repositories). One repository per object is enough, the first in `repos`
    /// that has it, so the driver may stop looking for an object once found.
    CheckObjects {
        /// Correlation id.
        check: CheckId,
        /// Repositories to look in.
        repos: Vec<RepoId>,
        /// Object ids to look for.
        oids: Vec<Oid>,
    },
    /// Learn a remote's refs (its ref advertisement); answer with
    /// [`crate::Input::RefsListed`] or [`crate::Input::RequestFailed`].
    ListRefs {
        /// Correlation id.
        request: RequestId,
        /// The clone URL.
        url: String,
        /// The throttle domain (`host[:port]`).
        domain: String,
    },
    /// Fetch `oids` (and what they reach) from `url` into `into`; answer with
    /// [`crate::Input::Fetched`] or [`crate::Input::RequestFailed`].
    Fetch {
        /// Correlation id.
        request: RequestId,
        /// The clone URL.
        url: String,
        /// The throttle domain (`host[:port]`).
        domain: String,
        /// The local repository that receives the objects.
        into: RepoId,
        /// The object ids to ask for; each is advertised by the remote.
        oids: Vec<Oid>,
    },
    /// Copy the objects reachable from `oids` from one local repository to another.
    CopyObjects {
        /// Where the objects are.
        from: RepoId,
        /// Where they must be.
        to: RepoId,
        /// Tips whose closure to copy.
        oids: Vec<Oid>,
    },
    /// Make the repository's `refs/heads/*` and `refs/tags/*` exactly `refs` (creating,
    /// updating and deleting), then point HEAD at `head` if that branch exists.
    AlignRepo {
        /// The repository.
        repo: RepoId,
        /// The branch and tag refs it must have.
        refs: Vec<(String, Oid)>,
        /// The branch HEAD should point at.
        head: Option<String>,
    },
    /// Set (`Some`) or delete (`None`) one ref, e.g. `refs/nostr/<event-id>`.
    SetRef {
        /// The repository.
        repo: RepoId,
        /// Full ref name.
        name: String,
        /// The new target, or `None` to delete.
        target: Option<Oid>,
    },
    /// Remove from the repository the objects no ref reaches — those of lapsed
    /// placeholders — except the ones reachable from `keep`, which waiting events need
    /// before any ref names them. No result input: a failed or skipped prune leaves only
    /// garbage, which the next one removes. The driver runs it in the background, never
    /// during a push into the repository, and spares objects that just landed (a fetch
    /// the engine has not heard of yet).
    PruneObjects {
        /// The repository.
        repo: RepoId,
        /// Objects to keep with everything they reach (the driver skips absent ones).
        keep: Vec<Oid>,
    },
    /// Write the record to the purgatory journal durably (replacing any with its key).
    Persist {
        /// The record.
        record: JournalRecord,
    },
    /// Remove the record with this key from the journal.
    Forget {
        /// The key.
        key: JournalKey,
    },
    /// Open the one websocket to a relay we sync from (GRASP-02): resolve its host, check
    /// every address as clone URLs are checked (`--allow-private-addresses` aside), and
    /// connect to the checked address. Answer with [`crate::Input::PeerConnected`] or
    /// [`crate::Input::PeerFailed`]; everything the connection hears comes back as
    /// inputs naming `peer`.
    PeerConnect {
        /// The engine's id of the peer (reports name it).
        peer: PeerId,
        /// Where to connect (already normalized and syntactically checked).
        url: RelayUrl,
    },
    /// Close the connection to `peer`; no report about it is expected after this.
    PeerDisconnect {
        /// The peer.
        peer: PeerId,
    },
    /// Send `["REQ", sub, filters…]` to `peer`, replacing a subscription of the same id.
    /// Events it brings come back as [`crate::Input::Event`]s naming the peer; the end of
    /// stored events as [`crate::Input::PeerEose`] for a live subscription and as
    /// [`crate::Input::PageDone`] for a catch-up page (the runtime counts the page).
    PeerReq {
        /// The peer.
        peer: PeerId,
        /// The subscription.
        sub: PeerSub,
        /// Its filters (at most ten).
        filters: Vec<Filter>,
    },
    /// Send `["CLOSE", sub]` to `peer` and forget the subscription.
    PeerClose {
        /// The peer.
        peer: PeerId,
        /// The subscription.
        sub: PeerSub,
    },
}
