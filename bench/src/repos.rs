//! Memory per waiting repository (issue 14 item 7): 10,000 fresh keys (2,000 quick) each
//! announce a repository listing this server (so each gets a bare repository) and
//! publish a state naming a commit nobody has, so the announcement and the state both
//! wait in purgatory. Measured: graspd's resident memory grown per waiting repository —
//! all of it (`VmRSS`) and anonymous memory only (`RssAnon`) — live right after ingest
//! and after a restart that hydrates the same from the journal; the disk each one takes
//! (its bare repository, and the journal's growth); open file descriptors.
//!
//! Unlike `memory`, the event JSON is not subtracted: the figure is what one more
//! waiting repository costs the server, everything included. graspd's defaults hold
//! every repository here: `--max-waiting-repos` is 10,000 (the full run fills it
//! exactly) and each key hosts one repository and has one state waiting.

use std::path::Path;
use std::time::Instant;

use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::nostr_sdk::prelude::{Event, JsonUtil, Keys};
use grasp_tests::slow_reader::rss_anon_kib;

use crate::memory::{SETTLE, fresh_start, waiting_of};
use crate::report::{Row, rss_kib};
use crate::{Scale, graspd_options, load};

/// What the issue measured of the peer server, per waiting repository.
const TARGET: &str = "≤ 10.2 KiB (the peer server's)";
const TARGET_BYTES: f64 = 10.2 * 1024.0;

/// Fills purgatory with waiting repositories and reports memory and disk per one.
pub async fn run(scale: Scale) -> Vec<Row> {
    let count: usize = scale.pick(2_000, 10_000);
    let mut world = World::start_with(graspd_options()).await;
    let signing = Instant::now();
    let keys: Vec<Keys> = (0..count).map(|_| Keys::generate()).collect();
    let announcements: Vec<Event> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| world.announcement(k, &identifier(i), &[]))
        .collect();
    let states: Vec<Event> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| events::main_state(k, &identifier(i), &missing(i), events::at(-60)))
        .collect();
    let json: usize = announcements
        .iter()
        .chain(&states)
        .map(|e| e.as_json().len())
        .sum();
    eprintln!(
        "repos: {count} announcements and states signed in {:.1} s",
        signing.elapsed().as_secs_f64()
    );

    let clients = fresh_start(&mut world).await;
    let pid = world.server.pid().expect("graspd runs");
    let data = world.server.data_dir().to_path_buf();
    let before = Sample::take(pid, &data);

    let started = Instant::now();
    world
        .publish_purgatory(&announcements[0], "first announcement")
        .await;
    world.publish_purgatory(&states[0], "first state").await;
    for (batch, what) in [
        (&announcements[1..], "announcement"),
        (&states[1..], "state"),
    ] {
        let outcome = load::publish(&clients, batch).await;
        assert_eq!(
            outcome.accepted,
            count - 1,
            "every {what} accepted into purgatory; refusals: {:?}",
            outcome.refusals
        );
    }
    let wall = started.elapsed();
    assert_eq!(waiting_of(&world, "announcement").await, count);
    assert_eq!(waiting_of(&world, "state").await, count);
    tokio::time::sleep(SETTLE).await;
    let live = Sample::take(pid, &data);
    eprintln!("repos: before {before:?}\nrepos: live {live:?}\nrepos: ingest {wall:?}");

    drop(clients);
    let _clients = fresh_start(&mut world).await;
    let pid = world.server.pid().expect("graspd runs");
    assert_eq!(
        waiting_of(&world, "announcement").await,
        count,
        "announcements waiting after restart"
    );
    assert_eq!(waiting_of(&world, "state").await, count);
    let restarted = Sample::take(pid, &data);
    eprintln!("repos: restarted {restarted:?}");

    let per = |after: u64, base: u64| (after as f64 - base as f64) * 1024.0 / count as f64;
    let kib = |bytes: f64| format!("{:.1} KiB", bytes / 1024.0);
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let (rss_live, rss_restarted) = (per(live.rss, before.rss), per(restarted.rss, before.rss));
    let (anon_live, anon_restarted) = (
        per(live.anon, before.anon),
        per(restarted.anon, before.anon),
    );
    let bytes_per = |after: u64, base: u64| after.saturating_sub(base) as f64 / count as f64;
    vec![
        Row::new(
            "repos",
            format!(
                "RSS growth per waiting repository (announcement + state + bare repository), live after ingest ({count})"
            ),
            kib(rss_live),
        )
        .target(TARGET, rss_live <= TARGET_BYTES),
        Row::new(
            "repos",
            "same, after a restart hydrated them from the journal",
            kib(rss_restarted),
        )
        .target(TARGET, rss_restarted <= TARGET_BYTES),
        Row::new(
            "repos",
            "anonymous memory (RssAnon) growth per waiting repository: live / after restart",
            format!("{} / {}", kib(anon_live), kib(anon_restarted)),
        ),
        Row::new(
            "repos",
            "RSS baseline → live → after restart (anonymous); JSON of the two events (mean per repository)",
            format!(
                "{} → {} → {} ({} → {} → {}); JSON {:.0} B",
                mib(before.rss),
                mib(live.rss),
                mib(restarted.rss),
                mib(before.anon),
                mib(live.anon),
                mib(restarted.anon),
                json as f64 / count as f64
            ),
        ),
        Row::new(
            "repos",
            "disk per waiting repository: bare repository (files, allocated) + journal growth",
            format!(
                "{:.0} B in {:.1} files ({} allocated) + {:.0} B journal",
                bytes_per(live.repo_bytes, before.repo_bytes),
                bytes_per(live.repo_files, before.repo_files),
                kib(bytes_per(live.repo_blocks, before.repo_blocks)),
                bytes_per(live.journal, before.journal)
            ),
        ),
        Row::new(
            "repos",
            "open file descriptors: baseline → live → after restart",
            format!("{} → {} → {}", before.fds, live.fds, restarted.fds),
        ),
        Row::new(
            "repos",
            format!(
                "ingest of {count} announcements then {count} states over 4 connections"
            ),
            format!(
                "{:.0} events/s ({:.1} s)",
                2.0 * count as f64 / wall.as_secs_f64(),
                wall.as_secs_f64()
            ),
        ),
    ]
}

/// The `i`th repository's identifier.
fn identifier(i: usize) -> String {
    format!("waiting-repo-{i}")
}

/// A commit id no one has, different per repository.
fn missing(i: usize) -> String {
    let mix = (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    format!("{:08x}{mix:032x}", 0xdead_0000_u32 + (i % 65_536) as u32)
}

/// What the process and its data directory hold at one moment.
#[derive(Debug)]
struct Sample {
    /// `VmRSS`, KiB.
    rss: u64,
    /// `RssAnon`, KiB.
    anon: u64,
    /// Open file descriptors.
    fds: usize,
    /// Bytes of every file under `repos/`.
    repo_bytes: u64,
    /// Bytes allocated to them (`st_blocks`), directories included.
    repo_blocks: u64,
    /// Files and directories under `repos/`.
    repo_files: u64,
    /// The purgatory journal's size.
    journal: u64,
}

impl Sample {
    fn take(pid: u32, data: &Path) -> Self {
        let mut s = Sample {
            rss: rss_kib(pid),
            anon: rss_anon_kib(pid),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count),
            repo_bytes: 0,
            repo_blocks: 0,
            repo_files: 0,
            journal: crate::memory::file_len(&data.join("journal.redb")),
        };
        s.walk(&data.join("repos"));
        s
    }

    fn walk(&mut self, dir: &Path) {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            self.repo_files += 1;
            self.repo_blocks += meta.blocks() * 512;
            if meta.is_dir() {
                self.walk(&entry.path());
            } else {
                self.repo_bytes += meta.len();
            }
        }
    }
}
