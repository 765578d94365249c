//! Effect traces: an insta snapshot of one whole story (relative times, ids redacted), and
//! determinism — the same inputs give a byte-identical trace.

mod support;

use grasp_core::nostr::prelude::Keys;
use grasp_core::*;
use std::time::Duration;
use support::*;

/// A story: announcement, a maintainer's relay-synced state whose data is split over two
/// servers, one of which fails once, then a PR pushed git-first.
fn story() -> Harness {
    // The flat rule: the story's maintainer publishes no announcement of its own.
    let mut h = Harness::listed();
    let (owner, m): (Keys, Keys) = (key(1), key(2));
    h.send(&announcement(
        &owner,
        "r",
        10,
        &["https://a.example/r.git", "https://b.example/r.git"],
        &[&m],
    ));
    let st = state(
        &m,
        "r",
        11,
        &[("refs/heads/main", oid(1)), ("refs/tags/v1", oid(2))],
        Some("refs/heads/main"),
    );
    h.send_from(&st, Origin::Sync);
    h.advance(Duration::from_millis(500));
    h.answer_list("https://a.example/r.git", &[("refs/heads/main", oid(1))]);
    h.fail("https://b.example/r.git", FailureKind::Timeout);
    h.answer_fetch("https://a.example/r.git", &[oid(1)]);
    h.advance(Duration::from_secs(20));
    h.answer_list("https://b.example/r.git", &[("refs/tags/v1", oid(2))]);
    h.answer_fetch("https://b.example/r.git", &[oid(2)]);
    let pr = pull_request(&key(5), &owner, "r", 30, &oid(7).to_string(), &[]);
    h.push(
        &repo(&owner, "r"),
        &[(&format!("refs/nostr/{}", pr.id.to_hex()), Some(oid(7)))],
    );
    h.send(&pr);
    h
}

/// One line per effect: `+<ms> <effect>` with long ids shortened.
fn render(h: &Harness) -> String {
    let t0 = h.trace.first().map(|(t, _)| *t).unwrap_or(Time::ZERO);
    let mut out = String::new();
    for (t, e) in &h.trace {
        let line = match e {
            Effect::Reply {
                accepted, message, ..
            } => format!("Reply {accepted} {message:?}"),
            Effect::StoreEvent { event, path } => {
                format!("StoreEvent kind={} {path:?}", event.kind)
            }
            Effect::Persist { record } => format!("Persist {}", kind_of(record)),
            Effect::Forget { key } => {
                format!("Forget {}", key.to_string().split(':').next().unwrap_or(""))
            }
            other => {
                let s = format!("{other:?}");
                s.split(" {").next().unwrap_or(&s).to_string() + &detail(other)
            }
        };
        out.push_str(&format!("+{} {line}\n", t.since(t0).as_millis()));
    }
    out
}

fn kind_of(r: &JournalRecord) -> &'static str {
    match r {
        JournalRecord::Waiting { .. } => "waiting",
        JournalRecord::Placeholder { .. } => "placeholder",
        JournalRecord::Expired { .. } => "expired",
        JournalRecord::DomainWindow { .. } => "domain window",
        JournalRecord::PeerCheckpoint { .. } => "peer checkpoint",
        JournalRecord::PeerNaughty { .. } => "naughty peer",
    }
}

fn detail(e: &Effect) -> String {
    match e {
        Effect::ListRefs { url, .. } => format!(" {url}"),
        Effect::Fetch { url, oids, .. } => format!(" {url} {} oids", oids.len()),
        Effect::CheckObjects { repos, oids, .. } => {
            format!(" {} repos {} oids", repos.len(), oids.len())
        }
        Effect::AlignRepo { refs, head, .. } => format!(" {} refs head={head:?}", refs.len()),
        Effect::SetRef { target, .. } => format!(" set={}", target.is_some()),
        _ => String::new(),
    }
}

#[test]
fn sync_story_trace() {
    insta::assert_snapshot!(render(&story()));
}

#[test]
fn same_inputs_same_trace() {
    let a = story();
    let b = story();
    let fa: Vec<String> = a
        .trace
        .iter()
        .map(|(t, e)| format!("{t:?} {e:?}"))
        .collect();
    let fb: Vec<String> = b
        .trace
        .iter()
        .map(|(t, e)| format!("{t:?} {e:?}"))
        .collect();
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(&fb) {
        // Signatures are randomized by the signer; everything the engine emits beyond
        // the event bodies must match byte for byte.
        if !x.contains("sig:") {
            assert_eq!(x, y, "the traces diverge");
        }
    }
}
