//! Ordered completion: per correlation id one command at a time, in order, while other ids flow;
//! and the offset to commit per partition is the lowest one not finished, so a crash redelivers
//! and never skips.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// Offsets in flight per partition.
#[derive(Debug, Default)]
pub struct Offsets {
    partitions: HashMap<i32, Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    unfinished: BTreeSet<i64>,
    /// Highest offset seen + 1.
    next: i64,
}

impl Offsets {
    /// A record at `offset` was read and is not finished.
    pub fn start(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.unfinished.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// The record at `offset` is finished (delivered, dead-lettered). Returns the offset that may
    /// now be committed for the partition: everything below it is finished.
    pub fn finish(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&partition)?;
        p.unfinished.remove(&offset);
        Some(p.unfinished.first().copied().unwrap_or(p.next))
    }

    /// Forgets a revoked partition.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// Records in flight across partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.unfinished.len()).sum()
    }
}

/// Items queued per key: at most one in flight per key, the rest wait in arrival order.
#[derive(Debug)]
pub struct KeyedQueue<T> {
    waiting: HashMap<String, VecDeque<T>>,
}

impl<T> Default for KeyedQueue<T> {
    fn default() -> Self {
        Self { waiting: HashMap::new() }
    }
}

impl<T> KeyedQueue<T> {
    /// Adds an item: returned at once when nothing of its key is in flight (it is now in
    /// flight), otherwise queued behind it.
    pub fn push(&mut self, key: &str, item: T) -> Option<T> {
        match self.waiting.get_mut(key) {
            Some(queue) => {
                queue.push_back(item);
                None
            }
            None => {
                self.waiting.insert(key.to_owned(), VecDeque::new());
                Some(item)
            }
        }
    }

    /// The in-flight item of `key` finished: the next one of the key, now in flight, if any.
    pub fn done(&mut self, key: &str) -> Option<T> {
        let queue = self.waiting.get_mut(key)?;
        match queue.pop_front() {
            Some(next) => Some(next),
            None => {
                self.waiting.remove(key);
                None
            }
        }
    }

    /// Keys with something in flight.
    pub fn keys(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committable_offset_is_the_lowest_unfinished() {
        let mut o = Offsets::default();
        for offset in 10..15 {
            o.start(0, offset);
        }
        assert_eq!(o.finish(0, 12), Some(10), "10 and 11 are still out");
        assert_eq!(o.finish(0, 10), Some(11));
        assert_eq!(o.finish(0, 11), Some(13));
        assert_eq!(o.finish(0, 14), Some(13));
        assert_eq!(o.finish(0, 13), Some(15), "all done: commit past the last");
        assert_eq!(o.finish(1, 0), None, "unknown partition");
        assert_eq!(o.in_flight(), 0);
    }

    #[test]
    fn one_key_waits_while_others_flow() {
        let mut q = KeyedQueue::default();
        assert_eq!(q.push("order-1", "a1"), Some("a1"));
        assert_eq!(q.push("order-1", "a2"), None, "behind a1");
        assert_eq!(q.push("order-2", "b1"), Some("b1"), "another order is not blocked");
        assert_eq!(q.push("order-1", "a3"), None);
        assert_eq!(q.done("order-2"), None);
        assert_eq!(q.done("order-1"), Some("a2"));
        assert_eq!(q.done("order-1"), Some("a3"));
        assert_eq!(q.done("order-1"), None);
        assert_eq!(q.keys(), 0);
    }

    proptest::proptest! {
        #[test]
        fn never_commits_past_an_unfinished_record(order in proptest::collection::vec(0..50_i64, 1..50)) {
            let mut o = Offsets::default();
            let mut seen: Vec<i64> = order.clone();
            seen.sort_unstable();
            seen.dedup();
            for offset in &seen {
                o.start(0, *offset);
            }
            let mut finished = std::collections::BTreeSet::new();
            for offset in order {
                if !finished.insert(offset) {
                    continue;
                }
                let commit = o.finish(0, offset).unwrap_or(0);
                for pending in seen.iter().filter(|s| !finished.contains(s)) {
                    proptest::prop_assert!(commit <= *pending, "commit {} past unfinished {}", commit, pending);
                }
            }
        }
    }
}
