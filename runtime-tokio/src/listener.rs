//! The accept loop: connection caps, header timeouts, refusing fast when full.
//!
//! `axum::serve` accepts every connection and never times out headers, so 2,000
//! slowloris connections stayed open and 1,100 idle sockets from one client used up
//! the open-file limit, locking everyone out. Here:
//! - the open-file limit is raised to its hard limit at start ([`raise_fd_limit`]);
//! - a connection takes a [`Slot`] (at most `max_connections`, at most `per_client`
//!   from one address) that it holds until its socket closes, through a websocket
//!   upgrade too (the slot lives inside the socket wrapper hyper hands over);
//! - without a slot, the client gets `503` and the socket is closed at once, so the
//!   kernel's accept queue keeps moving;
//! - hyper's header read timeout closes connections that send headers too slowly or sit
//!   idle between requests.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tower::Layer;

use crate::slots::{Full, Slot, Slots};

/// File descriptors kept free of connections: the event store, the journal, logs and
/// the pipes of git children.
pub const FD_RESERVE: u64 = 256;

/// Connection limits of the listener.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Open connections at once.
    pub max_connections: usize,
    /// Open connections at once from one client address.
    pub per_client: usize,
    /// Reverse proxies: their connections count toward the total only (every client
    /// behind one shares its address).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long request headers (and idle keep-alive) may take.
    pub header_timeout: Duration,
    /// How long in-flight requests may run after the shutdown signal.
    pub shutdown_grace: Duration,
}

/// Raises the soft open-file limit to the hard limit and returns the soft limit in
/// force (`None` if it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            let raised = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::warn!("cannot raise the open-file limit from {current} to {maximum}: {e}");
                return Some(current);
            }
            return Some(maximum);
        }
    }
    // `None` means unlimited.
    Some(limit.current.unwrap_or(u64::MAX))
}

/// The default connection cap for an open-file limit of `nofile`: half of what is left
/// after [`FD_RESERVE`] (a connection may run git, whose three pipes we hold), at
/// least 16.
pub fn default_max_connections(nofile: u64) -> usize {
    let half = nofile.saturating_sub(FD_RESERVE) / 2;
    usize::try_from(half).unwrap_or(usize::MAX).max(16)
}

/// A socket that holds its connection slot until it is dropped. The slot is freed
/// first, so a client that saw the socket close finds the slot free.
struct Counted {
    _slot: Slot,
    io: TcpStream,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Answers a connection that got no slot with `503` and closes it, without reading.
fn refuse(stream: TcpStream, full: Full) {
    let body: &[u8] = match full {
        Full::Total => b"the server is at its connection limit; retry later\n",
        Full::PerClient => b"too many connections from your address; close some and retry\n",
    };
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 10\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // A fresh socket's send buffer has room: this never waits.
    let _ = stream.try_write(&[head.as_bytes(), body].concat());
    drop(stream);
}

/// Whether an accept error concerns one connection only (then accept the next at once).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then lets
/// in-flight requests finish for up to the grace period.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Slots::new(limits.max_connections, limits.per_client);
    let tracker = TaskTracker::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let proxied = limits
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&peer.ip()));
        let slot = match slots.try_take((!proxied).then_some(peer.ip())) {
            Ok(slot) => slot,
            Err(full) => {
                tracing::debug!(%peer, ?full, "connection refused: no slot");
                refuse(stream, full);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Counted {
            _slot: slot,
            io: stream,
        });
        let service = axum::Extension(ConnectInfo::<SocketAddr>(peer)).layer(app.clone());
        let connection = builder
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        let mut stop = stop_rx.clone();
        tracker.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                }
                _ = async move { let _ = stop.wait_for(|stopping| *stopping).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracker.close();
    if tokio::time::timeout(limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running after {:?}; stopping anyway",
            limits.shutdown_grace
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cap_leaves_room_below_the_fd_limit() {
        assert_eq!(default_max_connections(1024), 384);
        assert_eq!(default_max_connections(100), 16);
        assert_eq!(default_max_connections(1 << 20), ((1 << 20) - 256) / 2);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let soft = raise_fd_limit().expect("readable");
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(Some(soft), limit.current.or(Some(u64::MAX)));
        assert_eq!(limit.current, limit.maximum);
    }
}
