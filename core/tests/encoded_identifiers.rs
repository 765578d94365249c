//! Identifiers that need percent-encoding in clone URLs (issue 13, item 3): the
//! announcement's clone URL names `d` after percent-decoding its path segment, the way
//! clients write it (`my repo` → `my%20repo.git`) and the way URL parsers normalise a raw
//! one (a space or `ü` typed raw is encoded by the parser).

mod support;

use grasp_core::nostr::prelude::{Event, Keys, Kind};
use grasp_core::*;
use support::*;

/// An announcement of `d` whose only clone URL on this server is `…/<npub>/<segment>.git`.
fn announcement_with_segment(owner: &Keys, d: &str, segment: &str, at: u64) -> Event {
    let url = format!("{OUR}/{}/{segment}.git", npub(&owner.public_key()));
    sign(
        owner,
        Kind::GitRepoAnnouncement,
        at,
        vec![
            s(&["d", d]),
            vec!["clone".into(), url],
            s(&["relays", RELAY]),
        ],
    )
}

#[test]
fn percent_encoded_clone_urls_are_ours() {
    let owner = key(1);
    // (d, the URL's segment, whether it is the spelling we print ourselves)
    for (d, segment, canonical) in [
        ("my repo", "my%20repo", true),
        ("100%", "100%25", true),
        ("a+b", "a+b", true),
        ("a+b", "a%2Bb", false),
        ("über", "%C3%BCber", true),
        ("über", "%c3%bcber", false),
        ("x y+z%ü", "x%20y+z%25%C3%BC", true),
        ("x.git", "x.git", true),
    ] {
        let mut h = Harness::new();
        let ann = announcement_with_segment(&owner, d, segment, 10);
        assert_ok(h.send(&ann), true, PURGATORY);
        assert!(
            h.objects.contains_key(&repo(&owner, d)),
            "{segment}: the repository of {d:?} is created"
        );
        assert_eq!(encode_identifier(d) == segment, canonical, "{d:?}");
    }
}

#[test]
fn raw_clone_urls_are_ours_where_the_url_parser_encodes_them() {
    let owner = key(1);
    // A URL parser encodes a raw space and non-ASCII; `+` is a literal plus in a path.
    for d in ["my repo", "über", "a+b", "x y+z"] {
        let mut h = Harness::new();
        let ann = announcement_with_segment(&owner, d, d, 10);
        assert_ok(h.send(&ann), true, PURGATORY);
        assert!(h.objects.contains_key(&repo(&owner, d)), "{d:?}");
    }
}

#[test]
fn urls_naming_another_identifier_or_badly_encoded_are_not_ours() {
    let owner = key(1);
    for (d, segment) in [
        // `+` is not a space in a path.
        ("my repo", "my+repo"),
        // A raw `%` is not an escape: the URL does not serve `100%` (it is refused by
        // the git routes too), so it does not count; the refusal names the right URL.
        ("100%", "100%"),
        // Decoded once only.
        ("100%", "100%2525"),
        ("a", "a%2F"),
        ("my repo", "my%20repo2"),
        ("über", "%FCber"),
    ] {
        let mut h = Harness::new();
        let ann = announcement_with_segment(&owner, d, segment, 10);
        let got = h.send(&ann);
        assert_ok(got.clone(), false, "blocked:");
        let expected = format!(
            "{OUR}/{}/{}.git",
            npub(&owner.public_key()),
            encode_identifier(d)
        );
        assert!(
            got.1.contains(&expected),
            "{segment}: the refusal names {expected}: {got:?}"
        );
        assert!(h.objects.is_empty(), "{segment}: nothing is created");
    }
}

#[test]
fn refusal_names_the_encoded_clone_url() {
    let mut h = Harness::new();
    let owner = key(1);
    let ann = announcement_with_segment(&owner, "my repo", "elsewhere", 10);
    let got = h.send(&ann);
    assert!(got.1.contains("/my%20repo.git"), "{got:?}");
}

/// A server whose public URL has a path (`--public-url https://example.com/git/`, an
/// operator sharing a host): its clone and relay URLs carry the path, and the same URLs
/// without it, or under another path, are not ours.
#[test]
fn a_base_path_is_part_of_our_clone_and_relay_urls() {
    let owner = key(1);
    let np = npub(&owner.public_key());
    let announce = |clone: String, relay: &str| {
        sign(
            &owner,
            Kind::GitRepoAnnouncement,
            10,
            vec![
                s(&["d", "r"]),
                vec!["clone".into(), clone],
                s(&["relays", relay]),
            ],
        )
    };
    for base in ["http://grasp.test/git/", "http://grasp.test/git"] {
        let ours = Config::new(base.parse().unwrap());
        let mut h = Harness::with_config(ours.clone());
        let ann = announce(
            format!("http://grasp.test/git/{np}/r.git"),
            "ws://grasp.test/git",
        );
        assert_ok(h.send(&ann), true, PURGATORY);
        assert!(h.objects.contains_key(&repo(&owner, "r")), "{base}");
        for (clone, relay) in [
            (
                format!("http://grasp.test/{np}/r.git"),
                "ws://grasp.test/git",
            ),
            (
                format!("http://grasp.test/gitx/{np}/r.git"),
                "ws://grasp.test/git",
            ),
            (
                format!("http://grasp.test/git/{np}/r.git"),
                "ws://grasp.test",
            ),
            (
                format!("http://grasp.test/git/{np}/r.git"),
                "ws://grasp.test/gi",
            ),
        ] {
            let mut h = Harness::with_config(ours.clone());
            let (accepted, message) = h.send(&announce(clone.clone(), relay));
            assert!(!accepted, "{clone} + {relay} under {base}: {message}");
            assert!(!h.objects.contains_key(&repo(&owner, "r")), "{clone}");
        }
    }
}
