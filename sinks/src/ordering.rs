//! Ordered completion: per correlation id one command at a time, in order, while other ids flow;
//! the offset to commit per partition is the lowest one not finished, so a crash redelivers and
//! never skips; and a revoked partition's work is dropped at once (`Flow::revoke`), so no command
//! is delivered by two owners.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Offsets in flight per partition, per ownership epoch: a partition revoked and assigned again
/// starts a new epoch, so a late finish from the old one changes nothing.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    partitions: HashMap<i32, Partition>,
    epochs: u64,
}

#[derive(Debug, Default)]
struct Partition {
    epoch: u64,
    unfinished: BTreeSet<i64>,
    /// Highest offset seen + 1.
    next: i64,
}

impl Partition {
    fn position(&self) -> i64 {
        self.unfinished.first().copied().unwrap_or(self.next)
    }
}

impl Offsets {
    /// A record at `offset` was read and is not finished; returns the partition's epoch.
    pub(crate) fn start(&mut self, partition: i32, offset: i64) -> u64 {
        let epochs = &mut self.epochs;
        let p = self.partitions.entry(partition).or_insert_with(|| {
            *epochs += 1;
            Partition { epoch: *epochs, ..Partition::default() }
        });
        p.unfinished.insert(offset);
        p.next = p.next.max(offset + 1);
        p.epoch
    }

    /// The record at `offset`, read in `epoch`, is finished (delivered, dead-lettered). Returns
    /// the offset that may now be committed for the partition (everything below it is
    /// finished); `None` when the partition was revoked since (another epoch or none).
    pub(crate) fn finish(&mut self, partition: i32, epoch: u64, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&partition).filter(|p| p.epoch == epoch)?;
        p.unfinished.remove(&offset);
        Some(p.position())
    }

    /// Forgets a revoked partition; returns the offset to commit for it.
    pub(crate) fn revoke(&mut self, partition: i32) -> Option<i64> {
        self.partitions.remove(&partition).map(|p| p.position())
    }

    /// Records in flight across partitions.
    pub(crate) fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.unfinished.len()).sum()
    }
}

/// Items queued per key: at most one holds the key (in flight), the rest wait in arrival order.
/// Only the holder, named by its id, releases the key.
#[derive(Debug)]
pub(crate) struct KeyedQueue<T> {
    slots: HashMap<String, Slot<T>>,
}

#[derive(Debug)]
struct Slot<T> {
    holder: u64,
    waiting: VecDeque<(u64, T)>,
}

impl<T> Default for KeyedQueue<T> {
    fn default() -> Self {
        Self { slots: HashMap::new() }
    }
}

impl<T> KeyedQueue<T> {
    /// Adds item `id`: returned at once when nothing holds its key (it now holds it), otherwise
    /// queued behind the holder.
    pub(crate) fn push(&mut self, key: &str, id: u64, item: T) -> Option<T> {
        match self.slots.get_mut(key) {
            Some(slot) => {
                slot.waiting.push_back((id, item));
                None
            }
            None => {
                self.slots.insert(key.to_owned(), Slot { holder: id, waiting: VecDeque::new() });
                Some(item)
            }
        }
    }

    /// Item `id` of `key` is done: when it holds the key, the next waiting item (now the
    /// holder), if any. Any other id changes nothing: only the holder releases a key.
    pub(crate) fn done(&mut self, key: &str, id: u64) -> Option<T> {
        let slot = self.slots.get_mut(key).filter(|s| s.holder == id)?;
        match slot.waiting.pop_front() {
            Some((next_id, next)) => {
                slot.holder = next_id;
                Some(next)
            }
            None => {
                self.slots.remove(key);
                None
            }
        }
    }

    /// Drops the waiting items for which `keep` is false (holders are untouched: they release
    /// their keys themselves); returns how many were dropped.
    pub(crate) fn retain_waiting(&mut self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let mut dropped = 0;
        for slot in self.slots.values_mut() {
            let before = slot.waiting.len();
            slot.waiting.retain(|(_, item)| keep(item));
            dropped += before - slot.waiting.len();
        }
        dropped
    }

    /// Keys held.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.slots.len()
    }
}

/// One record read: its id (unique in this process), partition, offset and the partition's
/// ownership epoch when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) id: u64,
    pub(crate) partition: i32,
    pub(crate) epoch: u64,
    pub(crate) offset: i64,
}

/// A job with its ticket, ordering key and lane (the partner it goes to: each lane has its own
/// limit of deliveries at once, so a slow partner's jobs never take another partner's slots).
#[derive(Debug)]
pub(crate) struct Entry<T> {
    pub(crate) ticket: Ticket,
    pub(crate) key: String,
    pub(crate) lane: usize,
    pub(crate) item: T,
}

/// Everything read and not finished, shared by the consumer loop, the delivery tasks and the
/// rebalance callback: the offsets, the jobs waiting for their key, the jobs whose turn has come
/// (`ready`, per lane, taken in turn across partitions, so the backlog stays spread over them and
/// a member taking some over takes its share of it), and the tasks running.
#[derive(Debug)]
pub(crate) struct Flow<T> {
    offsets: Offsets,
    queue: KeyedQueue<Entry<T>>,
    lanes: BTreeMap<usize, Lane<T>>,
    /// The lane the last ready job was taken from.
    lane_turn: usize,
    /// Running tasks by ticket id; the lane for deliveries (holders of a key), `None` for others.
    running: HashMap<u64, (Ticket, Option<usize>)>,
    /// Offsets to store, per partition (the loop stores them).
    stores: HashMap<i32, i64>,
    ids: u64,
}

/// The ready jobs of one lane, per partition, and the partition the last one was taken from.
#[derive(Debug)]
struct Lane<T> {
    ready: BTreeMap<i32, VecDeque<Entry<T>>>,
    turn: i32,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Self { ready: BTreeMap::new(), turn: -1 }
    }
}

impl<T> Lane<T> {
    /// The next job in turn across partitions.
    fn take(&mut self) -> Option<Entry<T>> {
        let turn = self.turn;
        let partition = self.ready.range(turn + 1..).chain(self.ready.range(..=turn)).map(|(p, _)| *p).next()?;
        let queue = self.ready.get_mut(&partition)?;
        let entry = queue.pop_front()?;
        if queue.is_empty() {
            self.ready.remove(&partition);
        }
        self.turn = partition;
        Some(entry)
    }
}

impl<T> Default for Flow<T> {
    fn default() -> Self {
        Self {
            offsets: Offsets::default(),
            queue: KeyedQueue::default(),
            lanes: BTreeMap::new(),
            lane_turn: usize::MAX,
            running: HashMap::new(),
            stores: HashMap::new(),
            ids: 0,
        }
    }
}

/// What a revocation found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Revocation {
    /// Jobs dropped before they started (waiting for their key or for a delivery slot).
    pub(crate) dropped: usize,
    /// Tasks of the revoked partitions still running.
    pub(crate) running: Vec<u64>,
}

impl<T> Flow<T> {
    /// A record was read at `partition`/`offset`.
    pub(crate) fn read(&mut self, partition: i32, offset: i64) -> Ticket {
        self.ids += 1;
        let epoch = self.offsets.start(partition, offset);
        Ticket { id: self.ids, partition, epoch, offset }
    }

    /// A record that needs no task (not for this sink) is finished.
    pub(crate) fn skip(&mut self, ticket: Ticket) {
        self.finish(ticket);
    }

    fn finish(&mut self, ticket: Ticket) {
        if let Some(next) = self.offsets.finish(ticket.partition, ticket.epoch, ticket.offset) {
            let stored = self.stores.entry(ticket.partition).or_insert(next);
            *stored = (*stored).max(next);
        }
    }

    /// A task that holds no key (a dead letter) started for `ticket`.
    pub(crate) fn run_unkeyed(&mut self, ticket: Ticket) {
        self.running.insert(ticket.id, (ticket, None));
    }

    /// Queues a job of lane 0 behind its key; ready at once when nothing holds the key.
    #[cfg(test)]
    pub(crate) fn push(&mut self, ticket: Ticket, key: &str, item: T) {
        self.push_in(ticket, key, 0, item);
    }

    /// Queues a job of `lane` behind its key; ready at once when nothing holds the key.
    pub(crate) fn push_in(&mut self, ticket: Ticket, key: &str, lane: usize, item: T) {
        let entry = Entry { ticket, key: key.to_owned(), lane, item };
        if let Some(entry) = self.queue.push(key, ticket.id, entry) {
            self.make_ready(entry);
        }
    }

    fn make_ready(&mut self, entry: Entry<T>) {
        self.lanes.entry(entry.lane).or_default().ready.entry(entry.ticket.partition).or_default().push_back(entry);
    }

    /// The next ready job, now running, unless `limit` deliveries of its lane already run.
    #[cfg(test)]
    pub(crate) fn next_ready(&mut self, limit: usize) -> Option<Entry<T>> {
        self.next_ready_in(|_| limit)
    }

    /// The next ready job of a lane with room (fewer than `limit(lane)` deliveries of it
    /// running), now running; lanes take turns, so one partner's backlog does not starve another.
    pub(crate) fn next_ready_in(&mut self, limit: impl Fn(usize) -> usize) -> Option<Entry<T>> {
        let turn = self.lane_turn;
        let candidates: Vec<usize> = self
            .lanes
            .range(turn.saturating_add(1)..)
            .chain(self.lanes.range(..=turn))
            .filter(|(_, l)| !l.ready.is_empty())
            .map(|(lane, _)| *lane)
            .collect();
        for lane in candidates {
            if self.delivering_in(lane) >= limit(lane) {
                continue;
            }
            let Some(entry) = self.lanes.get_mut(&lane).and_then(Lane::take) else { continue };
            self.lane_turn = lane;
            self.running.insert(entry.ticket.id, (entry.ticket, Some(lane)));
            return Some(entry);
        }
        None
    }

    /// Deliveries of `lane` running.
    pub(crate) fn delivering_in(&self, lane: usize) -> usize {
        self.running.values().filter(|(_, l)| *l == Some(lane)).count()
    }

    /// A task ended: its offset is finished when `finished` (and its partition still in the
    /// epoch it was read in); a delivery releases its key, making the next job of it ready.
    pub(crate) fn complete(&mut self, ticket: Ticket, key: Option<&str>, finished: bool) {
        self.running.remove(&ticket.id);
        if finished {
            self.finish(ticket);
        }
        if let Some(next) = key.and_then(|k| self.queue.done(k, ticket.id)) {
            self.make_ready(next);
        }
    }

    /// Offsets to store now, per partition.
    pub(crate) fn take_stores(&mut self) -> Vec<(i32, i64)> {
        self.stores.drain().collect()
    }

    /// Drops every job of `partitions` not started yet (releasing the keys the ready ones hold)
    /// and names the tasks of them still running. Offsets are kept until `forget`, so tasks
    /// that finish meanwhile still count.
    pub(crate) fn revoke(&mut self, partitions: &[i32]) -> Revocation {
        let revoked = |t: &Ticket| partitions.contains(&t.partition);
        let mut dropped = self.queue.retain_waiting(|e| !revoked(&e.ticket));
        let gone: Vec<Entry<T>> = self
            .lanes
            .values_mut()
            .flat_map(|lane| partitions.iter().filter_map(|p| lane.ready.remove(p)).collect::<Vec<_>>())
            .flat_map(VecDeque::into_iter)
            .collect();
        for entry in gone {
            dropped += 1;
            // Waiting jobs of revoked partitions are gone: what this promotes is kept.
            if let Some(next) = self.queue.done(&entry.key, entry.ticket.id) {
                self.make_ready(next);
            }
        }
        let running = self.running.values().filter(|(t, _)| revoked(t)).map(|(t, _)| t.id).collect();
        Revocation { dropped, running }
    }

    /// How many of `ids` still run.
    pub(crate) fn still_running(&self, ids: &[u64]) -> usize {
        ids.iter().filter(|id| self.running.contains_key(id)).count()
    }

    /// Forgets revoked partitions; returns the offsets to commit for them (partitions from
    /// which something was read).
    pub(crate) fn forget(&mut self, partitions: &[i32]) -> Vec<(i32, i64)> {
        partitions
            .iter()
            .filter_map(|p| {
                self.stores.remove(p);
                self.offsets.revoke(*p).map(|o| (*p, o))
            })
            .collect()
    }

    /// Records read and not finished.
    pub(crate) fn in_flight(&self) -> usize {
        self.offsets.in_flight()
    }

    /// Deliveries running.
    #[cfg(test)]
    pub(crate) fn delivering(&self) -> usize {
        self.running.values().filter(|(_, lane)| lane.is_some()).count()
    }

    /// Tasks running (deliveries and dead letters).
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// Jobs whose turn has come, waiting for a delivery slot.
    #[cfg(test)]
    pub(crate) fn ready(&self) -> usize {
        self.lanes.values().flat_map(|l| l.ready.values()).map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committable_offset_is_the_lowest_unfinished() {
        let mut o = Offsets::default();
        let mut epoch = 0;
        for offset in 10..15 {
            epoch = o.start(0, offset);
        }
        assert_eq!(o.finish(0, epoch, 12), Some(10), "10 and 11 are still out");
        assert_eq!(o.finish(0, epoch, 10), Some(11));
        assert_eq!(o.finish(0, epoch, 11), Some(13));
        assert_eq!(o.finish(0, epoch, 14), Some(13));
        assert_eq!(o.finish(0, epoch, 13), Some(15), "all done: commit past the last");
        assert_eq!(o.finish(1, epoch, 0), None, "unknown partition");
        assert_eq!(o.in_flight(), 0);
    }

    #[test]
    fn a_finish_from_before_a_revocation_changes_nothing() {
        let mut o = Offsets::default();
        let old = o.start(0, 5);
        assert_eq!(o.revoke(0), Some(5), "5 is not finished: commit 5");
        let new = o.start(0, 5);
        assert_ne!(old, new, "assigned again: a new epoch");
        assert_eq!(o.finish(0, old, 5), None, "the old owner's finish is ignored");
        assert_eq!(o.in_flight(), 1, "the new read of 5 is still unfinished");
        assert_eq!(o.finish(0, new, 5), Some(6));
    }

    #[test]
    fn one_key_waits_while_others_flow() {
        let mut q = KeyedQueue::default();
        assert_eq!(q.push("order-1", 1, "a1"), Some("a1"));
        assert_eq!(q.push("order-1", 2, "a2"), None, "behind a1");
        assert_eq!(q.push("order-2", 3, "b1"), Some("b1"), "another order is not blocked");
        assert_eq!(q.push("order-1", 4, "a3"), None);
        assert_eq!(q.done("order-2", 3), None);
        assert_eq!(q.done("order-1", 1), Some("a2"));
        assert_eq!(q.done("order-1", 2), Some("a3"));
        assert_eq!(q.done("order-1", 4), None);
        assert_eq!(q.keys(), 0);
    }

    #[test]
    fn only_the_holder_releases_a_key() {
        let mut q = KeyedQueue::default();
        assert_eq!(q.push("order-1", 1, "a1"), Some("a1"));
        assert_eq!(q.push("order-1", 2, "a2"), None);
        // A record of the same key that was never queued (not a command, unreadable) ends.
        assert_eq!(q.done("order-1", 99), None, "not the holder: nothing released");
        assert_eq!(q.done("order-1", 2), None, "a waiting item cannot release the key either");
        assert_eq!(q.keys(), 1);
        assert_eq!(q.done("order-1", 1), Some("a2"), "the holder hands over");
    }

    #[test]
    fn records_never_queued_do_not_release_a_key() {
        let mut f: Flow<&str> = Flow::default();
        let a1 = f.read(0, 0);
        f.push(a1, "order-1", "a1");
        let other = f.read(0, 1); // a notification on the same key, not for this sink
        f.skip(other);
        let a2 = f.read(0, 2);
        f.push(a2, "order-1", "a2");
        assert_eq!(f.next_ready(10).map(|e| e.item), Some("a1"));
        assert!(f.next_ready(10).is_none(), "a2 waits for a1, whatever else of the key ended");
        f.complete(a1, Some("order-1"), true);
        assert_eq!(f.next_ready(10).map(|e| e.item), Some("a2"));
        f.complete(a2, Some("order-1"), true);
        assert_eq!(f.take_stores(), vec![(0, 3)]);
    }

    #[test]
    fn ready_jobs_take_turns_across_partitions() {
        let mut f: Flow<String> = Flow::default();
        for (offset, partition) in [0, 0, 0, 1, 1, 2].into_iter().enumerate() {
            let t = f.read(partition, i64::try_from(offset).unwrap_or(0));
            f.push(t, &format!("k{}", t.id), format!("p{partition}/{}", t.id));
        }
        let order: Vec<String> = std::iter::from_fn(|| f.next_ready(10).map(|e| e.item)).collect();
        assert_eq!(order, ["p0/1", "p1/4", "p2/6", "p0/2", "p1/5", "p0/3"], "in turn, in order within a partition");
    }

    #[test]
    fn a_lane_at_its_limit_does_not_hold_back_another() {
        let mut f: Flow<&str> = Flow::default();
        // Lane 0 (a slow partner, one delivery at a time) has three ready jobs; lane 1 has two.
        for (offset, (lane, item)) in
            [(0, "slow-1"), (0, "slow-2"), (0, "slow-3"), (1, "fast-1"), (1, "fast-2")].into_iter().enumerate()
        {
            let t = f.read(0, i64::try_from(offset).unwrap_or(0));
            f.push_in(t, item, lane, item);
        }
        let limits = |lane: usize| if lane == 0 { 1 } else { 4 };
        let started: Vec<&str> = std::iter::from_fn(|| f.next_ready_in(limits).map(|e| e.item)).collect();
        assert_eq!(started, ["slow-1", "fast-1", "fast-2"], "the slow lane's limit leaves the other lane free");
        assert_eq!((f.delivering_in(0), f.delivering_in(1), f.ready()), (1, 2, 2));
    }

    #[test]
    fn a_revocation_drops_the_revoked_partitions_jobs_and_keeps_the_others() {
        let mut f: Flow<&str> = Flow::default();
        // Partition 0: a1 (running), a2 (waiting behind it), b1 (ready), c1 (ready).
        // Partition 1: d1 (ready), and a3 of the same key as a1 (waiting).
        let a1 = f.read(0, 0);
        f.push(a1, "a", "a1");
        let running = f.next_ready(1).expect("a1 runs");
        assert_eq!(running.item, "a1");
        let a2 = f.read(0, 1);
        f.push(a2, "a", "a2");
        let b1 = f.read(0, 2);
        f.push(b1, "b", "b1");
        let d1 = f.read(1, 0);
        f.push(d1, "d", "d1");
        let a3 = f.read(1, 1);
        f.push(a3, "a", "a3");
        let c1 = f.read(0, 3);
        f.push(c1, "c", "c1");
        assert_eq!(f.ready(), 3);

        let revocation = f.revoke(&[0]);
        assert_eq!(revocation, Revocation { dropped: 3, running: vec![a1.id] }, "a2, b1, c1 dropped; a1 runs");
        assert_eq!(f.ready(), 1, "d1 is kept");
        assert_eq!(f.still_running(&revocation.running), 1);
        // a1 finishes while the callback waits: it counts, and hands its key to a3 (partition 1).
        f.complete(a1, Some("a"), true);
        assert_eq!(f.still_running(&revocation.running), 0);
        assert_eq!(f.forget(&[0]), vec![(0, 1)], "commit after a1: a2 onwards go to the next owner");
        let next: Vec<&str> = std::iter::from_fn(|| f.next_ready(10).map(|e| e.item)).collect();
        assert_eq!(next, vec!["d1", "a3"]);
        assert_eq!(f.take_stores(), vec![], "nothing stored for the revoked partition");
    }

    #[test]
    fn a_task_ending_after_its_partition_was_forgotten_stores_nothing() {
        let mut f: Flow<&str> = Flow::default();
        let old = f.read(3, 7);
        f.push(old, "a", "old");
        let _ = f.next_ready(1);
        let revocation = f.revoke(&[3]);
        assert_eq!(revocation.running, vec![old.id]);
        // The wait ran out: the partition is forgotten with the task still running.
        assert_eq!(f.forget(&[3]), vec![(3, 7)]);
        // Assigned again: the same record is read anew and waits for the old holder of its key.
        let new = f.read(3, 7);
        f.push(new, "a", "new");
        assert!(f.next_ready(1).is_none(), "the old task still holds the key");
        f.complete(old, Some("a"), true);
        assert_eq!(f.take_stores(), vec![], "the old task's finish is not the new epoch's");
        assert_eq!(f.in_flight(), 1);
        assert_eq!(f.next_ready(1).map(|e| e.item), Some("new"));
        f.complete(new, Some("a"), true);
        assert_eq!(f.take_stores(), vec![(3, 8)]);
    }

    #[test]
    fn dead_letter_tasks_are_waited_for_and_hold_no_key() {
        let mut f: Flow<&str> = Flow::default();
        let bad = f.read(2, 0);
        f.run_unkeyed(bad);
        assert_eq!((f.running(), f.delivering()), (1, 0));
        assert_eq!(f.revoke(&[2]).running, vec![bad.id]);
        f.complete(bad, None, true);
        assert_eq!(f.forget(&[2]), vec![(2, 1)]);
    }

    proptest::proptest! {
        #[test]
        fn never_commits_past_an_unfinished_record(order in proptest::collection::vec(0..50_i64, 1..50)) {
            let mut o = Offsets::default();
            let mut seen: Vec<i64> = order.clone();
            seen.sort_unstable();
            seen.dedup();
            let mut epoch = 0;
            for offset in &seen {
                epoch = o.start(0, *offset);
            }
            let mut finished = std::collections::BTreeSet::new();
            for offset in order {
                if !finished.insert(offset) {
                    continue;
                }
                let commit = o.finish(0, epoch, offset).unwrap_or(0);
                for pending in seen.iter().filter(|s| !finished.contains(s)) {
                    proptest::prop_assert!(commit <= *pending, "commit {} past unfinished {}", commit, pending);
                }
            }
        }

        /// Whatever is revoked and when, no job of a revoked partition is handed out afterwards
        /// and at most one job per key runs at a time.
        #[test]
        fn revoked_jobs_never_run_and_keys_never_run_twice(
            records in proptest::collection::vec((0..4_i32, 0..6_u8), 1..60),
            revoke_at in 0..60_usize,
            revoked in proptest::collection::vec(0..4_i32, 0..4),
        ) {
            let mut f: Flow<()> = Flow::default();
            let mut offsets = [0_i64; 4];
            let mut running: Vec<(Ticket, String)> = Vec::new();
            let mut gone: Vec<i32> = Vec::new();
            for (i, (partition, key)) in records.into_iter().enumerate() {
                if i == revoke_at {
                    let r = f.revoke(&revoked);
                    f.forget(&revoked);
                    gone.clone_from(&revoked);
                    // The revoked tasks end (cut off): keys released by their holders.
                    running.retain(|(t, k)| {
                        if r.running.contains(&t.id) {
                            f.complete(*t, Some(k), false);
                            false
                        } else {
                            true
                        }
                    });
                }
                let idx = usize::try_from(partition).unwrap_or(0);
                let t = f.read(partition, offsets[idx]);
                offsets[idx] += 1;
                f.push(t, &format!("k{key}"), ());
                while let Some(e) = f.next_ready(3) {
                    proptest::prop_assert!(!gone.contains(&e.ticket.partition) || e.ticket.id > u64::try_from(revoke_at).unwrap_or(0),
                        "a job of a revoked partition read before the revocation ran");
                    proptest::prop_assert!(running.iter().all(|(_, k)| *k != e.key), "two jobs of {} at once", e.key);
                    running.push((e.ticket, e.key));
                }
                if i % 2 == 0 && !running.is_empty() {
                    let (t, k) = running.remove(0);
                    f.complete(t, Some(&k), true);
                }
            }
        }
    }
}
