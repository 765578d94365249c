//! Push, clone and fetch of a large generated repository (see [`crate::repo_gen`]):
//! graspd beside `git http-backend` (see [`crate::http_backend`]) and beside git's own
//! local transport, in rounds whose order alternates so that drift on a shared machine
//! hits every side alike (see [`crate::rounds`]). Ratios are graspd / reference, taken
//! round by round.
//!
//! Clones and fetches on every side read graspd's own bare repository on disk (the one
//! the first push made): the same pack and the same page cache, so only the server in
//! front differs. Pushes (see [`crate::push_fetch`]) go to fresh repositories.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use grasp_tests::events;
use grasp_tests::fixture::World;
use grasp_tests::nostr_sdk::prelude::Keys;
use grasp_tests::server::npub;
use tempfile::TempDir;

use crate::http_backend::HttpBackend;
use crate::push_fetch;
use crate::repo_gen::{self, GitEnv, Spec};
use crate::report::{Row, RssSampler, rss_kib};
use crate::rounds::{CpuUse, Meter, Results, Side, Timings, order};
use crate::{Scale, graspd_options};

/// The git settings graspd runs upload-pack and receive-pack with; the references get
/// them too (plus `http.receivepack` to allow anonymous pushes), so git does the same
/// work on every side.
pub const GIT_CONFIG: [(&str, &str); 5] = [
    ("uploadpack.allowTipSHA1InWant", "true"),
    ("uploadpack.allowReachableSHA1InWant", "true"),
    ("uploadpack.allowFilter", "true"),
    ("receive.fsckObjects", "true"),
    ("http.receivepack", "true"),
];

/// The http-backend reference of a row: (side, name in the ratio, name in the table).
pub const HTTP_BACKEND: (Side, &str, &str) = (Side::Backend, "http-backend", "git http-backend");
const LOCAL_CLONE: (Side, &str, &str) = (Side::Local, "local", "git clone --no-local");
/// The measure of CPU rows.
pub const CPU_ALL: &str = "CPU of all processes, client and server";

/// Resident memory graspd may gain while a pack streams through it, in MiB.
pub const RSS_TARGET_MIB: f64 = 16.0;

/// KiB → MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Everything the rounds share: git, a work dir, graspd and the repository owner.
pub struct Bench {
    /// The isolated git environment.
    pub env: GitEnv,
    /// Scratch space (generated repositories, clones, reference repositories).
    pub work: TempDir,
    /// graspd and a relay connection to it.
    pub world: World,
    /// Owner of every repository announced.
    pub owner: Keys,
    /// graspd's process id.
    pub pid: u32,
}

impl Bench {
    /// `<work dir>/<name>`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// A fresh bare repository `name` under the work dir, checking pushes like graspd.
    pub async fn bare(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        let path = dir.to_str().expect("utf-8 path");
        self.env
            .run(self.work.path(), &["init", "-q", "--bare", path])
            .await;
        self.env
            .run(&dir, &["config", "receive.fsckObjects", "true"])
            .await;
        dir
    }

    /// Publishes a state of `d` naming `tip` (created `at` seconds from now), then
    /// pushes `src`'s main to graspd: time, CPU, graspd's peak RSS growth (KiB).
    pub async fn push_graspd(
        &self,
        d: &str,
        src: &Path,
        tip: &str,
        at: i64,
    ) -> (Duration, CpuUse, u64) {
        let state = events::main_state(&self.owner, d, tip, events::at(at));
        let ok = self.world.publish(&state).await;
        assert!(ok.accepted, "state of {d} refused: {ok}");
        let url = self.world.repo_url(&self.owner.public_key(), d);
        let before = rss_kib(self.pid);
        let sampler = RssSampler::start(self.pid);
        let (took, cpu) = self.push_to(src, &url, Side::Graspd).await;
        let grew = sampler.stop().saturating_sub(before);
        let dir = self.world.server.repo_dir(&self.owner.public_key(), d);
        let now = self.env.rev(&dir, "refs/heads/main").await;
        assert_eq!(now, tip, "graspd has the pushed tip");
        (took, cpu, grew)
    }

    /// `git push <target> main` from `src`: time and CPU.
    pub async fn push_to(&self, src: &Path, target: &str, side: Side) -> (Duration, CpuUse) {
        let meter = Meter::start(self.pid);
        let refspec = "refs/heads/main:refs/heads/main";
        let (_, took) = self.env.run(src, &["push", "-q", target, refspec]).await;
        (took, meter.stop(side).await)
    }

    /// `git clone <args> <source>` into a fresh directory, checked to end at `tip`:
    /// time and CPU (the clone is deleted afterwards).
    async fn clone(&self, source: &str, side: Side, tip: &str) -> (Duration, CpuUse) {
        let dir = tempfile::tempdir_in(self.work.path()).expect("clone dir");
        let target = dir.path().join("clone");
        let mut argv = vec!["clone", "-q"];
        if side == Side::Local {
            argv.push("--no-local");
        }
        argv.extend([source, target.to_str().expect("utf-8 path")]);
        let meter = Meter::start(self.pid);
        let (_, took) = self.env.run(dir.path(), &argv).await;
        let cpu = meter.stop(side).await;
        assert_eq!(
            self.env.rev(&target, "HEAD").await,
            tip,
            "clone of {source}"
        );
        (took, cpu)
    }
}

/// Where each side clones and fetches from: one repository on disk, three servers.
pub struct Sources {
    graspd: String,
    local: String,
    backend: String,
}

impl Sources {
    /// The URL (or path) `side` reads from.
    pub fn of(&self, side: Side) -> &str {
        match side {
            Side::Graspd => &self.graspd,
            Side::Local => &self.local,
            Side::Backend => &self.backend,
        }
    }
}

/// Runs the push, clone and fetch comparisons.
pub async fn run(scale: Scale) -> Vec<Row> {
    let env = GitEnv::new();
    let work = tempfile::Builder::new()
        .prefix("graspd-bench-clone-")
        .tempdir()
        .expect("work dir");
    let spec = Spec {
        commits: scale.pick(1_000, 10_000),
        blob_bytes: scale.pick((2 << 10, 10 << 10), (2 << 10, 14 << 10)),
        seed: 0x6772_6173_7064,
        epoch: 1_700_000_000,
    };
    let src = work.path().join("src.git");
    let started = Instant::now();
    let tip = repo_gen::generate(&env, &src, spec, None).await;
    let generated = started.elapsed();
    let src_mb = repo_gen::pack_bytes(&src) as f64 / 1e6;
    eprintln!(
        "clone: generated {} commits, {src_mb:.1} MB packed, in {generated:.1?}",
        spec.commits
    );
    let world = World::start_with(graspd_options()).await;
    let pid = world.server.pid().expect("graspd runs");
    let bench = Bench {
        env,
        work,
        world,
        owner: Keys::generate(),
        pid,
    };
    let mut rows = vec![Row::new(
        "clone",
        "generated repository (git fast-import, seeded, incompressible blobs)",
        format!(
            "{} commits, {src_mb:.1} MB packed, made in {:.1} s",
            spec.commits,
            generated.as_secs_f64()
        ),
    )];
    let push_rounds = scale.pick(2, 3);
    let (push_rows, push_backend) = push_fetch::pushes(&bench, &src, &tip, push_rounds).await;
    rows.extend(push_rows);

    let d = "bench-0";
    let pk = bench.owner.public_key();
    let repo_dir = bench.world.server.repo_dir(&pk, d);
    let repos_root = bench.world.server.data_dir().join("repos");
    let backend = HttpBackend::start(&repos_root, bench.env.home(), &GIT_CONFIG).await;
    let sources = Sources {
        graspd: bench.world.repo_url(&pk, d),
        local: repo_dir.to_str().expect("utf-8").to_owned(),
        backend: backend.url(&format!("{}/{d}.git", npub(&pk))),
    };
    let served_mb = repo_gen::pack_bytes(&repo_dir) as f64 / 1e6;
    rows.extend(clones(&bench, scale, &sources, &tip, spec.commits, served_mb).await);
    let last_push_repo = push_backend.url(&format!("r{}.git", push_rounds - 1));
    rows.extend(push_fetch::fetches(&bench, scale, &src, &tip, &sources, &last_push_repo).await);
    rows
}

/// Full clones from every side, round after round.
async fn clones(
    bench: &Bench,
    scale: Scale,
    sources: &Sources,
    tip: &str,
    commits: usize,
    mb: f64,
) -> Vec<Row> {
    let rounds = scale.pick(3, 7);
    let mut results = Results::default();
    let mut rss = 0;
    // Round 0 warms the page cache and checks every side; it is not counted.
    for round in 0..=rounds {
        for side in order(&[Side::Graspd, Side::Local, Side::Backend], round) {
            let before = rss_kib(bench.pid);
            let sampler = (side == Side::Graspd).then(|| RssSampler::start(bench.pid));
            let (took, cpu) = bench.clone(sources.of(side), side, tip).await;
            if let Some(sampler) = sampler {
                rss = rss.max(sampler.stop().saturating_sub(before));
            }
            eprintln!(
                "clone: clone round {round} {side:?}: {took:.2?}, CPU {:.2?} (server {:.2?})",
                cpu.total, cpu.server
            );
            if round > 0 {
                results.add(side, took, cpu);
            }
        }
    }
    let what = format!("git clone of {commits} commits ({mb:.0} MB pack)");
    let (wall, cpu) = (&results.wall, &results.cpu);
    let local = wall.ratio(Side::Local);
    let http = wall.ratio(Side::Backend);
    vec![
        wall.row(&what, "median time", Timings::secs, LOCAL_CLONE)
            .target("≤ 1.05× local --no-local", local <= 1.05),
        wall.row(&what, "median time", Timings::secs, HTTP_BACKEND)
            .target("no slower than git http-backend (≤ 1.00×)", http <= 1.0),
        cpu.row(&what, CPU_ALL, Timings::secs, LOCAL_CLONE),
    ]
    .into_iter()
    .chain(cost_rows(
        &what,
        &format!("{mb:.0} MB clone"),
        &results,
        rss,
    ))
    .collect()
}

/// The rows every large transfer reports: CPU of every process against http-backend,
/// graspd's own CPU against the CGI server's, and graspd's peak RSS growth during `op`.
pub fn cost_rows(what: &str, op: &str, results: &Results, rss_kib: u64) -> Vec<Row> {
    let cpu = &results.cpu;
    vec![
        cpu.row(what, CPU_ALL, Timings::secs, HTTP_BACKEND),
        Row::new(
            "clone",
            format!(
                "{what}: CPU of the server process alone, git excluded (ratio: graspd/CGI server)"
            ),
            results.server.ms(Side::Graspd),
        )
        .against(
            format!("{} in-process CGI server", results.server.ms(Side::Backend)),
            results.server.ratio(Side::Backend),
        ),
        Row::new(
            "clone",
            format!("graspd RSS growth during a {op} (max over rounds)"),
            format!("{:.1} MiB", mib(rss_kib)),
        )
        .target("< 16 MiB", mib(rss_kib) < RSS_TARGET_MIB),
    ]
}
