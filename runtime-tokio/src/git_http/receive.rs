//! `POST …/git-receive-pack`: a push, authorized before git runs.
//!
//! 1. read the ref-update commands at the head of the (gunzipped, capped) body;
//! 2. read the repository's current refs and ask the [`PushAuthorizer`];
//! 3. refused: consume the rest of the upload (so the client reads our answer instead
//!    of a broken connection) and answer with a report-status naming each refused ref;
//! 4. accepted: stream the commands and the rest of the body into
//!    `git receive-pack --stateless-rpc` (holding the repository's push guard, so no
//!    prune runs meanwhile), then run [`PushAuthorizer::after_push`] before the response
//!    ends; git's automatic maintenance is queued for after it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::backend::{self, Run, Service};
use super::body::request_reader;
use super::pktline::{RefUpdate, read_commands};
use super::report::refusal_response;
use super::{GitHttp, PushAuthorizer};
use crate::config::format_size;
use crate::git_ops::{RepoRefs, list_refs};
use crate::repo::RepoPath;

/// How long a client may take to send the command list.
const COMMANDS_TIMEOUT: Duration = Duration::from_secs(60);

/// How long we keep reading a refused push's pack before answering anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Handles one push to `repo`, whose bare repository is `dir`. `contrib` is set for a
/// push to a contributor repository (`/prs/`, which may not exist yet): its own size
/// limit and disk quotas apply, and the repository is made once the push is accepted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn receive_pack(
    git: Arc<GitHttp>,
    repo: RepoPath,
    dir: PathBuf,
    headers: &HeaderMap,
    body: Body,
    slot: crate::slots::Slot,
    client: Option<IpAddr>,
    contrib: Option<crate::prs::Running>,
) -> Response {
    let prs = git.prs.clone().filter(|_| contrib.is_some());
    let count = |o: crate::prs::Outcome| {
        if prs.is_some() {
            git.repos.prs().record(o);
        }
    };
    let limit = prs
        .as_ref()
        .map_or(git.max_push_size, |p| p.rate.limits().max_push_size);
    let too_large = format!("push exceeds the size limit of {}", format_size(limit));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        count(crate::prs::Outcome::TooLarge);
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("{too_large}\n")).into_response();
    }
    let exists = git.repos.exists(&repo);
    // A fresh `/prs/` path answers as the empty template until a push is accepted.
    let read_dir = match &prs {
        Some(p) if !exists => p.template.clone(),
        _ => dir.clone(),
    };
    let Some(gzip) = super::gzip_encoding(headers) else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Encoding\n",
        )
            .into_response();
    };
    let mut reader = request_reader(body, gzip, limit, git.stall);
    let commands = match tokio::time::timeout(COMMANDS_TIMEOUT, read_commands(&mut reader)).await {
        Ok(Ok(commands)) => commands,
        Ok(Err(e)) => {
            tracing::info!(%repo, "bad push request: {e}");
            return (StatusCode::BAD_REQUEST, format!("bad push request: {e}\n")).into_response();
        }
        Err(_) => return (StatusCode::REQUEST_TIMEOUT, "push commands too slow\n").into_response(),
    };
    let protocol = backend::git_protocol(headers.get("git-protocol"));
    if commands.updates.is_empty() {
        // git's probe request (`0000`) or a push with nothing to do: no ref changes.
        return backend::run(Run {
            service: Service::ReceivePack,
            dir: read_dir,
            protocol,
            prefix: commands.raw,
            body: reader,
            too_large_response: None,
            after_success: None,
            slot: Some(slot),
            push_guard: None,
            hold: None,
        });
    }

    let current = match read_refs(read_dir).await {
        Ok(refs) => refs,
        Err(e) => {
            tracing::error!(%repo, "cannot read refs: {e}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the repository\n",
            )
                .into_response();
        }
    };
    let quota = match &prs {
        Some(p) => p.quota_refusal(&git.repos, &repo).await,
        None => None,
    };
    let decision = match &quota {
        Some(why) => commands
            .updates
            .iter()
            .fold(super::PushDecision::accept_all(), |d, u| {
                d.refuse(u.name.clone(), why.clone())
            }),
        None => {
            git.authorizer
                .authorize_push(&repo, &current, &commands.updates, client)
                .await
        }
    };
    if !decision.is_accepted() {
        count(if quota.is_some() {
            crate::prs::Outcome::Quota
        } else {
            crate::prs::Outcome::Refused
        });
        tracing::info!(%repo, refused = ?decision.refused(), "push refused");
        let drained = tokio::time::timeout(
            DRAIN_TIMEOUT,
            tokio::io::copy(&mut reader, &mut tokio::io::sink()),
        )
        .await;
        if !matches!(drained, Ok(Ok(_))) {
            tracing::debug!(%repo, "refused push body not fully read");
        }
        let report = refusal_response(&commands, "ok", |name| {
            decision.reason(name).map(str::to_owned)
        });
        return report_response(report);
    }

    // A contributor push is counted in flight before its repository is made, so that
    // an expiry meanwhile does not remove it; its end removes it if still empty.
    let hold: Option<Box<dyn std::any::Any + Send>> = match contrib {
        Some(running) => {
            let in_flight = crate::prs::InFlight::begin(&git.repos, &repo);
            if let Err(e) = create_prs_repo(&git.repos, &repo).await {
                tracing::error!(%repo, "cannot create the contributor repository: {e}");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot create the repository\n",
                )
                    .into_response();
            }
            count(crate::prs::Outcome::Accepted);
            Some(Box::new((in_flight, running)))
        }
        None => None,
    };
    let push_guard = git.repos.housekeeping().push_guard(&dir).await;
    let too_large_response =
        refusal_response(&commands, &too_large, |_| Some("push too large".to_owned()));
    let authorizer = Arc::clone(&git.authorizer);
    let after_dir = dir.clone();
    let updates = commands.updates.clone();
    let housekeeping = git.repos.housekeeping().clone();
    let after_success: backend::AfterSuccess = Box::new(move || {
        Box::pin(async move {
            after_push(authorizer, repo, updates, &after_dir, client).await;
            housekeeping.after_push(&after_dir);
        })
    });
    backend::run(Run {
        service: Service::ReceivePack,
        dir,
        protocol,
        prefix: commands.raw,
        body: reader,
        too_large_response: Some(too_large_response),
        after_success: Some(after_success),
        slot: Some(slot),
        push_guard: Some(push_guard),
        hold,
    })
}

/// The answer when no push slot is free: 503 at once, so the client retries later
/// instead of holding a connection (and a git process) in a queue.
pub(crate) fn busy(full: crate::slots::Full) -> Response {
    let why = match full {
        crate::slots::Full::Total => "too many pushes in progress",
        crate::slots::Full::PerClient => "too many pushes in progress from your address",
    };
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{why}; retry in a minute\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

async fn after_push(
    authorizer: Arc<dyn PushAuthorizer>,
    repo: RepoPath,
    updates: Vec<RefUpdate>,
    dir: &std::path::Path,
    client: Option<IpAddr>,
) {
    match read_refs(dir.to_owned()).await {
        Ok(refs) => {
            authorizer.after_push(&repo, &updates, &refs, client).await;
            crate::activity::push_landed(&repo, &updates, &refs);
        }
        Err(e) => tracing::error!(%repo, "cannot read refs after push: {e}"),
    }
}

/// A push's ref advertisement of `repo` went out: tell the authorizer the refs it showed,
/// in the background (a push that changes nothing ends with it).
pub(crate) fn advertised(authorizer: Arc<dyn PushAuthorizer>, repo: RepoPath, dir: PathBuf) {
    tokio::spawn(async move {
        match read_refs(dir).await {
            Ok(refs) => authorizer.refs_seen(&repo, &refs).await,
            Err(e) => tracing::debug!(%repo, "cannot read refs after an advertisement: {e}"),
        }
    });
}

async fn create_prs_repo(repos: &crate::repo::Repos, repo: &RepoPath) -> Result<(), String> {
    let (repos, repo) = (repos.clone(), repo.clone());
    match tokio::task::spawn_blocking(move || crate::git_ops::create_bare_repo(&repos, &repo)).await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

async fn read_refs(dir: PathBuf) -> Result<RepoRefs, String> {
    match tokio::task::spawn_blocking(move || list_refs(&dir)).await {
        Ok(Ok(refs)) => Ok(refs),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn report_response(report: Vec<u8>) -> Response {
    let mut response = Body::from(report).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Service::ReceivePack.result_type()),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
