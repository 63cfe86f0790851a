//! The HTTP sink runtime: consume commands (read_committed), deliver each through its partner's
//! stack in order per correlation id, write a delivery result (and a dead letter when it fails),
//! and store an offset only when everything before it in the partition is finished.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use interchange_core::avro::Encoder;
use interchange_core::avro::Reader;
use interchange_core::contract::{json_to_avro, UnknownFields};
use interchange_core::headers::value as header;
use interchange_core::kafka::KafkaSettings;
use interchange_core::registry::Registry;
use interchange_core::topology::{Sink, Topology};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::breaker::BreakerConfig;
use self::partner::{Delivery, Outcome, PartnerClient, Request};
use crate::metrics::SinkMetrics;
use crate::ordering::{KeyedQueue, Offsets};
use crate::{Env, SinkError};

pub mod breaker;
pub mod oauth;
pub mod partner;
pub mod request;
pub mod retry;

/// Most records read but not finished before the sink stops reading.
const MAX_IN_FLIGHT: usize = 10_000;

/// One command read from the topic, waiting for its turn or being delivered.
#[derive(Debug)]
struct Job {
    partition: i32,
    offset: i64,
    key: String,
    message: OwnedMessage,
    contract: String,
    command: Value,
}

/// What a sink needs while it runs.
struct Context {
    sink: Sink,
    partner: PartnerClient,
    commands: Vec<String>,
    /// Reads the commands this sink delivers (core's one reader).
    reader: Reader,
    results: Option<(String, Encoder)>,
    dead_letter: (String, Encoder),
    producer: FutureProducer,
    metrics: SinkMetrics,
    health: Arc<crate::health::Health>,
    /// The consumer group (for span attributes).
    group: String,
    shutdown: CancellationToken,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(0)).unwrap_or(0)
}

impl Context {
    fn request(&self, job: &Job) -> Result<Request, String> {
        let outbound = self.partner.outbound().ok_or("the partner has no outbound settings")?;
        request::build(outbound, &job.contract, &job.command)
    }

    async fn send(&self, topic: &str, key: &str, payload: &[u8], headers: OwnedHeaders) -> Result<(), SinkError> {
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(headers);
        self.producer
            .send(record, Duration::from_secs(60))
            .await
            .map(|_| ())
            .map_err(|(source, _)| SinkError::Kafka { operation: "produce", source })
    }

    /// Writes the result (and the dead letter when it failed); retried until it lands, since
    /// the offset is stored only after.
    async fn report(&self, job: &Job, delivery: &Delivery, traceparent: Option<&str>) -> Result<(), SinkError> {
        let command_id = job.command["command_id"].as_str().unwrap_or_default();
        let outcome = match delivery.outcome {
            Outcome::Delivered => "DELIVERED",
            Outcome::Refused => "REFUSED",
            Outcome::Expired => "EXPIRED",
            _ => "EXHAUSTED",
        };
        let event_id =
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{command_id}/result").as_bytes()).to_string();
        if let Some((topic, encoder)) = &self.results {
            let result = json!({
                "event_id": event_id, "command_id": command_id, "correlation_id": job.key,
                "partner": self.partner.name, "command_type": job.contract, "outcome": outcome,
                "http_status": delivery.status, "partner_reference": delivery.partner_reference,
                "attempts": delivery.attempts, "detail": delivery.detail, "completed_at": now_ms(),
            });
            let value = json_to_avro(encoder.schema(), &result, UnknownFields::Reject)
                .map_err(|v| SinkError::Config(format!("result: {v:?}")))?;
            let payload = encoder.encode(value).map_err(SinkError::Config)?;
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: "correlation-id", value: Some(job.key.as_str()) })
                .insert(Header { key: "event-id", value: Some(event_id.as_str()) })
                .insert(Header { key: "event-type", value: Some("delivery_result") })
                .insert(Header { key: "producer-role", value: Some("sink") });
            if let Some(tp) = traceparent {
                headers = headers.insert(Header { key: interchange_core::headers::TRACEPARENT, value: Some(tp) });
            }
            self.send(topic, &job.key, &payload, headers).await?;
        }
        // An expired command is no failure to replay: the saga compensates it (and a replay
        // would expire again).
        if !matches!(delivery.outcome, Outcome::Delivered | Outcome::Expired) {
            let class = if delivery.outcome == Outcome::Refused { "PERMANENT" } else { "EXHAUSTED" };
            self.metrics.dead_letters.get_or_create(&SinkMetrics::po(&self.partner.name, class)).inc();
            let reason = format!(
                "{} {} after {} attempt(s): {}",
                self.partner.name,
                outcome,
                delivery.attempts,
                delivery.detail.clone().unwrap_or_default()
            );
            self.dead_letter(job, class, &reason).await?;
        }
        Ok(())
    }

    async fn dead_letter(&self, job: &Job, class: &str, reason: &str) -> Result<(), SinkError> {
        let stage = format!("sink:{}", self.sink.name);
        let letter = interchange_core::dead_letter::dead_letter(
            &job.message,
            &stage,
            class,
            reason,
            &[("hub-partner", self.partner.name.as_str())],
        );
        let (topic, encoder) = &self.dead_letter;
        let avro = json_to_avro(encoder.schema(), &letter.value, UnknownFields::Reject)
            .map_err(|v| SinkError::Config(format!("dead letter: {v:?}")))?;
        let payload = encoder.encode(avro).map_err(SinkError::Config)?;
        self.send(topic, &job.key, &payload, letter.headers).await
    }

    /// Delivers one job and reports it, in the consumer span of the record (a child of the
    /// processor's); `false` when interrupted (not finished).
    async fn run_job(&self, job: &Job) -> bool {
        let incoming = header(&job.message, interchange_core::headers::TRACEPARENT);
        let span = tracing::info_span!(
            "deliver",
            otel.name = %format!("process {}", job.message.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = %job.message.topic(),
            messaging.destination.partition.id = job.partition,
            messaging.kafka.offset = job.offset,
            messaging.consumer.group.name = %self.group,
            partner = %self.partner.name,
            correlation_id = %job.key,
            trace_id = incoming.as_deref().map_or("", interchange_core::telemetry::trace_id),
        );
        interchange_core::telemetry::parent(&span, incoming.as_deref(), header(&job.message, "tracestate").as_deref());
        let traceparent = interchange_core::telemetry::traceparent(&span).or(incoming);
        tracing::Instrument::instrument(self.deliver_and_report(job, traceparent), span).await
    }

    async fn deliver_and_report(&self, job: &Job, traceparent: Option<String>) -> bool {
        let delivery = match self.request(job) {
            Ok(mut request) => {
                request.traceparent.clone_from(&traceparent);
                self.partner.deliver(&request, &self.shutdown).await
            }
            Err(reason) => Delivery {
                outcome: Outcome::Refused,
                attempts: 0,
                status: None,
                partner_reference: None,
                detail: Some(reason),
            },
        };
        if delivery.outcome == Outcome::Interrupted {
            return false;
        }
        loop {
            match self.report(job, &delivery, traceparent.as_deref()).await {
                Ok(()) => {
                    let outcome = match delivery.outcome {
                        Outcome::Delivered => "delivered",
                        Outcome::Refused if delivery.attempts == 0 => "invalid",
                        Outcome::Refused => "refused",
                        Outcome::Expired => "expired",
                        _ => "exhausted",
                    };
                    self.metrics.deliveries.get_or_create(&SinkMetrics::po(&self.partner.name, outcome)).inc();
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, sink = %self.sink.name, "could not write the delivery result; retrying");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return false,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}

pub(crate) async fn encoder(
    topology: &Topology,
    registry: &Registry,
    topic: &str,
    contract: &str,
) -> Result<Encoder, SinkError> {
    let t = topology
        .topics
        .iter()
        .find(|t| t.name == topic)
        .ok_or_else(|| SinkError::Config(format!("no topic {topic}")))?;
    let c = topology.contracts.get(contract).ok_or_else(|| SinkError::Config(format!("no contract {contract}")))?;
    let id = registry.registered_id(&t.subject(c), &c.text).await?;
    Encoder::new(c.schema.clone(), id).map_err(SinkError::Config)
}

/// Starts one HTTP sink: it runs until `env.shutdown`.
pub async fn start(
    env: &Env<'_>,
    sink: &Sink,
    partner: &str,
    commands: &[String],
) -> Result<tokio::task::JoinHandle<Result<(), SinkError>>, SinkError> {
    let topology = env.topology;
    let partner = topology.partner(partner).ok_or_else(|| SinkError::Config(format!("no partner {partner}")))?;
    let breaker = partner.outbound.as_ref().map(|o| BreakerConfig::from(o.breaker)).unwrap_or_default();
    let client = PartnerClient::new(partner, breaker)
        .map_err(|e| SinkError::Config(e.to_string()))?
        .with_metrics(env.metrics.clone());
    let results = match &sink.results {
        Some(topic) => Some((topic.clone(), encoder(topology, env.registry, topic, "delivery_result").await?)),
        None => None,
    };
    let context = Context {
        sink: sink.clone(),
        partner: client,
        commands: commands.to_vec(),
        reader: Reader::new(
            env.registry.clone(),
            commands.iter().filter_map(|c| topology.contracts.get(c).map(|k| (c.clone(), k.schema.clone()))),
        ),
        results,
        dead_letter: (
            sink.dead_letter.clone(),
            encoder(topology, env.registry, &sink.dead_letter, "dead_letter").await?,
        ),
        producer: env
            .services
            .kafka
            .producer_config("hub-sink")
            .create()
            .map_err(|source| SinkError::Kafka { operation: "producer", source })?,
        metrics: env.metrics.clone(),
        health: Arc::clone(env.health),
        group: format!("{}{}", topology.topic_prefix, sink.name),
        // Deliveries are cut off only when the drain deadline passes after `env.shutdown`.
        shutdown: CancellationToken::new(),
    };
    let group = format!("{}{}", topology.topic_prefix, sink.name);
    let partitions = topology.topics.iter().find(|t| t.name == sink.input).map_or(1, |t| t.partitions);
    let group = Group { name: group, partitions, config: env.config.clone(), stop: env.shutdown.clone() };
    Ok(tokio::spawn(consume(Arc::new(context), env.services.kafka.clone(), group)))
}

/// The consumer's view of the group: whether it was assigned partitions yet (possibly none), and
/// the offsets in flight, forgotten for a partition the moment it is revoked (inside the
/// rebalance callback, so no later finish can store an offset for records another member reads).
#[derive(Default)]
struct GroupContext {
    joined: std::sync::atomic::AtomicBool,
    offsets: std::sync::Mutex<Offsets>,
    /// This sink's rows of the lag gauge.
    lag: Option<crate::metrics::LagGauge>,
}

impl GroupContext {
    fn in_flight(&self) -> usize {
        self.offsets.lock().map_or(0, |o| o.in_flight())
    }
}

impl rdkafka::ClientContext for GroupContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(lag) = &self.lag {
            lag.update(statistics);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Revoke(partitions) = rebalance {
            if let Ok(mut offsets) = self.offsets.lock() {
                for p in partitions.elements() {
                    offsets.revoke(p.partition());
                }
            }
        }
    }

    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if matches!(rebalance, rdkafka::consumer::Rebalance::Assign(_)) {
            self.joined.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// The consumer group a sink runs in and how it stops.
struct Group {
    name: String,
    partitions: i32,
    config: crate::SinkConfig,
    /// Stop reading and drain.
    stop: CancellationToken,
}

async fn consume(ctx: Arc<Context>, kafka: KafkaSettings, group: Group) -> Result<(), SinkError> {
    let partitions = group.partitions;
    let session = group.config.sink_session_timeout.as_millis();
    let mut config = kafka.client_config("hub-sink");
    config
        .set("group.id", &group.name)
        .set("session.timeout.ms", session.to_string())
        .set("heartbeat.interval.ms", (session / 5).max(100).to_string())
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        // Deliveries run at HTTP speed: prefetching librdkafka's defaults (100,000 records per
        // partition, 64 MiB) buys nothing and held 0.5 GiB with a backlog of a million.
        .set("queued.min.messages", "1000")
        .set("queued.max.messages.kbytes", "16384")
        .set("statistics.interval.ms", "5000")
        // A read_committed fetch otherwise waits up to 500 ms when nothing committed is there.
        .set("fetch.wait.max.ms", "10");
    let context = GroupContext {
        lag: Some(crate::metrics::lag_gauge(ctx.metrics.lag.clone(), &ctx.sink.name)),
        ..GroupContext::default()
    };
    let consumer: StreamConsumer<GroupContext> =
        config.create_with_context(context).map_err(|source| SinkError::Kafka { operation: "consumer", source })?;
    consumer
        .subscribe(&[ctx.sink.input.as_str()])
        .map_err(|source| SinkError::Kafka { operation: "subscribe", source })?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Job, bool)>();
    let mut queue: KeyedQueue<Job> = KeyedQueue::default();
    let mut share_check = tokio::time::interval(Duration::from_secs(1));
    let mut last_owned = usize::MAX;
    // Jobs whose turn has come wait here until the partner's concurrency has room: a task per
    // waiting job would hold a whole delivery's state (kilobytes) for each of thousands.
    let mut ready: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    let max_running = ctx.partner.concurrency();
    let mut running = 0_usize;
    let mut draining = false;
    loop {
        while !draining && running < max_running {
            let Some(job) = ready.pop_front() else { break };
            running += 1;
            let (tx, ctx) = (done_tx.clone(), Arc::clone(&ctx));
            tokio::spawn(async move {
                let finished = ctx.run_job(&job).await;
                let _ = tx.send((job, finished));
            });
        }
        if draining && running == 0 {
            break;
        }
        tokio::select! {
            () = group.stop.cancelled(), if !draining => {
                // Unready first (the health endpoint sees the token), then let deliveries in
                // flight finish until the drain deadline; queued ones wait for the next owner.
                draining = true;
                tracing::info!(sink = %ctx.sink.name, running, "draining deliveries in flight");
                let (hard, wait) = (ctx.shutdown.clone(), group.config.sink_drain_timeout);
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    hard.cancel();
                });
            }
            _ = share_check.tick() => {
                let owned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
                if owned != last_owned {
                    tracing::info!(sink = %ctx.sink.name, owned, partitions, "partner rate share follows the assignment");
                    last_owned = owned;
                }
                ctx.partner.set_share(owned, usize::try_from(partitions).unwrap_or(1));
                let label = SinkMetrics::s(&ctx.sink.name);
                ctx.metrics.assigned.get_or_create(&label).set(i64::try_from(owned).unwrap_or(0));
                ctx.metrics.in_flight.get_or_create(&label).set(i64::try_from(consumer.context().in_flight()).unwrap_or(0));
                // A member of a group with more members than partitions owns none and is still ready.
                let joined = consumer.context().joined.load(std::sync::atomic::Ordering::Acquire);
                ctx.health.set(&ctx.sink.name, if joined { Ok(()) } else { Err("waiting for the group's assignment".to_owned()) });
            }
            Some((job, finished)) = done_rx.recv() => {
                if ctx.commands.contains(&job.contract) && !job.command.is_null() {
                    running = running.saturating_sub(1);
                }
                if !finished {
                    continue;
                }
                let next = consumer.context().offsets.lock().ok().and_then(|mut o| o.finish(job.partition, job.offset));
                if let Some(next) = next {
                    let mut tpl = TopicPartitionList::new();
                    if tpl.add_partition_offset(job.message.topic(), job.partition, Offset::Offset(next)).is_ok() {
                        let _ = consumer.store_offsets(&tpl);
                    }
                }
                if let Some(next) = queue.done(&job.key) {
                    ready.push_back(next);
                }
            }
            message = consumer.recv(), if !draining && consumer.context().in_flight() < MAX_IN_FLIGHT => {
                let message = match message {
                    Ok(m) => m.detach(),
                    Err(error) => {
                        tracing::warn!(%error, "sink consumer");
                        continue;
                    }
                };
                let (partition, offset) = (message.partition(), message.offset());
                if let Ok(mut o) = consumer.context().offsets.lock() {
                    o.start(partition, offset);
                }
                let kind = header(&message, "event-type").unwrap_or_default();
                let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                if !ctx.commands.contains(&kind) {
                    let _ = done_tx.send((Job { partition, offset, key, message, contract: kind, command: Value::Null }, true));
                    continue;
                }
                let decoded = match message.payload() {
                    Some(payload) => loop {
                        match ctx.reader.decode(payload).await {
                            Ok(d) if d.contract == kind => break Ok(ctx.reader.to_json(&d)),
                            Ok(d) => break Err(format!("event-type {kind:?} but the record is a {}", d.contract)),
                            // The registry is unreachable: wait for it rather than dead-letter.
                            Err(error) if error.is_transient() && !group.stop.is_cancelled() => {
                                tracing::warn!(%error, sink = %ctx.sink.name, "schema registry; retrying");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            Err(error) => break Err(error.to_string()),
                        }
                    },
                    None => Err("a record without a value".to_owned()),
                };
                let command = match decoded {
                    Ok(command) => command,
                    Err(reason) => {
                        let job = Job { partition, offset, key, message, contract: kind, command: Value::Null };
                        let ctx2 = Arc::clone(&ctx);
                        let tx = done_tx.clone();
                        tokio::spawn(async move {
                            let reason = format!("not a readable command: {reason}");
                            let ok = ctx2.dead_letter(&job, "PERMANENT", &reason).await.is_ok();
                            let _ = tx.send((job, ok));
                        });
                        continue;
                    }
                };
                let job = Job { partition, offset, key: key.clone(), message, contract: kind, command };
                if let Some(job) = queue.push(&key, job) {
                    ready.push_back(job);
                }
            }
        }
    }
    // Commit what was stored before leaving the group, so the next owner starts right after it.
    if let Err(error) =
        tokio::task::block_in_place(|| consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync))
    {
        tracing::debug!(%error, sink = %ctx.sink.name, "final commit (nothing stored is fine)");
    }
    tracing::info!(sink = %ctx.sink.name, "sink stopped");
    Ok(())
}
