//! `hub console`: the operator console, a role of its own (never a path of the partners' edge):
//! its own listener, its own operators and their permissions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use interchange_console::operators::Operators;
use interchange_console::{DeadLetterSettings, Settings};
use interchange_core::cli::Global;
use interchange_core::shutdown;
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
}

pub async fn run(global: &Global, args: &ConsoleArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let operators = Operators::load(&args.operators)?;
    let read_model = topology
        .read_model_keyspace()
        .map(|keyspace| ReadModelConfig { nodes: global.cql_nodes(), keyspace: keyspace.to_owned() });
    let partners = topology.partners.iter().map(|p| p.name.clone()).collect();
    // Every processor's and sink's dead-letter topic, once each, as `hub dlq` reads them.
    let mut topics: Vec<String> = Vec::new();
    let declared =
        topology.processors.iter().map(|p| &p.dead_letter).chain(topology.sinks.iter().map(|s| &s.dead_letter));
    for name in declared {
        if let Some(topic) = topology.topic(name).or_else(|| topology.topics.iter().find(|t| &t.name == name)) {
            if !topics.contains(&topic.name) {
                topics.push(topic.name.clone());
            }
        }
    }
    let dead_letters = match topology.contracts.get("dead_letter") {
        Some(contract) if !topics.is_empty() => Some(DeadLetterSettings {
            services: interchange_core::Services::new(kafka(global)?, global.registry()),
            topics,
            schema: contract.schema.clone(),
            contracts: topology.contracts.values().map(|c| (c.name.clone(), c.schema.clone())).collect(),
        }),
        _ => None,
    };
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    interchange_console::serve(
        listener,
        Settings { operators, partners, read_model, dead_letters },
        shutdown::on_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
