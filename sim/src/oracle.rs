//! The harness's own reading of events and of who may do what: a small independent model
//! of NIP-34 (announcements, maintainer sets, states, pull requests, deletions), so that
//! invariants never take the engine's word for what is authorized.

use grasp_core::nostr::prelude::{Event, EventId, Kind, PublicKey, Timestamp};
use grasp_core::{Oid, is_branch_or_tag};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What the harness knows of one event it published.
#[derive(Clone, Debug)]
pub enum Facts {
    /// A repository announcement.
    Announcement {
        /// Identifier.
        d: String,
        /// Listed maintainers (other than the owner).
        maintainers: Vec<PublicKey>,
        /// Clone URLs.
        clone: Vec<String>,
    },
    /// A repository state.
    State {
        /// Identifier.
        d: String,
        /// Branches and tags.
        refs: BTreeMap<String, Oid>,
    },
    /// A pull request.
    Pr {
        /// Identifier of the tagged repository.
        d: String,
        /// Tip commit.
        tip: Oid,
        /// Clone URLs.
        clone: Vec<String>,
    },
    /// A deletion of these ids.
    Deletion(Vec<EventId>),
}

fn values<'a>(e: &'a Event, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    e.tags.iter().flat_map(move |t| {
        let s = t.as_slice();
        let hit = s.first().is_some_and(|n| n == name);
        s.iter().skip(1).filter(move |_| hit).map(String::as_str)
    })
}

impl Facts {
    /// Reads an event the workload generated.
    pub fn of(e: &Event) -> Option<Facts> {
        let d = || values(e, "d").next().map(str::to_owned);
        Some(match e.kind {
            Kind::GitRepoAnnouncement => Facts::Announcement {
                d: d()?,
                maintainers: values(e, "maintainers")
                    .filter_map(|v| PublicKey::from_hex(v).ok())
                    .filter(|pk| *pk != e.pubkey)
                    .collect(),
                clone: values(e, "clone").map(str::to_owned).collect(),
            },
            Kind::RepoState => Facts::State {
                d: d()?,
                refs: e
                    .tags
                    .iter()
                    .filter_map(|t| {
                        let s = t.as_slice();
                        let name = s.first().filter(|n| is_branch_or_tag(n))?;
                        Some((name.clone(), Oid::parse(s.get(1)?)?))
                    })
                    .collect(),
            },
            Kind::GitPullRequest => Facts::Pr {
                d: values(e, "a").next()?.rsplit(':').next()?.to_owned(),
                tip: Oid::parse(values(e, "c").next()?)?,
                clone: values(e, "clone").map(str::to_owned).collect(),
            },
            Kind::EventDeletion => Facts::Deletion(
                values(e, "e")
                    .filter_map(|v| EventId::from_hex(v).ok())
                    .collect(),
            ),
            _ => return None,
        })
    }

    /// The identifier the event is about.
    pub fn d(&self) -> Option<&str> {
        match self {
            Facts::Announcement { d, .. } | Facts::State { d, .. } | Facts::Pr { d, .. } => Some(d),
            Facts::Deletion(_) => None,
        }
    }
}

/// The current (accepted, newest) announcement of one owner for one identifier.
#[derive(Clone, Debug)]
pub struct Ann {
    /// Its version.
    pub key: (Timestamp, EventId),
    /// Maintainers it lists.
    pub maintainers: Vec<PublicKey>,
    /// Clone URLs it lists.
    pub clone: Vec<String>,
}

/// Accepted announcements per identifier and owner.
#[derive(Clone, Debug, Default)]
pub struct Authority {
    anns: BTreeMap<String, BTreeMap<PublicKey, Ann>>,
    /// The reciprocal maintainer model (MAINTAINERS.md) rather than the flat rule.
    reciprocal: bool,
}

impl Authority {
    /// An empty model of authority under the engine's maintainer `model`.
    pub fn new(model: grasp_core::MaintainerModel) -> Self {
        Authority {
            anns: BTreeMap::new(),
            reciprocal: model == grasp_core::MaintainerModel::Reciprocal,
        }
    }

    /// Records an accepted announcement; returns whether the maintainer set of `d` changed.
    pub fn accept(
        &mut self,
        e: &Event,
        d: &str,
        maintainers: &[PublicKey],
        clone: &[String],
    ) -> bool {
        let key = (e.created_at, e.id);
        let per_d = self.anns.entry(d.to_owned()).or_default();
        if per_d.get(&e.pubkey).is_some_and(|a| a.key >= key) {
            return false;
        }
        let changed = per_d
            .get(&e.pubkey)
            .is_none_or(|a| a.maintainers != maintainers);
        per_d.insert(
            e.pubkey,
            Ann {
                key,
                maintainers: maintainers.to_vec(),
                clone: clone.to_vec(),
            },
        );
        changed
    }

    /// The keys whose states govern `(owner, d)`: under the reciprocal model (the
    /// workload writes only legacy `maintainers` tags, so the owner seeds), a listed key
    /// joins once its own announcement lists a member back; under the flat rule,
    /// everyone reachable through listings.
    pub fn closure(&self, owner: &PublicKey, d: &str) -> BTreeSet<PublicKey> {
        if !self.reciprocal {
            return self.reachable(owner, d);
        }
        let anns = self.anns.get(d);
        let lists = |a: &PublicKey, b: &PublicKey| {
            anns.and_then(|m| m.get(a))
                .is_some_and(|x| x.maintainers.contains(b))
        };
        let mut set = BTreeSet::from([*owner]);
        loop {
            let joining: Vec<PublicKey> = anns
                .into_iter()
                .flat_map(|m| m.keys())
                .filter(|x| !set.contains(*x))
                .filter(|x| set.iter().any(|k| lists(k, x)) && set.iter().any(|k| lists(x, k)))
                .copied()
                .collect();
            if joining.is_empty() {
                return set;
            }
            set.extend(joining);
        }
    }

    /// Everyone reachable from `owner` through `maintainers` listings.
    fn reachable(&self, owner: &PublicKey, d: &str) -> BTreeSet<PublicKey> {
        let mut set = BTreeSet::from([*owner]);
        let mut queue = VecDeque::from([*owner]);
        let anns = self.anns.get(d);
        while let Some(pk) = queue.pop_front() {
            for m in anns
                .and_then(|a| a.get(&pk))
                .map_or(&[][..], |a| &a.maintainers)
            {
                if set.insert(*m) {
                    queue.push_back(*m);
                }
            }
        }
        set
    }

    /// Owners of `d` whose maintainer set includes `author`.
    pub fn owners_for(&self, author: &PublicKey, d: &str) -> Vec<PublicKey> {
        self.anns
            .get(d)
            .into_iter()
            .flatten()
            .map(|(o, _)| *o)
            .filter(|o| self.closure(o, d).contains(author))
            .collect()
    }

    /// Every clone URL the announcements of `d` list.
    pub fn clone_urls(&self, d: &str) -> BTreeSet<String> {
        self.anns
            .get(d)
            .into_iter()
            .flatten()
            .flat_map(|(_, a)| a.clone.iter().cloned())
            .collect()
    }
}
