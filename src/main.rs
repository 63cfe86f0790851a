//! `hub`: the single binary of Interchange.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use interchange_core::telemetry;

use crate::cli::Cli;

/// mimalloc: the edge and the processors allocate small objects from many threads; glibc's
/// malloc showed lock contention in the ingest profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Flushes unsent spans when main returns.
    let _telemetry = telemetry::init(cli.global.log_format(), &cli.global.log_filter, cli.command.role());
    match cli::dispatch(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
