//! Scenario building blocks: a server with a connected client, announced and hosted
//! repositories, and the observations tests make (is an event served, what refs does a
//! repository have, where does its HEAD point).

use std::collections::BTreeMap;
use std::time::Duration;

use nostr_sdk::prelude::{Event, EventId, Filter, Keys, PublicKey};

use crate::events::{self, Announcement};
use crate::git::{Git, Work};
use crate::http;
use crate::relay::{OkReply, RelayClient};
use crate::server::{Graspd, Options, npub};

/// How long the server may take to show the effect of something it does "at once"
/// (a release after a push, a repository aligned after a state).
pub const PROMPTLY: Duration = Duration::from_secs(5);

/// A running server and one connected client.
#[derive(Debug)]
pub struct World {
    /// The server.
    pub server: Graspd,
    /// A client connected to it.
    pub relay: RelayClient,
    /// A git environment for ls-remote, clone, fetch.
    pub git: Git,
}

impl World {
    /// A server with the test defaults and a connected client.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// A server started with `options` and a connected client.
    pub async fn start_with(options: Options) -> Self {
        let server = Graspd::start_with(options).await;
        let relay = RelayClient::connect(&server.relay_url()).await;
        Self {
            server,
            relay,
            git: Git::new(),
        }
    }

    /// `server` (already started) with `relay` as its client (a client through a
    /// proxy, or over TLS).
    pub fn with_relay(server: Graspd, relay: RelayClient) -> Self {
        Self {
            server,
            relay,
            git: Git::new(),
        }
    }

    /// Another client connection.
    pub async fn client(&self) -> RelayClient {
        RelayClient::connect(&self.server.relay_url()).await
    }

    /// Publishes `event` on the main connection.
    pub async fn publish(&self, event: &Event) -> OkReply {
        self.relay.publish(event).await
    }

    /// `http://127.0.0.1:<port>/<npub>/<d>.git`.
    pub fn repo_url(&self, owner: &PublicKey, d: &str) -> String {
        self.server.repo_url(owner, d)
    }

    /// An announcement by `owner` listing this server, signed.
    pub fn announcement(&self, owner: &Keys, d: &str, maintainers: &[PublicKey]) -> Event {
        Announcement::on(&self.server, &owner.public_key(), d)
            .maintainers(maintainers)
            .sign(owner)
    }

    /// Publishes a new announcement listing this server and checks it went to
    /// purgatory.
    pub async fn announce(&self, owner: &Keys, d: &str, maintainers: &[PublicKey]) -> Event {
        let event = self.announcement(owner, d, maintainers);
        self.publish(&event)
            .await
            .assert_purgatory(&format!("new announcement of {d}"));
        event
    }

    /// Publishes `event` and checks it went to purgatory.
    pub async fn publish_purgatory(&self, event: &Event, what: &str) {
        self.publish(event).await.assert_purgatory(what);
    }

    /// Whether a REQ by id returns `id`.
    pub async fn is_served(&self, id: EventId) -> bool {
        !self.relay.query_ids(Filter::new().id(id)).await.is_empty()
    }

    /// Panics unless every id is returned by one REQ right now.
    #[track_caller]
    pub fn assert_ids(found: &[EventId], expected: &[EventId], what: &str) {
        for id in expected {
            assert!(
                found.contains(id),
                "{what}: {id} not returned (got {found:?})"
            );
        }
    }

    /// Waits until a REQ by id returns every id in `ids`.
    pub async fn wait_served(&self, ids: &[EventId], what: &str) {
        let filter = Filter::new().ids(ids.iter().copied());
        crate::eventually(PROMPTLY, what, || {
            let filter = filter.clone();
            async move {
                let found = self.relay.query_ids(filter).await;
                ids.iter().all(|id| found.contains(id)).then_some(())
            }
        })
        .await;
    }

    /// Panics if a REQ by id returns `id`.
    pub async fn assert_not_served(&self, id: EventId, what: &str) {
        assert!(
            !self.is_served(id).await,
            "{what}: event {id} is served but must not be"
        );
    }

    /// `GET <repo>/info/refs?service=git-upload-pack` (protocol v0: no Git-Protocol).
    pub async fn info_refs(&self, owner: &PublicKey, d: &str) -> http::Response {
        let url = format!(
            "{}/info/refs?service=git-upload-pack",
            self.repo_url(owner, d)
        );
        http::get(&url, &[]).await.expect("info/refs request")
    }

    /// Whether the repository answers `info/refs` with 200.
    pub async fn repo_exists(&self, owner: &PublicKey, d: &str) -> bool {
        self.info_refs(owner, d).await.status == 200
    }

    /// The refs the repository advertises (ref name → oid, `HEAD` included if set).
    pub async fn refs(&self, owner: &PublicKey, d: &str) -> BTreeMap<String, String> {
        self.git.ls_remote(&self.repo_url(owner, d)).await
    }

    /// Where HEAD points, from the v0 advertisement's `symref=HEAD:<ref>` capability.
    pub async fn head_symref(&self, owner: &PublicKey, d: &str) -> Option<String> {
        let text = self.info_refs(owner, d).await.text();
        text.split([' ', '\0', '\n'])
            .find_map(|cap| cap.strip_prefix("symref=HEAD:"))
            .map(str::to_owned)
    }

    /// Waits until the repository's branches and tags (not `HEAD`, not `refs/nostr/`)
    /// are exactly `expected`.
    pub async fn wait_refs(&self, owner: &PublicKey, d: &str, expected: &[(&str, &str)]) {
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(n, o)| ((*n).to_owned(), (*o).to_owned()))
            .collect();
        let deadline = tokio::time::Instant::now() + PROMPTLY;
        let last = loop {
            let refs: BTreeMap<String, String> = self
                .refs(owner, d)
                .await
                .into_iter()
                .filter(|(n, _)| n.starts_with("refs/heads/") || n.starts_with("refs/tags/"))
                .collect();
            if refs == expected {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                break refs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        panic!(
            "refs of {}/{d}.git are {last:?}, expected {expected:?}",
            npub(owner)
        );
    }

    /// A repository announced by `owner` (listing `maintainers`), with one commit on
    /// `main`, a state naming it, and that commit pushed: everything released and served.
    pub async fn hosted(&self, owner: &Keys, d: &str, maintainers: &[PublicKey]) -> Hosted {
        let announcement = self.announce(owner, d, maintainers).await;
        let work = Work::init().await;
        let main = work.commit("initial commit").await;
        let state = events::main_state(owner, d, &main, events::at(-60));
        self.publish_purgatory(&state, "state of a new repository")
            .await;
        let url = self.repo_url(&owner.public_key(), d);
        work.push(&url, &["main"])
            .await
            .expect_ok("push of the state's commit");
        self.wait_served(
            &[announcement.id, state.id],
            "announcement and state released by the push",
        )
        .await;
        Hosted {
            owner: owner.clone(),
            d: d.to_owned(),
            url,
            work,
            announcement,
            state,
            main,
        }
    }

    /// A repository for the HTTP-surface scenarios, announced the real way; with
    /// `commit` it also has a commit on `main` (state + push).
    pub async fn http_repo(&self, owner: &Keys, d: &str, commit: bool) -> (Work, String) {
        let work = Work::init().await;
        let url = self.repo_url(&owner.public_key(), d);
        let announcement = self.announcement(owner, d, &[]);
        let ok = self.publish(&announcement).await;
        ok.assert_purgatory("new announcement");
        if commit {
            let main = work.commit("initial commit").await;
            let state = events::main_state(owner, d, &main, events::at(-60));
            self.publish_purgatory(&state, "state").await;
            work.push(&url, &["main"]).await.expect_ok("push");
        }
        (work, url)
    }
}

/// A repository hosted on the server with one released state (see [`World::hosted`]).
#[derive(Debug)]
pub struct Hosted {
    /// The owner.
    pub owner: Keys,
    /// The identifier.
    pub d: String,
    /// The clone URL on the server.
    pub url: String,
    /// The local working repository (on `main`, at [`Hosted::main`]).
    pub work: Work,
    /// The released announcement.
    pub announcement: Event,
    /// The released state.
    pub state: Event,
    /// The commit `main` points at.
    pub main: String,
}

impl Hosted {
    /// The owner's public key.
    pub fn owner_pk(&self) -> PublicKey {
        self.owner.public_key()
    }

    /// `30617:<owner>:<d>`.
    pub fn coordinate(&self) -> String {
        events::coordinate(&self.owner.public_key(), &self.d)
    }
}

/// A random 64-hex string (for `refs/nostr/<id>` of events that do not exist).
pub fn random_event_id() -> String {
    let keys = Keys::generate();
    events::note(&keys, "placeholder", Vec::new()).id.to_hex()
}
