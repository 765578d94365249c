//! `git push` exit time of a small push, graspd beside `git http-backend`.
//!
//! What a user waits for after typing `git push`: one new commit on `main`, measured
//! from the command's start to its exit, round after round on both servers in
//! alternating order. On graspd a state naming the commit waits in purgatory first, so
//! every push also releases it (stores and publishes the state, aligns the repository)
//! — the work BEHAVIOR §4 requires before the push returns. The reference is the same
//! push to a plain bare repository behind `git http-backend` (the in-process CGI server
//! of [`crate::http_backend`]), which does nothing after git; the target is graspd's
//! median within 5 ms of it.

use std::time::{Duration, Instant};

use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::nostr_sdk::prelude::Keys;

use crate::clone::GIT_CONFIG;
use crate::http_backend::HttpBackend;
use crate::report::{Row, median};
use crate::rounds::{Side, order};
use crate::{Scale, graspd_options};

const WARM_UP: usize = 3;
/// The pause after each push, for the background work it started.
const SETTLE: Duration = Duration::from_millis(150);
/// The allowance over http-backend's median the target grants.
const SLACK_MS: f64 = 5.0;

/// Runs the rounds and reports medians, p90s and the per-round ratio.
pub async fn run(scale: Scale) -> Vec<Row> {
    let rounds = scale.pick(20, 100);
    let world = World::start_with(graspd_options()).await;
    let owner = Keys::generate();
    let hosted = world.hosted(&owner, "push-exit", &[]).await;
    let work = &hosted.work;

    let root = tempfile::tempdir().expect("http-backend root");
    let bare = root.path().join("r.git");
    work.env()
        .run(
            None,
            &["init", "-q", "--bare", bare.to_str().expect("utf-8")],
        )
        .await
        .expect_ok("git init --bare");
    let backend = HttpBackend::start(root.path(), work.env().home(), &GIT_CONFIG).await;
    let backend_url = backend.url("r.git");
    work.push(&backend_url, &["main"])
        .await
        .expect_ok("first push to http-backend");

    let (mut graspd, mut reference) = (Vec::new(), Vec::new());
    for i in 0..WARM_UP + rounds {
        let commit = work.commit(&format!("push exit {i}")).await;
        // After the hosted state (60 s ago), one second apart.
        let state = events::main_state(&owner, &hosted.d, &commit, events::at(-59 + i as i64));
        world
            .publish_purgatory(&state, "state waiting for its commit")
            .await;
        for side in order(&[Side::Graspd, Side::Backend], i) {
            let url = match side {
                Side::Graspd => &hosted.url,
                _ => &backend_url,
            };
            let started = Instant::now();
            work.push(url, &["main"])
                .await
                .expect_ok("small push of main");
            let took = started.elapsed();
            // graspd runs git's automatic maintenance after the response, in the
            // background: let it finish, so it never runs during the reference's push.
            tokio::time::sleep(SETTLE).await;
            if i >= WARM_UP {
                match side {
                    Side::Graspd => graspd.push(took),
                    _ => reference.push(took),
                }
            }
        }
        world
            .wait_served(&[state.id], "state released by the push")
            .await;
    }
    rows(&graspd, &reference)
}

fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn p90(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)]
}

fn rows(graspd: &[Duration], reference: &[Duration]) -> Vec<Row> {
    let g: Vec<f64> = graspd.iter().map(ms).collect();
    let r: Vec<f64> = reference.iter().map(ms).collect();
    let ratios: Vec<f64> = g.iter().zip(&r).map(|(g, r)| g / r.max(1e-3)).collect();
    let (gm, rm) = (median(&g), median(&r));
    let n = g.len();
    vec![
        Row::new(
            "push",
            format!(
                "`git push` of one commit, start → exit, median / p90 (n = {n}; graspd releases a waiting state; ratio: per-round median, graspd/http-backend)"
            ),
            format!("{gm:.1} / {:.1} ms", p90(&g)),
        )
        .against(
            format!("{rm:.1} / {:.1} ms git http-backend", p90(&r)),
            median(&ratios),
        )
        .target(
            &format!("≤ http-backend + {SLACK_MS:.0} ms"),
            gm <= rm + SLACK_MS,
        ),
    ]
}
