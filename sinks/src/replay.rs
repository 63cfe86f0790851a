//! `hub dlq list|replay`: read dead letters, filter them, and re-publish the original records.
//!
//! A dead letter keeps its record whole (key, value bytes, headers), so a replay writes exactly
//! what was first produced back to its source topic: the command keeps its `command_id`, hence
//! its `Idempotency-Key` at the partner, and goes through the partner's rate limit, breaker and
//! retries again like any other command. A `hub-replayed-from` header names the dead letter.

use std::time::Duration;

use base64::Engine;
use interchange_core::avro::Reader;
use interchange_core::headers::{value as header, Received};
use interchange_core::kafka::KafkaSettings;
use interchange_core::Services;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use crate::error::SinkError;

/// Which dead letters to act on; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The partner a sink gave up on (`hub-partner` header).
    pub partner: Option<String>,
    /// The record key.
    pub correlation_id: Option<String>,
    /// The stage that gave up (`sink:erp-dispatch`, `processor:order-saga`).
    pub stage: Option<String>,
    /// Dead-lettered at or after (Unix ms).
    pub since_ms: Option<i64>,
    /// Dead-lettered before (Unix ms).
    pub until_ms: Option<i64>,
    /// Why: the letter's `error_class` (`PERMANENT`, `EXHAUSTED`, `UNDECODABLE`, ...).
    pub error_class: Option<String>,
}

impl Filter {
    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &Letter) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
        eq(&self.partner, letter.partner.as_deref())
            && eq(&self.correlation_id, Some(letter.correlation_id.as_str()))
            && eq(&self.stage, Some(letter.stage.as_str()))
            && eq(&self.error_class, Some(letter.error_class.as_str()))
            && self.since_ms.is_none_or(|t| letter.failed_at >= t)
            && self.until_ms.is_none_or(|t| letter.failed_at < t)
    }
}

/// One dead letter, decoded.
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub correlation_id: String,
    pub stage: String,
    pub partner: Option<String>,
    pub error_class: String,
    pub error: String,
    /// Unix ms.
    pub failed_at: i64,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    #[serde(skip)]
    pub original_key: Option<Vec<u8>>,
    #[serde(skip)]
    pub original_value: Option<Vec<u8>>,
    #[serde(skip)]
    pub original_headers: Vec<(String, Vec<u8>)>,
}

fn kafka(operation: &'static str) -> impl Fn(KafkaError) -> SinkError {
    move |source| SinkError::Kafka { operation, source }
}

/// Every record of `topic` from the start to its end now (read_committed), off the async workers.
pub async fn read_topic(kafka_settings: &KafkaSettings, topic: &str) -> Result<Vec<OwnedMessage>, SinkError> {
    // Its own throw-away group: partitions are assigned from the beginning, nothing is committed.
    let config = kafka_settings
        .read_committed("hub-dlq", &format!("hub-dlq-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.partition.eof", "true");
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create().map_err(kafka("consumer"))?;
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).map_err(kafka("metadata"))?;
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
        if metadata.topics().first().and_then(|t| t.error()).is_some() || partitions == 0 {
            return Err(SinkError::Config(format!("no topic {topic} on the broker")));
        }
        let mut assignment = TopicPartitionList::new();
        let mut open = 0;
        for p in 0..i32::try_from(partitions).unwrap_or(0) {
            let (low, high) =
                consumer.fetch_watermarks(&topic, p, Duration::from_secs(10)).map_err(kafka("watermarks"))?;
            if high > low {
                assignment.add_partition_offset(&topic, p, Offset::Beginning).map_err(kafka("assign"))?;
                open += 1;
            }
        }
        let mut out = Vec::new();
        if open == 0 {
            return Ok(out);
        }
        consumer.assign(&assignment).map_err(kafka("assign"))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while open > 0 && std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(message)) => out.push(message.detach()),
                Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
                Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) => open -= 1,
                Some(Err(e)) => return Err(SinkError::Kafka { operation: "read", source: e }),
                None => {}
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| SinkError::Config(e.to_string()))?
}

/// The dead letters of `topics` that `filter` selects, in topic, partition and offset order.
/// `schema` is the `dead_letter` contract (the reader schema). A record that is no dead letter
/// is listed as [`UNDECODABLE`], never failing the list.
pub async fn list(
    services: &Services,
    schema: &apache_avro::Schema,
    topics: &[String],
    filter: &Filter,
) -> Result<Vec<Letter>, SinkError> {
    let reader = letter_reader(services, schema)?;
    let mut letters = Vec::new();
    for topic in topics {
        for message in read_topic(&services.kafka, topic).await? {
            let letter = decode(&reader, &message).await;
            if filter.matches(&letter) {
                letters.push(letter);
            }
        }
    }
    Ok(letters)
}

/// The `error_class` of a record on a dead-letter topic that does not decode as a dead letter
/// (a careless producer's, or a contract the reader does not know); it is listed, never replayed.
pub const UNDECODABLE: &str = "UNDECODABLE";

/// A reader of dead letters: the `dead_letter` contract through the registry.
pub fn letter_reader(services: &Services, schema: &apache_avro::Schema) -> Result<Reader, SinkError> {
    Ok(Reader::new(services.registry.client()?, [("dead_letter".to_owned(), schema.clone())]))
}

/// One record of a dead-letter topic as a [`Letter`]; one that does not decode is an
/// [`UNDECODABLE`] letter whose `error` says why (tombstones included).
pub async fn decode(reader: &Reader, message: &impl Message) -> Letter {
    let b64 = |v: &serde_json::Value| v.as_str().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    let mut letter = Letter {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        correlation_id: message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        stage: String::new(),
        partner: header(message, "hub-partner"),
        error_class: UNDECODABLE.to_owned(),
        error: String::new(),
        failed_at: message.timestamp().to_millis().unwrap_or(0),
        source_topic: String::new(),
        source_partition: -1,
        source_offset: -1,
        event_type: None,
        event_id: None,
        original_key: None,
        original_value: None,
        original_headers: Vec::new(),
    };
    let Some(payload) = message.payload() else {
        letter.error = "the dead letter does not decode: it has no value (a tombstone)".to_owned();
        return letter;
    };
    let json = match reader.decode_json(payload).await {
        Ok((_, json)) => json,
        Err(e) => {
            letter.error = format!("the dead letter does not decode: {e} ({} bytes)", payload.len());
            return letter;
        }
    };
    let text = |k: &str| json[k].as_str().unwrap_or_default().to_owned();
    let envelope = Received::of(message);
    letter.stage = text("stage");
    letter.error_class = text("error_class");
    letter.error = text("error");
    letter.failed_at = failed_at_ms(&json["failed_at"]);
    letter.source_topic = text("source_topic");
    letter.source_partition = json["source_partition"].as_i64().and_then(|p| i32::try_from(p).ok()).unwrap_or(-1);
    letter.source_offset = json["source_offset"].as_i64().unwrap_or(-1);
    letter.event_type = envelope.event_type;
    letter.event_id = envelope.event_id;
    letter.original_key = b64(&json["key"]);
    letter.original_value = b64(&json["value"]);
    letter.original_headers = json["headers"]
        .as_object()
        .map(|h| h.iter().filter_map(|(k, v)| b64(v).map(|v| (k.clone(), v))).collect())
        .unwrap_or_default();
    letter
}

impl Letter {
    /// Whether a replay can write the letter's record back: it decoded and names its source.
    pub fn replayable(&self) -> bool {
        self.error_class != UNDECODABLE && !self.source_topic.is_empty()
    }
}

/// When a letter failed, in Unix ms: the contract's JSON shape gives `timestamp-millis` as
/// RFC 3339 text (a plain number is taken too); 0 when it is neither.
fn failed_at_ms(value: &serde_json::Value) -> i64 {
    if let Some(ms) = value.as_i64() {
        return ms;
    }
    value
        .as_str()
        .and_then(|text| time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok())
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
        .unwrap_or(0)
}

/// The record a replay writes for `letter`: its original key, value and headers, to its source
/// topic, with `hub-replayed-from` naming the letter.
fn replayed<'a>(letter: &'a Letter, from: &'a str) -> FutureRecord<'a, [u8], [u8]> {
    let mut headers = OwnedHeaders::new();
    for (k, v) in &letter.original_headers {
        if k != "hub-replayed-from" {
            headers = headers.insert(Header { key: k, value: Some(v) });
        }
    }
    headers = headers.insert(Header { key: "hub-replayed-from", value: Some(from) });
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&letter.source_topic).headers(headers);
    if let Some(key) = &letter.original_key {
        record = record.key(key.as_slice());
    }
    if let Some(value) = &letter.original_value {
        record = record.payload(value.as_slice());
    }
    record
}

/// The dead letter's name: `topic/partition@offset`.
pub fn letter_id(letter: &Letter) -> String {
    format!("{}/{}@{}", letter.topic, letter.partition, letter.offset)
}

/// Re-publishes each letter's original record to its source topic (acks=all, idempotent
/// producer), in order; returns how many were written.
pub async fn replay(kafka_settings: &KafkaSettings, letters: &[Letter]) -> Result<usize, SinkError> {
    let producer: FutureProducer =
        kafka_settings.producer_config("hub-dlq-replay").create().map_err(kafka("producer"))?;
    send_letters(&producer, letters).await
}

/// Sends each letter's record ([`replayed`]) in order, each acknowledged before the next.
async fn send_letters(producer: &FutureProducer, letters: &[Letter]) -> Result<usize, SinkError> {
    if let Some(letter) = letters.iter().find(|l| !l.replayable()) {
        return Err(SinkError::Config(format!("{} cannot be replayed: {}", letter_id(letter), letter.error)));
    }
    for letter in letters {
        let from = letter_id(letter);
        producer
            .send(replayed(letter, &from), Duration::from_secs(60))
            .await
            .map_err(|(source, _)| SinkError::Kafka { operation: "replay", source })?;
    }
    Ok(letters.len())
}

/// One record written beside a replay, in its transaction (the console's audit record).
#[derive(Debug, Clone)]
pub struct Beside {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
}

/// A transactional producer for [`replay_in_transaction`], its transactions initialised.
pub async fn transactional_producer(
    kafka_settings: &KafkaSettings,
    transactional_id: &str,
) -> Result<FutureProducer, SinkError> {
    let producer: FutureProducer = kafka_settings
        .producer_config("hub-console")
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "60000")
        .create()
        .map_err(kafka("producer"))?;
    let init = producer.clone();
    tokio::task::spawn_blocking(move || init.init_transactions(Duration::from_secs(30)))
        .await
        .map_err(|e| SinkError::Config(e.to_string()))?
        .map_err(kafka("init transactions"))?;
    Ok(producer)
}

/// Re-publishes the letters' original records and writes `beside` in one Kafka transaction: a
/// read_committed reader sees all of them or none. Aborts on any error.
pub async fn replay_in_transaction(
    producer: &FutureProducer,
    letters: &[Letter],
    beside: &[Beside],
) -> Result<usize, SinkError> {
    producer.begin_transaction().map_err(kafka("begin transaction"))?;
    let sent = async {
        send_letters(producer, letters).await?;
        for record in beside {
            let record: FutureRecord<'_, str, [u8]> =
                FutureRecord::to(&record.topic).key(record.key.as_str()).payload(record.payload.as_slice());
            producer
                .send(record, Duration::from_secs(60))
                .await
                .map_err(|(source, _)| SinkError::Kafka { operation: "replay audit", source })?;
        }
        Ok::<_, SinkError>(())
    }
    .await;
    let end = producer.clone();
    let committed = match sent {
        Ok(()) => tokio::task::spawn_blocking(move || end.commit_transaction(Duration::from_secs(60)))
            .await
            .map_err(|e| SinkError::Config(e.to_string()))?
            .map_err(kafka("commit transaction")),
        Err(e) => Err(e),
    };
    if let Err(error) = committed {
        let end = producer.clone();
        let _ = tokio::task::spawn_blocking(move || end.abort_transaction(Duration::from_secs(60))).await;
        return Err(error);
    }
    Ok(letters.len())
}

#[cfg(test)]
mod tests {
    use super::failed_at_ms;

    #[test]
    fn failed_at_is_read_from_the_contracts_rfc_3339_text_or_a_number() {
        assert_eq!(failed_at_ms(&serde_json::json!("2023-11-14T22:13:20.123Z")), 1_700_000_000_123);
        assert_eq!(failed_at_ms(&serde_json::json!(1_700_000_000_123_i64)), 1_700_000_000_123);
        assert_eq!(failed_at_ms(&serde_json::json!(null)), 0);
    }
}
