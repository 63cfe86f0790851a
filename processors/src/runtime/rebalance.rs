//! Rebalances of the processor's consumer: what the callbacks saw, and what the loop does about
//! it before anything else runs. On revocation or lost membership the state, timers and
//! retirements of every partition no longer owned are dropped; on assignment every assigned
//! partition is restored fresh from the state topic and its committed offset read (the offsets
//! that fence a transaction with no input of its own).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::eos::{Loop, CALL_TIMEOUT};
use super::error::ProcessorError;
use super::restore::restore;

/// What the rebalance callbacks saw, for the loop to act on after `poll` returns.
#[derive(Debug, Default)]
pub struct Rebalances {
    /// Partitions revoked (all of them under eager assignment), and whether librdkafka reported
    /// the assignment as lost (the group moved on without this member: a pause past the session
    /// timeout or `max.poll.interval.ms`).
    revoked: Option<(Vec<i32>, bool)>,
    assigned: Option<Vec<(String, i32)>>,
}

/// Records rebalances; the loop (same thread) handles them before the next record. Exports the
/// consumer lag from librdkafka's statistics.
#[derive(Debug, Default, Clone)]
pub struct RebalanceContext {
    pub seen: Arc<Mutex<Rebalances>>,
    /// This processor's rows of the lag gauge.
    pub lag: Option<Arc<interchange_core::kafka::lag::LagGauge<super::metrics::LagLabels>>>,
}

impl ClientContext for RebalanceContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(lag) = &self.lag {
            lag.update(statistics);
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Ok(mut seen) = self.seen.lock() else { return };
        match rebalance {
            Rebalance::Revoke(list) => {
                let lost = consumer.assignment_lost();
                let (partitions, was_lost) = seen.revoked.get_or_insert_with(Default::default);
                partitions.extend(list.elements().iter().map(|e| e.partition()));
                *was_lost |= lost;
                // An assignment seen before this revocation is no longer owned.
                seen.assigned = None;
            }
            // A failed rebalance: ownership is unknown, so nothing is trusted.
            Rebalance::Error(_) => {
                let (_, was_lost) = seen.revoked.get_or_insert_with(Default::default);
                *was_lost = true;
            }
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(list), Ok(mut seen)) = (rebalance, self.seen.lock()) {
            seen.assigned = Some(list.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect());
        }
    }
}

impl Loop<'_> {
    /// Acts on rebalances seen during the last poll, before anything else runs: on revocation or
    /// lost membership, abort what is open and drop the state, timers and retirements of every
    /// partition no longer owned; on assignment, restore each assigned partition fresh from the
    /// state topic before any of its input is processed, and read its committed offsets.
    pub(super) fn rebalanced(&mut self) -> Result<(), ProcessorError> {
        let seen = match self.consumer.context().seen.lock() {
            Ok(mut seen) => std::mem::take(&mut *seen),
            Err(_) => return Err(ProcessorError::Config("rebalance state poisoned".to_owned())),
        };
        if let Some((revoked, lost)) = seen.revoked {
            tracing::info!(processor = %self.shared.name, ?revoked, lost, "partitions revoked; dropping their state");
            self.abort_batch(false)?;
            self.quarantine.clear();
            // A lost assignment (or a failed rebalance) may not list every partition: drop all.
            let dropped: Vec<i32> = if lost { self.store.partitions() } else { revoked };
            for partition in dropped {
                self.store.drop_partition(partition);
            }
            let held = self.store.partitions();
            self.assigned.retain(|p| held.contains(p));
            self.positions.retain(|(_, p), _| held.contains(p));
            self.shared.metrics.rebalances.get_or_create(&self.labels(if lost { "lost" } else { "revoked" })).inc();
            self.shared.metrics.states.set(i64::try_from(self.store.len()).unwrap_or(i64::MAX));
            self.shared.ready.store(false, std::sync::atomic::Ordering::Release);
        }
        let Some(assigned) = seen.assigned else { return Ok(()) };
        let partitions: Vec<i32> = {
            let mut p: Vec<i32> = assigned.iter().map(|(_, p)| *p).collect();
            p.sort_unstable();
            p.dedup();
            p
        };
        for held in self.store.partitions() {
            if !partitions.contains(&held) {
                self.store.drop_partition(held);
            }
        }
        self.read_positions(&assigned)?;
        let fresh: Vec<i32> = partitions.iter().copied().filter(|p| !self.store.partitions().contains(p)).collect();
        let started = Instant::now();
        let read = restore(&self.shared.settings, &self.shared.state_topic, &fresh, &mut self.store)?;
        self.shared.metrics.restore.observe(started.elapsed().as_secs_f64());
        self.shared.metrics.states.set(i64::try_from(self.store.len()).unwrap_or(i64::MAX));
        self.shared.metrics.rebalances.get_or_create(&self.labels("assigned")).inc();
        tracing::info!(processor = %self.shared.name, ?partitions, restored = ?fresh, records = read, states = self.store.len(),
            retiring = self.store.retiring(), seconds = started.elapsed().as_secs_f64(), "partitions assigned, state restored");
        self.assigned = partitions;
        self.shared.ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The committed offsets of the assigned input partitions (the low watermark where the group
    /// has none yet: where `auto.offset.reset=earliest` starts anyway).
    fn read_positions(&mut self, assigned: &[(String, i32)]) -> Result<(), ProcessorError> {
        self.positions.clear();
        if !self.eos() || assigned.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (topic, partition) in assigned {
            list.add_partition(topic, *partition);
        }
        let mut committed = None;
        self.retrying("committed offsets", |l| {
            committed = Some(l.consumer.committed_offsets(list.clone(), CALL_TIMEOUT)?);
            Ok(())
        })?;
        for ((topic, partition), offset) in committed.unwrap_or_default().to_topic_map() {
            let offset = match offset {
                Offset::Offset(o) => o,
                _ => {
                    let mut low = 0;
                    self.retrying("watermarks", |l| {
                        low = l.consumer.fetch_watermarks(&topic, partition, CALL_TIMEOUT)?.0;
                        Ok(())
                    })?;
                    low
                }
            };
            self.positions.insert((topic, partition), offset);
        }
        Ok(())
    }
}
