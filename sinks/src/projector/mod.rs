//! The read-model projector: the compacted order-state topic (read_committed) into CQL tables.
//!
//! It reads what is ready (up to [`MAX_BATCH`] records), folds the states by order, writes each
//! order's rows as one single-partition batch (then the order's row of the order-id lookup) with at most [`CONCURRENCY`] writes in flight, and
//! stores the batch's offsets only once every write succeeded. When CQL fails it keeps the batch,
//! reports itself unready and retries with backoff: nothing is skipped, and since every row is
//! written with its state version as timestamp, writing a state twice or late changes nothing.
//!
//! Files: `mod.rs` the runtime, `cql.rs` the session, statements and migration, `rows.rs` the
//! pure state → rows mapping.

pub mod cql;
pub mod rows;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use interchange_core::avro::{Encoder, Reader};
use interchange_core::clock::now_millis;
use interchange_core::contract::UnknownFields;
use interchange_core::kafka::KafkaSettings;
use interchange_core::topology::Sink;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use self::cql::Writer;
use self::rows::Projection;
use crate::env::{encoder, Env};
use crate::error::SinkError;
use crate::health::Health;
use crate::metrics::{lag_gauge, LagGauge, ProjectorMetrics, SinkMetrics};

/// Most records read before their rows are written and their offsets stored.
pub(crate) const MAX_BATCH: usize = 2_000;
/// Most CQL writes in flight.
pub const CONCURRENCY: usize = 64;
/// Longest wait between retries while CQL is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the projector needs while it runs.
struct Projector {
    sink: Sink,
    keyspace: String,
    ttl: Duration,
    nodes: Vec<String>,
    kafka: KafkaSettings,
    group: String,
    /// Reads `order_state` records (core's one reader).
    reader: Reader,
    dead_letter: (String, Encoder),
    producer: FutureProducer,
    metrics: SinkMetrics,
    health: Arc<Health>,
    shutdown: CancellationToken,
}

/// Starts the projector of `sink` into `keyspace`, timeline rows living `timeline_ttl`.
pub(crate) async fn start(
    env: &Env<'_>,
    sink: &Sink,
    keyspace: &str,
    timeline_ttl: Duration,
) -> Result<tokio::task::JoinHandle<Result<(), SinkError>>, SinkError> {
    let topology = env.topology;
    let contract =
        topology.contracts.get("order_state").ok_or_else(|| SinkError::Config("no contract order_state".to_owned()))?;
    let projector = Projector {
        sink: sink.clone(),
        keyspace: keyspace.to_owned(),
        ttl: timeline_ttl,
        nodes: env.services.cql_nodes.clone(),
        kafka: env.services.kafka.clone(),
        group: topology.consumer_group(&sink.name),
        reader: Reader::new(env.registry.clone(), [("order_state".to_owned(), contract.schema.clone())]),
        dead_letter: (
            sink.dead_letter.clone(),
            encoder(topology, env.registry, &sink.dead_letter, "dead_letter").await?,
        ),
        producer: env
            .services
            .kafka
            .producer_config("hub-projector")
            .create()
            .map_err(|source| SinkError::Kafka { operation: "producer", source })?,
        metrics: env.metrics.clone(),
        health: Arc::clone(env.health),
        shutdown: env.shutdown.clone(),
    };
    projector.health.set(&sink.name, Err("connecting to CQL".to_owned()));
    Ok(tokio::spawn(projector.run()))
}

/// Feeds the sinks' consumer-lag gauge (`hub_sink_lag_records`) from librdkafka's statistics.
struct LagContext {
    lag: LagGauge,
}

impl rdkafka::ClientContext for LagContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.lag.update(statistics);
    }
}

impl rdkafka::consumer::ConsumerContext for LagContext {}

/// Waits `backoff` (doubling it up to [`MAX_BACKOFF`]); `false` when shutting down instead.
async fn pause(shutdown: &CancellationToken, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

impl Projector {
    fn m(&self) -> &ProjectorMetrics {
        &self.metrics.projector
    }

    fn down(&self, reason: String) {
        self.health.set(&self.sink.name, Err(reason));
        self.m().cql_down.get_or_create(&SinkMetrics::s(&self.sink.name)).set(1);
    }

    fn up(&self) {
        self.health.set(&self.sink.name, Ok(()));
        self.m().cql_down.get_or_create(&SinkMetrics::s(&self.sink.name)).set(0);
    }

    /// Connects and prepares, retrying with backoff until it works or shutdown.
    async fn writer(&self) -> Option<Writer> {
        let mut backoff = Duration::from_millis(200);
        loop {
            let attempt = async {
                let session = cql::connect(&self.nodes, Duration::from_secs(5)).await?;
                Writer::prepare(Arc::new(session), &self.keyspace, self.ttl).await
            };
            match attempt.await {
                Ok(writer) => return Some(writer),
                Err(error) => {
                    tracing::warn!(%error, sink = %self.sink.name, "CQL not available (is `hub readmodel migrate` done?); retrying");
                    self.down(format!("CQL: {error}"));
                    if !pause(&self.shutdown, &mut backoff).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn run(self) -> Result<(), SinkError> {
        let Some(writer) = self.writer().await else { return Ok(()) };
        // Offsets stored by hand once a batch's rows are written, committed every second.
        let config = self
            .kafka
            .read_committed("hub-projector", &self.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("statistics.interval.ms", "5000")
            // read_committed: a fetch otherwise idles up to 500 ms after each transaction.
            .set("fetch.wait.max.ms", "10");
        let context = LagContext { lag: lag_gauge(self.metrics.lag.clone(), &self.sink.name) };
        let consumer: StreamConsumer<LagContext> =
            config.create_with_context(context).map_err(|source| SinkError::Kafka { operation: "consumer", source })?;
        consumer
            .subscribe(&[self.sink.input.as_str()])
            .map_err(|source| SinkError::Kafka { operation: "subscribe", source })?;
        self.up();
        tracing::info!(sink = %self.sink.name, keyspace = %self.keyspace, "projector running");
        loop {
            let first = tokio::select! {
                () = self.shutdown.cancelled() => break,
                message = consumer.recv() => message,
            };
            let mut batch = Vec::new();
            match first {
                Ok(m) => batch.push(m.detach()),
                Err(error) => {
                    tracing::warn!(%error, sink = %self.sink.name, "projector consumer");
                    continue;
                }
            }
            // Whatever else is already fetched, without waiting.
            while batch.len() < MAX_BATCH {
                match consumer.recv().now_or_never() {
                    Some(Ok(m)) => batch.push(m.detach()),
                    _ => break,
                }
            }
            if !self.project(&writer, &batch).await {
                break;
            }
            let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
            for m in &batch {
                let slot = next.entry((m.topic().to_owned(), m.partition())).or_default();
                *slot = (*slot).max(m.offset() + 1);
            }
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), offset) in next {
                let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(offset));
            }
            // A partition revoked meanwhile is not ours to store; its next owner writes the same rows again.
            let _ = consumer.store_offsets(&tpl);
        }
        if let Err(error) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            tracing::debug!(%error, "final offset commit");
        }
        tracing::info!(sink = %self.sink.name, "projector stopped");
        Ok(())
    }

    /// Decodes and writes a batch; `false` when interrupted by shutdown before it was written.
    async fn project(&self, writer: &Writer, batch: &[OwnedMessage]) -> bool {
        let name = &self.sink.name;
        let mut projections = Vec::with_capacity(batch.len());
        let mut oldest_ms = i64::MAX;
        for message in batch {
            let Some(payload) = message.payload() else {
                // The processor forgot this order's state; the read model keeps the order (and its
                // order-id lookup row) until its TTL.
                self.m().records.get_or_create(&ProjectorMetrics::so(name, "tombstone")).inc();
                continue;
            };
            match self.decode(payload).await {
                Ok(p) => {
                    projections.push(p);
                    oldest_ms = oldest_ms.min(message.timestamp().to_millis().unwrap_or(i64::MAX));
                }
                Err(_) if self.shutdown.is_cancelled() => return false,
                Err(reason) => {
                    self.m().records.get_or_create(&ProjectorMetrics::so(name, "invalid")).inc();
                    tracing::warn!(%reason, sink = %name, offset = message.offset(), "unreadable state record; dead-lettered");
                    self.dead_letter(message, &reason).await;
                }
            }
        }
        if self.shutdown.is_cancelled() {
            return false;
        }
        let records = projections.len();
        let mut pending = rows::merge(projections);
        let mut backoff = Duration::from_millis(100);
        while !pending.is_empty() {
            let now = now_millis();
            let results: Vec<(Projection, Result<Duration, SinkError>)> = futures::stream::iter(pending)
                .map(|p| async move {
                    let result = writer.write(&p, now).await;
                    (p, result)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut failed = Vec::new();
            let mut last_error = None;
            for (p, result) in results {
                match result {
                    Ok(took) => {
                        self.m().writes.get_or_create(&ProjectorMetrics::so(name, "ok")).inc();
                        self.m().write_duration.get_or_create(&SinkMetrics::s(name)).observe(took.as_secs_f64());
                    }
                    Err(error) => {
                        self.m().writes.get_or_create(&ProjectorMetrics::so(name, "error")).inc();
                        last_error = Some(error);
                        failed.push(p);
                    }
                }
            }
            pending = failed;
            if let Some(error) = last_error {
                tracing::warn!(%error, sink = %name, waiting = pending.len(), "CQL write failed; retrying without moving on");
                self.down(format!("CQL writes failing: {error}"));
                if !pause(&self.shutdown, &mut backoff).await {
                    return false;
                }
            } else {
                self.up();
            }
        }
        self.m().records.get_or_create(&ProjectorMetrics::so(name, "projected")).inc_by(records as u64);
        if oldest_ms != i64::MAX {
            let lag = (now_millis() - oldest_ms).max(0);
            #[allow(clippy::cast_precision_loss)]
            self.m().lag.get_or_create(&SinkMetrics::s(name)).observe(lag as f64 / 1000.0);
        }
        true
    }

    /// Reads a state record; waits while the registry is unreachable (a record is dead-lettered
    /// only for what can never be projected).
    async fn decode(&self, payload: &[u8]) -> Result<Projection, String> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.reader.decode_json(payload).await {
                Ok((_, json)) => return rows::project(&json),
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, sink = %self.sink.name, "schema registry; retrying");
                    self.down(format!("schema registry unavailable: {error}"));
                    if !pause(&self.shutdown, &mut backoff).await {
                        return Err("shutting down".to_owned());
                    }
                }
                Err(error) => return Err(error.to_string()),
            }
        }
    }

    /// Dead-letters an unreadable record, retrying until it is written (or shutdown).
    async fn dead_letter(&self, message: &OwnedMessage, reason: &str) {
        let stage = format!("sink:{}", self.sink.name);
        let letter = interchange_core::dead_letter::dead_letter(message, &stage, "PERMANENT", reason, &[]);
        let (topic, encoder) = &self.dead_letter;
        let payload = match encoder.encode_json(&letter.value, UnknownFields::Reject) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "dead letter not encodable");
                return;
            }
        };
        let key = message.key().unwrap_or_default();
        let mut backoff = Duration::from_millis(200);
        loop {
            let record = FutureRecord::to(topic).key(key).payload(&payload).headers(letter.headers.clone());
            match self.producer.send(record, Duration::from_secs(30)).await {
                Ok(_) => return,
                Err((error, _)) => {
                    tracing::warn!(%error, "could not write a dead letter; retrying");
                    if !pause(&self.shutdown, &mut backoff).await {
                        return;
                    }
                }
            }
        }
    }
}
