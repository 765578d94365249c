//! The push and fetch halves of the clone benchmark (see [`crate::clone`]).
//!
//! The push reference is `git http-backend`: the same transport as graspd (smart HTTP,
//! stateless RPC, a chunked upload of the whole pack) and the same checks
//! (`receive.fsckObjects`), so the ratio is graspd's own cost: authorization, streaming,
//! the release of the state after the push. A push to a local path (receive-pack over a
//! pipe) is shown too, as the floor no HTTP server reaches.

use std::path::Path;
use std::time::Duration;

use crate::Scale;
use crate::clone::{Bench, CPU_ALL, GIT_CONFIG, HTTP_BACKEND, Sources, cost_rows};
use crate::http_backend::HttpBackend;
use crate::repo_gen::{self, Spec};
use crate::report::Row;
use crate::rounds::{CpuUse, Meter, Results, Side, Timings, order};

/// Pushes all of `src` (at `tip`) to a new repository on every side, `rounds` times:
/// graspd's `bench-<round>` (announced, then a state naming `tip`), the http-backend
/// server's `r<round>.git` (the server is returned: the fetch part pushes to its last
/// repository again), and a local bare repository.
pub async fn pushes(
    bench: &Bench,
    src: &Path,
    tip: &str,
    rounds: usize,
) -> (Vec<Row>, HttpBackend) {
    let root = bench.path("http-push");
    std::fs::create_dir_all(&root).expect("push root");
    let backend = HttpBackend::start(&root, bench.env.home(), &GIT_CONFIG).await;
    let mut results = Results::default();
    let mut rss = 0;
    for round in 0..rounds {
        for side in order(&[Side::Graspd, Side::Backend, Side::Local], round) {
            let (took, cpu) = match side {
                Side::Graspd => {
                    let d = format!("bench-{round}");
                    bench.world.announce(&bench.owner, &d, &[]).await;
                    let (took, cpu, grew) = bench.push_graspd(&d, src, tip, -600).await;
                    rss = rss.max(grew);
                    (took, cpu)
                }
                Side::Backend => {
                    bench.bare(&format!("http-push/r{round}.git")).await;
                    let url = backend.url(&format!("r{round}.git"));
                    bench.push_to(src, &url, side).await
                }
                Side::Local => {
                    let dir = bench.bare(&format!("local-push-{round}.git")).await;
                    let measured = bench.push_to(src, dir.to_str().expect("utf-8"), side).await;
                    std::fs::remove_dir_all(&dir).expect("remove local push repo");
                    measured
                }
            };
            eprintln!(
                "clone: push round {round} {side:?}: {took:.2?}, CPU {:.2?} (server {:.2?})",
                cpu.total, cpu.server
            );
            results.add(side, took, cpu);
        }
    }
    let mb = repo_gen::pack_bytes(src) as f64 / 1e6;
    let what = format!("push of the whole repository ({mb:.0} MB) to a new repo");
    let wall = &results.wall;
    let rows = vec![
        wall.row(&what, "median time", Timings::secs, HTTP_BACKEND),
        wall.row(
            &what,
            "median time",
            Timings::secs,
            (Side::Local, "local path", "git push <path>"),
        ),
    ]
    .into_iter()
    .chain(cost_rows(&what, &format!("{mb:.0} MB push"), &results, rss))
    .collect();
    (rows, backend)
}

/// New commits on top of `tip`, pushed to graspd's `bench-0` (after a state naming
/// them) and to the http-backend repository `backend_repo`, then fetched on every side
/// by clients that have everything up to `tip` (borrowed from `src` through alternates,
/// so they cost nothing to make).
pub async fn fetches(
    bench: &Bench,
    scale: Scale,
    src: &Path,
    tip: &str,
    sources: &Sources,
    backend_repo: &str,
) -> Vec<Row> {
    let new_commits = scale.pick(50, 100);
    let next = bench.path("next.git");
    let path = next.to_str().expect("utf-8");
    bench
        .env
        .run(bench.work.path(), &["init", "-q", "--bare", path])
        .await;
    write_alternates(&next, src);
    let spec = Spec {
        commits: new_commits,
        blob_bytes: (2 << 10, 14 << 10),
        seed: 0x6e65_7874,
        epoch: 1_800_000_000,
    };
    let new_tip = repo_gen::generate(&bench.env, &next, spec, Some(tip.to_owned())).await;
    let (graspd_push, _, _) = bench.push_graspd("bench-0", &next, &new_tip, -60).await;
    let (backend_push, _) = bench.push_to(&next, backend_repo, Side::Backend).await;
    eprintln!(
        "clone: push of {new_commits} commits: graspd {graspd_push:.2?}, http-backend {backend_push:.2?}"
    );

    let mut results = Results::default();
    for round in 0..scale.pick(5, 10) {
        for side in order(&[Side::Graspd, Side::Local, Side::Backend], round) {
            let (took, cpu) = fetch(bench, src, tip, sources.of(side), side, &new_tip).await;
            results.add(side, took, cpu);
        }
    }
    let what = format!("git fetch of {new_commits} new commits");
    let (wall, cpu) = (&results.wall, &results.cpu);
    let one = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    vec![
        Row::new(
            "clone",
            format!(
                "push of {new_commits} new commits (one sample each; ratio: graspd/http-backend)"
            ),
            one(graspd_push),
        )
        .against(
            format!("{} git http-backend", one(backend_push)),
            graspd_push.as_secs_f64() / backend_push.as_secs_f64(),
        ),
        wall.row(
            &what,
            "median time",
            Timings::ms,
            (Side::Local, "local", "git fetch <path>"),
        ),
        wall.row(&what, "median time", Timings::ms, HTTP_BACKEND),
        cpu.row(&what, CPU_ALL, Timings::ms, HTTP_BACKEND),
    ]
}

fn write_alternates(repo: &Path, base: &Path) {
    let objects = base.join("objects");
    std::fs::write(
        repo.join("objects/info/alternates"),
        format!("{}\n", objects.display()),
    )
    .expect("write alternates");
}

/// A client that has everything up to `old` (through alternates on `base`) fetches
/// main from `source`; checked to end at `tip`: time and CPU of the fetch alone.
async fn fetch(
    bench: &Bench,
    base: &Path,
    old: &str,
    source: &str,
    side: Side,
    tip: &str,
) -> (Duration, CpuUse) {
    let dir = tempfile::tempdir_in(bench.work.path()).expect("fetch dir");
    let client = dir.path().join("client.git");
    let path = client.to_str().expect("utf-8");
    bench
        .env
        .run(dir.path(), &["init", "-q", "--bare", path])
        .await;
    write_alternates(&client, base);
    let remote_ref = "refs/remotes/origin/main";
    bench
        .env
        .run(&client, &["update-ref", remote_ref, old])
        .await;
    let refspec = format!("+refs/heads/main:{remote_ref}");
    let meter = Meter::start(bench.pid);
    let (_, took) = bench
        .env
        .run(&client, &["fetch", "-q", source, &refspec])
        .await;
    let cpu = meter.stop(side).await;
    assert_eq!(
        bench.env.rev(&client, remote_ref).await,
        tip,
        "fetch from {source}"
    );
    (took, cpu)
}
