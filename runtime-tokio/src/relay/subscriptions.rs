//! The open subscriptions of one connection and the limits on them.
//!
//! Filters are counted by the size of the REQ that carried them: a parsed filter takes
//! several times its JSON (64 subscriptions of 0.84 MB filters on 4 connections took
//! over 1 GiB), so one REQ and the open subscriptions of a connection together have a
//! byte limit besides the counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use nostr::prelude::{Event, Filter, MatchEventOptions, SubscriptionId};

/// Longest subscription id accepted, as NIP-01 specifies.
pub(crate) const MAX_SUBSCRIPTION_ID_LEN: usize = 64;

/// The limits a REQ is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubscriptionLimits {
    /// Open subscriptions per connection.
    pub(crate) max_subscriptions: usize,
    /// Filters per REQ.
    pub(crate) max_filters: usize,
    /// Bytes of one REQ message.
    pub(crate) max_req_bytes: usize,
    /// Bytes of the REQs of every open subscription of the connection together.
    pub(crate) max_connection_bytes: usize,
}

/// Why a REQ was not opened; each maps to a CLOSED message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The connection already has the maximum number of subscriptions.
    TooManySubscriptions { limit: usize },
    /// The REQ has more filters than allowed.
    TooManyFilters { count: usize, limit: usize },
    /// The REQ message is larger than allowed.
    FiltersTooLarge { bytes: usize, limit: usize },
    /// With this REQ the connection's subscriptions would pass their byte limit.
    ConnectionFiltersFull { bytes: usize, limit: usize },
    /// The subscription id is empty or longer than NIP-01 allows.
    BadId,
}

impl Refusal {
    /// The CLOSED message, with its NIP-01 prefix.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::TooManySubscriptions { limit } => {
                format!("rate-limited: too many subscriptions (limit {limit}); CLOSE one first")
            }
            Self::TooManyFilters { count, limit } => {
                format!("error: too many filters ({count}, limit {limit})")
            }
            Self::FiltersTooLarge { bytes, limit } => {
                format!("error: filters too large ({bytes} bytes, limit {limit})")
            }
            Self::ConnectionFiltersFull { bytes, limit } => format!(
                "error: this connection's subscriptions would hold {bytes} bytes of filters \
                 (limit {limit}); CLOSE some first"
            ),
            Self::BadId => {
                format!("error: subscription id must be 1 to {MAX_SUBSCRIPTION_ID_LEN} characters")
            }
        }
    }
}

#[derive(Debug)]
struct Open {
    filters: Arc<[Filter]>,
    bytes: usize,
}

/// Subscription id → filters, for one connection.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    open: BTreeMap<SubscriptionId, Open>,
    bytes: usize,
}

impl Subscriptions {
    /// Opens (or replaces, as NIP-01 says a REQ with a known id does) a subscription
    /// whose REQ message was `bytes` long; returns its filters, shared.
    pub(crate) fn open(
        &mut self,
        id: SubscriptionId,
        filters: Vec<Filter>,
        bytes: usize,
        limits: &SubscriptionLimits,
    ) -> Result<Arc<[Filter]>, Refusal> {
        let len = id.as_str().chars().count();
        if len == 0 || len > MAX_SUBSCRIPTION_ID_LEN {
            return Err(Refusal::BadId);
        }
        if filters.len() > limits.max_filters {
            return Err(Refusal::TooManyFilters {
                count: filters.len(),
                limit: limits.max_filters,
            });
        }
        if bytes > limits.max_req_bytes {
            return Err(Refusal::FiltersTooLarge {
                bytes,
                limit: limits.max_req_bytes,
            });
        }
        let replaced = self.open.get(&id).map(|open| open.bytes);
        if replaced.is_none() && self.open.len() >= limits.max_subscriptions {
            return Err(Refusal::TooManySubscriptions {
                limit: limits.max_subscriptions,
            });
        }
        let total = self.bytes - replaced.unwrap_or(0) + bytes;
        if total > limits.max_connection_bytes {
            return Err(Refusal::ConnectionFiltersFull {
                bytes: total,
                limit: limits.max_connection_bytes,
            });
        }
        let filters: Arc<[Filter]> = Arc::from(filters);
        self.bytes = total;
        self.open.insert(
            id,
            Open {
                filters: Arc::clone(&filters),
                bytes,
            },
        );
        Ok(filters)
    }

    /// Closes a subscription; returns whether it was open.
    pub(crate) fn close(&mut self, id: &SubscriptionId) -> bool {
        match self.open.remove(id) {
            Some(open) => {
                self.bytes -= open.bytes;
                true
            }
            None => false,
        }
    }

    /// The subscriptions that want `event` live.
    pub(crate) fn matching<'a>(
        &'a self,
        event: &'a Event,
    ) -> impl Iterator<Item = &'a SubscriptionId> + 'a {
        let options = MatchEventOptions::new();
        self.open
            .iter()
            .filter(move |(_, open)| open.filters.iter().any(|f| f.match_event(event, options)))
            .map(|(id, _)| id)
    }

    /// Number of open subscriptions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no subscription is open (the connection may be closed when idle).
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(s: &str) -> SubscriptionId {
        SubscriptionId::new(s)
    }

    fn limits(max_subscriptions: usize, max_filters: usize) -> SubscriptionLimits {
        SubscriptionLimits {
            max_subscriptions,
            max_filters,
            max_req_bytes: 1_000,
            max_connection_bytes: 10_000,
        }
    }

    #[test]
    fn limits_apply_but_replacement_is_free() {
        let mut subs = Subscriptions::default();
        let l = limits(2, 3);
        subs.open(sid("a"), vec![Filter::new()], 10, &l).expect("a");
        subs.open(sid("b"), vec![Filter::new()], 10, &l).expect("b");
        assert_eq!(
            subs.open(sid("c"), vec![Filter::new()], 10, &l),
            Err(Refusal::TooManySubscriptions { limit: 2 })
        );
        subs.open(sid("b"), vec![Filter::new(), Filter::new()], 10, &l)
            .expect("replacing b");
        assert_eq!(subs.len(), 2);
        assert!(subs.close(&sid("a")));
        assert!(!subs.close(&sid("a")));
        subs.open(sid("c"), vec![Filter::new()], 10, &l)
            .expect("room again");
        assert_eq!(
            subs.open(sid("d"), vec![Filter::new(); 4], 10, &limits(9, 3)),
            Err(Refusal::TooManyFilters { count: 4, limit: 3 })
        );
        assert_eq!(
            subs.open(sid(""), vec![Filter::new()], 10, &limits(9, 3)),
            Err(Refusal::BadId)
        );
        let long = "x".repeat(65);
        assert_eq!(
            subs.open(sid(&long), vec![Filter::new()], 10, &limits(9, 3)),
            Err(Refusal::BadId)
        );
        assert!(
            Refusal::TooManySubscriptions { limit: 2 }
                .message()
                .starts_with("rate-limited:")
        );
    }

    #[test]
    fn filter_bytes_are_bounded_per_req_and_per_connection() {
        let mut subs = Subscriptions::default();
        let l = SubscriptionLimits {
            max_subscriptions: 10,
            max_filters: 10,
            max_req_bytes: 400,
            max_connection_bytes: 1_000,
        };
        assert_eq!(
            subs.open(sid("big"), vec![Filter::new()], 401, &l),
            Err(Refusal::FiltersTooLarge {
                bytes: 401,
                limit: 400
            })
        );
        subs.open(sid("a"), vec![Filter::new()], 400, &l)
            .expect("a");
        subs.open(sid("b"), vec![Filter::new()], 400, &l)
            .expect("b");
        assert_eq!(
            subs.open(sid("c"), vec![Filter::new()], 201, &l),
            Err(Refusal::ConnectionFiltersFull {
                bytes: 1_001,
                limit: 1_000
            })
        );
        // Replacing counts the new size instead of the old one.
        subs.open(sid("b"), vec![Filter::new()], 100, &l)
            .expect("smaller b");
        subs.open(sid("c"), vec![Filter::new()], 400, &l)
            .expect("room for c");
        assert!(subs.close(&sid("a")));
        assert!(subs.close(&sid("b")));
        assert!(subs.close(&sid("c")));
        assert_eq!(subs.bytes, 0);
        for refusal in [
            Refusal::FiltersTooLarge { bytes: 2, limit: 1 },
            Refusal::ConnectionFiltersFull { bytes: 2, limit: 1 },
        ] {
            assert!(refusal.message().starts_with("error: "), "{refusal:?}");
        }
    }
}
