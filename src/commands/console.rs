//! `hub console`: the operator console, a role of its own (never a path of the partners' edge):
//! its own listener, its own operators and their permissions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use interchange_console::operators::Operators;
use interchange_console::{AuditSettings, DeadLetterSettings, Settings};
use interchange_core::avro::Encoder;
use interchange_core::cli::Global;
use interchange_core::shutdown;
use interchange_core::topology::Topology;
use interchange_ingest::read_model::ReadModelConfig;

use super::{kafka, load};

/// `hub console` options.
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Address the console listens on; keep it on the operators' network.
    #[arg(long = "console-listen", env = "HUB_CONSOLE_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The operators file: `[[operator]]` entries with `name`, `token_sha256` (`sha256sum` of
    /// the operator's token) and `permissions` (`["replay"]`; reading needs none).
    #[arg(long, env = "HUB_CONSOLE_OPERATORS")]
    pub operators: PathBuf,
    /// The topic (as the topology declares it, with the `operator_action` contract) where every
    /// replay is recorded; without it in the topology the console does not replay.
    #[arg(long, env = "HUB_CONSOLE_AUDIT_TOPIC", default_value = "console.audit")]
    pub audit_topic: String,
    /// Stable id of this console: part of its replays' transactional.id.
    #[arg(long, env = "HUB_INSTANCE_ID", default_value = "console-0")]
    pub instance_id: String,
}

pub async fn run(global: &Global, args: &ConsoleArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let operators = Operators::load(&args.operators)?;
    let read_model = topology
        .read_model_keyspace()
        .map(|keyspace| ReadModelConfig { nodes: global.cql_nodes(), keyspace: keyspace.to_owned() });
    let partners = topology.partners.iter().map(|p| p.name.clone()).collect();
    // Every processor's and sink's dead-letter topic, as `hub dlq` reads them.
    let topics: Vec<String> = topology.dead_letter_topics().into_iter().map(|t| t.name.clone()).collect();
    let dead_letters = match topology.contracts.get("dead_letter") {
        Some(contract) if !topics.is_empty() => Some(DeadLetterSettings {
            services: interchange_core::Services::new(kafka(global)?, global.registry()),
            topics,
            schema: contract.schema.clone(),
            contracts: topology.contracts.values().map(|c| (c.name.clone(), c.schema.clone())).collect(),
        }),
        _ => None,
    };
    let audit = audit(global, args, &topology).await?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    interchange_console::serve(
        listener,
        Settings { operators, partners, read_model, dead_letters, audit },
        shutdown::on_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// The audit topic and its encoder, when the topology declares it with `operator_action`.
async fn audit(global: &Global, args: &ConsoleArgs, topology: &Topology) -> anyhow::Result<Option<AuditSettings>> {
    let (Some(topic), Some(contract)) =
        (topology.topic_named(&args.audit_topic), topology.contracts.get("operator_action"))
    else {
        tracing::warn!(topic = %args.audit_topic, "no audit topic with the operator_action contract: the console will not replay");
        return Ok(None);
    };
    anyhow::ensure!(
        topic.schemas.iter().any(|s| s == "operator_action"),
        "audit topic {} does not carry the operator_action contract",
        args.audit_topic
    );
    let registry = global.registry().client().context("registry client")?;
    let id = registry
        .registered_id(&topic.subject(contract), &contract.text)
        .await
        .with_context(|| format!("the operator_action contract of {} (hub schemas register)", topic.name))?;
    let encoder = Encoder::new(contract.schema.clone(), id).map_err(anyhow::Error::msg)?;
    let transactional_id = format!("{}hub-console-{}", global.topic_prefix, args.instance_id);
    Ok(Some(AuditSettings { topic: topic.name.clone(), encoder, transactional_id }))
}
