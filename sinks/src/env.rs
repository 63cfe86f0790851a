//! What every sink runtime is built from, shared by the HTTP sinks and the projector (kept apart
//! from `lib.rs` so that neither depends on the crate root).

use std::sync::Arc;

use interchange_core::avro::Encoder;
use interchange_core::registry::Registry;
use interchange_core::topology::Topology;
use interchange_core::Services;
use tokio_util::sync::CancellationToken;

use crate::config::SinkConfig;
use crate::error::SinkError;
use crate::health::Health;
use crate::metrics::SinkMetrics;

/// What every sink runtime is built from.
pub(crate) struct Env<'a> {
    pub(crate) topology: &'a Topology,
    pub(crate) services: &'a Services,
    pub(crate) registry: &'a Registry,
    pub(crate) metrics: &'a SinkMetrics,
    pub(crate) health: &'a Arc<Health>,
    pub(crate) config: &'a SinkConfig,
    pub(crate) shutdown: CancellationToken,
}

/// The encoder of `contract` records written to `topic` (its schema id registered).
pub(crate) async fn encoder(
    topology: &Topology,
    registry: &Registry,
    topic: &str,
    contract: &str,
) -> Result<Encoder, SinkError> {
    let t = topology
        .topics
        .iter()
        .find(|t| t.name == topic)
        .ok_or_else(|| SinkError::Config(format!("no topic {topic}")))?;
    let c = topology.contracts.get(contract).ok_or_else(|| SinkError::Config(format!("no contract {contract}")))?;
    let id = registry.registered_id(&t.subject(c), &c.text).await?;
    Encoder::new(c.schema.clone(), id).map_err(SinkError::Config)
}
