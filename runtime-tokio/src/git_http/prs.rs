//! GRASP-06's contributor endpoint, `/prs/<npub>/<identifier>[.git]/<git path>`, routed
//! before the standard endpoint when `--grasp06` is on.
//!
//! The path is parsed by the standard endpoint's rules ([`RepoPath::from_url`]: a bech32
//! npub, the identifier percent-decoded once and validated), then moved to the
//! contributor space. A well-formed path with no repository on disk answers as an empty
//! bare repository, from the one template made at startup: nothing is created by a
//! fetch. Pushes are limited per client address (429 before the body is read), by size
//! and by the disk quotas, and decided by the engine (GRASP-06.md §4); the first
//! accepted push makes the repository. There is no web page.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::{Endpoint, GitHttp, backend, body, not_found, parse_rest, receive};
use crate::prs::{Outcome, PushRate, RateRefusal, dir_size};
use crate::repo::{RepoPath, Repos};

/// What the contributor routes need beside [`GitHttp`].
#[derive(Debug)]
pub struct PrsHttp {
    /// The empty bare repository fresh paths are served from.
    pub(crate) template: PathBuf,
    /// Per-address counting, limits and outcome counters.
    pub(crate) rate: Arc<PushRate>,
}

impl PrsHttp {
    /// Serves fresh paths from `template` within `limits`.
    pub fn new(template: PathBuf, limits: crate::prs::PrsLimits) -> Self {
        Self {
            template,
            rate: Arc::new(PushRate::new(limits)),
        }
    }

    /// The refusal when `repo`'s npub, or `/prs/` as a whole, uses its disk quota.
    pub(crate) async fn quota_refusal(&self, repos: &Repos, repo: &RepoPath) -> Option<String> {
        let limits = self.rate.limits().clone();
        let root = repos.prs().root().to_path_buf();
        let npub = repo.npub().to_owned();
        tokio::task::spawn_blocking(move || {
            if dir_size(&root.join(&npub)) >= limits.max_bytes_per_pubkey {
                return Some(format!("contributor storage for {npub} is full"));
            }
            if dir_size(&root) >= limits.max_total_size {
                return Some("contributor storage on this server is full".to_owned());
            }
            None
        })
        .await
        .unwrap_or_else(|_| Some("contributor storage cannot be measured".to_owned()))
    }
}

/// Resolves `/prs/<npub>/<rest>` to a contributor repository and endpoint; `None` (→ 404)
/// for anything the standard endpoint's rules refuse, and for the page.
fn locate(uri: &Uri) -> Option<(RepoPath, Endpoint)> {
    let (npub, rest) = uri.path().strip_prefix("/prs/")?.split_once('/')?;
    let (segment, endpoint) = parse_rest(rest)?;
    if endpoint == Endpoint::Page {
        return None;
    }
    let repo = RepoPath::from_url(npub, segment).ok()?.into_prs();
    Some((repo, endpoint))
}

/// The directory to serve `repo` from: its own, or the empty template.
fn serve_dir(git: &GitHttp, prs: &PrsHttp, repo: &RepoPath) -> (PathBuf, bool) {
    if git.repos.exists(repo) {
        (git.repos.dir(repo), true)
    } else {
        (prs.template.clone(), false)
    }
}

/// `GET /prs/{npub}/{*rest}`: the ref advertisement.
pub async fn get(
    State(git): State<Arc<GitHttp>>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (Some(prs), Some((repo, endpoint))) = (git.prs.clone(), locate(&uri)) else {
        return not_found();
    };
    if endpoint != Endpoint::InfoRefs {
        return (StatusCode::METHOD_NOT_ALLOWED, "use POST\n").into_response();
    }
    let Some(service) = query
        .get("service")
        .and_then(|s| backend::Service::parse(s))
    else {
        return (StatusCode::NOT_FOUND, "only smart HTTP is served\n").into_response();
    };
    let protocol = backend::git_protocol(headers.get("git-protocol"));
    let (dir, exists) = serve_dir(&git, &prs, &repo);
    let response = backend::advertise(service, &dir, protocol.as_deref()).await;
    if exists && service == backend::Service::ReceivePack && response.status().is_success() {
        receive::advertised(Arc::clone(&git.authorizer), repo, dir);
    }
    response
}

/// `POST /prs/{npub}/{*rest}`: upload-pack or receive-pack.
pub async fn post(
    State(git): State<Arc<GitHttp>>,
    uri: Uri,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (Some(prs), Some((repo, endpoint))) = (git.prs.clone(), locate(&uri)) else {
        return not_found();
    };
    match endpoint {
        Endpoint::UploadPack => {
            let Some(gzip) = super::gzip_encoding(&headers) else {
                return (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported Content-Encoding\n",
                )
                    .into_response();
            };
            let (dir, _) = serve_dir(&git, &prs, &repo);
            backend::run(backend::Run {
                service: backend::Service::UploadPack,
                dir,
                protocol: backend::git_protocol(headers.get("git-protocol")),
                prefix: Vec::new(),
                body: body::request_reader(body, gzip, git.max_push_size, git.stall),
                too_large_response: None,
                after_success: None,
                slot: None,
                push_guard: None,
                hold: None,
            })
        }
        Endpoint::ReceivePack => {
            let client = crate::client::client_addr(&extensions);
            let running = match prs.rate.start(client, Instant::now()) {
                Ok(running) => running,
                Err(why) => {
                    git.repos.prs().record(Outcome::RateLimited);
                    return rate_limited(why);
                }
            };
            let slot = match git.pushes.try_take(client) {
                Ok(slot) => slot,
                Err(full) => return receive::busy(full),
            };
            let dir = git.repos.dir(&repo);
            receive::receive_pack(
                Arc::clone(&git),
                repo,
                dir,
                &headers,
                body,
                slot,
                client,
                Some(running),
            )
            .await
        }
        Endpoint::InfoRefs | Endpoint::Page => {
            (StatusCode::METHOD_NOT_ALLOWED, "use GET\n").into_response()
        }
    }
}

fn rate_limited(why: RateRefusal) -> Response {
    let (text, retry) = match why {
        RateRefusal::Hourly(after) => (
            "too many pushes to /prs/ from your address this hour",
            after.as_secs().max(1),
        ),
        RateRefusal::AtOnce => ("too many pushes to /prs/ from your address at once", 30),
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, format!("{text}\n")).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}
