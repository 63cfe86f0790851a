//! When to try a delivery again: outcome classes, exponential backoff with full jitter, and
//! `Retry-After`. Pure: the caller supplies the randomness and the clock.

use std::time::{Duration, SystemTime};

use interchange_core::topology::RetryPolicy;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The partner answered 2xx.
    Delivered,
    /// Worth another try: connect error, timeout, 408, 429, 5xx.
    Transient,
    /// Another try would get the same answer: any other 4xx (or 3xx: the hub does not follow
    /// redirects to partners).
    Permanent,
}

/// The class of an HTTP status.
pub(crate) fn classify(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        408 | 429 | 500..=599 => Attempt::Transient,
        _ => Attempt::Permanent,
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try again after this long.
    RetryAfter(Duration),
    /// Stop: attempts exhausted or the failure is permanent.
    GiveUp,
}

/// Longest `Retry-After` honoured; a partner asking for more is retried after this.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Parses `Retry-After`: delay-seconds or an HTTP date (relative to `now`), bounded by
/// [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The decision after attempt number `attempt` (1-based) ended as `outcome`. The backoff is
/// `initial × 2^(attempt-1)` capped at `max_backoff`, with full jitter (`jitter` in [0, 1) picks
/// a point in [0, backoff]); a `Retry-After` from the partner sets a floor.
pub(crate) fn next(
    policy: &RetryPolicy,
    attempt: u32,
    outcome: Attempt,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Next {
    if outcome != Attempt::Transient || attempt >= policy.max_attempts {
        return Next::GiveUp;
    }
    let exponent = attempt.saturating_sub(1).min(31);
    let backoff = policy.initial_backoff.saturating_mul(1_u32 << exponent).min(policy.max_backoff);
    let jittered = backoff.mul_f64(jitter.clamp(0.0, 1.0));
    Next::RetryAfter(retry_after.map_or(jittered, |floor| jittered.max(floor)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(16), max_attempts: 5 }
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(201), Attempt::Delivered);
        for status in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(status), Attempt::Transient, "{status}");
        }
        for status in [301, 400, 401, 403, 404, 409, 422] {
            assert_eq!(classify(status), Attempt::Permanent, "{status}");
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_full_jitter_spans_zero_to_it() {
        let at = |attempt, jitter| next(&policy(), attempt, Attempt::Transient, None, jitter);
        assert_eq!(at(1, 0.999_999), Next::RetryAfter(Duration::from_secs(1).mul_f64(0.999_999)));
        assert_eq!(at(2, 0.5), Next::RetryAfter(Duration::from_secs(1)));
        assert_eq!(at(3, 0.5), Next::RetryAfter(Duration::from_secs(2)));
        assert_eq!(at(4, 0.25), Next::RetryAfter(Duration::from_secs(2)));
        assert_eq!(at(1, 0.0), Next::RetryAfter(Duration::ZERO));
        let capped = RetryPolicy { max_attempts: 10, ..policy() };
        assert_eq!(next(&capped, 9, Attempt::Transient, None, 0.5), Next::RetryAfter(Duration::from_secs(8)));
    }

    #[test]
    fn attempts_run_out_and_permanent_failures_never_retry() {
        assert_eq!(next(&policy(), 5, Attempt::Transient, None, 0.5), Next::GiveUp);
        assert_eq!(next(&policy(), 1, Attempt::Permanent, None, 0.5), Next::GiveUp);
        assert_eq!(next(&policy(), 1, Attempt::Delivered, None, 0.5), Next::GiveUp);
    }

    #[test]
    fn retry_after_is_a_floor_and_is_bounded() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&date, now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("soon", now), None);
        let floor = Some(Duration::from_secs(2));
        assert_eq!(next(&policy(), 1, Attempt::Transient, floor, 0.1), Next::RetryAfter(Duration::from_secs(2)));
    }
}
