//! Rebalances of the processor's consumer: what the loop does about what the callbacks saw
//! (recorded by `consumer.rs`), before anything else runs. On revocation or lost membership the
//! state, timers and retirements of every partition no longer owned are dropped; on assignment
//! every assigned partition is restored fresh from the state topic and its committed offset read
//! (the offsets that fence a transaction with no input of its own).

use std::time::Instant;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::eos::{Loop, CALL_TIMEOUT};
use super::error::ProcessorError;
use super::restore::restore;

impl<M: crate::machine::Machine> Loop<'_, M> {
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
            tracing::info!(processor = %self.shared.name, lane = self.lane, ?revoked, lost, "partitions revoked; dropping their state");
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
            self.shared.set_states(self.lane, self.store.len());
            self.shared.set_ready(self.lane, false);
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
        self.shared.set_states(self.lane, self.store.len());
        self.shared.metrics.rebalances.get_or_create(&self.labels("assigned")).inc();
        tracing::info!(processor = %self.shared.name, lane = self.lane, ?partitions, restored = ?fresh, records = read, states = self.store.len(),
            retiring = self.store.retiring(), seconds = started.elapsed().as_secs_f64(), "partitions assigned, state restored");
        self.assigned = partitions;
        self.shared.set_ready(self.lane, true);
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
