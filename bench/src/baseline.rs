//! The two ceilings the edge is measured against: an HTTP server that only parses the JSON body,
//! and a plain producer writing the edge's record (same settings, payload and headers) to Kafka.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use interchange_core::headers::EventHeaders;
use interchange_core::kafka::KafkaSettings;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::stats::{Outcome, Recorder};

/// An in-process HTTP server on loopback whose route parses the body into a `serde_json::Value`,
/// drops it and answers `202` with a small JSON body: the most any JSON webhook edge could do.
#[derive(Debug)]
pub struct HttpCeiling {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

async fn parse_and_discard(body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(value) => {
            drop(std::hint::black_box(value));
            (StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

impl HttpCeiling {
    /// Serves `POST path` on 127.0.0.1 (a free port).
    pub async fn start(path: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the HTTP baseline")?;
        let addr = listener.local_addr()?;
        let router = Router::new().route(path, post(parse_and_discard));
        let stop = CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move { axum::serve(listener, router).with_graceful_shutdown(signal).await });
        Ok(Self { addr, stop, task })
    }

    /// Stops serving and waits (briefly) for the server task.
    pub async fn stop(self) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// What the Kafka baseline writes: one record's payload and its contract name (`event-type`).
#[derive(Debug, Clone)]
pub struct KafkaLoad {
    pub topic: String,
    pub payload: Arc<[u8]>,
    pub event_type: String,
}

/// A producer configured exactly as the edge's (`interchange_ingest::produce::Produce`):
/// acks=all, idempotent, murmur2, lz4, linger 5 ms, the same queue and batch sizes, and the
/// operator's librdkafka properties last.
pub fn producer(kafka: &KafkaSettings, delivery_timeout: Duration) -> anyhow::Result<FutureProducer> {
    let mut config = kafka.producer_config("hub-bench-baseline");
    config
        .set("message.timeout.ms", delivery_timeout.as_millis().to_string())
        .set("queue.buffering.max.messages", "200000")
        .set("batch.num.messages", "10000");
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config.create().context("the baseline producer")
}

/// `in_flight` workers each send one record and wait for its ack, until `duration` is over;
/// every record keyed by a new UUIDv7 correlation id, with the edge's headers.
pub async fn produce_loop(
    producer: &Arc<FutureProducer>,
    load: &KafkaLoad,
    in_flight: usize,
    duration: Duration,
) -> anyhow::Result<(Recorder, Duration)> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let producer = Arc::clone(producer);
        let load = load.clone();
        workers.spawn(async move {
            let mut recorder = Recorder::new()?;
            let traceparent = format!("00-{}-{}-01", uuid::Uuid::new_v4().simple(), "00f067aa0ba902b7");
            while Instant::now() < deadline {
                let key = uuid::Uuid::now_v7().to_string();
                let headers = EventHeaders {
                    correlation_id: key.clone(),
                    event_id: uuid::Uuid::new_v4().to_string(),
                    event_type: load.event_type.clone(),
                    traceparent: Some(traceparent.clone()),
                    tracestate: None,
                    producer_role: "bench".to_owned(),
                };
                let record =
                    FutureRecord::to(&load.topic).key(&key).payload(&load.payload[..]).headers(headers.to_kafka());
                let sent = Instant::now();
                let outcome = match producer.send(record, Timeout::After(Duration::ZERO)).await {
                    Ok(_) => Outcome::Accepted,
                    Err((error, _)) => Outcome::Failed(format!("produce: {error}")),
                };
                recorder.record(outcome, sent.elapsed());
            }
            anyhow::Ok(recorder)
        });
    }
    let mut total = Recorder::new()?;
    while let Some(result) = workers.join_next().await {
        total.merge(&result??)?;
    }
    Ok((total, start.elapsed()))
}

/// Waits for anything still queued, off the async workers.
pub async fn flush(producer: Arc<FutureProducer>, deadline: Duration) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || producer.flush(Timeout::After(deadline)))
        .await
        .context("flush task")?
        .context("flushing the baseline producer")
}
