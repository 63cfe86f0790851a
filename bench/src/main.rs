//! `hub-bench`: load generators that measure the hub on the local stack, each against baselines
//! measured in the same run: `flow` (the whole flow end to end), `ingest` (the edge), `process`
//! (the order processor and state restore), `project` (the read-model projector), `sink` (the
//! HTTP sinks) and `console` (the operator console's pages). Roles run in this process through the library crates; `sink --backlog` measures a
//! `hub sink` child process, the `hub` binary found next to this executable. Separate from `hub`
//! so the production binary carries none of this code or its dependencies (plotters,
//! hdrhistogram). The criterion micro-benchmarks of the hot pure paths are `benches/hot_paths.rs`
//! (`cargo bench -p hub-bench --bench hot_paths`).

mod baseline;
mod console;
mod cpu;
mod edge;
mod flow;
mod ingest;
mod load;
mod peer;
mod process;
mod project;
mod report;
mod requests;
mod retention;
mod setup;
mod sink;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use interchange_core::cli::Global;
use interchange_core::telemetry;

/// mimalloc, as in `hub`: the roles the benches run in this process allocate as they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load generators that measure the hub on the local stack against baselines.
///
/// Every option can also be set through the environment variable shown; flags win.
#[derive(Debug, Parser)]
#[command(name = "hub-bench", version, long_about = None, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive the ingest edge with realistic orders; compare with the HTTP and Kafka ceilings.
    Ingest(ingest::IngestBenchArgs),
    /// Measure the order processor: exactly-once against at-least-once, and state restore.
    Process(process::ProcessBenchArgs),
    /// Measure the operator console's page times with 100,000 orders and 10,000 dead letters
    /// behind it, against the same server's /healthz.
    Console(console::ConsoleBenchArgs),
    /// Measure the read-model projector: states projected per second and state-topic commit to
    /// readable row latency, against raw CQL inserts.
    Project(project::ProjectBenchArgs),
    /// Measure the HTTP sink: deliveries/s against bare reqwest, the rate limiter's accuracy, and
    /// a sink's memory with a million commands waiting.
    Sink(sink::SinkBenchArgs),
    /// The whole flow end to end (edge, processor, sinks, a test ERP and client) under open-loop load.
    Flow(flow::FlowBenchArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Flushes unsent spans when main returns.
    let _telemetry = telemetry::init(cli.global.log_format(), &cli.global.log_filter, "tool");
    let global = cli.global;
    let outcome = match cli.command {
        Command::Ingest(args) => ingest::ingest(&global, &args).await,
        Command::Process(args) => process::run(&global, &args).await,
        Command::Project(args) => project::run(&global, &args).await,
        Command::Console(args) => console::run(&global, &args).await,
        Command::Sink(args) => sink::run(&global, &args).await,
        Command::Flow(args) => flow::run(&global, &args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
