//! In-memory state of the partitions this instance owns, with a batch overlay that is merged on
//! commit and thrown away on abort, and an index of pending deadlines.
//!
//! Restored states are kept as their record bytes and decoded on first use: a restore only reads
//! bytes (fast, and compact in memory); the deadline index is rebuilt from the `hub-deadline`
//! header the processor writes on states that wait for one.

use std::collections::{BTreeSet, HashMap};

use super::error::ProcessorError;
use crate::saga::{Millis, OrderState, Status};

/// Header on state records that wait for a deadline (epoch milliseconds).
pub const DEADLINE_HEADER: &str = "hub-deadline";

/// A state as held: still encoded (restored), or decoded.
#[derive(Debug)]
enum Slot {
    Raw(Vec<u8>),
    Decoded(Box<OrderState>),
}

/// Committed state plus the current transaction's changes.
#[derive(Debug, Default)]
pub struct Store {
    committed: HashMap<i32, HashMap<String, Slot>>,
    /// Changes of the open transaction: (partition, key) -> new state.
    overlay: HashMap<(i32, String), OrderState>,
    /// (deadline, partition, key) of committed states waiting for a dispatch result.
    deadlines: BTreeSet<(i64, i32, String)>,
    /// Deadline of each key in the index, to remove it when the state changes.
    deadline_of: HashMap<(i32, String), i64>,
}

/// The deadline a state waits for, if it waits for one.
pub fn pending_deadline(state: &OrderState) -> Option<Millis> {
    if state.status == Status::Validated {
        state.deadline
    } else {
        None
    }
}

impl Store {
    /// The state of `key` as the open transaction sees it, decoding a restored one with `decode`.
    pub fn get(
        &mut self,
        partition: i32,
        key: &str,
        decode: impl FnOnce(&[u8]) -> Result<OrderState, ProcessorError>,
    ) -> Result<Option<&OrderState>, ProcessorError> {
        let overlay_key = (partition, key.to_owned());
        if self.overlay.contains_key(&overlay_key) {
            return Ok(self.overlay.get(&overlay_key));
        }
        let Some(slot) = self.committed.get_mut(&partition).and_then(|p| p.get_mut(key)) else { return Ok(None) };
        if let Slot::Raw(bytes) = slot {
            *slot = Slot::Decoded(Box::new(decode(bytes)?));
        }
        match slot {
            Slot::Decoded(state) => Ok(Some(state)),
            Slot::Raw(_) => Ok(None),
        }
    }

    /// Stages a new state in the open transaction.
    pub fn put(&mut self, partition: i32, state: OrderState) {
        self.overlay.insert((partition, state.correlation_id.clone()), state);
    }

    fn index(&mut self, partition: i32, key: &str, deadline: Option<i64>) {
        let id = (partition, key.to_owned());
        if let Some(old) = self.deadline_of.remove(&id) {
            self.deadlines.remove(&(old, partition, key.to_owned()));
        }
        if let Some(at) = deadline {
            self.deadlines.insert((at, partition, key.to_owned()));
            self.deadline_of.insert(id, at);
        }
    }

    /// Makes the transaction's changes the committed state.
    pub fn commit(&mut self) {
        let overlay = std::mem::take(&mut self.overlay);
        for ((partition, key), state) in overlay {
            self.index(partition, &key, pending_deadline(&state).map(|d| d.0));
            self.committed.entry(partition).or_default().insert(key, Slot::Decoded(Box::new(state)));
        }
    }

    /// Throws the transaction's changes away.
    pub fn abort(&mut self) {
        self.overlay.clear();
    }

    /// Loads a restored record (last write wins; `None` is a tombstone) with the deadline from
    /// its header.
    pub fn restore(&mut self, partition: i32, key: String, bytes: Option<Vec<u8>>, deadline: Option<i64>) {
        self.index(partition, &key, deadline.filter(|_| bytes.is_some()));
        let states = self.committed.entry(partition).or_default();
        match bytes {
            Some(bytes) => {
                states.insert(key, Slot::Raw(bytes));
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
        self.deadline_of.retain(|(p, _), _| *p != partition);
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
