//! Where the services the roles use are: the one set of addresses every role is built from.

use crate::kafka::KafkaSettings;
use crate::registry::RegistrySettings;

/// Addresses of the services the hub's roles use; each role reads what it needs.
#[derive(Debug, Clone)]
pub struct Services {
    /// The Kafka cluster and any librdkafka properties.
    pub kafka: KafkaSettings,
    /// How to reach the schema registry (the one builder: [`RegistrySettings::client`]).
    pub registry: RegistrySettings,
    /// Redis (the edge's idempotency keys and rate limits); `None` where no role needs it.
    pub redis_url: Option<String>,
    /// CQL contact points of the order read model (the projector writes it, the edge's status
    /// API reads it); empty: no read model.
    pub cql_nodes: Vec<String>,
}

impl Services {
    /// Kafka and the registry only (what the processor needs).
    pub fn new(kafka: KafkaSettings, registry: RegistrySettings) -> Self {
        Self { kafka, registry, redis_url: None, cql_nodes: Vec::new() }
    }
}
