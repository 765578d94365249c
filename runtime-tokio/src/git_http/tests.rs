//! Git smart HTTP end to end: a real server on 127.0.0.1, the real `git` client.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::git_ops::test_util::repo_path;
use crate::git_ops::{create_bare_repo, list_refs};
use crate::repo::RepoPath;
use crate::testing::{Recorder, TestApp, TestServer, git, git_ok, work_tree};

async fn served_repo(args: &[&str], recorder: Arc<Recorder>) -> (TestServer, RepoPath, String) {
    let server = TestServer::start(args, recorder).await;
    let repo = repo_path("proj");
    create_bare_repo(server.server.repos(), &repo).expect("create");
    let url = format!("{}/{}/proj.git", server.base(), repo.npub());
    (server, repo, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_empty_push_then_clone_back() {
    let recorder = Arc::new(Recorder {
        after_delay: Duration::from_millis(500),
        ..Recorder::default()
    });
    let (server, repo, url) = served_repo(&[], Arc::clone(&recorder)).await;
    let tmp = tempfile::tempdir().expect("tempdir");

    let empty = git(tmp.path(), &["clone", &url, "empty"]).await;
    assert!(empty.ok, "cloning an empty repo works: {}", empty.stderr);

    let work = work_tree(tmp.path(), "work", b"hello").await;
    let head = git_ok(&work, &["rev-parse", "HEAD"]).await;
    git_ok(&work, &["push", &url, "main"]).await;
    {
        // after_push (which takes 500 ms) finished before `git push` returned.
        let calls = recorder.calls.lock().expect("lock");
        assert_eq!(calls.authorized.len(), 1);
        let (authorized_repo, current, updates) = &calls.authorized[0];
        assert_eq!(authorized_repo, &repo);
        assert!(current.refs.is_empty());
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].name, "refs/heads/main");
        assert!(updates[0].is_create());
        assert_eq!(updates[0].new, head);
        assert_eq!(
            calls.after.len(),
            1,
            "after_push ran before the push returned"
        );
        assert_eq!(calls.after[0].1.refs.get("refs/heads/main"), Some(&head));
    }
    let dir = server.server.repos().dir(&repo);
    assert_eq!(
        list_refs(&dir).expect("refs").refs.get("refs/heads/main"),
        Some(&head)
    );

    // What the engine's release does: point HEAD at the state's branch.
    crate::git_ops::set_head(&dir, "refs/heads/main").expect("head");
    let clones: [(&str, &[&str]); 3] = [
        ("v2", &["clone", "--quiet"]),
        ("v0", &["-c", "protocol.version=0", "clone", "--quiet"]),
        ("blobless", &["clone", "--quiet", "--filter=blob:none"]),
    ];
    for (name, args) in clones {
        let mut args = args.to_vec();
        args.extend([url.as_str(), name]);
        git_ok(tmp.path(), &args).await;
        let cloned = tmp.path().join(name);
        assert_eq!(
            git_ok(&cloned, &["rev-parse", "HEAD"]).await,
            head,
            "{name}"
        );
    }
    let blobless = tmp.path().join("blobless");
    git_ok(
        &blobless,
        &["fetch", "--quiet", "--filter=tree:0", "origin"],
    )
    .await;

    // A deletion push goes through the authorizer too.
    git_ok(&work, &["push", &url, ":refs/heads/main"]).await;
    let calls = recorder.calls.lock().expect("lock");
    assert!(calls.authorized[1].2[0].is_delete());
    assert!(calls.after[1].1.refs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_push_shows_the_reason_and_writes_nothing() {
    let recorder = Arc::new(Recorder::default());
    recorder.refuse.lock().expect("lock").insert(
        "refs/heads/main".into(),
        "blocked: no state event authorizes this push".into(),
    );
    let (server, repo, url) = served_repo(&[], Arc::clone(&recorder)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = work_tree(tmp.path(), "work", b"hello").await;
    git_ok(&work, &["branch", "dev"]).await;
    let push = git(&work, &["push", &url, "main", "dev"]).await;
    assert!(!push.ok, "push should fail");
    assert!(
        push.stderr
            .contains("blocked: no state event authorizes this push"),
        "reason shown to the user: {}",
        push.stderr
    );
    assert!(
        push.stderr.contains("atomic push failed"),
        "{}",
        push.stderr
    );
    let dir = server.server.repos().dir(&repo);
    assert!(
        list_refs(&dir).expect("refs").refs.is_empty(),
        "no ref written"
    );
    let head = git_ok(&work, &["rev-parse", "HEAD"]).await;
    let present = crate::git_ops::existing_oids(&dir, &[head]).expect("check");
    assert!(present.is_empty(), "no object written");
    assert!(recorder.calls.lock().expect("lock").after.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_over_the_size_limit_is_refused() {
    let recorder = Arc::new(Recorder::default());
    let (server, repo, url) =
        served_repo(&["--max-push-size", "64KiB"], Arc::clone(&recorder)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    // Incompressible content well over the limit.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let work = work_tree(tmp.path(), "work", &noise).await;
    let push = git(&work, &["push", &url, "main"]).await;
    assert!(!push.ok, "push should fail");
    assert!(push.stderr.contains("413"), "{}", push.stderr);
    let dir = server.server.repos().dir(&repo);
    assert!(
        list_refs(&dir).expect("refs").refs.is_empty(),
        "no ref written"
    );
    assert!(recorder.calls.lock().expect("lock").after.is_empty());
    // Streamed (chunked, no Content-Length) past the limit as well.
    let chunked = git(&work, &["-c", "http.postBuffer=1024", "push", &url, "main"]).await;
    assert!(!chunked.ok, "chunked push should fail too");
    assert!(
        chunked.stderr.contains("push too large"),
        "{}",
        chunked.stderr
    );
    assert!(
        list_refs(&dir).expect("refs").refs.is_empty(),
        "no ref written"
    );
}

#[tokio::test]
async fn advertisement_and_repo_page() {
    let app = TestApp::new(&[], Arc::new(Recorder::default())).await;
    let repo = repo_path("proj");
    create_bare_repo(app.server.repos(), &repo).expect("create");
    let base = format!("/{}/proj.git", repo.npub());

    let request = Request::get(format!("{base}/info/refs?service=git-upload-pack"))
        .body(Body::empty())
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/x-git-upload-pack-advertisement"
    );
    let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.starts_with("001e# service=git-upload-pack\n0000"),
        "{text}"
    );
    for capability in [
        "allow-tip-sha1-in-want",
        "allow-reachable-sha1-in-want",
        "filter",
    ] {
        assert!(text.contains(capability), "{capability} missing: {text}");
    }

    let request = Request::get(format!("{base}/info/refs?service=git-upload-pack"))
        .header("Git-Protocol", "version=2")
        .body(Body::empty())
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    assert!(
        body.starts_with(b"000eversion 2\n"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    for page in [base.clone(), base.trim_end_matches(".git").to_owned()] {
        let request = Request::get(&page).body(Body::empty()).expect("request");
        let response = app.router.clone().oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains("gitworkshop.dev"));
    }
    let request = Request::get(format!("/{}/other.git", repo.npub()))
        .body(Body::empty())
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Malformed push commands are refused before git runs.
    let request = Request::post(format!("{base}/git-receive-pack"))
        .body(Body::from("0032garbage"))
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn identifiers_are_percent_decoded_once_in_every_route() {
    let app = TestApp::new(&[], Arc::new(Recorder::default())).await;
    let npub = repo_path("x").npub().to_owned();
    for d in ["my repo", "100%", "a+b", "über", "100%25"] {
        create_bare_repo(app.server.repos(), &repo_path(d)).expect("create");
    }
    let status = |path: String, post: bool| {
        let router = app.router.clone();
        async move {
            let request = if post {
                Request::post(&path).body(Body::from("0000"))
            } else {
                Request::get(&path).body(Body::empty())
            };
            let response = router
                .oneshot(request.expect("request"))
                .await
                .expect("response");
            (path, response.status())
        }
    };
    for segment in [
        "my%20repo",
        "100%25",
        "a+b",
        "a%2Bb",
        "%C3%BCber",
        "%c3%bcber",
        "100%2525",
    ] {
        let base = format!("/{npub}/{segment}.git");
        for (path, post) in [
            (format!("{base}/info/refs?service=git-upload-pack"), false),
            (format!("{base}/info/refs?service=git-receive-pack"), false),
            (base.clone(), false),
            (format!("{base}/git-upload-pack"), true),
            (format!("{base}/git-receive-pack"), true),
        ] {
            let (path, got) = status(path, post).await;
            assert_ne!(
                got,
                StatusCode::NOT_FOUND,
                "{path} names an existing repository"
            );
        }
    }
    // A bad escape, a decoded `/`, `+` read as a space, or a second decoding: 404.
    for segment in [
        "100%",
        "my+repo",
        "a%2Fb",
        "100%252525",
        "%FCber",
        "%2E%2E%2Fx",
    ] {
        let (path, got) = status(
            format!("/{npub}/{segment}.git/info/refs?service=git-upload-pack"),
            false,
        )
        .await;
        assert_eq!(got, StatusCode::NOT_FOUND, "{path}");
    }
}
