//! A console's [`Settings`] from the topology: its partners, read model, dead-letter topics and
//! audit topic, as `hub console` and the console bench both build them.

use interchange_core::avro::Encoder;
use interchange_core::topology::Topology;
use interchange_core::Services;
use interchange_ingest::read_model::ReadModelConfig;

use crate::dead_letters::DeadLetterSettings;
use crate::live::LiveSources;
use crate::operators::Operators;
use crate::replay::AuditSettings;
use crate::ConsoleError;

/// What a console is built from.
#[derive(Debug)]
pub struct Settings {
    pub operators: Operators,
    /// Where the read model is; none when the topology keeps no read model.
    pub read_model: Option<ReadModelConfig>,
    /// Where the dead letters are; none when the topology declares no dead-letter topic.
    pub dead_letters: Option<DeadLetterSettings>,
    /// Where replays are recorded; without it the console does not replay.
    pub audit: Option<AuditSettings>,
    /// The topology: partners' limits, consumer groups.
    pub topology: Topology,
    /// What the overview samples: the roles' metrics and Kafka.
    pub live: LiveSources,
    /// Jaeger's UI, to link trace ids to.
    pub jaeger_url: Option<String>,
}

/// What the topology does not say about a console.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The audit topic as the topology declares it (unprefixed), with the `operator_action` contract.
    pub audit_topic: String,
    /// Stable id of this console: part of its replays' `transactional.id`.
    pub instance_id: String,
    /// The roles' `/metrics` URLs the overview samples.
    pub metrics_from: Vec<String>,
    /// Jaeger's UI (`http://jaeger:16686`): trace ids link to `{url}/trace/{id}`.
    pub jaeger_url: Option<String>,
}

impl Settings {
    /// The console of `topology` for `operators`, reaching the read model at `services.cql_nodes`.
    pub async fn from_topology(
        topology: &Topology,
        services: &Services,
        operators: Operators,
        options: &ConsoleOptions,
    ) -> Result<Self, ConsoleError> {
        let read_model = topology
            .read_model_keyspace()
            .map(|keyspace| ReadModelConfig { nodes: services.cql_nodes.clone(), keyspace: keyspace.to_owned() });
        // Every processor's and sink's dead-letter topic, as `hub dlq` reads them.
        let topics: Vec<String> = topology.dead_letter_topics().into_iter().map(|t| t.name.clone()).collect();
        let dead_letters = match topology.contracts.get("dead_letter") {
            Some(contract) if !topics.is_empty() => Some(DeadLetterSettings {
                services: services.clone(),
                topics,
                schema: contract.schema.clone(),
                contracts: topology.contracts.values().map(|c| (c.name.clone(), c.schema.clone())).collect(),
            }),
            _ => None,
        };
        let audit = audit_settings(topology, services, options).await?;
        let live = LiveSources { metrics: options.metrics_from.clone(), kafka: services.kafka.clone() };
        Ok(Self {
            operators,
            read_model,
            dead_letters,
            audit,
            topology: topology.clone(),
            live,
            jaeger_url: options.jaeger_url.clone(),
        })
    }
}

/// The audit topic and its encoder, when the topology declares it with `operator_action`.
async fn audit_settings(
    topology: &Topology,
    services: &Services,
    options: &ConsoleOptions,
) -> Result<Option<AuditSettings>, ConsoleError> {
    let (Some(topic), Some(contract)) =
        (topology.topic_named(&options.audit_topic), topology.contracts.get("operator_action"))
    else {
        tracing::warn!(topic = %options.audit_topic, "no audit topic with the operator_action contract: the console will not replay");
        return Ok(None);
    };
    let setup = |problem: String| ConsoleError::Setup(format!("audit topic {}: {problem}", topic.name));
    if !topic.schemas.iter().any(|s| s == "operator_action") {
        return Err(setup("does not carry the operator_action contract".to_owned()));
    }
    let registry = services.registry.client().map_err(|e| setup(e.to_string()))?;
    let id = registry
        .registered_id(&topic.subject(contract), &contract.text)
        .await
        .map_err(|e| setup(format!("the operator_action contract (hub schemas register): {e}")))?;
    let encoder = Encoder::new(contract.schema.clone(), id).map_err(setup)?;
    let transactional_id = format!("{}hub-console-{}", topology.topic_prefix, options.instance_id);
    Ok(Some(AuditSettings { topic: topic.name.clone(), encoder, transactional_id }))
}
