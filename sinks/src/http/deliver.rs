//! One HTTP sink's delivery of a command: through the stack of the partner it names, then its
//! delivery result (and a dead letter when it failed) written before its offset may be stored.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use interchange_core::avro::{Encoder, Reader};
use interchange_core::clock::now_millis;
use interchange_core::contract::UnknownFields;
use interchange_core::headers::{EventHeaders, Received};
use interchange_core::topology::Sink;
use rdkafka::message::{OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::breaker::BreakerConfig;
use super::partner::{Delivery, Outcome, PartnerClient, Request};
use super::{request, route};
use crate::env::{encoder, Env};
use crate::error::SinkError;
use crate::health::Health;
use crate::metrics::SinkMetrics;

/// One command read from the topic, waiting for its turn or being delivered.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: String,
    pub(super) message: OwnedMessage,
    pub(super) contract: String,
    pub(super) command: Value,
    /// The partner delivered to (index into `Context::partners`, the job's lane in the flow).
    pub(super) lane: usize,
    /// Written after this instance got its partition: no earlier owner can have attempted it.
    /// Only such a command may be skipped as expired (an earlier owner may have delivered any
    /// other and died before reporting it: it is delivered again under its key, and a late
    /// success is cancelled by the saga).
    pub(super) fresh: bool,
}

/// What a sink needs while it runs.
pub(super) struct Context {
    pub(super) sink: Sink,
    /// One delivery stack per partner served (its endpoint, auth, secret, limits, breaker).
    pub(super) partners: Vec<PartnerClient>,
    pub(super) commands: Vec<String>,
    /// (contract, partner) pairs that other sinks of the topology deliver from the same topic.
    pub(super) elsewhere: BTreeSet<(String, String)>,
    /// Reads the commands this sink delivers (core's one reader).
    pub(super) reader: Reader,
    results: Option<(String, Encoder)>,
    dead_letter: (String, Encoder),
    producer: FutureProducer,
    pub(super) metrics: SinkMetrics,
    pub(super) health: Arc<Health>,
    /// The consumer group (for span attributes).
    group: String,
    /// Cuts deliveries off: only when the drain deadline passes after the sink's shutdown.
    pub(super) shutdown: CancellationToken,
}

impl Context {
    /// The context of HTTP sink `sink` serving `partners` with `commands`, in consumer group `group`.
    pub(super) async fn build(
        env: &Env<'_>,
        sink: &Sink,
        partners: &[String],
        commands: &[String],
        group: String,
    ) -> Result<Self, SinkError> {
        let topology = env.topology;
        let mut clients = Vec::new();
        for name in partners {
            let partner = topology.partner(name).ok_or_else(|| SinkError::Config(format!("no partner {name}")))?;
            let breaker = partner.outbound.as_ref().map(|o| BreakerConfig::from(o.breaker)).unwrap_or_default();
            let client = PartnerClient::new(partner, breaker)
                .map_err(|e| SinkError::Config(e.to_string()))?
                .with_metrics(env.metrics.clone());
            clients.push(client);
        }
        let results = match &sink.results {
            Some(topic) => Some((topic.clone(), encoder(topology, env.registry, topic, "delivery_result").await?)),
            None => None,
        };
        Ok(Self {
            sink: sink.clone(),
            partners: clients,
            commands: commands.to_vec(),
            elsewhere: route::elsewhere(topology, sink),
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
            group,
            // Deliveries are cut off only when the drain deadline passes after `env.shutdown`.
            shutdown: CancellationToken::new(),
        })
    }

    /// The partner `job` goes to.
    fn partner(&self, job: &Job) -> Option<&PartnerClient> {
        self.partners.get(job.lane)
    }

    fn partner_name<'a>(&'a self, job: &'a Job) -> &'a str {
        self.partner(job).map_or_else(|| job.command["partner"].as_str().unwrap_or_default(), |p| p.name.as_str())
    }

    fn request(&self, job: &Job) -> Result<Request, String> {
        let partner = self.partner(job).ok_or("no delivery stack for the command's partner")?;
        let outbound = partner.outbound().ok_or("the partner has no outbound settings")?;
        request::build(outbound, &job.contract, &job.command)
    }

    /// Sets every partner's rate share to `owned / total` partitions of the input.
    pub(super) fn set_share(&self, owned: usize, total: usize) {
        for partner in &self.partners {
            partner.set_share(owned, total);
        }
    }

    /// Deliveries at once to the partner of `lane`.
    pub(super) fn concurrency(&self, lane: usize) -> usize {
        self.partners.get(lane).map_or(1, PartnerClient::concurrency)
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
        let partner = self.partner_name(job);
        if let Some((topic, encoder)) = &self.results {
            let result = json!({
                "event_id": event_id, "command_id": command_id, "correlation_id": job.key,
                "partner": partner, "command_type": job.contract, "outcome": outcome,
                "http_status": delivery.status, "partner_reference": delivery.partner_reference,
                "attempts": delivery.attempts, "detail": delivery.detail, "completed_at": now_millis(),
            });
            let payload = encoder
                .encode_json(&result, UnknownFields::Reject)
                .map_err(|e| SinkError::Config(format!("result: {e}")))?;
            let headers = EventHeaders::new(&job.key, &event_id, "delivery_result", "sink")
                .traced(traceparent.map(str::to_owned), None)
                .to_kafka();
            self.send(topic, &job.key, &payload, headers).await?;
        }
        // An expired command is no failure to replay: the saga compensates it (and a replay
        // would expire again).
        if !matches!(delivery.outcome, Outcome::Delivered | Outcome::Expired) {
            let class = if delivery.outcome == Outcome::Refused { "PERMANENT" } else { "EXHAUSTED" };
            self.metrics.dead_letters.get_or_create(&SinkMetrics::po(partner, class)).inc();
            let reason = format!(
                "{} {} after {} attempt(s): {}",
                partner,
                outcome,
                delivery.attempts,
                delivery.detail.clone().unwrap_or_default()
            );
            self.dead_letter(job, partner, class, &reason).await?;
        }
        Ok(())
    }

    /// Writes `job`'s record to the dead-letter topic, naming `partner` (the partner it was for).
    pub(super) async fn dead_letter(
        &self,
        job: &Job,
        partner: &str,
        class: &str,
        reason: &str,
    ) -> Result<(), SinkError> {
        let stage = format!("sink:{}", self.sink.name);
        let letter = interchange_core::dead_letter::dead_letter(
            &job.message,
            &stage,
            class,
            reason,
            &[("hub-partner", partner)],
        );
        let (topic, encoder) = &self.dead_letter;
        let payload = encoder
            .encode_json(&letter.value, UnknownFields::Reject)
            .map_err(|e| SinkError::Config(format!("dead letter: {e}")))?;
        self.send(topic, &job.key, &payload, letter.headers).await
    }

    /// Delivers one job and reports it, in the consumer span of the record (a child of the
    /// processor's); `false` when interrupted by `stop` (not finished): the drain deadline or
    /// the revocation of its partition, at a safe point (never in the middle of a request).
    pub(super) async fn run_job(&self, job: &Job, stop: &CancellationToken) -> bool {
        let Received { traceparent: incoming, tracestate, .. } = Received::of(&job.message);
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
            partner = %self.partner_name(job),
            correlation_id = %job.key,
            trace_id = incoming.as_deref().map_or("", interchange_core::telemetry::trace_id),
        );
        interchange_core::telemetry::parent(&span, incoming.as_deref(), tracestate.as_deref());
        let traceparent = interchange_core::telemetry::traceparent(&span).or(incoming);
        tracing::Instrument::instrument(self.deliver_and_report(job, traceparent, stop), span).await
    }

    async fn deliver_and_report(&self, job: &Job, traceparent: Option<String>, stop: &CancellationToken) -> bool {
        let routed = self.request(job).and_then(|request| {
            self.partner(job).map(|partner| (request, partner)).ok_or_else(|| "no partner".to_owned())
        });
        let delivery = match routed {
            Ok((mut request, partner)) => {
                request.traceparent.clone_from(&traceparent);
                if !job.fresh {
                    request.deadline = None;
                }
                partner.deliver(&request, stop).await
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
                    self.metrics.deliveries.get_or_create(&SinkMetrics::po(self.partner_name(job), outcome)).inc();
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, sink = %self.sink.name, "could not write the delivery result; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return false,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}
