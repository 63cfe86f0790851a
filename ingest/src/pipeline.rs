//! One event through the edge after authentication: contract, idempotency, encode, produce.

use std::collections::HashMap;
use std::time::Instant;

use axum::http::StatusCode;
use interchange_core::clock::now_millis;
use interchange_core::headers::EventHeaders;
use serde_json::{json, Value};

use crate::contract::{UnknownFields, Violation};
use crate::envelope::TraceContext;
use crate::error::IngestError;
use crate::idempotency::{fingerprint, Reservation, StoredResponse};
use crate::metrics::{OperationLabels, OutcomeLabels};
use crate::problem::Problem;
use crate::produce::Landed;
use crate::state::{Intake, RouteSpec, ORDER_CONTRACT, RETRY_AFTER_UNAVAILABLE};
use interchange_core::avro::EncodeError;

/// The `producer-role` header of the edge's records.
const PRODUCER_ROLE: &str = "ingest";

/// Fields of a contract the edge fills in itself; a body may not set them.
pub(crate) const ENVELOPE_FIELDS: [&str; 4] = ["event_id", "correlation_id", "partner", "received_at"];

/// One event to accept, as it came in.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) partner: String,
    pub(crate) correlation_id: String,
    pub(crate) trace: TraceContext,
    pub(crate) idempotency_key: Option<String>,
    /// Exact bytes the idempotency fingerprint covers.
    pub(crate) raw: Vec<u8>,
    pub(crate) data: Value,
}

/// How an accepted event is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) response: StoredResponse,
    pub(crate) replayed: bool,
}

/// Checks an Idempotency-Key's shape.
pub(crate) fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 255 && key.chars().all(|c| c.is_ascii_graphic())
}

/// Validated, encoded and ready to produce.
struct Encoded {
    event_id: String,
    payload: Vec<u8>,
}

fn encode(route: &RouteSpec, incoming: &mut Incoming, unknown: UnknownFields) -> Result<Encoded, Problem> {
    let Value::Object(mut object) = std::mem::take(&mut incoming.data) else {
        return Err(Problem::contract(vec![Violation {
            pointer: String::new(),
            expected: "a JSON object".to_owned(),
            detail: "the body must be a JSON object".to_owned(),
        }]));
    };
    let mut violations = Vec::new();
    // Derived from the Idempotency-Key when there is one: a retry is the same event.
    let event_id =
        crate::identity::event(&incoming.partner, &route.path, incoming.idempotency_key.as_deref(), &incoming.raw);
    for field in ENVELOPE_FIELDS {
        if object.contains_key(field) {
            violations.push(Violation {
                pointer: format!("/{field}"),
                expected: "absent".to_owned(),
                detail: "set by the edge (send the correlation id as X-Correlation-Id)".to_owned(),
            });
        }
        if route.fields.iter().any(|f| f == field) {
            let value = match field {
                "event_id" => json!(event_id),
                "correlation_id" => json!(incoming.correlation_id),
                "partner" => json!(incoming.partner),
                _ => json!(now_millis()),
            };
            object.insert(field.to_owned(), value);
        }
    }
    let body = Value::Object(object);
    let payload = match route.encoder.encode_json(&body, unknown) {
        Ok(payload) => payload,
        Err(EncodeError::Contract(more)) => {
            violations.extend(more);
            return Err(Problem::contract(violations));
        }
        Err(EncodeError::Write(e)) => {
            return Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "encoding-failed", e));
        }
    };
    violations.extend(crate::amounts::violations(&route.contract, &body));
    if !violations.is_empty() {
        return Err(Problem::contract(violations));
    }
    Ok(Encoded { event_id, payload })
}

/// Runs events through reservation and produce. All sends are enqueued in input order before
/// any is awaited, so events with the same correlation id keep their order on the partition.
pub(crate) async fn accept_all(
    intake: &Intake,
    route: &RouteSpec,
    events: Vec<Incoming>,
) -> Vec<Result<Answer, Problem>> {
    let partner = events.first().map(|e| e.partner.clone()).unwrap_or_default();
    let mut staged: Vec<Staged> = Vec::new();
    // Repeats of an Idempotency-Key inside one batch answer like their first occurrence.
    let mut keys_seen: HashMap<String, (usize, String)> = HashMap::new();
    for mut incoming in events {
        if let Some(key) = &incoming.idempotency_key {
            let print = fingerprint(&route.path, &incoming.raw);
            match keys_seen.get(key) {
                Some((first, seen)) if *seen == print => {
                    staged.push(Staged::SameAs(*first));
                    continue;
                }
                Some(_) => {
                    staged.push(Staged::Done(Err(Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency-key-reused",
                        "this Idempotency-Key was used with a different body",
                    )
                    .correlated(&incoming.correlation_id))));
                    continue;
                }
                None => {
                    keys_seen.insert(key.clone(), (staged.len(), print));
                }
            }
        }
        let encoded = match encode(route, &mut incoming, intake.unknown_fields) {
            Ok(encoded) => encoded,
            Err(problem) => {
                staged.push(Staged::Done(Err(problem.correlated(&incoming.correlation_id))));
                continue;
            }
        };
        let reservation = match reserve(intake, route, &incoming).await {
            Ok(reservation) => reservation,
            Err(problem) => {
                staged.push(Staged::Done(Err(problem.correlated(&incoming.correlation_id))));
                continue;
            }
        };
        match reservation {
            Reserved::Proceed(token) => staged.push(Staged::Ready(incoming, encoded, token)),
            Reserved::Done(answer) => staged.push(Staged::Done(answer)),
        }
    }
    let sends = staged.iter().map(|item| {
        // The producer span (a child of the request's), created here, inside the request.
        let span = match item {
            Staged::Ready(incoming, ..) => tracing::info_span!(
                "send",
                otel.name = %format!("send {}", route.topic),
                otel.kind = "producer",
                messaging.system = "kafka",
                messaging.operation.type = "send",
                messaging.destination.name = %route.topic,
                messaging.destination.partition.id = tracing::field::Empty,
                messaging.kafka.offset = tracing::field::Empty,
                correlation_id = %incoming.correlation_id,
            ),
            _ => tracing::Span::none(),
        };
        async move {
            let Staged::Ready(incoming, encoded, _) = item else { return None };
            let traceparent =
                interchange_core::telemetry::traceparent(&span).unwrap_or_else(|| incoming.trace.traceparent.clone());
            let headers =
                EventHeaders::new(&incoming.correlation_id, &encoded.event_id, &route.contract, PRODUCER_ROLE)
                    .traced(Some(traceparent), incoming.trace.tracestate.clone());
            let started = Instant::now();
            let result = intake.produce.send(&route.topic, &incoming.correlation_id, &encoded.payload, &headers).await;
            intake.metrics.produce.observe(started.elapsed().as_secs_f64());
            if let Ok(landed) = &result {
                span.record("messaging.destination.partition.id", landed.partition);
                span.record("messaging.kafka.offset", landed.offset);
                tracing::debug!(parent: &span, partition = landed.partition, offset = landed.offset, "accepted");
            }
            Some(result)
        }
    });
    let outcomes = futures::future::join_all(sends).await;
    let mut answers: Vec<Result<Answer, Problem>> = Vec::with_capacity(staged.len());
    for (item, outcome) in staged.into_iter().zip(outcomes) {
        let (incoming, encoded, token) = match item {
            Staged::Ready(incoming, encoded, token) => (incoming, encoded, token),
            Staged::Done(done) => {
                answers.push(done);
                continue;
            }
            Staged::SameAs(first) => {
                let same = match answers.get(first) {
                    Some(Ok(answer)) => Ok(Answer { replayed: true, ..answer.clone() }),
                    Some(Err(problem)) => Err(problem.clone()),
                    None => Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no earlier answer")),
                };
                answers.push(same);
                continue;
            }
        };
        answers.push(finish(intake, route, incoming, encoded, token, outcome).await);
    }
    if route.contract == ORDER_CONTRACT {
        let accepted: Vec<(String, String)> = answers
            .iter()
            .filter_map(|a| a.as_ref().ok())
            .filter(|a| !a.replayed)
            .map(|a| (partner.clone(), a.response.correlation_id.clone()))
            .collect();
        intake.accepted.mark(&intake.metrics, &accepted).await;
    }
    answers
}

/// Where to look next: the order status API for orders, the event's own location otherwise.
fn links(route: &RouteSpec, location: &str) -> Value {
    if route.contract == ORDER_CONTRACT {
        json!({ "status": location, "events": format!("{location}/events") })
    } else {
        json!({ "status": location })
    }
}

/// An event after validation and reservation: ready to send (with its idempotency token and
/// fingerprint), or already answered.
enum Staged {
    Ready(Incoming, Encoded, Option<(String, String)>),
    Done(Result<Answer, Problem>),
    /// The same Idempotency-Key and body as the event at this earlier index of the batch.
    SameAs(usize),
}

enum Reserved {
    /// Go ahead; with (key, token, fingerprint) when an Idempotency-Key was reserved.
    Proceed(Option<(String, String)>),
    Done(Result<Answer, Problem>),
}

async fn reserve(intake: &Intake, route: &RouteSpec, incoming: &Incoming) -> Result<Reserved, Problem> {
    let Some(key) = &incoming.idempotency_key else { return Ok(Reserved::Proceed(None)) };
    let store = &intake.idempotency;
    let print = fingerprint(&route.path, &incoming.raw);
    let outcome = |o: &'static str| OutcomeLabels { partner: incoming.partner.clone(), outcome: o };
    match store.reserve(&incoming.partner, key, &print).await {
        Ok(Reservation::New { token }) => {
            intake.metrics.idempotency.get_or_create(&outcome("new")).inc();
            Ok(Reserved::Proceed(Some((token, print))))
        }
        Ok(Reservation::Replay(response)) => {
            intake.metrics.idempotency.get_or_create(&outcome("replayed")).inc();
            let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::ACCEPTED);
            Ok(Reserved::Done(Ok(Answer { status, response, replayed: true })))
        }
        Ok(Reservation::Mismatch) => {
            intake.metrics.idempotency.get_or_create(&outcome("mismatch")).inc();
            Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "this Idempotency-Key was used with a different body",
            ))
        }
        Ok(Reservation::InFlight) => {
            intake.metrics.idempotency.get_or_create(&outcome("conflict")).inc();
            Err(Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-flight",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
            .retry_after(1))
        }
        Err(error) => {
            intake.metrics.redis_errors.get_or_create(&OperationLabels { operation: "idempotency" }).inc();
            tracing::warn!(%error, "idempotency store unavailable");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "idempotency-unavailable",
                "the idempotency store is unavailable, so the request cannot be accepted safely; retry later",
            )
            .retry_after(1))
        }
    }
}

async fn finish(
    intake: &Intake,
    route: &RouteSpec,
    incoming: Incoming,
    encoded: Encoded,
    token: Option<(String, String)>,
    outcome: Option<Result<Landed, IngestError>>,
) -> Result<Answer, Problem> {
    let key = incoming.idempotency_key.as_deref();
    match outcome {
        Some(Ok(landed)) => {
            let location = format!("{}/{}", route.path, incoming.correlation_id);
            let body = json!({
                "status": "accepted",
                "event_id": encoded.event_id,
                "correlation_id": incoming.correlation_id,
                "topic": route.topic,
                "partition": landed.partition,
                "offset": landed.offset,
                "links": links(route, &location),
            });
            let response = StoredResponse {
                status: StatusCode::ACCEPTED.as_u16(),
                body,
                location: Some(location),
                correlation_id: incoming.correlation_id.clone(),
                event_id: encoded.event_id.clone(),
            };
            if let (Some(key), Some((token, print))) = (key, &token) {
                if let Err(error) = intake.idempotency.complete(&incoming.partner, key, token, print, &response).await {
                    // The record is durable; a retry within the pending window gets 409, then is
                    // produced again under the same event id and correlation id (derived from the
                    // key), which the order processor ignores as already applied.
                    intake.metrics.redis_errors.get_or_create(&OperationLabels { operation: "idempotency" }).inc();
                    tracing::warn!(%error, "could not store the idempotent response");
                }
            }
            Ok(Answer { status: StatusCode::ACCEPTED, response, replayed: false })
        }
        Some(Err(error)) => {
            if let (Some(key), Some((token, _))) = (key, &token) {
                if intake.idempotency.release(&incoming.partner, key, token).await.is_ok() {
                    intake
                        .metrics
                        .idempotency
                        .get_or_create(&OutcomeLabels { partner: incoming.partner.clone(), outcome: "released" })
                        .inc();
                }
            }
            tracing::warn!(%error, correlation_id = %incoming.correlation_id, "produce failed");
            let problem = if error.is_unavailable() {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "broker-unavailable",
                    "the broker did not acknowledge the event; it was not accepted, retry later",
                )
                .retry_after(RETRY_AFTER_UNAVAILABLE)
            } else {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "produce-failed",
                    "the event could not be written; it was not accepted",
                )
            };
            Err(problem.correlated(&incoming.correlation_id))
        }
        None => Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "event was not sent")),
    }
}
