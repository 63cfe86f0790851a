//! `hub-bench process --peer kstreams|declared`: the hub's exactly-once processor against a peer
//! doing the same work on the same broker (the Kafka Streams application, or the order saga
//! declared in `machines/order_saga.toml` run by the interpreter), in alternating runs on the same
//! backlog; the ratio of the medians is the figure (single pairs on a shared 2-core machine swing
//! widely).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use interchange_core::cli::Global;
use interchange_core::kafka::KafkaSettings;
use interchange_core::registry::Registry;
use interchange_core::topology::Topology;
use interchange_processors::runtime::Mode;
use serde_json::{json, Value};

use super::process::{throughput, ProcessBenchArgs, Throughput};

/// The peers `--peer` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// The Kafka Streams application of `../shared/peers/kstreams` (`run.sh backlog N`).
    Kstreams,
    /// The same topology with the order saga run from `machines/order_saga.toml` (its
    /// `machine` line) instead of the coded saga: the interpreter's cost.
    Declared,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Kstreams => "kstreams",
            Peer::Declared => "declared",
        }
    }
}

/// One peer run's figures, as its driver printed them.
#[derive(Debug)]
pub struct PeerRun {
    records_per_second: f64,
    exact: bool,
    report: Value,
}

/// The alternating runs and their medians.
pub struct Comparison {
    pub(super) hub: Vec<Throughput>,
    peer: Vec<PeerRun>,
    batch: usize,
    /// Transaction loops of the hub's processor, stream threads of the Kafka Streams peer.
    threads: u16,
    against: Peer,
}

impl Comparison {
    fn medians(&self) -> (f64, f64) {
        (median(self.hub.iter().map(|r| r.records_per_second)), median(self.peer.iter().map(|r| r.records_per_second)))
    }

    pub fn print(&self) {
        let (hub, peer) = self.medians();
        let name = self.against.name();
        let title = match self.against {
            Peer::Kstreams => "against Kafka Streams",
            Peer::Declared => "the declared order saga against the coded one (hub: coded)",
        };
        println!(
            "\n{title} ({} alternating pairs, exactly-once at batch {}, {} thread(s) each)",
            self.hub.len(),
            self.batch,
            self.threads
        );
        for (i, (h, p)) in self.hub.iter().zip(&self.peer).enumerate() {
            println!(
                "  pair {}: hub {:.0} records/s, {name} {:.0} records/s ({:.2}x){}",
                i + 1,
                h.records_per_second,
                p.records_per_second,
                h.records_per_second / p.records_per_second.max(1e-9),
                if p.exact { "" } else { ", NOT exact" }
            );
        }
        println!(
            "  medians: hub {hub:.0}, {name} {peer:.0} records/s: hub / {name} = {:.2}x, {name} / hub = {:.2}x",
            hub / peer.max(1e-9),
            peer / hub.max(1e-9)
        );
    }

    /// Runs that lost or repeated an order: the hub's, and the declared saga's (the Kafka
    /// Streams peer's own accounting is printed, not counted).
    pub fn inexact(&self) -> usize {
        let peer = if self.against == Peer::Declared { self.peer.iter().filter(|p| !p.exact).count() } else { 0 };
        self.hub.iter().filter(|r| !r.exact()).count() + peer
    }

    pub fn json(&self) -> Value {
        let (hub, peer) = self.medians();
        json!({
            "peer": self.against.name(),
            "batch": self.batch,
            "threads": self.threads,
            "hub_records_per_second": self.hub.iter().map(|r| r.records_per_second).collect::<Vec<_>>(),
            "peer_records_per_second": self.peer.iter().map(|r| r.records_per_second).collect::<Vec<_>>(),
            "hub_median": hub,
            "peer_median": peer,
            "ratio_of_medians": hub / peer.max(1e-9),
            "peer_reports": self.peer.iter().map(|r| r.report.clone()).collect::<Vec<_>>(),
        })
    }
}

/// The topology with its order saga run from `machines/order_saga.toml`, written beside the
/// original (its schemas and machines resolve alike) for as long as the comparison runs.
struct Declared {
    global: Global,
}

impl Declared {
    fn beside(global: &Global) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(&global.topology).context("the topology")?;
        let text = interchange_core::topology::machine::order_saga_declared(&text)
            .context("the topology has no single coded order saga")?;
        let path = global.topology.with_file_name(format!(".topology-declared-{}.toml", std::process::id()));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        let mut global = global.clone();
        global.topology = path;
        Ok(Self { global })
    }
}

impl Drop for Declared {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.global.topology);
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The peer's folder: `--peer-dir`, else `../shared/peers/kstreams` beside the repository.
fn peer_dir(args: &ProcessBenchArgs) -> anyhow::Result<PathBuf> {
    let dir = match &args.peer_dir {
        Some(dir) => dir.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers/kstreams"),
    };
    anyhow::ensure!(
        dir.join("run.sh").is_file(),
        "no Kafka Streams peer at {} (set --peer-dir or KSTREAMS_PEER_DIR)",
        dir.display()
    );
    Ok(dir)
}

/// `run.sh backlog N --threads T` against the same broker (as many stream threads as the hub's
/// processor has transaction loops, `HUB_PROCESSOR_THREADS`); its one JSON line on stdout is the
/// report.
async fn run_peer(dir: &Path, kafka: &KafkaSettings, orders: usize, threads: u16) -> anyhow::Result<PeerRun> {
    let output = tokio::process::Command::new("bash")
        .arg(dir.join("run.sh"))
        .args(["backlog", &orders.to_string(), "--threads", &threads.to_string()])
        .env("BOOTSTRAP_SERVERS", &kafka.bootstrap_servers)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("running the Kafka Streams peer")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("the peer printed no report (exit {:?}): {stdout}", output.status.code()))?;
    let report: Value = serde_json::from_str(line).context("the peer's report")?;
    let records_per_second =
        report.get("records_per_second").and_then(Value::as_f64).context("the peer's records_per_second")?;
    let exact = report.get("exact").and_then(Value::as_bool).unwrap_or(false);
    Ok(PeerRun { records_per_second, exact, report })
}

/// Alternates the hub's exactly-once processor and the peer, `--pairs` times, hub first on even
/// pairs and the peer first on odd ones.
pub async fn compare(
    global: &Global,
    kafka: &KafkaSettings,
    registry: &Registry,
    peer: Peer,
    args: &ProcessBenchArgs,
) -> anyhow::Result<Comparison> {
    let dir = match peer {
        Peer::Kstreams => Some(peer_dir(args)?),
        Peer::Declared => None,
    };
    let topology = Topology::load(&global.topology, "").map_err(anyhow::Error::new)?;
    let batch = topology.processors.first().context("no processor")?.max_batch;
    let declared = if peer == Peer::Declared { Some(Declared::beside(global)?) } else { None };
    let threads = super::process::processor_config(Mode::ExactlyOnce)?.threads;
    let mut comparison = Comparison { hub: Vec::new(), peer: Vec::new(), batch, threads, against: peer };
    for pair in 0..args.pairs {
        for hub_turn in if pair % 2 == 0 { [true, false] } else { [false, true] } {
            if hub_turn {
                eprintln!("pair {}: hub, exactly-once, batch {batch}, {} orders ...", pair + 1, args.orders);
                let run =
                    throughput(global, kafka, registry, Mode::ExactlyOnce, batch, args.orders, args.commit).await?;
                eprintln!("  {:.0} records/s", run.records_per_second);
                comparison.hub.push(run);
            } else if let Some(dir) = &dir {
                eprintln!(
                    "pair {}: kstreams, exactly_once_v2, {threads} thread(s), {} records ...",
                    pair + 1,
                    args.orders
                );
                let run = run_peer(dir, kafka, args.orders, threads).await?;
                eprintln!("  {:.0} records/s", run.records_per_second);
                comparison.peer.push(run);
            } else if let Some(declared) = &declared {
                eprintln!(
                    "pair {}: declared order saga, exactly-once, batch {batch}, {} orders ...",
                    pair + 1,
                    args.orders
                );
                let run =
                    throughput(&declared.global, kafka, registry, Mode::ExactlyOnce, batch, args.orders, args.commit)
                        .await?;
                eprintln!("  {:.0} records/s", run.records_per_second);
                let report = json!({ "records_per_second": run.records_per_second, "commands": run.commands });
                comparison.peer.push(PeerRun {
                    records_per_second: run.records_per_second,
                    exact: run.exact(),
                    report,
                });
            }
        }
    }
    Ok(comparison)
}
