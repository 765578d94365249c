//! A TCP pass-through on loopback that timestamps every chunk a server sends back, so a
//! benchmark can see from the client side when git data "landed": the moment a push's
//! report-status (`unpack ok`) came back, or the last byte of a fetch a remote served.
//!
//! Both sockets run with `TCP_NODELAY`; the added hop costs tens of microseconds on
//! loopback and delays only the server→client direction it measures (so it makes the
//! "landed → delivered" figures slightly smaller, never larger).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One server→client read: when it was read and what it held.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// When the tap read it from the server.
    pub at: Instant,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A running tap in front of `127.0.0.1:<target>`; stops when dropped.
pub struct Tap {
    port: u16,
    chunks: Arc<Mutex<Vec<Chunk>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Tap {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let port = listener.local_addr().expect("tap address").port();
        let chunks = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&chunks);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await {
                        forward(client, server, log).await;
                    }
                });
            }
        });
        Self {
            port,
            chunks,
            accept,
        }
    }

    /// The tap's port: use `127.0.0.1:<port>` where the server's address would go.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forgets what was recorded so far (call before each measured operation).
    pub fn clear(&self) {
        self.chunks.lock().expect("tap log").clear();
    }

    /// Every server→client chunk recorded since the last [`clear`](Self::clear).
    pub fn chunks(&self) -> Vec<Chunk> {
        self.chunks.lock().expect("tap log").clone()
    }

    /// When the server sent the end of the first occurrence of `needle` (which may span
    /// chunks) since the last clear.
    pub fn seen(&self, needle: &[u8]) -> Option<Instant> {
        let chunks = self.chunks();
        let mut all = Vec::new();
        let mut ends = Vec::new();
        for c in &chunks {
            all.extend_from_slice(&c.bytes);
            ends.push((all.len(), c.at));
        }
        let start = all.windows(needle.len()).position(|w| w == needle)?;
        let end = start + needle.len();
        ends.iter().find(|(e, _)| *e >= end).map(|(_, at)| *at)
    }

    /// When the server sent its last byte before `before`, since the last clear.
    pub fn last_before(&self, before: Instant) -> Option<Instant> {
        self.chunks()
            .iter()
            .map(|c| c.at)
            .filter(|at| *at <= before)
            .max()
    }
}

async fn forward(client: TcpStream, server: TcpStream, log: Arc<Mutex<Vec<Chunk>>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let at = Instant::now();
        log.lock().expect("tap log").push(Chunk {
            at,
            bytes: buf[..n].to_vec(),
        });
        if client_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = client_write.shutdown().await;
    upstream.abort();
}
