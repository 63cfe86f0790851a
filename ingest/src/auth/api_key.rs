//! API keys: only SHA-256 digests are kept, looked up by digest and compared in constant time.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{partner_name, AuthConfigError, AuthError};

type KeyDigest = [u8; 32];

/// Every partner's API keys, by digest.
#[derive(Default)]
pub(super) struct ApiKeys {
    by_digest: HashMap<KeyDigest, (KeyDigest, usize)>,
}

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Adds one of partner `index`'s keys; a key shared with another partner is refused,
    /// a key repeated by the same partner is kept once.
    pub(super) fn insert(&mut self, key: &str, index: usize, names: &[String]) -> Result<(), AuthConfigError> {
        if key.trim().is_empty() {
            return Err(AuthConfigError::EmptyApiKey { partner: partner_name(names, index) });
        }
        let digest = digest(key);
        match self.by_digest.get(&digest) {
            Some(&(_, other)) if other != index => Err(AuthConfigError::DuplicateApiKey {
                partner: partner_name(names, index),
                other: partner_name(names, other),
            }),
            Some(_) => Ok(()),
            None => {
                self.by_digest.insert(digest, (digest, index));
                Ok(())
            }
        }
    }

    /// The index of the partner owning `key`.
    pub(super) fn lookup(&self, key: &str) -> Result<usize, AuthError> {
        let presented = digest(key);
        match self.by_digest.get(&presented) {
            Some((stored, index)) if bool::from(stored.ct_eq(&presented)) => Ok(*index),
            _ => Err(AuthError::InvalidApiKey),
        }
    }
}
