//! A large repository made in seconds and the same on every run: `git fast-import` fed
//! from a seeded PRNG, one file rewritten per commit with incompressible bytes, so the
//! packed size is known up front (≈ commits × mean blob size) and no delta or zlib luck
//! changes it between runs. Plus the isolated git environment the benchmark runs in.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long one git command may take (a 100 MB push on a busy machine is far below).
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// SplitMix64: tiny, seedable, fast enough to fill 100 MB in well under a second.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    /// A generator whose whole output follows from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (the tiny modulo bias does not matter here).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// The shape of a generated history on `refs/heads/main`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Commits to add.
    pub commits: usize,
    /// Blob size range in bytes (each commit rewrites one file with this many bytes).
    pub blob_bytes: (usize, usize),
    /// Seed of the content; the same spec and seed give the same commit ids.
    pub seed: u64,
    /// Commit timestamps start here (seconds since the epoch), one minute apart.
    pub epoch: u64,
}

/// Files live in 32 directories of 32 files: trees stay small (a commit adds two ~1 KiB
/// trees), so the pack is mostly blob bytes.
const FANOUT: usize = 32;

/// Writes the fast-import stream of `spec` to `out`; the first commit's parent is
/// `parent` (an object id), or none.
pub fn write_stream(
    spec: &Spec,
    parent: Option<&str>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut rng = Prng::new(spec.seed);
    let mut blob = vec![0u8; spec.blob_bytes.1];
    for i in 0..spec.commits {
        let size = rng.range(spec.blob_bytes.0, spec.blob_bytes.1);
        rng.fill(&mut blob[..size]);
        let path = format!(
            "d{:02}/f{:02}.bin",
            rng.range(0, FANOUT - 1),
            rng.range(0, FANOUT - 1)
        );
        let when = spec.epoch + 60 * i as u64;
        let message = format!("commit {i} of seed {}: rewrite {path}\n", spec.seed);
        writeln!(out, "commit refs/heads/main")?;
        writeln!(out, "author Bench <bench@example.invalid> {when} +0000")?;
        writeln!(out, "committer Bench <bench@example.invalid> {when} +0000")?;
        writeln!(out, "data {}\n{message}", message.len())?;
        if let (0, Some(parent)) = (i, parent) {
            writeln!(out, "from {parent}")?;
        }
        writeln!(out, "M 100644 inline {path}\ndata {size}")?;
        out.write_all(&blob[..size])?;
        writeln!(out)?;
    }
    writeln!(out, "done")
}

/// The test harness's isolated git (its own `HOME`, no system config) with a generous
/// timeout and timing: packs here are large.
#[derive(Debug)]
pub struct GitEnv {
    git: grasp_tests::git::Git,
}

impl GitEnv {
    /// A fresh environment.
    pub fn new() -> Self {
        Self {
            git: grasp_tests::git::Git::new(),
        }
    }

    /// The `HOME` every git child gets.
    pub fn home(&self) -> &Path {
        self.git.home()
    }

    /// `git <args>` in `dir`, isolated, output piped.
    pub fn command(&self, dir: &Path, args: &[&str]) -> std::process::Command {
        self.git.command(Some(dir), args)
    }

    /// Runs `git <args>` in `dir`; returns stdout and the wall time. Panics (with
    /// stderr) if git fails or outlives the timeout: a benchmark on a broken setup
    /// measures nothing.
    pub async fn run(&self, dir: &Path, args: &[&str]) -> (String, Duration) {
        let mut command = tokio::process::Command::from(self.command(dir, args));
        command.kill_on_drop(true);
        let line = format!("git {}", args.join(" "));
        let started = Instant::now();
        let child = command.spawn().unwrap_or_else(|e| panic!("`{line}`: {e}"));
        let output = tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`{line}` did not finish within {GIT_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("`{line}`: {e}"));
        let took = started.elapsed();
        assert!(
            output.status.success(),
            "`{line}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        (String::from_utf8_lossy(&output.stdout).into_owned(), took)
    }

    /// `git rev-parse <rev>` in `dir`.
    pub async fn rev(&self, dir: &Path, rev: &str) -> String {
        self.run(dir, &["rev-parse", rev]).await.0.trim().to_owned()
    }
}

/// Generates `spec` into the bare repository `dir` (created if needed) on top of
/// `parent`; returns the new tip of `refs/heads/main`.
pub async fn generate(env: &GitEnv, dir: &Path, spec: Spec, parent: Option<String>) -> String {
    if !dir.join("HEAD").exists() {
        let parent_dir = dir.parent().expect("repository has a parent directory");
        let name = dir.to_str().expect("utf-8 path");
        env.run(parent_dir, &["init", "-q", "--bare", name]).await;
    }
    let mut command = env.command(dir, &["fast-import", "--quiet", "--done"]);
    command.stdin(Stdio::piped());
    let dir_owned: PathBuf = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("git fast-import");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut out = BufWriter::with_capacity(1 << 20, stdin);
        let written = write_stream(&spec, parent.as_deref(), &mut out).and_then(|()| out.flush());
        drop(out);
        let output = child.wait_with_output().expect("wait for git fast-import");
        assert!(
            written.is_ok() && output.status.success(),
            "git fast-import into {} failed ({written:?}): {}",
            dir_owned.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    })
    .await
    .expect("fast-import task");
    env.rev(dir, "refs/heads/main").await
}

/// Total size of the pack files of the bare repository `dir`, in bytes.
pub fn pack_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir.join("objects/pack")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Spec {
        Spec {
            commits: 40,
            blob_bytes: (100, 2_000),
            seed,
            epoch: 1_700_000_000,
        }
    }

    #[test]
    fn prng_is_seeded_and_in_range() {
        let (mut a, mut b) = (Prng::new(7), Prng::new(7));
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Prng::new(8).next_u64(), xs[0]);
        assert!((0..1000).all(|_| (3..=5).contains(&a.range(3, 5))));
        let mut buf = [0u8; 13];
        a.fill(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
    }

    #[test]
    fn stream_is_deterministic() {
        let stream = |seed| {
            let mut out = Vec::new();
            write_stream(&small(seed), None, &mut out).expect("in memory");
            out
        };
        assert_eq!(stream(1), stream(1));
        assert_ne!(stream(1), stream(2));
        let mut with_parent = Vec::new();
        write_stream(&small(1), Some("abc"), &mut with_parent).expect("in memory");
        assert!(String::from_utf8_lossy(&with_parent).contains("\nfrom abc\n"));
    }

    #[tokio::test]
    async fn same_spec_same_commits() {
        let env = GitEnv::new();
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = generate(&env, &tmp.path().join("a.git"), small(3), None).await;
        let b = generate(&env, &tmp.path().join("b.git"), small(3), None).await;
        assert_eq!(a, b);
        assert!(pack_bytes(&tmp.path().join("a.git")) > 40 * 100);
        let more = Spec {
            seed: 4,
            ..small(3)
        };
        let c = generate(&env, &tmp.path().join("a.git"), more, Some(a.clone())).await;
        let (count, _) = env
            .run(&tmp.path().join("a.git"), &["rev-list", "--count", &c])
            .await;
        assert_eq!(count.trim(), "80");
        assert_eq!(
            env.rev(&tmp.path().join("a.git"), &format!("{c}~40")).await,
            a
        );
    }
}
