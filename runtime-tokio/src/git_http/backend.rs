//! Running `git upload-pack` / `git receive-pack --stateless-rpc` and streaming.
//!
//! Packs never sit in our memory: the request body is copied into the child's stdin
//! while the child's stdout is forwarded, chunk by chunk, into the response body. A
//! driver task owns the child, so that a client vanishing mid-response neither leaves
//! the child running nor skips the post-push hook: the hook runs whenever git
//! succeeded, and the response ends only after it returns.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

use super::body::{BodyReader, stalled, too_large};
use super::pktline::{FLUSH, pkt_line};

/// Which git service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// Clone and fetch.
    UploadPack,
    /// Push.
    ReceivePack,
}

impl Service {
    /// Parses the `service` query parameter / URL segment (`git-upload-pack`).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "git-upload-pack" => Some(Self::UploadPack),
            "git-receive-pack" => Some(Self::ReceivePack),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::UploadPack => "upload-pack",
            Self::ReceivePack => "receive-pack",
        }
    }

    /// Content-Type of this service's POST response.
    pub(crate) fn result_type(self) -> &'static str {
        match self {
            Self::UploadPack => "application/x-git-upload-pack-result",
            Self::ReceivePack => "application/x-git-receive-pack-result",
        }
    }

    fn advertisement_type(self) -> &'static str {
        match self {
            Self::UploadPack => "application/x-git-upload-pack-advertisement",
            Self::ReceivePack => "application/x-git-receive-pack-advertisement",
        }
    }
}

/// The `Git-Protocol` header value, if it is safe to hand to git (`version=2` and
/// similar: alphanumerics and `=:._-` only).
pub(crate) fn git_protocol(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    let safe = !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=:._-".contains(&b));
    safe.then(|| value.to_owned())
}

fn command(service: Service, dir: &Path, protocol: Option<&str>) -> Command {
    let mut command = crate::children::tokio_git();
    command
        .args([
            "-c",
            "uploadpack.allowTipSHA1InWant=true",
            "-c",
            "uploadpack.allowReachableSHA1InWant=true",
            "-c",
            "uploadpack.allowFilter=true",
            "-c",
            "receive.fsckObjects=true",
            // The authorizer decides which refs may move or go: a state event may
            // drop the branch HEAD names, or rewrite history.
            "-c",
            "receive.denyDeleteCurrent=ignore",
            "-c",
            "receive.denyNonFastForwards=false",
            // git's automatic maintenance would run before receive-pack exits, so
            // before the push's response ends; graspd runs it after (housekeeping).
            "-c",
            "receive.autogc=false",
            service.name(),
            "--stateless-rpc",
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(protocol) = protocol {
        command.env("GIT_PROTOCOL", protocol);
    }
    command.arg(dir);
    command
}

fn no_cache(mut response: Response, content_type: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=0, must-revalidate"),
    );
    headers.insert(
        header::EXPIRES,
        HeaderValue::from_static("Fri, 01 Jan 1980 00:00:00 GMT"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `GET …/info/refs?service=git-<service>`: the ref advertisement. Protocol v0/v1
/// responses start with the `# service=…` pkt-line and a flush, as smart HTTP requires;
/// protocol v2 responses do not.
pub(crate) async fn advertise(service: Service, dir: &Path, protocol: Option<&str>) -> Response {
    let mut command = command(service, dir, protocol);
    command.arg("--advertise-refs").stdin(Stdio::null());
    // The advertisement is one line per ref, not a pack: reading it whole is fine.
    let output = match command.output().await {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            tracing::warn!(
                dir = %dir.display(),
                "git {} --advertise-refs failed: {}",
                service.name(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return (StatusCode::INTERNAL_SERVER_ERROR, "git failed\n").into_response();
        }
        Err(e) => {
            tracing::error!("cannot run git: {e}");
            return (StatusCode::INTERNAL_SERVER_ERROR, "git unavailable\n").into_response();
        }
    };
    let v2 = protocol.is_some_and(|p| p.split(':').any(|part| part == "version=2"));
    let mut body = Vec::with_capacity(output.stdout.len() + 40);
    if !v2 {
        body.extend(pkt_line(
            format!("# service=git-{}\n", service.name()).as_bytes(),
        ));
        body.extend_from_slice(FLUSH);
    }
    body.extend_from_slice(&output.stdout);
    no_cache(
        Body::from(body).into_response(),
        service.advertisement_type(),
    )
}

/// Work to run after git exited successfully, before the response ends.
pub(crate) type AfterSuccess = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// One streamed `POST …/git-<service>` run.
pub(crate) struct Run {
    /// Which service.
    pub(crate) service: Service,
    /// The bare repository.
    pub(crate) dir: PathBuf,
    /// The validated `Git-Protocol` header.
    pub(crate) protocol: Option<String>,
    /// Bytes already read from the body (the push commands), replayed first.
    pub(crate) prefix: Vec<u8>,
    /// The rest of the body.
    pub(crate) body: BodyReader,
    /// The response to send instead of git's if the body passes its cap before git
    /// has written anything (a valid refusal report for pushes).
    pub(crate) too_large_response: Option<Vec<u8>>,
    /// Hook run after git succeeded (the post-push release).
    pub(crate) after_success: Option<AfterSuccess>,
    /// The push slot this run holds until git exits (concurrent receive-pack cap).
    pub(crate) slot: Option<crate::slots::Slot>,
    /// Held until git exits, so that no prune of the repository runs meanwhile.
    pub(crate) push_guard: Option<crate::housekeeping::PushGuard>,
    /// Held until git and the post-push hook are done, whatever the outcome (a
    /// contributor push's in-flight count: its end removes a repository left empty).
    pub(crate) hold: Option<Box<dyn std::any::Any + Send>>,
}

/// Starts git and returns the streaming response.
pub(crate) fn run(run: Run) -> Response {
    let mut child = match command(run.service, &run.dir, run.protocol.as_deref()).spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::error!("cannot run git: {e}");
            return (StatusCode::INTERNAL_SERVER_ERROR, "git unavailable\n").into_response();
        }
    };
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "git pipes unavailable\n").into_response();
    };
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let service = run.service;
    tokio::spawn(drive(child, stdin, stdout, stderr, run, tx));
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    no_cache(
        Body::from_stream(stream).into_response(),
        service.result_type(),
    )
}

/// How feeding the child's stdin ended.
enum Fed {
    /// The whole body was written.
    Complete,
    /// The body passed its cap.
    TooLarge,
    /// The client stopped sending (no bytes for the stall timeout).
    Stalled,
    /// The client's upload failed, or git stopped reading.
    Broken(String),
}

async fn feed(mut stdin: ChildStdin, prefix: Vec<u8>, mut body: BodyReader) -> Fed {
    if let Err(e) = stdin.write_all(&prefix).await {
        return Fed::Broken(format!("writing to git: {e}"));
    }
    let outcome = match tokio::io::copy(&mut body, &mut stdin).await {
        Ok(_) => Fed::Complete,
        Err(e) if too_large(&e).is_some() => Fed::TooLarge,
        Err(e) if stalled(&e) => Fed::Stalled,
        Err(e) => Fed::Broken(e.to_string()),
    };
    if matches!(outcome, Fed::Complete) {
        let _ = stdin.shutdown().await;
    }
    // Dropping stdin gives git end-of-file: on a cut-off body it fails cleanly,
    // removing its quarantine, and writes nothing.
    outcome
}

async fn read_tail<R: AsyncRead + Unpin>(mut reader: R) -> String {
    let mut tail = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 8192 {
            tail.drain(..tail.len() - 8192);
        }
    }
    String::from_utf8_lossy(&tail).trim().to_owned()
}

async fn drive(
    mut child: tokio::process::Child,
    stdin: ChildStdin,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    run: Run,
    tx: mpsc::Sender<io::Result<Bytes>>,
) {
    let Run {
        service,
        dir,
        prefix,
        body,
        too_large_response,
        after_success,
        slot,
        push_guard,
        hold,
        ..
    } = run;
    let stderr_task = tokio::spawn(read_tail(stderr));
    let mut feeder = tokio::spawn(feed(stdin, prefix, body));
    let mut fed: Option<Fed> = None;
    // 64 KiB reads: a pack streams in a sixteenth of the reads, channel sends and HTTP
    // chunks of the 4 KiB default, with the same bounded memory.
    let mut output = ReaderStream::with_capacity(stdout, 64 * 1024);
    let mut forwarded = false;
    let mut client_gone = false;
    loop {
        tokio::select! {
            // Seen before git's reaction to end-of-input, so that a capped body is
            // answered with our report rather than git's.
            biased;
            joined = &mut feeder, if fed.is_none() => {
                // A stalled body ends like a cut one: git gets end-of-file, fails
                // ("early EOF") and removes its quarantine (SIGKILL would leave it,
                // and git ignores SIGTERM's chance to clean up).
                let joined = joined.unwrap_or_else(|e| Fed::Broken(e.to_string()));
                fed = Some(joined);
            }
            chunk = output.next() => match chunk {
                Some(Ok(bytes)) => {
                    if matches!(fed, Some(Fed::TooLarge)) && !forwarded {
                        continue;
                    }
                    forwarded = true;
                    if !client_gone && tx.send(Ok(bytes)).await.is_err() {
                        // Keep draining so git can finish; the release must not
                        // depend on the client staying.
                        client_gone = true;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!("reading git output: {e}");
                    break;
                }
                None => break,
            },
        }
    }
    if fed.is_none() {
        if feeder.is_finished() {
            fed = Some(feeder.await.unwrap_or_else(|e| Fed::Broken(e.to_string())));
        } else {
            // git stopped without reading everything; what is left does not matter.
            feeder.abort();
            fed = Some(Fed::Complete);
        }
    }
    let status = child.wait().await;
    let stderr_tail = stderr_task.await.unwrap_or_default();
    let succeeded = status.as_ref().is_ok_and(|s| s.success());
    match fed {
        Some(Fed::TooLarge) => {
            tracing::info!(dir = %dir.display(), "{} request over the size limit refused", service.name());
            if let (false, Some(response)) = (forwarded, too_large_response) {
                let _ = tx.send(Ok(Bytes::from(response))).await;
            }
            return;
        }
        // A pack can be complete before the body ends: then git succeeded, and the
        // push is released as any other.
        Some(Fed::Stalled) if !succeeded => {
            tracing::info!(dir = %dir.display(), "{} request stalled; aborted", service.name());
            // An error ends the response without its last chunk: the client sees the
            // connection cut rather than a report that looks complete.
            let _ = tx
                .send(Err(io::Error::other("the request body stalled")))
                .await;
            drop(slot);
            return;
        }
        Some(Fed::Broken(why)) => {
            tracing::info!(dir = %dir.display(), "{} request cut short: {why}", service.name());
        }
        _ => {}
    }
    if !succeeded {
        tracing::info!(
            dir = %dir.display(),
            "git {} exited with {:?}: {stderr_tail}",
            service.name(),
            status.map(|s| s.to_string())
        );
        return;
    }
    drop(push_guard);
    if let Some(after) = after_success {
        after().await;
    }
    drop(slot);
    drop(hold);
    drop(tx);
}
