//! Git smart HTTP at `/<npub>/<identifier>.git/…`, and the repository web page.
//!
//! Routes (the `.git` suffix is optional everywhere, as git clients keep whatever URL
//! the user typed):
//! - `GET  /<npub>/<id>.git/info/refs?service=git-upload-pack|git-receive-pack`
//! - `POST /<npub>/<id>.git/git-upload-pack` (clone, fetch)
//! - `POST /<npub>/<id>.git/git-receive-pack` (push, authorized before git runs)
//! - `GET  /<npub>/<id>.git` and `/<npub>/<id>`: a page linking to git-nostr clients.
//!
//! The identifier segment is percent-decoded once (`my%20repo.git` is `my repo`, `+` a
//! plus), by the decoder the announcement check uses. Anything that does not parse into
//! a [`RepoPath`] (a bad escape, `%2F`, …), and any repository without a bare
//! repository on disk, is a 404.

mod authorizer;
mod backend;
mod body;
mod pktline;
pub mod prs;
mod receive;
mod report;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::Extensions;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

pub use authorizer::{PushAuthorizer, PushDecision};
pub use pktline::{PushCommands, RefUpdate};

use crate::pages;
use crate::repo::{RepoPath, Repos};

/// Limits of the git endpoints against big, slow or many requests.
#[derive(Debug, Clone)]
pub struct GitLimits {
    /// Largest request body after gzip decoding (a push's pack).
    pub max_push_size: u64,
    /// A request body that sends no byte for this long is aborted (git killed).
    pub body_stall_timeout: Duration,
    /// Pushes (`git receive-pack` children) running at once.
    pub max_pushes: usize,
    /// Of those, from one client address.
    pub max_pushes_per_client: usize,
}

impl GitLimits {
    /// The limits configured on the command line.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            max_push_size: config.max_push_size,
            body_stall_timeout: config.body_stall_timeout,
            max_pushes: config.max_pushes,
            max_pushes_per_client: config.max_pushes_per_client,
        }
    }
}

/// What the git routes need; shared by all requests.
pub struct GitHttp {
    repos: Repos,
    authorizer: Arc<dyn PushAuthorizer>,
    max_push_size: u64,
    stall: Duration,
    pushes: crate::slots::Slots,
    public_base: String,
    /// The contributor endpoint (GRASP-06), when on.
    prs: Option<Arc<prs::PrsHttp>>,
}

impl GitHttp {
    /// Serves the repositories under `repos`, asking `authorizer` about pushes within
    /// `limits`; `public_base` (`https://host`) is used in page links.
    pub fn new(
        repos: Repos,
        authorizer: Arc<dyn PushAuthorizer>,
        limits: &GitLimits,
        public_base: String,
    ) -> Self {
        Self {
            repos,
            authorizer,
            max_push_size: limits.max_push_size,
            stall: limits.body_stall_timeout,
            pushes: crate::slots::Slots::new(limits.max_pushes, limits.max_pushes_per_client),
            public_base,
            prs: None,
        }
    }

    /// Also serves the contributor endpoint `/prs/…` (GRASP-06).
    #[must_use]
    pub fn with_prs(mut self, prs: prs::PrsHttp) -> Self {
        self.prs = Some(Arc::new(prs));
        self
    }

    /// The contributor endpoint, when on.
    pub fn prs(&self) -> Option<&Arc<prs::PrsHttp>> {
        self.prs.as_ref()
    }

    /// The repositories served.
    pub fn repos(&self) -> &Repos {
        &self.repos
    }
}

impl std::fmt::Debug for GitHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHttp")
            .field("repos", &self.repos)
            .field("max_push_size", &self.max_push_size)
            .finish_non_exhaustive()
    }
}

/// What a path below `/<npub>/` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    InfoRefs,
    UploadPack,
    ReceivePack,
    Page,
}

/// Splits `<id>[.git]/<endpoint>` into the identifier and the endpoint.
pub(crate) fn parse_rest(rest: &str) -> Option<(&str, Endpoint)> {
    let (repo, endpoint) = if let Some(repo) = rest.strip_suffix("/info/refs") {
        (repo, Endpoint::InfoRefs)
    } else if let Some(repo) = rest.strip_suffix("/git-upload-pack") {
        (repo, Endpoint::UploadPack)
    } else if let Some(repo) = rest.strip_suffix("/git-receive-pack") {
        (repo, Endpoint::ReceivePack)
    } else {
        (rest.strip_suffix('/').unwrap_or(rest), Endpoint::Page)
    };
    let identifier = repo.strip_suffix(".git").unwrap_or(repo);
    Some((identifier, endpoint))
}

/// The raw (still percent-encoded) `{npub}` and `{*rest}` of the route, read from the
/// request path: axum's path extractors (even `RawPathParams`) have decoded them
/// already, and decoding twice would make `100%2525` name `100%`. The identifier is
/// decoded once, by [`RepoPath::from_url`], as the announcement check decodes it.
fn raw_segments(uri: &Uri) -> Option<(&str, &str)> {
    uri.path().strip_prefix('/')?.split_once('/')
}

/// Resolves the URL to an existing repository, or `None` (→ 404).
fn locate(git: &GitHttp, uri: &Uri) -> Option<(RepoPath, Endpoint)> {
    let (npub, rest) = raw_segments(uri)?;
    let (segment, endpoint) = parse_rest(rest)?;
    let repo = RepoPath::from_url(npub, segment).ok()?;
    git.repos.exists(&repo).then_some((repo, endpoint))
}

pub(crate) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such repository\n").into_response()
}

/// `Some(true)` for a gzip body, `Some(false)` for an identity one, `None` otherwise.
fn gzip_encoding(headers: &HeaderMap) -> Option<bool> {
    match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str()) {
        None => Some(false),
        Some(Ok(v)) if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") => {
            Some(true)
        }
        Some(Ok(v)) if v.eq_ignore_ascii_case("identity") => Some(false),
        Some(_) => None,
    }
}

/// `GET /{npub}/{*rest}`: ref advertisement or repository page.
pub async fn get(
    State(git): State<Arc<GitHttp>>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some((repo, endpoint)) = locate(&git, &uri) else {
        return not_found();
    };
    match endpoint {
        Endpoint::InfoRefs => {
            let Some(service) = query
                .get("service")
                .and_then(|s| backend::Service::parse(s))
            else {
                return (StatusCode::NOT_FOUND, "only smart HTTP is served\n").into_response();
            };
            let protocol = backend::git_protocol(headers.get("git-protocol"));
            let dir = git.repos.dir(&repo);
            let response = backend::advertise(service, &dir, protocol.as_deref()).await;
            if service == backend::Service::ReceivePack && response.status().is_success() {
                receive::advertised(Arc::clone(&git.authorizer), repo, dir);
            }
            response
        }
        Endpoint::Page => Html(pages::repo_page(&git.public_base, &repo)).into_response(),
        Endpoint::UploadPack | Endpoint::ReceivePack => {
            (StatusCode::METHOD_NOT_ALLOWED, "use POST\n").into_response()
        }
    }
}

/// `POST /{npub}/{*rest}`: upload-pack or receive-pack.
pub async fn post(
    State(git): State<Arc<GitHttp>>,
    uri: Uri,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some((repo, endpoint)) = locate(&git, &uri) else {
        return not_found();
    };
    let dir = git.repos.dir(&repo);
    match endpoint {
        Endpoint::UploadPack => {
            let Some(gzip) = gzip_encoding(&headers) else {
                return (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported Content-Encoding\n",
                )
                    .into_response();
            };
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
            let slot = match git.pushes.try_take(client) {
                Ok(slot) => slot,
                Err(full) => {
                    tracing::debug!(%repo, ?client, ?full, "push refused: no slot");
                    return receive::busy(full);
                }
            };
            tracing::debug!(%repo, ?client, "push slot taken");
            receive::receive_pack(
                Arc::clone(&git),
                repo,
                dir,
                &headers,
                body,
                slot,
                client,
                None,
            )
            .await
        }
        Endpoint::InfoRefs | Endpoint::Page => {
            (StatusCode::METHOD_NOT_ALLOWED, "use GET\n").into_response()
        }
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn rest_splits_into_identifier_and_endpoint() {
        assert_eq!(
            parse_rest("r.git/info/refs"),
            Some(("r", Endpoint::InfoRefs))
        );
        assert_eq!(parse_rest("r/info/refs"), Some(("r", Endpoint::InfoRefs)));
        assert_eq!(
            parse_rest("r.git/git-upload-pack"),
            Some(("r", Endpoint::UploadPack))
        );
        assert_eq!(
            parse_rest("r.git/git-receive-pack"),
            Some(("r", Endpoint::ReceivePack))
        );
        assert_eq!(parse_rest("r.git"), Some(("r", Endpoint::Page)));
        assert_eq!(parse_rest("r.git/"), Some(("r", Endpoint::Page)));
        assert_eq!(parse_rest("r"), Some(("r", Endpoint::Page)));
        // Extra segments stay in the identifier, which validation then refuses.
        assert_eq!(
            parse_rest("a/b.git/info/refs"),
            Some(("a/b", Endpoint::InfoRefs))
        );
        assert_eq!(parse_rest("../x.git"), Some(("../x", Endpoint::Page)));
    }
}
