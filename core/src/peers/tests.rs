//! The peers component alone: peer set, dialing, backoff, rate limits, paging.

use super::*;

fn on() -> RelaySync {
    RelaySync {
        enabled: true,
        ..RelaySync::default()
    }
}

const T0: u64 = 1_800_000_000_000;

fn listed(keys: &[&str]) -> RelayListings {
    let mut l = RelayListings::default();
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    l.add("repo", &relay_keys(&keys));
    l
}

/// One listed peer, dialed and connected, covering identifiers `ds`: the component,
/// the peer, the time, and the effects of the connection.
fn connected(ds: &[&str]) -> (Peers, PeerId, Time, Vec<Effect>) {
    let mut p = Peers::new(on(), "ws://127.0.0.1:7334", 1);
    let mut out = Vec::new();
    let now = Time::from_millis(T0);
    p.refresh(now, &listed(&["ws://127.0.0.1:9"]), &mut out);
    let Some(Effect::PeerConnect { peer, .. }) = out.pop() else {
        panic!("dialed")
    };
    let items = PeerItems {
        ds: ds.iter().map(|d| (*d).to_owned()).collect(),
        ..PeerItems::default()
    };
    p.on_connected(now, peer, items, &mut out);
    (p, peer, now, out)
}

fn connects(out: &[Effect]) -> Vec<String> {
    out.iter()
        .filter_map(|e| match e {
            Effect::PeerConnect { url, .. } => Some(url.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn peers_from_listings_never_our_own_url() {
    let mut p = Peers::new(on(), "ws://127.0.0.1:7334", 1);
    let mut out = Vec::new();
    let l = listed(&[
        "WS://127.0.0.1:7334/",
        "ws://127.0.0.1:7335",
        "http://x.example",
    ]);
    p.refresh(Time::from_millis(T0), &l, &mut out);
    assert_eq!(connects(&out), ["ws://127.0.0.1:7335"]);
    let view = p.view(Time::from_millis(T0));
    assert_eq!(view.len(), 2, "{view:?}");
    let refused = view.iter().find(|v| v.url == "http://x.example").unwrap();
    assert_eq!(refused.state, "refused");
    assert!(refused.reason.as_deref().unwrap().contains("scheme 'http'"));
}

#[test]
fn reconnect_backoff_then_unlisted_peer_dropped_after_ten_minutes() {
    let mut p = Peers::new(on(), "ws://127.0.0.1:7334", 1);
    let mut out = Vec::new();
    let mut now = Time::from_millis(T0);
    p.refresh(now, &listed(&["ws://127.0.0.1:9"]), &mut out);
    let Some(Effect::PeerConnect { peer, .. }) = out.pop() else {
        panic!("dialed")
    };
    let mut delays = Vec::new();
    for _ in 0..4 {
        p.on_failed(
            now,
            peer,
            PeerFailureKind::Disconnected,
            "refused".into(),
            &mut out,
        );
        let retry = p.next_timer().unwrap();
        delays.push(retry.since(now).as_secs());
        now = retry;
        out.clear();
        p.on_timeout(now, &mut |_| PeerItems::default(), &mut out);
        assert_eq!(connects(&out), ["ws://127.0.0.1:9"], "retried");
    }
    for (d, e) in delays.iter().zip([5, 10, 20, 40]) {
        assert!((e * 8 / 10..=e * 12 / 10).contains(d), "{delays:?}");
    }
    // No longer listed: disconnected 10 min later, not before.
    out.clear();
    p.refresh(now, &RelayListings::default(), &mut out);
    p.on_timeout(
        now.plus(Duration::from_secs(599)),
        &mut |_| PeerItems::default(),
        &mut out,
    );
    assert!(
        !out.iter()
            .any(|e| matches!(e, Effect::PeerDisconnect { .. }))
    );
    p.on_timeout(
        now.plus(UNLISTED_GRACE),
        &mut |_| PeerItems::default(),
        &mut out,
    );
    assert!(out.contains(&Effect::PeerDisconnect { peer }));
    assert!(p.view(now).is_empty());
}

#[test]
fn connected_peer_subscribes_pages_and_checkpoints() {
    let (mut p, peer, now, mut out) = connected(&["repo"]);
    let reqs: Vec<PeerSub> = out
        .iter()
        .filter_map(|e| match e {
            Effect::PeerReq { sub, .. } => Some(*sub),
            _ => None,
        })
        .collect();
    assert_eq!(reqs[0], PeerSub::Live(0), "live first");
    let pages: Vec<JobId> = reqs
        .iter()
        .filter_map(|s| match s {
            PeerSub::Page(j) => Some(*j),
            _ => None,
        })
        .collect();
    assert_eq!(
        pages.len(),
        JOBS_AT_ONCE,
        "discovery and states, two at once"
    );
    out.clear();
    // Both jobs end on a page with nothing new: the checkpoint is journalled.
    for job in pages {
        p.on_page_done(now, peer, job, (0, 0, None), &mut out);
    }
    assert!(
        out.iter().any(|e| matches!(
            e,
            Effect::Persist { record: JournalRecord::PeerCheckpoint { at, .. } }
                if *at == T0 / 1000 - LIVE_OVERLAP
        )),
        "{out:?}"
    );
}

#[test]
fn rate_limited_peer_pauses_new_reqs_for_65_s() {
    let (mut p, peer, now, mut out) = connected(&["repo"]);
    let Some(job) = out.iter().find_map(|e| match e {
        Effect::PeerReq {
            sub: PeerSub::Page(j),
            ..
        } => Some(*j),
        _ => None,
    }) else {
        panic!("a page")
    };
    out.clear();
    p.on_eose(peer, PeerSub::Live(0));
    p.on_closed(
        now,
        peer,
        PeerSub::Page(job),
        "rate-limited: slow down",
        &mut out,
    );
    assert!(out.is_empty(), "no REQ while paused: {out:?}");
    assert_eq!(p.view(now)[0].state, "rate_limited");
    p.on_timeout(
        now.plus(Duration::from_secs(64)),
        &mut |_| PeerItems::default(),
        &mut out,
    );
    assert!(
        !out.iter()
            .any(|e| matches!(e, Effect::PeerReq { .. } | Effect::PeerDisconnect { .. })),
        "{out:?}"
    );
    p.on_timeout(
        now.plus(RATE_PAUSE),
        &mut |_| PeerItems::default(),
        &mut out,
    );
    assert!(
        out.iter()
            .any(|e| matches!(e, Effect::PeerReq { sub: PeerSub::Page(j), .. } if *j == job)),
        "the job resumes: {out:?}"
    );
}

#[test]
fn fifty_bad_events_make_a_peer_naughty_and_journalled() {
    let (mut p, peer, now, mut out) = connected(&[]);
    out.clear();
    p.on_misbehaved(now, peer, 49, "bad signature", &mut out);
    assert!(out.is_empty());
    p.on_misbehaved(now, peer, 1, "bad signature", &mut out);
    assert!(out.contains(&Effect::PeerDisconnect { peer }));
    assert!(out.iter().any(|e| matches!(
        e,
        Effect::Persist { record: JournalRecord::PeerNaughty { until, .. } }
            if *until == now.plus(Duration::from_secs(12 * 3600))
    )));
    assert_eq!(p.view(now)[0].state, "naughty");
}
