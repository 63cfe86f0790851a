//! A phase's figures, computed from the ledger after it drained: rates in the measured window,
//! latency percentiles from each request's scheduled time, a per-second timeline, and the exact
//! accounting of every request the phase sent (warm-up included).

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::drive::LoadInfo;
use super::ledger::{Ledger, Slot, ACCEPTED, COMPLETED, FAILED, MISSED, REPLAYED};

/// Longest latency held exactly: 10 minutes in µs.
const MAX_MICROS: u64 = 600_000_000;

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).context("latency histogram")
}

fn record(h: &mut Histogram<u64>, from: u64, to: u64) {
    if from > 0 && to >= from {
        h.saturating_record(((to - from) / 1000).clamp(1, MAX_MICROS));
    }
}

/// Milliseconds at `q`, 0 when empty.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Exact accounting of a range of requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accounting {
    pub sent: u64,
    pub accepted: u64,
    pub replayed: u64,
    pub failed: u64,
    pub missed: u64,
    /// Accepted requests whose dispatch reached the ERP under exactly one Idempotency-Key.
    pub erp_once: u64,
    /// Accepted requests never seen by the ERP.
    pub erp_lost: u64,
    /// Requests seen by the ERP under more than one Idempotency-Key (a duplicated order).
    pub erp_duplicated: u64,
    /// ERP calls in all (retries and redeliveries of the same key included).
    pub erp_calls: u64,
    /// Accepted requests notified exactly once (one webhook-id).
    pub notified_once: u64,
    pub notify_lost: u64,
    pub notify_duplicated: u64,
    pub notify_calls: u64,
    pub completed: u64,
    /// Requests that did not get a 202 but reached the ERP anyway.
    pub unacknowledged_but_processed: u64,
}

impl Accounting {
    pub fn of(slots: &[Slot]) -> Self {
        let mut a = Self::default();
        for s in slots {
            let outcome = s.outcome.load(Ordering::Relaxed);
            let calls = u64::from(s.erp_calls.load(Ordering::Relaxed));
            let other_keys = s.erp_other_keys.load(Ordering::Relaxed);
            let notes = u64::from(s.notify_calls.load(Ordering::Relaxed));
            let other_ids = s.notify_other_ids.load(Ordering::Relaxed);
            if s.scheduled.load(Ordering::Relaxed) == 0 {
                continue;
            }
            a.erp_calls += calls;
            a.notify_calls += notes;
            if other_keys > 0 {
                a.erp_duplicated += 1;
            }
            if other_ids > 0 {
                a.notify_duplicated += 1;
            }
            match outcome {
                MISSED => {
                    a.missed += 1;
                    continue;
                }
                ACCEPTED => a.accepted += 1,
                REPLAYED => a.replayed += 1,
                FAILED => a.failed += 1,
                _ => {}
            }
            a.sent += 1;
            if outcome != ACCEPTED {
                if calls > 0 {
                    a.unacknowledged_but_processed += 1;
                }
                continue;
            }
            match (calls, other_keys) {
                (0, _) => a.erp_lost += 1,
                (_, 0) => a.erp_once += 1,
                _ => {}
            }
            match (notes, other_ids) {
                (0, _) => a.notify_lost += 1,
                (_, 0) => a.notified_once += 1,
                _ => {}
            }
            if s.notify_kind.load(Ordering::Relaxed) == COMPLETED {
                a.completed += 1;
            }
        }
        a
    }

    /// Every accepted order reached the ERP once and was notified once; no duplicate anywhere.
    pub fn exact(&self) -> bool {
        self.erp_once == self.accepted
            && self.notified_once == self.accepted
            && self.erp_duplicated == 0
            && self.notify_duplicated == 0
            && self.unacknowledged_but_processed == 0
    }

    pub fn to_json(self) -> Value {
        json!({
            "sent": self.sent, "accepted": self.accepted, "replayed": self.replayed, "failed": self.failed,
            "missed": self.missed, "erp_once": self.erp_once, "erp_lost": self.erp_lost,
            "erp_duplicated": self.erp_duplicated, "erp_calls": self.erp_calls,
            "notified_once": self.notified_once, "notify_lost": self.notify_lost,
            "notify_duplicated": self.notify_duplicated, "notify_calls": self.notify_calls,
            "completed": self.completed, "unacknowledged_but_processed": self.unacknowledged_but_processed,
            "exact": self.exact(),
        })
    }
}

/// One second of a phase, by scheduled time.
#[derive(Debug, Clone)]
pub struct Second {
    /// Seconds since the ledger's epoch.
    pub at: f64,
    pub accepted: u64,
    pub erp_p50: f64,
    pub erp_p99: f64,
    pub complete_p50: f64,
    pub complete_p99: f64,
    pub complete_max: f64,
}

/// A finished phase.
#[derive(Debug)]
pub struct PhaseResult {
    pub rate: f64,
    pub duration: Duration,
    pub load: LoadInfo,
    pub accepted_per_s: f64,
    pub completed_per_s: f64,
    pub error_rate: f64,
    pub ack: Histogram<u64>,
    pub erp: Histogram<u64>,
    pub complete: Histogram<u64>,
    pub timeline: Vec<Second>,
    /// Every request of the phase, warm-up included.
    pub accounting: Accounting,
    /// Seconds after the last send until the last notification arrived (or the drain gave up).
    pub drain_s: f64,
    /// CPU per order over the measured window, by process and role.
    pub cpu: Option<super::super::cpu::Budget>,
}

impl PhaseResult {
    /// The measured window is `[window_from, window_to)` (ledger stamps); `range` are the
    /// phase's requests, `measured` those scheduled in the window.
    #[allow(clippy::too_many_arguments)]
    pub fn compute(
        ledger: &Ledger,
        rate: f64,
        duration: Duration,
        load: LoadInfo,
        range: std::ops::Range<usize>,
        measured: std::ops::Range<usize>,
        window: (u64, u64),
        drain_s: f64,
    ) -> anyhow::Result<Self> {
        let (mut ack, mut erp, mut complete) = (histogram()?, histogram()?, histogram()?);
        let slots = ledger.slots.get(measured.clone()).unwrap_or_default();
        let (mut accepted, mut errors, mut answered) = (0_u64, 0_u64, 0_u64);
        for s in slots {
            match s.outcome.load(Ordering::Relaxed) {
                ACCEPTED => accepted += 1,
                FAILED => errors += 1,
                _ => {}
            }
            if matches!(s.outcome.load(Ordering::Relaxed), ACCEPTED | FAILED | REPLAYED) {
                answered += 1;
            }
            if s.outcome.load(Ordering::Relaxed) != ACCEPTED {
                continue;
            }
            let at = s.scheduled.load(Ordering::Relaxed);
            record(&mut ack, at, s.answered.load(Ordering::Relaxed));
            record(&mut erp, at, s.erp.load(Ordering::Relaxed));
            record(&mut complete, at, s.notified.load(Ordering::Relaxed));
        }
        let all = ledger.slots.get(range.clone()).unwrap_or_default();
        let completed_in_window = ledger.slots[..range.end.min(ledger.slots.len())]
            .iter()
            .filter(|s| s.notify_kind.load(Ordering::Relaxed) == COMPLETED)
            .map(|s| s.notified.load(Ordering::Relaxed))
            .filter(|t| (window.0..window.1).contains(t))
            .count();
        let secs = duration.as_secs_f64().max(1e-9);
        Ok(Self {
            rate,
            duration,
            load,
            accepted_per_s: accepted as f64 / secs,
            completed_per_s: completed_in_window as f64 / secs,
            error_rate: if answered == 0 { 0.0 } else { errors as f64 / answered as f64 },
            timeline: timeline(all)?,
            accounting: Accounting::of(all),
            ack,
            erp,
            complete,
            drain_s,
            cpu: None,
        })
    }

    pub fn to_json(&self) -> Value {
        let lat = |h: &Histogram<u64>| json!({ "p50_ms": ms(h, 0.5), "p99_ms": ms(h, 0.99), "p999_ms": ms(h, 0.999), "max_ms": h.max() as f64 / 1000.0, "count": h.len() });
        json!({
            "target_per_s": self.rate,
            "duration_s": self.duration.as_secs_f64(),
            "accepted_per_s": self.accepted_per_s,
            "completed_per_s": self.completed_per_s,
            "error_rate": self.error_rate,
            "scheduled": self.load.scheduled,
            "missed": self.load.missed,
            "max_launch_lag_ms": self.load.max_launch_lag.as_secs_f64() * 1000.0,
            "latency": {
                "request_to_202": lat(&self.ack),
                "request_to_erp": lat(&self.erp),
                "request_to_completion": lat(&self.complete),
            },
            "drain_s": self.drain_s,
            "cpu": self.cpu.as_ref().map(super::super::cpu::Budget::json),
            "accounting": self.accounting.to_json(),
            "timeline": self.timeline.iter().map(|s| json!({
                "at_s": s.at, "accepted": s.accepted, "erp_p50_ms": s.erp_p50, "erp_p99_ms": s.erp_p99,
                "completion_p50_ms": s.complete_p50, "completion_p99_ms": s.complete_p99, "completion_max_ms": s.complete_max,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Per second of scheduled time: accepted count and latency percentiles.
fn timeline(slots: &[Slot]) -> anyhow::Result<Vec<Second>> {
    let mut seconds: std::collections::BTreeMap<u64, (u64, Histogram<u64>, Histogram<u64>)> = Default::default();
    for s in slots {
        let at = s.scheduled.load(Ordering::Relaxed);
        if at == 0 || s.outcome.load(Ordering::Relaxed) != ACCEPTED {
            continue;
        }
        let second = at / 1_000_000_000;
        let entry = match seconds.entry(second) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert((0, histogram()?, histogram()?)),
        };
        entry.0 += 1;
        record(&mut entry.1, at, s.erp.load(Ordering::Relaxed));
        record(&mut entry.2, at, s.notified.load(Ordering::Relaxed));
    }
    Ok(seconds
        .into_iter()
        .map(|(second, (accepted, erp, complete))| Second {
            at: second as f64,
            accepted,
            erp_p50: ms(&erp, 0.5),
            erp_p99: ms(&erp, 0.99),
            complete_p50: ms(&complete, 0.5),
            complete_p99: ms(&complete, 0.99),
            complete_max: complete.max() as f64 / 1000.0,
        })
        .collect())
}
