//! `hub bench`: load generators that measure the hub on the local stack, each against
//! baselines measured in the same run.

use std::process::ExitCode;

use clap::Args;

use crate::cli::Global;

/// `hub bench ingest` options.
#[derive(Debug, Clone, Args)]
pub struct IngestBenchArgs {
    /// How long each measured phase runs.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: std::time::Duration,
}

/// Runs the ingest benchmark.
pub async fn ingest(_global: &Global, _args: &IngestBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not written yet")
}
