//! `hub console`: the operator console, a role of its own (never a path of the partners' edge):
//! its own listener, its own operators and their permissions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use interchange_console::operators::Operators;
use interchange_console::{ConsoleOptions, Settings};
use interchange_core::cli::Global;
use interchange_core::{shutdown, Services};

use super::{kafka, load};

/// `hub console` options.
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Address the console listens on; keep it on the operators' network.
    #[arg(long = "console-listen", env = "HUB_CONSOLE_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The operators file: `[[operator]]` entries with `name`, `token_sha256` (`sha256sum` of
    /// the operator's token) and `permissions` (`["replay"]`; reading needs none).
    #[arg(long, env = "HUB_CONSOLE_OPERATORS")]
    pub operators: PathBuf,
    /// The topic (as the topology declares it, with the `operator_action` contract) where every
    /// replay is recorded; without it in the topology the console does not replay.
    #[arg(long, env = "HUB_CONSOLE_AUDIT_TOPIC", default_value = "console.audit")]
    pub audit_topic: String,
    /// Stable id of this console: part of its replays' transactional.id.
    #[arg(long, env = "HUB_INSTANCE_ID", default_value = "console-0")]
    pub instance_id: String,
    /// The roles' /metrics URLs the overview samples (comma-separated): by default the edge's,
    /// the processors' and the sinks' default listeners on this machine.
    #[arg(
        long,
        env = "HUB_CONSOLE_METRICS_FROM",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080/metrics,http://127.0.0.1:9091/metrics,http://127.0.0.1:9095/metrics"
    )]
    pub metrics_from: Vec<String>,
    /// Jaeger's UI (e.g. http://127.0.0.1:16686): an order's trace ids link to its traces.
    #[arg(long, env = "HUB_CONSOLE_JAEGER_URL")]
    pub jaeger_url: Option<String>,
}

pub async fn run(global: &Global, args: &ConsoleArgs) -> anyhow::Result<ExitCode> {
    let topology = load(global)?;
    let operators = Operators::load(&args.operators)?;
    let mut services = Services::new(kafka(global)?, global.registry());
    services.cql_nodes = global.cql_nodes();
    let options = ConsoleOptions {
        audit_topic: args.audit_topic.clone(),
        instance_id: args.instance_id.clone(),
        metrics_from: args.metrics_from.clone(),
        jaeger_url: args.jaeger_url.clone(),
    };
    let settings = Settings::from_topology(&topology, &services, operators, &options).await?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    interchange_console::serve(listener, settings, shutdown::on_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
