//! How a remote server answers one request: latency, faults, and the git semantics of
//! ref advertisements and fetches over opaque objects.

use crate::world::{Outage, World};
use grasp_core::{FailureKind, Oid, Time};
use madsim::rand::Rng;
use std::time::Duration;

/// What the engine asked a remote for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Its ref advertisement.
    ListRefs,
    /// These objects.
    Fetch(Vec<Oid>),
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The advertised refs.
    Refs(Vec<(String, Oid)>),
    /// A pack holding these objects.
    Objects(Vec<Oid>),
    /// A failure the driver reports as such.
    Failed(FailureKind, String),
    /// No answer: the driver's fetch timeout turns it into a timeout.
    Hang,
}

/// The answer of the server behind `url` to `ask` sent at `start`: after how long, and what.
pub fn answer<R: Rng + ?Sized>(
    world: &World,
    url: &str,
    ask: &Ask,
    start: Time,
    rng: &mut R,
) -> (Duration, Outcome) {
    let Some((srv, repo)) = world.repo(url) else {
        let d = Duration::from_millis(rng.gen_range(1..50));
        return (d, fail(FailureKind::Unreachable, "could not resolve host"));
    };
    let (lo, hi) = srv.latency_ms;
    let ms = rng.gen_range(lo..=hi) + rng.gen_range(lo..=hi);
    let latency = Duration::from_millis(ms);
    let at = start.plus(latency);
    for (from, to, kind) in &srv.faults.outages {
        if *from <= start && start < *to {
            return match kind {
                Outage::Refused => (latency, fail(FailureKind::Unreachable, "outage")),
                Outage::Hang => (latency, Outcome::Hang),
            };
        }
    }
    let f = &srv.faults;
    let roll: f64 = rng.r#gen();
    if roll < f.refuse {
        return (
            latency,
            fail(FailureKind::Unreachable, "connection refused"),
        );
    }
    if roll < f.refuse + f.hang {
        return (latency, Outcome::Hang);
    }
    if roll < f.refuse + f.hang + f.rate_limit {
        return (latency, fail(FailureKind::RateLimited, "HTTP 429"));
    }
    let Some(repo) = repo else {
        return (latency, fail(FailureKind::Other, "repository not found"));
    };
    match ask {
        Ask::ListRefs => (latency, Outcome::Refs(repo.refs_at(at))),
        Ask::Fetch(oids) => {
            if rng.r#gen::<f64>() < f.garbage {
                return (latency, fail(FailureKind::BadResponse, "garbage pack"));
            }
            if let Some(o) = oids.iter().find(|o| !repo.holds(o, at)) {
                let why = format!("upload-pack: not our ref {o}");
                return (latency, fail(FailureKind::NotOurRef, &why));
            }
            (latency, Outcome::Objects(oids.clone()))
        }
    }
}

fn fail(kind: FailureKind, detail: &str) -> Outcome {
    Outcome::Failed(kind, detail.to_owned())
}
