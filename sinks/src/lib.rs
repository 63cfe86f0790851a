//! Sink connectors: the HTTP sinks that deliver commands to partners (per partner rate-limited,
//! ordered per correlation id, retried, behind a circuit breaker) and the read-model projector.
//!
//! Offers: [`run`] (the `hub sink` role: the topology's sinks with their health and metrics
//! endpoint), [`SinkConfig`], [`SinkError`], `replay` (`hub dlq`), `projector::cql` (the read
//! model's migration), the per-partner delivery stack (`http::partner`, for the bench and tests)
//! and `metrics::SinkMetrics::register`. Keeps to itself: the consumer loops and rebalance
//! handling, ordering, routing, the rate share, readiness and the state → rows mapping.
//!
//! Sinks are a closed set: `SinkParams` in the topology is a tagged enum and [`run`] holds the one
//! `match` that builds each sink's runtime.

mod config;
mod env;
mod error;
mod health;
pub mod http;
pub mod metrics;
mod ordering;
pub mod projector;
pub mod replay;

use std::sync::Arc;

use interchange_core::topology::{SinkParams, Topology};
use interchange_core::Services;
use tokio_util::sync::CancellationToken;

pub use config::SinkConfig;
pub use error::SinkError;

use crate::env::Env;

/// Runs the topology's sinks (those `config.sinks` names, or all) until `shutdown`, with the
/// role's health and metrics endpoint on `config.sink_listen`.
pub async fn run(
    topology: &Topology,
    services: &Services,
    config: &SinkConfig,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    let selected: Vec<_> =
        topology.sinks.iter().filter(|s| config.sinks.is_empty() || config.sinks.contains(&s.name)).collect();
    if let Some(unknown) = config.sinks.iter().find(|n| !topology.sinks.iter().any(|s| &&s.name == n)) {
        return Err(SinkError::Config(format!("no sink named {unknown:?} in the topology")));
    }
    let registry = services.registry.client()?;
    let mut prometheus = prometheus_client::registry::Registry::default();
    let metrics = metrics::SinkMetrics::register(&mut prometheus);
    let health = Arc::new(health::Health::default());
    let server = tokio::spawn(health::serve(config.sink_listen, Arc::clone(&health), prometheus, shutdown.clone()));
    let env = Env { topology, services, registry: &registry, metrics: &metrics, health: &health, config, shutdown };
    let mut tasks = Vec::new();
    for sink in selected {
        let task = match &sink.params {
            SinkParams::Http { partners, commands, .. } => http::start(&env, sink, partners, commands).await?,
            SinkParams::CqlProjector { keyspace, timeline_ttl } => {
                projector::start(&env, sink, keyspace, *timeline_ttl).await?
            }
        };
        tasks.push(task);
    }
    tracing::info!(sinks = tasks.len(), "sinks running");
    let results = futures::future::join_all(tasks).await;
    env.shutdown.cancel();
    let _ = server.await;
    for result in results {
        result.map_err(|e| SinkError::Config(e.to_string()))??;
    }
    Ok(())
}
