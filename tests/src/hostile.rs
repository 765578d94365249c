//! Tools for hostile-load scenarios: raw sockets from chosen loopback addresses,
//! hand-made push requests that stop half-way, and what git left on disk and in
//! `/proc`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nostr_sdk::prelude::PublicKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::server::{Graspd, npub};

/// Connects to `server` from the loopback address `source` (any of 127.0.0.0/8 works
/// on Linux), so that one test can play several clients.
pub async fn connect_from(source: &str, server: &Graspd) -> TcpStream {
    let source: IpAddr = source.parse().expect("source address");
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind the source address");
    let target: SocketAddr = server.authority().parse().expect("server address");
    crate::within(Duration::from_secs(10), "connect", socket.connect(target))
        .await
        .expect("connect")
}

/// The head of `POST …/git-receive-pack` for `(owner, d)` announcing `length` body
/// bytes (`Connection: close`: the answer ends with the connection).
pub fn receive_pack_head(server: &Graspd, owner: &PublicKey, d: &str, length: usize) -> String {
    format!(
        "POST /{}/{d}.git/git-receive-pack HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/x-git-receive-pack-request\r\n\
         Accept: application/x-git-receive-pack-result\r\nConnection: close\r\n\
         Content-Length: {length}\r\n\r\n",
        npub(owner),
        server.authority()
    )
}

/// The command list of a push creating `refname` at `new`, then the flush.
pub fn create_command(new: &str, refname: &str) -> Vec<u8> {
    let zero = "0".repeat(new.len());
    let line = format!("{zero} {new} {refname}\0report-status\n");
    let mut out = format!("{:04x}", line.len() + 4).into_bytes();
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"0000");
    out
}

/// The 12-byte header of a pack that announces one object (and never sends it).
pub const PACK_HEADER: &[u8] = b"PACK\0\0\0\x02\0\0\0\x01";

/// Sends `bytes` on `stream`.
pub async fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.expect("send");
}

/// Reads until the server closes the connection (or resets it): `Ok(what was read)`,
/// or `Err(what was read)` if it is still open after `deadline`.
pub async fn read_until_closed(
    stream: &mut TcpStream,
    deadline: Duration,
) -> Result<Vec<u8>, Vec<u8>> {
    let mut read = Vec::new();
    let reading = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read.extend_from_slice(&buf[..n]),
            }
        }
    };
    match tokio::time::timeout(deadline, reading).await {
        Ok(()) => Ok(read),
        Err(_) => Err(read),
    }
}

/// Sends `GET /` (keep-alive) and reads the response head; returns the status, or
/// `None` if the connection closed first.
pub async fn get_status(stream: &mut TcpStream) -> Option<u16> {
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nHost: graspd\r\n\r\n")
        .await;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Pids of `git` processes working inside `dir` (their cwd is in it).
pub fn gits_in(dir: &Path) -> Vec<u32> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_none_or(|state| state == "Z" || state == "X");
            comm.trim_end() == "git"
                && !zombie
                && std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .collect()
}

/// The push quarantines (`objects/tmp_objdir-incoming-*`) of a bare repository.
pub fn quarantines(repo: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(repo.join("objects")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("tmp_objdir-incoming-"))
        })
        .collect()
}
