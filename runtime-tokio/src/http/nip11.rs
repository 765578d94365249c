//! The NIP-11 relay information document, with the GRASP extensions.
//!
//! nostr's `RelayInformationDocument` is embedded with `#[serde(flatten)]` and extended
//! with `supported_grasps`, `repo_acceptance_criteria` and (only on a curated server)
//! `curation`. Fields without a value are omitted rather than sent as `null`, which
//! some clients choke on.

use nostr::prelude::{Limitation, RelayInformationDocument};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::relay::RelayLimits;

/// NIPs this server implements.
pub const SUPPORTED_NIPS: [u16; 4] = [1, 9, 11, 34];

/// GRASP specifications this server implements; `GRASP-NN` each.
pub const SUPPORTED_GRASPS: [&str; 1] = ["GRASP-01"];

/// The document served at `/` for `Accept: application/nostr+json`.
#[derive(Debug, Clone, Serialize)]
pub struct Nip11Document {
    /// The standard NIP-11 fields.
    #[serde(flatten)]
    pub info: RelayInformationDocument,
    /// GRASP specifications implemented.
    pub supported_grasps: Vec<String>,
    /// What a repository needs to be hosted here, in words.
    pub repo_acceptance_criteria: String,
    /// Present only when hosting is restricted beyond spam prevention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curation: Option<String>,
}

fn clamp(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl Nip11Document {
    /// The document describing this server as configured.
    pub fn new(config: &Config, limits: &RelayLimits) -> Self {
        // The project's URL, if the workspace names one; there is none to publish yet,
        // and a placeholder would send clients to a host that does not exist.
        let software = Some(env!("CARGO_PKG_REPOSITORY"))
            .filter(|url| !url.is_empty())
            .map(str::to_owned);
        let info = RelayInformationDocument {
            name: Some(config.relay_name.clone()),
            description: Some(config.relay_description.clone()),
            pubkey: config.relay_owner,
            contact: config.relay_contact.clone(),
            icon: config.relay_icon.clone(),
            supported_nips: Some(SUPPORTED_NIPS.to_vec()),
            software,
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            limitation: Some(Limitation {
                max_message_length: Some(clamp(limits.max_message_size)),
                max_subscriptions: Some(clamp(limits.max_subscriptions)),
                max_limit: Some(clamp(limits.max_query_limit)),
                max_subid_length: Some(64),
                auth_required: Some(false),
                payment_required: Some(false),
                restricted_writes: Some(true),
                ..Limitation::default()
            }),
            ..RelayInformationDocument::default()
        };
        Self {
            info,
            supported_grasps: SUPPORTED_GRASPS
                .iter()
                .map(|g| (*g).to_owned())
                .chain(config.grasp06.then(|| "GRASP-06".to_owned()))
                .collect(),
            repo_acceptance_criteria: acceptance_criteria(config),
            curation: curation(config),
        }
    }

    /// The JSON text, without `null` fields.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        strip_nulls(&mut value);
        value.to_string()
    }
}

fn acceptance_criteria(config: &Config) -> String {
    let base = config.public_base();
    format!(
        "Repository announcements (kind 30617) are accepted when they list this server in \
         their `clone` tag as {base}/<npub>/<identifier>.git and in their `relays` tag as {relay}. \
         Announcements by maintainers of a repository hosted here are accepted without that. \
         Repository states (kind 30618) are accepted from the repository's maintainers; a push \
         is accepted when it makes the repository's branches and tags match such a state. \
         {model} \
         Pull requests and other events are accepted when they reference a hosted repository \
         or an accepted event. Events whose git data has not arrived are held (not served) for \
         up to {expiry} and then dropped. At most {repos} repositories and {waiting} waiting \
         events per author.",
        relay = config.relay_url(),
        model = match config.maintainer_model {
            grasp_core::MaintainerModel::Reciprocal => {
                "Maintainers follow the reciprocal model: a listed key counts once its own \
                 announcement lists a confirmed maintainer back (role tags M/m/o honoured; \
                 invitations confer nothing until accepted)."
            }
            grasp_core::MaintainerModel::Listed => {
                "Maintainers follow the listed model: every key reachable through \
                 `maintainers` listings counts."
            }
        },
        expiry = humantime::format_duration(config.purgatory_expiry),
        repos = config.max_repos_per_author,
        waiting = config.max_purgatory_per_author,
    )
}

fn curation(config: &Config) -> Option<String> {
    if !config.is_curated() {
        return None;
    }
    let mut parts = Vec::new();
    if !config.allow_pubkeys.is_empty() {
        parts.push(format!(
            "only {} allowed authors may host repositories",
            config.allow_pubkeys.len()
        ));
    }
    if !config.deny_pubkeys.is_empty() {
        parts.push(format!("{} authors are blocked", config.deny_pubkeys.len()));
    }
    if !config.allow_identifiers.is_empty() {
        parts.push(format!(
            "only the repository identifiers {} are hosted",
            config.allow_identifiers.join(", ")
        ));
    }
    if !config.deny_identifiers.is_empty() {
        parts.push(format!(
            "the repository identifiers {} are not hosted",
            config.deny_identifiers.join(", ")
        ));
    }
    Some(format!(
        "This server is curated by its operator: {}.",
        parts.join("; ")
    ))
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn document(args: &[&str]) -> Value {
        let mut argv = vec!["graspd"];
        argv.extend_from_slice(args);
        let config = Config::try_parse_from(argv).expect("args");
        let doc = Nip11Document::new(&config, &RelayLimits::from_config(&config));
        serde_json::from_str(&doc.to_json()).expect("json")
    }

    fn has_null(value: &Value) -> bool {
        match value {
            Value::Null => true,
            Value::Object(map) => map.values().any(has_null),
            Value::Array(items) => items.iter().any(has_null),
            _ => false,
        }
    }

    #[test]
    fn shape_of_the_document() {
        let doc = document(&[]);
        assert_eq!(doc["name"], "graspd");
        assert!(doc["description"].as_str().is_some_and(|d| !d.is_empty()));
        // `software` is the project's URL when it has one, never a placeholder.
        match doc.get("software") {
            None => {}
            Some(url) => {
                let url = url.as_str().expect("a string");
                assert!(url.starts_with("https://"), "{url}");
                assert!(
                    !url.contains(".invalid") && !url.contains("example."),
                    "{url}"
                );
            }
        }
        assert!(!doc.to_string().contains("example.invalid"), "{doc}");
        assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(doc["supported_nips"], serde_json::json!([1, 9, 11, 34]));
        assert_eq!(doc["supported_grasps"], serde_json::json!(["GRASP-01"]));
        let criteria = doc["repo_acceptance_criteria"].as_str().expect("criteria");
        assert!(criteria.contains("http://127.0.0.1:7334/<npub>/<identifier>.git"));
        assert!(criteria.contains("ws://127.0.0.1:7334"));
        assert!(doc.get("curation").is_none(), "not curated by default");
        assert!(doc.get("pubkey").is_none() && doc.get("contact").is_none());
        assert!(doc.get("icon").is_none());
        assert_eq!(doc["limitation"]["max_subscriptions"], 64);
        assert!(!has_null(&doc), "no null anywhere: {doc}");
        for grasp in doc["supported_grasps"].as_array().expect("array") {
            let grasp = grasp.as_str().expect("string");
            let number = grasp.strip_prefix("GRASP-").expect("GRASP-NN");
            assert!(number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn curation_appears_only_when_curated() {
        let doc = document(&[
            "--deny-identifier",
            "spam",
            "--relay-contact",
            "ops@example.com",
        ]);
        let curation = doc["curation"].as_str().expect("curation present");
        assert!(curation.contains("spam"));
        assert_eq!(doc["contact"], "ops@example.com");
    }

    #[test]
    fn owner_and_icon_are_published() {
        let owner = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6";
        let doc = document(&[
            "--relay-owner",
            owner,
            "--relay-icon",
            "https://example.com/icon.png",
        ]);
        assert_eq!(
            doc["pubkey"],
            "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
        );
        assert_eq!(doc["icon"], "https://example.com/icon.png");
    }
}
