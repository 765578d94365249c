//! Issue 14 item 1 ("SSRF guard bypass"): clone URLs from events never make graspd
//! connect to a private address unless the operator allows it, whatever form the URL
//! takes; and an IPv6 literal clone URL works when private addresses are allowed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use grasp_tests::events::{self, Announcement};
use grasp_tests::fixture::World;
use grasp_tests::git::Work;
use grasp_tests::nostr_sdk::prelude::Keys;
use grasp_tests::server::Options;
use tokio::net::TcpListener;

/// A TCP listener that counts connections (and closes them at once).
struct Recorder {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn bind(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((_stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(Self {
            port,
            connections,
            task,
        })
    }

    fn seen(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every hostile form, each naming the recorder on 127.0.0.1 (`p`) or on ::1 (`q`).
fn hostile_urls(p: u16, q: Option<u16>) -> Vec<String> {
    let mut urls: Vec<String> = [
        // The bypass: `url` sees host 1.2.3.4, libcurl connects to 127.0.0.1.
        format!("http://1.2.3.4\\@127.0.0.1:{p}/t.git"),
        format!("http://user@127.0.0.1:{p}/x.git"),
        format!("http://@127.0.0.1:{p}/x.git"),
        format!("http://1.2.3.4@127.0.0.1:{p}/x.git"),
        format!("http://%31%32%37.0.0.1:{p}/x.git"),
        format!(" http://127.0.0.1:{p}/x.git"),
        format!("http://127.0.0.1:{p}/x.git\n"),
        format!("http://1.2.3.4\t@127.0.0.1:{p}/x.git"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://[::ffff:7f00:1]:{p}/x.git"),
        format!("http://[::127.0.0.1]:{p}"),
        format!("http://[::7f00:1]:{p}/x.git"),
        format!("http://[64:ff9b::7f00:1]:{p}"),
        format!("http://[64:ff9b::7f00:1]:{p}/x.git"),
        format!("http://[2002:7f00:1::]:{p}"),
        format!("http://[2002:7f00:1::]:{p}/x.git"),
        format!("http://2130706433:{p}/"),
        format!("http://0x7f.1:{p}/"),
        format!("http://0177.0.0.1:{p}/x.git"),
        format!("http://127.0.0.1:{p}/x.git"),
        format!("http://localhost:{p}/x.git"),
    ]
    .into();
    if let Some(q) = q {
        urls.push(format!("http://[::1]:{q}/x.git"));
    }
    urls
}

/// graspd without `--allow-private-addresses`, an announcement naming every hostile
/// form and a state needing a commit: every URL ends up refused (by the engine or the
/// guard), nothing connects to the recorders, and nothing is released.
#[tokio::test]
async fn hostile_clone_urls_never_connect() {
    let v4 = Recorder::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
    let v6 = Recorder::bind("[::1]:0").await.ok();
    let world = World::start_with(Options::default().without("--allow-private-addresses")).await;
    let owner = Keys::generate();
    let pk = owner.public_key();
    let d = "hostile";
    let hostile = hostile_urls(v4.port, v6.as_ref().map(|r| r.port));
    let mut ann = Announcement::on(&world.server, &pk, d);
    ann.clone.extend(hostile.iter().cloned());
    let ann = ann.sign(&owner);
    world.publish_purgatory(&ann, "announcement").await;
    let state = events::main_state(&owner, d, &"5".repeat(40), events::now());
    world.publish_purgatory(&state, "state").await;

    // Wait until the attempt has an outcome for every hostile URL: the guard refuses
    // before git runs, so after that no request of this attempt can still connect.
    let view_url = format!("{}/purgatory.json", world.server.base_url());
    let outcomes = grasp_tests::eventually(
        Duration::from_secs(20),
        "an outcome for every hostile URL",
        || async {
            let body = grasp_tests::http::get(&view_url, &[]).await.ok()?.text();
            let view: serde_json::Value = serde_json::from_str(&body).ok()?;
            let urls = view["sync"]
                .as_array()?
                .iter()
                .find(|s| s["identifier"] == d)?["urls"]
                .as_array()?
                .clone();
            let outcome = |u: &str| {
                urls.iter()
                    .find(|x| x["url"] == u)
                    .and_then(|x| x["outcome"].as_str().map(str::to_owned))
            };
            hostile
                .iter()
                .map(|u| outcome(u).map(|o| (u.clone(), o)))
                .collect::<Option<Vec<_>>>()
        },
    )
    .await;
    assert_eq!(v4.seen(), 0, "something connected to 127.0.0.1:{}", v4.port);
    if let Some(v6) = &v6 {
        assert_eq!(v6.seen(), 0, "something connected to [::1]:{}", v6.port);
    }
    for (url, outcome) in &outcomes {
        assert!(
            outcome.starts_with("refused: ") || outcome.starts_with("failed (Refused): "),
            "{url:?} must be refused, got: {outcome}"
        );
    }
    world.assert_not_served(state.id, "state").await;
    world.assert_not_served(ann.id, "announcement").await;
    // The bypass is refused by the engine, with a clear reason.
    let (_, why) = &outcomes[0];
    assert!(why.contains("backslash"), "{why}");
}

/// Forwards every connection on `[::1]:0` to `127.0.0.1:<to>`; returns the port and the
/// number of connections forwarded so far.
async fn v6_forwarder(
    to: u16,
) -> std::io::Result<(u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("[::1]:0").await?;
    let port = listener.local_addr()?.port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok((port, count, task))
}

/// With `--allow-private-addresses`, A fetches from a clone URL with an IPv6 literal
/// host (`http://[::1]:Q/…`, forwarded to B): the fetch works and the state is released.
#[tokio::test]
async fn ipv6_literal_clone_url_fetches() {
    let a = World::start().await;
    let b = World::start().await;
    let Ok((q, forwarded, task)) = v6_forwarder(b.server.port()).await else {
        eprintln!("skipped: cannot bind [::1] on this machine (no IPv6 loopback)");
        return;
    };
    let owner = Keys::generate();
    let pk = owner.public_key();
    let d = "six";
    let v6_url = b.repo_url(&pk, d).replacen("127.0.0.1", "[::1]", 1);
    let v6_url = v6_url.replacen(&format!(":{}/", b.server.port()), &format!(":{q}/"), 1);
    // A knows only itself and the IPv6 URL; B's own announcement lists A and B.
    let mut on_a = Announcement::on(&a.server, &pk, d);
    on_a.clone.push(v6_url.clone());
    let on_a = on_a.sign(&owner);
    let mut on_b = Announcement::on(&b.server, &pk, d);
    on_b.clone.push(a.repo_url(&pk, d));
    let on_b = on_b.sign(&owner);
    a.publish_purgatory(&on_a, "announcement on A").await;
    b.publish_purgatory(&on_b, "announcement on B").await;

    let work = Work::init().await;
    let c1 = work.commit("only on B").await;
    let state = events::main_state(&owner, d, &c1, events::now());
    b.publish_purgatory(&state, "state on B").await;
    work.push(&b.repo_url(&pk, d), &["main"])
        .await
        .expect_ok("push to B");
    b.wait_served(&[state.id], "state released on B").await;

    a.publish_purgatory(&state, "state on A").await;
    grasp_tests::eventually(
        Duration::from_secs(20),
        &format!("A fetches from {v6_url} and releases"),
        || async { a.is_served(state.id).await.then_some(()) },
    )
    .await;
    a.wait_refs(&pk, d, &[("refs/heads/main", &c1)]).await;
    assert!(forwarded.load(Ordering::SeqCst) > 0, "A connected over ::1");
    task.abort();
}
