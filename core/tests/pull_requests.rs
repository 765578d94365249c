//! Scenarios "Pull requests" (SCENARIOS.md).

mod support;

use grasp_core::nostr::prelude::{Event, Keys, Kind};
use support::*;

fn served(h: &mut Harness, owner: &Keys, maintainers: &[&Keys]) {
    h.send(&announcement(owner, "r", 10, &[], maintainers));
    h.send(&state(owner, "r", 11, &[("refs/heads/main", oid(1))], None));
    assert!(
        h.push(&repo(owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
}

fn nostr_ref(e: &Event) -> String {
    format!("refs/nostr/{}", e.id.to_hex())
}

#[test]
fn pr_event_first() {
    let mut h = Harness::new();
    let owner = key(1);
    served(&mut h, &owner, &[]);
    let pr = pull_request(&key(5), &owner, "r", 20, &oid(7).to_string(), &[]);
    assert_ok(h.send(&pr), true, PURGATORY);
    let r = repo(&owner, "r");
    assert!(h.push(&r, &[(&nostr_ref(&pr), Some(oid(7)))]).is_accepted());
    assert!(h.is_stored(&pr.id));
    assert_eq!(h.refs[&r].get(&nostr_ref(&pr)), Some(&oid(7)));
}

#[test]
fn pr_git_first_placeholder() {
    let mut h = Harness::new();
    let owner = key(1);
    served(&mut h, &owner, &[]);
    let pr = pull_request(&key(5), &owner, "r", 20, &oid(7).to_string(), &[]);
    let r = repo(&owner, "r");
    assert!(
        h.push(&r, &[(&nostr_ref(&pr), Some(oid(7)))]).is_accepted(),
        "git first is accepted"
    );
    assert!(
        h.journal.keys().any(|k| k.starts_with("p:")),
        "a placeholder is journalled"
    );
    assert_ok(h.send(&pr), true, "");
    assert!(h.is_stored(&pr.id), "released at once");
    assert!(
        !h.journal.keys().any(|k| k.starts_with("p:")),
        "placeholder gone"
    );
}

#[test]
fn pr_tip_mismatch_refused() {
    let mut h = Harness::new();
    let owner = key(1);
    served(&mut h, &owner, &[]);
    let pr = pull_request(&key(5), &owner, "r", 20, &oid(7).to_string(), &[]);
    h.send(&pr);
    let v = h.push(&repo(&owner, "r"), &[(&nostr_ref(&pr), Some(oid(8)))]);
    assert!(!v.is_accepted());
    assert!(
        v.refs[0]
            .1
            .clone()
            .unwrap_err()
            .contains(&oid(7).to_string()),
        "names the expected tip"
    );
}

#[test]
fn pr_git_first_wrong_tip() {
    let mut h = Harness::new();
    let owner = key(1);
    served(&mut h, &owner, &[]);
    let pr = pull_request(&key(5), &owner, "r", 20, &oid(7).to_string(), &[]);
    let r = repo(&owner, "r");
    assert!(h.push(&r, &[(&nostr_ref(&pr), Some(oid(8)))]).is_accepted());
    assert_ok(h.send(&pr), true, PURGATORY);
    assert!(
        !h.refs[&r].contains_key(&nostr_ref(&pr)),
        "the wrong ref is deleted at once"
    );
    assert!(
        !h.push(&r, &[(&nostr_ref(&pr), Some(oid(8)))]).is_accepted(),
        "a wrong re-push is refused"
    );
    assert!(h.push(&r, &[(&nostr_ref(&pr), Some(oid(7)))]).is_accepted());
    assert!(h.is_stored(&pr.id));
}

#[test]
fn nostr_ref_requires_event_id() {
    let mut h = Harness::new();
    let owner = key(1);
    served(&mut h, &owner, &[]);
    let r = repo(&owner, "r");
    for bad in ["refs/nostr/123", &format!("refs/nostr/{}", "A".repeat(64))] {
        let v = h.push(&r, &[(bad, Some(oid(7)))]);
        assert!(!v.is_accepted(), "{bad}");
        assert!(
            v.refs[0].1.clone().unwrap_err().contains("64"),
            "a readable reason"
        );
    }
}

#[test]
fn pr_update() {
    let mut h = Harness::new();
    let owner = key(1);
    served(&mut h, &owner, &[]);
    let author = key(5);
    let pr = pull_request(&author, &owner, "r", 20, &oid(7).to_string(), &[]);
    h.send(&pr);
    let r = repo(&owner, "r");
    h.push(&r, &[(&nostr_ref(&pr), Some(oid(7)))]);
    let update = sign(
        &author,
        Kind::GitPullRequestUpdate,
        30,
        vec![
            s(&["a", &format!("30617:{}:r", owner.public_key().to_hex())]),
            s(&["E", &pr.id.to_hex()]),
            s(&["c", &oid(9).to_string()]),
        ],
    );
    assert_ok(h.send(&update), true, PURGATORY);
    assert!(
        !h.push(&r, &[(&nostr_ref(&update), Some(oid(8)))])
            .is_accepted()
    );
    assert!(
        h.push(&r, &[(&nostr_ref(&update), Some(oid(9)))])
            .is_accepted()
    );
    assert!(h.is_stored(&update.id));
}

#[test]
fn pr_mirrored_to_owner_repos() {
    let mut h = Harness::new();
    let (owner, m) = (key(1), key(2));
    served(&mut h, &owner, &[&m]);
    let am = announcement(&m, "r", 10, &[], &[&owner]);
    h.send(&am);
    let pr = pull_request(&key(5), &owner, "r", 20, &oid(7).to_string(), &[]);
    h.send(&pr);
    h.push(&repo(&owner, "r"), &[(&nostr_ref(&pr), Some(oid(7)))]);
    let rm = repo(&m, "r");
    assert_eq!(
        h.refs[&rm].get(&nostr_ref(&pr)),
        Some(&oid(7)),
        "mirrored into the co-maintainer's repo"
    );
    assert!(h.objects[&rm].contains(&oid(7)));
}

#[test]
fn placeholder_expires() {
    let mut h = Harness::new();
    let owner = key(1);
    served(&mut h, &owner, &[]);
    let pr = pull_request(&key(5), &owner, "r", 20, &oid(7).to_string(), &[]);
    let r = repo(&owner, "r");
    h.push(&r, &[(&nostr_ref(&pr), Some(oid(7)))]);
    h.advance(mins(29));
    assert!(h.refs[&r].contains_key(&nostr_ref(&pr)));
    h.advance(mins(2));
    assert!(
        !h.refs[&r].contains_key(&nostr_ref(&pr)),
        "the placeholder's ref is removed"
    );
    assert!(!h.journal.keys().any(|k| k.starts_with("p:")));
}
