//! `hub-bench project`: the read-model projector's throughput (order states projected per
//! second from a backlog) against raw CQL inserts with the same driver and concurrency, and the
//! latency from a state-topic transaction commit to the row being readable (p50/p99).
//!
//! Every run gets a fresh topic prefix and its own keyspace (`bench_<8 hex>`), both deleted at
//! the end.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use interchange_core::cli::Global;
use interchange_core::kafka::KafkaSettings;
use interchange_core::topology::{SinkParams, Topology};
use interchange_sinks::projector::cql;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use scylla::client::session::Session;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::process::{encode, fresh, produce};
use super::setup;

/// `hub-bench project` options.
#[derive(Debug, Clone, Args)]
pub struct ProjectBenchArgs {
    /// Orders in the backlog; each has `--versions` states on the topic.
    #[arg(long, default_value_t = 10_000)]
    pub orders: usize,
    /// States per order in the backlog (RECEIVED, VALIDATED, SENT_TO_PARTNER, COMPLETED...).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=4))]
    pub versions: u16,
    /// Single states committed one at a time, each timed until readable.
    #[arg(long, default_value_t = 300)]
    pub samples: usize,
}

/// The sink role's options with their defaults, for the projector run in this process.
#[derive(clap::Parser)]
struct SinkDefaults {
    #[command(flatten)]
    config: interchange_sinks::SinkConfig,
}

const STATUSES: [&str; 5] = ["UNKNOWN", "RECEIVED", "VALIDATED", "SENT_TO_PARTNER", "COMPLETED"];

/// The state of order `i` at `version` (1 to 4), with its history.
pub(super) fn state(prefix: &str, i: usize, version: usize) -> (String, serde_json::Value) {
    let id = format!("{prefix}bench-{i}");
    let history: Vec<serde_json::Value> = (0..version)
        .map(|v| {
            json!({ "from": STATUSES[v], "to": STATUSES[v + 1], "event_id": format!("{id}-e{v}"),
                    "event_type": "order_received", "at": 1_795_000_000_000_i64 + i64::try_from(v).unwrap_or(0) })
        })
        .collect();
    let now = 1_795_000_000_000_i64;
    let state = json!({
        "correlation_id": id, "order_id": format!("B-{i}"), "partner": "acme-shop", "status": STATUSES[version],
        "version": version, "items": [{ "sku": "SKU-A", "quantity": 2, "unit_price": "250.00" }], "currency": "BRL",
        "subtotal": "500.00", "discount": "25.00", "total": "475.00", "dispatch_command_id": null,
        "partner_reference": if version >= 4 { json!(format!("ERP-{i}")) } else { json!(null) },
        "applied_event_ids": [], "history": history, "created_at": now, "updated_at": now + 10,
    });
    (id, state)
}

pub(super) fn projector(topology: &Topology) -> anyhow::Result<(String, Duration)> {
    topology
        .sinks
        .iter()
        .find_map(|s| match &s.params {
            SinkParams::CqlProjector { timeline_ttl, .. } => Some((s.name.clone(), *timeline_ttl)),
            SinkParams::Http { .. } => None,
        })
        .context("no cql_projector sink in the topology")
}

/// The projector's count of projected records, from its /metrics.
pub(super) async fn projected(client: &reqwest::Client, metrics: &str) -> u64 {
    let Ok(response) = client.get(metrics).send().await else { return 0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(interchange_core::metrics::PROJECTOR_RECORDS) && l.contains("outcome=\"projected\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .map(|v| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = v as u64;
            n
        })
        .sum()
}

/// Raw CQL: `n` single-row inserts of a similar size, `concurrency` in flight; inserts/s.
async fn raw_inserts(session: &Session, keyspace: &str, n: usize, concurrency: usize) -> anyhow::Result<f64> {
    use futures::StreamExt;
    session
        .query_unpaged(
            format!("CREATE TABLE IF NOT EXISTS {keyspace}.bench_raw (k text PRIMARY KEY, status text, version bigint, body text)"),
            (),
        )
        .await?;
    session.await_schema_agreement().await?;
    let insert = session
        .prepare(format!("INSERT INTO {keyspace}.bench_raw (k, status, version, body) VALUES (?, ?, ?, ?)"))
        .await?;
    let body = "x".repeat(300);
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let (insert, body) = (&insert, &body);
            async move { session.execute_unpaged(insert, (format!("k-{i}"), "COMPLETED", 4_i64, body.as_str())).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(results.iter().all(Result::is_ok), "raw inserts failed");
    #[allow(clippy::cast_precision_loss)]
    Ok(n as f64 / seconds.max(1e-9))
}

/// Quantile of sorted milliseconds.
pub(super) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

struct Latencies {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Commits one state at a time in a transaction and times until its row shows the version.
async fn latencies(
    kafka: &KafkaSettings,
    topology: &Topology,
    ids: &BTreeMap<String, u32>,
    session: &Session,
    keyspace: &str,
    topic: &str,
    samples: usize,
) -> anyhow::Result<Latencies> {
    let mut config = kafka.producer_config("hub-bench-latency");
    config.set("transactional.id", format!("{}bench-latency", topology.topic_prefix));
    let producer: FutureProducer = config.create().context("transactional producer")?;
    let p = producer.clone();
    tokio::task::spawn_blocking(move || p.init_transactions(Duration::from_secs(30))).await??;
    let read = session
        .prepare(format!("SELECT version FROM {keyspace}.orders WHERE partner = ? AND correlation_id = ?"))
        .await?;
    let mut millis = Vec::with_capacity(samples);
    for s in 0..samples {
        let (id, json) = state(&format!("{}lat-", topology.topic_prefix), s, 1);
        let payload = encode(topology, ids, "order_state", topic, &json)?;
        producer.begin_transaction()?;
        producer
            .send(FutureRecord::to(topic).key(&id).payload(&payload), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.commit_transaction(Duration::from_secs(30))).await??;
        let committed = Instant::now();
        let deadline = committed + Duration::from_secs(30);
        loop {
            let result = session.execute_unpaged(&read, ("acme-shop", id.as_str())).await?;
            let found = result.into_rows_result()?.maybe_first_row::<(Option<i64>,)>()?;
            if found.and_then(|r| r.0) == Some(1) {
                millis.push(committed.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "state {id} not readable within 30 s");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
    millis.sort_by(f64::total_cmp);
    Ok(Latencies {
        p50: quantile(&millis, 0.5),
        p99: quantile(&millis, 0.99),
        max: millis.last().copied().unwrap_or(0.0),
    })
}

/// A fresh topology (its own topic prefix, topics created, contracts registered) whose
/// projector writes to a keyspace of its own, migrated: the topology, the schema ids, the
/// keyspace and a session on it. [`drop_fresh`] removes both.
pub(super) async fn fresh_with_keyspace(
    global: &Global,
    kafka: &KafkaSettings,
) -> anyhow::Result<(Topology, BTreeMap<String, u32>, String, Session)> {
    let registry = global.registry().client()?;
    let (mut topology, ids) = fresh(global, kafka, &registry).await?;
    let keyspace = format!("bench_{}", topology.topic_prefix.trim_start_matches("bench-").trim_end_matches('.'));
    for sink in &mut topology.sinks {
        if let SinkParams::CqlProjector { keyspace: k, .. } = &mut sink.params {
            k.clone_from(&keyspace);
        }
    }
    let (_, ttl) = projector(&topology)?;
    let session = cql::connect(&global.cql_nodes(), Duration::from_secs(10)).await?;
    cql::migrate(&session, &keyspace, &interchange_core::readmodel::schema::replication(1, None), ttl).await?;
    Ok((topology, ids, keyspace, session))
}

/// Drops what [`fresh_with_keyspace`] made.
pub(super) async fn drop_fresh(
    topology: &Topology,
    kafka: &KafkaSettings,
    session: &Session,
    keyspace: &str,
) -> anyhow::Result<()> {
    let _ = session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ()).await;
    setup::delete_topics(topology, kafka).await
}

/// A projector sink running in this process.
pub(super) type ProjectorTask = tokio::task::JoinHandle<Result<(), interchange_sinks::SinkError>>;

/// The projector sink `sink_name` running in this process with the sink role's defaults: its
/// task, what stops it, and its `/metrics` URL.
pub(super) fn start_projector(
    global: &Global,
    kafka: &KafkaSettings,
    topology: &Topology,
    sink_name: &str,
) -> anyhow::Result<(ProjectorTask, CancellationToken, String)> {
    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let config = {
        use clap::Parser;
        SinkDefaults::try_parse_from(["bench", "--sink", sink_name, "--sink-listen", &listen.to_string()])?.config
    };
    let services = global.services(kafka.clone());
    let shutdown = CancellationToken::new();
    let run = {
        let (topology, shutdown) = (topology.clone(), shutdown.clone());
        tokio::spawn(async move { interchange_sinks::run(&topology, &services, &config, shutdown).await })
    };
    Ok((run, shutdown, format!("http://{listen}/metrics")))
}

/// Runs the projector benchmark and prints the report.
pub async fn run(global: &Global, args: &ProjectBenchArgs) -> anyhow::Result<ExitCode> {
    let kafka = setup::kafka(global)?;
    let (topology, ids, keyspace, session) = fresh_with_keyspace(global, &kafka).await?;
    let (sink_name, _) = projector(&topology)?;
    let input = topology.sinks.iter().find(|s| s.name == sink_name).map(|s| s.input.clone()).context("input")?;
    let result = measure(global, args, &kafka, &topology, &ids, &session, &keyspace, &sink_name, &input).await;
    drop_fresh(&topology, &kafka, &session, &keyspace).await?;
    result
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    global: &Global,
    args: &ProjectBenchArgs,
    kafka: &KafkaSettings,
    topology: &Topology,
    ids: &BTreeMap<String, u32>,
    session: &Session,
    keyspace: &str,
    sink_name: &str,
    input: &str,
) -> anyhow::Result<ExitCode> {
    let versions = usize::from(args.versions);
    eprintln!("backlog: {} orders x {versions} states on {input} ...", args.orders);
    let mut backlog = Vec::with_capacity(args.orders * versions);
    for version in 1..=versions {
        for i in 0..args.orders {
            let (id, json) = state(&topology.topic_prefix, i, version);
            backlog.push((id, encode(topology, ids, "order_state", input, &json)?));
        }
    }
    let total = u64::try_from(backlog.len())?;
    produce(kafka, input, backlog).await?;

    let (run, shutdown, metrics) = start_projector(global, kafka, topology, sink_name)?;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut first: Option<(Instant, u64)> = None;
    let last = loop {
        let done = projected(&client, &metrics).await;
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), done));
        }
        if done >= total {
            break Instant::now();
        }
        anyhow::ensure!(Instant::now() < deadline, "projector did not finish: {done} of {total}");
        anyhow::ensure!(!run.is_finished(), "projector stopped early");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (t0, c0) = first.context("nothing projected")?;
    #[allow(clippy::cast_precision_loss)]
    let states_per_second = (total - c0) as f64 / last.duration_since(t0).as_secs_f64().max(1e-9);
    eprintln!("  {states_per_second:.0} states/s");
    let sample = format!("{}bench-{}", topology.topic_prefix, args.orders / 2);
    let row = session
        .query_unpaged(
            format!("SELECT status, version FROM {keyspace}.orders WHERE partner = 'acme-shop' AND correlation_id = ?"),
            (sample.as_str(),),
        )
        .await?
        .into_rows_result()?
        .maybe_first_row::<(String, i64)>()?;
    let expected = (STATUSES[versions].to_owned(), i64::try_from(versions)?);
    anyhow::ensure!(row.as_ref() == Some(&expected), "row of {sample}: {row:?}, expected {expected:?}");

    eprintln!("latency: {} states committed one at a time ...", args.samples);
    let latency = latencies(kafka, topology, ids, session, keyspace, input, args.samples).await?;
    shutdown.cancel();
    run.await.context("projector task")?.context("projector")?;

    eprintln!("baseline: {} raw CQL inserts ...", args.orders * versions);
    let raw = raw_inserts(session, keyspace, args.orders * versions, interchange_sinks::projector::CONCURRENCY).await?;
    let ratio = states_per_second / raw.max(1e-9);
    println!("\nprojector benchmark ({} orders x {versions} states)", args.orders);
    println!("projected states/s:         {states_per_second:>10.0}");
    println!(
        "raw CQL inserts/s:          {raw:>10.0}  (same driver, {} in flight)",
        interchange_sinks::projector::CONCURRENCY
    );
    println!("projector / raw inserts:    {:>10.0}%", ratio * 100.0);
    // Each state writes its order row and every transition of its (bounded) history again: a
    // compacted topic may have lost the earlier states, so the projector cannot skip them.
    #[allow(clippy::cast_precision_loss)]
    let rows_per_state = (1..=versions).map(|v| 1 + v).sum::<usize>() as f64 / versions as f64;
    println!("CQL rows per state:         {rows_per_state:>10.1}  (order row + history rows)");
    println!(
        "commit -> readable (ms):    p50 {:.1}  p99 {:.1}  max {:.1}  ({} samples)",
        latency.p50, latency.p99, latency.max, args.samples
    );
    let report = json!({
        "bench": "project", "orders": args.orders, "versions": versions,
        "states_per_second": states_per_second, "raw_inserts_per_second": raw, "ratio": ratio,
        "rows_per_state": rows_per_state,
        "commit_to_readable_ms": { "p50": latency.p50, "p99": latency.p99, "max": latency.max, "samples": args.samples },
    });
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
