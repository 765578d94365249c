//! What one repository announcement says about membership (MAINTAINERS.md, "Reading one
//! announcement"): parsed once when the announcement arrives, so that computing the sets
//! of an identifier never looks at tags again.

use nostr::prelude::{Event, PublicKey};

/// The membership facts of an author's latest announcement of an identifier.
///
/// Both readings are kept (they are small: an announcement lists a handful of keys), so
/// the maintainer model is a choice made where the sets are computed, and nothing else
/// needs to know which model is on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Membership {
    /// The reciprocal reading: `listed(a)`, the author included where the rule says so;
    /// `None` when the announcement counts for nothing (a legacy `maintainers` value that
    /// is not a key: fail closed).
    listed: Option<Box<[PublicKey]>>,
    /// Distinct subjects of active `M` records.
    leads: Box<[PublicKey]>,
    /// The author validly declines: named by a role record but holding no active
    /// maintainer record of their own, or deferring.
    declines: bool,
    /// The flat reading (`--maintainer-model listed`): every valid `maintainers` value and
    /// every active `M`/`m` subject, the author excluded.
    flat: Box<[PublicKey]>,
}

/// The role of a record's letter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Lead,
    Maintainer,
    Moderator,
}

/// One well-formed role record.
struct Record {
    role: Role,
    subject: PublicKey,
    active: bool,
    deferred: bool,
}

impl Membership {
    /// Reads the membership tags of announcement `event`.
    pub(crate) fn parse(event: &Event) -> Membership {
        let author = event.pubkey;
        let mut records = Vec::new();
        let mut role_mode = false;
        let mut named = false;
        for tag in event.tags.iter() {
            let s = tag.as_slice();
            let role = match s.first().map(String::as_str) {
                Some("M") => Role::Lead,
                Some("m") => Role::Maintainer,
                Some("o") => Role::Moderator,
                _ => continue,
            };
            role_mode = true;
            // A record names its subject even when malformed: "its self-records are all
            // malformed" declines.
            named |= s.get(1).is_some_and(|v| *v == author.to_hex());
            if let Some(r) = Record::parse(role, &s[1..]) {
                records.push(r);
            }
        }
        let maintainers: Vec<&str> = crate::event::tag_values(event, "maintainers").collect();
        let valid: Vec<PublicKey> = maintainers
            .iter()
            .filter_map(|v| parse_key(v))
            .filter(|pk| *pk != author)
            .collect();
        let active_maintainer = |r: &&Record| r.active && r.role != Role::Moderator;
        let mut flat = valid.clone();
        flat.extend(
            records
                .iter()
                .filter(active_maintainer)
                .map(|r| r.subject)
                .filter(|pk| *pk != author),
        );
        let flat = dedup(flat);
        if !role_mode {
            let listed = (valid.len() == maintainers.len()).then(|| {
                let mut l = valid;
                l.push(author);
                dedup(l)
            });
            return Membership {
                listed,
                leads: Box::new([]),
                declines: false,
                flat,
            };
        }
        let mut listed: Vec<PublicKey> = records
            .iter()
            .filter(active_maintainer)
            .map(|r| r.subject)
            .collect();
        if !named {
            listed.push(author);
        }
        let leads = dedup(
            records
                .iter()
                .filter(|r| r.active && r.role == Role::Lead)
                .map(|r| r.subject)
                .collect(),
        );
        // Walk the author's own records in tag order: an active maintainer record counts,
        // a deferring one withdraws until a later active one supersedes it.
        let (mut holds, mut deferring) = (false, false);
        for r in records.iter().filter(|r| r.subject == author) {
            if r.deferred {
                deferring = true;
            } else if active_maintainer(&r) {
                holds = true;
                deferring = false;
            }
        }
        Membership {
            listed: Some(dedup(listed)),
            leads,
            declines: named && (!holds || deferring),
            flat,
        }
    }

    /// `listed(a)` under the reciprocal reading, or `None` if this announcement counts for
    /// nothing.
    pub(crate) fn listed(&self) -> Option<&[PublicKey]> {
        self.listed.as_deref()
    }

    /// Whether the reciprocal reading lists `pk`.
    pub(crate) fn lists(&self, pk: &PublicKey) -> bool {
        self.listed().is_some_and(|l| l.contains(pk))
    }

    /// Distinct active leads.
    pub(crate) fn leads(&self) -> &[PublicKey] {
        &self.leads
    }

    /// Whether the author validly declines membership.
    pub(crate) fn declines(&self) -> bool {
        self.declines
    }

    /// The flat reading: the keys this announcement lists, the author excluded.
    pub(crate) fn flat(&self) -> &[PublicKey] {
        &self.flat
    }

    /// A legacy membership listing `keys` (tests and hand-built announcements).
    #[cfg(test)]
    pub(crate) fn legacy(author: PublicKey, keys: &[PublicKey]) -> Membership {
        let mut listed = keys.to_vec();
        listed.push(author);
        Membership {
            listed: Some(dedup(listed)),
            leads: Box::new([]),
            declines: false,
            flat: dedup(keys.iter().copied().filter(|k| *k != author).collect()),
        }
    }
}

impl Record {
    /// `[subject, b1, b2, …]` after the letter; `None` when malformed (grants nothing).
    fn parse(role: Role, rest: &[String]) -> Option<Record> {
        let subject = parse_key(rest.first()?)?;
        let bounds = &rest[1..];
        let mut deferred = false;
        for (i, b) in bounds.iter().enumerate() {
            let last = i + 1 == bounds.len();
            // Positions alternate start (even index), end (odd index).
            if b == "defer" && last && i % 2 == 1 {
                deferred = true;
            } else if b.is_empty() || !b.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
        }
        Some(Record {
            role,
            subject,
            active: bounds.len() % 2 == 1 || bounds.is_empty(),
            deferred,
        })
    }
}

/// A subject or `maintainers` value: 64 lowercase hex digits naming a valid key.
fn parse_key(v: &str) -> Option<PublicKey> {
    let hex = v.len() == 64 && v.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    hex.then(|| PublicKey::from_hex(v).ok()).flatten()
}

fn dedup(mut keys: Vec<PublicKey>) -> Box<[PublicKey]> {
    keys.sort();
    keys.dedup();
    keys.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    fn keys(n: u8) -> Keys {
        Keys::parse(&format!("{:064x}", u64::from(n) + 1)).unwrap()
    }

    fn announce(author: &Keys, tags: &[Vec<String>]) -> Membership {
        let mut all = vec![Tag::parse(["d", "x"]).unwrap()];
        all.extend(tags.iter().map(|t| Tag::parse(t.clone()).unwrap()));
        let e = EventBuilder::new(Kind::GitRepoAnnouncement, "")
            .tags(all)
            .finalize(author)
            .unwrap();
        Membership::parse(&e)
    }

    fn rec(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn legacy_lists_author_and_maintainers_and_fails_closed_on_a_bad_value() {
        let (a, b) = (keys(0), keys(1));
        let m = announce(&a, &[rec(&["maintainers", &b.public_key().to_hex()])]);
        assert!(m.lists(&a.public_key()) && m.lists(&b.public_key()));
        assert!(!m.declines() && m.leads().is_empty());
        let bad = announce(
            &a,
            &[rec(&["maintainers", &b.public_key().to_hex(), "npub1nope"])],
        );
        assert_eq!(bad.listed(), None, "one bad value voids the announcement");
        assert_eq!(bad.flat(), &[b.public_key()], "the flat rule skips it");
    }

    #[test]
    fn role_mode_ignores_maintainers_and_reads_parity() {
        let (a, b, c) = (keys(0), keys(1), keys(2));
        let (ah, bh, ch) = (
            a.public_key().to_hex(),
            b.public_key().to_hex(),
            c.public_key().to_hex(),
        );
        let m = announce(
            &a,
            &[
                rec(&["M", &ah]),
                rec(&["m", &bh, "10", "20"]),
                rec(&["m", &ch, "10", "20", "30"]),
                rec(&["maintainers", &bh]),
            ],
        );
        assert!(m.lists(&a.public_key()) && m.lists(&c.public_key()));
        assert!(
            !m.lists(&b.public_key()),
            "ended record, maintainers ignored"
        );
        assert_eq!(m.leads(), &[a.public_key()]);
        assert!(!m.declines());
    }

    #[test]
    fn malformed_records_grant_nothing_and_self_records_decide_declining() {
        let (a, b) = (keys(0), keys(1));
        let (ah, bh) = (a.public_key().to_hex(), b.public_key().to_hex());
        let upper = bh.to_uppercase();
        let m = announce(
            &a,
            &[
                rec(&["M", &ah, "x"]),
                rec(&["m", &upper]),
                rec(&["m", &bh, "defer"]),
            ],
        );
        assert!(m.listed().unwrap().is_empty());
        assert!(m.declines(), "a's only self-record is malformed");
        let left = announce(&a, &[rec(&["M", &bh]), rec(&["m", &ah, "1", "2"])]);
        assert!(left.declines());
        let moderator = announce(&a, &[rec(&["M", &bh]), rec(&["o", &ah])]);
        assert!(moderator.declines() && !moderator.lists(&a.public_key()));
        let deferring = announce(&a, &[rec(&["m", &ah]), rec(&["m", &ah, "5", "defer"])]);
        assert!(deferring.declines());
        let back = announce(&a, &[rec(&["m", &ah, "5", "defer"]), rec(&["m", &ah, "7"])]);
        assert!(!back.declines());
        let unnamed = announce(&a, &[rec(&["m", &bh])]);
        assert!(!unnamed.declines() && unnamed.lists(&a.public_key()));
    }
}
