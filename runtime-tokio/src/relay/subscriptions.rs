//! The open subscriptions of one connection and the limits on them.

use std::collections::BTreeMap;

use nostr::prelude::{Event, Filter, MatchEventOptions, SubscriptionId};

/// Longest subscription id accepted, as NIP-01 specifies.
pub(crate) const MAX_SUBSCRIPTION_ID_LEN: usize = 64;

/// Why a REQ was not opened; each maps to a CLOSED message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The connection already has the maximum number of subscriptions.
    TooManySubscriptions { limit: usize },
    /// The REQ has more filters than allowed.
    TooManyFilters { count: usize, limit: usize },
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
            Self::BadId => {
                format!("error: subscription id must be 1 to {MAX_SUBSCRIPTION_ID_LEN} characters")
            }
        }
    }
}

/// Subscription id → filters, for one connection.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    open: BTreeMap<SubscriptionId, Vec<Filter>>,
}

impl Subscriptions {
    /// Opens (or replaces, as NIP-01 says a REQ with a known id does) a subscription.
    pub(crate) fn open(
        &mut self,
        id: SubscriptionId,
        filters: Vec<Filter>,
        max_subscriptions: usize,
        max_filters: usize,
    ) -> Result<(), Refusal> {
        let len = id.as_str().chars().count();
        if len == 0 || len > MAX_SUBSCRIPTION_ID_LEN {
            return Err(Refusal::BadId);
        }
        if filters.len() > max_filters {
            return Err(Refusal::TooManyFilters {
                count: filters.len(),
                limit: max_filters,
            });
        }
        if !self.open.contains_key(&id) && self.open.len() >= max_subscriptions {
            return Err(Refusal::TooManySubscriptions {
                limit: max_subscriptions,
            });
        }
        self.open.insert(id, filters);
        Ok(())
    }

    /// Closes a subscription; returns whether it was open.
    pub(crate) fn close(&mut self, id: &SubscriptionId) -> bool {
        self.open.remove(id).is_some()
    }

    /// The subscriptions that want `event` live.
    pub(crate) fn matching<'a>(
        &'a self,
        event: &'a Event,
    ) -> impl Iterator<Item = &'a SubscriptionId> + 'a {
        let options = MatchEventOptions::new();
        self.open
            .iter()
            .filter(move |(_, filters)| filters.iter().any(|f| f.match_event(event, options)))
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

    #[test]
    fn limits_apply_but_replacement_is_free() {
        let mut subs = Subscriptions::default();
        subs.open(sid("a"), vec![Filter::new()], 2, 3).expect("a");
        subs.open(sid("b"), vec![Filter::new()], 2, 3).expect("b");
        assert_eq!(
            subs.open(sid("c"), vec![Filter::new()], 2, 3),
            Err(Refusal::TooManySubscriptions { limit: 2 })
        );
        subs.open(sid("b"), vec![Filter::new(), Filter::new()], 2, 3)
            .expect("replacing b");
        assert_eq!(subs.len(), 2);
        assert!(subs.close(&sid("a")));
        assert!(!subs.close(&sid("a")));
        subs.open(sid("c"), vec![Filter::new()], 2, 3)
            .expect("room again");
        assert_eq!(
            subs.open(sid("d"), vec![Filter::new(); 4], 9, 3),
            Err(Refusal::TooManyFilters { count: 4, limit: 3 })
        );
        assert_eq!(
            subs.open(sid(""), vec![Filter::new()], 9, 3),
            Err(Refusal::BadId)
        );
        let long = "x".repeat(65);
        assert_eq!(
            subs.open(sid(&long), vec![Filter::new()], 9, 3),
            Err(Refusal::BadId)
        );
        assert!(
            Refusal::TooManySubscriptions { limit: 2 }
                .message()
                .starts_with("rate-limited:")
        );
    }
}
