//! Command-line surface of `hub`: the global connection options (`interchange_core::cli`, shared
//! with `hub-bench`) and one subcommand per role or tool, each with the options its module in
//! `commands/` owns; [`dispatch`] runs the parsed command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use interchange_core::cli::Global;

use crate::commands::{console, demo, dlq, ingest, probe, process, readmodel, schemas, topology};

/// Interchange: a Kafka-native integration hub.
///
/// Every option can also be set through the environment variable shown; flags win.
#[derive(Debug, Parser)]
#[command(name = "hub", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process: the ingest edge, the processors and the HTTP sinks.
    Run(process::RunArgs),
    /// Run the HTTP ingest edge.
    ///
    /// Each partner is identified from the request's headers (API key or JWT, then its webhook
    /// signature) before its body is read. A correlation id a partner supplies is scoped to it
    /// (`<partner>:<id>`), so partners never collide. Beside each order route it serves the
    /// order status API, behind the same limits: `GET <route>/{id}`, `GET <route>/{id}/events`
    /// and `GET <route>?order_id=` (the partner's own order id; only ever the caller's orders).
    /// The routes are in /openapi.json.
    Ingest(ingest::IngestArgs),
    /// Run the stateful processors.
    Process(process::ProcessArgs),
    /// Run the HTTP sink connectors (deliveries to partners and client notifications).
    ///
    /// A sink serves the partners its topology entry lists (`partners = [...]`): each command goes
    /// to the partner it names, with that partner's endpoint, secret, rate limit and breaker; a
    /// command for a partner the sink does not serve is a dead letter, never another partner's.
    Sink(process::SinkArgs),
    /// Check, apply, describe or render the topics of the topology.
    #[command(subcommand)]
    Topology(topology::TopologyCommand),
    /// Check or register the Avro contracts with the schema registry.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
    /// Create or update the CQL read model (keyspace and tables) the projector writes and the
    /// order status API reads.
    #[command(subcommand)]
    Readmodel(readmodel::ReadModelCommand),
    /// List dead letters, or replay them to their source topics (filters: partner, correlation
    /// id, stage, time range).
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Run the operator console: orders (search, state and timeline from the read model) in a
    /// browser, for the operators of `--operators`.
    Console(console::ConsoleArgs),
    /// Stand-in partners for a first run: publishes demo stock (SKU-1 to SKU-9), then serves an
    /// ERP and a client callback receiver that log what they receive and answer 201.
    Demo(demo::DemoArgs),
    /// Exit 0 when a URL answers 2xx: the health check of the container image (no curl in it).
    Probe(probe::ProbeArgs),
}

impl Command {
    /// The role this process plays, as telemetry names it.
    pub fn role(&self) -> &'static str {
        match self {
            Command::Run(_) => "all",
            Command::Ingest(_) => "ingest",
            Command::Process(_) => "processor",
            Command::Sink(_) => "sink",
            Command::Console(_) => "console",
            Command::Topology(_)
            | Command::Schemas(_)
            | Command::Readmodel(_)
            | Command::Demo(_)
            | Command::Dlq(_)
            | Command::Probe(_) => "tool",
        }
    }
}

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Topology(cmd) => topology::run(&global, cmd).await,
        Command::Schemas(cmd) => schemas::run(&global, cmd).await,
        Command::Ingest(args) => ingest::run(&global, &args).await,
        Command::Readmodel(cmd) => readmodel::run(&global, cmd).await,
        Command::Run(args) => process::run_all(&global, &args).await,
        Command::Process(args) => process::run(&global, &args).await,
        Command::Sink(args) => process::run_sinks(&global, &args).await,
        Command::Console(args) => console::run(&global, &args).await,
        Command::Demo(args) => demo::run(&global, &args).await,
        Command::Dlq(cmd) => dlq::run(&global, cmd).await,
        Command::Probe(args) => probe::run(&args).await,
    }
}
