//! The HTTP surface through `tower::ServiceExt::oneshot`: CORS, OPTIONS, NIP-11,
//! landing page, 404s.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use tower::ServiceExt;

use crate::testing::{Recorder, TestApp};

async fn app(args: &[&str]) -> TestApp {
    TestApp::new(args, Arc::new(Recorder::default())).await
}

async fn call(app: &TestApp, request: Request<Body>) -> Response {
    app.router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible")
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

fn assert_cors(response: &Response, what: &str) {
    let headers = response.headers();
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*", "{what}");
    let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .expect("ascii");
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{what}: {methods}"
    );
    let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .expect("ascii");
    for needed in [
        "Content-Type",
        "Git-Protocol",
        "Content-Encoding",
        "X-Requested-With",
    ] {
        assert!(allowed.contains(needed), "{what}: {allowed}");
    }
}

/// An `OPTIONS` answer's `Allow` lists exactly the CORS methods.
fn assert_allow_matches(response: &Response, what: &str) {
    let headers = response.headers();
    let allow: Vec<_> = headers.get_all(header::ALLOW).iter().collect();
    assert_eq!(
        allow,
        [&headers[header::ACCESS_CONTROL_ALLOW_METHODS]],
        "{what}: Allow and Access-Control-Allow-Methods differ"
    );
}

async fn text(response: Response) -> String {
    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf8")
}

#[tokio::test]
async fn cors_on_pages_errors_and_preflights() {
    let app = app(&[]).await;
    let npub = crate::git_ops::test_util::repo_path("x").npub().to_owned();
    let not_found = [
        "/nothing/here/at/all".to_owned(),
        "/not-an-npub/x.git/info/refs?service=git-upload-pack".to_owned(),
        "/../x.git".to_owned(),
        format!("/{npub}/unknown.git/info/refs?service=git-upload-pack"),
        format!("/{npub}/a..b.git"),
        format!("/{npub}/.hidden.git"),
        format!("/{npub}/a%2Fb.git/info/refs"),
        format!("/{npub}/%2e%2e.git/info/refs"),
        format!("/{npub}/a%0Ab.git"),
    ];
    for uri in &not_found {
        let response = call(&app, get(uri)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
        assert_cors(&response, uri);
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri(uri)
            .header(header::ORIGIN, "https://client.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "git-protocol, content-type",
            )
            .body(Body::empty())
            .expect("request");
        let response = call(&app, preflight).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "OPTIONS {uri}");
        assert_cors(&response, uri);
        assert_allow_matches(&response, uri);
    }
    for uri in ["/", "/metrics", "/purgatory.json"] {
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let response = call(&app, preflight).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "OPTIONS {uri}");
        assert_allow_matches(&response, uri);
    }
    let response = call(&app, get("/")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_cors(&response, "GET /");
    let wrong_method = Request::delete("/").body(Body::empty()).expect("request");
    let response = call(&app, wrong_method).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_cors(&response, "DELETE /");
    // Nothing was created on disk by any of it.
    let repos = std::fs::read_dir(app.server.repos().root()).expect("repos dir");
    assert_eq!(repos.count(), 0);
    drop(app.dir);
}

#[tokio::test]
async fn root_serves_nip11_or_landing_page() {
    let app = app(&[]).await;
    let request = Request::get("/")
        .header(header::ACCEPT, "application/nostr+json")
        .body(Body::empty())
        .expect("request");
    let response = call(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/nostr+json"
    );
    assert_cors(&response, "NIP-11");
    let doc: serde_json::Value = serde_json::from_str(&text(response).await).expect("json");
    assert_eq!(doc["supported_grasps"], serde_json::json!(["GRASP-01"]));
    assert!(
        doc["repo_acceptance_criteria"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert!(doc.get("curation").is_none());

    let response = call(&app, get("/")).await;
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert!(text(response).await.contains("ws://127.0.0.1:7334"));
}
