//! Running the engine's remote requests with the `git` binary, bounded.
//!
//! `git ls-remote` learns a server's refs; `git fetch <url> <oid>…` brings exactly the
//! advertised objects the engine asks for. Every call: the URL guard first, git given
//! only the guard's serialized URL, a host name pinned to the checked address, `GIT_TERMINAL_PROMPT=0`, no credential helper, only
//! http(s) allowed as protocols, no redirects, a hard timeout that kills the process, and
//! for fetches a cap on the pack size (the temporary pack is watched while it grows).
//! git writes a fetched pack under a temporary name and moves it in only once complete
//! and indexed (`fetch.fsckObjects` checks it), which is our quarantine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use grasp_core::{Failure, FailureKind, Oid};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::guard::{self, Resolved};
use crate::git_ops::existing_oids;

/// Limits of remote requests.
#[derive(Debug, Clone)]
pub struct RemoteLimits {
    /// Whole-request time limit (connect included).
    pub timeout: Duration,
    /// Allow loopback/private addresses (tests, private deployments).
    pub allow_private: bool,
    /// Largest pack accepted from one fetch.
    pub max_pack: u64,
}

fn failure(kind: FailureKind, detail: impl Into<String>) -> Failure {
    Failure {
        kind,
        detail: detail.into(),
    }
}

fn git(resolved: &Resolved, limits: &RemoteLimits) -> Command {
    let mut cmd = crate::children::tokio_git();
    let secs = limits.timeout.as_secs().max(1).to_string();
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("SSH_ASKPASS", "true")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .env_remove("GIT_DIR")
        .args([
            "-c",
            "protocol.allow=never",
            "-c",
            "protocol.http.allow=always",
            "-c",
            "protocol.https.allow=always",
        ])
        .args([
            "-c",
            "credential.helper=",
            "-c",
            "http.followRedirects=false",
            "-c",
            "core.askPass=true",
        ])
        .args([
            "-c",
            "http.lowSpeedLimit=1",
            "-c",
            &format!("http.lowSpeedTime={secs}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(pin) = resolved.curl_resolve() {
        cmd.args(["-c", &format!("http.curloptResolve={pin}")]);
    }
    cmd
}

/// Classifies a failed git run by its stderr.
fn classify(stderr: &str) -> FailureKind {
    let s = stderr.to_ascii_lowercase();
    if s.contains("not our ref")
        || s.contains("couldn't find remote ref")
        || s.contains("no such remote ref")
    {
        FailureKind::NotOurRef
    } else if s.contains(" 429") || s.contains(" 503") || s.contains("too many requests") {
        FailureKind::RateLimited
    } else if s.contains("could not resolve")
        || s.contains("connection refused")
        || s.contains("failed to connect")
        || s.contains("couldn't connect")
    {
        FailureKind::Unreachable
    } else if s.contains("timed out") || s.contains("operation too slow") {
        FailureKind::Timeout
    } else if s.contains("index-pack")
        || s.contains("bad pack")
        || s.contains("protocol error")
        || s.contains("invalid")
        || s.contains("fsck")
    {
        FailureKind::BadResponse
    } else {
        FailureKind::Other
    }
}

/// Runs a prepared command to completion within the time limit, returning stdout.
async fn run(
    mut cmd: Command,
    limits: &RemoteLimits,
    watch: Option<(PathBuf, u64)>,
) -> Result<Vec<u8>, Failure> {
    let mut child = cmd
        .spawn()
        .map_err(|e| failure(FailureKind::Other, format!("cannot run git: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let work = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (a, b, status) = tokio::join!(
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err),
            child.wait()
        );
        let _ = (a, b);
        (out, String::from_utf8_lossy(&err).into_owned(), status)
    };
    let watchdog = async {
        let Some((dir, cap)) = &watch else {
            return std::future::pending::<u64>().await;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let size = tmp_pack_size(dir).await;
            if size > *cap {
                return size;
            }
        }
    };
    tokio::select! {
        (out, err, status) = work => match status {
            Ok(s) if s.success() => Ok(out),
            Ok(_) => Err(failure(classify(&err), err.trim().chars().take(400).collect::<String>())),
            Err(e) => Err(failure(FailureKind::Other, e.to_string())),
        },
        () = tokio::time::sleep(limits.timeout) => {
            Err(failure(FailureKind::Timeout, format!("no complete answer within {:?}", limits.timeout)))
        }
        size = watchdog => Err(failure(FailureKind::BadResponse, format!("pack exceeds {} bytes ({size} so far)", limits.max_pack))),
    }
    // Dropping the child (kill_on_drop) stops git when the timeout or the cap hits.
}

/// Total size of the files in `objects/pack` whose names pass `pick`.
async fn pack_files_size(repo: &Path, pick: impl Fn(&str) -> bool) -> u64 {
    let mut total = 0;
    if let Ok(mut rd) = tokio::fs::read_dir(repo.join("objects/pack")).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            if pick(&e.file_name().to_string_lossy()) {
                total += e.metadata().await.map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// Bytes of the pack git is receiving right now (its temporary files).
async fn tmp_pack_size(repo: &Path) -> u64 {
    pack_files_size(repo, |n| n.starts_with("tmp_")).await
}

/// Bytes of the complete packs.
async fn pack_bytes(repo: &Path) -> u64 {
    pack_files_size(repo, |n| n.ends_with(".pack")).await
}

/// A remote's advertised refs (`git ls-remote`).
pub async fn list_refs(url: &str, limits: &RemoteLimits) -> Result<Vec<(String, Oid)>, Failure> {
    let resolved = guard::check(url, limits.allow_private)
        .await
        .map_err(|why| failure(FailureKind::Refused, why))?;
    let mut cmd = git(&resolved, limits);
    // Only the serialization of the checked parse, never the event's raw string.
    cmd.args(["ls-remote", "--", resolved.url.as_str()]);
    let out = run(cmd, limits, None).await?;
    let text = String::from_utf8_lossy(&out);
    let refs: Vec<(String, Oid)> = text
        .lines()
        .filter_map(|l| {
            let (oid, name) = l.split_once('\t')?;
            Some((name.trim_end_matches("^{}").to_owned(), Oid::parse(oid)?))
        })
        .take(100_000)
        .collect();
    Ok(refs)
}

/// Fetches `oids` from `url` into the bare repository at `into`; returns which of them
/// are present afterwards and the pack bytes received.
pub async fn fetch(
    url: &str,
    into: &Path,
    oids: &[Oid],
    limits: &RemoteLimits,
) -> Result<(Vec<Oid>, u64), Failure> {
    let resolved = guard::check(url, limits.allow_private)
        .await
        .map_err(|why| failure(FailureKind::Refused, why))?;
    let before = pack_bytes(into).await;
    let mut cmd = git(&resolved, limits);
    cmd.arg("-C").arg(into);
    cmd.args([
        "-c",
        "fetch.unpackLimit=1",
        "-c",
        "fetch.fsckObjects=true",
        "-c",
        "gc.auto=0",
        "-c",
        "maintenance.auto=false",
    ]);
    cmd.args([
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        "--",
        resolved.url.as_str(),
    ]);
    cmd.args(oids.iter().map(Oid::to_string));
    run(cmd, limits, Some((into.to_owned(), limits.max_pack))).await?;
    let bytes = pack_bytes(into).await.saturating_sub(before);
    let dir = into.to_owned();
    let wanted: Vec<String> = oids.iter().map(Oid::to_string).collect();
    let present = tokio::task::spawn_blocking(move || existing_oids(&dir, &wanted))
        .await
        .map_err(|e| failure(FailureKind::Other, e.to_string()))?
        .map_err(|e| failure(FailureKind::Other, e.to_string()))?;
    Ok((
        present.iter().filter_map(|s| Oid::parse(s)).collect(),
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_git_errors() {
        assert_eq!(
            classify("fatal: remote error: upload-pack: not our ref 1234"),
            FailureKind::NotOurRef
        );
        assert_eq!(
            classify(
                "fatal: unable to access 'x': Failed to connect to h port 1: Connection refused"
            ),
            FailureKind::Unreachable
        );
        assert_eq!(
            classify("error: RPC failed; HTTP 429 curl 22 The requested URL returned error: 429"),
            FailureKind::RateLimited
        );
        assert_eq!(
            classify("fatal: index-pack failed"),
            FailureKind::BadResponse
        );
    }

    #[tokio::test]
    async fn hanging_remote_is_cut_at_the_timeout() {
        let (port, hold) = crate::testing::stalling_remote().await;
        let limits = RemoteLimits {
            timeout: Duration::from_secs(2),
            allow_private: true,
            max_pack: 1 << 20,
        };
        let start = std::time::Instant::now();
        let r = list_refs(&format!("http://127.0.0.1:{port}/x.git"), &limits).await;
        assert_eq!(r.unwrap_err().kind, FailureKind::Timeout);
        assert!(start.elapsed() < Duration::from_secs(10));
        hold.abort();
    }
}
