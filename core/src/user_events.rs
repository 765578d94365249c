//! Events users' clients send to a GRASP relay beside NIP-34 ones: a user's GRASP server
//! list (kind 10317) naming this server, and the profile (kind 0) and relay list
//! (kind 10002) of keys that maintain a repository hosted here — clients show them beside
//! the repository. And NIP-70: a protected event (`["-"]`) may only be published by its
//! author over an authenticated connection; graspd has no NIP-42, so it refuses them
//! and says why.

use crate::config::authority_of;
use crate::effect::{ReplyToken, ServePath};
use crate::engine::Engine;
use nostr::prelude::{Event, Kind};

/// A user's list of GRASP servers (`g` tags with their relay URLs).
pub(crate) const GRASP_LIST: Kind = Kind::Custom(10317);

/// The OK message of a NIP-70 protected event.
pub(crate) const PROTECTED_REFUSAL: &str = "auth-required: this event is protected (NIP-70): only its author may publish it, over an authenticated (NIP-42) connection, which this relay does not offer";

/// Whether the event carries NIP-70's `["-"]` tag.
pub(crate) fn is_protected(e: &Event) -> bool {
    e.tags.iter().any(|t| t.as_slice() == ["-"])
}

impl Engine {
    /// Stores `e` if it is one of the user events this server keeps; returns whether it
    /// took it (otherwise the related-event rule decides).
    pub(crate) fn on_user_event(&mut self, token: ReplyToken, e: &Event) -> bool {
        let keep = match e.kind {
            k if k == GRASP_LIST => self.names_this_server(e),
            Kind::Metadata | Kind::RelayList => self.repos.maintains_hosted(&e.pubkey),
            _ => false,
        };
        if keep {
            self.related.accept(e);
            self.store(e.clone(), ServePath::Direct);
            self.reply(token, e.id, true, "");
        }
        keep
    }

    /// Whether a GRASP server list has a `g` tag naming this server.
    fn names_this_server(&self, e: &Event) -> bool {
        e.tags
            .iter()
            .filter_map(|t| match t.as_slice() {
                [name, url, ..] if name == "g" => Some(url),
                _ => None,
            })
            .filter_map(|u| url::Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "ws" | "wss" | "http" | "https"))
            .any(|u| authority_of(&u).as_deref() == Some(self.authority.as_str()))
    }
}
