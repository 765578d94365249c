//! Object checks run off the engine task: a check that cannot finish (its repository's
//! `objects/info/alternates` is a FIFO nobody writes, so reading it blocks) holds only
//! the event that waits for it, while everyone else is answered.

use grasp_core::nostr::prelude::Kind;
use grasp_core::npub;
use std::io::Write;
use std::time::Duration;

use super::sync_fixture::sign;
use crate::repo::RepoPath;
use crate::test_keys::keys;
use crate::testing::{TestServer, WsClient};

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The next `OK` on `client`: `(accepted, message)`.
async fn next_ok(client: &mut WsClient) -> (bool, String) {
    loop {
        let reply = client.recv().await;
        if reply[0] == "OK" {
            return (
                reply[2].as_bool().expect("accepted"),
                reply[3].as_str().expect("message").to_owned(),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_object_check_holds_only_its_own_event() {
    let server = TestServer::start_engine(&["--client-sync-delay", "1h"]).await;
    let owner = keys(1);
    let url = format!("{}/{}/slow.git", server.base(), npub(&owner.public_key()));
    let relay = format!("ws://{}", server.addr);
    let mut c = WsClient::connect(&server).await;
    let ann = sign(
        &owner,
        Kind::GitRepoAnnouncement,
        100,
        vec![
            v(&["d", "slow"]),
            v(&["clone", &url]),
            v(&["relays", &relay]),
        ],
    );
    c.publish(&ann).await;
    assert!(next_ok(&mut c).await.0, "the announcement is accepted");
    let path = RepoPath::new(owner.public_key(), "slow").expect("path");
    let info = server.server.repos().dir(&path).join("objects/info");
    std::fs::create_dir_all(&info).expect("objects/info");
    let fifo = info.join("alternates");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());

    // The state's check opens the repository's object database and blocks.
    let st = sign(
        &owner,
        Kind::RepoState,
        101,
        vec![v(&["d", "slow"]), v(&["refs/heads/main", &"1".repeat(40)])],
    );
    c.publish(&st).await;
    let mut other = WsClient::connect(&server).await;
    let note = sign(&keys(2), Kind::TextNote, 102, vec![]);
    other.publish(&note).await;
    let meanwhile = tokio::time::timeout(Duration::from_secs(5), next_ok(&mut other)).await;

    // Let the check finish (an empty alternates file) before judging, so that a failure
    // does not leave a blocking thread the runtime would wait for forever.
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open the FIFO for writing");
        let _ = f.write_all(b"");
        drop(f);
        let _ = std::fs::remove_file(&fifo);
    });
    let state_ok = next_ok(&mut c).await;
    writer.join().expect("writer");
    let (accepted, message) = meanwhile.expect(
        "another client got no OK while an object check was stuck: the engine task waited for it",
    );
    assert!(
        !accepted && message.starts_with("blocked:"),
        "the other client's note: {message}"
    );
    assert!(
        state_ok.0 && state_ok.1.starts_with("purgatory:"),
        "the state waits for its data: {state_ok:?}"
    );
}
