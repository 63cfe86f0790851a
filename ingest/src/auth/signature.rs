//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>), checked against the
//! injected clock.
//!
//! `standardwebhooks::Webhook::verify` reads the system clock and hardcodes a five-minute
//! window, so only its `sign` is used: the expected `v1,<base64>` is computed for every active
//! secret and compared in constant time with every signature the request carries.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;
use standardwebhooks::Webhook;
use subtle::{Choice, ConstantTimeEq};

use super::AuthError;

const SECRET_PREFIX: &str = "whsec_";

/// A verified Standard Webhooks message: its `webhook-id`, and the last unix second at which
/// its signature would still be accepted (timestamp + tolerance): the window a replay has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedMessage {
    pub(crate) id: String,
    pub(crate) acceptable_until: i64,
}

/// A partner's active webhook secrets and how far a timestamp may be from now.
pub(super) struct WebhookVerifier {
    secrets: Vec<Webhook>,
    tolerance_secs: u64,
}

impl WebhookVerifier {
    /// `None` when the partner has no secrets (its requests need no signature).
    pub(super) fn new(secrets: &[String], tolerance: Duration) -> Result<Option<Self>, &'static str> {
        if secrets.is_empty() {
            return Ok(None);
        }
        let secrets = secrets.iter().map(|s| parse_secret(s)).collect::<Result<_, _>>()?;
        Ok(Some(Self { secrets, tolerance_secs: tolerance.as_secs() }))
    }

    /// Checks the request's `webhook-*` headers against `body` at `now_unix`; on success, the
    /// message id and until when (unix seconds) this signature would still be accepted.
    pub(super) fn verify(&self, headers: &HeaderMap, body: &[u8], now_unix: i64) -> Result<SignedMessage, AuthError> {
        let id = header(headers, "webhook-id")?;
        let timestamp = header(headers, "webhook-timestamp")?;
        let signatures = header(headers, "webhook-signature")?;
        let timestamp: i64 = timestamp.parse().map_err(|_| AuthError::SignatureInvalid)?;
        if now_unix.abs_diff(timestamp) > self.tolerance_secs {
            return Err(AuthError::SignatureStale);
        }
        let mut matched = Choice::from(0);
        for secret in &self.secrets {
            // `sign` refuses a body that is not UTF-8; such a body cannot match.
            let expected = secret.sign(id, timestamp, body).map_err(|_| AuthError::SignatureInvalid)?;
            for provided in signatures.split_ascii_whitespace() {
                matched |= provided.as_bytes().ct_eq(expected.as_bytes());
            }
        }
        if bool::from(matched) {
            let tolerance = i64::try_from(self.tolerance_secs).unwrap_or(i64::MAX);
            Ok(SignedMessage { id: id.to_owned(), acceptable_until: timestamp.saturating_add(tolerance) })
        } else {
            Err(AuthError::SignatureInvalid)
        }
    }
}

/// A `whsec_<base64>` secret as a signing key.
fn parse_secret(secret: &str) -> Result<Webhook, &'static str> {
    let encoded = secret.trim().strip_prefix(SECRET_PREFIX).ok_or("it does not start with whsec_")?;
    let key = STANDARD.decode(encoded).map_err(|_| "the part after whsec_ is not base64")?;
    if key.is_empty() {
        return Err("the key is empty");
    }
    Webhook::from_bytes(key).map_err(|_| "the key is not usable")
}

/// A present, non-empty, visible-ASCII header value.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, AuthError> {
    let value = headers.get(name).ok_or(AuthError::SignatureMissing)?;
    let value = value.to_str().map_err(|_| AuthError::SignatureInvalid)?.trim();
    if value.is_empty() {
        return Err(AuthError::SignatureMissing);
    }
    Ok(value)
}
