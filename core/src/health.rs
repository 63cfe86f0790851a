//! The one health and metrics server of the roles that serve no other HTTP (processor, sinks):
//! `/healthz`, `/readyz` and `/metrics` on a listener the caller binds (tests bind port 0).
//! The edge serves the same metrics text through [`encode_metrics`] on its own router.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Content type of the metrics text.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every reason the role is not ready; empty when it is.
pub type Readiness = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The metrics of `registry` in the OpenMetrics text format, or `None` if they cannot be encoded.
pub fn encode_metrics(registry: &Mutex<Registry>) -> Option<String> {
    let registry = registry.lock().ok()?;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).ok()?;
    Some(text)
}

#[derive(Clone)]
struct Endpoints {
    readiness: Readiness,
    metrics: Arc<Mutex<Registry>>,
    shutdown: CancellationToken,
}

/// The three endpoints: alive; ready unless `readiness` names a problem or `shutdown` has begun;
/// the metrics of `metrics`.
pub fn router(readiness: Readiness, metrics: Arc<Mutex<Registry>>, shutdown: CancellationToken) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(Endpoints { readiness, metrics, shutdown })
}

async fn ready(State(endpoints): State<Endpoints>) -> Response {
    let mut problems = (endpoints.readiness)();
    if endpoints.shutdown.is_cancelled() {
        problems.insert(0, "shutting down".to_owned());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready".to_owned()).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}", problems.join("; "))).into_response()
    }
}

async fn metrics_text(State(endpoints): State<Endpoints>) -> Response {
    match encode_metrics(&endpoints.metrics) {
        Some(text) => ([("content-type", METRICS_CONTENT_TYPE)], text).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "could not encode metrics").into_response(),
    }
}

/// Serves `app` on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, app: axum::Router, shutdown: CancellationToken) {
    let _ = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
}

/// Binds `listen` and serves `app` on it until `shutdown`; a role without its health endpoint
/// still runs, so a failed bind is logged, not fatal.
pub async fn bind_and_serve(listen: std::net::SocketAddr, app: axum::Router, role: &str, shutdown: CancellationToken) {
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            tracing::info!(%listen, role, "health and metrics");
            serve(listener, app, shutdown).await;
        }
        Err(error) => tracing::warn!(%error, %listen, role, "health endpoint not served"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_names_every_problem_and_metrics_are_served_on_a_bound_listener() {
        let problems = Arc::new(Mutex::new(vec!["sink a: starting".to_owned()]));
        let seen = problems.clone();
        let readiness: Readiness = Arc::new(move || seen.lock().map(|p| p.clone()).unwrap_or_default());
        let mut registry = Registry::default();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        registry.register("hub_test_things", "things", counter.clone());
        counter.inc();
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router(readiness, Arc::new(Mutex::new(registry)), shutdown.clone());
        let server = tokio::spawn(serve(listener, app, shutdown.clone()));
        let get = |path: &'static str| async move {
            let response = reqwest::get(format!("http://{addr}{path}")).await.expect("get");
            (response.status().as_u16(), response.text().await.expect("body"))
        };
        assert_eq!(get("/healthz").await, (200, "ok".to_owned()));
        assert_eq!(get("/readyz").await, (503, "not ready: sink a: starting".to_owned()));
        problems.lock().expect("lock").clear();
        assert_eq!(get("/readyz").await, (200, "ready".to_owned()));
        let (status, text) = get("/metrics").await;
        assert_eq!(status, 200);
        assert!(text.contains("hub_test_things_total 1"), "{text}");
        shutdown.cancel();
        server.await.expect("server stops on shutdown");
    }
}
