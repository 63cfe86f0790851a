//! `Idempotency-Key` per partner, reserved in Redis before producing.
//!
//! A key is first reserved as pending (short TTL, so a crashed instance does not block retries
//! for long), then replaced by the stored response once the broker acknowledged (long TTL). A
//! repeat with the same body replays that response; a different body is refused; a repeat while
//! the first is in flight is told to wait. When Redis cannot answer, a request with a key is
//! refused with 503 (fail closed: never a silent second acceptance, never a hang).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::IngestError;
use crate::shared::Shared;

/// Replace the value only if it still holds our token. KEYS[1]; ARGV[1] token, ARGV[2] value, ARGV[3] ttl ms.
const COMPLETE: &str = r"
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['t'] == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// Delete the value only if it still holds our token. KEYS[1]; ARGV[1] token.
const RELEASE: &str = r"
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['t'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The answer given the first time, replayed for repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredResponse {
    pub(crate) status: u16,
    pub(crate) body: serde_json::Value,
    pub(crate) location: Option<String>,
    pub(crate) correlation_id: String,
    pub(crate) event_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// Token of the request that reserved the key.
    t: String,
    /// SHA-256 of route and body.
    h: String,
    /// The response, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<StoredResponse>,
}

/// What a reservation attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reservation {
    /// The key is ours: produce, then `complete` or `release` with this token.
    New { token: String },
    /// Done before with the same body: answer this again.
    Replay(StoredResponse),
    /// Used before with a different body.
    Mismatch,
    /// The same request is still being processed.
    InFlight,
}

/// Idempotency keys in the shared store.
#[derive(Debug, Clone)]
pub(crate) struct Idempotency {
    shared: Shared,
    complete_script: redis::Script,
    release_script: redis::Script,
    prefix: String,
    pending_ttl: Duration,
    done_ttl: Duration,
}

/// Fingerprint of a request: the route and the exact body bytes.
pub fn fingerprint(route: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Idempotency {
    /// Keys live `pending_ttl` while in flight and `done_ttl` once answered.
    pub(crate) fn new(shared: Shared, prefix: &str, pending_ttl: Duration, done_ttl: Duration) -> Self {
        Self {
            shared,
            complete_script: redis::Script::new(COMPLETE),
            release_script: redis::Script::new(RELEASE),
            prefix: prefix.to_owned(),
            pending_ttl,
            done_ttl,
        }
    }

    fn key(&self, partner: &str, key: &str) -> String {
        format!("hub:idem:{}{partner}:{key}", self.prefix)
    }

    /// Reserves `key` for this request, or says why not.
    pub(crate) async fn reserve(
        &self,
        partner: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Reservation, IngestError> {
        let redis_key = self.key(partner, key);
        let token = uuid::Uuid::new_v4().to_string();
        let entry = serde_json::to_string(&Entry { t: token.clone(), h: fingerprint.to_owned(), r: None })
            .map_err(|e| IngestError::Internal(e.to_string()))?;
        for _ in 0..3 {
            let mut conn = self.shared.conn();
            let (k, v, ttl) = (redis_key.clone(), entry.clone(), ms(self.pending_ttl));
            let set: Option<String> = self
                .shared
                .call("idempotency_reserve", async move {
                    redis::cmd("SET").arg(k).arg(v).arg("NX").arg("PX").arg(ttl).query_async(&mut conn).await
                })
                .await?;
            if set.is_some() {
                return Ok(Reservation::New { token });
            }
            let mut conn = self.shared.conn();
            let k = redis_key.clone();
            let existing: Option<String> = self
                .shared
                .call("idempotency_get", async move { redis::cmd("GET").arg(k).query_async(&mut conn).await })
                .await?;
            // Expired between SET and GET: try again.
            let Some(existing) = existing else { continue };
            let existing: Entry = serde_json::from_str(&existing)
                .map_err(|e| IngestError::Internal(format!("idempotency entry: {e}")))?;
            return Ok(match (existing.h == fingerprint, existing.r) {
                (false, _) => Reservation::Mismatch,
                (true, Some(response)) => Reservation::Replay(response),
                (true, None) => Reservation::InFlight,
            });
        }
        Ok(Reservation::InFlight)
    }

    /// Stores the response given for the reserved key.
    pub(crate) async fn complete(
        &self,
        partner: &str,
        key: &str,
        token: &str,
        fingerprint: &str,
        response: &StoredResponse,
    ) -> Result<(), IngestError> {
        let entry = Entry { t: token.to_owned(), h: fingerprint.to_owned(), r: Some(response.clone()) };
        let value = serde_json::to_string(&entry).map_err(|e| IngestError::Internal(e.to_string()))?;
        let mut conn = self.shared.conn();
        let mut invocation = self.complete_script.key(self.key(partner, key));
        invocation.arg(token).arg(value).arg(ms(self.done_ttl));
        let _: i64 =
            self.shared.call("idempotency_complete", async move { invocation.invoke_async(&mut conn).await }).await?;
        Ok(())
    }

    /// Gives the key back after a failed produce, so the partner's retry succeeds.
    pub(crate) async fn release(&self, partner: &str, key: &str, token: &str) -> Result<(), IngestError> {
        let mut conn = self.shared.conn();
        let mut invocation = self.release_script.key(self.key(partner, key));
        invocation.arg(token);
        let _: i64 =
            self.shared.call("idempotency_release", async move { invocation.invoke_async(&mut conn).await }).await?;
        Ok(())
    }
}
