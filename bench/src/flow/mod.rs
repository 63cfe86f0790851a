//! `hub-bench flow`: the whole order flow on the local stack, measured end to end.
//!
//! Under a fresh topic prefix the bench starts, in its own process, a test ERP and the client's
//! callback receiver (both record arrival times), the ingest edge, the order processor and the
//! HTTP sinks; publishes stock for the SKUs it orders; then, for each rate, drives open-loop load
//! (warm-up, then the measured window), waits until every accepted order is finished, and
//! computes the rates and the latencies from each request's scheduled time to its `202`, to the
//! ERP's receipt of the dispatch and to the signed completion webhook. Consumer lag of the
//! processor and the sinks is sampled every second. Afterwards the topics are read back to
//! account for every order, and the HTTP and Kafka ceilings are measured as baselines.

mod account;
mod drive;
mod ledger;
mod partners;
mod pipeline;
mod plot;
mod report;
mod results;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use interchange_core::cli::Global;
use interchange_core::registry::Registry;
use interchange_processors::runtime::Mode;
use tokio::time::Instant;

use self::drive::Driver;
use self::ledger::Ledger;
use self::results::PhaseResult;
use super::requests;

/// Signed orders prepared for each phase and used in turn (each request has its own
/// correlation id and Idempotency-Key; the body and its signature repeat).
const POOL: usize = 4096;

/// `hub-bench flow` options.
#[derive(Debug, Clone, Args)]
pub struct FlowBenchArgs {
    /// Target rates (orders per second), one phase each, in order.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub rate: Vec<f64>,
    /// After the given rates, keep raising the rate by --step while the pipeline sustains it.
    #[arg(long)]
    pub find_max: bool,
    /// Factor between rates with --find-max.
    #[arg(long, default_value_t = 1.5)]
    pub step: f64,
    /// Highest rate --find-max tries.
    #[arg(long, default_value_t = 40_000.0)]
    pub max_rate: f64,
    /// Measured window of each phase.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Unmeasured load before each window (same rate).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub warmup: Duration,
    /// Longest wait after a phase for its accepted orders to finish.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub drain: Duration,
    /// A rate counts as sustained only with completion p99 under this.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub max_p99: Duration,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Most requests in flight; a request due beyond it is counted as missed.
    #[arg(long, default_value_t = 4096)]
    pub in_flight: usize,
    /// Send no Idempotency-Key (skips Redis on the edge).
    #[arg(long)]
    pub no_idempotency: bool,
    /// The processor's delivery guarantee.
    #[arg(long, value_enum, default_value_t = Mode::ExactlyOnce)]
    pub mode: Mode,
    /// Rate limit given to the bench's partners (the shipped topology caps the ERP at 500/s).
    #[arg(long, default_value_t = 1_000_000)]
    pub partner_rate: u32,
    /// Concurrent requests per partner.
    #[arg(long, default_value_t = 256)]
    pub partner_concurrency: u32,
    /// Records per processor transaction (the topology's `max_batch` when not given).
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// The processor's transaction interval (the topology's `commit_interval` when not given).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub commit_interval: Option<Duration>,
    /// When the processor commits (the topology's `commit` when not given).
    #[arg(long, value_enum)]
    pub commit: Option<interchange_core::topology::CommitPolicy>,
    /// Skip the HTTP and Kafka ceilings.
    #[arg(long)]
    pub no_baselines: bool,
    /// Write every figure as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw latency and lag over time to this SVG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Keep the run's topics.
    #[arg(long)]
    pub keep_topics: bool,
}

/// The rates to run: the given ones, then (with --find-max) steps above the last.
fn plan(args: &FlowBenchArgs) -> Vec<f64> {
    let mut rates: Vec<f64> = args.rate.iter().copied().filter(|r| *r > 0.0).collect();
    if args.find_max {
        let mut next = rates.last().copied().unwrap_or(1000.0) * args.step.max(1.05);
        while next <= args.max_rate {
            rates.push(next.round());
            next *= args.step.max(1.05);
        }
    }
    rates
}

/// Whether a phase kept up with its target.
pub fn sustained(phase: &PhaseResult, max_p99: Duration) -> bool {
    phase.load.missed == 0
        && phase.error_rate < 0.001
        && phase.accepted_per_s >= 0.97 * phase.rate
        && phase.completed_per_s >= 0.95 * phase.rate
        && results::ms(&phase.complete, 0.99) <= max_p99.as_secs_f64() * 1000.0
        && phase.accounting.notify_lost == 0
}

/// Runs the flow benchmark.
pub async fn run(global: &Global, args: &FlowBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.duration >= Duration::from_secs(1), "--duration must be at least 1s");
    let rates = plan(args);
    anyhow::ensure!(!rates.is_empty(), "no rate to run");
    let per_phase = (args.warmup + args.duration).as_secs_f64();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let capacity = rates.iter().map(|r| (r * per_phase).round() as usize + 1).sum::<usize>() + 1;
    let prefix = super::setup::fresh_prefix();
    let run_id = prefix.trim_start_matches("bench-").trim_end_matches('.').to_owned();
    let ledger = Arc::new(Ledger::new(&run_id, capacity));
    let kafka = super::setup::kafka(global)?;
    let registry = global.registry().client()?;
    let erp = partners::erp(Arc::clone(&ledger)).await?;
    let signing_secret = pipeline::random_secret();
    let callback = partners::callback(Arc::clone(&ledger), &signing_secret).await?;
    let limits = pipeline::PartnerLimits { rate: args.partner_rate, concurrency: args.partner_concurrency };
    let prepared =
        pipeline::prepare(&global.topology, &prefix, &erp.base_url(), &callback.base_url(), &signing_secret, limits)?;
    let mut topology = prepared.topology;
    if let Some(batch) = args.max_batch {
        topology.processors.iter_mut().for_each(|p| p.max_batch = batch);
    }
    if let Some(commit) = args.commit {
        topology.processors.iter_mut().for_each(|p| p.commit = commit);
    }
    if let Some(interval) = args.commit_interval {
        topology.processors.iter_mut().for_each(|p| p.commit_interval = interval);
    }
    eprintln!(
        "bench flow: prefix {prefix}; {} phase(s) at {:?}/s; ERP on {}, callback on {}",
        rates.len(),
        rates,
        erp.addr,
        callback.addr
    );
    let services = global.services(kafka.clone());
    let bench = Bench {
        args,
        topology: &topology,
        services: &services,
        credentials: &prepared.credentials,
        route: prepared.target.route.clone(),
        partner: prepared.target.partner.clone(),
        ledger: &ledger,
        registry: &registry,
    };
    let outcome = bench.measure(&rates).await;
    erp.stop().await;
    callback.stop().await;
    if args.keep_topics {
        eprintln!("bench flow: kept the topics of {prefix}");
    } else if let Err(error) = super::setup::delete_topics(&topology, &kafka).await {
        eprintln!("bench flow: could not delete the topics of {prefix}: {error:#}");
    }
    drop(prepared.secrets);
    let summary = outcome?;
    report::print(&summary);
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_vec_pretty(&report::json(&summary))?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench flow: wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::write(path, &summary.phases, &summary.lag_groups, &summary.lag)?;
        eprintln!("bench flow: drew {}", path.display());
    }
    Ok(if summary.exact() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Everything a run measured.
pub struct Summary {
    pub prefix: String,
    pub mode: Mode,
    pub idempotency: bool,
    pub body_bytes: usize,
    pub phases: Vec<PhaseResult>,
    pub lag_groups: Vec<String>,
    pub lag: Vec<report::LagSample>,
    pub topics: report::TopicCheck,
    pub baselines: BTreeMap<&'static str, f64>,
    pub max_p99: Duration,
}

impl Summary {
    /// No order lost or duplicated, by the bench's own counts and by the topics.
    pub fn exact(&self) -> bool {
        self.phases.iter().all(|p| p.accounting.exact()) && self.topics.exact()
    }
}

struct Bench<'a> {
    args: &'a FlowBenchArgs,
    topology: &'a interchange_core::topology::Topology,
    services: &'a interchange_core::Services,
    credentials: &'a requests::Credentials,
    route: interchange_core::topology::Route,
    partner: String,
    ledger: &'a Arc<Ledger>,
    registry: &'a Registry,
}

impl Bench<'_> {
    fn driver(&self, client: &reqwest::Client, addr: std::net::SocketAddr) -> anyhow::Result<Driver> {
        let pool = requests::pool_with(&self.ledger.run, POOL, self.credentials, |order| {
            if let Some(object) = order.as_object_mut() {
                object.remove("callback_url");
            }
        })?;
        Ok(Driver {
            client: client.clone(),
            url: format!("http://{addr}{}", self.route.path).into(),
            pool: pool.into(),
            idempotency: !self.args.no_idempotency,
            ledger: Arc::clone(self.ledger),
            errors: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    async fn measure(&self, rates: &[f64]) -> anyhow::Result<Summary> {
        let kafka = &self.services.kafka;
        eprintln!("bench flow: creating topics, registering contracts, publishing stock");
        let ids = pipeline::provision(self.topology, kafka, self.registry).await?;
        let inbound_before = super::setup::count_records(kafka, &self.route.topic).await?;
        let client = super::load::client(self.args.connections)?;
        eprintln!("bench flow: starting the edge, the processor ({:?}) and the HTTP sinks", self.args.mode);
        let running = pipeline::start(self.topology, self.services, self.args.mode, self.args.in_flight).await?;
        let body_bytes = self.driver(&client, running.edge.addr)?.pool.first().map_or(0, |p| p.body.len());
        let measured = self.phases(&client, running.edge.addr, rates, &running).await;
        eprintln!("bench flow: stopping the pipeline");
        let stopped = running.stop().await;
        let (phases, lag_groups, lag, next) = measured?;
        stopped?;
        eprintln!("bench flow: reading the topics back");
        let counts = account::read_topics(self.topology, kafka, self.registry, self.ledger, inbound_before).await?;
        let topics = report::TopicCheck::of(self.ledger, &counts, next);
        let baselines = if self.args.no_baselines { BTreeMap::new() } else { self.baselines(&ids).await? };
        Ok(Summary {
            prefix: self.topology.topic_prefix.clone(),
            mode: self.args.mode,
            idempotency: !self.args.no_idempotency,
            body_bytes,
            phases,
            lag_groups,
            lag,
            topics,
            baselines,
            max_p99: self.args.max_p99,
        })
    }

    /// The probe order, then every phase; returns the results, the lag samples and the number
    /// of requests used.
    async fn phases(
        &self,
        client: &reqwest::Client,
        addr: std::net::SocketAddr,
        rates: &[f64],
        running: &pipeline::Running,
    ) -> anyhow::Result<(Vec<PhaseResult>, Vec<String>, Vec<report::LagSample>, usize)> {
        // One order through everything before measuring: the groups are joined, the caches warm.
        let driver = self.driver(client, addr)?;
        driver.open_loop(0, 1.0, Duration::from_secs(1), Instant::now(), 1).await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.ledger.unfinished(0..1) > 0
            || self.ledger.slots[0].outcome.load(std::sync::atomic::Ordering::Relaxed) != ledger::ACCEPTED
        {
            anyhow::ensure!(Instant::now() < deadline, "the probe order did not finish within 120 s");
            anyhow::ensure!(!running.failed(), "the processor or the sinks stopped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("bench flow: probe order completed; measuring");
        let sampler = account::LagSampler::start(self.topology, &self.services.kafka, self.ledger)?;
        let mut next = 1;
        let mut phases = Vec::new();
        let given = self.args.rate.len();
        let outcome = async {
            for (i, rate) in rates.iter().enumerate() {
                let phase = self.phase(client, addr, *rate, next).await?;
                next += phase.1;
                let phase = phase.0;
                let ok = sustained(&phase, self.args.max_p99);
                eprintln!("{}", report::line(&phase, ok));
                phases.push(phase);
                anyhow::ensure!(!running.failed(), "the processor or the sinks stopped");
                if i + 1 >= given && !ok && self.args.find_max {
                    break;
                }
            }
            anyhow::Ok(())
        }
        .await;
        let groups = sampler.groups.clone();
        let lag = sampler.stop();
        outcome?;
        Ok((phases, groups, lag, next))
    }

    async fn phase(
        &self,
        client: &reqwest::Client,
        addr: std::net::SocketAddr,
        rate: f64,
        first: usize,
    ) -> anyhow::Result<(PhaseResult, usize)> {
        let driver = self.driver(client, addr)?;
        let (warmup, duration) = (self.args.warmup, self.args.duration);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let (total, warm) = (
            ((rate * (warmup + duration).as_secs_f64()).round() as usize),
            (rate * warmup.as_secs_f64()).round() as usize,
        );
        let start = Instant::now() + Duration::from_millis(20);
        let window = (self.ledger.stamp(start + warmup), self.ledger.stamp(start + warmup + duration));
        eprintln!("bench flow: phase at {rate:.0}/s: {warmup:?} warm-up + {duration:?} measured ({total} requests)");
        // The kernel's CPU accounting at both ends of the measured window.
        let cpu = tokio::spawn(async move {
            tokio::time::sleep_until(start + warmup).await;
            let before = tokio::task::spawn_blocking(super::cpu::Snapshot::take).await?;
            tokio::time::sleep_until(start + warmup + duration).await;
            let after = tokio::task::spawn_blocking(super::cpu::Snapshot::take).await?;
            anyhow::Ok((before, after))
        });
        let load = driver.open_loop(first, rate, warmup + duration, start, self.args.in_flight).await?;
        let cpu = cpu.await.context("CPU accounting task")?;
        let sent = Instant::now();
        let range = first..first + total;
        while self.ledger.unfinished(range.clone()) > 0 && sent.elapsed() < self.args.drain {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drain_s = sent.elapsed().as_secs_f64();
        // Room for a late duplicate to show.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let errors = driver.errors.lock().map(|e| e.clone()).unwrap_or_default();
        if !errors.is_empty() {
            eprintln!("bench flow: errors at {rate:.0}/s: {errors:?}");
        }
        let mut result = PhaseResult::compute(
            self.ledger,
            rate,
            duration,
            load,
            range,
            first + warm..first + total,
            window,
            drain_s,
        )?;
        if let Ok((before, after)) = &cpu {
            let budget = super::cpu::Budget::between(before, after, result.accepted_per_s * duration.as_secs_f64());
            result.cpu = Some(budget);
        }
        Ok((result, total))
    }

    /// The HTTP ceiling (a server that only parses the JSON) and the Kafka ceiling (a plain
    /// producer writing the edge's record), closed loop, after the pipeline stopped.
    async fn baselines(&self, ids: &BTreeMap<String, u32>) -> anyhow::Result<BTreeMap<&'static str, f64>> {
        use super::baseline::{self, HttpCeiling, KafkaLoad};
        use super::load::{closed_loop, HttpTarget};
        let mut out = BTreeMap::new();
        let duration = self.args.duration.min(Duration::from_secs(10));
        let connections = 64;
        eprintln!("bench flow: baseline: HTTP ceiling ({connections} connections, closed loop)");
        let server = HttpCeiling::start(&self.route.path).await?;
        let url = format!("http://{}{}", server.addr, self.route.path);
        let measured = async {
            let pool = requests::pool(&self.ledger.run, POOL, self.credentials)?;
            let target = HttpTarget::new(super::load::client(connections)?, url, pool, None);
            closed_loop(&target, connections, Duration::from_secs(1)).await?;
            closed_loop(&target, connections, duration).await
        }
        .await;
        server.stop().await;
        let (recorder, elapsed) = measured?;
        out.insert("http_ceiling_per_s", recorder.accepted as f64 / elapsed.as_secs_f64().max(1e-9));

        let in_flight = connections * 4;
        eprintln!("bench flow: baseline: Kafka ceiling ({in_flight} sends in flight)");
        let contract = super::setup::route_contract(self.topology, &self.route)?;
        let subject = super::setup::route_subject(self.topology, &self.route)?;
        let schema_id = *ids.get(&subject).context("route subject not registered")?;
        let payload = requests::avro_payload(contract, schema_id, &self.partner)?;
        let load =
            KafkaLoad { topic: self.route.topic.clone(), payload: payload.into(), event_type: contract.name.clone() };
        let producer = Arc::new(baseline::producer(&self.services.kafka, Duration::from_secs(30))?);
        baseline::produce_loop(&producer, &load, in_flight, Duration::from_secs(1)).await?;
        let (recorder, elapsed) = baseline::produce_loop(&producer, &load, in_flight, duration).await?;
        baseline::flush(producer, Duration::from_secs(30)).await?;
        out.insert("kafka_ceiling_per_s", recorder.accepted as f64 / elapsed.as_secs_f64().max(1e-9));
        Ok(out)
    }
}
