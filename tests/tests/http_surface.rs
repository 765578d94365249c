//! SCENARIOS.md "HTTP surface", plus `path_traversal_refused`.

use grasp_tests::fixture::World;
use grasp_tests::http;
use grasp_tests::nostr_sdk::prelude::{Keys, ToBech32};
use grasp_tests::server::Options;

#[track_caller]
fn assert_cors(response: &http::Response, what: &str) {
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("*"),
        "{what}: Access-Control-Allow-Origin in {:?}",
        response.headers
    );
    let methods = response
        .header("access-control-allow-methods")
        .unwrap_or_else(|| panic!("{what}: no Access-Control-Allow-Methods"));
    for method in ["GET", "POST"] {
        assert!(
            methods.split(',').any(|m| m.trim() == method),
            "{what}: Access-Control-Allow-Methods {methods:?} lacks {method}"
        );
    }
    let headers = response
        .header("access-control-allow-headers")
        .unwrap_or_else(|| panic!("{what}: no Access-Control-Allow-Headers"));
    // Browser git clients send Content-Encoding (gzipped bodies) and X-Requested-With.
    for needed in [
        "content-type",
        "git-protocol",
        "content-encoding",
        "x-requested-with",
    ] {
        assert!(
            headers
                .split(',')
                .any(|h| h.trim().eq_ignore_ascii_case(needed)),
            "{what}: Access-Control-Allow-Headers {headers:?} lacks {needed}"
        );
    }
}

/// An `OPTIONS` answer's `Allow` header says what `Access-Control-Allow-Methods` says.
#[track_caller]
fn assert_allow_matches_cors(response: &http::Response, what: &str) {
    let cors = response.header("access-control-allow-methods");
    assert!(cors.is_some(), "{what}: no Access-Control-Allow-Methods");
    assert_eq!(
        response.header("allow"),
        cors,
        "{what}: Allow and Access-Control-Allow-Methods disagree in {:?}",
        response.headers
    );
}

async fn preflight(url: &str) -> http::Response {
    http::request(
        "OPTIONS",
        url,
        &[
            ("Origin", "https://gitworkshop.example"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type, git-protocol",
            ),
        ],
        &[],
    )
    .await
    .expect("OPTIONS request")
}

#[tokio::test]
async fn cors_everywhere() {
    let world = World::start().await;
    let owner = Keys::generate();
    let (_work, repo) = world.http_repo(&owner, "cors", true).await;
    let base = world.server.base_url();

    let root = http::get(&format!("{base}/"), &[("Origin", "https://x.example")])
        .await
        .expect("GET /");
    assert_eq!(root.status, 200);
    assert_cors(&root, "GET /");

    let nip11 = http::get(&format!("{base}/"), &[("Accept", "application/nostr+json")])
        .await
        .expect("NIP-11");
    assert_cors(&nip11, "NIP-11");

    let bad = http::get(
        &format!("{base}/not-an-npub/x.git/info/refs?service=git-upload-pack"),
        &[],
    )
    .await
    .expect("GET bad npub");
    assert_eq!(bad.status, 404, "invalid npub");
    assert_cors(&bad, "404 for an invalid npub");

    let unknown = http::get(&format!("{base}/nothing/here"), &[])
        .await
        .expect("GET");
    assert_eq!(unknown.status, 404);
    assert_cors(&unknown, "404 for an unknown path");

    for service in ["git-upload-pack", "git-receive-pack"] {
        let refs = http::get(&format!("{repo}/info/refs?service={service}"), &[])
            .await
            .expect("info/refs");
        assert_eq!(refs.status, 200, "info/refs?service={service}");
        assert_cors(&refs, &format!("info/refs?service={service}"));
    }
    // A (meaningless) upload-pack POST still carries the headers, whatever its status.
    let post = http::request(
        "POST",
        &format!("{repo}/git-upload-pack"),
        &[("Content-Type", "application/x-git-upload-pack-request")],
        b"0000",
    )
    .await
    .expect("POST git-upload-pack");
    assert_cors(&post, "POST git-upload-pack");

    let npub = owner.public_key().to_bech32().expect("npub");
    for url in [
        format!("{base}/"),
        format!("{repo}/info/refs?service=git-upload-pack"),
        format!("{repo}/git-upload-pack"),
        format!("{repo}/git-receive-pack"),
        format!("{base}/{npub}/unknown.git/info/refs?service=git-upload-pack"),
        format!("{base}/not-an-npub/x.git/git-upload-pack"),
        format!("{base}/not-an-npub/x.git/info/refs?service=git-upload-pack"),
    ] {
        let response = preflight(&url).await;
        assert_eq!(response.status, 204, "OPTIONS {url}");
        assert_cors(&response, &format!("OPTIONS {url}"));
        assert_allow_matches_cors(&response, &format!("OPTIONS {url}"));
    }
}

#[tokio::test]
async fn nip11_document() {
    let world = World::start().await;
    let base = world.server.base_url();
    let response = http::get(&format!("{base}/"), &[("Accept", "application/nostr+json")])
        .await
        .expect("NIP-11 request");
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.contains("application/nostr+json")),
        "content type {:?}",
        response.header("content-type")
    );
    let doc: serde_json::Value = serde_json::from_slice(&response.body).expect("NIP-11 JSON");
    for field in ["name", "description", "version"] {
        assert!(
            doc[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing in {doc}"
        );
    }
    // `software` is the project's URL or absent; never a placeholder host.
    if let Some(software) = doc.get("software") {
        let url = software.as_str().expect("software is a string");
        assert!(
            url.starts_with("https://") && !url.contains(".invalid"),
            "software {url:?} is not a real project URL"
        );
    }
    let nips = doc["supported_nips"].as_array().expect("supported_nips");
    for nip in [1, 11, 34] {
        assert!(nips.iter().any(|n| n == nip), "NIP-{nip} not listed");
    }
    let grasps = doc["supported_grasps"]
        .as_array()
        .expect("supported_grasps");
    assert!(
        grasps.iter().any(|g| g == "GRASP-01"),
        "GRASP-01 not listed"
    );
    for grasp in grasps {
        let grasp = grasp.as_str().expect("string");
        let number = grasp.strip_prefix("GRASP-").expect("GRASP-NN");
        assert!(
            number.len() == 2 && number.chars().all(|c| c.is_ascii_digit()),
            "{grasp} is not GRASP-NN"
        );
    }
    assert!(
        doc["repo_acceptance_criteria"]
            .as_str()
            .is_some_and(|s| !s.trim().is_empty()),
        "repo_acceptance_criteria missing"
    );
    assert!(
        doc.get("curation").is_none(),
        "uncurated server has curation"
    );
    // GRASP-06 is not claimed, so /prs/… is not served.
    if !grasps.iter().any(|g| g == "GRASP-06") {
        let prs = http::get(&format!("{base}/prs/x"), &[])
            .await
            .expect("GET /prs");
        assert_eq!(prs.status, 404, "/prs/… without GRASP-06");
    }
    // The port differs on every run.
    let text = doc
        .to_string()
        .replace(&world.server.authority(), "127.0.0.1:[port]");
    let redacted: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    insta::assert_json_snapshot!("nip11_document", redacted, {
        ".version" => "[version]",
    });

    // A curated server says so.
    let curated = World::start_with(Options::default().flag("--deny-identifier", "spam")).await;
    let response = http::get(
        &format!("{}/", curated.server.base_url()),
        &[("Accept", "application/nostr+json")],
    )
    .await
    .expect("NIP-11 request");
    let doc: serde_json::Value = serde_json::from_slice(&response.body).expect("NIP-11 JSON");
    assert!(
        doc["curation"]
            .as_str()
            .is_some_and(|s| !s.trim().is_empty()),
        "curated server without curation: {doc}"
    );
}

#[tokio::test]
async fn v0_advertisement_capabilities() {
    let world = World::start().await;
    let owner = Keys::generate();
    let (_work, repo) = world.http_repo(&owner, "caps", true).await;
    let response = http::get(&format!("{repo}/info/refs?service=git-upload-pack"), &[])
        .await
        .expect("info/refs");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/x-git-upload-pack-advertisement")
    );
    let text = response.text();
    assert!(
        text.starts_with("001e# service=git-upload-pack\n"),
        "{text}"
    );
    for capability in [
        "allow-tip-sha1-in-want",
        "allow-reachable-sha1-in-want",
        "filter",
    ] {
        assert!(
            text.split([' ', '\0', '\n']).any(|cap| cap == capability),
            "{capability} not advertised in {text:?}"
        );
    }
    // Protocol v2 works too.
    let v2 = http::get(
        &format!("{repo}/info/refs?service=git-upload-pack"),
        &[("Git-Protocol", "version=2")],
    )
    .await
    .expect("info/refs v2");
    assert_eq!(v2.status, 200);
    assert!(v2.text().contains("version 2"), "{}", v2.text());
}

#[tokio::test]
async fn filtered_clone_and_fetch() {
    let world = World::start().await;
    let owner = Keys::generate();
    let (work, repo) = world.http_repo(&owner, "filtered", true).await;
    let main = work.rev("main").await;

    let (out, dir) = world.git.clone_repo(&repo, &["--filter=blob:none"]).await;
    out.expect_ok("git clone --filter=blob:none");
    let clone = dir.path().join("repo");
    let clone_dir = Some(clone.as_path());
    let head = world.git.run(clone_dir, &["rev-parse", "HEAD"]).await;
    assert_eq!(head.stdout.trim(), main, "cloned HEAD");
    assert!(
        clone.join("file-0.txt").is_file(),
        "checked-out file (lazy blob fetch)"
    );
    let promisor = world
        .git
        .run(clone_dir, &["config", "remote.origin.promisor"])
        .await;
    assert_eq!(promisor.stdout.trim(), "true", "partial clone recorded");

    world
        .git
        .run(clone_dir, &["fetch", "--filter=tree:0", "origin"])
        .await
        .expect_ok("git fetch --filter=tree:0");

    // A fresh repository fetching with a tree filter, by branch and by commit id.
    let fresh = grasp_tests::git::Work::init().await;
    fresh
        .git(&["fetch", "--filter=tree:0", &repo, "main"])
        .await
        .expect_ok("git fetch --filter=tree:0 <url> main");
    fresh
        .git(&["fetch", "--filter=tree:0", &repo, &main])
        .await
        .expect_ok("git fetch --filter=tree:0 <url> <oid>");
}

#[tokio::test]
async fn repo_page_and_404() {
    let world = World::start().await;
    let owner = Keys::generate();
    let (_w1, purgatory_repo) = world.http_repo(&owner, "waiting", false).await;
    let (_w2, served_repo) = world.http_repo(&owner, "served", true).await;
    let base = world.server.base_url();
    let npub = owner.public_key().to_bech32().expect("npub");

    for url in [
        purgatory_repo.clone(),
        served_repo.clone(),
        served_repo.trim_end_matches(".git").to_owned(),
    ] {
        let page = http::get(&url, &[]).await.expect("repo page");
        assert!(
            (200..300).contains(&page.status),
            "page {url}: status {}",
            page.status
        );
        assert!(
            page.header("content-type")
                .is_some_and(|t| t.contains("text/html")),
            "page {url}: content type {:?}",
            page.header("content-type")
        );
    }

    for url in [
        format!("{base}/{npub}/unknown.git"),
        format!("{base}/{npub}/unknown.git/info/refs?service=git-upload-pack"),
        format!("{base}/{npub}/unknown"),
    ] {
        let response = http::get(&url, &[]).await.expect("GET");
        assert_eq!(response.status, 404, "{url}");
    }

    let (out, _dir) = world
        .git
        .clone_repo(&format!("{base}/{npub}/unknown.git"), &[])
        .await;
    out.expect_failed("clone of an unknown repository");
    let (out, _dir) = world
        .git
        .clone_repo(&format!("{base}/not-an-npub/x.git"), &[])
        .await;
    out.expect_failed("clone of a malformed path");

    let (out, dir) = world.git.clone_repo(&purgatory_repo, &[]).await;
    out.expect_ok("clone of an empty purgatory repository");
    assert!(dir.path().join("repo/.git").is_dir());
}

#[tokio::test]
async fn path_traversal_refused() {
    let world = World::start().await;
    let owner = Keys::generate();
    let base = world.server.base_url();
    let npub = owner.public_key().to_bech32().expect("npub");
    let targets = [
        "/../x.git/info/refs?service=git-upload-pack".to_owned(),
        "/..%2F..%2Fx.git/info/refs?service=git-upload-pack".to_owned(),
        "/not-an-npub/x.git/info/refs?service=git-upload-pack".to_owned(),
        "/npub1qqqqqqqq/x.git/info/refs?service=git-upload-pack".to_owned(),
        format!("/{npub}/../x.git/info/refs?service=git-upload-pack"),
        format!("/{npub}/..%2Fx.git/info/refs?service=git-upload-pack"),
        format!("/{npub}/a/b.git/info/refs?service=git-upload-pack"),
        format!("/{npub}/a%2Fb.git/info/refs?service=git-upload-pack"),
        format!("/{npub}/...git/info/refs?service=git-upload-pack"),
        format!("/{npub}/..git/info/refs?service=git-upload-pack"),
        format!("/{npub}/.hidden.git/info/refs?service=git-upload-pack"),
        format!("/{npub}/x%00y.git/info/refs?service=git-upload-pack"),
        format!("/{npub}/x%0Ay.git"),
        format!("/{npub}/..%2F..%2Fetc.git"),
    ];
    for target in &targets {
        let url = format!("{base}{target}");
        let get = http::get(&url, &[]).await.expect("GET");
        assert_eq!(get.status, 404, "GET {target}");
        assert_cors(&get, &format!("GET {target}"));
        let post_target = target.split('?').next().unwrap_or(target);
        for endpoint in ["git-receive-pack", "git-upload-pack"] {
            let post_url = format!(
                "{base}{}/{endpoint}",
                post_target.trim_end_matches("/info/refs")
            );
            let post = http::request("POST", &post_url, &[], b"0000")
                .await
                .expect("POST");
            assert_eq!(post.status, 404, "POST {post_url}");
            assert_cors(&post, &format!("POST {post_url}"));
        }
        let options = preflight(&url).await;
        assert_eq!(options.status, 204, "OPTIONS {target}");
        assert_cors(&options, &format!("OPTIONS {target}"));
    }
    // Nothing was created anywhere in the data directory but graspd's own layout.
    let repos = world.server.data_dir().join("repos");
    let created: Vec<_> = std::fs::read_dir(&repos)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(created.is_empty(), "repos created: {created:?}");
    for entry in std::fs::read_dir(world.server.data_dir()).expect("data dir") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            !name.ends_with(".git") && name != "x" && name != "etc.git",
            "unexpected {name} in the data directory"
        );
    }
}
