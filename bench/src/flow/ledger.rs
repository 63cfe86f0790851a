//! The flow bench's own accounting: one slot per request it sends, filled lock-free by the
//! load generator (scheduled, answered), the test ERP (dispatch arrivals and their
//! Idempotency-Keys) and the client's callback receiver (signed notifications).
//!
//! Times are nanoseconds since the bench's epoch plus one (zero means "not yet"), so every part
//! of the pipeline is timed on one clock: the partners run in the bench's process.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use tokio::time::Instant;

/// How a request ended at the edge (zero: no answer yet).
pub const ACCEPTED: u8 = 1;
pub const REPLAYED: u8 = 2;
pub const FAILED: u8 = 3;
/// Not sent: the in-flight cap was reached at its scheduled time.
pub const MISSED: u8 = 4;

/// Kinds of notification the callback receiver tells apart.
pub const COMPLETED: u8 = 1;
pub const FAILED_NOTICE: u8 = 2;
pub const REJECTED: u8 = 3;

/// Everything known about one request.
#[derive(Debug, Default)]
pub struct Slot {
    pub scheduled: AtomicU64,
    pub answered: AtomicU64,
    pub outcome: AtomicU8,
    /// First dispatch arrival at the ERP.
    pub erp: AtomicU64,
    pub erp_calls: AtomicU32,
    /// Hash of the first Idempotency-Key; calls with another key count in `erp_other_keys`.
    pub erp_key: AtomicU64,
    pub erp_other_keys: AtomicU32,
    /// First notification arrival at the client.
    pub notified: AtomicU64,
    pub notify_calls: AtomicU32,
    pub notify_kind: AtomicU8,
    /// Hash of the first webhook-id; notifications with another id count in `notify_other_ids`.
    pub notify_id: AtomicU64,
    pub notify_other_ids: AtomicU32,
}

/// All slots of a run, and the clock they share.
#[derive(Debug)]
pub struct Ledger {
    pub epoch: Instant,
    /// The run's id, first part of every correlation id (`<run>-<sequence>`).
    pub run: String,
    pub slots: Vec<Slot>,
    hasher: std::hash::RandomState,
    /// Calls that named no request of this run (should stay zero).
    pub strays: AtomicU64,
    /// Notifications whose signature did not verify.
    pub bad_signatures: AtomicU64,
}

impl Ledger {
    pub fn new(run: &str, capacity: usize) -> Self {
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, Slot::default);
        Self {
            epoch: Instant::now(),
            run: run.to_owned(),
            slots,
            hasher: std::hash::RandomState::new(),
            strays: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
        }
    }

    /// The clock: nanoseconds since the epoch, plus one.
    pub fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    pub fn now(&self) -> u64 {
        self.stamp(Instant::now())
    }

    pub fn correlation_id(&self, sequence: usize) -> String {
        format!("{}-{sequence:09}", self.run)
    }

    /// The slot a correlation id names, if it is one of this run's. The edge scopes the id the
    /// run supplied to the partner (`<partner>:<run>-<sequence>`); the run's part is after the
    /// last `:`.
    pub fn slot(&self, correlation_id: &str) -> Option<&Slot> {
        let supplied = correlation_id.rsplit_once(':').map_or(correlation_id, |(_, supplied)| supplied);
        let (run, sequence) = supplied.rsplit_once('-')?;
        if run != self.run {
            return None;
        }
        self.slots.get(sequence.parse::<usize>().ok()?)
    }

    fn hash(&self, text: &str) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(text.as_bytes());
        hasher.finish().max(1)
    }

    /// A dispatch arrived at the ERP.
    pub fn erp_call(&self, correlation_id: &str, idempotency_key: &str, at: u64) {
        let Some(slot) = self.slot(correlation_id) else {
            self.strays.fetch_add(1, Ordering::Relaxed);
            return;
        };
        slot.erp_calls.fetch_add(1, Ordering::Relaxed);
        let _ = slot.erp.compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
        let key = self.hash(idempotency_key);
        if let Err(first) = slot.erp_key.compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed) {
            if first != key {
                slot.erp_other_keys.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A notification arrived at the client's callback.
    pub fn notification(&self, correlation_id: &str, webhook_id: &str, kind: u8, at: u64) {
        let Some(slot) = self.slot(correlation_id) else {
            self.strays.fetch_add(1, Ordering::Relaxed);
            return;
        };
        slot.notify_calls.fetch_add(1, Ordering::Relaxed);
        let _ = slot.notified.compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
        slot.notify_kind.store(kind, Ordering::Relaxed);
        let id = self.hash(webhook_id);
        if let Err(first) = slot.notify_id.compare_exchange(0, id, Ordering::Relaxed, Ordering::Relaxed) {
            if first != id {
                slot.notify_other_ids.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Accepted requests in `range` that have no notification yet.
    pub fn unfinished(&self, range: std::ops::Range<usize>) -> usize {
        self.slots
            .get(range)
            .unwrap_or_default()
            .iter()
            .filter(|s| s.outcome.load(Ordering::Relaxed) == ACCEPTED && s.notified.load(Ordering::Relaxed) == 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_request_and_keys_told_apart() {
        let ledger = Ledger::new("r1", 4);
        let id = ledger.correlation_id(2);
        ledger.erp_call(&id, "k", 10);
        ledger.erp_call(&id, "k", 20);
        ledger.erp_call(&id, "other", 30);
        ledger.erp_call("r2-000000002", "k", 40);
        ledger.erp_call("r1-000000009", "k", 40);
        let slot = &ledger.slots[2];
        assert_eq!(slot.erp_calls.load(Ordering::Relaxed), 3);
        assert_eq!(slot.erp.load(Ordering::Relaxed), 10);
        assert_eq!(slot.erp_other_keys.load(Ordering::Relaxed), 1);
        assert_eq!(ledger.strays.load(Ordering::Relaxed), 2);
        ledger.notification(&id, "msg_1", COMPLETED, 50);
        ledger.notification(&id, "msg_1", COMPLETED, 60);
        assert_eq!(slot.notify_calls.load(Ordering::Relaxed), 2);
        assert_eq!(slot.notify_other_ids.load(Ordering::Relaxed), 0);
        assert_eq!(slot.notified.load(Ordering::Relaxed), 50);
    }
}
