//! Scenarios "Purgatory sync" (SCENARIOS.md): when, from whom and how much to fetch.

mod support;

use grasp_core::nostr::prelude::{Event, Keys};
use grasp_core::*;
use std::time::Duration;
use support::*;

const A: &str = "https://a.example/r.git";
const B: &str = "https://b.example/r.git";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An announced repo `d` (in purgatory) whose clone tags also name `remotes`.
fn announced(h: &mut Harness, owner: &Keys, d: &str, remotes: &[&str], maintainers: &[&Keys]) {
    let ann = announcement(owner, d, 10, remotes, maintainers);
    assert_ok(h.send(&ann), true, PURGATORY);
}

fn main_state(author: &Keys, d: &str, at: u64, o: Oid) -> Event {
    state(author, d, at, &[("refs/heads/main", o)], None)
}

#[test]
fn client_event_waits_3min() {
    let mut h = Harness::new();
    let owner = key(1);
    announced(&mut h, &owner, "r", &[A], &[]);
    h.send(&main_state(&owner, "r", 11, oid(1)));
    h.advance(Duration::from_secs(179));
    assert!(
        h.remote.is_empty(),
        "no request before 3 min: {:?}",
        h.remote
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(h.remote.len(), 1, "the first attempt at 3 min");
    assert!(
        matches!(h.remote[0], Remote::ListRefs { .. }),
        "it starts by learning the server's refs"
    );
}

#[test]
fn sync_event_waits_500ms() {
    let mut h = Harness::new();
    let owner = key(1);
    let ms5: Vec<Keys> = (10..15).map(key).collect();
    let refs: Vec<&Keys> = ms5.iter().collect();
    let ids: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    for d in &ids {
        announced(
            &mut h,
            &owner,
            d,
            &[&format!("https://a{d}.example/{d}.git")],
            &refs,
        );
    }
    let mut last = std::collections::BTreeMap::new();
    for (n, m) in ms5.iter().enumerate() {
        for d in &ids {
            let r = h.send_from(
                &main_state(m, d, 20 + n as u64, oid(100 + n as u64)),
                Origin::Sync,
            );
            assert_ok(r, true, PURGATORY);
            last.insert(d.clone(), h.now);
            h.advance(ms(2));
        }
    }
    assert_eq!(
        h.engine.sync_view().len(),
        10,
        "one queue entry per identifier"
    );
    h.advance(ms(600));
    assert_eq!(h.remote.len(), 10, "one first request per identifier");
    for r in &h.remote {
        let d = r
            .url()
            .trim_start_matches("https://a")
            .split('.')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            r_at(r).since(last[&d]),
            ms(500),
            "{d}: 500 ms after the last event of its burst"
        );
    }
}

#[test]
fn single_server_fetch_releases() {
    let mut h = Harness::new();
    let owner = key(1);
    announced(&mut h, &owner, "r", &[A], &[]);
    let st = main_state(&owner, "r", 11, oid(1));
    h.send_from(&st, Origin::Sync);
    h.advance(ms(500));
    h.answer_list(A, &[("refs/heads/main", oid(1))]);
    assert!(matches!(&h.remote[..], [Remote::Fetch { oids, .. }] if oids == &vec![oid(1)]));
    h.answer_fetch(A, &[oid(1)]);
    assert!(h.is_stored(&st.id), "released right after the fetch");
    assert_eq!(
        h.stored.iter().find(|(e, _)| e.id == st.id).unwrap().1,
        ServePath::Sync
    );
    assert!(h.remote.is_empty());
    assert!(
        h.engine.sync_view().is_empty(),
        "the identifier leaves the queue"
    );
}

#[test]
fn partial_oid_aggregation() {
    let mut h = Harness::new();
    let owner = key(1);
    announced(&mut h, &owner, "r", &[A, B], &[]);
    let st = state(
        &owner,
        "r",
        11,
        &[
            ("refs/heads/main", oid(1)),
            ("refs/heads/x", oid(2)),
            ("refs/tags/v", oid(3)),
        ],
        None,
    );
    h.send_from(&st, Origin::Sync);
    h.advance(ms(500));
    assert_eq!(h.remote.len(), 2, "both domains are asked at once");
    h.answer_list(A, &[("refs/heads/main", oid(1))]);
    h.answer_list(
        B,
        &[
            ("refs/heads/x", oid(2)),
            ("refs/tags/v", oid(3)),
            ("refs/heads/other", oid(50)),
        ],
    );
    let asked_a = h.answer_fetch(A, &[oid(1)]);
    assert_eq!(
        asked_a,
        vec![oid(1)],
        "A is asked only for what it advertises"
    );
    assert!(!h.is_stored(&st.id));
    let asked_b = h.answer_fetch(B, &[oid(2), oid(3)]);
    assert_eq!(
        asked_b,
        vec![oid(2), oid(3)],
        "B is asked only for what it advertises and we need"
    );
    assert!(h.is_stored(&st.id), "released after both fetches");
}

#[test]
fn release_per_fetch() {
    let mut h = Harness::listed();
    let (owner, m) = (key(1), key(2));
    announced(&mut h, &owner, "r", &[A, B], &[&m]);
    let s1 = main_state(&owner, "r", 11, oid(1));
    let s2 = state(&m, "r", 12, &[("refs/heads/dev", oid(2))], None);
    h.send_from(&s1, Origin::Sync);
    h.send_from(&s2, Origin::Sync);
    h.advance(ms(500));
    h.answer_list(A, &[("refs/heads/main", oid(1))]);
    h.answer_list(B, &[("refs/heads/dev", oid(2))]);
    h.answer_fetch(A, &[oid(1)]);
    assert!(h.is_stored(&s1.id), "the first is released after A's fetch");
    assert!(!h.is_stored(&s2.id), "before B answers");
    h.answer_fetch(B, &[oid(2)]);
    assert!(h.is_stored(&s2.id));
}

#[test]
fn backoff_schedule() {
    let mut h = Harness::new();
    let owner = key(1);
    announced(&mut h, &owner, "r", &[A], &[]);
    let st = main_state(&owner, "r", 11, oid(1));
    h.send_from(&st, Origin::Sync);
    let mut starts = Vec::new();
    let end = h.now.plus(mins(31));
    while h.now < end {
        h.advance(ms(100));
        while let Some(r) = h.remote.first().cloned() {
            starts.push(r_at(&r));
            h.fail(r.url(), FailureKind::Unreachable);
        }
    }
    let gaps: Vec<u64> = starts
        .windows(2)
        .map(|w| w[1].since(w[0]).as_secs())
        .collect();
    assert_eq!(
        &gaps[..4],
        &[20, 40, 80, 120],
        "20 s, 40 s, 80 s, then 120 s: {gaps:?}"
    );
    assert!(gaps[3..].iter().all(|g| *g == 120), "{gaps:?}");
    assert!(!h.engine.is_waiting(&st.id), "expired at 30 min");
    assert!(
        h.engine.sync_view().is_empty(),
        "and the identifier left the queue"
    );
    assert!(starts.last().unwrap().since(starts[0]) < mins(30));
}

fn r_at(r: &Remote) -> Time {
    match r {
        Remote::ListRefs { at, .. } | Remote::Fetch { at, .. } => *at,
    }
}

#[test]
fn new_event_resets_backoff() {
    let mut h = Harness::new();
    let (owner, m) = (key(1), key(2));
    announced(&mut h, &owner, "r", &[A], &[&m]);
    h.send_from(&main_state(&owner, "r", 11, oid(1)), Origin::Sync);
    h.advance(ms(500));
    for wait in [20, 40, 80] {
        h.fail(A, FailureKind::Timeout);
        h.advance(Duration::from_secs(wait));
    }
    h.fail(A, FailureKind::Timeout); // attempt 4 done: next in 120 s
    assert_eq!(h.engine.sync_view()[0].attempts, 4);
    h.advance(Duration::from_secs(10));
    h.send_from(&main_state(&m, "r", 12, oid(2)), Origin::Sync);
    assert_eq!(h.engine.sync_view()[0].attempts, 0, "the count is reset");
    h.advance(ms(500));
    assert_eq!(
        h.remote.len(),
        1,
        "the next attempt is brought forward to 500 ms"
    );
    // A client event never pushes an earlier attempt later.
    h.fail(A, FailureKind::Timeout); // next in 20 s
    h.send(&state(
        &owner,
        "r",
        13,
        &[("refs/heads/main", oid(3))],
        None,
    ));
    h.advance(Duration::from_secs(20));
    assert_eq!(h.remote.len(), 1, "still at +20 s, not +3 min");
}

/// Twenty identifiers whose only remote is on one domain.
fn crowd(h: &mut Harness, n: usize) -> Vec<String> {
    let owner = key(1);
    let ds: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    for d in &ds {
        announced(
            h,
            &owner,
            d,
            &[&format!("https://one.example/{d}.git")],
            &[],
        );
        h.send_from(
            &main_state(&owner, d, 11, oid(1000 + d[1..].parse::<u64>().unwrap())),
            Origin::Sync,
        );
    }
    h.advance(ms(500));
    ds
}

#[test]
fn domain_concurrency_limit() {
    let mut h = Harness::new();
    crowd(&mut h, 20);
    assert_eq!(
        h.remote.len(),
        5,
        "never more than 5 in flight to one domain"
    );
    for _ in 0..40 {
        let Some(r) = h.remote.first().cloned() else {
            break;
        };
        h.fail(r.url(), FailureKind::NotOurRef);
        assert!(h.remote.len() <= 5);
    }
}

#[test]
fn domain_rate_limit() {
    let mut h = Harness::new();
    crowd(&mut h, 20);
    let mut times: Vec<Time> = Vec::new();
    let end = h.now.plus(mins(10));
    while h.now < end {
        while let Some(r) = h.remote.first().cloned() {
            times.push(r_at(&r));
            h.fail(r.url(), FailureKind::NotOurRef);
        }
        h.advance(ms(250));
    }
    assert!(
        times.len() > 60,
        "work continued over the 10 min: {}",
        times.len()
    );
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .filter(|u| u.since(*t) < Duration::from_secs(60))
            .count();
        assert!(
            in_window <= 30,
            "{in_window} requests within 60 s starting at {t}"
        );
    }
}

#[test]
fn round_robin_fairness() {
    let mut h = Harness::new();
    let owner = key(1);
    // Each identifier lists 3 URLs on the same domain.
    let ds: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    for d in &ds {
        let urls: Vec<String> = (0..3)
            .map(|k| format!("https://one.example/{d}-{k}.git"))
            .collect();
        let u: Vec<&str> = urls.iter().map(String::as_str).collect();
        announced(&mut h, &owner, d, &u, &[]);
        h.send_from(&main_state(&owner, d, 11, oid(7)), Origin::Sync);
    }
    h.advance(ms(500));
    let mut order: Vec<String> = Vec::new();
    for _ in 0..12 {
        let r = h.remote.first().cloned().unwrap();
        let d = r
            .url()
            .rsplit('/')
            .next()
            .unwrap()
            .split('-')
            .next()
            .unwrap()
            .to_string();
        order.push(d);
        h.fail(r.url(), FailureKind::NotOurRef);
    }
    // The first 8 requests went to 8 different identifiers: none waited for another to
    // finish all its URLs.
    let mut first8 = order[..8].to_vec();
    first8.sort();
    first8.dedup();
    assert_eq!(first8.len(), 8, "served in turn: {order:?}");
}

#[test]
fn saturated_domain_does_not_block_others() {
    let mut h = Harness::new();
    crowd(&mut h, 10);
    let owner = key(2);
    announced(&mut h, &owner, "b", &["https://b.example/b.git"], &[]);
    h.send_from(&main_state(&owner, "b", 11, oid(2)), Origin::Sync);
    h.advance(ms(500));
    assert!(
        h.remote
            .iter()
            .any(|r| r.url() == "https://b.example/b.git"),
        "B is asked at once"
    );
}

#[test]
fn own_domain_excluded() {
    let mut h = Harness::new();
    let owner = key(1);
    let own_other = format!("{OUR}/{}/r.git", npub(&key(9).public_key()));
    announced(&mut h, &owner, "r", &[&own_other, A], &[]);
    h.send_from(&main_state(&owner, "r", 11, oid(1)), Origin::Sync);
    h.advance(ms(500));
    assert!(
        h.remote.iter().all(|r| !r.url().starts_with(OUR)),
        "{:?}",
        h.remote
    );
    let view = h.engine.sync_view();
    assert!(
        view[0]
            .urls
            .iter()
            .any(|(u, _, o)| u == &own_other && o.contains("own URL"))
    );
}

#[test]
fn url_once_per_attempt() {
    let mut h = Harness::new();
    let (owner, m) = (key(1), key(2));
    announced(&mut h, &owner, "r", &[A], &[&m]);
    announced(&mut h, &m, "r", &[A], &[&owner]);
    h.send_from(&main_state(&owner, "r", 11, oid(1)), Origin::Sync);
    h.advance(ms(500));
    assert_eq!(h.remote.len(), 1);
    h.answer_list(A, &[]);
    assert!(h.remote.is_empty(), "A is not asked twice in one attempt");
}

#[test]
fn fetch_failure_is_input() {
    let mut h = Harness::new();
    let owner = key(1);
    announced(&mut h, &owner, "r", &[A], &[]);
    let st = main_state(&owner, "r", 11, oid(1));
    h.send_from(&st, Origin::Sync);
    h.advance(ms(500));
    for kind in [
        FailureKind::Timeout,
        FailureKind::Unreachable,
        FailureKind::NotOurRef,
        FailureKind::BadResponse,
    ] {
        h.answer_list(A, &[("refs/heads/main", oid(1))]);
        h.fail(A, kind.clone());
        assert!(
            h.engine.is_waiting(&st.id),
            "{kind:?} leaves the event waiting"
        );
        assert_eq!(h.engine.sync_view().len(), 1, "and the identifier queued");
        h.advance(Duration::from_secs(120));
    }
    h.answer_list(A, &[("refs/heads/main", oid(1))]);
    h.answer_fetch(A, &[oid(1)]);
    assert!(h.is_stored(&st.id), "a later success still releases");
    assert_eq!(
        h.engine.metrics().counters.failures.values().sum::<u64>(),
        4
    );
}

#[test]
fn push_during_sync() {
    let mut h = Harness::new();
    let owner = key(1);
    announced(&mut h, &owner, "r", &[A], &[]);
    let st = main_state(&owner, "r", 11, oid(1));
    h.send_from(&st, Origin::Sync);
    h.advance(ms(500));
    h.answer_list(A, &[("refs/heads/main", oid(1))]);
    assert!(matches!(h.remote[..], [Remote::Fetch { .. }]));
    assert!(
        h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert_eq!(h.stored_count(&st.id), 1);
    h.answer_fetch(A, &[oid(1)]);
    assert_eq!(
        h.stored_count(&st.id),
        1,
        "the fetch result releases nothing twice"
    );
    assert!(h.engine.sync_view().is_empty());
    assert!(h.engine.poll_timeout().is_none_or(|t| t > h.now));
}

#[test]
fn not_our_ref_for_some_ids_does_not_block_the_others() {
    let mut h = Harness::new();
    let (owner, m) = (key(1), key(2));
    announced(&mut h, &owner, "r", &[A], &[&m]);
    let s1 = main_state(&owner, "r", 11, oid(1));
    let s2 = state(&m, "r", 12, &[("refs/heads/dev", oid(2))], None);
    h.send_from(&s1, Origin::Sync);
    h.send_from(&s2, Origin::Sync);
    h.advance(ms(500));
    h.answer_list(
        A,
        &[("refs/heads/main", oid(1)), ("refs/heads/dev", oid(2))],
    );
    // A advertised o2 but cannot serve it: the whole fetch fails ...
    h.fail(A, FailureKind::NotOurRef);
    // ... and the engine asks again for each half, so o1 still arrives.
    let asked = h.answer_fetch(A, &[oid(1)]);
    assert_eq!(asked, vec![oid(1)], "the first half alone");
    assert!(h.is_stored(&s1.id));
    h.fail(A, FailureKind::NotOurRef);
    assert!(
        h.remote.is_empty(),
        "a single refused id is not split further"
    );
    assert!(h.engine.is_waiting(&s2.id));
}

#[test]
fn sync_view_shows_each_urls_last_outcome() {
    let mut h = Harness::new();
    let owner = key(1);
    announced(&mut h, &owner, "r", &[A, B], &[]);
    h.send_from(&main_state(&owner, "r", 11, oid(1)), Origin::Sync);
    h.advance(ms(500));
    let last = |h: &Harness, url: &str| {
        let view = h.engine.sync_view();
        view[0]
            .urls
            .iter()
            .find(|(u, _, _)| u == url)
            .map(|(_, _, o)| o.clone())
    };
    assert_eq!(last(&h, A), None, "nothing is known before an answer");
    h.fail(A, FailureKind::Timeout);
    assert!(
        last(&h, A).is_some_and(|o| o.starts_with("failed (Timeout)")),
        "visible while the attempt still waits for B: {:?}",
        h.engine.sync_view()
    );
    h.answer_list(B, &[("refs/heads/other", oid(7))]);
    assert_eq!(last(&h, B).as_deref(), Some("advertised 1 refs"));
    assert!(
        last(&h, A).is_some_and(|o| o.starts_with("failed (Timeout)")),
        "and kept after the attempt ended: {:?}",
        h.engine.sync_view()
    );
}

/// Issue 13: a server that hangs does not delay the next attempt on the others. The
/// attempt is scheduled by backoff from the servers that answered; the hung request keeps
/// its slot, and its answer, when it comes, is still used.
#[test]
fn a_hung_server_does_not_delay_the_next_attempt_on_the_others() {
    let mut h = Harness::new();
    let owner = key(1);
    announced(&mut h, &owner, "r", &[A, B], &[]);
    let st = main_state(&owner, "r", 11, oid(1));
    h.send(&st);
    h.advance(Duration::from_secs(180));
    assert_eq!(h.remote.len(), 2, "both servers asked: {:?}", h.remote);
    // B answers at once without the data; A hangs.
    h.answer_list(B, &[]);
    h.advance(Duration::from_secs(20));
    let to_b: Vec<&Remote> = h.remote.iter().filter(|r| r.url() == B).collect();
    assert_eq!(
        to_b.len(),
        1,
        "B asked again after the first backoff step: {:?}",
        h.remote
    );
    assert_eq!(
        h.remote.iter().filter(|r| r.url() == A).count(),
        1,
        "A's hung request is not doubled"
    );
    // A finally answers with the data: its answer is used.
    h.answer_list(A, &[("refs/heads/main", oid(1))]);
    h.answer_fetch(A, &[oid(1)]);
    assert!(
        h.is_stored(&st.id),
        "released from the hung server's late answer"
    );
}

/// Issue 13: once a push releases everything an identifier waited for, its sync entry
/// goes at once (it lingered until its next timer, visible in the view and the gauges).
#[test]
fn a_push_that_releases_everything_ends_the_sync_entry() {
    let mut h = Harness::new();
    let owner = key(1);
    announced(&mut h, &owner, "r", &[A], &[]);
    h.send(&main_state(&owner, "r", 11, oid(1)));
    assert_eq!(h.engine.sync_view().len(), 1);
    assert!(
        h.push(&repo(&owner, "r"), &[("refs/heads/main", Some(oid(1)))])
            .is_accepted()
    );
    assert!(
        h.engine.sync_view().is_empty(),
        "nothing is waited for: {:?}",
        h.engine.sync_view()
    );
    assert_eq!(h.engine.metrics().sync_queue, 0);
}

/// Issue 13: two servers listed at once are not both asked for an object one fetch in
/// flight already covers; should that fetch fail, the other server is asked.
#[test]
fn an_object_in_flight_from_one_server_is_not_asked_of_another() {
    for first_fails in [false, true] {
        let mut h = Harness::new();
        let owner = key(1);
        announced(&mut h, &owner, "r", &[A, B], &[]);
        let st = state(
            &owner,
            "r",
            11,
            &[("refs/heads/main", oid(1)), ("refs/heads/dev", oid(2))],
            None,
        );
        h.send(&st);
        h.advance(Duration::from_secs(180));
        let both = [("refs/heads/main", oid(1)), ("refs/heads/dev", oid(2))];
        h.answer_list(A, &both);
        h.answer_list(B, &both);
        let fetches: Vec<&Remote> = h
            .remote
            .iter()
            .filter(|r| matches!(r, Remote::Fetch { .. }))
            .collect();
        assert_eq!(
            fetches.len(),
            1,
            "one fetch covers both objects: {:?}",
            h.remote
        );
        if first_fails {
            h.fail(A, FailureKind::Unreachable);
            let to_b = h
                .remote
                .iter()
                .any(|r| matches!(r, Remote::Fetch { url, .. } if url == B));
            assert!(to_b, "B is asked once A's fetch failed: {:?}", h.remote);
            h.answer_fetch(B, &[oid(1), oid(2)]);
        } else {
            h.answer_fetch(A, &[oid(1), oid(2)]);
            assert!(h.remote.is_empty(), "nothing asked of B: {:?}", h.remote);
        }
        assert!(h.is_stored(&st.id));
    }
}
