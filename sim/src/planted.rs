//! Planted bugs: test-only fault switches in the harness (never in the engine) that break
//! the system on purpose, each of which a named invariant must catch.

use crate::check;
use crate::shape::Shape;

/// A deliberate bug in how the harness drives or serves the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Planted {
    /// No bug.
    #[default]
    None,
    /// A throttle that admits extra requests: every ref advertisement the engine asks
    /// for is also probed once more by the harness.
    ExtraRequest,
    /// An object check that reports every asked-for object present.
    PhantomObject,
    /// A restart that restores waiting events with a fresh deadline (downtime forgotten).
    FreshDeadline,
    /// A relay-sync event for an identifier in backoff is dropped, not fed (its backoff
    /// reset never happens).
    DropNewEvent,
    /// Relay-sync events are fed as client events (the 500 ms hunt becomes 3 min).
    SyncAsClient,
    /// The driver arms its timer 10 minutes after the engine's deadline (a unit slip):
    /// hunts start late.
    LateTimer,
    /// The disk acknowledges writes before they are durable (a lying cache).
    LyingFsync,
    /// The disk loses a durable waiting record at a crash.
    TornJournal,
    /// The event store breaks `created_at` ties by the highest id, not the lowest.
    StoreOrder,
    /// A graceful shutdown drops the executor without settling its writes.
    NoSettle,
}

impl Planted {
    /// Every planted bug.
    pub const ALL: [Planted; 10] = [
        Planted::ExtraRequest,
        Planted::PhantomObject,
        Planted::FreshDeadline,
        Planted::DropNewEvent,
        Planted::SyncAsClient,
        Planted::LateTimer,
        Planted::LyingFsync,
        Planted::TornJournal,
        Planted::StoreOrder,
        Planted::NoSettle,
    ];

    /// The invariant that must catch it.
    pub fn caught_by(self) -> Option<&'static str> {
        match self {
            Planted::None => None,
            Planted::ExtraRequest => Some(check::THROTTLE),
            Planted::PhantomObject => Some(check::RELEASE),
            Planted::FreshDeadline => Some(check::DEADLINES),
            Planted::DropNewEvent => Some(check::ANSWERED),
            Planted::SyncAsClient => Some(check::BACKOFF),
            Planted::LateTimer => Some(check::LIVENESS),
            Planted::LyingFsync => Some(check::ACKED_DURABLE),
            Planted::TornJournal => Some(check::SURVIVES),
            Planted::StoreOrder => Some(check::SERVED),
            Planted::NoSettle => Some(check::SHUTDOWN),
        }
    }

    /// The shape whose seeds exercise it.
    pub fn shape(self) -> Shape {
        match self {
            Planted::None | Planted::PhantomObject | Planted::LateTimer => Shape::Basic,
            Planted::ExtraRequest | Planted::DropNewEvent | Planted::SyncAsClient => Shape::Busy,
            Planted::FreshDeadline
            | Planted::LyingFsync
            | Planted::TornJournal
            | Planted::NoSettle => Shape::Restarts,
            Planted::StoreOrder => Shape::Governance,
        }
    }
}
