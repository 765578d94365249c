//! Finding the `graspd` binary.
//!
//! `CARGO_BIN_EXE_graspd` exists only for the runtime crate's own tests, so this crate
//! looks for the binary next to its own test executable (`target/<profile>/graspd`)
//! after running `cargo build -p grasp-runtime --bin graspd` once, so that a plain
//! `cargo test -p grasp-tests` or `cargo nextest run` always tests the current source:
//!
//! 1. `GRASPD_BIN=/path/to/graspd` — use that binary, build nothing;
//! 2. otherwise build it with the `cargo` that runs the tests (`$CARGO`), into the
//!    target directory the test executable lives in. The build runs once per test
//!    binary under `cargo test`; under nextest, which runs every test in its own process,
//!    a stamp file keyed by the parent (nextest) process makes it run once per run.
//!    `GRASP_TESTS_NO_BUILD=1` skips it and uses whatever binary is there.
//!
//! If the build fails (say someone is in the middle of an edit) but a binary exists, the
//! existing binary is used and a warning is printed with the test output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long building graspd may take before the tests give up.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The path of the `graspd` binary to test (built on first use, see the module docs).
pub fn graspd() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(resolve)
}

fn resolve() -> PathBuf {
    if let Some(path) = std::env::var_os("GRASPD_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "GRASPD_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let profile_dir = profile_dir();
    let binary = profile_dir.join(format!("graspd{}", std::env::consts::EXE_SUFFIX));
    if std::env::var_os("GRASP_TESTS_NO_BUILD").is_none() {
        build(&profile_dir, &binary);
    }
    assert!(
        binary.is_file(),
        "no graspd binary at {}; run `cargo build -p grasp-runtime --bin graspd` or set GRASPD_BIN",
        binary.display()
    );
    binary
}

/// `target/<profile>`: the test executable lives in `target/<profile>/deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let deps = exe.parent().expect("test executable has a directory");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps has a parent")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// A file that exists once graspd was built during this test run (see the module docs).
fn stamp(profile_dir: &Path) -> Option<PathBuf> {
    let parent = std::os::unix::process::parent_id();
    // The parent's start time makes the stamp specific to this run even if its pid is
    // reused later.
    let stat = std::fs::read_to_string(format!("/proc/{parent}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let start_time = after_name.split_whitespace().nth(19)?;
    let dir = profile_dir.parent()?.join("tmp");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join(format!("grasp-tests-graspd-built-{parent}-{start_time}")))
}

fn build(profile_dir: &Path, binary: &Path) {
    let stamp = stamp(profile_dir);
    if let Some(stamp) = &stamp {
        if stamp.exists() && binary.is_file() {
            return;
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace");
    let target_dir = profile_dir.parent().expect("profile dir has a parent");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", "grasp-runtime", "--bin", "graspd"])
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let outcome = run_with_timeout(command, BUILD_TIMEOUT);
    match outcome {
        Ok(()) => {
            if let Some(stamp) = stamp {
                let _ = std::fs::write(stamp, b"");
            }
        }
        Err(why) if binary.is_file() => {
            eprintln!(
                "WARNING: building graspd failed; testing the existing binary {}:\n{why}",
                binary.display()
            );
        }
        Err(why) => panic!("could not build graspd: {why}"),
    }
}

fn run_with_timeout(mut command: Command, timeout: Duration) -> Result<(), String> {
    // A file rather than a pipe: cargo's error output can exceed a pipe's buffer.
    let log = tempfile::NamedTempFile::new().map_err(|e| format!("temp file: {e}"))?;
    let stderr = log.reopen().map_err(|e| format!("temp file: {e}"))?;
    let mut child = command
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return if status.success() {
                    Ok(())
                } else {
                    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
                    Err(format!("cargo build exited with {status}\n{output}"))
                };
            }
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cargo build took longer than {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for cargo: {e}")),
        }
    }
}
