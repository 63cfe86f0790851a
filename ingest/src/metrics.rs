//! The edge's Prometheus metrics (names in `interchange_core::metrics`).

use interchange_core::metrics as names;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub(crate) route: String,
    pub(crate) partner: String,
    pub(crate) status_class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub(crate) route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub(crate) partner: String,
    pub(crate) outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub(crate) scope: &'static str,
    pub(crate) decided_by: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub(crate) operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    pub(crate) outcome: &'static str,
}

/// Every metric of one edge instance. (The fields stay `pub`: tests/deploy/observability.rs reads
/// their types from this file's `pub <field>: ` lines.)
#[derive(Debug)]
pub struct IngestMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
    pub produce: Histogram,
    pub idempotency: Family<OutcomeLabels, Counter>,
    pub rate_limited: Family<LimitLabels, Counter>,
    pub redis_errors: Family<OperationLabels, Counter>,
    pub shed: Counter,
    pub body_timeouts: Counter,
    pub webhook_replays: Counter,
    pub queries: Family<QueryLabels, Counter>,
    pub query_duration: Histogram,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl IngestMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            produce: latency_histogram(),
            idempotency: Family::default(),
            rate_limited: Family::default(),
            redis_errors: Family::default(),
            shed: Counter::default(),
            body_timeouts: Counter::default(),
            webhook_replays: Counter::default(),
            queries: Family::default(),
            query_duration: latency_histogram(),
        };
        registry.register(
            names::INGEST_REQUESTS,
            "Edge requests by route, partner and status class",
            metrics.requests.clone(),
        );
        registry.register(names::INGEST_REQUEST_DURATION, "Edge request duration", metrics.duration.clone());
        registry.register(
            names::INGEST_PRODUCE_DURATION,
            "Time to the broker's acknowledgement",
            metrics.produce.clone(),
        );
        registry.register(names::INGEST_IDEMPOTENCY, "Idempotency-Key outcomes", metrics.idempotency.clone());
        registry.register(names::INGEST_RATE_LIMITED, "Requests refused by a rate limit", metrics.rate_limited.clone());
        registry.register(names::INGEST_REDIS_ERRORS, "Redis calls that failed", metrics.redis_errors.clone());
        registry.register(names::INGEST_SHED, "Requests refused at the concurrency limit", metrics.shed.clone());
        registry.register(
            names::INGEST_BODY_TIMEOUTS,
            "Requests answered 408: the body was too slow",
            metrics.body_timeouts.clone(),
        );
        registry.register(
            names::INGEST_WEBHOOK_REPLAYS,
            "Requests refused because their webhook-id was seen within its signature window",
            metrics.webhook_replays.clone(),
        );
        registry.register(names::QUERY_REQUESTS, "Order status reads by outcome", metrics.queries.clone());
        registry.register(names::QUERY_DURATION, "Duration of a read-model query", metrics.query_duration.clone());
        metrics
    }
}

/// `2xx`, `4xx`, `5xx`.
pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
