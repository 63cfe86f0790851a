//! `hub`: the single binary of Interchange.

mod bench;
mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use interchange_core::telemetry::{self, LogFormat};

use crate::cli::{Cli, Command, LogFormatArg};

/// mimalloc: the edge and the processors allocate small objects from many threads; glibc's
/// malloc showed lock contention in the ingest profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.global.log_format {
        LogFormatArg::Auto => LogFormat::Auto,
        LogFormatArg::Json => LogFormat::Json,
        LogFormatArg::Text => LogFormat::Text,
    };
    let role = match &cli.command {
        Command::Run(_) => "all",
        Command::Ingest(_) => "ingest",
        Command::Process(_) => "processor",
        Command::Sink(_) => "sink",
        Command::Topology(_)
        | Command::Schemas(_)
        | Command::Readmodel(_)
        | Command::Bench(_)
        | Command::Demo(_)
        | Command::Dlq(_)
        | Command::Probe(_) => "tool",
    };
    // Flushes unsent spans when main returns.
    let _telemetry = telemetry::init(format, &cli.global.log_filter, role);
    match commands::dispatch(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
