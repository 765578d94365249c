//! Remote failures against real sockets: a hanging server, refused and garbage answers,
//! a server that advertises refs and refuses the fetch, and our own domain.

use super::sync_fixture::*;
use crate::test_keys::keys;
use crate::testing::{TestServer, git_ok, work_tree};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_remote_bounded() {
    let (port, hold) = crate::testing::stalling_remote().await;
    let mut args = FAST.to_vec();
    args.extend(["--fetch-timeout", "1s"]);
    let a = TestServer::start_engine(&args).await;
    let st = waiting_with(&a, &keys(1), &[format!("http://127.0.0.1:{port}/x.git")]).await;
    let view = view_until(&a, |v| v.contains("Timeout")).await;
    assert!(
        view.contains("failed (Timeout)"),
        "cut at the fetch timeout and counted: {view}"
    );
    assert!(
        view.contains(&st.id.to_hex()),
        "the event still waits: {view}"
    );
    let metrics = crate::testing::http_get(&format!("{}/metrics", a.base())).await;
    assert!(
        metrics.contains("graspd_fetch_failures_total{kind=\"timeout\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "graspd_domain_in_flight{{domain=\"127.0.0.1:{port}\"}} 0"
        )),
        "slot freed: {metrics}"
    );
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_failure_is_input() {
    // A refused connection, and a server that answers garbage.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage_port = garbage.local_addr().unwrap().port();
    let serve = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = garbage.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = "this is not a pkt-line stream";
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    let a = TestServer::start_engine(FAST).await;
    let urls = [
        format!("http://127.0.0.1:{closed_port}/x.git"),
        format!("http://127.0.0.1:{garbage_port}/x.git"),
    ];
    let st = waiting_with(&a, &keys(1), &urls).await;
    let view = view_until(&a, |v| v.matches("failed (").count() >= 2).await;
    assert_eq!(
        view.matches("failed (").count(),
        2,
        "both failures recorded: {view}"
    );
    assert!(
        view.contains(&st.id.to_hex()),
        "the event still waits, retried by backoff: {view}"
    );
    assert!(view.contains("\"attempts\":1"), "{view}");
    serve.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_domain_excluded() {
    let a = TestServer::start_engine(FAST).await;
    let other_owner = keys(9);
    // A second clone URL on our own authority (another owner's path) is never fetched.
    let st = waiting_with(&a, &keys(1), &[clone_url(&a, &other_owner)]).await;
    let view = view_until(&a, |v| v.contains("own URL")).await;
    assert!(view.contains("refused: this server's own URL"), "{view}");
    assert!(view.contains(&st.id.to_hex()));
    let metrics = crate::testing::http_get(&format!("{}/metrics", a.base())).await;
    assert!(
        !metrics.contains("graspd_remote_requests_started_total{"),
        "no request was made: {metrics}"
    );
}

/// A remote that advertises a real repository's refs but answers every fetch with
/// "not our ref" (its refs moved, or it lies).
async fn lying_remote(advertised_repo: std::path::PathBuf) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = std::process::Command::new("git")
        .args(["upload-pack", "--stateless-rpc", "--advertise-refs"])
        .arg(&advertised_repo)
        .output()
        .expect("git upload-pack");
    let mut advert = b"001e# service=git-upload-pack\n0000".to_vec();
    advert.extend_from_slice(&out.stdout);
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 65536];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let (ctype, body) = if head.starts_with("GET") {
                (
                    "application/x-git-upload-pack-advertisement",
                    advert.clone(),
                )
            } else {
                let msg = "ERR upload-pack: not our ref\n";
                (
                    "application/x-git-upload-pack-result",
                    format!("{:04x}{msg}", msg.len() + 4).into_bytes(),
                )
            };
            let headers = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(headers.as_bytes()).await;
            let _ = s.write_all(&body).await;
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_our_ref_is_input() {
    let tmp = tempfile::tempdir().unwrap();
    let wt = work_tree(tmp.path(), "wt", b"one").await;
    let tip = git_ok(&wt, &["rev-parse", "HEAD"]).await;
    let bare = tmp.path().join("bare.git");
    git_ok(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            "--bare",
            wt.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    )
    .await;
    let (port, task) = lying_remote(bare).await;
    let a = TestServer::start_engine(FAST).await;
    let owner = keys(1);
    let liar = [format!("http://127.0.0.1:{port}/x.git")];
    let ann = announcement_with(&a, &owner, &liar, &[], 20);
    publish(&a, &ann).await;
    let st = state(&owner, &[("refs/heads/main", &tip)], 21);
    publish(&a, &st).await;
    let view = view_until(&a, |v| v.contains("NotOurRef")).await;
    assert!(view.contains("failed (NotOurRef)"), "{view}");
    assert!(
        view.contains(&st.id.to_hex()),
        "the state still waits, retried by backoff: {view}"
    );
    task.abort();
}
