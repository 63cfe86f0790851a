//! Serving the edge: plain or TLS, with injected shutdown and a bounded drain.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{router, Edge};
use crate::config::IngestConfig;
use crate::error::IngestError;
use crate::health;
use crate::read_model::connect_in_background;

/// Serves `edge` on `listener` until `shutdown`; then stops accepting, lets in-flight requests
/// finish and flushes the producer, all within the drain deadline.
pub async fn run(
    listener: TcpListener,
    edge: Edge,
    config: &IngestConfig,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    let Edge { routes, state, tls, dependencies, read_model } = edge;
    if let Some(config) = read_model {
        connect_in_background(config, Arc::clone(&state.reads.read_model), shutdown.clone());
    }
    let produce = dependencies.produce.clone();
    let readiness = Arc::clone(&state.readiness);
    let probe =
        tokio::spawn(health::probe(dependencies, Arc::clone(&readiness), Duration::from_secs(2), shutdown.clone()));
    let router = router(&routes, state, tls).into_make_service_with_connect_info::<SocketAddr>();
    let addr = listener.local_addr().map_err(|e| IngestError::Internal(e.to_string()))?;
    let drain = config.drain_deadline;
    let stopping = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            readiness.shutting_down.store(true, Ordering::Relaxed);
            tracing::info!("draining");
        }
    };
    // axum-server for plain and TLS alike: hyper's header read timeout closes connections that
    // never finish their headers (slowloris), and the handle drains within the deadline.
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        stopping.await;
        stopper.graceful_shutdown(Some(drain));
    });
    let std_listener = listener.into_std().map_err(|e| IngestError::Internal(e.to_string()))?;
    let served = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = tls_config(cert, key).map_err(|e| IngestError::Config(format!("TLS certificate or key: {e}")))?;
            tracing::info!(%addr, tls = true, "ingest edge listening");
            let mut server = axum_server::from_tcp(std_listener)
                .map_err(|e| IngestError::Internal(e.to_string()))?
                .acceptor(axum_server::tls_openssl::OpenSSLAcceptor::new(tls))
                .handle(handle);
            limit_header_time(server.http_builder(), config.header_timeout);
            server.serve(router).await
        }
        _ => {
            tracing::info!(%addr, tls = false, "ingest edge listening");
            let mut server =
                axum_server::from_tcp(std_listener).map_err(|e| IngestError::Internal(e.to_string()))?.handle(handle);
            limit_header_time(server.http_builder(), config.header_timeout);
            server.serve(router).await
        }
    };
    served.map_err(|e| IngestError::Internal(e.to_string()))?;
    probe.abort();
    produce.flush(drain).await?;
    tracing::info!("ingest edge stopped");
    Ok(())
}

/// HTTP/1 connections must send a request's headers within `timeout` (hyper closes them after).
fn limit_header_time(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    timeout: Duration,
) {
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(timeout);
}

/// The edge's TLS: the certificate chain and key from PEM files, TLS 1.2 at least and 1.3
/// preferred, Mozilla's intermediate cipher suites, HTTP/2 and HTTP/1.1 by ALPN.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<axum_server::tls_openssl::OpenSSLConfig, String> {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(|e| e.to_string())?;
    builder.set_certificate_chain_file(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    builder.set_private_key_file(key, SslFiletype::PEM).map_err(|e| format!("{}: {e}", key.display()))?;
    axum_server::tls_openssl::OpenSSLConfig::try_from(builder).map_err(|e| e.to_string())
}
