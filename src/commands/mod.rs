//! One function per subcommand; each returns the process exit code.

mod ingest;
mod schemas;
mod topology;

use std::process::ExitCode;

use anyhow::Context;
use interchange_core::kafka::KafkaSettings;
use interchange_core::topology::Topology;

use crate::cli::{Cli, Command, Global};

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Topology(cmd) => topology::run(&global, cmd).await,
        Command::Schemas(cmd) => schemas::run(&global, cmd).await,
        Command::Ingest(args) => ingest::run(&global, &args).await,
        Command::Bench(crate::cli::BenchCommand::Ingest(args)) => crate::bench::ingest(&global, &args).await,
        Command::Run(args) => {
            tracing::warn!("processors and sinks are not built yet: `hub run` runs the ingest edge only");
            ingest::run(&global, &args).await
        }
        Command::Process | Command::Sink => {
            // Loaded so a role never starts on a broken topology.
            load(&global)?;
            anyhow::bail!("this role is not built yet: see the open issues for processors (4) and sinks (5)")
        }
    }
}

/// Loads and validates the topology, printing every error.
pub fn load(global: &Global) -> anyhow::Result<Topology> {
    Topology::load(&global.topology, &global.topic_prefix).map_err(anyhow::Error::new)
}

/// Kafka settings from the global options.
pub fn kafka(global: &Global) -> anyhow::Result<KafkaSettings> {
    KafkaSettings::new(&global.bootstrap_servers, global.kafka_config.as_deref(), &global.kafka_properties)
        .context("Kafka settings")
}
