//! A compacted topic read whole by every instance and kept current: a processor's lookup table
//! (stock levels, for the order flow), its latest value per key as JSON.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use interchange_core::kafka::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::codec::Codec;
use super::error::ProcessorError;
use crate::machine::Lookup;

/// The latest value per key, shared between the reader thread and the processor.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    values: Arc<RwLock<HashMap<String, Arc<serde_json::Value>>>>,
    loaded: Arc<AtomicBool>,
}

impl Lookup for Table {
    fn get(&self, key: &str) -> Option<Arc<serde_json::Value>> {
        self.values.read().ok().and_then(|l| l.get(key).cloned())
    }
}

impl Table {
    /// Whether the table was read to its end once.
    pub(crate) fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    fn set(&self, key: String, value: Option<serde_json::Value>) {
        if let Ok(mut values) = self.values.write() {
            match value {
                Some(value) => values.insert(key, Arc::new(value)),
                None => values.remove(&key),
            };
        }
    }
}

/// Reads `topic` from the beginning on a thread of its own until `shutdown`.
pub(crate) fn spawn(
    settings: &KafkaSettings,
    topic: String,
    codec: Arc<Codec>,
    shutdown: CancellationToken,
) -> Result<(Table, std::thread::JoinHandle<()>), ProcessorError> {
    let consumer: BaseConsumer = settings
        .read_committed("hub-lookup", "hub-lookup-unused")
        .create()
        .map_err(|source| ProcessorError::Kafka { operation: "lookup consumer", source })?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .map_err(|source| ProcessorError::Kafka { operation: "lookup metadata", source })?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in &partitions {
        let (_, high) = consumer
            .fetch_watermarks(&topic, *p, Duration::from_secs(10))
            .map_err(|source| ProcessorError::Kafka { operation: "lookup watermarks", source })?;
        ends.insert(*p, high);
        assignment
            .add_partition_offset(&topic, *p, Offset::Beginning)
            .map_err(|source| ProcessorError::Kafka { operation: "lookup assign", source })?;
    }
    consumer.assign(&assignment).map_err(|source| ProcessorError::Kafka { operation: "lookup assign", source })?;
    let table = Table::default();
    let shared = table.clone();
    let handle = std::thread::Builder::new()
        .name("hub-lookup".to_owned())
        .spawn(move || read(&consumer, &topic, &codec, &shared, ends, &shutdown))
        .map_err(|e| ProcessorError::Config(format!("lookup thread: {e}")))?;
    Ok((table, handle))
}

fn caught_up(consumer: &BaseConsumer, topic: &str, ends: &HashMap<i32, i64>) -> bool {
    let Ok(position) = consumer.position() else { return false };
    ends.iter().all(|(p, end)| {
        *end == 0
            || position.find_partition(topic, *p).is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *end))
    })
}

fn read(
    consumer: &BaseConsumer,
    topic: &str,
    codec: &Codec,
    table: &Table,
    ends: HashMap<i32, i64>,
    shutdown: &CancellationToken,
) {
    while !shutdown.is_cancelled() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let Some(key) = message.key().map(|k| String::from_utf8_lossy(k).into_owned()) else { continue };
                match message.payload() {
                    None => table.set(key, None),
                    Some(payload) => match codec.decode(payload) {
                        Ok((_, json)) => table.set(key, Some(json)),
                        Err(error) => {
                            tracing::warn!(%error, topic, offset = message.offset(), "unreadable lookup record skipped")
                        }
                    },
                }
            }
            Some(Err(error)) => tracing::warn!(%error, topic, "lookup consumer"),
            None => {}
        }
        if !table.loaded() && caught_up(consumer, topic, &ends) {
            table.loaded.store(true, Ordering::Release);
            tracing::info!(topic, "lookup table loaded");
        }
    }
}
