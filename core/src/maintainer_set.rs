//! The maintainer sets of one coordinate (owner, d): who may be a maintainer, whose states
//! count, and who is only invited (MAINTAINERS.md). One function computes them under
//! either model, so nothing else knows which model is on.

use crate::membership::Membership;
use nostr::prelude::PublicKey;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Which rule makes a key a maintainer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaintainerModel {
    /// MAINTAINERS.md: a listing counts once the listed key's own announcement lists a
    /// confirmed maintainer back; role tags (`M`/`m`/`o`) when present.
    #[default]
    Reciprocal,
    /// The flat recursive rule of older servers: everyone reachable through listings.
    Listed,
}

impl MaintainerModel {
    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MaintainerModel::Reciprocal => "reciprocal",
            MaintainerModel::Listed => "listed",
        }
    }
}

/// Why a coordinate has no confirmed maintainer at all (nobody may push: fail closed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NoSeed {
    /// The lead chain ends at a key whose announcement does not name itself lead.
    PendingLead(PublicKey),
    /// An announcement on the lead chain names more than one active lead.
    ConflictingLeads(PublicKey),
    /// The lead chain returns to a key already seen.
    Cycle,
    /// The owner declines its own repository.
    OwnerDeclines,
}

impl NoSeed {
    /// The operator-facing reason.
    pub(crate) fn describe(&self) -> String {
        match self {
            NoSeed::PendingLead(pk) => format!(
                "the lead {} has not accepted: its announcement must name itself as lead (M)",
                pk.to_hex()
            ),
            NoSeed::ConflictingLeads(pk) => {
                format!("{} names more than one active lead (M)", pk.to_hex())
            }
            NoSeed::Cycle => "the lead (M) records form a cycle".to_owned(),
            NoSeed::OwnerDeclines => "the owner declines its own repository".to_owned(),
        }
    }
}

/// The sets of one coordinate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MaintainerSets {
    /// Reachable through listings, before declines are removed: whose announcements may
    /// be stored without listing this server.
    reach: BTreeSet<PublicKey>,
    /// `reach` without the keys that decline: whose states are accepted.
    candidates: BTreeSet<PublicKey>,
    /// Whose states are authoritative, whose pushes count.
    confirmed: BTreeSet<PublicKey>,
    /// Listed by a confirmed maintainer, not confirmed, not declining.
    invited: BTreeSet<PublicKey>,
    /// Why `confirmed` is empty, if it is.
    no_seed: Option<NoSeed>,
}

impl MaintainerSets {
    /// The sets of a coordinate whose owner stands alone (no one else listed): kept
    /// implicit, so a stranger's repository costs no set of its own.
    pub(crate) fn alone(owner: PublicKey) -> Self {
        let one = BTreeSet::from([owner]);
        MaintainerSets {
            reach: one.clone(),
            candidates: one.clone(),
            confirmed: one,
            invited: BTreeSet::new(),
            no_seed: None,
        }
    }

    /// Computes the sets of `(owner, d)` from the latest announcement of each author of
    /// `d`, under `model`.
    pub(crate) fn compute(
        owner: PublicKey,
        anns: &BTreeMap<PublicKey, &Membership>,
        model: MaintainerModel,
    ) -> Self {
        match model {
            MaintainerModel::Listed => Self::flat(owner, anns),
            MaintainerModel::Reciprocal => Self::reciprocal(owner, anns),
        }
    }

    fn flat(owner: PublicKey, anns: &BTreeMap<PublicKey, &Membership>) -> Self {
        let set = closure(owner, |pk| anns.get(pk).map(|m| m.flat()));
        MaintainerSets {
            reach: set.clone(),
            candidates: set.clone(),
            confirmed: set,
            invited: BTreeSet::new(),
            no_seed: None,
        }
    }

    fn reciprocal(owner: PublicKey, anns: &BTreeMap<PublicKey, &Membership>) -> Self {
        let listed = |pk: &PublicKey| anns.get(pk).and_then(|m| m.listed());
        let declines = |pk: &PublicKey| anns.get(pk).is_some_and(|m| m.declines());
        let reach = closure(owner, listed);
        let candidates: BTreeSet<PublicKey> =
            reach.iter().copied().filter(|pk| !declines(pk)).collect();
        let (confirmed, no_seed) = match seed(owner, anns) {
            Ok(seed) => {
                let mut k = BTreeSet::from([seed]);
                // The fixpoint: x joins when a member lists x and x lists a member.
                loop {
                    let joining: Vec<PublicKey> = candidates
                        .iter()
                        .filter(|x| !k.contains(*x))
                        .filter(|x| k.iter().any(|m| anns.get(m).is_some_and(|a| a.lists(x))))
                        .filter(|x| listed(x).is_some_and(|l| l.iter().any(|m| k.contains(m))))
                        .copied()
                        .collect();
                    if joining.is_empty() {
                        break;
                    }
                    k.extend(joining);
                }
                (k, None)
            }
            Err(why) => (BTreeSet::new(), Some(why)),
        };
        let invited = confirmed
            .iter()
            .filter_map(listed)
            .flatten()
            .filter(|x| !confirmed.contains(*x) && !declines(x))
            .copied()
            .collect();
        MaintainerSets {
            reach,
            candidates,
            confirmed,
            invited,
            no_seed,
        }
    }

    /// Whether these sets say no more than [`MaintainerSets::alone`].
    pub(crate) fn is_alone(&self, owner: &PublicKey) -> bool {
        *self == Self::alone(*owner)
    }

    /// Whether `pk` is reachable through listings (declines not removed).
    pub(crate) fn reaches(&self, pk: &PublicKey) -> bool {
        self.reach.contains(pk)
    }

    /// Whether `pk` may be a maintainer: its states are accepted.
    pub(crate) fn is_candidate(&self, pk: &PublicKey) -> bool {
        self.candidates.contains(pk)
    }

    /// Whether `pk` is a confirmed maintainer: its states are authoritative.
    pub(crate) fn is_confirmed(&self, pk: &PublicKey) -> bool {
        self.confirmed.contains(pk)
    }

    /// The confirmed maintainers.
    pub(crate) fn confirmed(&self) -> &BTreeSet<PublicKey> {
        &self.confirmed
    }

    /// Whether `pk` is invited but has not accepted.
    pub(crate) fn is_invited(&self, pk: &PublicKey) -> bool {
        self.invited.contains(pk)
    }

    /// The invited keys.
    pub(crate) fn invited(&self) -> &BTreeSet<PublicKey> {
        &self.invited
    }

    /// Why nobody is confirmed, if so.
    pub(crate) fn no_seed(&self) -> Option<&NoSeed> {
        self.no_seed.as_ref()
    }
}

/// Everyone reachable from `start` through `next` (cycle-safe).
fn closure<'a>(
    start: PublicKey,
    next: impl Fn(&PublicKey) -> Option<&'a [PublicKey]>,
) -> BTreeSet<PublicKey> {
    let mut set = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(pk) = queue.pop_front() {
        for x in next(&pk).into_iter().flatten() {
            if set.insert(*x) {
                queue.push_back(*x);
            }
        }
    }
    set
}

/// The one key trusted without reciprocity, following the lead (`M`) chain from `owner`.
fn seed(owner: PublicKey, anns: &BTreeMap<PublicKey, &Membership>) -> Result<PublicKey, NoSeed> {
    let mut cur = owner;
    let mut followed = false;
    let mut seen = BTreeSet::new();
    loop {
        if !seen.insert(cur) {
            return Err(NoSeed::Cycle);
        }
        let ann = anns.get(&cur).filter(|m| m.listed().is_some());
        let declines = ann.is_some_and(|m| m.declines());
        let leads = ann.map(|m| m.leads()).unwrap_or_default();
        match leads {
            [] if followed => return Err(NoSeed::PendingLead(cur)),
            [] if declines => return Err(NoSeed::OwnerDeclines),
            [] => return Ok(cur),
            [lead] if *lead == cur && declines => return Err(NoSeed::PendingLead(cur)),
            [lead] if *lead == cur => return Ok(cur),
            [lead] => {
                followed = true;
                cur = *lead;
            }
            _ => return Err(NoSeed::ConflictingLeads(cur)),
        }
    }
}
