//! Avro in Confluent wire format and the durable produce: `202` only after the broker's ack.

use std::sync::Arc;
use std::time::Duration;

use interchange_core::headers::EventHeaders;
use interchange_core::kafka::KafkaSettings;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::error::IngestError;

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Landed {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

pub use interchange_core::avro::wire_format;

/// The edge's producer: acks=all, idempotent, murmur2 like the Java client, batched and compressed.
#[derive(Clone)]
pub(crate) struct Produce {
    producer: Arc<FutureProducer>,
}

impl std::fmt::Debug for Produce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Produce").finish_non_exhaustive()
    }
}

impl Produce {
    /// A producer whose records fail (and the request gets 503) when not acknowledged within
    /// `delivery_timeout`.
    pub(crate) fn new(settings: &KafkaSettings, delivery_timeout: Duration) -> Result<Self, IngestError> {
        let mut config = settings.producer_config("hub-ingest");
        config
            .set("message.timeout.ms", delivery_timeout.as_millis().to_string())
            .set("queue.buffering.max.messages", "200000")
            .set("batch.num.messages", "10000");
        // Properties passed by the operator win over the edge's defaults.
        for (key, value) in &settings.properties {
            config.set(key, value);
        }
        let producer: FutureProducer =
            config.create().map_err(|e| IngestError::Produce { topic: String::new(), source: e })?;
        Ok(Self { producer: Arc::new(producer) })
    }

    /// Enqueues the record and waits for the broker's acknowledgement. A full local queue fails
    /// at once instead of waiting.
    pub(crate) async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &EventHeaders,
    ) -> Result<Landed, IngestError> {
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(headers.to_kafka());
        match self.producer.send(record, Timeout::After(Duration::ZERO)).await {
            Ok(delivery) => Ok(Landed { partition: delivery.partition, offset: delivery.offset }),
            Err((source, _)) => Err(IngestError::Produce { topic: topic.to_owned(), source }),
        }
    }

    /// Waits for every queued record to be acknowledged, off the async workers.
    pub(crate) async fn flush(&self, deadline: Duration) -> Result<(), IngestError> {
        let producer = Arc::clone(&self.producer);
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(deadline)))
            .await
            .map_err(|e| IngestError::Internal(e.to_string()))?
            .map_err(|source: KafkaError| IngestError::Produce { topic: String::new(), source })
    }

    /// Whether broker metadata can be fetched right now (readiness), off the async workers.
    pub(crate) async fn broker_reachable(&self, timeout: Duration) -> bool {
        let producer = Arc::clone(&self.producer);
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, Timeout::After(timeout)).is_ok())
            .await
            .unwrap_or(false)
    }
}
