//! What the transaction loop and the health endpoints share, fixed at start-up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use interchange_core::kafka::KafkaSettings;
use interchange_core::topology::CommitPolicy;

use super::codec::Codec;
use super::config::Mode;
use super::lookup::Table;
use super::metrics::Meters;

/// What the loop and the health endpoints share.
pub(crate) struct Shared<M> {
    pub(crate) name: String,
    /// The consumer group (for span attributes).
    pub(crate) group: String,
    pub(crate) mode: Mode,
    pub(crate) settings: KafkaSettings,
    pub(crate) codec: Arc<Codec>,
    /// The state machine it drives.
    pub(crate) machine: M,
    /// Its lookup table (empty without a lookup topic).
    pub(crate) table: Table,
    pub(crate) state_topic: String,
    pub(crate) dead_letter_topic: String,
    /// Output topic of each contract the processor writes.
    pub(crate) output_topics: HashMap<String, String>,
    pub(crate) commit: CommitPolicy,
    pub(crate) commit_interval: Duration,
    pub(crate) max_batch: u64,
    /// How long a terminal state stays before its tombstone (milliseconds); `None`: for ever.
    pub(crate) retention_ms: Option<i64>,
    /// How long a retired key is remembered (the state topic's `delete.retention.ms`).
    pub(crate) remember_ms: i64,
    pub(crate) metrics: Meters,
    /// What each transaction loop (`--threads`) reports; index: the loop's number.
    pub(crate) lanes: Vec<Lane>,
}

/// One transaction loop's part of the processor's readiness and state gauge.
#[derive(Debug, Default)]
pub(crate) struct Lane {
    /// Its partitions assigned and restored (the lookup table is checked apart).
    ready: AtomicBool,
    /// States it holds.
    states: AtomicI64,
}

impl<M> Shared<M> {
    /// Every loop has its partitions assigned and restored.
    pub(crate) fn ready(&self) -> bool {
        self.lanes.iter().all(|l| l.ready.load(Ordering::Acquire))
    }

    pub(crate) fn set_ready(&self, lane: usize, ready: bool) {
        if let Some(l) = self.lanes.get(lane) {
            l.ready.store(ready, Ordering::Release);
        }
    }

    /// Records that loop `lane` holds `states` states; the gauge shows the processor's total.
    pub(crate) fn set_states(&self, lane: usize, states: usize) {
        if let Some(l) = self.lanes.get(lane) {
            l.states.store(i64::try_from(states).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
        self.metrics.states.set(self.lanes.iter().map(|l| l.states.load(Ordering::Relaxed)).sum());
    }
}

impl<M> std::fmt::Debug for Shared<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("name", &self.name).finish_non_exhaustive()
    }
}
