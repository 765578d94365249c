//! Repository identifiers in URL paths: `/<npub>/<identifier>.git`.
//!
//! Clients percent-encode the identifier when they build a clone URL (`my repo` →
//! `my%20repo.git`, `ü` → `%C3%BC`), and URL parsers encode spaces and non-ASCII
//! themselves, so the path segment and the `d` tag differ in spelling. One decoder turns
//! the segment back into the identifier for both the announcement's clone-URL check and
//! every git route, so that a URL the check accepts is exactly a URL that serves the
//! repository. Decoding is strict: a `%` not followed by two hex digits, or bytes that
//! are not UTF-8, are refused rather than guessed at, and the decoded identifier must
//! pass [`is_safe_identifier`] (so `%2F` cannot smuggle a `/`). In a path `+` is a
//! literal plus, not a space.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::repo::is_safe_identifier;

/// Why a URL path segment does not name a repository identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// A `%` not followed by two hex digits.
    #[error("bad percent-encoding (a `%` must be followed by two hex digits; write `%25` for `%`)")]
    BadEscape,
    /// The decoded bytes are not UTF-8.
    #[error("percent-encoded bytes are not UTF-8")]
    NotUtf8,
    /// The decoded identifier fails the identifier rules.
    #[error(
        "not a repository identifier (1 to 128 bytes, without `/`, `\\`, `..` or control characters, not starting with `.` or `-`)"
    )]
    Refused,
}

/// Characters encoded in an identifier segment of a URL we print: what a URL parser
/// would encode or split on (space, `"`, `#`, `?`, `<`, `>`, `` ` ``, `{`, `}`, …),
/// `%` itself, and the separators. Non-ASCII is always encoded (as UTF-8).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The identifier a URL path segment (without `.git`) names: strict percent-decoding,
/// then the identifier rules. The one decoder of identifiers in URLs (see the module
/// docs); `+` stays a plus.
pub fn decode_identifier(segment: &str) -> Result<String, SegmentError> {
    let bytes = segment.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err(SegmentError::BadEscape);
        }
    }
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| SegmentError::NotUtf8)?;
    if !is_safe_identifier(&decoded) {
        return Err(SegmentError::Refused);
    }
    Ok(decoded.into_owned())
}

/// `d` as a URL path segment: what [`decode_identifier`] turns back into `d`. Used in
/// the clone URLs we print, so that copying one gives a URL that works.
pub fn encode_identifier(d: &str) -> String {
    utf8_percent_encode(d, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_clients_encode() {
        for (segment, d) in [
            ("repo", "repo"),
            ("my%20repo", "my repo"),
            ("100%25", "100%"),
            ("a+b", "a+b"),
            ("a%2Bb", "a+b"),
            ("%C3%BCber", "über"),
            ("%c3%bcber", "über"),
            ("über", "über"),
        ] {
            assert_eq!(decode_identifier(segment).as_deref(), Ok(d), "{segment}");
        }
    }

    #[test]
    fn refuses_bad_encodings_and_unsafe_identifiers() {
        use SegmentError::*;
        for (segment, why) in [
            ("100%", BadEscape),
            ("a%2", BadEscape),
            ("a%zzb", BadEscape),
            ("%FF", NotUtf8),
            ("%C3", NotUtf8),
            ("a%2Fb", Refused),
            ("a%5Cb", Refused),
            ("%2E%2E", Refused),
            ("..", Refused),
            ("a%0Ab", Refused),
            ("%00", Refused),
            ("-x", Refused),
            ("%2Dx", Refused),
            (".hidden", Refused),
            ("", Refused),
        ] {
            assert_eq!(decode_identifier(segment), Err(why), "{segment}");
        }
    }

    #[test]
    fn encoding_round_trips() {
        for d in [
            "repo", "my repo", "100%", "a+b", "über", "q?#x", "a%20b", "x.git",
        ] {
            let segment = encode_identifier(d);
            assert!(
                segment.is_ascii() && !segment.contains([' ', '?', '#']),
                "{segment}"
            );
            assert_eq!(decode_identifier(&segment).as_deref(), Ok(d), "{d}");
        }
        assert_eq!(encode_identifier("my repo+1%"), "my%20repo+1%25");
    }
}
