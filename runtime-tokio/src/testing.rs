//! Test-only implementations of the engine seams and an in-process server.
//!
//! [`StoreAll`] accepts and stores every event; it exists to exercise the relay and is
//! never used by the daemon. [`Recorder`] authorizes pushes from a script and records
//! every call.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use nostr::prelude::{Event, Url};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::git_http::{PushAuthorizer, PushDecision, RefUpdate};
use crate::git_ops::RepoRefs;
use crate::relay::{ConnId, EventSink, Hub, Verdict};
use crate::repo::RepoPath;
use crate::server::Server;
use crate::store::Store;

/// Accepts every event: stores it, then publishes it live.
pub(crate) struct StoreAll {
    pub(crate) store: Store,
    pub(crate) hub: Hub,
}

#[async_trait]
impl EventSink for StoreAll {
    async fn submit(&self, event: Event, _origin: ConnId) -> Verdict {
        match self.store.save(&event).await {
            Ok(status) if status.is_success() => {
                self.hub.publish(event);
                Verdict::accept("")
            }
            Ok(status) => Verdict::accept(format!("duplicate: {status:?}")),
            Err(e) => Verdict::refuse(format!("error: {e}")),
        }
    }
}

/// What a [`Recorder`] saw.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    pub(crate) authorized: Vec<(RepoPath, RepoRefs, Vec<RefUpdate>)>,
    pub(crate) after: Vec<(RepoPath, RepoRefs)>,
}

/// Refuses the refs listed in `refuse` (name → reason), accepts the rest, records
/// calls; `after_push` takes `after_delay` to finish.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) refuse: Mutex<BTreeMap<String, String>>,
    pub(crate) calls: Mutex<Calls>,
    pub(crate) after_delay: Duration,
}

#[async_trait]
impl PushAuthorizer for Recorder {
    async fn authorize_push(
        &self,
        repo: &RepoPath,
        current: &RepoRefs,
        updates: &[RefUpdate],
        _client: Option<std::net::IpAddr>,
    ) -> PushDecision {
        self.calls.lock().expect("lock").authorized.push((
            repo.clone(),
            current.clone(),
            updates.to_vec(),
        ));
        let refuse = self.refuse.lock().expect("lock").clone();
        updates
            .iter()
            .filter_map(|u| refuse.get(&u.name).map(|why| (u.name.clone(), why.clone())))
            .fold(PushDecision::accept_all(), |d, (name, why)| {
                d.refuse(name, why)
            })
    }

    async fn after_push(
        &self,
        repo: &RepoPath,
        _updates: &[RefUpdate],
        refs: &RepoRefs,
        _client: Option<std::net::IpAddr>,
    ) {
        tokio::time::sleep(self.after_delay).await;
        self.calls
            .lock()
            .expect("lock")
            .after
            .push((repo.clone(), refs.clone()));
    }
}

/// A complete server on an ephemeral 127.0.0.1 port, stopped on drop.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) server: Arc<Server>,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

/// A temp data dir, a listener on 127.0.0.1:0 and the configuration naming both.
async fn bind_config(args: &[&str]) -> (tempfile::TempDir, TcpListener, SocketAddr, Config) {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let data = dir.path().join("data");
    let mut argv = vec!["graspd", "--data-dir", data.to_str().expect("utf8 path")];
    argv.extend_from_slice(args);
    let mut config = Config::try_parse_from(argv).expect("args");
    config.listen = addr;
    config.public_url = Some(Url::parse(&format!("http://{addr}")).expect("url"));
    (dir, listener, addr, config)
}

impl TestServer {
    /// Starts a server with extra command-line `args`, the [`StoreAll`] sink and
    /// `authorizer`.
    pub(crate) async fn start(args: &[&str], authorizer: Arc<dyn PushAuthorizer>) -> Self {
        let (dir, listener, addr, config) = bind_config(args).await;
        let server = Arc::new(Server::open(config).await.expect("open"));
        let sink = Arc::new(StoreAll {
            store: server.store().clone(),
            hub: server.hub().clone(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = Arc::clone(&server);
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            let _ = serving.serve(listener, sink, authorizer, shutdown).await;
        });
        Self {
            addr,
            server,
            _dir: dir,
            _stop: stop,
        }
    }

    /// Starts a server driven by the real engine (as `graspd` runs), with extra `args`.
    pub(crate) async fn start_engine(args: &[&str]) -> Self {
        let (dir, listener, addr, config) = bind_config(args).await;
        let mut server = Server::open(config).await.expect("open");
        let (engine, _task) = crate::driver::start(
            server.config(),
            server.store().clone(),
            server.hub().clone(),
            server.repos().clone(),
        )
        .await
        .expect("engine");
        server.add_routes(crate::ops::routes(engine.clone(), server.repos().clone()));
        let server = Arc::new(server);
        let handle = Arc::new(engine);
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = Arc::clone(&server);
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            let _ = serving
                .serve(listener, handle.clone(), handle, shutdown)
                .await;
        });
        Self {
            addr,
            server,
            _dir: dir,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A router over a fresh data directory, for `tower::ServiceExt::oneshot` tests.
pub(crate) struct TestApp {
    pub(crate) router: axum::Router,
    pub(crate) server: Server,
    pub(crate) dir: tempfile::TempDir,
}

impl TestApp {
    pub(crate) async fn new(args: &[&str], authorizer: Arc<dyn PushAuthorizer>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut argv = vec!["graspd", "--data-dir", data.to_str().expect("utf8 path")];
        argv.extend_from_slice(args);
        let config = Config::try_parse_from(argv).expect("args");
        let server = Server::open(config).await.expect("open");
        let sink = Arc::new(StoreAll {
            store: server.store().clone(),
            hub: server.hub().clone(),
        });
        let router = server.router(sink, authorizer);
        Self {
            router,
            server,
            dir,
        }
    }
}

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// A raw websocket client for relay tests: exact OK messages, REQ until EOSE.
pub(crate) struct WsClient {
    pub(crate) ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub(crate) async fn connect(server: &TestServer) -> Self {
        let (ws, _) = connect_async(format!("ws://{}/", server.addr))
            .await
            .expect("connect");
        Self { ws }
    }

    pub(crate) async fn send(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send");
    }

    pub(crate) async fn publish(&mut self, event: &Event) {
        self.send(json!(["EVENT", event]).to_string()).await;
    }

    pub(crate) async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("reply within 10 s")
                .expect("open")
                .expect("frame");
            if let Message::Text(text) = message {
                return serde_json::from_str(text.as_str()).expect("json");
            }
        }
    }

    pub(crate) async fn expect_silence(&mut self) {
        let quiet = tokio::time::timeout(Duration::from_millis(300), self.ws.next()).await;
        assert!(quiet.is_err(), "unexpected message: {quiet:?}");
    }

    /// Sends a REQ and collects the stored events until EOSE.
    pub(crate) async fn req(&mut self, id: &str, filters: Value) -> Vec<Value> {
        let mut message = vec![json!("REQ"), json!(id)];
        message.extend(filters.as_array().expect("filters").iter().cloned());
        self.send(Value::Array(message).to_string()).await;
        let mut events = Vec::new();
        loop {
            let reply = self.recv().await;
            match reply[0].as_str() {
                Some("EVENT") => events.push(reply[2].clone()),
                Some("EOSE") => return events,
                _ => panic!("unexpected reply to REQ: {reply}"),
            }
        }
    }
}

/// What a git client run printed.
pub(crate) struct GitOutput {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs the git client with a clean environment (no user or system config).
pub(crate) async fn git(cwd: &Path, args: &[&str]) -> GitOutput {
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .await
        .expect("run git");
    GitOutput {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs git and expects success; returns trimmed stdout.
pub(crate) async fn git_ok(cwd: &Path, args: &[&str]) -> String {
    let out = git(cwd, args).await;
    assert!(out.ok, "git {args:?} failed: {}", out.stderr);
    out.stdout.trim().to_owned()
}

/// A work tree with one commit containing `file` = `content`.
pub(crate) async fn work_tree(parent: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    git_ok(&dir, &["init", "--quiet", "--initial-branch", "main"]).await;
    std::fs::write(dir.join("file"), content).expect("write");
    git_ok(&dir, &["add", "file"]).await;
    git_ok(&dir, &["commit", "--quiet", "-m", "one"]).await;
    dir
}

/// A minimal HTTP GET (the crate has no HTTP client dependency); returns the whole
/// response, head included.
pub(crate) async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = url::Url::parse(url).expect("url");
    let mut s = TcpStream::connect((u.host_str().expect("host"), u.port().expect("port")))
        .await
        .expect("connect");
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        u.path()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("answer within 10 s")
        .expect("read");
    out
}

/// A remote on 127.0.0.1 that accepts connections and never answers (a hanging server);
/// returns its port and the task holding the connections (abort it to close them).
pub(crate) async fn stalling_remote() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (port, hold)
}
