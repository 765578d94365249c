//! GRASP-06 §5: a pull request for a repository this server does not host is accepted
//! (to wait for a `/prs/` push) when its `clone` tag names our contributor endpoint for
//! its own signer and one of the identifiers it tags. Tried only where GRASP-01 would
//! refuse it as unrelated; every other refusal stands.

use crate::effect::ReplyToken;
use crate::engine::Engine;
use crate::event::{self, Origin, PullRequest};
use crate::repo::{is_safe_identifier, npub};
use crate::url_path::decode_identifier;
use nostr::prelude::{Event, PublicKey};

impl Engine {
    /// The identifier under which `e` may be accepted by the relaxation: a kind
    /// 1618/1619 with an `a` tag `30617:<pubkey>:<d>` and a `clone` value naming
    /// `<public-url>/prs/<npub of its signer>/<d>[.git][/]` (scheme and host in any
    /// case, default port optional, no query or fragment, `d` percent-decoded once and
    /// compared exactly). `None` with GRASP-06 off.
    pub(crate) fn relaxed_identifier(&self, e: &Event) -> Option<String> {
        if !self.config.grasp06
            || !(e.kind == event::PULL_REQUEST || e.kind == event::PULL_REQUEST_UPDATE)
        {
            return None;
        }
        let pr = PullRequest::parse(e)?;
        let named = self.prs_clone_identifiers(&pr.clone, &e.pubkey);
        pr.repos
            .iter()
            .map(|c| c.identifier.as_str())
            .find(|d| is_safe_identifier(d) && named.iter().any(|n| n == d))
            .map(str::to_owned)
    }

    /// The identifiers of the `clone` values that name our `/prs/<npub of signer>/`.
    fn prs_clone_identifiers(&self, clone: &[String], signer: &PublicKey) -> Vec<String> {
        let prefix = format!(
            "{}/prs/{}/",
            self.config.public_url.path().trim_end_matches('/'),
            npub(signer)
        );
        clone
            .iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && crate::config::authority_of(u).as_deref() == Some(self.authority.as_str())
            })
            .filter_map(|u| {
                let segment = u.path().strip_prefix(prefix.as_str())?;
                let segment = segment.strip_suffix('/').unwrap_or(segment);
                let segment = segment.strip_suffix(".git").unwrap_or(segment);
                decode_identifier(segment).ok()
            })
            .collect()
    }

    /// Accepts relaxed pull request `e` of identifier `d` into purgatory, within the
    /// curation rules, the purgatory caps and the per-signer cap of relaxed pull requests.
    pub(crate) fn on_relaxed_pr(&mut self, token: ReplyToken, e: Event, origin: Origin, d: String) {
        let (id, author) = (e.id, e.pubkey);
        let c = &self.config.curation;
        if !c.allow_pubkeys.is_empty() && !c.allow_pubkeys.contains(&author) {
            return self.reply(
                token,
                id,
                false,
                "blocked: this server only accepts events of listed pubkeys",
            );
        }
        let bytes = crate::packed::json_len_of(&e);
        if let Some(why) = self.purgatory_cap_refusal(&author, &d, bytes, false) {
            return self.reply(token, id, false, why);
        }
        let cap = self.config.prs_max_waiting_per_author;
        if self.relaxed_waiting_of(&author) >= cap {
            return self.reply(
                token,
                id,
                false,
                "rate-limited: too many pull requests waiting for /prs/ pushes by this author",
            );
        }
        let Some(mut pr) = PullRequest::parse(&e) else {
            return;
        };
        // Its `/prs/` URL is our own authority: nothing to hunt for elsewhere.
        pr.clone.clear();
        self.wait_for_pr(token, e, origin, pr, &d);
        if self.purgatory.contains(&id) {
            self.purgatory.relaxed.insert((author, id));
        }
    }

    /// Relaxed pull requests of `author` waiting now.
    pub(crate) fn relaxed_waiting_of(&self, author: &PublicKey) -> usize {
        use nostr::prelude::EventId;
        let lo = (*author, EventId::from_byte_array([0; 32]));
        let hi = (*author, EventId::from_byte_array([0xff; 32]));
        self.purgatory.relaxed.range(lo..=hi).count()
    }
}
