//! Rate limits per partner and per client IP that hold for the whole deployment.
//!
//! Each instance first asks an in-process governor limiter with the full quota (cheap: a single
//! instance over the limit is refused without a network call), then the shared GCRA bucket in
//! Redis, which all instances share, so a partner gets its configured rate in total however
//! many edge replicas run. When Redis is unreachable the shared check is skipped and every
//! instance enforces the quota alone (fail open to per-instance limits: the total can reach
//! replicas × quota), counted in `hub_ingest_redis_errors_total{operation="rate_limit"}`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use interchange_core::topology::RateLimit;

use crate::shared::Shared;

/// GCRA over Redis, with Redis's own clock so instances need no clock agreement.
/// KEYS[1] = bucket; ARGV[1] = emission interval (µs per request); ARGV[2] = burst.
/// Returns {1, 0} when allowed, {0, µs to wait} when not.
const GCRA: &str = r"
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - emission * burst
if now < allow_at then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
";

/// What a limit said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    /// Refused; retry after this long. `shared` tells whether the shared bucket refused.
    Limited {
        retry_after: Duration,
        shared: bool,
    },
}

/// The limits of one edge instance.
pub(crate) struct Limits {
    partners: HashMap<String, (RateLimit, DefaultDirectRateLimiter)>,
    ip: Option<(RateLimit, DefaultKeyedRateLimiter<IpAddr>)>,
    shared: Option<Shared>,
    script: redis::Script,
    prefix: String,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("partners", &self.partners.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

fn quota(limit: RateLimit) -> Option<Quota> {
    let rate = NonZeroU32::new(limit.per_second)?;
    let burst = NonZeroU32::new(limit.burst)?;
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// Outcome of a Redis-side check; `Err` when Redis could not answer.
type SharedResult = Result<Verdict, crate::error::IngestError>;

impl Limits {
    /// Limits for `partners` (name, quota), an optional per-IP quota, and the shared store.
    /// `prefix` namespaces the Redis keys (the topic prefix, so environments do not share buckets).
    pub(crate) fn new(
        partners: Vec<(String, RateLimit)>,
        ip: Option<RateLimit>,
        shared: Option<Shared>,
        prefix: &str,
    ) -> Self {
        let partners = partners
            .into_iter()
            .filter_map(|(name, limit)| quota(limit).map(|q| (name, (limit, RateLimiter::direct(q)))))
            .collect();
        let ip = ip.and_then(|limit| quota(limit).map(|q| (limit, RateLimiter::keyed(q))));
        Self { partners, ip, shared, script: redis::Script::new(GCRA), prefix: prefix.to_owned() }
    }

    /// Checks the partner's quota. Partners without one are not limited.
    pub(crate) async fn check_partner(&self, partner: &str) -> (Verdict, Option<crate::error::IngestError>) {
        let Some((limit, local)) = self.partners.get(partner) else { return (Verdict::Allowed, None) };
        if let Err(not_until) = local.check() {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return (Verdict::Limited { retry_after: wait, shared: false }, None);
        }
        self.shared_check(&format!("{}partner:{partner}", self.prefix), *limit).await
    }

    /// Checks the per-IP quota, if one is set.
    pub(crate) async fn check_ip(&self, ip: IpAddr) -> (Verdict, Option<crate::error::IngestError>) {
        let Some((limit, local)) = &self.ip else { return (Verdict::Allowed, None) };
        if let Err(not_until) = local.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return (Verdict::Limited { retry_after: wait, shared: false }, None);
        }
        self.shared_check(&format!("{}ip:{ip}", self.prefix), *limit).await
    }

    /// The shared bucket's verdict; on a Redis error, the local verdict (allowed) stands and the
    /// error is handed back for counting.
    async fn shared_check(&self, bucket: &str, limit: RateLimit) -> (Verdict, Option<crate::error::IngestError>) {
        let Some(shared) = &self.shared else { return (Verdict::Allowed, None) };
        match self.gcra(shared, bucket, limit).await {
            Ok(verdict) => (verdict, None),
            Err(error) => (Verdict::Allowed, Some(error)),
        }
    }

    async fn gcra(&self, shared: &Shared, bucket: &str, limit: RateLimit) -> SharedResult {
        let emission = 1_000_000 / u64::from(limit.per_second.max(1));
        let key = format!("hub:rl:{bucket}");
        let mut conn = shared.conn();
        let mut invocation = self.script.key(key);
        invocation.arg(emission).arg(limit.burst);
        let (allowed, wait_us): (i64, i64) =
            shared.call("rate_limit", async move { invocation.invoke_async(&mut conn).await }).await?;
        if allowed == 1 {
            Ok(Verdict::Allowed)
        } else {
            let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0));
            Ok(Verdict::Limited { retry_after: wait, shared: true })
        }
    }
}

/// Whole seconds for a `Retry-After` header, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
