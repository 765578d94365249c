//! A purgatory event kept as its JSON text plus the few fields decisions read.
//!
//! A parsed [`Event`] is about as many bytes as its JSON, but in some fifteen small
//! allocations (each tag a vector of strings), and the allocator's per-chunk overhead
//! makes that ~300 B more resident memory per pull-request-like entry than one JSON
//! string (measured with 100k waiting PRs, docs/performance.md). Purgatory may hold a
//! hundred thousand events that are read in full only when they are released, expired,
//! journalled or shown; decisions read the id, author, time and kind, which stay parsed.

use nostr::prelude::{Event, EventId, Kind, PublicKey, Timestamp};

/// A waiting event: its identity parsed, its body as JSON.
#[derive(Clone, Debug)]
pub(crate) struct PackedEvent {
    pub(crate) id: EventId,
    pub(crate) pubkey: PublicKey,
    pub(crate) created_at: Timestamp,
    pub(crate) kind: Kind,
    json: Box<str>,
}

impl PackedEvent {
    /// Packs `event`.
    pub(crate) fn pack(event: &Event) -> Self {
        Self {
            id: event.id,
            pubkey: event.pubkey,
            created_at: event.created_at,
            kind: event.kind,
            json: to_json(event).into_boxed_str(),
        }
    }

    /// The whole event again.
    pub(crate) fn unpack(&self) -> Event {
        serde_json::from_str(&self.json).expect("an event packed by us parses back")
    }

    /// Bytes of the JSON text (purgatory's byte budget).
    pub(crate) fn json_len(&self) -> usize {
        self.json.len()
    }
}

/// `event` as JSON: the text nostr's `Serialize` writes (same fields in the same order,
/// same escapes, checked byte for byte by a property test below), written by hand.
///
/// Why by hand: `serde_json::to_string(event)` sends the id, author and signature (256
/// hex digits that never need escaping) through serde_json's escaper a byte at a time,
/// and grows its buffer twice and shrinks it once. In the engine bench's state verdicts
/// at 100k waiting entries (callgrind) that was ~7,200 of the ~35,900 instructions per
/// verdict, ~5,600 of them escaping; written here it is ~2,500 of ~31,100. The hex is
/// written directly, only the tag strings and the content are escaped (scanned eight
/// bytes at a time), and the exact length is computed first, so the text is one
/// allocation that `into_boxed_str` keeps as it is.
/// The exact length of an event's JSON as packed, without writing it (purgatory's byte
/// budget is checked before an event enters).
pub(crate) fn json_len_of(event: &Event) -> usize {
    let tags = &event.tags;
    let created_at = event.created_at.as_secs();
    let kind = u64::from(event.kind.as_u16());
    let strings: usize = tags
        .iter()
        .map(|t| {
            let t = t.as_slice();
            2 + t.iter().map(|s| quoted_len(s)).sum::<usize>() + t.len().saturating_sub(1)
        })
        .sum();
    FIXED_LEN
        + decimal_len(created_at)
        + decimal_len(kind)
        + strings
        + tags.len().saturating_sub(1)
        + quoted_len(&event.content)
}

fn to_json(event: &Event) -> String {
    let tags = &event.tags;
    let created_at = event.created_at.as_secs();
    let kind = u64::from(event.kind.as_u16());
    let len = json_len_of(event);
    let mut json = Vec::with_capacity(len);
    json.extend_from_slice(br#"{"id":""#);
    push_hex(&mut json, event.id.as_bytes());
    json.extend_from_slice(br#"","pubkey":""#);
    push_hex(&mut json, event.pubkey.as_bytes());
    json.extend_from_slice(br#"","created_at":"#);
    push_decimal(&mut json, created_at);
    json.extend_from_slice(br#","kind":"#);
    push_decimal(&mut json, kind);
    json.extend_from_slice(br#","tags":["#);
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.push(b'[');
        for (j, s) in tag.as_slice().iter().enumerate() {
            if j > 0 {
                json.push(b',');
            }
            push_quoted(&mut json, s);
        }
        json.push(b']');
    }
    json.extend_from_slice(br#"],"content":"#);
    push_quoted(&mut json, &event.content);
    json.extend_from_slice(br#","sig":""#);
    push_hex(&mut json, event.sig.as_bytes());
    json.extend_from_slice(br#""}"#);
    // One allocation, and `into_boxed_str` has nothing to shrink.
    debug_assert_eq!((json.len(), json.capacity()), (len, len));
    String::from_utf8(json).expect("hex, digits and whole strings are UTF-8")
}

/// The bytes of the JSON text besides the numbers, tags and content: the punctuation,
/// the field names, the hex of the id and author (32 bytes each) and signature (64).
const FIXED_LEN: usize =
    r#"{"id":"","pubkey":"","created_at":,"kind":,"tags":[],"content":,"sig":""}"#.len()
        + 2 * (32 + 32 + 64);

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Each byte's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [HEX_DIGITS[b >> 4], HEX_DIGITS[b & 0xf]];
        b += 1;
    }
    table
};

fn push_hex<const N: usize>(json: &mut Vec<u8>, bytes: &[u8; N]) {
    let mut hex = [[0; 2]; N];
    for (pair, &b) in hex.iter_mut().zip(bytes) {
        *pair = HEX_PAIRS[usize::from(b)];
    }
    json.extend_from_slice(hex.as_flattened());
}

fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn push_decimal(json: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    json.extend_from_slice(&digits[i..]);
}

/// For each byte, the letter after the backslash that escapes it in a JSON string
/// (serde_json's table: `u` for `\u00XX`), or 0 when it stands as it is.
const ESCAPE: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// For each byte, how many more bytes its escape takes than the byte itself.
const EXTRA: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match ESCAPE[b] {
            0 => 0,
            b'u' => 5,
            _ => 1,
        };
        b += 1;
    }
    table
};

/// Bytes of `s` as a JSON string, quotes included.
fn quoted_len(s: &str) -> usize {
    let extra = |bytes: &[u8]| -> usize {
        bytes
            .iter()
            .map(|&b| usize::from(EXTRA[usize::from(b)]))
            .sum()
    };
    let mut words = s.as_bytes().chunks_exact(8);
    let mut len = s.len() + 2;
    for word in &mut words {
        if escape_mask(word) != 0 {
            len += extra(word);
        }
    }
    len + extra(words.remainder())
}

/// Writes `s` as a JSON string: runs that need no escape are copied whole.
fn push_quoted(json: &mut Vec<u8>, s: &str) {
    json.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    while let Some(i) = next_escape(bytes, run) {
        json.extend_from_slice(&bytes[run..i]);
        let b = bytes[i];
        let escape = ESCAPE[usize::from(b)];
        if escape == b'u' {
            let [high, low] = HEX_PAIRS[usize::from(b)];
            json.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
        } else {
            json.extend_from_slice(&[b'\\', escape]);
        }
        run = i + 1;
    }
    json.extend_from_slice(&bytes[run..]);
    json.push(b'"');
}

/// The index of the first byte from `from` on that needs an escape, eight at a time.
fn next_escape(bytes: &[u8], mut from: usize) -> Option<usize> {
    while let Some(word) = bytes.get(from..from + 8) {
        let mask = escape_mask(word);
        if mask != 0 {
            return Some(from + mask.trailing_zeros() as usize / 8);
        }
        from += 8;
    }
    let rest = bytes[from..]
        .iter()
        .position(|&b| ESCAPE[usize::from(b)] != 0);
    rest.map(|i| from + i)
}

/// For eight bytes of a string, bit 7 of each byte of the (little-endian) word is set
/// where that byte needs an escape: below 0x20, `"` or `\`. The lowest flag is exact,
/// and there is one if any byte needs an escape, which is all the callers read: a borrow
/// out of a flagged byte may flag bytes above it too, never one below (SWAR: the "has a
/// byte less than n" trick, three times).
fn escape_mask(word: &[u8]) -> u64 {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    below(word, 0x20)
        | below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Signature, Tag};
    use proptest::prelude::*;

    #[test]
    fn unpacks_to_the_same_event() {
        let keys = Keys::generate();
        let tags = [
            Tag::parse(["a", "30617:abc:proj"]).unwrap(),
            Tag::parse(["c", "0123456789012345678901234567890123456789"]).unwrap(),
            Tag::parse([
                "clone",
                "https://a.example/x.git",
                "https://b.example/x.git",
            ])
            .unwrap(),
        ];
        let event = EventBuilder::new(Kind::Custom(1618), "a \"quoted\" body\n")
            .tags(tags)
            .finalize(&keys)
            .unwrap();
        let packed = PackedEvent::pack(&event);
        assert_eq!(packed.unpack(), event);
        assert_eq!(
            (packed.id, packed.pubkey, packed.created_at, packed.kind),
            (event.id, event.pubkey, event.created_at, event.kind)
        );
        assert!(packed.json_len() < 1024);
        assert!(
            packed.unpack().verify().is_ok(),
            "the signature still holds"
        );
    }

    /// Strings dense or sparse in characters that stress the escaper (quotes,
    /// backslashes, every control character, DEL, the line separators JSON allows raw,
    /// non-ASCII and emoji), among any characters and printable ASCII.
    fn text(max: usize) -> impl Strategy<Value = String> {
        let tricky = || {
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('/'),
                Just('\u{7f}'),
                Just('\u{2028}'),
                Just('é'),
                Just('😀'),
                (0u8..0x20).prop_map(char::from),
            ]
        };
        let chars = |tricky_weight| {
            let ch = prop_oneof![
                2 => any::<char>(),
                tricky_weight => tricky(),
                12 => proptest::char::range(' ', '~'),
            ];
            proptest::collection::vec(ch, 0..max).prop_map(String::from_iter)
        };
        prop_oneof![chars(10), chars(1)]
    }

    fn tag() -> impl Strategy<Value = Tag> {
        proptest::collection::vec(text(40), 1..5).prop_map(|t| Tag::parse(t).unwrap())
    }

    /// Events with arbitrary fields, unsigned (id and signature are arbitrary bytes:
    /// packing neither checks nor changes them).
    fn event() -> impl Strategy<Value = Event> {
        let tags = prop_oneof![
            4 => proptest::collection::vec(tag(), 0..6),
            1 => proptest::collection::vec(tag(), 50..120),
        ];
        let created_at = prop_oneof![any::<u64>(), 0u64..10, 1_600_000_000u64..1_900_000_000];
        let sig = (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
            let mut sig = [0; 64];
            sig[..32].copy_from_slice(&a);
            sig[32..].copy_from_slice(&b);
            Signature::from_byte_array(sig)
        });
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            created_at,
            any::<u16>(),
            tags,
            text(300),
            sig,
        )
            .prop_map(|(id, pubkey, created_at, kind, tags, content, sig)| {
                Event::new(
                    EventId::from_byte_array(id),
                    PublicKey::from_byte_array(pubkey),
                    Timestamp::from_secs(created_at),
                    Kind::from_u16(kind),
                    tags,
                    content,
                    sig,
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        #[test]
        fn packs_what_serde_writes(event in event()) {
            let packed = PackedEvent::pack(&event);
            prop_assert_eq!(packed.unpack(), event.clone());
            let serde = serde_json::to_string(&event).unwrap();
            let value = |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap();
            prop_assert_eq!(value(&packed.json), value(&serde));
            // Stronger than needed (same value suffices), and it holds with serde_json
            // 1.0.154: the same bytes, since both escape exactly `"`, `\` and U+0000–U+001F
            // with the same short forms and lowercase `\u00xx`.
            prop_assert_eq!(&*packed.json, serde.as_str());
        }
    }
}
