//! What one phase measured: accepted count, errors by kind, and a microsecond latency histogram.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;

/// Longest latency the histogram holds exactly (2 minutes, in µs); longer ones are clamped.
const MAX_MICROS: u64 = 120_000_000;

/// How one request (or one produce) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The expected success (`202`, or the broker's ack).
    Accepted,
    /// `202` replayed from the idempotency store: nothing new was written.
    Replayed,
    /// Anything else, named for the report (`HTTP 503 overloaded`, `timeout`, ...).
    Failed(String),
}

/// Counts and latencies of one phase (or one worker of it, merged later).
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Latency of accepted requests only, µs.
    pub latency: Histogram<u64>,
    pub accepted: u64,
    pub replayed: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn new() -> anyhow::Result<Self> {
        let latency = Histogram::new_with_bounds(1, MAX_MICROS, 3).context("latency histogram")?;
        Ok(Self { latency, accepted: 0, replayed: 0, errors: BTreeMap::new() })
    }

    /// Counts `outcome`; the latency of an accepted one goes into the histogram.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Accepted => {
                self.accepted += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.clamp(1, MAX_MICROS));
            }
            Outcome::Replayed => self.replayed += 1,
            Outcome::Failed(kind) => *self.errors.entry(kind).or_insert(0) += 1,
        }
    }

    /// Adds another worker's counts.
    pub fn merge(&mut self, other: &Recorder) -> anyhow::Result<()> {
        self.latency.add(&other.latency).context("merging latency histograms")?;
        self.accepted += other.accepted;
        self.replayed += other.replayed;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_insert(0) += count;
        }
        Ok(())
    }

    /// Requests that did not end accepted (replays excluded).
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A finished phase, as the report shows it.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Short key for the JSON line, e.g. `edge_peak`.
    pub key: &'static str,
    /// Label for the table.
    pub label: String,
    pub recorder: Recorder,
    /// Wall time from the first send to the last answer.
    pub elapsed: Duration,
    /// Open loop only: the target rate and the requests not launched (in-flight cap reached).
    pub open: Option<OpenLoopInfo>,
}

/// What an open-loop phase adds.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoopInfo {
    pub target_rate: f64,
    pub scheduled: u64,
    pub missed: u64,
    pub in_flight_cap: usize,
    /// Largest delay between a request's scheduled time and its launch.
    pub max_launch_lag: Duration,
}

impl Phase {
    /// Accepted per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.recorder.accepted as f64 / secs
        } else {
            0.0
        }
    }

    /// Errors over all answered-or-failed requests.
    pub fn error_rate(&self) -> f64 {
        let errors = self.recorder.error_count();
        let total = errors + self.recorder.accepted + self.recorder.replayed;
        if total == 0 {
            0.0
        } else {
            errors as f64 / total as f64
        }
    }

    /// Latency at `quantile` (0..=1) in milliseconds; 0 without samples.
    pub fn millis(&self, quantile: f64) -> f64 {
        if self.recorder.latency.is_empty() {
            return 0.0;
        }
        self.recorder.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Largest latency in milliseconds.
    pub fn max_millis(&self) -> f64 {
        self.recorder.latency.max() as f64 / 1000.0
    }
}
