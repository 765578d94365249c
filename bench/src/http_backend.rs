//! The reference git server: `git http-backend` behind a minimal CGI web server on
//! 127.0.0.1, in this process — what a small host runs (e.g. nginx + fcgiwrap), with
//! nothing of ours in the way. Request and response bodies stream through pipes; only
//! the CGI header block is parsed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Pipe buffer between git and the socket, both ways.
const CHUNK: usize = 64 * 1024;

/// Largest CGI header block accepted (git's is a few short lines).
const MAX_HEAD: usize = 16 * 1024;

struct Cgi {
    root: PathBuf,
    home: PathBuf,
    config: Vec<(String, String)>,
}

/// A running `git http-backend` server; stops when dropped.
#[derive(Debug)]
pub struct HttpBackend {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HttpBackend {
    /// Serves the repositories under `root` (`GIT_PROJECT_ROOT`, all exported) with the
    /// git settings `config` (e.g. `http.receivepack=true`), git's `HOME` being `home`.
    pub async fn start(root: &Path, home: &Path, config: &[(&str, &str)]) -> Self {
        let cgi = Arc::new(Cgi {
            root: root.to_path_buf(),
            home: home.to_path_buf(),
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new().fallback(handle).with_state(cgi);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, task }
    }

    /// `http://127.0.0.1:<port>/<path>` — `path` relative to the project root.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(cgi): State<Arc<Cgi>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let header = |name: HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut command = std::process::Command::new("git");
    command.arg("http-backend");
    grasp_tests::server::isolate_env(&mut command, &cgi.home);
    command
        .env("GIT_PROJECT_ROOT", &cgi.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env(
            "CONTENT_TYPE",
            header(header::CONTENT_TYPE).unwrap_or_default(),
        )
        .env("GIT_CONFIG_COUNT", cgi.config.len().to_string());
    for (i, (key, value)) in cgi.config.iter().enumerate() {
        command
            .env(format!("GIT_CONFIG_KEY_{i}"), key)
            .env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    let optional = [
        (header::CONTENT_LENGTH, "CONTENT_LENGTH"),
        (header::CONTENT_ENCODING, "HTTP_CONTENT_ENCODING"),
        (HeaderName::from_static("git-protocol"), "GIT_PROTOCOL"),
    ];
    for (name, var) in optional {
        if let Some(value) = header(name) {
            command.env(var, value);
        }
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("git: {e}\n")).into_response();
        }
    };
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no pipes\n").into_response();
    };
    // The request body flows into git while its answer flows out: a push is as large
    // as the pack, so neither side may wait for the other to finish.
    tokio::spawn(async move {
        let mut frames = body.into_data_stream();
        while let Some(Ok(frame)) = frames.next().await {
            if stdin.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = stdin.shutdown().await;
    });
    let mut out = BufReader::with_capacity(CHUNK, stdout);
    let head = match read_head(&mut out).await {
        Ok(head) => head,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response(),
    };
    let (status, headers) = match parse_cgi_head(&head) {
        Ok(parsed) => parsed,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response(),
    };
    // Reaped when git exits; killed with the task if the client goes away first.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let stream = futures_util::stream::unfold(out, |mut out| async move {
        let mut buf = vec![0u8; CHUNK];
        match out.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), out))
            }
            Err(e) => Some((Err(e), out)),
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    *response.status_mut() = status;
    response.headers_mut().extend(headers);
    response
}

/// Reads the CGI header block up to and including its empty line.
async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(out: &mut R) -> Result<Vec<u8>, String> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        let n = out
            .read_until(b'\n', &mut head)
            .await
            .map_err(|e| format!("reading git http-backend: {e}"))?;
        let line = &head[start..];
        if n == 0 || line == b"\n" || line == b"\r\n" {
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err("git http-backend header block too long".to_owned());
        }
    }
}

/// Parses a CGI response header block: the `Status:` line becomes the status (200 when
/// absent), every other `Name: value` line a response header.
pub fn parse_cgi_head(head: &[u8]) -> Result<(StatusCode, Vec<(HeaderName, HeaderValue)>), String> {
    let text = std::str::from_utf8(head).map_err(|_| "CGI header not UTF-8".to_owned())?;
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad CGI header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("");
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| format!("bad CGI status {value:?}"))?;
        } else {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("bad CGI header name {name:?}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("bad CGI header value {value:?}"))?;
            headers.push((name, value));
        }
    }
    Ok((status, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_head_with_and_without_status() {
        let (status, headers) = parse_cgi_head(
            b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: Fri, 01 Jan 1980 00:00:00 GMT\r\n\r\n",
        )
        .expect("parses");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0].0, header::CONTENT_TYPE);
        assert_eq!(headers[1].1, "Fri, 01 Jan 1980 00:00:00 GMT");
        let (status, headers) =
            parse_cgi_head(b"Content-Type: application/x-git-upload-pack-result\n\n")
                .expect("parses");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[0].1, "application/x-git-upload-pack-result");
        assert!(parse_cgi_head(b"no colon here\n\n").is_err());
        assert!(parse_cgi_head(b"Status: abc\n\n").is_err());
    }

    #[tokio::test]
    async fn head_ends_at_the_empty_line() {
        let data: &[u8] = b"Status: 200 OK\r\nA: b\r\n\r\nPACKbody";
        let mut reader = BufReader::new(data);
        let head = read_head(&mut reader).await.expect("head");
        assert_eq!(head, b"Status: 200 OK\r\nA: b\r\n\r\n");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.expect("rest");
        assert_eq!(rest, b"PACKbody");
    }
}
