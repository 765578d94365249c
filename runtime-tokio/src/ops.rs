//! Operator routes: `/metrics` (Prometheus text), and the purgatory view at
//! `/purgatory` (HTML) and `/purgatory.json`, answered only to loopback clients since
//! they name events that are not served yet.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use grasp_core::{Time, npub};
use serde_json::json;

use crate::driver::{EngineHandle, View};

/// The operator routes, served by the main router; `repos` for the contributor
/// repositories' figures (GRASP-06).
pub fn routes(engine: EngineHandle, repos: crate::repo::Repos) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state((engine.clone(), repos))
        .route("/purgatory", get(page))
        .route("/purgatory.json", get(json_view))
        .with_state(engine)
}

async fn view(engine: &EngineHandle) -> Result<View, Response> {
    engine.view().await.ok_or_else(stopped)
}

fn stopped() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "engine stopped\n").into_response()
}

async fn metrics(
    State((engine, repos)): State<(EngineHandle, crate::repo::Repos)>,
    req: Request,
) -> Response {
    if !is_local(&req) {
        return forbidden();
    }
    match engine.metrics_view().await.ok_or_else(stopped) {
        Ok(v) => {
            let mut text = v.prometheus();
            text.push_str(&crate::prs::prometheus(&repos).await);
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        Err(r) => r,
    }
}

fn is_local(req: &Request) -> bool {
    crate::client::is_operator(req.extensions())
}

fn forbidden() -> Response {
    let msg = "the operator routes are only served to the --metrics-allow networks\n";
    (StatusCode::FORBIDDEN, msg).into_response()
}

/// The operator view as JSON (what `graspd purgatory` prints).
pub fn view_json(v: &View) -> serde_json::Value {
    let ms = |t: Time| t.as_millis();
    json!({
        "waiting": v.waiting.iter().map(|w| json!({
            "id": w.id.to_hex(),
            "author": npub(&w.author),
            "kind": w.kind,
            "identifier": w.d,
            "missing": w.missing.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "arrived_ms": ms(w.arrived),
            "deadline_ms": ms(w.deadline),
            "soft_expired": w.soft_expired,
            "unsatisfiable": w.unsatisfiable,
            "authority": w.authority,
        })).collect::<Vec<_>>(),
        "sync": v.sync.iter().map(|s| json!({
            "identifier": s.d,
            "attempts": s.attempts,
            "next_attempt_ms": s.next_attempt.map(ms),
            "missing": s.missing.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "urls": s.urls.iter().map(|(u, t, o)| json!({"url": u, "at_ms": ms(*t), "outcome": o})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

async fn json_view(State(engine): State<EngineHandle>, req: Request) -> Response {
    if !is_local(&req) {
        return forbidden();
    }
    match view(&engine).await {
        Ok(v) => axum::Json(view_json(&v)).into_response(),
        Err(r) => r,
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn page(State(engine): State<EngineHandle>, req: Request) -> Response {
    if !is_local(&req) {
        return forbidden();
    }
    let v = match view(&engine).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut h = String::from(
        "<!doctype html><meta charset=utf-8><title>graspd purgatory</title><h1>Purgatory</h1>",
    );
    let _ = write!(
        h,
        "<p>{} waiting, {} identifiers in the sync queue.</p>",
        v.waiting.len(),
        v.sync.len()
    );
    h.push_str("<table border=1><tr><th>event</th><th>kind</th><th>identifier</th><th>missing objects</th><th>deadline (ms)</th><th>authority</th></tr>");
    for w in &v.waiting {
        let missing: Vec<String> = w.missing.iter().map(ToString::to_string).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            w.id.to_hex(),
            w.kind,
            esc(&w.d),
            missing.join(" "),
            w.deadline.as_millis(),
            esc(w.authority.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table><h2>Sync queue</h2><table border=1><tr><th>identifier</th><th>attempts</th><th>next attempt (ms)</th><th>URLs tried</th></tr>");
    for s in &v.sync {
        let urls: Vec<String> = s
            .urls
            .iter()
            .map(|(u, _, o)| format!("{}: {}", esc(u), esc(o)))
            .collect();
        let next = s
            .next_attempt
            .map_or("running".into(), |t| t.as_millis().to_string());
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{next}</td><td>{}</td></tr>",
            esc(&s.d),
            s.attempts,
            urls.join("<br>")
        );
    }
    h.push_str("</table>");
    Html(h).into_response()
}
