//! An order's commands and deliveries, read from Kafka for its page: the records keyed by the
//! order on the sinks' input topics (commands) and result topics (delivery results, with attempts
//! and the partner's answer). Only the partition the key lands on is read (Kafka's default
//! partitioner: murmur2 of the key, as every producer of the hub and Confluent's clients use),
//! from the order's creation (the broker's time index) to a while after its last change, within
//! a budget of records, so a page costs the order's lifetime on one partition, not the topic.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use interchange_core::avro::Reader;
use interchange_core::headers::{value as header, TRACEPARENT};
use interchange_core::kafka::KafkaSettings;
use interchange_core::topology::{SinkParams, Topology};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::quiet::Quiet;

/// Most records read per topic for one page.
pub(crate) const BUDGET: usize = 20_000;

/// One record of the order on a command or result topic, decoded.
#[derive(Debug, Clone)]
pub(crate) struct OrderRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub at_ms: i64,
    /// The contract it decoded with, or why it did not.
    pub contract: String,
    pub json: serde_json::Value,
    /// The W3C trace id of its `traceparent` header.
    pub trace_id: Option<String>,
}

/// What was read for one order.
#[derive(Debug, Default)]
pub(crate) struct OrderTraffic {
    pub records: Vec<OrderRecord>,
    /// Topics whose budget ran out before their end.
    pub cut_short: Vec<String>,
}

/// The topics an order's commands and delivery results are on: every HTTP sink's input and
/// results topic (prefixed), once each.
pub(crate) fn topics(topology: &Topology) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for sink in topology.sinks.iter().filter(|s| matches!(s.params, SinkParams::Http { .. })) {
        for name in std::iter::once(&sink.input).chain(sink.results.iter()) {
            if let Some(topic) = topology.topic_named(name) {
                if !out.contains(&topic.name) {
                    out.push(topic.name.clone());
                }
            }
        }
    }
    out
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as librdkafka's
/// `murmur2_random` partitioner computes it for a keyed record.
fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    #[allow(clippy::cast_possible_truncation)]
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// The partition of `key` among `partitions` (Kafka's default for keyed records).
fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Reads orders' records; one consumer, kept between pages.
pub(crate) struct TrafficReader {
    kafka: KafkaSettings,
    consumer: Arc<Mutex<Option<BaseConsumer<Quiet>>>>,
}

impl TrafficReader {
    pub(crate) fn new(kafka: KafkaSettings) -> Self {
        Self { kafka, consumer: Arc::default() }
    }

    /// The records keyed `key` on `topics` written from `from_ms` to `until_ms`, each topic's
    /// partition of the key read to its end, the first record after `until_ms` or [`BUDGET`]
    /// records, decoded with `reader`.
    pub(crate) async fn read(
        &self,
        reader: &Reader,
        topics: &[String],
        key: &str,
        from_ms: i64,
        until_ms: i64,
    ) -> Result<OrderTraffic, String> {
        let config = self
            .kafka
            .read_committed("hub-console", "hub-console-orders")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "10");
        let (topics, key_owned) = (topics.to_vec(), key.to_owned());
        let slot = self.consumer.clone();
        let (messages, cut_short) = tokio::task::spawn_blocking(move || {
            // One consumer for every page (creating one costs more than a page should), one read at a time.
            let mut slot = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(config.create_with_context(Quiet).map_err(|e| format!("consumer: {e}"))?);
            }
            let Some(consumer) = slot.as_ref() else { return Err("no consumer".to_owned()) };
            let timeout = Duration::from_secs(10);
            let mut out = Vec::new();
            let mut cut_short = Vec::new();
            for topic in &topics {
                let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| format!("metadata: {e}"))?;
                let partitions =
                    metadata.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len());
                let Ok(partitions) = i32::try_from(partitions) else { continue };
                if partitions == 0 {
                    continue;
                }
                let partition = partition_of(key_owned.as_bytes(), partitions);
                let mut wanted = TopicPartitionList::new();
                wanted.add_partition_offset(topic, partition, Offset::Offset(from_ms)).map_err(|e| e.to_string())?;
                let found =
                    consumer.offsets_for_times(wanted, timeout).map_err(|e| format!("offsets for times: {e}"))?;
                let start = found.elements().first().map(|e| e.offset()).unwrap_or(Offset::End);
                let Offset::Offset(start) = start else { continue };
                let (_, end) =
                    consumer.fetch_watermarks(topic, partition, timeout).map_err(|e| format!("watermarks: {e}"))?;
                if start >= end {
                    continue;
                }
                let mut assignment = TopicPartitionList::new();
                assignment.add_partition_offset(topic, partition, Offset::Offset(start)).map_err(|e| e.to_string())?;
                consumer.assign(&assignment).map_err(|e| format!("assign: {e}"))?;
                let deadline = std::time::Instant::now() + timeout;
                let mut read = 0;
                loop {
                    if read >= BUDGET {
                        cut_short.push(topic.clone());
                        break;
                    }
                    match consumer.poll(Duration::from_millis(200)) {
                        Some(Ok(message)) => {
                            read += 1;
                            let late = message.timestamp().to_millis().is_some_and(|t| t > until_ms);
                            let done = late || message.offset() + 1 >= end;
                            if message.key() == Some(key_owned.as_bytes()) {
                                out.push(message.detach());
                            }
                            if done {
                                break;
                            }
                        }
                        Some(Err(KafkaError::PartitionEOF(_))) => break,
                        Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) => break,
                        Some(Err(e)) => {
                            let _ = consumer.unassign();
                            return Err(format!("reading {topic}: {e}"));
                        }
                        None if std::time::Instant::now() > deadline => break,
                        None => {}
                    }
                }
            }
            let _ = consumer.unassign();
            Ok::<(Vec<OwnedMessage>, Vec<String>), String>((out, cut_short))
        })
        .await
        .map_err(|e| e.to_string())??;
        let mut records = Vec::with_capacity(messages.len());
        for message in messages {
            let (contract, json) = match message.payload() {
                Some(payload) => match reader.decode_json(payload).await {
                    Ok(decoded) => decoded,
                    Err(e) => (format!("(not decodable: {e})"), serde_json::Value::Null),
                },
                None => ("(tombstone)".to_owned(), serde_json::Value::Null),
            };
            let trace_id = header(&message, TRACEPARENT).and_then(|t| t.split('-').nth(1).map(str::to_owned));
            records.push(OrderRecord {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                at_ms: message.timestamp().to_millis().unwrap_or(0),
                contract,
                json,
                trace_id,
            });
        }
        records.sort_by_key(|r| r.at_ms);
        Ok(OrderTraffic { records, cut_short })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas() {
        // The cases of Kafka's own UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58_897_971);
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }
}
