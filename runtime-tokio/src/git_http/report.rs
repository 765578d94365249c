//! Building a receive-pack response without running git, so that a refused push
//! reaches stock `git push` as a readable per-ref message.
//!
//! The response is a report-status (`unpack ok`, then `ng <ref> <reason>` per ref, then
//! a flush), wrapped in side-band channel 1 when the client asked for side-band, with
//! the reasons also written to channel 2 so they print as `remote: …` lines.

use super::pktline::{FLUSH, PushCommands, pkt_line};

/// Payload bytes per side-band packet: `side-band-64k` allows 65519, `side-band` 999.
fn sideband_chunk(commands: &PushCommands) -> Option<usize> {
    if commands.has_capability("side-band-64k") {
        Some(65515)
    } else if commands.has_capability("side-band") {
        Some(995)
    } else {
        None
    }
}

/// Makes a reason safe for a pkt-line: one line, no control characters.
fn one_line(reason: &str) -> String {
    let cleaned: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        "refused".to_owned()
    } else {
        trimmed.chars().take(1000).collect()
    }
}

/// The response refusing every ref of `commands`: `refused(ref)` gives the reason for
/// the refs that were refused; the others get `atomic push failed` (a push lands whole
/// or not at all). `unpack` is the unpack status (`ok`, or the reason the pack itself
/// was refused).
pub fn refusal_response(
    commands: &PushCommands,
    unpack: &str,
    refused: impl Fn(&str) -> Option<String>,
) -> Vec<u8> {
    let mut report = Vec::new();
    let mut human = Vec::new();
    report.extend(pkt_line(
        format!("unpack {}\n", one_line(unpack)).as_bytes(),
    ));
    if unpack != "ok" {
        human.push(format!("graspd: push refused: {}\n", one_line(unpack)));
    }
    for update in &commands.updates {
        let reason = match refused(&update.name) {
            Some(reason) => {
                let reason = one_line(&reason);
                human.push(format!("graspd: {} refused: {reason}\n", update.name));
                reason
            }
            None => "atomic push failed".to_owned(),
        };
        report.extend(pkt_line(
            format!("ng {} {reason}\n", update.name).as_bytes(),
        ));
    }
    report.extend_from_slice(FLUSH);

    let Some(chunk) = sideband_chunk(commands) else {
        return report;
    };
    let mut out = Vec::new();
    for line in human {
        for part in line.as_bytes().chunks(chunk) {
            out.extend(band(2, part));
        }
    }
    for part in report.chunks(chunk) {
        out.extend(band(1, part));
    }
    out.extend_from_slice(FLUSH);
    out
}

fn band(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(channel);
    payload.extend_from_slice(data);
    pkt_line(&payload)
}

#[cfg(test)]
mod tests {
    use super::super::pktline::RefUpdate;
    use super::*;

    fn commands(caps: &[&str]) -> PushCommands {
        let update = |name: &str| RefUpdate {
            old: "0".repeat(40),
            new: "1".repeat(40),
            name: name.to_owned(),
        };
        PushCommands {
            updates: vec![update("refs/heads/main"), update("refs/heads/dev")],
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            raw: Vec::new(),
        }
    }

    #[test]
    fn plain_report_status() {
        let out = refusal_response(&commands(&["report-status"]), "ok", |name| {
            (name == "refs/heads/dev").then(|| "blocked: no state\nevent".to_owned())
        });
        let text = String::from_utf8(out).expect("ascii");
        assert_eq!(
            text,
            "000eunpack ok\n\
             002ang refs/heads/main atomic push failed\n\
             002eng refs/heads/dev blocked: no state event\n\
             0000"
        );
    }

    #[test]
    fn sideband_wraps_report_and_adds_messages() {
        let out = refusal_response(&commands(&["report-status", "side-band-64k"]), "ok", |_| {
            Some("nope".to_owned())
        });
        // Channel 2 messages first, then channel 1 carrying the report, then flush.
        assert_eq!(out[4], 2);
        assert!(
            out.ends_with(b"00000000"),
            "report flush inside band 1, then final flush"
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("graspd: refs/heads/main refused: nope"));
        assert!(text.contains("ng refs/heads/dev nope"));
    }
}
