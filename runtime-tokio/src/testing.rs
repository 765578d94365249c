//! Test-only implementations of the engine seams and an in-process server.
//!
//! [`StoreAll`] accepts and stores every event; it exists to exercise the relay and is
//! never used by the daemon. [`Recorder`] authorizes pushes from a script and records
//! every call.

use std::collections::BTreeMap;
use std::net::SocketAddr;
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

    async fn after_push(&self, repo: &RepoPath, refs: &RepoRefs) {
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

impl TestServer {
    /// Starts a server with extra command-line `args`, the [`StoreAll`] sink and
    /// `authorizer`.
    pub(crate) async fn start(args: &[&str], authorizer: Arc<dyn PushAuthorizer>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let data = dir.path().join("data");
        let mut argv = vec!["graspd", "--data-dir", data.to_str().expect("utf8 path")];
        argv.extend_from_slice(args);
        let mut config = Config::try_parse_from(argv).expect("args");
        config.listen = addr;
        config.public_url = Some(Url::parse(&format!("http://{addr}")).expect("url"));
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
