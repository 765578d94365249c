//! A fresh look at the repositories before anything expires (issue 14, item 8).
//!
//! The engine learns that objects arrived from the pushes it authorizes, the fetches it
//! makes and the checks it asks for. Objects can also arrive by a path it does not see —
//! a `git receive-pack` that outlived a killed graspd and moved a ref after the restart,
//! an operator's push straight into the bare repository — and then a waiting event
//! would expire although its data is there (and a retried push says "Everything
//! up-to-date" and releases nothing). Three looks close that:
//! - **before a deadline**: every entry's identifier is checked again between one and two
//!   [`crate::Config::final_check_lead`] before the entry expires (one check per
//!   identifier for every entry due in that span, so a busy purgatory costs one check per
//!   lead, not one per entry); what the check finds is released on the one release path,
//!   and while such a check has not answered no entry expires (the driver answers a check
//!   in milliseconds, so this holds expiry only when a deadline falls inside that time);
//!   a deadline set inside the span already checked (a purgatory expiry shorter than two
//!   leads) brings the check back for it;
//! - **at startup**: hydration checks every waiting identifier *before* expiring what
//!   expired while graspd was down, and holds those expiries until the checks answered;
//! - **on a push that changes nothing**: `git push` reads the ref advertisement, finds
//!   nothing to send and says "Everything up-to-date" without a request the engine would
//!   see; the driver reports the advertised refs ([`crate::Input::RefsSeen`]) and what
//!   they satisfy is released.
//!
//! The deadlines themselves never move; an entry outlives its deadline only while a check
//! that could release it has not answered. Not watched: a ref that moves by such a path
//! while nothing is near its deadline and no push comes is seen at the next of these.

use crate::effect::CheckId;
use crate::engine::Engine;
use crate::ident::Ident;
use crate::time::Time;
use std::collections::BTreeSet;

/// The state of the checks that come before expiry.
#[derive(Debug, Default)]
pub(crate) struct FinalCheck {
    /// Every entry expiring at or before this has had its check.
    upto: Time,
    /// The checks entry expiry waits for: the hydration's, and the checks before a
    /// deadline not answered yet.
    held: BTreeSet<CheckId>,
}

impl FinalCheck {
    /// Whether entry expiry waits for checks that have not answered.
    pub(crate) fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Whether entry expiry waits for `check`.
    pub(crate) fn is_held(&self, check: CheckId) -> bool {
        self.held.contains(&check)
    }

    /// Entry expiry waits for `check` too (a failed check asked again).
    pub(crate) fn hold(&mut self, check: CheckId) {
        self.held.insert(check);
    }

    /// A deadline at `t` is set: if the checks already passed it (a purgatory expiry
    /// shorter than two leads), they come back for it.
    pub(crate) fn cover(&mut self, t: Time) {
        if t <= self.upto {
            self.upto = Time::from_millis(t.as_millis().saturating_sub(1));
        }
    }
}

impl Engine {
    /// When the next check before a deadline is due: one lead before the earliest
    /// deadline not yet covered.
    pub(crate) fn next_final_check(&self) -> Option<Time> {
        let upto = self.purgatory.final_check.upto;
        let (t, _) = self.purgatory.expiring_after(upto).next()?;
        let lead = self.config.final_check_lead.as_millis();
        Some(Time::from_millis(
            t.as_millis()
                .saturating_sub(u64::try_from(lead).unwrap_or(u64::MAX)),
        ))
    }

    /// Checks the identifier of every entry expiring within two leads of now.
    pub(crate) fn run_final_checks(&mut self) {
        let lead = self.config.final_check_lead;
        let until = self.now.plus(lead).plus(lead);
        let upto = self.purgatory.final_check.upto;
        let ds: BTreeSet<Ident> = self
            .purgatory
            .expiring_after(upto)
            .take_while(|(t, _)| *t <= until)
            .filter_map(|(_, id)| self.purgatory.get(&id).map(|e| e.ident))
            .collect();
        self.purgatory.final_check.upto = until;
        // In name order, as every check the engine emits for several identifiers.
        let mut named: Vec<(String, Ident)> = ds
            .into_iter()
            .map(|d| (self.idents.name(d).to_owned(), d))
            .collect();
        named.sort();
        for (name, d) in named {
            let needs: Vec<crate::oid::Oid> = self.needs(Some(d)).into_iter().collect();
            // Every repository of the identifier, not the first few a client's event is
            // checked in: this look must not miss data that is here, and it comes at most
            // once per lead per identifier, whose repositories are capped.
            let repos = self.repos.repos(&name);
            if !needs.is_empty()
                && let Some(check) = self.check_in(&name, repos, needs, None)
            {
                // Nothing expires before it answered: objects it finds are released.
                self.purgatory.final_check.held.insert(check);
            }
        }
    }

    /// A push's ref advertisement showed `repo`'s refs: release what they satisfy.
    pub(crate) fn on_refs_seen(
        &mut self,
        repo: &crate::repo::RepoId,
        refs: &[(String, crate::oid::Oid)],
    ) {
        let Some(d) = self.ident(&repo.d) else {
            return; // nothing of the identifier waits
        };
        self.note_present(d, refs.iter().map(|(_, o)| *o), repo);
        self.release_ready(d, crate::effect::ServePath::Push);
        self.settle_sync(d);
    }

    /// Hydration: entry expiry waits until every check pending now has answered (they
    /// are the hydration's own: no live input came before). They checked every identifier, so they also stand for the checks before the
    /// deadlines of the next two leads.
    pub(crate) fn hold_expiry_for_checks(&mut self) {
        let lead = self.config.final_check_lead;
        let fc = &mut self.purgatory.final_check;
        fc.held = self.checks.keys().copied().collect();
        fc.upto = fc.upto.max(self.now.plus(lead).plus(lead));
    }

    /// `check` answered; returns whether that ended a hold on expiry (then the caller
    /// fires what came due meanwhile).
    pub(crate) fn final_check_answered(&mut self, check: CheckId) -> bool {
        let held = &mut self.purgatory.final_check.held;
        held.remove(&check) && held.is_empty()
    }

    /// Whether entry expiry waits for object checks that have not answered — the startup
    /// checks, or a check before a deadline (a getter for harnesses: until they answer,
    /// entries may outlive their deadline).
    pub fn is_holding_expiry(&self) -> bool {
        self.purgatory.final_check.is_holding()
    }
}
