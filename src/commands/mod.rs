//! One module per subcommand: its options and a `run` that returns the process exit code. The
//! modules know the shared options ([`Global`]) and not the command line they are composed into
//! (`cli.rs`).

pub mod console;
pub mod demo;
pub mod dlq;
pub mod ingest;
pub mod probe;
pub mod process;
pub mod readmodel;
pub mod schemas;
pub mod topology;

use anyhow::Context;
use interchange_core::cli::Global;
use interchange_core::kafka::KafkaSettings;
use interchange_core::topology::Topology;

/// Loads and validates the topology, printing every error.
pub fn load(global: &Global) -> anyhow::Result<Topology> {
    Topology::load(&global.topology, &global.topic_prefix).map_err(anyhow::Error::new)
}

/// Kafka settings from the global options.
pub fn kafka(global: &Global) -> anyhow::Result<KafkaSettings> {
    global.kafka().context("Kafka settings")
}
