//! Idle websockets (issue 14 item 4): graspd's resident memory per open websocket
//! that has no subscription and sends nothing, with 10,000 of them (1,000 quick), and
//! whether graspd holds them all.
//!
//! The connections are opened 64 at a time from the bench process to one graspd whose
//! caps and idle timeout are lifted for the run (`--max-connections-per-client`,
//! `--idle-websocket-timeout`); everything else is graspd's defaults. Resident memory
//! is read after a warm-up of 100 connections (so the runtime's thread stacks and
//! first allocations are in the baseline) and again once every connection is open and
//! has settled.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use grasp_tests::server::Graspd;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::report::{Row, rss_kib};
use crate::{Scale, graspd_options};

const WARM_UP: usize = 100;
const PARALLEL: usize = 64;
const SETTLE: Duration = Duration::from_secs(3);
const PER_CONNECTION_TARGET: f64 = 32.0;
const TOTAL_TARGET_MIB: f64 = 512.0;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str, count: usize) -> Vec<Socket> {
    // The bench side keeps small buffers too: its memory is not measured, but 10,000
    // of tungstenite's default 128 KiB would be over a gigabyte.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    stream::iter(0..count)
        .map(|_| async move {
            let (socket, _) =
                tokio_tungstenite::connect_async_with_config(url, Some(config), false)
                    .await
                    .expect("websocket connect");
            socket
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await
}

/// Opens the idle websockets and reports graspd's memory per connection.
pub async fn run(scale: Scale) -> Vec<Row> {
    let connections: usize = scale.pick(1_000, 10_000);
    let limit = (connections + WARM_UP + 100).to_string();
    let options = graspd_options()
        .flag("--max-connections", &limit)
        .flag("--max-connections-per-client", &limit)
        .flag("--idle-websocket-timeout", "1h");
    let server = Graspd::start_with(options).await;
    let pid = server.pid().expect("graspd runs");
    let url = server.relay_url();
    let warm = open(&url, WARM_UP).await;
    tokio::time::sleep(SETTLE).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let idle = open(&url, connections).await;
    let opened_in = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let after = rss_kib(pid);
    let held = open_count(pid);
    assert!(
        held > connections,
        "graspd holds {held} sockets, fewer than the {connections} opened"
    );
    let per = (after.saturating_sub(before)) as f64 / connections as f64;
    let total_mib = after as f64 / 1024.0;
    eprintln!(
        "idle: {connections} websockets opened in {opened_in:?}; RSS {before} → {after} KiB, \
         {per:.1} KiB each; {held} sockets open in graspd"
    );
    drop((warm, idle));
    vec![
        Row::new(
            "idle",
            format!("resident memory per idle websocket ({connections} open)"),
            format!("{per:.1} KiB"),
        )
        .target("≤ 32 KiB", per <= PER_CONNECTION_TARGET),
        Row::new(
            "idle",
            format!("graspd resident memory with {connections} idle websockets"),
            format!("{total_mib:.0} MiB"),
        )
        .target("< 512 MiB at 10,000", total_mib < TOTAL_TARGET_MIB),
        Row::new(
            "idle",
            "time to open them, 64 at a time",
            format!("{:.2} s", opened_in.as_secs_f64()),
        ),
    ]
}

/// Sockets graspd has open (from `/proc/<pid>/fd`).
pub(crate) fn open_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}
