//! Value parsers for the command line: sizes, durations and public keys.
//!
//! Sizes are written the way operators think of them (`256KiB`, `2GiB`), durations as
//! humantime strings (`500ms`, `3m`, `30min`), and pubkeys as `npub1…` or 64-char hex,
//! so the same flag works whether it is typed by hand or copied from a nostr client.

use std::time::Duration;

use nostr::prelude::{FromBech32, PublicKey};

/// Parses a byte size: a plain integer (bytes) or an integer with a binary suffix
/// (`K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB`, case-insensitive; `B` alone is bytes).
///
/// Binary multiples only, because every limit here guards memory or disk, where a
/// "megabyte" that silently means 10^6 surprises operators comparing with `du -h`.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{input}` is not a size (expected e.g. 256KiB, 2GiB, 1048576)"
        ));
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{input}`: number too large"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => {
            return Err(format!(
                "`{input}`: unknown size unit `{other}` (use KiB, MiB, GiB)"
            ));
        }
    };
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{input}`: size too large"))
}

/// Parses a byte size that must fit in `usize` (in-memory limits such as message sizes).
pub fn parse_usize_size(input: &str) -> Result<usize, String> {
    let bytes = parse_size(input)?;
    usize::try_from(bytes).map_err(|_| format!("`{input}`: too large for this platform"))
}

/// Parses a humantime duration (`500ms`, `20s`, `3m`, `30min`, `1h 30m`).
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    humantime::parse_duration(input.trim()).map_err(|e| format!("`{input}`: {e}"))
}

/// Parses a public key given as `npub1…` (NIP-19) or as 64 hex characters.
pub fn parse_pubkey(input: &str) -> Result<PublicKey, String> {
    let text = input.trim();
    if text.starts_with("npub1") {
        PublicKey::from_bech32(text).map_err(|e| format!("`{input}`: bad npub: {e}"))
    } else if text.len() != 64 {
        Err(format!(
            "`{input}` is not a public key: expected an npub1… or 64 hex characters, got {} characters",
            text.chars().count()
        ))
    } else {
        PublicKey::from_hex(text)
            .map_err(|e| format!("`{input}` is not a public key (64 hex characters): {e}"))
    }
}

/// Formats a byte count for humans (`256 KiB`, `2 GiB`), used in help-like output and
/// refusal messages so that they match the units the flags accept.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (name, shift) in UNITS {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes & (unit - 1) == 0 {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

/// Parses `--maintainer-model`: `reciprocal` or `listed`.
pub fn parse_maintainer_model(input: &str) -> Result<grasp_core::MaintainerModel, String> {
    match input {
        "reciprocal" => Ok(grasp_core::MaintainerModel::Reciprocal),
        "listed" => Ok(grasp_core::MaintainerModel::Listed),
        other => Err(format!(
            "unknown maintainer model '{other}': use 'reciprocal' (the default) or 'listed'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_plain_and_binary_suffixes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_size("256k"), Ok(256 * 1024));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("18446744073709551615TiB").is_err());
    }

    #[test]
    fn sizes_format_back() {
        assert_eq!(format_size(256 * 1024), "256 KiB");
        assert_eq!(format_size(2 << 30), "2 GiB");
        assert_eq!(format_size(1000), "1000 bytes");
    }

    #[test]
    fn durations_are_humantime() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30min"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn pubkeys_accept_npub_and_hex() {
        let hex = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d";
        let from_hex = parse_pubkey(hex).expect("hex key");
        let npub = nostr::prelude::ToBech32::to_bech32(&from_hex).expect("encode");
        assert_eq!(parse_pubkey(&npub), Ok(from_hex));
        assert!(parse_pubkey("npub1nope").is_err());
        assert!(parse_pubkey("xyz").is_err());
    }

    #[test]
    fn bad_pubkeys_report_their_own_length() {
        let err = parse_pubkey("notakey").expect_err("not a key");
        assert!(err.contains("got 7 characters"), "{err}");
        let err = parse_pubkey(&"z".repeat(64)).expect_err("not hex");
        assert!(err.contains("64 hex characters"), "{err}");
        let full = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d";
        let err = parse_pubkey(&full[..63]).expect_err("short");
        assert!(err.contains("got 63 characters"), "{err}");
    }
}
