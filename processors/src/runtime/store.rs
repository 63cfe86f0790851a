//! In-memory state of the partitions this instance owns, with a batch overlay that is merged on
//! commit and thrown away on abort, an index of pending deadlines and one of terminal states due
//! to be retired (tombstoned) after the retention.
//!
//! Restored states are kept as their record bytes and decoded on first use: a restore only reads
//! bytes (fast, and compact in memory); the deadline index is rebuilt from the `hub-deadline`
//! header the processor writes on states that wait for one, the retirement index from the
//! `hub-terminal-at` header of terminal states. A terminal state already past its retention is
//! not held at all: only its key waits for its tombstone. Retired keys are remembered (as a
//! 64-bit hash) while their tombstone is on the state topic: every tombstone restored, and each
//! one written for `remember` (the topic's `delete.retention.ms`, at least the retention), so a
//! late repeat of a retired order's event is refused rather than taken for a new order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use super::error::ProcessorError;
use crate::machine::Millis;

/// Header on state records that wait for a deadline (epoch milliseconds).
pub(crate) const DEADLINE_HEADER: &str = "hub-deadline";
/// Header on terminal state records: when the processor wrote them (epoch milliseconds, its own
/// clock); the retention runs from there.
pub const TERMINAL_HEADER: &str = "hub-terminal-at";

/// A state as held: still encoded (restored), or decoded.
#[derive(Debug)]
enum Slot<S> {
    Raw(Vec<u8>),
    Decoded(Box<S>),
}

/// A change of the open transaction: a new state (with the deadline it waits for and when it
/// became terminal), or a retirement.
#[derive(Debug)]
enum Staged<S> {
    State(Box<S>, Option<i64>, Option<i64>),
    Retired,
}

/// (time, partition, key) entries with one time per key: pending deadlines, due retirements.
#[derive(Debug, Default)]
struct TimeIndex {
    by_time: BTreeSet<(i64, i32, String)>,
    of: HashMap<(i32, String), i64>,
}

impl TimeIndex {
    fn set(&mut self, partition: i32, key: &str, at: Option<i64>) {
        let id = (partition, key.to_owned());
        if let Some(old) = self.of.remove(&id) {
            self.by_time.remove(&(old, partition, key.to_owned()));
        }
        if let Some(at) = at {
            self.by_time.insert((at, partition, key.to_owned()));
            self.of.insert(id, at);
        }
    }

    fn drop_partition(&mut self, partition: i32) {
        self.by_time.retain(|(_, p, _)| *p != partition);
        self.of.retain(|(p, _), _| *p != partition);
    }

    fn due(&self, now: i64, limit: usize) -> Vec<(i32, String, Millis)> {
        self.by_time
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(limit)
            .map(|(at, p, k)| (*p, k.clone(), Millis(*at)))
            .collect()
    }

    fn len(&self) -> usize {
        self.of.len()
    }
}

/// Committed state plus the current transaction's changes; `S` is the machine's state.
#[derive(Debug)]
pub struct Store<S> {
    committed: HashMap<i32, HashMap<String, Slot<S>>>,
    /// Changes of the open transaction: (partition, key) -> new state or retirement.
    overlay: HashMap<(i32, String), Staged<S>>,
    /// Committed states waiting for a dispatch result, by deadline.
    deadlines: TimeIndex,
    /// Committed terminal states by when they are to be retired.
    retirements: TimeIndex,
    /// Keys of terminal states found past their retention by a restore (not held): one copy of
    /// the key each, until their tombstone is written.
    overdue: HashMap<i32, HashSet<String>>,
    /// Hashes of keys retired recently, per partition, with when they are forgotten.
    retired: HashMap<i32, HashMap<u64, i64>>,
    /// How long a terminal state stays (milliseconds); `None`: for ever.
    retention_ms: Option<i64>,
    /// How long a retired key is remembered after its tombstone was written or read back.
    remember_ms: i64,
}

fn key_hash(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

impl<S> Store<S> {
    /// A store that retires terminal states `retention_ms` after they were written (`None`:
    /// never) and remembers retired keys for `remember_ms` (at least the retention).
    pub fn new(retention_ms: Option<i64>, remember_ms: i64) -> Self {
        Self {
            committed: HashMap::new(),
            overlay: HashMap::new(),
            deadlines: TimeIndex::default(),
            retirements: TimeIndex::default(),
            overdue: HashMap::new(),
            retired: HashMap::new(),
            retention_ms,
            remember_ms: remember_ms.max(retention_ms.unwrap_or(0)),
        }
    }

    /// The state of `key` as the open transaction sees it, decoding a restored one with `decode`.
    pub fn get(
        &mut self,
        partition: i32,
        key: &str,
        decode: impl FnOnce(&[u8]) -> Result<S, ProcessorError>,
    ) -> Result<Option<&S>, ProcessorError> {
        let overlay_key = (partition, key.to_owned());
        if self.overlay.contains_key(&overlay_key) {
            return Ok(match self.overlay.get(&overlay_key) {
                Some(Staged::State(state, ..)) => Some(state),
                _ => None,
            });
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

    /// When `key` was retired, if it was (and is still remembered, or retired in the open
    /// transaction, or waits for its tombstone) and holds no state since.
    pub(crate) fn retired(&self, partition: i32, key: &str, now: i64) -> bool {
        match self.overlay.get(&(partition, key.to_owned())) {
            Some(Staged::Retired) => return true,
            Some(Staged::State(..)) => return false,
            None => {}
        }
        if self.committed.get(&partition).is_some_and(|p| p.contains_key(key)) {
            return false;
        }
        self.retirements.of.contains_key(&(partition, key.to_owned()))
            || self.overdue.get(&partition).is_some_and(|o| o.contains(key))
            || self.retired.get(&partition).and_then(|r| r.get(&key_hash(key))).is_some_and(|until| *until > now)
    }

    /// Stages a new state of `key` in the open transaction, with the deadline it waits for and,
    /// for a terminal one, when it was written.
    pub(crate) fn put(
        &mut self,
        partition: i32,
        key: String,
        state: S,
        deadline: Option<Millis>,
        terminal_at: Option<i64>,
    ) {
        self.overlay.insert((partition, key), Staged::State(Box::new(state), deadline.map(|d| d.0), terminal_at));
    }

    /// Stages the retirement (tombstone) of `key` in the open transaction.
    pub(crate) fn retire(&mut self, partition: i32, key: &str) {
        self.overlay.insert((partition, key.to_owned()), Staged::Retired);
    }

    fn retire_at(&self, terminal_at: Option<i64>) -> Option<i64> {
        Some(terminal_at?.saturating_add(self.retention_ms?))
    }

    /// Makes the transaction's changes the committed state; `now` stamps retirements.
    pub(crate) fn commit(&mut self, now: i64) {
        let overlay = std::mem::take(&mut self.overlay);
        for ((partition, key), staged) in overlay {
            match staged {
                Staged::State(state, deadline, terminal_at) => {
                    self.deadlines.set(partition, &key, deadline);
                    self.retirements.set(partition, &key, self.retire_at(terminal_at));
                    if let Some(r) = self.retired.get_mut(&partition) {
                        r.remove(&key_hash(&key));
                    }
                    self.committed.entry(partition).or_default().insert(key, Slot::Decoded(state));
                }
                Staged::Retired => {
                    self.forget(partition, &key);
                    self.remember_retired(partition, &key, now);
                }
            }
        }
    }

    fn forget(&mut self, partition: i32, key: &str) {
        self.deadlines.set(partition, key, None);
        self.retirements.set(partition, key, None);
        if let Some(o) = self.overdue.get_mut(&partition) {
            o.remove(key);
        }
        if let Some(p) = self.committed.get_mut(&partition) {
            p.remove(key);
        }
    }

    fn remember_retired(&mut self, partition: i32, key: &str, now: i64) {
        if self.retention_ms.is_some() {
            self.retired.entry(partition).or_default().insert(key_hash(key), now.saturating_add(self.remember_ms));
        }
    }

    /// Throws the transaction's changes away.
    pub(crate) fn abort(&mut self) {
        self.overlay.clear();
    }

    /// Loads a restored record (last write wins; `None` is a tombstone, remembered as a retired
    /// key) with the deadline and terminal time from its headers. A terminal state past its
    /// retention at `now` is not held: only its key, to write its tombstone.
    pub(crate) fn restore(&mut self, partition: i32, key: String, record: Restored) {
        let Restored { bytes, deadline, terminal_at, now } = record;
        self.deadlines.set(partition, &key, deadline.filter(|_| bytes.is_some()));
        let retire_at = if bytes.is_some() { self.retire_at(terminal_at) } else { None };
        let overdue = retire_at.is_some_and(|at| at <= now);
        self.retirements.set(partition, &key, retire_at.filter(|_| !overdue));
        if let Some(o) = self.overdue.get_mut(&partition) {
            o.remove(&key);
        }
        let states = self.committed.entry(partition).or_default();
        match bytes {
            Some(_) if overdue => {
                states.remove(&key);
                self.overdue.entry(partition).or_default().insert(key);
            }
            Some(bytes) => {
                states.insert(key.clone(), Slot::Raw(bytes));
                if let Some(r) = self.retired.get_mut(&partition) {
                    r.remove(&key_hash(&key));
                }
            }
            None => {
                states.remove(&key);
                self.remember_retired(partition, &key, now);
            }
        }
    }

    /// Forgets a partition (revoked or lost): its states, timers, retirements.
    pub(crate) fn drop_partition(&mut self, partition: i32) {
        self.committed.remove(&partition);
        self.deadlines.drop_partition(partition);
        self.retirements.drop_partition(partition);
        self.overdue.remove(&partition);
        self.retired.remove(&partition);
        self.overlay.retain(|(p, _), _| *p != partition);
    }

    /// Partitions held.
    pub(crate) fn partitions(&self) -> Vec<i32> {
        self.committed.keys().copied().collect()
    }

    /// Marks a partition as held even when it has no state yet.
    pub(crate) fn hold(&mut self, partition: i32) {
        self.committed.entry(partition).or_default();
    }

    /// Deadlines due at `now`, at most `limit`: (partition, key, deadline).
    pub(crate) fn due(&self, now: Millis, limit: usize) -> Vec<(i32, String, Millis)> {
        self.deadlines.due(now.0, limit)
    }

    /// Terminal states (or keys awaiting their tombstone) due for retirement at `now`, not
    /// already retired in the open transaction.
    pub(crate) fn retire_due(&self, now: i64, limit: usize) -> Vec<(i32, String)> {
        let overdue = self.overdue.iter().flat_map(|(p, keys)| keys.iter().map(move |k| (*p, k)));
        let due = self.retirements.by_time.iter().take_while(|(at, _, _)| *at <= now).map(|(_, p, k)| (*p, k));
        overdue
            .chain(due)
            .filter(|(p, k)| !matches!(self.overlay.get(&(*p, (*k).clone())), Some(Staged::Retired)))
            .take(limit)
            .map(|(p, k)| (p, k.clone()))
            .collect()
    }

    /// Forgets remembered retirements whose memory expired.
    pub(crate) fn expire_retired(&mut self, now: i64) {
        for r in self.retired.values_mut() {
            r.retain(|_, until| *until > now);
        }
    }

    /// States held.
    pub fn len(&self) -> usize {
        self.committed.values().map(HashMap::len).sum()
    }

    /// Keys waiting for their retirement (terminal states held, or keys past retention).
    pub fn retiring(&self) -> usize {
        self.retirements.len() + self.overdue.values().map(HashSet::len).sum::<usize>()
    }

    /// Whether no state is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One record read back from the state topic.
#[derive(Debug)]
pub(crate) struct Restored {
    /// The value; `None` for a tombstone.
    pub(crate) bytes: Option<Vec<u8>>,
    /// The `hub-deadline` header.
    pub(crate) deadline: Option<i64>,
    /// The `hub-terminal-at` header.
    pub(crate) terminal_at: Option<i64>,
    /// The restoring clock.
    pub(crate) now: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    type Store = super::Store<()>;

    fn record(bytes: Option<&[u8]>, terminal_at: Option<i64>, now: i64) -> Restored {
        Restored { bytes: bytes.map(<[u8]>::to_vec), deadline: None, terminal_at, now }
    }

    #[test]
    fn a_terminal_state_past_retention_is_not_held_but_waits_for_its_tombstone() {
        let mut store = Store::new(Some(1_000), 0);
        store.restore(0, "old".into(), record(Some(b"x"), Some(100), 5_000));
        store.restore(0, "young".into(), record(Some(b"y"), Some(4_500), 5_000));
        store.restore(0, "live".into(), record(Some(b"z"), None, 5_000));
        assert_eq!(store.len(), 2);
        assert_eq!(store.retire_due(5_000, 10), vec![(0, "old".to_owned())]);
        assert!(store.retired(0, "old", 5_000));
        store.retire(0, "old");
        assert!(store.retire_due(5_000, 10).is_empty(), "staged once");
        store.commit(5_000);
        assert!(store.retire_due(5_000, 10).is_empty());
        assert!(store.retired(0, "old", 5_999));
        assert!(!store.retired(0, "old", 6_000), "remembered for at least the retention");
        assert_eq!(store.retire_due(5_500, 10), vec![(0, "young".to_owned())]);
    }

    #[test]
    fn a_tombstone_read_back_is_remembered_until_the_partition_is_dropped() {
        let mut store = Store::new(Some(1_000), 10_000);
        store.restore(3, "k".into(), record(Some(b"x"), Some(100), 1_500));
        store.restore(3, "k".into(), record(None, None, 1_500));
        assert_eq!(store.len(), 0);
        assert!(store.retire_due(i64::MAX, 10).is_empty());
        assert!(store.retired(3, "k", 11_499));
        assert!(!store.retired(3, "k", 11_500));
        store.drop_partition(3);
        assert!(!store.retired(3, "k", 1_500));
    }

    #[test]
    fn a_new_state_after_retirement_is_held_again() {
        let mut store = Store::new(Some(1_000), 0);
        store.restore(0, "k".into(), record(None, None, 0));
        assert!(store.retired(0, "k", 10));
        store.restore(0, "k".into(), record(Some(b"x"), None, 10));
        assert!(!store.retired(0, "k", 10));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn without_retention_nothing_retires() {
        let mut store = Store::new(None, 0);
        store.restore(0, "old".into(), record(Some(b"x"), Some(100), i64::MAX));
        assert_eq!(store.len(), 1);
        assert!(store.retire_due(i64::MAX, 10).is_empty());
    }
}
