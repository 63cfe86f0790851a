//! HTTP handlers of the ingest routes: admission ([`crate::admission`], with the [`Gate`]), then
//! the pipeline ([`crate::pipeline`], with the [`Intake`]); the 404 fallback and the headers every
//! answer carries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::admission::{self, Caller};
use crate::envelope::{self, TraceContext, CORRELATION_RULE};
use crate::identity;
use crate::metrics::{status_class, IngestMetrics, RequestLabels, RouteLabels};
use crate::pipeline::{accept_all, valid_idempotency_key, Answer, Incoming};
use crate::problem::Problem;
use crate::state::{Gate, Intake, RouteSpec};

/// Who is calling, and the body they sent, once admitted.
struct Admitted<'a> {
    /// Holds the concurrency permit until the answer.
    _caller: Caller<'a>,
    partner: String,
    body: Vec<u8>,
}

/// Whether a request carries Idempotency-Keys for everything it posts, so that a repeat of the
/// same signed message writes nothing (see [`crate::replay`]).
type RetrySafe = fn(&HeaderMap, &[u8]) -> bool;

fn single_retry_safe(headers: &HeaderMap, _body: &[u8]) -> bool {
    headers.contains_key("idempotency-key")
}

fn batch_retry_safe(_headers: &HeaderMap, body: &[u8]) -> bool {
    serde_json::from_slice::<BatchBody>(body)
        .is_ok_and(|b| !b.events.is_empty() && b.events.iter().all(|e| e.idempotency_key.is_some()))
}

fn record(metrics: &IngestMetrics, route: &RouteSpec, partner: &str, status: StatusCode, started: Instant) {
    let labels = RequestLabels {
        route: route.path.clone(),
        partner: partner.to_owned(),
        status_class: status_class(status.as_u16()),
    };
    metrics.requests.get_or_create(&labels).inc();
    metrics.duration.get_or_create(&RouteLabels { route: route.path.clone() }).observe(started.elapsed().as_secs_f64());
}

fn answer_response(answer: Answer) -> Response {
    let mut response = (answer.status, axum::Json(answer.response.body.clone())).into_response();
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    if let Some(location) = &answer.response.location {
        set("location", location);
    }
    set("x-correlation-id", &answer.response.correlation_id);
    set("x-event-id", &answer.response.event_id);
    if answer.replayed {
        set("idempotent-replayed", "true");
    }
    response
}

fn malformed(error: &serde_json::Error) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "malformed-json", format!("the body is not valid JSON: {error}"))
}

/// Admits the request, hands it to `inner`, and records the outcome in the metrics.
async fn handle(
    gate: &Gate,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
    route: &RouteSpec,
    retry_safe: RetrySafe,
    inner: impl for<'a> AsyncFnOnce(Admitted<'a>) -> Response,
) -> Response {
    let started = Instant::now();
    let caller = match admission::admit_headers(gate, peer, headers, Some(route)).await {
        Ok(caller) => caller,
        Err(problem) => {
            record(&gate.metrics, route, "-", problem.status_code(), started);
            return problem.into_response();
        }
    };
    let partner = caller.identity.partner.clone();
    let checked = match admission::read_body(gate, headers, body).await {
        Ok(body) => admission::verify_body(gate, &caller, headers, &body, retry_safe(headers, &body))
            .await
            .map(|replay_key| (body, replay_key)),
        Err(problem) => Err(problem),
    };
    let (body, replay_key) = match checked {
        Ok(checked) => checked,
        Err(problem) => {
            record(&gate.metrics, route, &partner, problem.status_code(), started);
            return problem.into_response();
        }
    };
    let response = inner(Admitted { _caller: caller, partner: partner.clone(), body }).await;
    if !response.status().is_success() {
        admission::release_replay(gate, replay_key).await;
    }
    record(&gate.metrics, route, &partner, response.status(), started);
    response
}

/// `POST <route>`: one event.
pub(crate) async fn accept(
    State(gate): State<Arc<Gate>>,
    State(intake): State<Arc<Intake>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
    route: Arc<RouteSpec>,
) -> Response {
    handle(&gate, peer, &headers, body, &route, single_retry_safe, async |admitted| {
        match single(&intake, &route, &headers, admitted).await {
            Ok(answer) => answer_response(answer),
            Err(problem) => problem.into_response(),
        }
    })
    .await
}

async fn single(
    intake: &Intake,
    route: &RouteSpec,
    headers: &HeaderMap,
    admitted: Admitted<'_>,
) -> Result<Answer, Problem> {
    let partner = admitted.partner.as_str();
    let supplied = envelope::supplied_correlation_id(headers, partner).map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-correlation-id",
            format!("X-Correlation-Id must be {CORRELATION_RULE}"),
        )
    })?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str() {
            Ok(key) if valid_idempotency_key(key) => Some(key.to_owned()),
            _ => {
                let problem = Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-idempotency-key",
                    "Idempotency-Key must be 1 to 255 visible ASCII characters",
                );
                return Err(match &supplied {
                    Some(supplied) => problem.correlated(&identity::scope(partner, supplied)),
                    None => problem,
                });
            }
        },
    };
    // Scoped to the partner when supplied; derived from the Idempotency-Key when there is one,
    // so that a retry is the same order.
    let correlation_id =
        identity::correlation(partner, &route.path, supplied.as_deref(), idempotency_key.as_deref(), &admitted.body);
    let data: Value = serde_json::from_slice(&admitted.body).map_err(|e| malformed(&e).correlated(&correlation_id))?;
    let trace = TraceContext::for_request(headers);
    let span = tracing::Span::current();
    span.record("correlation_id", correlation_id.as_str());
    span.record("trace_id", trace.trace_id());
    let incoming = Incoming {
        partner: admitted.partner.clone(),
        correlation_id,
        trace,
        idempotency_key,
        raw: admitted.body,
        data,
    };
    let mut answers = accept_all(intake, route, vec![incoming]).await;
    answers.pop().unwrap_or_else(|| Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no answer")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    events: Vec<BatchEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchEvent {
    idempotency_key: Option<String>,
    correlation_id: Option<String>,
    data: Value,
}

/// `POST <route>:batch`: many events, a status for each, in order.
pub(crate) async fn batch(
    State(gate): State<Arc<Gate>>,
    State(intake): State<Arc<Intake>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
    route: Arc<RouteSpec>,
) -> Response {
    handle(&gate, peer, &headers, body, &route, batch_retry_safe, async |admitted| {
        match batch_inner(&intake, &route, &headers, admitted).await {
            Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
            Err(problem) => problem.into_response(),
        }
    })
    .await
}

async fn batch_inner(
    intake: &Intake,
    route: &RouteSpec,
    headers: &HeaderMap,
    admitted: Admitted<'_>,
) -> Result<Value, Problem> {
    let parsed: BatchBody = serde_json::from_slice(&admitted.body).map_err(|e| {
        if e.is_data() {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-batch",
                format!("expected {{\"events\": [{{\"data\": {{...}}}}]}}: {e}"),
            )
        } else {
            malformed(&e)
        }
    })?;
    if parsed.events.is_empty() || parsed.events.len() > intake.max_batch {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-batch",
            format!("a batch holds 1 to {} events, this one {}", intake.max_batch, parsed.events.len()),
        ));
    }
    let trace = TraceContext::for_request(headers);
    tracing::Span::current().record("trace_id", trace.trace_id());
    let mut slots: Vec<Option<Problem>> = Vec::new();
    let mut incoming = Vec::new();
    for event in parsed.events {
        if event.correlation_id.as_deref().is_some_and(|id| !envelope::valid_supplied(&admitted.partner, id)) {
            slots.push(Some(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-correlation-id",
                format!("correlation_id must be {CORRELATION_RULE}"),
            )));
            continue;
        }
        if event.idempotency_key.as_deref().is_some_and(|k| !valid_idempotency_key(k)) {
            slots.push(Some(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "idempotency_key must be 1 to 255 visible ASCII characters",
            )));
            continue;
        }
        // Per event, like a single post: each event's own key derives its ids (not its index in
        // the batch, so a partner re-sending only some events of a batch gets the same ids).
        let raw = serde_json::to_vec(&event.data).unwrap_or_default();
        let correlation_id = identity::correlation(
            &admitted.partner,
            &route.path,
            event.correlation_id.as_deref(),
            event.idempotency_key.as_deref(),
            &raw,
        );
        slots.push(None);
        incoming.push(Incoming {
            partner: admitted.partner.clone(),
            correlation_id,
            trace: trace.clone(),
            idempotency_key: event.idempotency_key,
            raw,
            data: event.data,
        });
    }
    let mut answers = accept_all(intake, route, incoming).await.into_iter();
    let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
    let mut results = Vec::new();
    for (index, slot) in slots.into_iter().enumerate() {
        let outcome = match slot {
            Some(problem) => Err(problem),
            None => answers
                .next()
                .unwrap_or_else(|| Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no answer"))),
        };
        results.push(match outcome {
            Ok(answer) => {
                let status = if answer.replayed {
                    duplicates += 1;
                    "duplicate"
                } else {
                    accepted += 1;
                    "accepted"
                };
                json!({
                    "index": index, "status": status, "http_status": answer.status.as_u16(),
                    "event_id": answer.response.event_id, "correlation_id": answer.response.correlation_id,
                    "location": answer.response.location,
                })
            }
            Err(problem) => {
                rejected += 1;
                json!({ "index": index, "status": "rejected", "http_status": problem.status, "problem": problem })
            }
        });
    }
    Ok(json!({ "accepted": accepted, "duplicates": duplicates, "rejected": rejected, "results": results }))
}

/// Anything else: 404 as problem+json.
pub(crate) async fn not_found(request: Request) -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not-found", format!("no route {} {}", request.method(), request.uri().path()))
        .into_response()
}

/// Security headers on every response (HSTS too when `tls`: the edge terminates TLS itself) and
/// a request id on every request.
pub(crate) async fn common_headers(State(tls): State<bool>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| envelope::valid_correlation_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    // The HTTP server span (OpenTelemetry semantic conventions), child of the caller's trace.
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    let name = format!("{} {}", request.method(), route.as_deref().unwrap_or(request.uri().path()));
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
        http.route = route.as_deref().unwrap_or(""),
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
        correlation_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    {
        let header = |n: &str| request.headers().get(n).and_then(|v| v.to_str().ok());
        interchange_core::telemetry::parent(&span, header("traceparent"), header("tracestate"));
    }
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    let headers = response.headers_mut();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if tls {
        headers
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    response
}
