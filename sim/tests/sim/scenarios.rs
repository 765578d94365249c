//! Hand-built scenarios from SCENARIOS.md ("Purgatory sync"), run through the same driver
//! and invariants as the sweep. To add one: build a `World` and timed `Action`s, wrap them
//! in a `Plan`, `run_plan` it, and assert on the stats or the trace.

use grasp_core::{Config, Oid, Origin, Time, npub};
use grasp_sim::events::{announcement, pubkey, pull_request, state};
use grasp_sim::world::{Faults, RemoteRepo, Server, our_url};
use grasp_sim::{Action, Options, Plan, Shape, World, run_plan};
use std::collections::BTreeMap;
use std::time::Duration;

fn oid(n: u8) -> Oid {
    Oid::parse(&format!("{n:02x}").repeat(20)).expect("an oid")
}

fn server(domain: &str, d: &str, oids: &[Oid]) -> Server {
    let mut repo = RemoteRepo::default();
    for o in oids {
        repo.objects.insert(*o, Time::ZERO);
        repo.advertised.insert(*o);
    }
    Server {
        domain: domain.into(),
        prefix: "s".into(),
        latency_ms: (20, 40),
        faults: Faults::default(),
        repos: BTreeMap::from([(d.to_owned(), repo)]),
    }
}

/// Owner 10 announces `r` listing our URL and both servers, then publishes a state
/// needing `refs` at 1 s, both by relay sync.
fn plan(world: World, refs: &[(String, Oid)], extra: Vec<(Time, Action)>, end_min: u64) -> Plan {
    let owner = 10;
    let pk = npub(&pubkey(owner));
    let mut clone = vec![format!("{}/{pk}/r.git", our_url())];
    clone.extend((0..world.servers.len()).map(|s| world.url(s, &pk, "r")));
    let relay = format!("ws://{}", grasp_sim::world::OUR_AUTHORITY);
    let ann = announcement(owner, "r", &clone, &relay, &[], 0);
    let st = state(owner, "r", refs, 1);
    let mut actions = vec![
        (
            Time::ZERO,
            Action::Publish {
                event: ann,
                origin: Origin::Sync,
            },
        ),
        (
            Time::from_millis(1_000),
            Action::Publish {
                event: st,
                origin: Origin::Sync,
            },
        ),
    ];
    actions.extend(extra);
    Plan {
        shape: Shape::Basic,
        world,
        config: Config::new(our_url().parse().expect("a URL")),
        actions,
        end: Time::from_millis(end_min * 60_000),
    }
}

fn world(servers: Vec<Server>) -> World {
    World {
        domains: servers.iter().map(|s| s.domain.clone()).collect(),
        servers,
        fetch_timeout: Duration::from_secs(120),
    }
}

/// partial_oid_aggregation: o1 on A, o2 and o3 on B; released after both fetches, with
/// one advertisement and one fetch per server.
#[test]
fn partial_oid_aggregation() {
    let refs = vec![
        ("refs/heads/main".to_owned(), oid(1)),
        ("refs/heads/dev".to_owned(), oid(2)),
        ("refs/tags/v1".to_owned(), oid(3)),
    ];
    let w = world(vec![
        server("a.test", "r", &[oid(1)]),
        server("b.test", "r", &[oid(2), oid(3)]),
    ]);
    let r = run_plan(1, plan(w, &refs, vec![], 40), Options::default());
    assert!(r.violation.is_none(), "{:?}", r.violation);
    assert_eq!(
        r.stats.released.get("Sync"),
        Some(&2),
        "state and announcement"
    );
    assert_eq!(r.stats.total_requests(), 4, "{:?}", r.stats.requests);
    assert!(
        r.stats.worst_latency_ms < 2_000,
        "{} ms",
        r.stats.worst_latency_ms
    );
}

/// downtime_counts: data nowhere; the server is down from 25 to 35 min: on restart the
/// state is expired, not given a fresh 30 min (deadlines_across_restarts checks the rest).
#[test]
fn downtime_counts() {
    let refs = vec![("refs/heads/main".to_owned(), oid(7))];
    let w = world(vec![server("a.test", "r", &[])]);
    let restart = (
        Time::from_millis(25 * 60_000),
        Action::Restart {
            downtime: Duration::from_secs(600),
        },
    );
    let r = run_plan(2, plan(w, &refs, vec![restart], 80), Options::default());
    assert!(r.violation.is_none(), "{:?}", r.violation);
    assert_eq!(r.stats.expired, 1);
    assert_eq!(r.stats.restarts, 1);
}

/// BEHAVIOR §5 "partial servers": a server answering "not our ref" for some ids must not
/// make the others fail. A state needs o1; a pull request's tip is o2. Server A holds and
/// advertises o1 and also advertises o2, which it cannot serve (say its ref moved between
/// advertisement and fetch). The engine asks A for both in one fetch, which fails as a
/// whole; it then asks for each half, so o1 arrives and the state is released.
#[test]
fn not_our_ref_for_some_ids_does_not_block_the_others() {
    let refs = vec![("refs/heads/main".to_owned(), oid(1))];
    let mut a = server("a.test", "r", &[oid(1)]);
    a.repos.get_mut("r").expect("r").lies.insert(oid(2));
    let w = world(vec![a]);
    let fork = w.url(0, &npub(&pubkey(10)), "r");
    let pr = pull_request(0, 10, "r", oid(2), &[fork], 2);
    let publish = Action::Publish {
        event: pr,
        origin: Origin::Sync,
    };
    let opts = Options::default();
    let r = run_plan(
        3,
        plan(w, &refs, vec![(Time::from_millis(1_200), publish)], 40),
        opts,
    );
    assert!(r.violation.is_none(), "{:?}", r.violation);
    // The state (and the announcement it satisfies) released; the pull request expires.
    assert_eq!(r.stats.released.get("Sync"), Some(&2), "{:?}", r.stats);
}
