//! The sink role's `/healthz`, `/readyz` and `/metrics`.
//!
//! Ready means: every sink started has its partitions assigned (or the group gave it none because
//! other instances own them all) and no sink reports its store down; shutting down makes the role
//! unready first.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

/// Readiness of each sink by name: `Ok` or why not.
#[derive(Debug, Default)]
pub struct Health {
    sinks: Mutex<BTreeMap<String, Result<(), String>>>,
}

impl Health {
    /// Records `sink`'s readiness.
    pub fn set(&self, sink: &str, state: Result<(), String>) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.insert(sink.to_owned(), state);
        }
    }

    /// Every reason not to be ready; empty when ready.
    pub fn problems(&self) -> Vec<String> {
        self.sinks.lock().map_or_else(
            |_| vec!["health lock poisoned".to_owned()],
            |sinks| {
                if sinks.is_empty() {
                    return vec!["starting".to_owned()];
                }
                sinks.iter().filter_map(|(name, s)| s.as_ref().err().map(|e| format!("{name}: {e}"))).collect()
            },
        )
    }
}

type AppState = (Arc<Health>, Arc<prometheus_client::registry::Registry>, CancellationToken);

/// Serves the endpoints on `listen` until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    registry: prometheus_client::registry::Registry,
    shutdown: CancellationToken,
) {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route(
            "/readyz",
            get(|State((health, _, shutdown)): State<AppState>| async move {
                let mut problems = health.problems();
                if shutdown.is_cancelled() {
                    problems.insert(0, "shutting down".to_owned());
                }
                if problems.is_empty() {
                    (StatusCode::OK, "ready".to_owned()).into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}", problems.join("; "))).into_response()
                }
            }),
        )
        .route(
            "/metrics",
            get(|State((_, registry, _)): State<AppState>| async move {
                let mut text = String::new();
                let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            }),
        )
        .with_state((health, Arc::new(registry), shutdown.clone()));
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            tracing::info!(%listen, "sink health and metrics");
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
        }
        Err(error) => tracing::warn!(%error, %listen, "sink health endpoint not served"),
    }
}
