//! `webhook-id` replay protection: a signed message is taken once within its signature window.
//!
//! After the signature verified, the message id is recorded in Redis with `SET NX` and a TTL of
//! what is left of the signature's acceptance window (timestamp + tolerance − now), holding the
//! SHA-256 of the body. A second request with the same id within that window is:
//! - let through when it carries an `Idempotency-Key` and the same body: a partner's retry
//!   (Standard Webhooks retries re-sign under the same id) must get the idempotent replay of
//!   the first answer, and the idempotency check after this one guarantees it writes nothing;
//! - refused with `409 webhook-replayed` otherwise (no `Idempotency-Key`, so nothing else
//!   would stop a second record; or another body under the same id).
//!
//! A request that was not accepted (any answer other than 2xx) forgets its id again, so a
//! partner's retry after a `503` is not taken for a replay.
//!
//! When Redis cannot answer, the check is skipped (fail open, counted in
//! `hub_ingest_redis_errors_total{operation="webhook_replay"}`): the signature's timestamp still
//! bounds a replay to the tolerance window, requests with an `Idempotency-Key` are refused
//! anyway by the idempotency step (fail closed), and orders keep flowing during a Redis outage
//! just as they do for the rate limits.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::IngestError;
use crate::shared::Shared;

/// What the replay check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First sighting: recorded under this key (release it if the request is not accepted).
    First { key: String },
    /// Seen before with the same body.
    SameBody,
    /// Seen before with another body.
    OtherBody,
}

/// Message ids in the shared store.
#[derive(Debug, Clone)]
pub(crate) struct Replays {
    shared: Shared,
    prefix: String,
}

fn digest(body: &[u8]) -> String {
    Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

impl Replays {
    pub(crate) fn new(shared: Shared, prefix: &str) -> Self {
        Self { shared, prefix: prefix.to_owned() }
    }

    /// Records `id` of `partner` for `window` (at least a second) unless it is there already.
    pub(crate) async fn check(
        &self,
        partner: &str,
        id: &str,
        body: &[u8],
        window: Duration,
    ) -> Result<Seen, IngestError> {
        let key = format!("hub:whid:{}{partner}:{id}", self.prefix);
        let print = digest(body);
        let ttl = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1000);
        let mut conn = self.shared.conn();
        let (set, stored): (Option<String>, Option<String>) = self
            .shared
            .call("webhook_replay", async {
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(&print)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match (set, stored) {
            (Some(_), _) => Seen::First { key },
            (None, Some(stored)) if stored == print => Seen::SameBody,
            (None, _) => Seen::OtherBody,
        })
    }

    /// Forgets a first sighting whose request was not accepted. Best effort.
    pub(crate) async fn release(&self, key: String) -> Result<(), IngestError> {
        let mut conn = self.shared.conn();
        self.shared
            .call("webhook_replay", async move { redis::cmd("DEL").arg(key).query_async::<i64>(&mut conn).await })
            .await
            .map(|_| ())
    }
}
