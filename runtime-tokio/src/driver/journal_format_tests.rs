//! The journal's record format: records written before the format byte (format 0, a
//! fixture of their bytes) are read, a record that cannot be read stops the start with
//! an error naming it.

use grasp_core::{JournalRecord, Origin, Time};

use super::journal::{FORMAT, Journal, encode};

/// Keys and values as graspd wrote them before records had a format byte.
const FORMAT_0: &str = include_str!("fixtures/journal_format0.tsv");

fn fixture() -> Vec<(&'static str, &'static str)> {
    FORMAT_0
        .lines()
        .map(|l| l.split_once('\t').expect("key<TAB>value"))
        .collect()
}

fn records(journal: &Journal) -> Vec<JournalRecord> {
    let mut out = Vec::new();
    journal.for_each(|r| out.push(r)).expect("readable journal");
    out
}

#[tokio::test]
async fn format_0_records_are_read_and_rewritten_in_the_current_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    for (key, value) in fixture() {
        Journal::put_raw(&path, key, value.as_bytes());
    }
    let journal = Journal::open(&path).unwrap();
    let read = records(&journal);
    assert_eq!(read.len(), fixture().len(), "every format-0 record is read");
    let mut keys: Vec<String> = read.iter().map(|r| r.key().to_string()).collect();
    let mut expected: Vec<&str> = fixture().iter().map(|(k, _)| *k).collect();
    keys.sort();
    expected.sort_unstable();
    assert_eq!(keys, expected, "each record read under its own key");
    let waiting = read
        .iter()
        .find(|r| matches!(r, JournalRecord::Waiting { .. }))
        .expect("the waiting event");
    let JournalRecord::Waiting {
        event,
        origin,
        deadline,
        ..
    } = waiting
    else {
        unreachable!()
    };
    assert_eq!(
        (event.kind.as_u16(), *origin, *deadline),
        (30617, Origin::Client, Time::from_millis(2000))
    );
    assert!(event.verify().is_ok(), "the event survives byte for byte");
    assert!(
        read.iter()
            .any(|r| matches!(r, JournalRecord::Placeholder { client: None, .. })),
        "a placeholder written before the per-address budget has no client"
    );

    // Written again by this build: the format byte, then the same record.
    for record in &read {
        let bytes = encode(record).unwrap();
        assert_eq!(bytes[0], FORMAT);
        journal.put(record).await.unwrap();
    }
    drop(journal);
    let journal = Journal::open(&path).unwrap();
    let mut again = records(&journal);
    let mut before = read;
    again.sort_by_key(JournalRecord::key);
    before.sort_by_key(JournalRecord::key);
    assert_eq!(again, before);
}

#[tokio::test]
async fn formats_0_and_1_mixed_in_one_journal_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    let (key, value) = fixture()[3];
    Journal::put_raw(&path, key, value.as_bytes());
    let journal = Journal::open(&path).unwrap();
    let new = JournalRecord::Expired {
        event_id: grasp_core::nostr::prelude::EventId::from_slice(&[9; 32]).unwrap(),
        until: Time::from_millis(9),
    };
    journal.put(&new).await.unwrap();
    let read = records(&journal);
    assert_eq!(read.len(), 2);
    assert!(read.contains(&new));
}

/// What `for_each` says about a journal holding `value` under `key` beside a good record.
fn error_for(key: &str, value: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.redb");
    let (good_key, good) = fixture()[4];
    Journal::put_raw(&path, good_key, good.as_bytes());
    Journal::put_raw(&path, key, value);
    let journal = Journal::open(&path).unwrap();
    match journal.for_each(|_| {}) {
        Ok(n) => panic!("a journal with a bad record {key:?} was read ({n} records)"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_corrupt_record_is_an_error_naming_it() {
    let key = "w:1f81e626ee54d64d454ba66b8290ca2040ab9c743a3edb79a96954c0618767da";
    for value in [
        &b"\x01{\"type\":\"waiting\",\"event\":"[..],
        b"{\"type\":\"no_such_record\"}",
        b"\x01",
    ] {
        let e = error_for(key, value);
        assert!(
            e.contains(key) && e.contains("unreadable"),
            "{value:?}: {e}"
        );
    }
    let e = error_for(key, b"");
    assert!(e.contains(key) && e.contains("empty"), "{e}");
}

#[test]
fn an_unknown_format_is_an_error_naming_the_record_and_the_format() {
    let e = error_for("x:03", b"\x07{\"type\":\"expired\"}");
    assert!(
        e.contains("\"x:03\"") && e.contains("format 7") && e.contains("newer graspd"),
        "{e}"
    );
}

/// The daemon does not start over a journal it cannot read, and says which record.
#[tokio::test]
async fn a_corrupt_record_stops_the_start() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config =
        crate::config::Config::try_parse_from(["graspd", "--data-dir", data.to_str().unwrap()])
            .unwrap();
    let server = crate::server::Server::open(config).await.unwrap();
    Journal::put_raw(&data.join("journal.redb"), "x:bad", b"\x01not json");
    let started = super::start(
        server.config(),
        server.store().clone(),
        server.hub().clone(),
        server.repos().clone(),
    )
    .await;
    let e = started.err().expect("the start fails").to_string();
    assert!(
        e.contains("purgatory journal") && e.contains("\"x:bad\""),
        "{e}"
    );
}
