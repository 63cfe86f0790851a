//! Restoring owned partitions from the compacted state topic, read with read_committed to the high
//! watermark of when the restore began (so a transaction in flight then is waited for).

use std::time::{Duration, Instant};

use interchange_core::kafka::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use rdkafka::message::Headers;

use super::error::ProcessorError;
use super::store::{Restored, Store, DEADLINE_HEADER, TERMINAL_HEADER};

/// Reads `partitions` of `topic` from the beginning to the end (last write wins, tombstones
/// delete), whether or not compaction has run, keeping each state's bytes (decoded on first
/// use); a terminal state past the store's retention is not held, only its key until its
/// tombstone is written. Returns the records read.
pub fn restore<S>(
    settings: &KafkaSettings,
    topic: &str,
    partitions: &[i32],
    store: &mut Store<S>,
) -> Result<u64, ProcessorError> {
    let err = |partition: i32, reason: String| ProcessorError::Restore { topic: topic.to_owned(), partition, reason };
    if partitions.is_empty() {
        return Ok(0);
    }
    let consumer: BaseConsumer = settings
        .read_committed("hub-restore", "hub-restore-unused")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .map_err(|source| ProcessorError::Kafka { operation: "restore consumer", source })?;
    // Read to the high watermark, which a read_uncommitted query answers; a read_committed one
    // answers the last stable offset, below a transaction committed by the partition's previous
    // owner whose markers are not written yet (hundreds of milliseconds on a busy broker): its
    // states were not restored, and a second loop joining under load lost 102 orders' states.
    // Read read_committed up to the high watermark, the restore waits for every transaction in
    // flight to commit or abort, and keeps what commits.
    let watermarks: BaseConsumer = {
        let mut c = settings.client_config("hub-restore");
        c.set("group.id", "hub-restore-unused").set("isolation.level", "read_uncommitted");
        c.create().map_err(|source| ProcessorError::Kafka { operation: "restore watermarks", source })?
    };
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in partitions {
        store.hold(*p);
        let (low, high) =
            watermarks.fetch_watermarks(topic, *p, Duration::from_secs(30)).map_err(|e| err(*p, e.to_string()))?;
        if high > low {
            assignment.add_partition_offset(topic, *p, Offset::Beginning).map_err(|e| err(*p, e.to_string()))?;
            ends.push((*p, high));
        }
    }
    if ends.is_empty() {
        return Ok(0);
    }
    consumer.assign(&assignment).map_err(|e| err(-1, e.to_string()))?;
    let mut read = 0_u64;
    let now = interchange_core::clock::now_millis();
    let mut remaining: std::collections::HashMap<i32, i64> = ends.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(err(
                -1,
                "not at the end after 10 minutes (an open transaction holding the stable offset?)".to_owned(),
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                read += 1;
                let partition = message.partition();
                if remaining.get(&partition).is_some_and(|end| message.offset() + 1 >= *end) {
                    remaining.remove(&partition);
                }
                let Some(key) = message.key().map(|k| String::from_utf8_lossy(k).into_owned()) else { continue };
                let header = |name: &str| {
                    message.headers().and_then(|h| {
                        h.iter()
                            .find(|x| x.key == name)
                            .and_then(|x| x.value)
                            .and_then(|v| std::str::from_utf8(v).ok())
                            .and_then(|v| v.parse::<i64>().ok())
                    })
                };
                let record = Restored {
                    bytes: message.payload().map(<[u8]>::to_vec),
                    deadline: header(DEADLINE_HEADER),
                    terminal_at: header(TERMINAL_HEADER),
                    now,
                };
                store.restore(partition, key, record);
            }
            Some(Err(e)) => return Err(err(-1, e.to_string())),
            None => {
                // Idle: read_committed skips aborted records and transaction markers, so the
                // position, not the last offset read, tells whether the end is reached.
                let position = consumer.position().map_err(|e| err(-1, e.to_string()))?;
                remaining.retain(|p, end| {
                    !position
                        .find_partition(topic, *p)
                        .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *end))
                });
            }
        }
    }
    Ok(read)
}
