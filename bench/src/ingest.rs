//! `hub-bench ingest`: the ingest edge alone, with every check on, against baselines measured in
//! the same run.
//!
//! `hub-bench ingest` works under a fresh topic prefix (`bench-<8 hex>.`): it creates that
//! prefix's topics and subjects, then measures in turn an HTTP ceiling (a server that only
//! parses the JSON), a Kafka ceiling (a plain producer writing the edge's record), the real edge
//! started in this process at its peak (closed loop) and at half of that peak (open loop, latency
//! from the scheduled send time), checks that the topic holds exactly one record per `202`, and
//! deletes the topics. Everything runs on 127.0.0.1 and stops by itself.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use interchange_core::cli::Global;
use interchange_core::kafka::KafkaSettings;
use interchange_core::topology::Topology;
use interchange_core::Services;

use crate::baseline::{self, HttpCeiling, KafkaLoad};
use crate::edge;
use crate::load::{self, closed_loop, open_loop, HttpTarget};
use crate::report::{self, RecordCheck, Summary};
use crate::requests::{self, Credentials};
use crate::setup::{self, SecretDir, Target};
use crate::stats::Phase;

/// Signed orders prepared before each phase and sent in turn (unique order ids within a pool).
const POOL: usize = 4096;
/// The Kafka baseline keeps this many sends in flight per connection.
const KAFKA_IN_FLIGHT_PER_CONNECTION: usize = 4;
/// The open loop keeps at most this many requests in flight per connection.
const OPEN_LOOP_CAP_PER_CONNECTION: usize = 10;

/// `hub-bench ingest` options.
#[derive(Debug, Clone, Args)]
pub struct IngestBenchArgs {
    /// How long each measured phase runs.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Unmeasured warm-up before each phase.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub warmup: Duration,
    /// Concurrent keep-alive connections of the closed loops (the Kafka baseline keeps 4x as many
    /// sends in flight; the open loop at most 10x as many requests).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub connections: u16,
    /// Send a unique Idempotency-Key with every edge request (exercises Redis).
    #[arg(long)]
    pub idempotency: bool,
    /// Keep the run's topics instead of deleting them at the end.
    #[arg(long)]
    pub keep_topics: bool,
    /// Also run the peak phase again with every span exported over OTLP (to a receiver the
    /// bench runs), to measure what tracing costs.
    #[arg(long)]
    pub tracing: bool,
}

/// What every phase needs.
struct Bench<'a> {
    args: &'a IngestBenchArgs,
    connections: usize,
    topology: &'a Topology,
    kafka: &'a KafkaSettings,
    services: Services,
    target: &'a Target,
    credentials: &'a Credentials,
    /// The prefix's hex part, in order ids and idempotency keys.
    run_id: String,
}

impl Bench<'_> {
    /// A freshly signed pool of orders.
    fn pool(&self) -> anyhow::Result<Vec<requests::Prepared>> {
        requests::pool(&self.run_id, POOL, self.credentials)
    }
}

/// Runs the ingest benchmark.
pub async fn ingest(global: &Global, args: &IngestBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.duration >= Duration::from_secs(1), "--duration must be at least 1s");
    let prefix = setup::fresh_prefix();
    let mut topology = Topology::load(&global.topology, &prefix).map_err(anyhow::Error::new)?;
    let credentials = Credentials::random();
    let secrets = SecretDir::new(&prefix)?;
    let target = setup::use_credentials(&mut topology, &credentials, &secrets)?;
    let tolerance = topology
        .partner(&target.partner)
        .and_then(|p| p.inbound.as_ref())
        .map_or(Duration::from_secs(300), |i| i.webhook_tolerance);
    anyhow::ensure!(
        args.warmup + args.duration + Duration::from_secs(30) < tolerance,
        "--warmup plus --duration must stay 30s under the partner's signature tolerance ({tolerance:?}): signatures are made before each phase"
    );
    let kafka = setup::kafka(global)?;
    let services = global.services(kafka.clone());
    let bench = Bench {
        args,
        connections: usize::from(args.connections),
        topology: &topology,
        kafka: &kafka,
        services,
        target: &target,
        credentials: &credentials,
        run_id: prefix.trim_start_matches("bench-").trim_end_matches('.').to_owned(),
    };
    eprintln!("bench: prefix {prefix}: creating topics, registering contracts");
    let outcome = run(&bench).await;
    if args.keep_topics {
        eprintln!("bench: kept the topics of {prefix}");
    } else if let Err(error) = setup::delete_topics(&topology, &kafka).await {
        eprintln!("bench: could not delete the topics of {prefix}: {error:#}");
    }
    drop(secrets);
    let summary = outcome?;
    report::print(&summary);
    let peak_ok = summary.phases.iter().any(|p| p.key == "edge_peak" && p.recorder.accepted > 0);
    let counts_ok = summary.records.is_some_and(|c| c.matches());
    if !counts_ok {
        eprintln!("bench: FAILED: the records on the topic do not match the edge's 202 answers");
    }
    Ok(if peak_ok && counts_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn run(bench: &Bench<'_>) -> anyhow::Result<Summary> {
    let (topology, route) = (bench.topology, &bench.target.route);
    setup::create_topics(topology, bench.kafka).await?;
    let registry = bench.services.registry.client()?;
    let ids = setup::register_schemas(topology, &registry).await?;
    let subject = setup::route_subject(topology, route)?;
    let schema_id = *ids.get(&subject).with_context(|| format!("subject {subject} was not registered"))?;
    let contract = setup::route_contract(topology, route)?;
    let edge_config = edge::config(bench.connections * OPEN_LOOP_CAP_PER_CONNECTION)?;
    let body_bytes = bench.pool()?.first().map_or(0, |p| p.body.len());

    let mut phases = vec![http_ceiling(bench).await?];

    let payload = requests::avro_payload(contract, schema_id, &bench.target.partner)?;
    let load = KafkaLoad { topic: route.topic.clone(), payload: payload.into(), event_type: contract.name.clone() };
    phases.push(kafka_ceiling(bench, &load, edge_config.delivery_timeout).await?);

    let before = setup::count_records(bench.kafka, &route.topic).await?;
    eprintln!("bench: starting the edge ({} records on {} from the Kafka baseline)", before, route.topic);
    let client = load::client(bench.connections)?;
    let running = edge::start(topology, &bench.services, edge_config, &client).await?;
    let measured = edge_phases(bench, &client, running.addr).await;
    drop(client);
    eprintln!("bench: stopping the edge");
    let stopped = running.stop().await;
    let (edge_phases, accepted) = measured?;
    stopped?;
    phases.extend(edge_phases);
    let after = setup::count_records(bench.kafka, &route.topic).await?;

    Ok(Summary {
        prefix: topology.topic_prefix.clone(),
        route: route.path.clone(),
        partner: bench.target.partner.clone(),
        connections: bench.connections,
        kafka_in_flight: bench.connections * KAFKA_IN_FLIGHT_PER_CONNECTION,
        duration: bench.args.duration,
        warmup: bench.args.warmup,
        idempotency: bench.args.idempotency,
        pool: POOL,
        body_bytes,
        phases,
        records: Some(RecordCheck { on_topic: after - before, accepted }),
    })
}

/// Phase 1: the same client and requests against a server that only parses the JSON.
async fn http_ceiling(bench: &Bench<'_>) -> anyhow::Result<Phase> {
    eprintln!("bench: phase 1/4: HTTP ceiling");
    let server = HttpCeiling::start(&bench.target.route.path).await?;
    let url = format!("http://{}{}", server.addr, bench.target.route.path);
    let measured = async {
        let target = HttpTarget::new(load::client(bench.connections)?, url, bench.pool()?, None);
        closed_loop(&target, bench.connections, bench.args.warmup).await?;
        closed_loop(&target.with_pool(bench.pool()?), bench.connections, bench.args.duration).await
    }
    .await;
    server.stop().await;
    let (recorder, elapsed) = measured?;
    Ok(Phase { key: "http_ceiling", label: "HTTP ceiling (closed loop)".to_owned(), recorder, elapsed, open: None })
}

/// Phase 2: a plain producer with the edge's settings writing the edge's record.
async fn kafka_ceiling(bench: &Bench<'_>, load: &KafkaLoad, delivery_timeout: Duration) -> anyhow::Result<Phase> {
    let in_flight = bench.connections * KAFKA_IN_FLIGHT_PER_CONNECTION;
    eprintln!("bench: phase 2/4: Kafka ceiling ({in_flight} sends in flight, {} B records)", load.payload.len());
    let producer = Arc::new(baseline::producer(bench.kafka, delivery_timeout)?);
    baseline::produce_loop(&producer, load, in_flight, bench.args.warmup).await?;
    let (recorder, elapsed) = baseline::produce_loop(&producer, load, in_flight, bench.args.duration).await?;
    baseline::flush(producer, Duration::from_secs(30)).await?;
    let label = format!("Kafka ceiling ({in_flight} in flight)");
    Ok(Phase { key: "kafka_ceiling", label, recorder, elapsed, open: None })
}

/// Phases 3 and 4 against the running edge; also returns every new 202 it answered (warm-ups
/// included), to compare with the records on the topic.
async fn edge_phases(
    bench: &Bench<'_>,
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(Vec<Phase>, u64)> {
    let url = format!("http://{addr}{}", bench.target.route.path);
    let keys = bench.args.idempotency.then(|| format!("bench-{}", bench.run_id));
    let (c, warmup, duration) = (bench.connections, bench.args.warmup, bench.args.duration);
    let mut accepted = 0;

    eprintln!("bench: phase 3/4: edge peak (closed loop, {c} connections)");
    let target = HttpTarget::new(client.clone(), url, bench.pool()?, keys);
    accepted += closed_loop(&target, c, warmup).await?.0.accepted;
    let (recorder, elapsed) = closed_loop(&target.with_pool(bench.pool()?), c, duration).await?;
    accepted += recorder.accepted;
    let peak = Phase { key: "edge_peak", label: "edge peak (closed loop)".to_owned(), recorder, elapsed, open: None };
    let rate = peak.rate() / 2.0;
    let mut phases = vec![peak];
    if rate < 1.0 {
        eprintln!("bench: phase 4/4 skipped: the edge accepted nothing at peak");
        return Ok((phases, accepted));
    }

    let cap = c * OPEN_LOOP_CAP_PER_CONNECTION;
    eprintln!("bench: phase 4/4: edge at half of peak (open loop, {rate:.0} req/s, at most {cap} in flight)");
    accepted += open_loop(&target.with_pool(bench.pool()?), rate, warmup, cap).await?.0.accepted;
    let (recorder, elapsed, info) = open_loop(&target.with_pool(bench.pool()?), rate, duration, cap).await?;
    accepted += recorder.accepted;
    let label = format!("edge half load (open, {rate:.0}/s)");
    phases.push(Phase { key: "edge_half", label, recorder, elapsed, open: Some(info) });
    if bench.args.tracing {
        eprintln!("bench: phase 5: edge peak again, every span exported over OTLP");
        let (receiver, spans) = otlp_receiver().await?;
        let guard = interchange_core::telemetry::export_to(&format!("{receiver}/v1/traces"), "bench")
            .map_err(|e| anyhow::anyhow!("starting the trace export: {e}"))?;
        accepted += closed_loop(&target.with_pool(bench.pool()?), c, warmup).await?.0.accepted;
        let (recorder, elapsed) = closed_loop(&target.with_pool(bench.pool()?), c, duration).await?;
        accepted += recorder.accepted;
        interchange_core::telemetry::stop_exporting().map_err(|e| anyhow::anyhow!(e))?;
        drop(guard);
        let exported = spans.load(std::sync::atomic::Ordering::Relaxed);
        let traced = Phase {
            key: "edge_peak_traced",
            label: "edge peak, traces exported".to_owned(),
            recorder,
            elapsed,
            open: None,
        };
        eprintln!(
            "bench: tracing on/off at peak: {:.0}/s vs {:.0}/s = {:.3} ({exported} OTLP export requests received)",
            traced.rate(),
            phases[0].rate(),
            traced.rate() / phases[0].rate().max(1.0)
        );
        phases.push(traced);
    }
    Ok((phases, accepted))
}

/// An OTLP/HTTP receiver that accepts and discards; counts the export requests.
async fn otlp_receiver() -> anyhow::Result<(String, Arc<std::sync::atomic::AtomicU64>)> {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = Arc::clone(&count);
    let app = axum::Router::new().fallback(move |_: axum::body::Bytes| {
        let c = Arc::clone(&c);
        async move {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}"), count))
}
