//! Git object ids, validated.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A git object id: 40 lowercase hex digits (SHA-1) or 64 (SHA-256).
///
/// Stored as bytes, so an id costs 21 or 33 bytes in the engine's indexes rather than a
/// heap string; only text that is exactly lowercase hex of one of the two lengths parses,
/// which is what git itself writes into refs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Oid {
    /// A SHA-1 object id.
    Sha1([u8; 20]),
    /// A SHA-256 object id.
    Sha256([u8; 32]),
}

impl Oid {
    /// Parses a 40- or 64-digit lowercase hex id; anything else is `None`.
    pub fn parse(s: &str) -> Option<Oid> {
        fn hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
            let mut out = [0u8; N];
            for (i, pair) in s.chunks_exact(2).enumerate() {
                out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
            }
            Some(out)
        }
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            }
        }
        match s.len() {
            40 => hex::<20>(s.as_bytes()).map(Oid::Sha1),
            64 => hex::<32>(s.as_bytes()).map(Oid::Sha256),
            _ => None,
        }
    }

    /// The all-zero id git uses for "no object" in ref updates.
    pub fn is_zero(&self) -> bool {
        self.as_bytes().iter().all(|b| *b == 0)
    }

    /// The raw bytes of the id.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Oid::Sha1(b) => b,
            Oid::Sha256(b) => b,
        }
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

impl FromStr for Oid {
    type Err = InvalidOid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Oid::parse(s).ok_or(InvalidOid)
    }
}

/// Text that is not a 40- or 64-digit lowercase hex object id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a 40 or 64 digit lowercase hex object id")]
pub struct InvalidOid;

impl Serialize for Oid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Oid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Oid::parse(&s).ok_or_else(|| serde::de::Error::custom(InvalidOid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_lengths_round_trip() {
        let a = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(Oid::parse(a).unwrap().to_string(), a);
        let b = "a".repeat(64);
        assert_eq!(Oid::parse(&b).unwrap().to_string(), b);
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "abc123",
            "",
            &"A".repeat(40),
            &"g".repeat(40),
            &"a".repeat(41),
        ] {
            assert!(Oid::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn zero_is_zero() {
        assert!(Oid::parse(&"0".repeat(40)).unwrap().is_zero());
    }
}
