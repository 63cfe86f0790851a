//! A per-partner circuit breaker over a sliding window. Pure: every call takes `now`.
//!
//! Closed: calls flow; when, over the window, at least `min_requests` calls were made and the
//! share that failed reaches `failure_ratio`, it opens. Open: no calls for `open_for` (the
//! partner's work pauses; the consumer keeps polling). Then half-open: up to `half_open_probes`
//! calls go through; a success closes it, a failure opens it again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Breaker settings (defaults: 50% over 10 s, at least 10 calls, open 5 s, 1 probe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub window: Duration,
    pub buckets: u32,
    pub failure_ratio: f64,
    pub min_requests: u32,
    pub open_for: Duration,
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            buckets: 10,
            failure_ratio: 0.5,
            min_requests: 10,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

impl From<interchange_core::topology::BreakerSettings> for BreakerConfig {
    fn from(s: interchange_core::topology::BreakerSettings) -> Self {
        Self {
            window: s.window,
            buckets: 10,
            failure_ratio: s.failure_ratio,
            min_requests: s.min_requests,
            open_for: s.open_for,
            half_open_probes: s.half_open_probes,
        }
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

impl State {
    /// `closed`, `open`, `half_open`: the metric label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half_open",
        }
    }
}

/// A change of state, to log and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) from: &'static str,
    pub(crate) to: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: Instant,
    ok: u32,
    failed: u32,
}

/// One partner's breaker.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    state: State,
    buckets: VecDeque<Bucket>,
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self { config, state: State::Closed, buckets: VecDeque::new() }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    fn transition(&mut self, to: State) -> Option<Change> {
        let from = self.state.name();
        self.state = to;
        (from != to.name()).then_some(Change { from, to: to.name() })
    }

    /// May a call go out now? `Err(wait)` while open (or while the half-open probes are out).
    pub(crate) fn try_acquire(&mut self, now: Instant) -> (Result<(), Duration>, Option<Change>) {
        match self.state {
            State::Closed => (Ok(()), None),
            State::Open { until } if now < until => (Err(until - now), None),
            State::Open { .. } => {
                let change = self.transition(State::HalfOpen { in_flight: 1 });
                (Ok(()), change)
            }
            State::HalfOpen { in_flight } if in_flight < self.config.half_open_probes => {
                self.state = State::HalfOpen { in_flight: in_flight + 1 };
                (Ok(()), None)
            }
            State::HalfOpen { .. } => (Err(self.config.open_for / 10), None),
        }
    }

    /// Records how a call that `try_acquire` let out ended (`failed`: a transient failure of the
    /// partner; a permanent refusal of one request is not the partner being down).
    pub(crate) fn record(&mut self, now: Instant, failed: bool) -> Option<Change> {
        match self.state {
            State::HalfOpen { .. } if failed => self.transition(State::Open { until: now + self.config.open_for }),
            State::HalfOpen { .. } => {
                self.buckets.clear();
                self.transition(State::Closed)
            }
            State::Open { .. } => None,
            State::Closed => {
                self.count(now, failed);
                let (ok, bad) = self.buckets.iter().fold((0_u32, 0_u32), |(o, f), b| (o + b.ok, f + b.failed));
                let total = ok + bad;
                if total >= self.config.min_requests && f64::from(bad) >= self.config.failure_ratio * f64::from(total) {
                    self.transition(State::Open { until: now + self.config.open_for })
                } else {
                    None
                }
            }
        }
    }

    fn count(&mut self, now: Instant, failed: bool) {
        let width = self.config.window / self.config.buckets.max(1);
        while self.buckets.front().is_some_and(|b| now.duration_since(b.start) >= self.config.window) {
            self.buckets.pop_front();
        }
        if self.buckets.back().is_none_or(|b| now.duration_since(b.start) >= width) {
            self.buckets.push_back(Bucket { start: now, ok: 0, failed: 0 });
        }
        if let Some(bucket) = self.buckets.back_mut() {
            if failed {
                bucket.failed += 1;
            } else {
                bucket.ok += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn opens_at_the_failure_ratio_once_enough_calls_were_made() {
        let t = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..9 {
            assert_eq!(b.record(at(t, i * 10), true), None, "below min_requests");
        }
        assert_eq!(b.record(at(t, 100), true), Some(Change { from: "closed", to: "open" }));
        assert!(matches!(b.try_acquire(at(t, 200)).0, Err(wait) if wait > Duration::from_secs(4)));
    }

    #[test]
    fn stays_closed_below_the_ratio_and_forgets_old_failures() {
        let t = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..20 {
            b.record(at(t, i * 10), i % 3 == 0);
        }
        assert_eq!(b.state(), State::Closed, "7 of 20 failed");
        for i in 0..10 {
            b.record(at(t, 500 + i), true);
        }
        assert!(matches!(b.state(), State::Open { .. }), "17 of 30 failed");
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..8 {
            b.record(at(t, i), true);
        }
        for i in 0..10 {
            b.record(at(t, 11_000 + i), false);
        }
        assert_eq!(b.state(), State::Closed, "the early failures left the window");
    }

    #[test]
    fn half_open_probes_close_on_success_and_reopen_on_failure() {
        let t = Instant::now();
        let mut b = Breaker::new(BreakerConfig::default());
        for i in 0..10 {
            b.record(at(t, i), true);
        }
        assert!(b.try_acquire(at(t, 1_000)).0.is_err());
        let (probe, change) = b.try_acquire(at(t, 5_100));
        assert_eq!((probe, change), (Ok(()), Some(Change { from: "open", to: "half_open" })));
        assert!(b.try_acquire(at(t, 5_101)).0.is_err(), "one probe at a time");
        assert_eq!(b.record(at(t, 5_200), true), Some(Change { from: "half_open", to: "open" }));
        assert!(b.try_acquire(at(t, 5_300)).0.is_err());
        assert_eq!(b.try_acquire(at(t, 10_300)).0, Ok(()));
        assert_eq!(b.record(at(t, 10_400), false), Some(Change { from: "half_open", to: "closed" }));
        assert_eq!(b.try_acquire(at(t, 10_401)), (Ok(()), None));
    }
}
