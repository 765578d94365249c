//! Deterministic keys for tests (no OS randomness needed).

use nostr::prelude::{Keys, SecretKey};

/// The test key number `n` (1..=255): secret key bytes all equal to `n`.
pub(crate) fn keys(n: u8) -> Keys {
    Keys::new(SecretKey::from_slice(&[n; 32]).expect("valid secret key"))
}
