//! In-memory state of the partitions this instance owns, with a batch overlay that is merged on
//! commit and thrown away on abort, and an index of pending deadlines.

use std::collections::{BTreeSet, HashMap};

use crate::saga::{Millis, OrderState, Status};

/// Committed state plus the current transaction's changes.
#[derive(Debug, Default)]
pub struct Store {
    committed: HashMap<i32, HashMap<String, OrderState>>,
    /// Changes of the open transaction: (partition, key) -> new state.
    overlay: HashMap<(i32, String), OrderState>,
    /// (deadline, partition, key) of committed states waiting for a dispatch result.
    deadlines: BTreeSet<(i64, i32, String)>,
}

fn pending_deadline(state: &OrderState) -> Option<Millis> {
    if state.status == Status::Validated { state.deadline } else { None }
}

impl Store {
    /// The state of `key` as the open transaction sees it.
    pub fn get(&self, partition: i32, key: &str) -> Option<&OrderState> {
        self.overlay
            .get(&(partition, key.to_owned()))
            .or_else(|| self.committed.get(&partition).and_then(|p| p.get(key)))
    }

    /// Stages a new state in the open transaction.
    pub fn put(&mut self, partition: i32, state: OrderState) {
        self.overlay.insert((partition, state.correlation_id.clone()), state);
    }

    /// Makes the transaction's changes the committed state.
    pub fn commit(&mut self) {
        for ((partition, key), state) in self.overlay.drain() {
            let states = self.committed.entry(partition).or_default();
            if let Some(old) = states.get(&key).and_then(pending_deadline) {
                self.deadlines.remove(&(old.0, partition, key.clone()));
            }
            if let Some(new) = pending_deadline(&state) {
                self.deadlines.insert((new.0, partition, key.clone()));
            }
            states.insert(key, state);
        }
    }

    /// Throws the transaction's changes away.
    pub fn abort(&mut self) {
        self.overlay.clear();
    }

    /// Loads a restored record (last write wins; `None` is a tombstone).
    pub fn restore(&mut self, partition: i32, key: String, state: Option<OrderState>) {
        let states = self.committed.entry(partition).or_default();
        if let Some(old) = states.get(&key).and_then(pending_deadline) {
            self.deadlines.remove(&(old.0, partition, key.clone()));
        }
        match state {
            Some(state) => {
                if let Some(new) = pending_deadline(&state) {
                    self.deadlines.insert((new.0, partition, key.clone()));
                }
                states.insert(key, state);
            }
            None => {
                states.remove(&key);
            }
        }
    }

    /// Forgets a partition (revoked).
    pub fn drop_partition(&mut self, partition: i32) {
        self.committed.remove(&partition);
        self.deadlines.retain(|(_, p, _)| *p != partition);
    }

    /// Partitions held.
    pub fn partitions(&self) -> Vec<i32> {
        self.committed.keys().copied().collect()
    }

    /// Marks a partition as held even when it has no state yet.
    pub fn hold(&mut self, partition: i32) {
        self.committed.entry(partition).or_default();
    }

    /// Deadlines due at `now`, at most `limit`: (partition, key, deadline).
    pub fn due(&self, now: Millis, limit: usize) -> Vec<(i32, String, Millis)> {
        self.deadlines
            .iter()
            .take_while(|(at, _, _)| *at <= now.0)
            .take(limit)
            .map(|(at, p, k)| (*p, k.clone(), Millis(*at)))
            .collect()
    }

    /// States held.
    pub fn len(&self) -> usize {
        self.committed.values().map(HashMap::len).sum()
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
