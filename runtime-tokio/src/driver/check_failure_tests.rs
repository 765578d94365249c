//! An object check that cannot read a repository says so ([`Input::CheckFailed`]),
//! with what it found elsewhere, instead of reporting the objects absent.

use grasp_core::{CheckId, Input, Oid, RepoId};

use super::backends::find_objects;
use crate::test_keys::keys;
use grasp_executor::{Looked, check_answer};

/// A check id (only the engine mints them; its serialized form is the number).
fn check_id(n: u64) -> CheckId {
    serde_json::from_value(serde_json::json!(n)).unwrap()
}

/// A bare repository holding one blob; returns its object id.
fn repo_with_blob(dir: &std::path::Path) -> Oid {
    let repo = git2::Repository::init_bare(dir).unwrap();
    let id = repo.blob(b"here").unwrap();
    id.to_string().parse().unwrap()
}

#[test]
fn an_unreadable_repository_is_reported_not_read_as_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.git");
    let blob = repo_with_blob(&good);
    let elsewhere: Oid = "2222222222222222222222222222222222222222".parse().unwrap();
    let broken = RepoId::new(keys(1).public_key(), "r");
    let fine = RepoId::new(keys(2).public_key(), "r");
    let dirs = vec![
        // Not a repository at all (as after a disk fault or a removal behind graspd).
        (broken.clone(), tmp.path().join("missing.git")),
        (fine.clone(), good),
    ];
    let looked = find_objects(&dirs, vec![blob, elsewhere]);
    assert_eq!(looked.found, vec![(blob, fine.clone())]);
    assert_eq!(looked.missing, 1);
    assert_eq!(
        looked.failed.iter().map(|(r, _)| r).collect::<Vec<_>>(),
        vec![&broken],
        "the unreadable repository is named"
    );
    match check_answer(check_id(7), looked) {
        Input::CheckFailed { check, found } => {
            assert_eq!(check, check_id(7));
            assert_eq!(found, vec![(blob, fine)], "what was found still counts");
        }
        other => panic!("an unreadable repository read as an answer: {other:?}"),
    }
}

#[test]
fn a_failure_that_hid_nothing_is_a_plain_answer() {
    let repo = RepoId::new(keys(1).public_key(), "r");
    let oid: Oid = "1111111111111111111111111111111111111111".parse().unwrap();
    let looked = Looked {
        found: vec![(oid, repo.clone())],
        failed: vec![(repo.clone(), "later repository unreadable".into())],
        missing: 0,
    };
    assert!(matches!(
        check_answer(check_id(1), looked),
        Input::ObjectsChecked { .. }
    ));
    let clean = Looked {
        missing: 1,
        ..Looked::default()
    };
    assert!(matches!(
        check_answer(check_id(2), clean),
        Input::ObjectsChecked { found, .. } if found.is_empty()
    ));
}
