//! Serving the edge: plain or TLS, with injected shutdown and a bounded drain.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{self, AppState};
use crate::config::IngestConfig;
use crate::error::IngestError;
use crate::health;

/// Serves `app` on `listener` until `shutdown`; then stops accepting, lets in-flight requests
/// finish and flushes the producer, all within the drain deadline.
pub async fn run(
    listener: TcpListener,
    app: Arc<AppState>,
    config: &IngestConfig,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    if let Some(config) = &app.read_model_config {
        crate::orders::connect_in_background(config.clone(), Arc::clone(&app.read_model), shutdown.clone());
    }
    let probe = tokio::spawn(health::probe(Arc::clone(&app), Duration::from_secs(2), shutdown.clone()));
    let router = app::router(Arc::clone(&app)).into_make_service_with_connect_info::<SocketAddr>();
    let addr = listener.local_addr().map_err(|e| IngestError::Internal(e.to_string()))?;
    let drain = config.drain_deadline;
    let stopping = {
        let app = Arc::clone(&app);
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            app.readiness.shutting_down.store(true, Ordering::Relaxed);
            tracing::info!("draining");
        }
    };
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| IngestError::Config(format!("TLS certificate or key: {e}")))?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                stopping.await;
                stopper.graceful_shutdown(Some(drain));
            });
            tracing::info!(%addr, tls = true, "ingest edge listening");
            let std_listener = listener.into_std().map_err(|e| IngestError::Internal(e.to_string()))?;
            axum_server::from_tcp_rustls(std_listener, tls)
                .map_err(|e| IngestError::Internal(e.to_string()))?
                .handle(handle)
                .serve(router)
                .await
                .map_err(|e| IngestError::Internal(e.to_string()))?;
        }
        _ => {
            tracing::info!(%addr, tls = false, "ingest edge listening");
            let serve = axum::serve(listener, router).with_graceful_shutdown(stopping).into_future();
            tokio::pin!(serve);
            let deadline = async {
                shutdown.cancelled().await;
                tokio::time::sleep(drain).await;
            };
            tokio::select! {
                result = &mut serve => result.map_err(|e| IngestError::Internal(e.to_string()))?,
                () = deadline => tracing::warn!(?drain, "in-flight requests did not finish within the drain deadline"),
            }
        }
    }
    probe.abort();
    app.produce.flush(drain).await?;
    tracing::info!("ingest edge stopped");
    Ok(())
}
