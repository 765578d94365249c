//! Test harness for engine-level tests: signed events, a fake local git store that executes
//! the local effects, and helpers that fail with a sentence.
#![allow(dead_code)]

use grasp_core::nostr::prelude::{
    Event, EventBuilder, EventId, FinalizeEvent, Keys, Kind, Tag, Timestamp,
};
use grasp_core::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const OUR: &str = "http://grasp.test";
pub const RELAY: &str = "ws://grasp.test";

/// A deterministic key from a small number.
pub fn key(n: u64) -> Keys {
    Keys::parse(&format!("{:064x}", n + 1)).unwrap()
}

/// An object id made from a label, e.g. `oid(1)`.
pub fn oid(n: u64) -> Oid {
    Oid::parse(&format!("{n:040x}")).unwrap()
}

pub fn sign(keys: &Keys, kind: Kind, created_at: u64, tags: Vec<Vec<String>>) -> Event {
    let tags = tags.into_iter().map(|t| Tag::parse(t).unwrap());
    EventBuilder::new(kind, "")
        .tags(tags)
        .custom_created_at(Timestamp::from_secs(created_at))
        .finalize(keys)
        .unwrap()
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub fn our_clone(owner: &Keys, d: &str) -> String {
    format!("{OUR}/{}/{d}.git", npub(&owner.public_key()))
}

/// An announcement by `owner` for `d` listing us, extra clone URLs and maintainers.
pub fn announcement(
    owner: &Keys,
    d: &str,
    at: u64,
    clones: &[&str],
    maintainers: &[&Keys],
) -> Event {
    let mut clone = vec!["clone".to_string(), our_clone(owner, d)];
    clone.extend(clones.iter().map(|c| c.to_string()));
    let mut tags = vec![s(&["d", d]), clone, s(&["relays", RELAY])];
    if !maintainers.is_empty() {
        let mut m = vec!["maintainers".to_string()];
        m.extend(maintainers.iter().map(|k| k.public_key().to_hex()));
        tags.push(m);
    }
    sign(owner, Kind::GitRepoAnnouncement, at, tags)
}

/// A state by `author` for `d` with the given refs and HEAD.
/// An announcement by `author` of `d` that does not list this server (a maintainer's
/// own), carrying `tags` (membership tags: `maintainers`, `M`, `m`, `o`).
pub fn elsewhere(author: &Keys, d: &str, at: u64, tags: &[Vec<String>]) -> Event {
    let mut all = vec![
        s(&["d", d]),
        s(&["clone", &format!("https://elsewhere.example/{d}.git")]),
    ];
    all.extend(tags.iter().cloned());
    sign(author, Kind::GitRepoAnnouncement, at, all)
}

/// A `maintainers` tag listing `keys`.
pub fn maintainers_tag(keys: &[&Keys]) -> Vec<String> {
    let mut t = vec!["maintainers".to_owned()];
    t.extend(keys.iter().map(|k| k.public_key().to_hex()));
    t
}

pub fn state(author: &Keys, d: &str, at: u64, refs: &[(&str, Oid)], head: Option<&str>) -> Event {
    let mut tags = vec![s(&["d", d])];
    for (name, o) in refs {
        tags.push(vec![name.to_string(), o.to_string()]);
    }
    if let Some(h) = head {
        tags.push(s(&["HEAD", &format!("ref: {h}")]));
    }
    sign(author, Kind::RepoState, at, tags)
}

/// A pull request by `author` tagging `(owner, d)` with tip `tip`.
pub fn pull_request(
    author: &Keys,
    owner: &Keys,
    d: &str,
    at: u64,
    tip: &str,
    clones: &[&str],
) -> Event {
    let mut tags = vec![
        s(&["a", &format!("30617:{}:{d}", owner.public_key().to_hex())]),
        s(&["c", tip]),
    ];
    if !clones.is_empty() {
        let mut c = vec!["clone".to_string()];
        c.extend(clones.iter().map(|x| x.to_string()));
        tags.push(c);
    }
    sign(author, Kind::GitPullRequest, at, tags)
}

pub fn repo(owner: &Keys, d: &str) -> RepoId {
    RepoId::new(owner.public_key(), d)
}

/// A request the engine made to a remote, waiting for the test to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    ListRefs {
        request: RequestId,
        url: String,
        at: Time,
    },
    Fetch {
        request: RequestId,
        url: String,
        into: RepoId,
        oids: Vec<Oid>,
        at: Time,
    },
}

impl Remote {
    pub fn request(&self) -> RequestId {
        match self {
            Remote::ListRefs { request, .. } | Remote::Fetch { request, .. } => *request,
        }
    }
    pub fn url(&self) -> &str {
        match self {
            Remote::ListRefs { url, .. } | Remote::Fetch { url, .. } => url,
        }
    }
}

/// The engine plus fake local repositories, event store and journal.
pub struct Harness {
    pub engine: Engine,
    pub now: Time,
    pub objects: BTreeMap<RepoId, BTreeSet<Oid>>,
    pub refs: BTreeMap<RepoId, BTreeMap<String, Oid>>,
    pub heads: BTreeMap<RepoId, String>,
    pub stored: Vec<(Event, ServePath)>,
    pub deleted: Vec<Effect>,
    pub journal: BTreeMap<String, JournalRecord>,
    pub replies: BTreeMap<EventId, Vec<(bool, String)>>,
    pub remote: Vec<Remote>,
    /// Every effect, in order, with its time (for traces and snapshots).
    pub trace: Vec<(Time, Effect)>,
    /// The address pushes come from.
    pub client: Option<String>,
    /// Answer object checks later ([`Harness::answer_checks`]) rather than at once, with
    /// what the repositories held when the check was asked (a driver reads them then).
    pub hold_checks: bool,
    /// Checks asked and not answered yet, with their answers.
    pub held_checks: Vec<(CheckId, Vec<(Oid, RepoId)>)>,
    next_token: u64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::new(OUR.parse().unwrap()))
    }

    /// An engine under the flat maintainer rule (`--maintainer-model listed`): a listed
    /// key is a maintainer without listing anyone back.
    pub fn listed() -> Self {
        let mut config = Config::new(OUR.parse().unwrap());
        config.maintainer_model = grasp_core::MaintainerModel::Listed;
        Self::with_config(config)
    }

    pub fn with_config(config: Config) -> Self {
        let mut h = Harness {
            engine: Engine::new(config),
            now: Time::from_millis(1_000_000),
            objects: BTreeMap::new(),
            refs: BTreeMap::new(),
            heads: BTreeMap::new(),
            stored: Vec::new(),
            deleted: Vec::new(),
            journal: BTreeMap::new(),
            replies: BTreeMap::new(),
            remote: Vec::new(),
            trace: Vec::new(),
            client: None,
            hold_checks: false,
            held_checks: Vec::new(),
            next_token: 0,
        };
        h.input(Input::Hydrated);
        h
    }

    pub fn input(&mut self, input: Input) {
        self.engine.handle_input(self.now, input);
        self.drain();
    }

    /// Sends an event from a client; returns its OK (the last reply for it).
    pub fn send(&mut self, e: &Event) -> (bool, String) {
        self.send_from(e, Origin::Client)
    }

    /// Sends an event from a client without waiting for its OK (held behind a check).
    pub fn post(&mut self, e: &Event) {
        self.next_token += 1;
        self.input(Input::Event {
            token: ReplyToken(self.next_token),
            event: VerifiedEvent::verify(e.clone()).expect("test events are signed"),
            origin: Origin::Client,
            received_at: Timestamp::from_secs(2_000_000_000),
            peer: None,
        });
    }

    pub fn send_from(&mut self, e: &Event, origin: Origin) -> (bool, String) {
        self.next_token += 1;
        let received_at = Timestamp::from_secs(2_000_000_000);
        self.input(Input::Event {
            token: ReplyToken(self.next_token),
            event: VerifiedEvent::verify(e.clone()).expect("test events are signed"),
            origin,
            received_at,
            peer: None,
        });
        self.replies
            .get(&e.id)
            .and_then(|v| v.last().cloned())
            .unwrap_or_else(|| panic!("the engine sent no OK for event {} (kind {})", e.id, e.kind))
    }

    /// Executes effects the way a driver would; local git work is applied to the fake store.
    pub fn drain(&mut self) {
        while let Some(effect) = self.engine.poll_effect() {
            self.trace.push((self.now, effect.clone()));
            match effect {
                Effect::Reply {
                    event_id,
                    accepted,
                    message,
                    ..
                } => self
                    .replies
                    .entry(event_id)
                    .or_default()
                    .push((accepted, message)),
                Effect::StoreEvent { event, path } => self.stored.push((*event, path)),
                e @ Effect::DeleteEvents { .. } => self.deleted.push(e),
                Effect::CreateRepo { repo } => {
                    self.objects.entry(repo.clone()).or_default();
                    self.refs.entry(repo).or_default();
                }
                Effect::DeleteRepo { repo } => {
                    self.objects.remove(&repo);
                    self.refs.remove(&repo);
                    self.heads.remove(&repo);
                }
                Effect::CheckObjects { check, repos, oids } => {
                    let mut found = Vec::new();
                    for o in oids {
                        if let Some(r) = repos
                            .iter()
                            .find(|r| self.objects.get(*r).is_some_and(|s| s.contains(&o)))
                        {
                            found.push((o, r.clone()));
                        }
                    }
                    if self.hold_checks {
                        self.held_checks.push((check, found));
                    } else {
                        self.engine
                            .handle_input(self.now, Input::ObjectsChecked { check, found });
                    }
                }
                Effect::ListRefs { request, url, .. } => self.remote.push(Remote::ListRefs {
                    request,
                    url,
                    at: self.now,
                }),
                Effect::Fetch {
                    request,
                    url,
                    into,
                    oids,
                    ..
                } => self.remote.push(Remote::Fetch {
                    request,
                    url,
                    into,
                    oids,
                    at: self.now,
                }),
                Effect::CopyObjects { from, to, oids } => {
                    for o in oids {
                        assert!(
                            self.objects.get(&from).is_some_and(|s| s.contains(&o)),
                            "the engine asked to copy {o} from {from}, which does not have it"
                        );
                        self.objects.entry(to.clone()).or_default().insert(o);
                    }
                }
                Effect::AlignRepo { repo, refs, head } => {
                    for (name, o) in &refs {
                        assert!(
                            self.objects.get(&repo).is_some_and(|s| s.contains(o)),
                            "the engine aligned {repo} {name} to {o}, which the repo does not have"
                        );
                    }
                    let r = self.refs.entry(repo.clone()).or_default();
                    r.retain(|n, _| !is_branch_or_tag(n));
                    r.extend(refs);
                    if let Some(h) = head.filter(|h| r.contains_key(h)) {
                        self.heads.insert(repo, h);
                    }
                }
                Effect::SetRef { repo, name, target } => {
                    let r = self.refs.entry(repo).or_default();
                    match target {
                        Some(o) => r.insert(name, o),
                        None => r.remove(&name),
                    };
                }
                Effect::PruneObjects { repo, keep } => {
                    // As `git prune`: what no ref names and `keep` does not list goes.
                    let refs = self.refs.get(&repo).cloned().unwrap_or_default();
                    if let Some(objects) = self.objects.get_mut(&repo) {
                        objects.retain(|o| keep.contains(o) || refs.values().any(|r| r == o));
                    }
                }
                Effect::Persist { record } => {
                    self.journal.insert(record.key().to_string(), record);
                }
                Effect::Forget { key } => {
                    self.journal.remove(&key.to_string());
                }
                // Relay sync is off in these worlds (`RelaySync::enabled`).
                Effect::PeerConnect { .. }
                | Effect::PeerDisconnect { .. }
                | Effect::PeerReq { .. }
                | Effect::PeerClose { .. } => {}
            }
        }
    }

    /// Answers every held object check, in the order asked.
    pub fn answer_checks(&mut self) {
        for (check, found) in std::mem::take(&mut self.held_checks) {
            self.input(Input::ObjectsChecked { check, found });
        }
    }

    /// Moves time forward by `d`, firing every deadline on the way, in order.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now.plus(d);
        while let Some(t) = self.engine.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.engine.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.engine.handle_timeout(self.now);
        self.drain();
    }

    /// A push of `updates` (`(ref, new)`) to `repo`: decided, and if accepted, applied
    /// (objects land first, as git does) and reported.
    pub fn push(&mut self, repo: &RepoId, updates: &[(&str, Option<Oid>)]) -> PushVerdict {
        let current: Vec<(String, Oid)> = self
            .refs
            .get(repo)
            .map(|r| r.iter().map(|(n, o)| (n.clone(), *o)).collect())
            .unwrap_or_default();
        let updates: Vec<RefUpdate> = updates
            .iter()
            .map(|(n, new)| RefUpdate {
                name: n.to_string(),
                old: self.refs.get(repo).and_then(|r| r.get(*n)).copied(),
                new: *new,
            })
            .collect();
        let request = PushRequest {
            repo: repo.clone(),
            current,
            updates: updates.clone(),
            client: self.client.clone(),
        };
        let verdict = self.engine.handle_push_request(self.now, &request);
        if verdict.is_accepted() {
            let r = self.refs.entry(repo.clone()).or_default();
            for u in &updates {
                match u.new {
                    Some(o) => {
                        r.insert(u.name.clone(), o);
                        self.objects.entry(repo.clone()).or_default().insert(o);
                    }
                    None => {
                        r.remove(&u.name);
                    }
                }
            }
            let refs = self.refs[repo]
                .iter()
                .map(|(n, o)| (n.clone(), *o))
                .collect();
            self.input(Input::PushApplied {
                repo: repo.clone(),
                updates,
                refs,
                client: self.client.clone(),
            });
        }
        verdict
    }

    pub fn is_stored(&self, id: &EventId) -> bool {
        self.stored.iter().any(|(e, _)| e.id == *id)
    }

    pub fn stored_count(&self, id: &EventId) -> usize {
        self.stored.iter().filter(|(e, _)| e.id == *id).count()
    }

    /// Removes the pending request with this id.
    pub fn take_request(&mut self, request: RequestId) -> Remote {
        let i = self
            .remote
            .iter()
            .position(|r| r.request() == request)
            .expect("request is pending");
        self.remote.remove(i)
    }

    /// Answers a pending request: a listing with the refs of `has`, or a fetch of what it
    /// asked that `has` holds; `ok == false` fails it.
    pub fn answer(&mut self, r: Remote, ok: bool, has: &[Oid]) {
        let r = self.take_request(r.request());
        if !ok {
            let failure = Failure {
                kind: FailureKind::NotOurRef,
                detail: "test".into(),
            };
            return self.input(Input::RequestFailed {
                request: r.request(),
                failure,
            });
        }
        match r {
            Remote::ListRefs { request, .. } => {
                let refs = has
                    .iter()
                    .map(|o| (format!("refs/heads/{o}"), *o))
                    .collect();
                self.input(Input::RefsListed { request, refs });
            }
            Remote::Fetch {
                request,
                into,
                oids,
                url,
                ..
            } => {
                assert!(
                    oids.iter().all(|o| has.contains(o)),
                    "asked {url} for {oids:?}, which it never advertised"
                );
                self.objects
                    .entry(into)
                    .or_default()
                    .extend(oids.iter().copied());
                self.input(Input::Fetched {
                    request,
                    present: oids,
                    bytes: 100,
                });
            }
        }
    }

    /// Takes the oldest pending remote request for `url`.
    pub fn take_remote(&mut self, url: &str) -> Remote {
        let i = self
            .remote
            .iter()
            .position(|r| r.url() == url)
            .unwrap_or_else(|| {
                panic!("no request to {url} is pending; pending: {:?}", self.remote)
            });
        self.remote.remove(i)
    }

    pub fn answer_list(&mut self, url: &str, refs: &[(&str, Oid)]) {
        let Remote::ListRefs { request, .. } = self.take_remote(url) else {
            panic!("expected a ListRefs to {url} first")
        };
        let refs = refs.iter().map(|(n, o)| (n.to_string(), *o)).collect();
        self.input(Input::RefsListed { request, refs });
    }

    /// Answers a pending Fetch to `url` by delivering the asked objects the server `has`.
    pub fn answer_fetch(&mut self, url: &str, has: &[Oid]) -> Vec<Oid> {
        let Remote::Fetch {
            request,
            into,
            oids,
            ..
        } = self.take_remote(url)
        else {
            panic!("expected a Fetch to {url}")
        };
        let got: Vec<Oid> = oids.iter().filter(|o| has.contains(o)).copied().collect();
        self.objects
            .entry(into)
            .or_default()
            .extend(got.iter().copied());
        self.input(Input::Fetched {
            request,
            present: got.clone(),
            bytes: 100,
        });
        oids
    }

    pub fn fail(&mut self, url: &str, kind: FailureKind) {
        let r = self.take_remote(url);
        self.input(Input::RequestFailed {
            request: r.request(),
            failure: Failure {
                kind,
                detail: "test".into(),
            },
        });
    }

    /// Restarts: a new engine hydrated from the stored events and the journal, at `now`.
    pub fn restart(&mut self, config: Config) {
        let mut engine = Engine::new(config);
        for (e, _) in &self.stored {
            engine.handle_input(
                self.now,
                Input::Stored(VerifiedEvent::assume_verified(e.clone())),
            );
        }
        for r in self.journal.values() {
            engine.handle_input(self.now, Input::Restore(r.clone()));
        }
        engine.handle_input(self.now, Input::Hydrated);
        self.engine = engine;
        self.remote.clear();
        self.drain();
    }
}

/// Fails with a sentence unless the OK matches.
#[track_caller]
pub fn assert_ok(got: (bool, String), accepted: bool, prefix: &str) {
    assert!(
        got.0 == accepted && got.1.starts_with(prefix),
        "expected OK {accepted} with a message starting {prefix:?}, got OK {} {:?}",
        got.0,
        got.1
    );
}

/// Fails with a sentence unless the effects emitted since `from` contain the expected ones
/// (by their Debug shape), in order.
#[track_caller]
pub fn assert_effects(h: &Harness, from: usize, expected: &[&str]) {
    let got: Vec<String> = h.trace[from..]
        .iter()
        .map(|(_, e)| format!("{e:?}"))
        .collect();
    let mut i = 0;
    for want in expected {
        match got[i..].iter().position(|g| g.starts_with(want)) {
            Some(p) => i += p + 1,
            None => panic!(
                "expected an effect starting {want:?} after the ones matched so far, but the effects were:\n{}",
                got.join("\n")
            ),
        }
    }
}

pub const PURGATORY: &str = "purgatory: won't be served until git data arrives";

pub fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}
