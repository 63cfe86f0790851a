//! `hub ingest`: the HTTP edge.

use std::process::ExitCode;

use anyhow::Context;
use interchange_core::shutdown;
use interchange_core::Services;

use super::{kafka, load};
use crate::cli::{Global, IngestArgs};

pub async fn run(global: &Global, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let services = Services {
        kafka: kafka(global)?,
        registry: global.registry(),
        redis_url: Some(global.redis_url.clone()),
        cql_nodes: crate::commands::cql_nodes(global),
    };
    let app = interchange_ingest::build(&topology, &services, &args.edge).await.context("starting the ingest edge")?;
    let listener = tokio::net::TcpListener::bind(args.edge.listen)
        .await
        .with_context(|| format!("binding {}", args.edge.listen))?;
    let shutdown = shutdown::on_signal();
    interchange_ingest::run(listener, app, &args.edge, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
