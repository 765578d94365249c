//! `graspd purgatory`: the operator view of a running graspd, from its loopback-only
//! `/purgatory.json` endpoint.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Fetches and prints the view of the graspd at `listen` serving under `base_path`
/// (`/git`, or empty; see `Config::base_path`); `Err` is a message for the operator.
pub async fn run(listen: std::net::SocketAddr, base_path: &str, json: bool) -> Result<(), String> {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let body = get(addr, &format!("{base_path}/purgatory.json"))
        .await
        .map_err(|e| format!("cannot reach graspd at {addr}: {e}"))?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| format!("unexpected answer from {addr}: {e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    print!("{}", render(&v, now_ms()));
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The view as text: what waits for which objects, which URLs were tried, when next.
pub fn render(v: &Value, now_ms: u64) -> String {
    let rel = |t: Option<u64>| match t {
        Some(t) if t >= now_ms => format!("in {}s", (t - now_ms) / 1000),
        Some(t) => format!("{}s ago", (now_ms - t) / 1000),
        None => "running".into(),
    };
    let empty = Vec::new();
    let waiting = v["waiting"].as_array().unwrap_or(&empty);
    let sync = v["sync"].as_array().unwrap_or(&empty);
    let mut out = format!(
        "{} event(s) waiting, {} identifier(s) in the sync queue\n",
        waiting.len(),
        sync.len()
    );
    for w in waiting {
        let missing: Vec<&str> = w["missing"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(Value::as_str)
            .collect();
        out.push_str(&format!(
            "  {} {:<12} {:<20} expires {}  missing: {}\n",
            w["id"].as_str().unwrap_or("?"),
            w["kind"].as_str().unwrap_or("?"),
            w["identifier"].as_str().unwrap_or("?"),
            rel(w["deadline_ms"].as_u64()),
            if missing.is_empty() {
                "-".to_owned()
            } else {
                missing.join(",")
            },
        ));
        if let Some(why) = w["authority"].as_str() {
            out.push_str(&format!("      {why}\n"));
        }
    }
    for s in sync {
        out.push_str(&format!(
            "  sync {:<20} attempts {} next {}\n",
            s["identifier"].as_str().unwrap_or("?"),
            s["attempts"].as_u64().unwrap_or(0),
            rel(s["next_attempt_ms"].as_u64()),
        ));
        for u in s["urls"].as_array().unwrap_or(&empty) {
            out.push_str(&format!(
                "      {}  {}\n",
                u["url"].as_str().unwrap_or("?"),
                u["outcome"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP answer")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head.lines().next().unwrap_or_default().to_owned());
        }
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return Ok(dechunk(body));
        }
        Ok(body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| "timed out".to_owned())?
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_waiting_and_sync() {
        let v = serde_json::json!({
            "waiting": [{"id": "ab", "kind": "state", "identifier": "proj", "deadline_ms": 61_000, "missing": ["c0ffee"]}],
            "sync": [{"identifier": "proj", "attempts": 2, "next_attempt_ms": 21_000,
                      "urls": [{"url": "https://a.example/p.git", "outcome": "failed (Timeout): no answer"}]}]
        });
        let text = render(&v, 1_000);
        assert!(
            text.contains("ab state")
                && text.contains("expires in 60s")
                && text.contains("missing: c0ffee"),
            "{text}"
        );
        assert!(
            text.contains("attempts 2 next in 20s") && text.contains("failed (Timeout)"),
            "{text}"
        );
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
