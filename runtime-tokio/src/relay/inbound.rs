//! Decoding one client message into what the connection must do with it.
//!
//! `EVENT` is decoded by hand around `serde_json::value::RawValue` so that an oversized
//! or malformed event can still be answered with an `OK false` carrying its id (a
//! client waits for that `OK`; a NOTICE alone would leave it hanging). Everything else
//! goes through nostr's `ClientMessage` parser.

use std::borrow::Cow;

use nostr::prelude::{ClientMessage, Event, EventId, Filter, SubscriptionId};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A decoded client message.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A well-formed event, not yet verified.
    Event(Box<Event>),
    /// An event refused before verification; answer `OK false` with this message.
    RefusedEvent { id: EventId, message: String },
    /// Open or replace a subscription; `bytes` is the size of the REQ message, what
    /// the filter byte limits count.
    Req {
        id: SubscriptionId,
        filters: Vec<Filter>,
        bytes: usize,
    },
    /// Close a subscription.
    Close(SubscriptionId),
    /// NIP-45 count request (not supported: answered with CLOSED).
    Count(SubscriptionId),
    /// NIP-42 authentication (not required here: answered with OK false).
    Auth(EventId),
    /// NIP-77 negentropy (not supported: answered with NEG-ERR).
    Negentropy(SubscriptionId),
    /// Anything unusable; answer with this NOTICE.
    Notice(String),
}

#[derive(Deserialize)]
struct IdOnly {
    id: EventId,
}

/// Decodes `text`, refusing events whose JSON exceeds `max_event_size` bytes.
pub(crate) fn decode(text: &str, max_event_size: usize) -> Inbound {
    let parts: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(parts) => parts,
        Err(e) => return Inbound::Notice(format!("error: message is not a JSON array: {e}")),
    };
    let kind: Cow<'_, str> = match parts.first().map(|raw| serde_json::from_str(raw.get())) {
        Some(Ok(kind)) => kind,
        _ => return Inbound::Notice("error: message must start with a type string".into()),
    };
    if kind == "EVENT" {
        return match parts.get(1) {
            Some(raw) => decode_event(raw, max_event_size),
            None => Inbound::Notice("error: EVENT message without an event".into()),
        };
    }
    match ClientMessage::from_json(text) {
        Ok(ClientMessage::Req {
            subscription_id,
            filters,
        }) => Inbound::Req {
            id: subscription_id.into_owned(),
            filters: filters.into_iter().map(Cow::into_owned).collect(),
            bytes: text.len(),
        },
        Ok(ClientMessage::Close(id)) => Inbound::Close(id.into_owned()),
        Ok(ClientMessage::Count {
            subscription_id, ..
        }) => Inbound::Count(subscription_id.into_owned()),
        Ok(ClientMessage::Auth(event)) => Inbound::Auth(event.id),
        Ok(
            ClientMessage::NegOpen {
                subscription_id, ..
            }
            | ClientMessage::NegMsg {
                subscription_id, ..
            }
            | ClientMessage::NegClose { subscription_id },
        ) => Inbound::Negentropy(subscription_id.into_owned()),
        Ok(ClientMessage::Event(_)) => Inbound::Notice("error: unexpected EVENT".into()),
        Err(e) => Inbound::Notice(format!("error: could not parse {kind} message: {e}")),
    }
}

fn decode_event(raw: &RawValue, max_event_size: usize) -> Inbound {
    let json = raw.get();
    let id = || {
        serde_json::from_str::<IdOnly>(json)
            .ok()
            .map(|only| only.id)
    };
    if json.len() > max_event_size {
        let message = format!(
            "invalid: event too large ({} bytes, limit {max_event_size})",
            json.len()
        );
        return match id() {
            Some(id) => Inbound::RefusedEvent { id, message },
            None => Inbound::Notice(message),
        };
    }
    match Event::from_json(json) {
        Ok(event) => Inbound::Event(Box::new(event)),
        Err(e) => {
            let message = format!("invalid: malformed event: {e}");
            match id() {
                Some(id) => Inbound::RefusedEvent { id, message },
                None => Inbound::Notice(message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn garbage_is_a_notice() {
        for text in ["", "nope", "{}", "[]", "[1]", "[\"EVENT\"]", "[\"WHAT\",1]"] {
            assert!(
                matches!(decode(text, 1000), Inbound::Notice(_)),
                "{text:?} should give a NOTICE"
            );
        }
    }

    #[test]
    fn oversized_event_is_refused_with_its_id() {
        let content = "x".repeat(2000);
        let text = format!(
            r#"["EVENT",{{"id":"{ID}","pubkey":"{ID}","created_at":1,"kind":1,"tags":[],"content":"{content}","sig":"00"}}]"#
        );
        match decode(&text, 1000) {
            Inbound::RefusedEvent { id, message } => {
                assert_eq!(id.to_hex(), ID);
                assert!(
                    message.starts_with("invalid: event too large ("),
                    "{message}"
                );
                assert!(message.ends_with("limit 1000)"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn malformed_event_with_id_is_refused_without_id_is_a_notice() {
        let text = format!(r#"["EVENT",{{"id":"{ID}","kind":"one"}}]"#);
        assert!(matches!(
            decode(&text, 10_000),
            Inbound::RefusedEvent { message, .. } if message.starts_with("invalid: malformed event")
        ));
        assert!(matches!(
            decode(r#"["EVENT",{"kind":1}]"#, 10_000),
            Inbound::Notice(_)
        ));
    }

    #[test]
    fn req_and_close_decode() {
        match decode(r#"["REQ","s1",{"kinds":[1]},{"limit":3}]"#, 1000) {
            Inbound::Req { id, filters, bytes } => {
                assert_eq!(id.as_str(), "s1");
                assert_eq!(bytes, r#"["REQ","s1",{"kinds":[1]},{"limit":3}]"#.len());
                assert_eq!(filters.len(), 2);
                assert_eq!(filters[1].limit, Some(3));
            }
            other => panic!("expected REQ, got {other:?}"),
        }
        assert!(
            matches!(decode(r#"["CLOSE","s1"]"#, 1000), Inbound::Close(id) if id.as_str() == "s1")
        );
        assert!(matches!(
            decode(r#"["REQ","s1"]"#, 1000),
            Inbound::Notice(_)
        ));
    }
}
