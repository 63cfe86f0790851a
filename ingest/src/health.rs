//! Liveness, readiness, metrics and the OpenAPI document, plus the background readiness probe.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use interchange_core::health::{encode_metrics, METRICS_CONTENT_TYPE};
use interchange_core::registry::Registry as SchemaRegistry;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::problem::Problem;
use crate::produce::Produce;
use crate::shared::Shared;
use crate::state::{OpenApi, Readiness};

/// `GET /healthz`: the process is alive.
pub(crate) async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response()
}

/// `GET /readyz`: broker, registry and Redis reachable, and not shutting down.
pub(crate) async fn readyz(State(r): State<Arc<Readiness>>) -> Response {
    let checks = json!({
        "broker": r.broker.load(Ordering::Relaxed),
        "registry": r.registry.load(Ordering::Relaxed),
        "redis": r.redis.load(Ordering::Relaxed),
        "shutting_down": r.shutting_down.load(Ordering::Relaxed),
    });
    if r.ready() {
        (StatusCode::OK, axum::Json(json!({ "status": "ready", "checks": checks }))).into_response()
    } else {
        let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", format!("not ready: {checks}"));
        problem.retry_after = Some(1);
        problem.into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(registry): State<Arc<Mutex<Registry>>>) -> Response {
    let Some(text) = encode_metrics(&registry) else {
        return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics-failed", "could not encode metrics")
            .into_response();
    };
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    response
}

/// `GET /openapi.json`.
pub(crate) async fn openapi(State(document): State<Arc<OpenApi>>) -> Response {
    (StatusCode::OK, axum::Json(document.0.clone())).into_response()
}

/// What the edge needs to be ready: the broker (through its producer), the schema registry, Redis.
#[derive(Debug, Clone)]
pub(crate) struct Dependencies {
    pub(crate) produce: Produce,
    pub(crate) registry: SchemaRegistry,
    pub(crate) shared: Shared,
}

/// Refreshes the readiness flags every `every` until `shutdown`.
pub(crate) async fn probe(
    dependencies: Dependencies,
    readiness: Arc<Readiness>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let broker = dependencies.produce.broker_reachable(Duration::from_secs(2)).await;
        let registry = dependencies.registry.ping().await.is_ok();
        let redis = dependencies.shared.ping().await.is_ok();
        readiness.broker.store(broker, Ordering::Relaxed);
        readiness.registry.store(registry, Ordering::Relaxed);
        readiness.redis.store(redis, Ordering::Relaxed);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
