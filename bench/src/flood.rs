//! Connection floods (issue 14 item 4), against graspd's default limits: 2,000
//! slowloris connections (headers never finished) and 1,100 idle TCP sockets from one
//! address. Measured: how many graspd holds, whether a client from another address is
//! still served meanwhile (websocket connect → REQ → EOSE), and how long until graspd
//! has closed the flood's sockets (the header timeout). Then item 6: 100 pushes from
//! 100 addresses that stop after their command list and the pack's header — how many
//! `git receive-pack` run, and how long until they are gone (the body stall timeout).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::hostile::{PACK_HEADER, create_command, gits_in, receive_pack_head};
use grasp_tests::nostr_sdk::prelude::Keys;
use grasp_tests::server::Graspd;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::idle::open_count;
use crate::report::Row;
use crate::{Scale, graspd_options};

async fn connect(source: &str, server: &Graspd) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(source.parse().ok()?, 0)).ok()?;
    let target: SocketAddr = server.authority().parse().ok()?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(target))
        .await
        .ok()?
        .ok()
}

/// A websocket from 127.0.0.2: connect, REQ, EOSE. The time it took, or `None`.
async fn other_client(server: &Graspd) -> Option<Duration> {
    let started = Instant::now();
    let stream = connect("127.0.0.2", server).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(server.relay_url(), stream)
        .await
        .ok()?;
    ws.send(Message::text(r#"["REQ","x",{"limit":1}]"#))
        .await
        .ok()?;
    let eose = async {
        while let Some(Ok(message)) = ws.next().await {
            if message.to_text().is_ok_and(|t| t.starts_with(r#"["EOSE""#)) {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(10), eose)
        .await
        .ok()?
        .then(|| started.elapsed())
}

/// Opens `count` connections from 127.0.0.1, each sending `first` (possibly nothing).
async fn flood(server: &Graspd, count: usize, first: &[u8]) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        if let Some(mut stream) = connect("127.0.0.1", server).await {
            let _ = stream.write_all(first).await;
            held.push(stream);
        }
    }
    held
}

/// Waits until graspd's socket count is back to `baseline` (or 60 s); how long.
async fn drained(pid: u32, baseline: usize, since: Instant) -> Duration {
    while open_count(pid) > baseline && since.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    since.elapsed()
}

/// Both floods against graspd's defaults.
pub async fn run(scale: Scale) -> Vec<Row> {
    let slowloris: usize = scale.pick(500, 2_000);
    let idle: usize = scale.pick(300, 1_100);
    let world = World::start_with(graspd_options()).await;
    let server = &world.server;
    let pid = server.pid().expect("graspd runs");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = open_count(pid);
    let mut rows = Vec::new();
    for (what, count, first) in [
        (
            "slowloris (partial headers)",
            slowloris,
            &b"GET / HTTP/1.1\r\nHost: x\r\n"[..],
        ),
        ("idle TCP sockets", idle, &b""[..]),
    ] {
        let started = Instant::now();
        let sockets = flood(server, count, first).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held = open_count(pid).saturating_sub(baseline);
        let other = other_client(server).await;
        let closed_after = drained(pid, baseline, started).await;
        eprintln!(
            "flood: {what}: {count} opened, graspd held {held}, other client {other:?}, \
             closed after {closed_after:?}"
        );
        rows.push(
            Row::new(
                "flood",
                format!("{what} from one address: {count} opened, held by graspd"),
                held.to_string(),
            )
            .target("≤ 64 (per-client cap)", held <= 64),
        );
        rows.push(
            Row::new(
                "flood",
                format!("{what}: another client's websocket connect → EOSE meanwhile"),
                other.map_or("failed".to_owned(), |d| {
                    format!("{:.1} ms", d.as_secs_f64() * 1e3)
                }),
            )
            .target("served", other.is_some()),
        );
        rows.push(Row::new(
            "flood",
            format!("{what}: until graspd closed them all"),
            format!("{:.1} s", closed_after.as_secs_f64()),
        ));
        drop(sockets);
    }
    rows.extend(stalled_pushes(&world, scale.pick(40, 100)).await);
    rows
}

/// `count` pushes from as many addresses, each stopping after the pack's header.
async fn stalled_pushes(world: &World, count: usize) -> Vec<Row> {
    let owner = Keys::generate();
    let pk = owner.public_key();
    world.announce(&owner, "flood", &[]).await;
    let work = Work::init().await;
    let c1 = work.commit("one").await;
    let state = events::main_state(&owner, "flood", &c1, events::now());
    world.publish_purgatory(&state, "state").await;
    let repo = world.server.repo_dir(&pk, "flood");
    let head = receive_pack_head(&world.server, &pk, "flood", 1 << 20);
    let mut body = create_command(&c1, "refs/heads/main");
    body.extend_from_slice(PACK_HEADER);
    let started = Instant::now();
    let mut sockets = Vec::new();
    for i in 0..count {
        let source = format!("127.0.{}.{}", 1 + i / 250, 2 + i % 250);
        if let Some(mut stream) = connect(&source, &world.server).await {
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            sockets.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gits = gits_in(&repo);
    let running = gits
        .iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("receive-pack"))
        })
        .count();
    let git_rss: u64 = gits.iter().map(|&pid| crate::report::rss_kib(pid)).sum();
    while !gits_in(&repo).is_empty() && started.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone_after = started.elapsed();
    let refs = world.refs(&pk, "flood").await;
    let moved = refs.keys().any(|name| name.starts_with("refs/heads/"));
    eprintln!(
        "flood: {count} stalled pushes: {running} receive-packs ({} git processes, \
         {git_rss} KiB), gone after {gone_after:?}, refs moved: {moved}",
        gits.len()
    );
    drop(sockets);
    vec![
        Row::new(
            "flood",
            format!("{count} stalled pushes from {count} addresses: `git receive-pack` running"),
            format!(
                "{running} ({} git processes with their helpers, {:.0} MiB)",
                gits.len(),
                git_rss as f64 / 1024.0
            ),
        )
        .target("≤ 32 (--max-pushes)", running <= 32),
        Row::new(
            "flood",
            "stalled pushes: until every git is gone (and no ref moved)",
            format!("{:.1} s", gone_after.as_secs_f64()),
        )
        .target("no ref moved", !moved),
    ]
}
