//! Assembling the daemon: data directories, store, hub, router, listener, shutdown.
//!
//! Split from `main` so that tests (and the engine wiring) can start a complete server
//! in-process on an ephemeral port with their own [`EventSink`] and [`PushAuthorizer`].

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::git_http::{GitHttp, PushAuthorizer};
use crate::http::{AppState, Nip11Document, nip05_routes, router, under_base_path};
use crate::listener::{self, ConnLimits};
use crate::pages::landing_page;
use crate::relay::{EventSink, Hub, Relay, RelayLimits};
use crate::repo::Repos;
use crate::store::{Store, StoreError};

/// How long in-flight requests (a push, a clone) may run after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A failure while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The event store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The opened, not yet serving, daemon.
#[derive(Debug)]
pub struct Server {
    config: Arc<Config>,
    store: Store,
    hub: Hub,
    repos: Repos,
    extra: Router,
}

impl Server {
    /// Creates the data directories and opens the event store.
    pub async fn open(config: Config) -> Result<Self, StartError> {
        for dir in [
            config.data_dir.clone(),
            config.events_dir(),
            config.repos_dir(),
        ] {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|source| StartError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
        }
        // Before anything reads the repositories: no git child of a killed graspd may
        // still be moving refs, and its quarantines go.
        let repos_dir = config.repos_dir();
        let _ =
            tokio::task::spawn_blocking(move || crate::children::clean_leftovers(&repos_dir)).await;
        let store = Store::open(&config.events_dir()).await?;
        let repos = Repos::with_prune_grace(config.repos_dir(), config.prune_grace);
        if config.grasp06 {
            crate::prs::start(&config, &repos)
                .await
                .map_err(|source| StartError::DataDir {
                    path: config.data_dir.join("prs").display().to_string(),
                    source,
                })?;
        }
        Ok(Self {
            config: Arc::new(config),
            store,
            hub: Hub::default(),
            repos,
            extra: Router::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The event store (for the engine driver: hydration, storing released events).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The live-event hub (for the engine driver: publish after storing).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Adds routes served beside the relay and git (e.g. `/metrics`).
    pub fn add_routes(&mut self, routes: Router) {
        let extra = std::mem::take(&mut self.extra);
        self.extra = extra.merge(routes);
    }

    /// The bare repositories.
    pub fn repos(&self) -> &Repos {
        &self.repos
    }

    /// The router, with `sink` deciding events and `authorizer` deciding pushes.
    pub fn router(&self, sink: Arc<dyn EventSink>, authorizer: Arc<dyn PushAuthorizer>) -> Router {
        let config = &self.config;
        let limits = RelayLimits::from_config(config);
        let nip11 = Nip11Document::new(config, &limits);
        let relay = Arc::new(Relay::new(
            self.store.clone(),
            self.hub.clone(),
            sink,
            limits,
        ));
        let mut git = GitHttp::new(
            self.repos.clone(),
            authorizer,
            &crate::git_http::GitLimits::from_config(config),
            config.public_base(),
        );
        if config.grasp06 {
            git = git.with_prs(crate::git_http::prs::PrsHttp::new(
                crate::prs::template_dir(config),
                crate::prs::PrsLimits::from_config(config),
            ));
        }
        let git = Arc::new(git);
        let landing = landing_page(
            &config.relay_name,
            &config.relay_description,
            &config.public_base(),
            &config.relay_url(),
        );
        let networks = Arc::new(crate::client::Networks {
            trusted_proxies: config.trusted_proxies.clone(),
            operators: config.metrics_allow.clone(),
        });
        let app = router(
            AppState::new(relay, git, &nip11, landing),
            self.extra.clone().merge(nip05_routes(config)),
        )
        .layer(axum::middleware::from_fn_with_state(
            networks,
            crate::client::resolve,
        ));
        under_base_path(&config.base_path(), app)
    }

    /// The connection limits: the configured ones, the connection cap defaulting to
    /// half the open-file limit (raised to the hard limit here) after a reserve.
    pub fn conn_limits(&self) -> ConnLimits {
        let nofile = listener::raise_fd_limit().unwrap_or(1024);
        let max_connections = self
            .config
            .max_connections
            .unwrap_or_else(|| listener::default_max_connections(nofile));
        let room = nofile.saturating_sub(listener::FD_RESERVE);
        if u64::try_from(max_connections).unwrap_or(u64::MAX) > room {
            tracing::warn!(
                max_connections,
                nofile,
                "--max-connections is above the open-file limit less {}: new connections \
                 may fail with `too many open files` before the cap refuses them",
                listener::FD_RESERVE
            );
        }
        ConnLimits {
            max_connections,
            per_client: self.config.max_connections_per_client,
            trusted_proxies: self.config.trusted_proxies.clone(),
            header_timeout: self.config.header_timeout,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight requests
    /// finish for up to [`SHUTDOWN_GRACE`].
    pub async fn serve(
        &self,
        listener: TcpListener,
        sink: Arc<dyn EventSink>,
        authorizer: Arc<dyn PushAuthorizer>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let app = self.router(sink, authorizer);
        let limits = self.conn_limits();
        tracing::info!(
            max_connections = limits.max_connections,
            per_client = limits.per_client,
            "connection limits"
        );
        listener::serve(listener, app, limits, shutdown).await
    }
}
