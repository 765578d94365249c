//! A websocket client that reads when it chooses, with a 4 KiB receive window.
//!
//! Setting `SO_RCVBUF` turns off the kernel's receive autotuning (up to 32 MiB on a
//! usual Linux), so a reader that stops polling really stops taking bytes: what the
//! server has not sent by then stays on the server's side. Used by the hostile-load
//! tests and by `graspd-bench slowreq`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::server::Graspd;

/// The receive window a slow reader asks for.
pub const WINDOW: u32 = 4096;

/// How long one message may take to arrive once the reader reads.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// One websocket that reads only when asked to.
pub struct SlowReader {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl std::fmt::Debug for SlowReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowReader").finish_non_exhaustive()
    }
}

impl SlowReader {
    /// Connects to `server`'s relay.
    pub async fn connect(server: &Graspd) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(WINDOW).expect("SO_RCVBUF");
        let address = server.authority().parse().expect("server address");
        let stream = crate::within(Duration::from_secs(10), "connect", socket.connect(address))
            .await
            .expect("connect");
        // Small buffers on this side too: many readers should not cost the test much.
        let config = WebSocketConfig::default().read_buffer_size(WINDOW as usize);
        let (ws, _) = crate::within(
            Duration::from_secs(10),
            "websocket handshake",
            tokio_tungstenite::client_async_with_config(
                server.relay_url(),
                MaybeTlsStream::Plain(stream),
                Some(config),
            ),
        )
        .await
        .expect("websocket handshake");
        Self { ws }
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next text message, parsed; `None` once the server has closed the connection.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = crate::within(MESSAGE_TIMEOUT, "a relay message", self.ws.next()).await;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("relay JSON"));
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next message, which must be there.
    pub async fn expect(&mut self) -> Value {
        self.next().await.expect("the relay closed the connection")
    }

    /// Reads until the EOSE of `sub`, returning the ids of the events it received.
    pub async fn until_eose(&mut self, sub: &str) -> Vec<String> {
        let mut ids = Vec::new();
        loop {
            let message = self.expect().await;
            match message[0].as_str() {
                Some("EVENT") if message[1] == sub => {
                    ids.push(message[2]["id"].as_str().expect("event id").to_owned());
                }
                Some("EOSE") if message[1] == sub => return ids,
                Some("CLOSED") if message[1] == sub => panic!("{sub} closed: {message}"),
                _ => {}
            }
        }
    }
}

/// Anonymous resident memory of process `pid` in KiB (`RssAnon`: heap and stacks, not
/// the event store's memory-mapped file pages), zero if it cannot be read.
pub fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
