//! A token bucket whose rate can be rescaled in place: a partner's share changes on every
//! rebalance, and a share that shrinks must not come with a fresh burst (a new limiter would
//! start full), nor may an instance that owns nothing send anything.

use std::time::{Duration, Instant};

/// Longest wait reported when the rate is zero (the caller looks again after it).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Tokens refill at `per_second` up to `burst`; every call takes one.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(0.0);
        Self { per_second: per_second.max(0.0), burst, tokens: burst, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes a token, or says how long until one is there.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.per_second <= 0.0 {
            return Err(IDLE_WAIT);
        }
        Err(Duration::from_secs_f64(((1.0 - self.tokens) / self.per_second).min(IDLE_WAIT.as_secs_f64())))
    }

    /// New rate and burst from `now` on: what was earned so far is kept, up to the new burst
    /// (never refilled).
    pub(crate) fn rescale(&mut self, per_second: f64, burst: f64, now: Instant) {
        self.refill(now);
        self.per_second = per_second.max(0.0);
        self.burst = burst.max(0.0);
        self.tokens = self.tokens.min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(b: &mut Bucket, now: Instant) -> usize {
        std::iter::from_fn(|| b.take(now).ok()).take(10_000).count()
    }

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 5.0, t0);
        assert_eq!(taken(&mut b, t0), 5, "the burst");
        assert_eq!(b.take(t0), Err(Duration::from_millis(100)));
        assert_eq!(taken(&mut b, t0 + Duration::from_millis(500)), 5);
        assert_eq!(taken(&mut b, t0 + Duration::from_secs(60)), 5, "never more than the burst");
    }

    #[test]
    fn a_smaller_share_does_not_refill_the_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 6.0, t0);
        assert_eq!(taken(&mut b, t0), 6);
        b.rescale(5.0, 3.0, t0);
        assert_eq!(taken(&mut b, t0), 0, "spent tokens stay spent");
        assert_eq!(taken(&mut b, t0 + Duration::from_secs(1)), 3, "then the new rate, up to the new burst");
    }

    #[test]
    fn a_share_of_nothing_sends_nothing() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 6.0, t0);
        b.rescale(0.0, 0.0, t0);
        assert_eq!(taken(&mut b, t0 + Duration::from_secs(3600)), 0);
        assert_eq!(b.take(t0), Err(IDLE_WAIT));
        b.rescale(10.0, 6.0, t0 + Duration::from_secs(3600));
        assert_eq!(taken(&mut b, t0 + Duration::from_secs(3600)), 0, "assigned again: earned from now on");
        assert_eq!(taken(&mut b, t0 + Duration::from_millis(3_600_300)), 3);
    }
}
