//! The real ingest edge, started in this process on a free loopback port and stopped (drained,
//! producer flushed) through its shutdown token.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use interchange_core::topology::Topology;
use interchange_core::Services;
use interchange_ingest::{IngestConfig, IngestError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long the edge may take to report ready (broker, registry and Redis probed).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// `hub ingest`'s options with nothing on the command line: the defaults, or the operator's
/// `HUB_INGEST_*` variables.
#[derive(Debug, Parser)]
struct Defaults {
    #[command(flatten)]
    edge: IngestConfig,
}

/// The edge's configuration for the bench: defaults, plain HTTP, no per-IP limit, concurrency
/// well above the most requests the bench keeps in flight (so nothing is shed), and short-lived
/// idempotency keys.
pub fn config(max_in_flight: usize) -> anyhow::Result<IngestConfig> {
    let mut config = Defaults::try_parse_from(["hub-bench"]).context("the edge's default settings")?.edge;
    config.concurrency = config.concurrency.max(max_in_flight.saturating_mul(2));
    config.tls_cert = None;
    config.tls_key = None;
    config.ip_rate_limit = None;
    config.idempotency_ttl = Duration::from_secs(15 * 60);
    Ok(config)
}

/// A running in-process edge.
#[derive(Debug)]
pub struct RunningEdge {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), IngestError>>,
    drain: Duration,
}

/// Builds the edge from `topology` and serves it on 127.0.0.1; returns once `/readyz` says ready.
pub async fn start(
    topology: &Topology,
    services: &Services,
    config: IngestConfig,
    client: &reqwest::Client,
) -> anyhow::Result<RunningEdge> {
    let app = interchange_ingest::build(topology, services, &config).await.context("starting the ingest edge")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the edge")?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let drain = config.drain_deadline;
    let token = shutdown.clone();
    let task = tokio::spawn(async move { interchange_ingest::run(listener, app, &config, token).await });
    let edge = RunningEdge { addr, shutdown, task, drain };
    if let Err(error) = wait_ready(addr, client).await {
        let _ = edge.stop().await;
        return Err(error);
    }
    Ok(edge)
}

async fn wait_ready(addr: SocketAddr, client: &reqwest::Client) -> anyhow::Result<()> {
    let url = format!("http://{addr}/readyz");
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        let ready = client.get(&url).send().await.is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
        if ready {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the edge was not ready within {READY_WITHIN:?} ({url})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl RunningEdge {
    /// Cancels the shutdown token and waits for the drain and the producer's flush.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let mut task = self.task;
        match tokio::time::timeout(self.drain * 2 + Duration::from_secs(5), &mut task).await {
            Ok(joined) => joined.context("edge task")?.context("the edge stopped with an error"),
            Err(_) => {
                task.abort();
                anyhow::bail!("the edge did not stop within {:?}", self.drain * 2 + Duration::from_secs(5))
            }
        }
    }
}
