//! Memory per purgatory entry: graspd's resident memory grown by 100k waiting events
//! (10k quick), minus the bytes of the events' own JSON (which graspd must keep, since
//! purgatory events are nowhere else), per entry.
//!
//! The entries are PRs (kind 1618) tagging hosted repositories, each naming a `c` tip
//! that no repository has, so each waits. graspd's default caps are kept: 50 entries per
//! author (`--max-purgatory-per-author` is 100), 1,000 per repository identifier (the
//! engine's cap is 2,000), 50 repositories per owner (`--max-repos-per-author` is 100).
//! Resident memory is read twice: live right after ingest (what a running server
//! carries, allocator slack of the ingest included), and after a restart that hydrates
//! the same entries from the journal (the steady state). The baseline is a freshly
//! restarted server with the same repositories and connections.

use std::time::{Duration, Instant};

use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::{Event, JsonUtil, Keys, Timestamp};
use grasp_tests::relay::RelayClient;

use crate::report::{Row, rss_kib};
use crate::{Scale, graspd_options, histogram, load};

const PER_REPO: usize = 1_000;
const PER_AUTHOR: usize = 50;
const REPOS_PER_OWNER: usize = 50;
const CONNECTIONS: usize = 4;
/// Entries published one by one first, each checked for the exact purgatory OK.
const CHECKED: usize = 100;
pub(crate) const SETTLE: Duration = Duration::from_secs(3);
const TARGET: &str = "≤ 1 KiB per entry beyond the event JSON";

/// Fills purgatory and reports resident memory and journal size per entry.
pub async fn run(scale: Scale) -> Vec<Row> {
    let entries: usize = scale.pick(10_000, 100_000);
    let mut world = World::start_with(graspd_options()).await;
    let repos = host_repos(&world, entries.div_ceil(PER_REPO)).await;
    let signing = Instant::now();
    let prs = sign_prs(&repos, entries);
    let json: usize = prs.iter().map(|e| e.as_json().len()).sum();
    eprintln!(
        "memory: {} repositories hosted, {entries} PRs signed in {:.1} s",
        repos.len(),
        signing.elapsed().as_secs_f64()
    );

    let clients = fresh_start(&mut world).await;
    let pid = world.server.pid().expect("graspd runs");
    let journal = world.server.data_dir().join("journal.redb");
    let (rss_before, journal_before) = (rss_kib(pid), file_len(&journal));

    let started = Instant::now();
    for pr in &prs[..CHECKED] {
        world.publish_purgatory(pr, "PR with a missing tip").await;
    }
    let outcome = load::publish(&clients, &prs[CHECKED..]).await;
    let wall = started.elapsed();
    assert_eq!(
        outcome.accepted,
        entries - CHECKED,
        "every PR accepted into purgatory; refusals: {:?}",
        outcome.refusals
    );
    assert_eq!(waiting(&world).await, entries, "PRs waiting per /metrics");
    tokio::time::sleep(SETTLE).await;
    let rss_live = rss_kib(pid);
    let journal_after = file_len(&journal);
    eprintln!("memory: live {rss_live} KiB (before {rss_before} KiB), ingest {wall:?}");

    drop(clients);
    let _clients = fresh_start(&mut world).await;
    let pid = world.server.pid().expect("graspd runs");
    assert_eq!(waiting(&world).await, entries, "PRs waiting after restart");
    let rss_restarted = rss_kib(pid);

    let per_entry = |rss: u64| {
        (rss as f64 * 1024.0 - rss_before as f64 * 1024.0 - json as f64) / entries as f64
    };
    let (live, restarted) = (per_entry(rss_live), per_entry(rss_restarted));
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    vec![
        Row::new(
            "memory",
            format!(
                "RSS growth per purgatory entry beyond its JSON, live after ingest ({entries} PRs)"
            ),
            format!("{live:.0} B"),
        )
        .target(TARGET, live <= 1024.0),
        Row::new(
            "memory",
            "same, after a restart hydrated them from the journal",
            format!("{restarted:.0} B"),
        )
        .target(TARGET, restarted <= 1024.0),
        Row::new(
            "memory",
            "RSS baseline → live → after restart; event JSON total (mean per event)",
            format!(
                "{} → {} → {}; JSON {} ({:.0} B)",
                mib(rss_before),
                mib(rss_live),
                mib(rss_restarted),
                mib(json as u64 / 1024),
                json as f64 / entries as f64
            ),
        ),
        Row::new(
            "memory",
            "purgatory journal (journal.redb) growth per entry",
            format!(
                "{:.0} B ({} → {})",
                journal_after.saturating_sub(journal_before) as f64 / entries as f64,
                mib(journal_before / 1024),
                mib(journal_after / 1024)
            ),
        ),
        Row::new(
            "memory",
            format!(
                "ingest into purgatory over {CONNECTIONS} connections (one journal commit each)"
            ),
            format!(
                "{:.0} events/s ({:.1} s)",
                entries as f64 / wall.as_secs_f64(),
                wall.as_secs_f64()
            ),
        ),
    ]
}

/// `count` repositories, announced and with one pushed commit each (so they are
/// accepted), by owners holding `REPOS_PER_OWNER` each; their coordinates.
async fn host_repos(world: &World, count: usize) -> Vec<String> {
    let work = Work::init().await;
    let main = work.commit("base").await;
    let owners: Vec<Keys> = (0..count.div_ceil(REPOS_PER_OWNER))
        .map(|_| Keys::generate())
        .collect();
    let mut coordinates = Vec::new();
    for i in 0..count {
        let owner = &owners[i / REPOS_PER_OWNER];
        let d = format!("mem-{i}");
        world.announce(owner, &d, &[]).await;
        let state = events::main_state(owner, &d, &main, events::at(-60));
        world.publish_purgatory(&state, "state").await;
        work.push(&world.repo_url(&owner.public_key(), &d), &["main"])
            .await
            .expect_ok("push of the repository's commit");
        coordinates.push(events::coordinate(&owner.public_key(), &d));
    }
    coordinates
}

/// `count` PRs, round-robin over the repositories and over `count / PER_AUTHOR`
/// authors, each with a tip no repository has; signed on every core.
fn sign_prs(repos: &[String], count: usize) -> Vec<Event> {
    let authors: Vec<Keys> = (0..count.div_ceil(PER_AUTHOR))
        .map(|_| Keys::generate())
        .collect();
    let created = Timestamp::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = count.div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..threads)
            .map(|t| {
                let authors = &authors;
                s.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(count))
                        .map(|i| {
                            let mix =
                                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
                            let tip =
                                format!("{:08x}{mix:032x}", 0xfeed_0000_u32 + (i % 65_536) as u32);
                            let repo = repos[i % repos.len()].clone();
                            events::pull_request(
                                &authors[i % authors.len()],
                                &[repo],
                                &tip,
                                &[],
                                created,
                            )
                        })
                        .collect::<Vec<Event>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("signing thread"))
            .collect()
    })
}

/// Restarts graspd (same data) and connects the main and `CONNECTIONS` clients, then
/// lets it settle: the same process state before and after filling purgatory.
pub(crate) async fn fresh_start(world: &mut World) -> Vec<RelayClient> {
    world.server.restart().await;
    world.relay = RelayClient::connect(&world.server.relay_url()).await;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(world.client().await);
    }
    tokio::time::sleep(SETTLE).await;
    clients
}

/// PRs waiting in purgatory, from `/metrics`.
async fn waiting(world: &World) -> usize {
    waiting_of(world, "pull_request").await
}

/// Events of `kind` (the metric's label: `announcement`, `state`, `pull_request`)
/// waiting in purgatory, from `/metrics`.
pub(crate) async fn waiting_of(world: &World, kind: &str) -> usize {
    let metrics = histogram::scrape(&world.server.base_url()).await;
    let prefix = format!("graspd_purgatory_entries{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The size of the file at `path`, zero when there is none.
pub(crate) fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
