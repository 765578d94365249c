//! Many keys announcing one identifier (issue 14 item 3): 1,000 distinct keys each
//! announce the same `d`, listing this server (so each gets a bare repository), one
//! after another over one connection, while a maintainer's state of that `d` waits for
//! git data. Meanwhile an unrelated user publishes issues on their own repository over
//! another connection. Measured: the EVENT→OK latency of each announcement by how many
//! repositories of the `d` exist already (what one more stranger costs), and the
//! unrelated user's EVENT→OK p50 / p99 during the flood and, for reference, before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::nostr_sdk::prelude::Keys;
use grasp_tests::relay::RelayClient;

use crate::report::{Row, ms, quantile};
use crate::{Scale, graspd_options};

/// The shared identifier.
const D: &str = "samed";

/// The flood stops here even if not every announcement was sent: before the fix one
/// announcement at 600 repositories took seconds, and the whole flood would take an hour.
const DEADLINE: Duration = Duration::from_secs(240);

/// Runs the flood.
pub async fn run(scale: Scale) -> Vec<Row> {
    let strangers: usize = scale.pick(200, 1_000);
    let world = World::start_with(graspd_options()).await;
    // The identifier's maintainer: announced, with a state whose objects are nowhere
    // (two waiting oids), as in the issue.
    let maintainer = Keys::generate();
    world.announce(&maintainer, D, &[]).await;
    let missing = ["1".repeat(40), "2".repeat(40)];
    let state = events::state(
        &maintainer,
        D,
        &[
            ("refs/heads/main", missing[0].as_str()),
            ("refs/heads/dev", missing[1].as_str()),
        ],
        Some("ref: refs/heads/main"),
        events::at(-60),
    );
    world.publish_purgatory(&state, "maintainer's state").await;
    // The unrelated user, with a repository of their own.
    let user = Keys::generate();
    let hosted = world.hosted(&user, "unrelated", &[]).await;
    let repo = hosted.coordinate();
    let user_client = world.client().await;
    let quiet = unrelated(&user_client, &user, &repo, None, 200).await;

    let keys: Vec<Keys> = (0..strangers).map(|_| Keys::generate()).collect();
    let announcements: Vec<_> = keys.iter().map(|k| world.announcement(k, D, &[])).collect();
    let flooding = Arc::new(AtomicBool::new(true));
    let during = {
        let flag = Arc::clone(&flooding);
        let user = user.clone();
        let repo = repo.clone();
        tokio::spawn(
            async move { unrelated(&user_client, &user, &repo, Some(&flag), usize::MAX).await },
        )
    };
    let flood_client = world.client().await;
    let started = Instant::now();
    let mut cost = Vec::with_capacity(strangers);
    let mut refused = Vec::new();
    let mut refusals = 0;
    for a in &announcements {
        if started.elapsed() > DEADLINE {
            break;
        }
        let sent = Instant::now();
        let ok = flood_client.publish(a).await;
        cost.push(sent.elapsed());
        if !ok.accepted {
            refusals += 1;
            if refused.len() < 3 {
                refused.push(ok.message);
            }
        }
    }
    let flood_wall = started.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let during = during.await.expect("unrelated client task");
    eprintln!(
        "samed: {} of {strangers} announcements in {flood_wall:?}; refused: {refused:?}",
        cost.len()
    );
    let band = |from: usize| {
        let to = (from + 100).min(cost.len());
        (from < to).then(|| quantile(&cost[from..to], 0.5))
    };
    let mut rows = vec![Row::new(
        "samed",
        format!(
            "announcements of one `d` by {strangers} keys over one connection: sent in {DEADLINE:?}"
        ),
        format!(
            "{} in {:.1} s ({refusals} refused)",
            cost.len(),
            flood_wall.as_secs_f64(),
        ),
    )];
    for from in [0, strangers / 2, strangers.saturating_sub(100)] {
        if let Some(p50) = band(from) {
            rows.push(Row::new(
                "samed",
                format!(
                    "one more announcement of the `d` with {from}–{} repositories there: EVENT→OK p50",
                    from + 100
                ),
                ms(p50),
            ));
        }
    }
    rows.push(Row::new(
        "samed",
        "unrelated user's issue EVENT→OK before the flood: p50 / p99",
        format!(
            "{} / {}",
            ms(quantile(&quiet, 0.5)),
            ms(quantile(&quiet, 0.99))
        ),
    ));
    let p99 = quantile(&during, 0.99);
    rows.push(
        Row::new(
            "samed",
            format!(
                "unrelated user's issue EVENT→OK during the flood ({} issues): p50 / p99",
                during.len()
            ),
            format!("{} / {}", ms(quantile(&during, 0.5)), ms(p99)),
        )
        .target("p99 ≤ 50 ms", p99 <= Duration::from_millis(50)),
    );
    rows
}

/// Publishes issues on `repo` one at a time, 10 ms apart, until `count` or until `flag`
/// (if given) turns false; the EVENT→OK latency of each.
async fn unrelated(
    client: &RelayClient,
    user: &Keys,
    repo: &str,
    flag: Option<&AtomicBool>,
    count: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut n = 0;
    while n < count && flag.is_none_or(|f| f.load(Ordering::Relaxed)) {
        let issue = events::issue(user, repo, &format!("issue {n}"));
        let sent = Instant::now();
        let ok = client.publish(&issue).await;
        latencies.push(sent.elapsed());
        assert!(
            ok.accepted,
            "the unrelated user's issue was refused: {ok:?}"
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies
}
