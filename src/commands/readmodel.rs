//! `hub readmodel migrate`: creates the CQL read model (cql/readmodel.cql) of every projector
//! sink of the topology; safe to run any number of times.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use interchange_core::cli::Global;
use interchange_core::readmodel::schema;
use interchange_sinks::projector::cql;

use super::load;

#[derive(Debug, Subcommand)]
pub enum ReadModelCommand {
    /// Apply cql/readmodel.cql to the keyspace of every cql_projector sink (CREATE ... IF NOT
    /// EXISTS: idempotent).
    Migrate(MigrateArgs),
}

/// `hub readmodel migrate` options.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Copies of each row: the replication factor of a new keyspace.
    #[arg(long, env = "HUB_CQL_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: u32,
    /// Data center for NetworkTopologyStrategy (production); SimpleStrategy when not given (development).
    #[arg(long, env = "HUB_CQL_DATACENTER")]
    pub datacenter: Option<String>,
    /// Print the statements instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(global: &Global, command: ReadModelCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReadModelCommand::Migrate(args) => migrate(global, &args).await,
    }
}

async fn migrate(global: &Global, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let keyspaces = topology.read_models();
    if keyspaces.is_empty() {
        println!("no cql_projector sink in the topology: nothing to migrate");
        return Ok(ExitCode::SUCCESS);
    }
    let replication = schema::replication(args.replication_factor, args.datacenter.as_deref());
    if args.dry_run {
        for (keyspace, ttl) in keyspaces {
            for statement in schema::migration(keyspace, &replication, ttl) {
                println!("{statement};\n");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let nodes = global.cql_nodes();
    let session = cql::connect(&nodes, Duration::from_secs(10)).await.context("connecting to CQL")?;
    for (keyspace, ttl) in keyspaces {
        let n = cql::migrate(&session, keyspace, &replication, ttl)
            .await
            .with_context(|| format!("keyspace {keyspace}"))?;
        println!("read model {keyspace}: {n} statements applied (replication {replication})");
    }
    Ok(ExitCode::SUCCESS)
}
