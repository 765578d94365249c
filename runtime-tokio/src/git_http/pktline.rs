//! pkt-line framing and the ref-update commands at the head of a push.
//!
//! A receive-pack request is `*shallow-line command-list flush-pkt [push-options]
//! [pack]`, each line a pkt-line (4 hex digits of length, including themselves, then
//! the payload). We read exactly up to the first flush, keeping the raw bytes so that
//! they can be replayed to `git receive-pack` unchanged, and refuse anything malformed
//! or oversized before git sees it.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest pkt-line, as git defines it (65516 bytes of payload).
pub const MAX_PKT_LEN: usize = 65520;

/// Most bytes of command section we read before refusing (a push updating tens of
/// thousands of refs fits; an endless stream of commands does not).
pub const MAX_COMMAND_SECTION: usize = 4 << 20;

/// One ref update requested by a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    /// The value the client believes the ref has (all zeros: the ref is created).
    pub old: String,
    /// The value to set (all zeros: the ref is deleted).
    pub new: String,
    /// The full ref name (`refs/heads/main`).
    pub name: String,
}

impl RefUpdate {
    /// Whether this update creates the ref.
    pub fn is_create(&self) -> bool {
        is_zero(&self.old)
    }

    /// Whether this update deletes the ref.
    pub fn is_delete(&self) -> bool {
        is_zero(&self.new)
    }
}

/// The command section of a push, as read from the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushCommands {
    /// The ref updates, in the client's order.
    pub updates: Vec<RefUpdate>,
    /// Capabilities the client asked for (from the first command line).
    pub capabilities: Vec<String>,
    /// The exact bytes read, through the flush, to replay to git.
    pub raw: Vec<u8>,
}

impl PushCommands {
    /// Whether the client asked for capability `name` (with or without `=value`).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|cap| {
            cap == name
                || cap
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('='))
        })
    }
}

/// Why a push's command section was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// The request ended before the flush-pkt.
    #[error("request ended inside the command list")]
    Truncated,
    /// A length prefix is not 4 hex digits, or names an impossible length.
    #[error("bad pkt-line length `{0}`")]
    BadLength(String),
    /// A line is not `<old> <new> <ref>` or `shallow <oid>`.
    #[error("bad command line: {0}")]
    BadCommand(String),
    /// The command section exceeds [`MAX_COMMAND_SECTION`].
    #[error("command list too large")]
    TooLarge,
    /// Reading the request failed.
    #[error("reading the request: {0}")]
    Io(String),
}

/// Reads the command section of a receive-pack request from `reader`, leaving the
/// reader positioned at what follows the flush (push options or the pack).
/// An empty command list (a body of just `0000`, as git's probe request sends) is
/// valid and yields no updates.
pub async fn read_commands<R>(reader: &mut R) -> Result<PushCommands, CommandError>
where
    R: AsyncRead + Unpin,
{
    let mut commands = PushCommands::default();
    loop {
        let mut len_hex = [0u8; 4];
        read_exact(reader, &mut len_hex).await?;
        commands.raw.extend_from_slice(&len_hex);
        let len = parse_len(&len_hex)?;
        if len == 0 {
            return Ok(commands);
        }
        if !(4..=MAX_PKT_LEN).contains(&len) {
            return Err(CommandError::BadLength(
                String::from_utf8_lossy(&len_hex).into_owned(),
            ));
        }
        if commands.raw.len() + len > MAX_COMMAND_SECTION {
            return Err(CommandError::TooLarge);
        }
        let start = commands.raw.len();
        commands.raw.resize(start + len - 4, 0);
        read_exact(reader, &mut commands.raw[start..]).await?;
        let payload = commands.raw[start..].to_vec();
        parse_line(&payload, &mut commands)?;
    }
}

/// Parses one line; the capability list rides on the first command line (after any
/// `shallow` lines), as git's send-pack writes it.
fn parse_line(payload: &[u8], commands: &mut PushCommands) -> Result<(), CommandError> {
    let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
    let first_command = commands.updates.is_empty();
    let (line, caps) = match payload.iter().position(|&b| b == 0) {
        Some(nul) if first_command => (&payload[..nul], Some(&payload[nul + 1..])),
        Some(_) => return Err(bad(payload)),
        None => (payload, None),
    };
    let line = std::str::from_utf8(line).map_err(|_| bad(payload))?;
    if let Some(caps) = caps {
        let caps = std::str::from_utf8(caps).map_err(|_| bad(payload))?;
        commands.capabilities = caps
            .split(' ')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(oid) = line.strip_prefix("shallow ") {
        return if is_hex_id(oid) {
            Ok(())
        } else {
            Err(bad(payload))
        };
    }
    if line.starts_with("push-cert") {
        return Err(CommandError::BadCommand(
            "signed pushes are not supported".into(),
        ));
    }
    let mut parts = line.splitn(3, ' ');
    let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(payload));
    };
    let name_ok = !name.is_empty() && !name.chars().any(|c| c.is_control() || c == ' ');
    if !is_hex_id(old) || !is_hex_id(new) || old.len() != new.len() || !name_ok {
        return Err(bad(payload));
    }
    commands.updates.push(RefUpdate {
        old: old.to_owned(),
        new: new.to_owned(),
        name: name.to_owned(),
    });
    Ok(())
}

fn bad(payload: &[u8]) -> CommandError {
    let shown: String = String::from_utf8_lossy(payload).chars().take(200).collect();
    CommandError::BadCommand(shown.escape_debug().to_string())
}

fn parse_len(hex: &[u8; 4]) -> Result<usize, CommandError> {
    std::str::from_utf8(hex)
        .ok()
        .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|s| usize::from_str_radix(s, 16).ok())
        .ok_or_else(|| CommandError::BadLength(String::from_utf8_lossy(hex).into_owned()))
}

async fn read_exact<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> Result<(), CommandError> {
    match reader.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(CommandError::Truncated),
        Err(e) => Err(CommandError::Io(e.to_string())),
    }
}

fn is_hex_id(id: &str) -> bool {
    grasp_core::Oid::parse(id).is_some()
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// Encodes `payload` as one pkt-line.
pub fn pkt_line(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:04x}", payload.len() + 4).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The flush-pkt.
pub const FLUSH: &[u8] = b"0000";

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn body(lines: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines {
            out.extend(pkt_line(line));
        }
        out.extend_from_slice(FLUSH);
        out
    }

    async fn parse(bytes: &[u8]) -> Result<PushCommands, CommandError> {
        let mut reader = bytes;
        read_commands(&mut reader).await
    }

    #[tokio::test]
    async fn parses_commands_capabilities_and_leaves_the_pack() {
        let first =
            format!("{Z} {A} refs/heads/main\0report-status side-band-64k agent=git/2.47\n");
        let second = format!("{A} {Z} refs/heads/old\n");
        let mut bytes = body(&[first.as_bytes(), second.as_bytes()]);
        bytes.extend_from_slice(b"PACK...");
        let mut reader = bytes.as_slice();
        let commands = read_commands(&mut reader).await.expect("valid");
        assert_eq!(reader, b"PACK...", "pack left unread");
        assert_eq!(
            commands.raw,
            &bytes[..bytes.len() - 7],
            "raw bytes kept for replay"
        );
        assert_eq!(commands.updates.len(), 2);
        assert!(commands.updates[0].is_create());
        assert!(commands.updates[1].is_delete());
        assert_eq!(commands.updates[1].name, "refs/heads/old");
        assert!(commands.has_capability("side-band-64k"));
        assert!(commands.has_capability("agent"));
        assert!(!commands.has_capability("side-band"));
    }

    #[tokio::test]
    async fn probe_and_shallow_and_sha256() {
        assert_eq!(parse(b"0000").await.expect("probe").updates, vec![]);
        let a256 = "a".repeat(64);
        let z256 = "0".repeat(64);
        let shallow = format!("shallow {A}");
        let cmd = format!("{z256} {a256} refs/heads/main\0report-status object-format=sha256");
        let commands = parse(&body(&[shallow.as_bytes(), cmd.as_bytes()]))
            .await
            .expect("valid");
        assert_eq!(commands.updates.len(), 1);
        assert_eq!(commands.updates[0].new, a256);
    }

    #[tokio::test]
    async fn hostile_input_is_refused() {
        let ok = format!("{A} {B} refs/heads/main");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "empty body"),
            (b"00".to_vec(), "short length"),
            (b"zzzz".to_vec(), "non-hex length"),
            (b"0003".to_vec(), "length below 4"),
            (b"ffff".to_vec(), "length above max"),
            (b"0032abc".to_vec(), "truncated payload"),
            (pkt_line(ok.as_bytes()), "no flush"),
            (body(&[b"hello"]), "not a command"),
            (body(&[format!("{A} {B}").as_bytes()]), "missing ref"),
            (
                body(&[format!("{A} {} refs/heads/x", "0".repeat(64)).as_bytes()]),
                "mixed lengths",
            ),
            (
                body(&[format!("{A} {B} refs/heads/a b").as_bytes()]),
                "space in ref",
            ),
            (
                body(&[format!("{A} {B} refs/heads/\x01").as_bytes()]),
                "control char",
            ),
            (
                body(&[format!("{} {B} refs/heads/x", "ABCDEF0123".repeat(4)).as_bytes()]),
                "uppercase hex",
            ),
            (
                body(&[
                    ok.as_bytes(),
                    format!("{A} {B} refs/heads/y\0caps").as_bytes(),
                ]),
                "NUL after first",
            ),
            (body(&[b"push-cert\0report-status"]), "push certificate"),
            (body(&[b"shallow nothex"]), "bad shallow"),
        ];
        for (bytes, what) in cases {
            assert!(parse(&bytes).await.is_err(), "{what} should be refused");
        }
        assert_eq!(parse(b"").await, Err(CommandError::Truncated));
    }

    #[tokio::test]
    async fn endless_commands_are_capped() {
        let line = pkt_line(format!("{A} {B} refs/heads/{}", "x".repeat(60000)).as_bytes());
        let mut bytes = Vec::new();
        while bytes.len() <= MAX_COMMAND_SECTION {
            bytes.extend_from_slice(&line);
        }
        assert_eq!(parse(&bytes).await, Err(CommandError::TooLarge));
    }
}
