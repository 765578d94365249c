//! Event ingest: EVENT→OK over websockets from four connections, against the same
//! events written straight into a bare nostr-lmdb store (no relay, no engine), rounds
//! alternating A B A B so that machine drift hits both sides alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::nostr_sdk::prelude::{Event, JsonUtil, Keys};
use grasp_tests::relay::RelayClient;
use nostr_database::NostrDatabase;
use nostr_lmdb::NostrLmdb;

use crate::load::{self, Outcome, WINDOW};
use crate::report::{self, Row, median, ms, quantile};
use crate::{Scale, graspd_options};

const CONNECTIONS: usize = 4;

/// Runs the ingest benchmark for related events (issues and comments) and for states.
pub async fn run(scale: Scale) -> Vec<Row> {
    let per_round = scale.pick(1_500, 5_000);
    let rounds = scale.pick(2, 3);
    let world = World::start_with(graspd_options()).await;
    let owner = Keys::generate();
    let hosted = world.hosted(&owner, "ingest", &[]).await;
    let pid = world.server.pid().expect("graspd runs");
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(world.client().await);
    }
    let store_dir = tempfile::tempdir().expect("temp store dir");
    let store = Arc::new(
        NostrLmdb::builder(store_dir.path())
            .map_size(32 << 30)
            .build()
            .await
            .expect("bare nostr-lmdb store"),
    );

    let authors: Vec<Keys> = (0..64).map(|_| Keys::generate()).collect();
    let repo = hosted.coordinate();
    let mut rows = Vec::new();
    let related = |round: usize| related_events(&authors, &repo, per_round, round);
    rows.extend(
        compare(
            "related events (issues, comments)",
            &clients,
            &store,
            pid,
            rounds,
            related,
        )
        .await,
    );
    let states = |round: usize| state_events(&hosted, per_round, round, 2 * rounds);
    rows.extend(compare("states", &clients, &store, pid, rounds, states).await);
    rows
}

/// `per_round` issues and comments on them by 64 authors, all referencing `repo`.
fn related_events(authors: &[Keys], repo: &str, count: usize, round: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(count);
    let mut root: Option<Event> = None;
    for i in 0..count {
        let keys = &authors[i % authors.len()];
        let event = match (&root, i % 4) {
            (Some(issue), 1..=3) => events::comment(keys, issue, repo),
            _ => {
                let issue = events::issue(keys, repo, &format!("issue {round}.{i}"));
                root = Some(issue.clone());
                issue
            }
        };
        out.push(event);
    }
    out
}

/// States of the hosted repository naming its existing commit, one second apart and
/// newer round after round, so each is stored at once (and the repo kept aligned).
/// `rounds` counts every call (graspd's and the bare store's), so that the newest state
/// is still in the past.
fn state_events(
    hosted: &grasp_tests::fixture::Hosted,
    count: usize,
    round: usize,
    rounds: usize,
) -> Vec<Event> {
    let span = (count * rounds) as i64;
    (0..count)
        .map(|i| {
            let offset = -span - 120 + (round * count + i) as i64;
            events::main_state(&hosted.owner, &hosted.d, &hosted.main, events::at(offset))
        })
        .collect()
}

/// Alternates graspd and the bare store round by round with fresh events each time.
async fn compare(
    what: &str,
    clients: &[RelayClient],
    store: &Arc<NostrLmdb>,
    pid: u32,
    rounds: usize,
    make: impl Fn(usize) -> Vec<Event>,
) -> Vec<Row> {
    let mut relay_rates = Vec::new();
    let mut store_rates = Vec::new();
    let mut ratios = Vec::new();
    let mut cpu_per_event = Vec::new();
    let mut relay_lat = Vec::new();
    let mut store_lat = Vec::new();
    let mut refusals = Vec::new();
    let mut total = 0;
    let mut accepted = 0;
    for round in 0..rounds {
        let relay_events = make(2 * round);
        let store_events = to_store_events(&make(2 * round + 1));
        let cpu_before = report::cpu_time(pid);
        let relay = load::publish(clients, &relay_events).await;
        let cpu = report::cpu_time(pid).saturating_sub(cpu_before);
        let bare = store_load(store, store_events).await;
        total += relay_events.len();
        accepted += relay.accepted;
        refusals.extend(relay.refusals.iter().cloned());
        relay_rates.push(relay.rate());
        store_rates.push(bare.rate());
        ratios.push(relay.rate() / bare.rate());
        cpu_per_event.push(cpu.as_secs_f64() * 1e3 / relay.accepted.max(1) as f64);
        eprintln!(
            "ingest {what} round {round}: graspd {:.0}/s, bare store {:.0}/s, graspd CPU {:.3} ms/event",
            relay.rate(),
            bare.rate(),
            cpu_per_event[round]
        );
        relay_lat.extend(relay.latencies);
        store_lat.extend(bare.latencies);
    }
    let rate = median(&relay_rates);
    let ratio = median(&ratios);
    let cpu = median(&cpu_per_event);
    let mut rows = vec![
        Row::new(
            "ingest",
            format!("{what}: accepted events/s over {CONNECTIONS} connections, {WINDOW} in flight each (ratio: graspd/store)"),
            format!("{rate:.0}/s ({accepted}/{total} accepted)"),
        )
        .against(format!("{:.0}/s bare nostr-lmdb", median(&store_rates)), ratio)
        .target("≥ 70% of the bare store", ratio >= 0.70),
        Row::new(
            "ingest",
            format!("{what}: EVENT→OK latency p50 / p99"),
            format!("{} / {}", ms(quantile(&relay_lat, 0.5)), ms(quantile(&relay_lat, 0.99))),
        )
        .against(
            format!("{} / {} save_event", ms(quantile(&store_lat, 0.5)), ms(quantile(&store_lat, 0.99))),
            quantile(&relay_lat, 0.99).as_secs_f64() / quantile(&store_lat, 0.99).as_secs_f64().max(1e-9),
        ),
        Row::new("ingest", format!("{what}: graspd CPU per accepted event"), format!("{cpu:.3} ms"))
            .target("≤ 0.3 ms", cpu <= 0.3),
    ];
    if what.starts_with("related") {
        rows[0] = rows[0].clone().target(
            "≥ 70% of the bare store and ≥ 4000/s",
            ratio >= 0.70 && rate >= 4_000.0,
        );
    }
    if let Some(first) = refusals.first() {
        rows.push(Row::new(
            "ingest",
            format!("{what}: first refusal"),
            first.clone(),
        ));
    }
    rows
}

fn to_store_events(events: &[Event]) -> Vec<nostr::prelude::Event> {
    events
        .iter()
        .map(|e| serde_json::from_str(&e.as_json()).expect("same wire format"))
        .collect()
}

/// The same shape of load against the bare store: four writers, `WINDOW` saves in
/// flight each.
async fn store_load(store: &Arc<NostrLmdb>, events: Vec<nostr::prelude::Event>) -> Outcome {
    let started = Instant::now();
    let writers = (0..CONNECTIONS).map(|w| {
        let mine: Vec<nostr::prelude::Event> = events
            .iter()
            .skip(w)
            .step_by(CONNECTIONS)
            .cloned()
            .collect();
        let store = Arc::clone(store);
        tokio::spawn(async move { writer(&store, mine).await })
    });
    let mut outcome = Outcome::default();
    for part in futures_util::future::join_all(writers).await {
        let (latencies, saved) = part.expect("writer task");
        outcome.accepted += saved;
        outcome.latencies.extend(latencies);
    }
    outcome.wall = started.elapsed();
    outcome
}

async fn writer(store: &NostrLmdb, events: Vec<nostr::prelude::Event>) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::with_capacity(events.len());
    let mut saved = 0;
    let mut pending = events.iter();
    let mut in_flight = FuturesUnordered::new();
    for event in pending.by_ref().take(WINDOW) {
        in_flight.push(timed_save(store, event));
    }
    while let Some((ok, latency)) = in_flight.next().await {
        latencies.push(latency);
        saved += usize::from(ok);
        if let Some(event) = pending.next() {
            in_flight.push(timed_save(store, event));
        }
    }
    (latencies, saved)
}

/// Saves `event`, returning whether it was saved and how long it took.
async fn timed_save(store: &NostrLmdb, event: &nostr::prelude::Event) -> (bool, Duration) {
    let sent = Instant::now();
    let saved = store.save_event(event).await.is_ok();
    (saved, sent.elapsed())
}
