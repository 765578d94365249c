//! How graspd's process ends: when its engine task dies it exits non-zero (so that a
//! service manager restarts it) instead of refusing every event while looking alive;
//! on SIGTERM it stops the engine after its writes settle and exits 0, and every
//! event it acknowledged is served after the restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use grasp_tests::events::Announcement;
use grasp_tests::nostr_sdk::prelude::{Event, EventId, Keys};
use grasp_tests::relay::RelayClient;
use grasp_tests::server::{Graspd, Options};

/// How long graspd may take to exit once it should.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A panic in the engine task (injected through the debug build's
/// `GRASPD_DEBUG_PANIC_ON_EVENT` hook) ends the process with a non-zero status and an
/// error line saying why. Needs a debug build of graspd (the hook is compiled out of
/// release builds), which is what the harness builds unless `GRASPD_BIN` says otherwise.
#[tokio::test]
async fn a_panicking_engine_task_ends_graspd() {
    let mut server =
        Graspd::start_with(Options::default().env("GRASPD_DEBUG_PANIC_ON_EVENT", "1")).await;
    let relay = RelayClient::connect(&server.relay_url()).await;
    let owner = Keys::generate();
    let event = Announcement::on(&server, &owner.public_key(), "doomed").sign(&owner);
    // The engine panics on it: the answer is a refusal or a closed connection.
    if let Ok(ok) = relay.try_publish(&event).await {
        assert!(
            !ok.accepted,
            "an event the engine never decided was accepted: {ok}"
        );
    }
    let status = server.wait_exit(EXIT_TIMEOUT);
    let log = server.log();
    let status = status.unwrap_or_else(|| {
        panic!("graspd still runs {EXIT_TIMEOUT:?} after its engine task panicked\n{log}")
    });
    assert!(
        !status.success(),
        "graspd exited with {status} after a panic"
    );
    assert!(
        log.contains("ERROR") && log.contains("the engine task panicked"),
        "no error line names the engine task's panic:\n{log}"
    );
}

/// SIGTERM while clients are publishing announcements (each a journal write and a
/// repository to create): graspd exits 0 after the engine task has stopped (not
/// merely been dropped with the runtime), and every event it answered `OK true` is
/// still there after a restart.
#[tokio::test]
async fn sigterm_with_events_in_flight_exits_cleanly_and_keeps_what_was_acknowledged() {
    let mut server = Graspd::start().await;
    let acknowledged: Arc<Mutex<Vec<(EventId, Event)>>> = Arc::default();
    let mut publishers = Vec::new();
    for n in 0..4 {
        let relay = RelayClient::connect(&server.relay_url()).await;
        let events: Vec<_> = (0..400)
            .map(|i| {
                let owner = Keys::generate();
                Announcement::on(&server, &owner.public_key(), &format!("r{n}-{i}")).sign(&owner)
            })
            .collect();
        let acknowledged = Arc::clone(&acknowledged);
        publishers.push(tokio::spawn(async move {
            for event in &events {
                match relay.try_publish(event).await {
                    Ok(ok) if ok.accepted => {
                        acknowledged
                            .lock()
                            .expect("lock")
                            .push((event.id, event.clone()));
                    }
                    // Refused while shutting down, or the connection closed.
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }));
    }
    grasp_tests::eventually(EXIT_TIMEOUT, "some events acknowledged", || {
        let n = acknowledged.lock().expect("lock").len();
        async move { (n >= 40).then_some(()) }
    })
    .await;
    let status = server.terminate_status(EXIT_TIMEOUT);
    let log = server.log();
    let status =
        status.unwrap_or_else(|| panic!("graspd did not exit within {EXIT_TIMEOUT:?}\n{log}"));
    assert!(
        status.success(),
        "graspd exited with {status} on SIGTERM\n{log}"
    );
    let shutting = log.find("shutting down");
    let stopped = log.find("engine task stopped");
    assert!(
        matches!((shutting, stopped), (Some(a), Some(b)) if a < b),
        "the engine task was not stopped after the signal:\n{log}"
    );
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() < 1600,
        "every event was answered before the signal: nothing was in flight"
    );

    // Sent again after the restart, each is a duplicate (stored, or waiting in the
    // restored purgatory); an event that was lost would be taken in afresh.
    server.restart().await;
    let relay = RelayClient::connect(&server.relay_url()).await;
    for (id, event) in &acknowledged {
        let ok = relay.publish(event).await;
        assert!(
            ok.accepted && ok.message.starts_with("duplicate:"),
            "acknowledged event {id} was lost by the shutdown: sent again, it got {ok}"
        );
    }
}
