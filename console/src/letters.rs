//! The dead-letter index: every dead-letter topic of the topology tailed (read_committed, from
//! the start, no group, nothing committed) into memory, so a page filters letters already
//! decoded instead of reading the topics whole on each request. A record that is no dead letter
//! is indexed as undecodable ([`interchange_sinks::replay::UNDECODABLE`]), never stopping the
//! tail; letters that retention removed from the broker are dropped at the next check.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use interchange_sinks::replay::{self, Filter, Letter};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::dead_letters::DeadLetterSettings;
use crate::quiet::Quiet;

/// How often partitions are checked: new ones assigned, letters below the low watermark dropped.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// Where a letter is: topic, partition, offset.
type Place = (String, i32, i64);

/// The letters of every dead-letter topic, kept current by a tail.
#[derive(Debug, Default)]
pub(crate) struct LetterIndex {
    letters: RwLock<BTreeMap<Place, Arc<Letter>>>,
    /// Whether the tail has read every partition to the end it had when it started.
    caught_up: AtomicBool,
    /// The tail's last error, shown by the pages until it reads again.
    problem: RwLock<Option<String>>,
}

impl LetterIndex {
    /// Starts the tail in the background; it ends with `shutdown`.
    pub(crate) fn start(settings: DeadLetterSettings, shutdown: CancellationToken) -> Arc<Self> {
        let index = Arc::new(Self::default());
        let tail = index.clone();
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                if let Err(e) = tail.follow(&settings, &shutdown).await {
                    tracing::warn!(error = %e, "dead-letter index: the tail stopped; starting again");
                    tail.set_problem(Some(e));
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        });
        index
    }

    /// The letters of `topics` that `filter` selects, oldest failure first.
    pub(crate) fn select(&self, topics: &[String], filter: &Filter) -> Vec<Arc<Letter>> {
        let letters = self.letters.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<Arc<Letter>> =
            letters.values().filter(|l| topics.contains(&l.topic) && filter.matches(l)).cloned().collect();
        out.sort_by_key(|l| l.failed_at);
        out
    }

    /// The letter at `topic`/`partition`@`offset`.
    pub(crate) fn get(&self, topic: &str, partition: i32, offset: i64) -> Option<Arc<Letter>> {
        let letters = self.letters.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        letters.get(&(topic.to_owned(), partition, offset)).cloned()
    }

    /// How many letters failed at or after `since_ms`, in every topic.
    pub(crate) fn count_since(&self, since_ms: i64) -> usize {
        let letters = self.letters.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        letters.values().filter(|l| l.failed_at >= since_ms).count()
    }

    /// Every error class indexed, for the list's filter.
    pub(crate) fn classes(&self) -> Vec<String> {
        let letters = self.letters.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut classes: Vec<String> = letters.values().map(|l| l.error_class.clone()).collect();
        classes.sort();
        classes.dedup();
        classes
    }

    /// What a page should say about the index: still reading, or the tail's last problem.
    pub(crate) fn notice(&self) -> Option<String> {
        if let Some(problem) = self.problem.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone() {
            return Some(format!("The dead-letter topics are not being read: {problem}. What is shown may be old."));
        }
        (!self.caught_up.load(Ordering::Relaxed))
            .then(|| "Still reading the dead-letter topics: what is shown is not everything yet.".to_owned())
    }

    fn set_problem(&self, problem: Option<String>) {
        *self.problem.write().unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
    }

    fn insert(&self, letter: Letter) {
        let place = (letter.topic.clone(), letter.partition, letter.offset);
        self.letters.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(place, Arc::new(letter));
    }

    /// Drops the letters of `topic`/`partition` below `low` (gone from the broker).
    fn forget_below(&self, topic: &str, partition: i32, low: i64) {
        let mut letters = self.letters.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        letters.retain(|(t, p, o), _| !(t == topic && *p == partition && *o < low));
    }

    /// Reads every dead-letter topic from the start and follows it, until `shutdown` or an error.
    async fn follow(&self, settings: &DeadLetterSettings, shutdown: &CancellationToken) -> Result<(), String> {
        let consumer: StreamConsumer<Quiet> = settings
            .services
            .kafka
            // Assigned, never subscribed: the group is never joined and nothing is committed.
            .read_committed("hub-console", "hub-console-index")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "100")
            .create_with_context(Quiet)
            .map_err(|e| format!("consumer: {e}"))?;
        let consumer = Arc::new(consumer);
        let reader = replay::letter_reader(&settings.services, &settings.schema).map_err(|e| e.to_string())?;
        // Each assigned partition: its end when first seen, and whether the tail has reached it.
        let mut assigned: BTreeMap<(String, i32), (i64, bool)> = BTreeMap::new();
        self.check(&consumer, &settings.topics, &mut assigned).await?;
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.tick().await;
        loop {
            if !self.caught_up.load(Ordering::Relaxed) && assigned.values().all(|(_, at_end)| *at_end) {
                self.caught_up.store(true, Ordering::Relaxed);
                tracing::info!(letters = self.count_since(i64::MIN), "dead-letter index caught up");
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                _ = check.tick() => self.check(&consumer, &settings.topics, &mut assigned).await?,
                received = consumer.recv() => match received {
                    Ok(message) => {
                        let letter = replay::decode(&reader, &message).await;
                        self.insert(letter);
                        self.set_problem(None);
                    }
                    Err(KafkaError::PartitionEOF(_)) => self.mark_ends(&consumer, &mut assigned),
                    Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) => {
                        self.mark_ends(&consumer, &mut assigned);
                    }
                    Err(e) => return Err(format!("reading: {e}")),
                },
            }
        }
    }

    /// Marks the partitions whose position has reached the end they had when first seen (an EOF
    /// names a partition number, not its topic, so every partition's position is checked).
    fn mark_ends(&self, consumer: &StreamConsumer<Quiet>, assigned: &mut BTreeMap<(String, i32), (i64, bool)>) {
        let Ok(positions) = consumer.position() else { return };
        for element in positions.elements() {
            let rdkafka::Offset::Offset(at) = element.offset() else { continue };
            if let Some((end, at_end)) = assigned.get_mut(&(element.topic().to_owned(), element.partition())) {
                if at >= *end {
                    *at_end = true;
                }
            }
        }
    }

    /// Assigns partitions not yet assigned (from their start) and forgets letters retention
    /// removed. A partition with nothing in it counts as read to its end.
    async fn check(
        &self,
        consumer: &Arc<StreamConsumer<Quiet>>,
        topics: &[String],
        assigned: &mut BTreeMap<(String, i32), (i64, bool)>,
    ) -> Result<(), String> {
        let probe = consumer.clone();
        let topics = topics.to_vec();
        let found = tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for topic in &topics {
                let metadata = probe.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(|e| e.to_string())?;
                let partitions =
                    metadata.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len());
                for p in 0..i32::try_from(partitions).unwrap_or(0) {
                    let (low, high) = probe
                        .fetch_watermarks(topic, p, Duration::from_secs(10))
                        .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
                    found.push((topic.clone(), p, low, high));
                }
            }
            Ok::<_, String>(found)
        })
        .await
        .map_err(|e| e.to_string())??;
        let mut new = TopicPartitionList::new();
        for (topic, p, low, high) in found {
            self.forget_below(&topic, p, low);
            if !assigned.contains_key(&(topic.clone(), p)) {
                new.add_partition_offset(&topic, p, Offset::Beginning).map_err(|e| e.to_string())?;
                assigned.insert((topic, p), (high, high <= low));
            }
        }
        if new.count() > 0 {
            consumer.incremental_assign(&new).map_err(|e| format!("assign: {e}"))?;
        }
        Ok(())
    }
}
