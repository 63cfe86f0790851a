//! `hub ingest`: the HTTP edge.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use interchange_core::cli::Global;
use interchange_core::shutdown;

use super::{kafka, load};

/// `hub ingest` options.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub edge: interchange_ingest::IngestConfig,
}

pub async fn run(global: &Global, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let services = global.services(kafka(global)?);
    let app = interchange_ingest::build(&topology, &services, &args.edge).await.context("starting the ingest edge")?;
    let listener = tokio::net::TcpListener::bind(args.edge.listen)
        .await
        .with_context(|| format!("binding {}", args.edge.listen))?;
    let shutdown = shutdown::on_signal();
    interchange_ingest::run(listener, app, &args.edge, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
