//! Unit tests of the repository index: maintainer sets and counts.

use super::*;
use nostr::prelude::Keys;

fn pk(n: u8) -> PublicKey {
    Keys::parse(&format!("{:064x}", u64::from(n) + 1))
        .unwrap()
        .public_key()
}

fn ann(author: PublicKey, maintainers: Vec<PublicKey>) -> AnnInfo {
    AnnInfo {
        id: EventId::from_slice(&[1; 32]).unwrap(),
        created_at: Timestamp::from_secs(1),
        membership: Membership::legacy(author, &maintainers),
        clone: vec![],
        relays: vec![],
        hosted: true,
        status: AnnStatus::Served,
    }
}

#[test]
fn recursive_cycle_safe_maintainers() {
    let put = |model| {
        let mut idx = RepoIndex::new(Keyed::new(1), model);
        idx.put_announcement(pk(0), "x", ann(pk(0), vec![pk(1)]));
        idx.put_announcement(pk(1), "x", ann(pk(1), vec![pk(2)]));
        idx.put_announcement(pk(2), "x", ann(pk(2), vec![pk(1), pk(0)]));
        idx
    };
    let flat = put(MaintainerModel::Listed);
    assert_eq!(
        flat.maintainers(&pk(0), "x"),
        BTreeSet::from([pk(0), pk(1), pk(2)])
    );
    // another d is unrelated
    assert_eq!(flat.maintainers(&pk(0), "y"), BTreeSet::from([pk(0)]));
    // 1 never lists 0 back (nor does 2, whom only 1 lists): only the owner counts.
    let reciprocal = put(MaintainerModel::Reciprocal);
    assert_eq!(reciprocal.maintainers(&pk(0), "x"), BTreeSet::from([pk(0)]));
    assert_eq!(
        reciprocal.maintainers(&pk(2), "x"),
        BTreeSet::from([pk(0), pk(1), pk(2)]),
        "2 lists 1, who lists 2 back; 0 lists 1 too"
    );
}

#[test]
fn hosted_counts_follow_announcements() {
    let mut idx = RepoIndex::new(Keyed::new(1), MaintainerModel::Reciprocal);
    idx.put_announcement(pk(0), "x", ann(pk(0), vec![]));
    idx.put_announcement(pk(0), "y", ann(pk(0), vec![]));
    idx.put_announcement(pk(0), "x", ann(pk(0), vec![]));
    assert_eq!(
        idx.hosted_count(&pk(0)),
        2,
        "a replacement is not a new repository"
    );
    let elsewhere = AnnInfo {
        hosted: false,
        ..ann(pk(0), vec![])
    };
    idx.put_announcement(pk(0), "y", elsewhere);
    assert_eq!(idx.hosted_count(&pk(0)), 1, "it no longer lists us");
    idx.remove_announcement(&pk(0), "x");
    idx.remove_announcement(&pk(0), "y");
    assert_eq!((idx.hosted_count(&pk(0)), idx.hosted.len()), (0, 0));
    assert_eq!(idx.hosted_count(&pk(1)), 0);
}
