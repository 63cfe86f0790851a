//! Liveness, readiness, metrics and the OpenAPI document, plus the background readiness probe.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::problem::Problem;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response()
}

/// `GET /readyz`: broker, registry and Redis reachable, and not shutting down.
pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let r = &app.readiness;
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
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let mut text = String::new();
    let encoded = match app.metrics_registry.lock() {
        Ok(registry) => prometheus_client::encoding::text::encode(&mut text, &registry).is_ok(),
        Err(_) => false,
    };
    if !encoded {
        return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics-failed", "could not encode metrics")
            .into_response();
    }
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// `GET /openapi.json`.
pub async fn openapi(State(app): State<Arc<AppState>>) -> Response {
    (StatusCode::OK, axum::Json(app.openapi.clone())).into_response()
}

/// Refreshes the readiness flags every `every` until `shutdown`.
pub async fn probe(app: Arc<AppState>, every: Duration, shutdown: CancellationToken) {
    loop {
        let broker = app.produce.broker_reachable(Duration::from_secs(2)).await;
        let registry = app.registry_client.ping().await.is_ok();
        let redis = app.shared.ping().await.is_ok();
        app.readiness.broker.store(broker, Ordering::Relaxed);
        app.readiness.registry.store(registry, Ordering::Relaxed);
        app.readiness.redis.store(redis, Ordering::Relaxed);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
