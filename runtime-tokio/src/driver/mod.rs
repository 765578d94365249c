//! The engine driver: one task owns the grasp-core [`Engine`], takes inputs from the
//! relay, the git endpoints and finished remote requests, executes the effects in
//! order, and re-arms one timer at the engine's earliest deadline. No polling tick,
//! no lock held across an await, no protocol state outside the engine.

mod adopt;
mod backends;
#[cfg(test)]
mod check_failure_tests;
#[cfg(test)]
mod check_tests;
mod clock;
#[cfg(test)]
mod config_tests;
mod convert;
mod debug_hooks;
#[cfg(test)]
mod failure_tests;
mod guard;
mod journal;
#[cfg(test)]
mod journal_format_tests;
mod metrics;
mod remote;
#[cfg(test)]
mod sync_fixture;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use grasp_core::nostr::prelude::Event;
use grasp_core::{Config as EngineConfig, Engine, Oid, Origin, PushRequest, PushVerdict, RepoId};
use grasp_executor::{Executor, Parts};
use tokio::sync::{mpsc, oneshot};

pub use guard::is_forbidden;
pub use journal::{Journal, JournalError};
pub use metrics::{RuntimeMetrics, View};
pub use remote::RemoteLimits;

use crate::config::Config;
use crate::git_http::{PushAuthorizer, PushDecision, RefUpdate};
use crate::git_ops::RepoRefs;
use crate::relay::{ConnId, EventSink, Hub, Verdict};
use crate::repo::{RepoPath, Repos};
use crate::store::Store;
use backends::{Daemon, GitRemote, GitRepos, Outlet, Tokio};

/// What the engine task is asked to do.
pub(crate) enum Command {
    Event {
        event: Event,
        reply: oneshot::Sender<Verdict>,
    },
    Push {
        request: PushRequest,
        reply: oneshot::Sender<PushVerdict>,
    },
    Pushed {
        repo: RepoId,
        updates: Vec<grasp_core::RefUpdate>,
        refs: Vec<(String, Oid)>,
        /// The pushing client's address.
        client: Option<String>,
        done: oneshot::Sender<()>,
    },
    /// A push's ref advertisement showed these refs (see [`PushAuthorizer::refs_seen`]).
    RefsSeen {
        repo: RepoId,
        refs: Vec<(String, Oid)>,
    },
    View {
        reply: oneshot::Sender<View>,
        /// Whether to include every waiting event and sync entry.
        entries: bool,
    },
    /// Stop: commands queued before it are handled, writes in flight settle, then the
    /// task ends. Explicit because the task's own remote requests hold senders too, so
    /// the channel never closes by itself.
    Shutdown,
}

/// The engine's configuration from the command line.
pub fn engine_config(config: &Config) -> Result<EngineConfig, String> {
    let url = config
        .public_base()
        .parse()
        .map_err(|e| format!("bad public URL: {e}"))?;
    let mut c = EngineConfig::new(url);
    c.purgatory_expiry = config.purgatory_expiry;
    c.prune_delay = config.prune_delay;
    c.announcement_soft_expiry = config.announcement_soft_expiry;
    c.client_delay = config.client_sync_delay;
    c.sync_delay = config.sync_delay;
    c.domain_concurrency = config.domain_concurrency;
    c.domain_rate = config.domain_rate_per_minute;
    c.remote_concurrency = config.max_remote_requests;
    // A fresh key for the engine's hash tables each start (std's keyed hasher draws its
    // keys from the OS): hostile ids cannot be crafted to collide.
    c.hash_seed = std::hash::BuildHasher::hash_one(
        &std::collections::hash_map::RandomState::new(),
        std::process::id(),
    );
    c.limits.repos_per_author = config.max_repos_per_author;
    c.maintainer_model = config.maintainer_model;
    c.limits.waiting_repos_total = config.max_waiting_repos;
    c.limits.repos_per_identifier = config.max_repos_per_identifier;
    c.limits.purgatory_per_author = config.max_purgatory_per_author;
    c.limits.purgatory_bytes_total =
        usize::try_from(config.max_purgatory_bytes).unwrap_or(usize::MAX);
    c.limits.purgatory_bytes_per_author =
        usize::try_from(config.max_purgatory_bytes_per_author).unwrap_or(usize::MAX);
    c.limits.placeholders_per_push = config.max_placeholders_per_push;
    c.limits.placeholders_per_repo = config.max_placeholders_per_repo;
    c.limits.placeholders_per_client = config.max_placeholders_per_address;
    c.limits.placeholders_total = config.max_placeholders;
    c.curation = config.curation();
    c.grasp06 = config.grasp06;
    c.prs_placeholder_expiry = config.prs_placeholder_expiry;
    c.prs_max_waiting_per_author = config.prs_max_waiting_per_author;
    Ok(c)
}

/// The engine task's state: the shared executor with the daemon's backends.
pub(crate) struct Driver {
    exec: Executor<Daemon>,
}

/// A cheap handle to the engine task: the relay's [`EventSink`] and the git endpoint's
/// [`PushAuthorizer`].
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
}

/// The running engine task, for `main`: its end — a panic or a stop nobody asked for —
/// must end the process, and a shutdown must stop it after its writes settle.
#[derive(Debug)]
pub struct EngineTask {
    join: tokio::task::JoinHandle<()>,
    tx: mpsc::Sender<Command>,
}

/// How the engine task ended.
#[derive(Debug, thiserror::Error)]
pub enum TaskEnd {
    /// It panicked (the panic message, when it was a string).
    #[error("the engine task panicked: {0}")]
    Panicked(String),
    /// It was cancelled (the runtime is going down).
    #[error("the engine task was cancelled")]
    Cancelled,
    /// It did not stop within the time given to [`EngineTask::stop`].
    #[error("the engine task did not stop within {0:?}")]
    Stuck(Duration),
}

impl EngineTask {
    /// Waits for the task to end by itself; `Ok` is a clean return, which while
    /// serving means something stopped it that should not have.
    pub async fn ended(&mut self) -> Result<(), TaskEnd> {
        join_outcome((&mut self.join).await)
    }

    /// Asks the task to stop (after every command queued before, once its writes are
    /// durable) and waits up to `grace` for it.
    pub async fn stop(mut self, grace: Duration) -> Result<(), TaskEnd> {
        // A send error means the task has ended already; its join says how.
        let _ = self.tx.send(Command::Shutdown).await;
        match tokio::time::timeout(grace, &mut self.join).await {
            Ok(joined) => join_outcome(joined),
            Err(_) => Err(TaskEnd::Stuck(grace)),
        }
    }
}

fn join_outcome(joined: Result<(), tokio::task::JoinError>) -> Result<(), TaskEnd> {
    match joined {
        Ok(()) => Ok(()),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            Err(TaskEnd::Panicked(message))
        }
        Err(_) => Err(TaskEnd::Cancelled),
    }
}

/// Hydrates an engine from the store and the journal and starts its task.
pub async fn start(
    config: &Config,
    store: Store,
    hub: Hub,
    repos: Repos,
) -> Result<(EngineHandle, EngineTask), Box<dyn std::error::Error + Send + Sync>> {
    let journal = Journal::open(&config.data_dir.join("journal.redb"))?;
    let mut engine = Engine::new(engine_config(config)?);
    let git = GitRepos {
        repos: repos.clone(),
        with_prs: config.grasp06,
    };
    let hydrated =
        grasp_executor::hydrate(&mut engine, clock::now(), &store, &journal, &git).await?;
    tracing::info!(
        stored = hydrated.stored,
        journal = hydrated.journal,
        adopted = hydrated.adopted,
        "engine hydrated"
    );
    let limits = RemoteLimits {
        timeout: config.fetch_timeout,
        allow_private: config.allow_private_addresses,
        max_pack: config.max_push_size,
    };
    let parts = Parts::<Daemon> {
        store,
        journal,
        repos: git,
        remote: GitRemote { repos, limits },
        runtime: Tokio::new(),
        observer: Outlet {
            hub,
            metrics: RuntimeMetrics::default(),
        },
    };
    let mut driver = Driver {
        exec: Executor::new(engine, parts),
    };
    driver.exec.execute().await;
    let (tx, rx) = mpsc::channel(4096);
    let join = tokio::spawn(driver.run(rx));
    Ok((EngineHandle { tx: tx.clone() }, EngineTask { join, tx }))
}

/// What woke the engine task.
enum Woke {
    Command(Option<Command>),
    Executor(grasp_executor::Wake),
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            let woke = tokio::select! {
                biased;
                cmd = rx.recv() => Woke::Command(cmd),
                wake = self.exec.wait() => Woke::Executor(wake),
            };
            match woke {
                Woke::Command(Some(Command::Shutdown) | None) => break,
                Woke::Command(Some(c)) => self.on_command(c).await,
                Woke::Executor(wake) => self.exec.handle(wake).await,
            }
        }
        self.exec.shutdown().await;
        tracing::info!("engine task stopped");
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Event { event, reply } => {
                debug_hooks::on_event();
                self.exec.submit(event, Origin::Client, reply).await;
            }
            Command::Push { request, reply } => {
                let _ = reply.send(self.exec.push_request(&request));
            }
            Command::Pushed {
                repo,
                updates,
                refs,
                client,
                done,
            } => {
                let started = std::time::Instant::now();
                // The push's response waits until its released events are servable.
                self.exec.pushed(repo, updates, refs, client).await;
                self.exec.observer().metrics.push_release(started.elapsed());
                let _ = done.send(());
            }
            Command::RefsSeen { repo, refs } => self.exec.refs_seen(repo, refs).await,
            Command::View { reply, entries } => {
                let metrics = &self.exec.observer().metrics;
                let _ = reply.send(View::of(self.exec.engine(), metrics, entries));
            }
            // `run` ends the loop on it before calling here.
            Command::Shutdown => {}
        }
    }
}

impl EngineHandle {
    /// The operator view and metrics snapshot.
    pub async fn view(&self) -> Option<View> {
        self.snapshot(true).await
    }

    /// The counters and gauges alone, for `/metrics` (no walk of purgatory).
    pub async fn metrics_view(&self) -> Option<View> {
        self.snapshot(false).await
    }

    async fn snapshot(&self, entries: bool) -> Option<View> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::View { reply, entries }).await.ok()?;
        rx.await.ok()
    }
}

#[async_trait]
impl EventSink for EngineHandle {
    async fn submit(&self, event: Event, _origin: ConnId) -> Verdict {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Event { event, reply }).await.is_err() {
            return Verdict::refuse("error: the server is shutting down");
        }
        rx.await
            .unwrap_or_else(|_| Verdict::refuse("error: the server is shutting down"))
    }
}

#[async_trait]
impl PushAuthorizer for EngineHandle {
    async fn authorize_push(
        &self,
        repo: &RepoPath,
        current: &RepoRefs,
        updates: &[RefUpdate],
        client: Option<std::net::IpAddr>,
    ) -> PushDecision {
        let request = PushRequest {
            repo: convert::repo_id(repo),
            current: convert::refs(current),
            updates: updates.iter().map(convert::update).collect(),
            client: client.map(|a| a.to_string()),
        };
        let (reply, rx) = oneshot::channel();
        let refuse_all = |why: &str| {
            updates.iter().fold(PushDecision::accept_all(), |d, u| {
                d.refuse(u.name.clone(), why)
            })
        };
        if self
            .tx
            .send(Command::Push { request, reply })
            .await
            .is_err()
        {
            return refuse_all("the server is shutting down");
        }
        match rx.await {
            Ok(verdict) => {
                verdict
                    .refs
                    .into_iter()
                    .fold(PushDecision::accept_all(), |d, (name, r)| match r {
                        Ok(()) => d,
                        Err(why) => d.refuse(name, why),
                    })
            }
            Err(_) => refuse_all("the server is shutting down"),
        }
    }

    async fn refs_seen(&self, repo: &RepoPath, refs: &RepoRefs) {
        let cmd = Command::RefsSeen {
            repo: convert::repo_id(repo),
            refs: convert::refs(refs),
        };
        // Best effort: a full queue drops it (the check before expiry catches up).
        let _ = self.tx.try_send(cmd);
    }

    async fn after_push(
        &self,
        repo: &RepoPath,
        updates: &[RefUpdate],
        refs: &RepoRefs,
        client: Option<std::net::IpAddr>,
    ) {
        let (done, rx) = oneshot::channel();
        let cmd = Command::Pushed {
            repo: convert::repo_id(repo),
            updates: updates.iter().map(convert::update).collect(),
            refs: convert::refs(refs),
            client: client.map(|a| a.to_string()),
            done,
        };
        if self.tx.send(cmd).await.is_ok() {
            let _ = rx.await;
        }
    }
}
