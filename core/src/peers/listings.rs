//! Which relays the accepted announcements list, and for which identifiers: the peer
//! set and each peer's `#d` values are read from here (GRASP-02 §2, §3).

use std::collections::BTreeMap;

use crate::relay_url::RelayUrl;

/// Relay URLs one announcement contributes, at most (GRASP-02 §2).
pub(crate) const RELAYS_PER_ANNOUNCEMENT: usize = 16;

/// The peer keys of an announcement's `relays` values: the normalized URL of each that
/// parses, the raw value of each that does not (kept, to be shown refused with its
/// reason), deduplicated, at most [`RELAYS_PER_ANNOUNCEMENT`].
pub(crate) fn relay_keys(raw: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for r in raw {
        if keys.len() == RELAYS_PER_ANNOUNCEMENT {
            break;
        }
        let key = RelayUrl::parse(r).map_or_else(|_| r.clone(), |u| u.as_str().to_owned());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// Per relay key, per identifier, how many accepted announcements list it.
#[derive(Debug, Default)]
pub(crate) struct RelayListings {
    by_relay: BTreeMap<String, BTreeMap<String, u32>>,
    /// Bumped on every change, so the engine recomputes peers only after one.
    version: u64,
}

impl RelayListings {
    /// An announcement of `d` listing `keys` was accepted.
    pub(crate) fn add(&mut self, d: &str, keys: &[String]) {
        for k in keys {
            *self
                .by_relay
                .entry(k.clone())
                .or_default()
                .entry(d.to_owned())
                .or_default() += 1;
        }
        if !keys.is_empty() {
            self.version += 1;
        }
    }

    /// An announcement of `d` listing `keys` is gone (removed or replaced).
    pub(crate) fn remove(&mut self, d: &str, keys: &[String]) {
        for k in keys {
            let Some(ds) = self.by_relay.get_mut(k) else {
                continue;
            };
            if let Some(n) = ds.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    ds.remove(d);
                }
            }
            if ds.is_empty() {
                self.by_relay.remove(k);
            }
        }
        if !keys.is_empty() {
            self.version += 1;
        }
    }

    /// Changes with every listing added or removed.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Every listed relay key with how many announcements list it.
    pub(crate) fn relays(&self) -> impl Iterator<Item = (&str, u32)> {
        self.by_relay
            .iter()
            .map(|(k, ds)| (k.as_str(), ds.values().sum()))
    }

    /// The identifiers whose announcements list `key`, in name order.
    pub(crate) fn identifiers(&self, key: &str) -> impl Iterator<Item = &str> {
        self.by_relay
            .get(key)
            .into_iter()
            .flat_map(|ds| ds.keys().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_normalized_deduplicated_and_capped() {
        let raw: Vec<String> = ["wss://R.example/", "wss://r.example:443", "http://x"]
            .into_iter()
            .map(String::from)
            .chain((0..30).map(|i| format!("wss://r{i}.example")))
            .collect();
        let keys = relay_keys(&raw);
        assert_eq!(keys.len(), RELAYS_PER_ANNOUNCEMENT);
        assert_eq!(keys[..2], ["wss://r.example", "http://x"]);
    }

    #[test]
    fn counts_follow_adds_and_removes() {
        let mut l = RelayListings::default();
        let k = vec!["wss://a".to_owned(), "wss://b".to_owned()];
        l.add("x", &k);
        l.add("y", &k[..1]);
        assert_eq!(
            l.relays().collect::<Vec<_>>(),
            [("wss://a", 2), ("wss://b", 1)]
        );
        assert_eq!(l.identifiers("wss://a").collect::<Vec<_>>(), ["x", "y"]);
        let v = l.version();
        l.remove("x", &k);
        assert!(l.version() > v);
        assert_eq!(l.relays().collect::<Vec<_>>(), [("wss://a", 1)]);
        l.remove("y", &k[..1]);
        assert_eq!(l.relays().count(), 0);
    }
}
