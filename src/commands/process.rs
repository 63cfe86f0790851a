//! `hub process` (the processors) and `hub run` (every role in one process).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use interchange_core::cli::Global;
use interchange_core::shutdown;

use super::{kafka, load};

/// `hub process` options.
#[derive(Debug, Clone, Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    pub processor: interchange_processors::ProcessorConfig,
}

/// `hub run` options: those of every role.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub edge: interchange_ingest::IngestConfig,
    #[command(flatten)]
    pub processor: interchange_processors::ProcessorConfig,
    #[command(flatten)]
    pub sink: interchange_sinks::SinkConfig,
}

/// `hub sink` options.
#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    #[command(flatten)]
    pub sink: interchange_sinks::SinkConfig,
}

fn services(global: &Global) -> anyhow::Result<interchange_core::Services> {
    Ok(interchange_core::Services::new(kafka(global)?, global.registry()))
}

pub async fn run(global: &Global, args: &ProcessArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let shutdown = shutdown::on_signal();
    interchange_processors::run(&topology, &services(global)?, &args.processor, shutdown).await.context("processor")?;
    Ok(ExitCode::SUCCESS)
}

fn sink_services(global: &Global) -> anyhow::Result<interchange_core::Services> {
    Ok(global.services(kafka(global)?))
}

/// `hub sink`: the HTTP sinks and the read-model projector.
pub async fn run_sinks(global: &Global, args: &SinkArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let shutdown = shutdown::on_signal();
    interchange_sinks::run(&topology, &sink_services(global)?, &args.sink, shutdown).await.context("sinks")?;
    Ok(ExitCode::SUCCESS)
}

/// Every role in one process; one failing stops the others.
pub async fn run_all(global: &Global, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let shutdown = shutdown::on_signal();
    let edge_services = global.services(kafka(global)?);
    let app =
        interchange_ingest::build(&topology, &edge_services, &args.edge).await.context("starting the ingest edge")?;
    let listener = tokio::net::TcpListener::bind(args.edge.listen)
        .await
        .with_context(|| format!("binding {}", args.edge.listen))?;
    let edge = {
        let shutdown = shutdown.clone();
        async move {
            let result = interchange_ingest::run(listener, app, &args.edge, shutdown.clone()).await;
            shutdown.cancel();
            result.context("ingest edge")
        }
    };
    let processor_services = services(global)?;
    let processor = {
        let shutdown = shutdown.clone();
        let topology = &topology;
        async move {
            let result =
                interchange_processors::run(topology, &processor_services, &args.processor, shutdown.clone()).await;
            shutdown.cancel();
            result.context("processor")
        }
    };
    let sink_services = sink_services(global)?;
    let sinks = {
        let shutdown = shutdown.clone();
        let topology = &topology;
        async move {
            let result = interchange_sinks::run(topology, &sink_services, &args.sink, shutdown.clone()).await;
            shutdown.cancel();
            result.context("sinks")
        }
    };
    let (edge, processor, sinks) = tokio::join!(edge, processor, sinks);
    edge?;
    processor?;
    sinks?;
    Ok(ExitCode::SUCCESS)
}
