//! One function per subcommand; each returns the process exit code.

mod demo;
mod dlq;
mod ingest;
mod probe;
mod process;
mod readmodel;
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
        Command::Bench(crate::cli::BenchCommand::Process(args)) => crate::bench::process::run(&global, &args).await,
        Command::Readmodel(cmd) => readmodel::run(&global, cmd).await,
        Command::Bench(crate::cli::BenchCommand::Project(args)) => crate::bench::project::run(&global, &args).await,
        Command::Bench(crate::cli::BenchCommand::Sink(args)) => crate::bench::sink::run(&global, &args).await,
        Command::Bench(crate::cli::BenchCommand::Flow(args)) => crate::bench::flow::run(&global, &args).await,
        Command::Run(args) => process::run_all(&global, &args).await,
        Command::Process(args) => process::run(&global, &args).await,
        Command::Sink(args) => process::run_sinks(&global, &args).await,
        Command::Demo(args) => demo::run(&global, &args).await,
        Command::Dlq(cmd) => dlq::run(&global, cmd).await,
        Command::Probe(args) => probe::run(&args).await,
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

/// The CQL contact points from the global options.
pub fn cql_nodes(global: &Global) -> Vec<String> {
    global.cql_nodes.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}
