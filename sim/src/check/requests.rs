//! Request invariants: the per-domain throttle as measured from executed requests, one
//! request per (identifier, domain), no forbidden URLs, nothing unadvertised asked for.

use super::{Checker, DomainLoad, NO_OWN, ONE_IN_FLIGHT, THROTTLE, UNADVERTISED};
use crate::remote::Ask;
use crate::world::{OUR_AUTHORITY, World};
use grasp_core::{Oid, Time, url_refusal};

impl Checker {
    /// A request leaves our server. `key` is unique within the run; `extra` marks a
    /// request the harness made on its own (a planted fault), not the engine.
    pub fn on_request(
        &mut self,
        now: Time,
        key: u64,
        url: &str,
        domain: &str,
        ask: &Ask,
        extra: bool,
    ) {
        if let Some(why) = url_refusal(url, OUR_AUTHORITY) {
            self.fail(NO_OWN, now, format!("request to {url}: {why}"));
        }
        let parsed = grasp_core::nostr::types::Url::parse(url).ok();
        let auth = parsed.as_ref().and_then(grasp_core::authority_of);
        if domain == OUR_AUTHORITY || auth.as_deref() != Some(domain) {
            self.fail(
                NO_OWN,
                now,
                format!("request to {url} counted as domain {domain}"),
            );
        }
        if let (Ask::Fetch(oids), false) = (ask, extra) {
            let adv = self.advertised.get(url);
            let bad: Vec<&Oid> = oids
                .iter()
                .filter(|o| !adv.is_some_and(|a| a.contains(o)))
                .collect();
            if !bad.is_empty() {
                self.fail(
                    UNADVERTISED,
                    now,
                    format!("fetch from {url} asks for {bad:?}"),
                );
            }
        }
        let d = World::identifier_of(url).unwrap_or_default();
        let window = self.config.domain_window;
        let (concurrency, rate) = (self.config.domain_concurrency, self.config.domain_rate);
        let load: &mut DomainLoad = self.domains.entry(domain.to_owned()).or_default();
        load.in_flight += 1;
        while load.starts.front().is_some_and(|t| t.plus(window) <= now) {
            load.starts.pop_front();
        }
        load.starts.push_back(now);
        let (in_flight, in_window) = (load.in_flight, load.starts.len());
        let peak = &mut self.stats.peak_load;
        *peak = (peak.0.max(in_flight), peak.1.max(in_window));
        if in_flight > concurrency {
            self.fail(
                THROTTLE,
                now,
                format!("{in_flight} requests in flight to {domain}"),
            );
        }
        let total: u32 = self.domains.values().map(|l| l.in_flight).sum();
        if total > self.config.remote_concurrency {
            let detail = format!("{total} requests in flight over every domain");
            self.fail(THROTTLE, now, detail);
        }
        if in_window > rate as usize {
            let detail = format!("{in_window} requests to {domain} within {window:?}");
            self.fail(THROTTLE, now, detail);
        }
        if !extra {
            let n = self
                .per_ident
                .entry((d.clone(), domain.to_owned()))
                .or_default();
            *n += 1;
            if *n > 1 {
                let detail = format!("{n} requests in flight for {d} on {domain}");
                self.fail(ONE_IN_FLIGHT, now, detail);
            }
        }
        *self.stats.requests.entry(domain.to_owned()).or_default() += 1;
        self.requests.insert(key, (domain.to_owned(), d, extra));
    }

    /// The request `key` finished and its result was fed back (or dropped, for extras).
    pub fn on_request_done(&mut self, key: u64) {
        if let Some((domain, d, extra)) = self.requests.remove(&key) {
            self.end_load(&domain, &d, extra);
        }
    }

    pub(super) fn end_load(&mut self, domain: &str, d: &str, extra: bool) {
        if let Some(l) = self.domains.get_mut(domain) {
            l.in_flight = l.in_flight.saturating_sub(1);
        }
        if !extra {
            let k = (d.to_owned(), domain.to_owned());
            if let Some(n) = self.per_ident.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.per_ident.remove(&k);
                }
            }
        }
    }

    /// A ref advertisement from `url` reached the engine.
    pub fn on_advertised(&mut self, url: &str, refs: &[(String, Oid)]) {
        self.advertised
            .entry(url.to_owned())
            .or_default()
            .extend(refs.iter().map(|(_, o)| *o));
    }

    /// Identifiers with a request in flight (for the sync-queue bound).
    pub(super) fn identifiers_in_flight(&self) -> impl Iterator<Item = &String> {
        self.requests.values().map(|(_, d, _)| d)
    }
}
