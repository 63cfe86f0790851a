//! `hub-bench process`: the order processor's throughput with exactly-once against the same code
//! in at-least-once mode, at two transaction sizes, and the time to restore state.
//!
//! Every run gets a fresh topic prefix (its own topics, consumer group and transactional id), a
//! backlog of orders produced before the processor starts, and the clock between the first and
//! the last committed offset of the processor's group.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use interchange_core::cli::Global;
use interchange_core::contract::{json_to_avro, UnknownFields};
use interchange_core::kafka::KafkaSettings;
use interchange_core::registry::Registry;
use interchange_core::topology::Topology;
use interchange_processors::runtime::{codec::Codec, restore, store::Store, Mode};
use interchange_processors::ProcessorConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::setup;

/// `hub-bench process` options.
#[derive(Debug, Clone, Args)]
pub struct ProcessBenchArgs {
    /// Orders in each throughput run's backlog.
    #[arg(long, default_value_t = 50_000)]
    pub orders: usize,
    /// Transaction sizes (max records per transaction) to compare.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "100,500,2000")]
    pub batches: Vec<usize>,
    /// State sizes (orders) to restore.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "100000,1000000")]
    pub restore: Vec<usize>,
    /// TERMINAL,LIVE: restore a state topic of TERMINAL orders past the retention and LIVE ones,
    /// with the retention against without (time, RSS, as ratios), and the live states alone.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub retention_restore: Option<Vec<usize>>,
    /// Internal: one restore of `--retention-restore` in a process of its own.
    #[arg(long, hide = true)]
    pub restore_child: Option<String>,
    /// When the processor commits (the topology's `commit` when not given).
    #[arg(long, value_enum)]
    pub commit: Option<interchange_core::topology::CommitPolicy>,
    /// Also run a peer on the same backlog, alternating with the hub's exactly-once processor at
    /// the topology's `max_batch`, and print the ratio of the medians.
    #[arg(long, value_enum)]
    pub peer: Option<super::peer::Peer>,
    /// Alternating pairs (hub, peer) run with `--peer`.
    #[arg(long, default_value_t = 3)]
    pub pairs: usize,
    /// Folder of the Kafka Streams peer (its `run.sh`); default `$KSTREAMS_PEER_DIR`, else
    /// `../shared/peers/kstreams` beside the repository.
    #[arg(long, env = "KSTREAMS_PEER_DIR")]
    pub peer_dir: Option<std::path::PathBuf>,
}

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    config: ProcessorConfig,
}

/// The processor's options as `hub process` would read them (`HUB_PROCESSOR_THREADS` among
/// them), with the bench's instance id and `mode`.
pub(super) fn processor_config(mode: Mode) -> anyhow::Result<ProcessorConfig> {
    use clap::Parser;
    let mut config = Defaults::try_parse_from(["bench", "--processor-listen", "127.0.0.1:0"])?.config;
    config.mode = mode;
    config.instance_id = "bench".to_owned();
    Ok(config)
}

pub(super) async fn fresh(
    global: &Global,
    kafka: &KafkaSettings,
    registry: &Registry,
) -> anyhow::Result<(Topology, BTreeMap<String, u32>)> {
    let topology = Topology::load(&global.topology, &setup::fresh_prefix()).map_err(anyhow::Error::new)?;
    setup::create_topics(&topology, kafka).await?;
    let ids = setup::register_schemas(&topology, registry).await?;
    Ok((topology, ids))
}

pub(super) fn encode(
    topology: &Topology,
    ids: &BTreeMap<String, u32>,
    contract: &str,
    topic: &str,
    json: &serde_json::Value,
) -> anyhow::Result<Vec<u8>> {
    let t = topology.topics.iter().find(|t| t.name == topic).context("topic")?;
    let c = topology.contracts.get(contract).context("contract")?;
    let id = *ids.get(&t.subject(c)).context("schema id")?;
    let value =
        json_to_avro(&c.schema, json, UnknownFields::Reject).map_err(|v| anyhow::anyhow!("{contract}: {v:?}"))?;
    interchange_core::avro::wire_format(&c.schema, id, value).map_err(|e| anyhow::anyhow!(e))
}

/// Produces `records` (key, payload) with many in flight; returns how long it took.
pub(super) async fn produce(
    kafka: &KafkaSettings,
    topic: &str,
    records: Vec<(String, Vec<u8>)>,
) -> anyhow::Result<Duration> {
    let producer: FutureProducer = kafka.producer_config("hub-bench-producer").create().context("producer")?;
    let started = Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for (key, payload) in &records {
        pending.push(producer.send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(60)));
        if pending.len() >= 10_000 {
            for result in futures::future::join_all(pending.drain(..)).await {
                result.map_err(|(e, _)| e).context("produce")?;
            }
        }
    }
    for result in futures::future::join_all(pending).await {
        result.map_err(|(e, _)| e).context("produce")?;
    }
    Ok(started.elapsed())
}

fn order(topology: &Topology, i: usize) -> (String, serde_json::Value) {
    let id = format!("{}bench-{i}", topology.topic_prefix);
    let json = json!({
        "event_id": uuid::Uuid::new_v4().to_string(), "correlation_id": id, "order_id": format!("B-{i}"),
        "partner": "acme-shop", "customer_id": format!("cust-{}", i % 1000),
        "items": [{ "sku": "SKU-A", "quantity": 2, "unit_price": "250.00" }, { "sku": "SKU-B", "quantity": 1, "unit_price": "19.90" }],
        "currency": "BRL", "received_at": 1_700_000_000_000_i64,
    });
    (id, json)
}

/// Sum of the committed offsets of `group` on `topic`.
fn committed(consumer: &BaseConsumer, topic: &str, partitions: i32) -> i64 {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .map(|list| list.elements().iter().filter_map(|e| e.offset().to_raw()).filter(|o| *o > 0).sum())
        .unwrap_or(0)
}

pub(super) struct Throughput {
    mode: Mode,
    batch: usize,
    pub(super) records_per_second: f64,
    seconds: f64,
    /// Dispatch commands on the commands topic, read_committed.
    pub(super) commands: u64,
    /// Orders with no dispatch command, and with more than one.
    missing: u64,
    duplicated: u64,
}

impl Throughput {
    /// Every order dispatched exactly once (at-least-once may repeat, never lose).
    pub(super) fn exact(&self) -> bool {
        self.missing == 0 && (self.duplicated == 0 || self.mode == Mode::AtLeastOnce)
    }
}

/// Dispatch commands per order of the run, read_committed: (commands, missing, duplicated).
async fn dispatches(
    kafka: &KafkaSettings,
    topology: &Topology,
    topic: &str,
    orders: usize,
) -> anyhow::Result<(u64, u64, u64)> {
    let partitions = topology.topics.iter().find(|t| t.name == topic).map_or(1, |t| t.partitions);
    let (kafka, topic, prefix) = (kafka.clone(), topic.to_owned(), format!("{}bench-", topology.topic_prefix));
    tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, u64, u64)> {
        let mut per_order = vec![0_u32; orders];
        let mut commands = 0;
        setup::scan(&kafka, &topic, partitions, "read_committed", |m| {
            let dispatch = interchange_core::headers::Received::of(m).event_type.as_deref() == Some("dispatch_command");
            let index = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.strip_prefix(prefix.as_str()))
                .and_then(|i| i.parse::<usize>().ok());
            if let (true, Some(i)) = (dispatch, index) {
                commands += 1;
                if let Some(n) = per_order.get_mut(i) {
                    *n += 1;
                }
            }
        })?;
        let missing = per_order.iter().filter(|n| **n == 0).count() as u64;
        let duplicated = per_order.iter().filter(|n| **n > 1).count() as u64;
        Ok((commands, missing, duplicated))
    })
    .await
    .context("reading the commands")?
}

pub(super) async fn throughput(
    global: &Global,
    kafka: &KafkaSettings,
    registry: &Registry,
    mode: Mode,
    batch: usize,
    orders: usize,
    commit: Option<interchange_core::topology::CommitPolicy>,
) -> anyhow::Result<Throughput> {
    let (mut topology, ids) = fresh(global, kafka, registry).await?;
    let processor = topology.processors.first_mut().context("no processor")?;
    processor.max_batch = batch;
    if let Some(commit) = commit {
        processor.commit = commit;
    }
    let (inbound, levels, commands) =
        (processor.inputs[0].clone(), processor.lookups[0].clone(), processor.outputs[0].clone());
    let group = format!("{}{}", topology.topic_prefix, processor.name);
    let stock: Vec<(String, Vec<u8>)> = ["SKU-A", "SKU-B"]
        .iter()
        .map(|sku| {
            Ok((
                (*sku).to_owned(),
                encode(
                    &topology,
                    &ids,
                    "inventory_level",
                    &levels,
                    &json!({ "sku": sku, "available": 1_000_000_000_i64, "updated_at": 0 }),
                )?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    produce(kafka, &levels, stock).await?;
    let backlog: Vec<(String, Vec<u8>)> = (0..orders)
        .map(|i| {
            let (key, json) = order(&topology, i);
            Ok((key, encode(&topology, &ids, "order_received", &inbound, &json)?))
        })
        .collect::<anyhow::Result<_>>()?;
    produce(kafka, &inbound, backlog).await?;

    let shutdown = CancellationToken::new();
    let config = processor_config(mode)?;
    let services = interchange_core::Services::new(kafka.clone(), global.registry());
    let run = {
        let (topology, shutdown) = (topology.clone(), shutdown.clone());
        tokio::spawn(async move { interchange_processors::run(&topology, &services, &config, shutdown).await })
    };
    let mut watcher = kafka.client_config("hub-bench-watch");
    watcher.set("group.id", &group);
    let watcher: Arc<BaseConsumer> = Arc::new(watcher.create().context("watcher")?);
    let partitions = topology.topics.iter().find(|t| t.name == inbound).map_or(1, |t| t.partitions);
    let target = i64::try_from(orders)?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut first: Option<(Instant, i64)> = None;
    let last = loop {
        // committed_offsets blocks on the group coordinator: not on an async worker.
        let (w, topic) = (Arc::clone(&watcher), inbound.clone());
        let done =
            tokio::task::spawn_blocking(move || committed(&w, &topic, partitions)).await.context("watcher task")?;
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), done));
        }
        if done >= target {
            break Instant::now();
        }
        anyhow::ensure!(Instant::now() < deadline, "processor did not finish: {done} of {target}");
        anyhow::ensure!(!run.is_finished(), "processor stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    shutdown.cancel();
    run.await.context("processor task")?.context("processor")?;
    let (t0, c0) = first.context("nothing committed")?;
    #[allow(clippy::cast_precision_loss)]
    let records_per_second = (target - c0) as f64 / last.duration_since(t0).as_secs_f64().max(1e-9);
    let (commands, missing, duplicated) = dispatches(kafka, &topology, &commands, orders).await?;
    setup::delete_topics(&topology, kafka).await?;
    let seconds = last.duration_since(t0).as_secs_f64();
    Ok(Throughput { mode, batch, records_per_second, seconds, commands, missing, duplicated })
}

async fn restore_time(
    global: &Global,
    kafka: &KafkaSettings,
    registry: &Registry,
    size: usize,
) -> anyhow::Result<(f64, u64, f64)> {
    let (topology, ids) = fresh(global, kafka, registry).await?;
    let processor = topology.processors.first().context("no processor")?;
    let state_topic = processor.state.clone();
    let records: Vec<(String, Vec<u8>)> = (0..size)
        .map(|i| {
            let id = format!("{}bench-{i}", topology.topic_prefix);
            let step = |from: &str, to: &str| json!({ "from": from, "to": to, "event_id": "e", "event_type": "order_received", "at": 1_700_000_000_000_i64 });
            let state = json!({
                "correlation_id": id, "order_id": format!("B-{i}"), "partner": "acme-shop", "status": "COMPLETED", "version": 4,
                "items": [{ "sku": "SKU-A", "quantity": 2, "unit_price": "250.00" }], "currency": "BRL",
                "subtotal": "500.00", "discount": "25.00", "total": "475.00", "dispatch_command_id": uuid::Uuid::new_v4().to_string(),
                "partner_reference": format!("ERP-{i}"), "applied_event_ids": [uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string()],
                "history": [step("UNKNOWN", "RECEIVED"), step("RECEIVED", "VALIDATED"), step("VALIDATED", "SENT_TO_PARTNER"), step("SENT_TO_PARTNER", "COMPLETED")],
                "created_at": 1_700_000_000_000_i64, "updated_at": 1_700_000_000_500_i64,
            });
            Ok((id, encode(&topology, &ids, "order_state", &state_topic, &state)?))
        })
        .collect::<anyhow::Result<_>>()?;
    let produced = produce(kafka, &state_topic, records).await?;
    eprintln!("  produced {size} states in {:.1} s", produced.as_secs_f64());
    let codec = Arc::new(Codec::new(&topology, registry, std::slice::from_ref(&state_topic)).await?);
    let sample = format!("{}bench-{}", topology.topic_prefix, size / 2);
    let partitions: Vec<i32> =
        (0..topology.topics.iter().find(|t| t.name == state_topic).map_or(1, |t| t.partitions)).collect();
    let (settings, topic) = (kafka.clone(), state_topic.clone());
    let (seconds, read, held) = tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, u64, usize)> {
        let mut store = Store::new(None, 0);
        let started = Instant::now();
        let read = restore::restore(&settings, &topic, &partitions, &mut store)?;
        let seconds = started.elapsed().as_secs_f64();
        // A restored state decodes on first use: check one.
        let held = store.len();
        let decode =
            |bytes: &[u8]| -> Result<interchange_processors::saga::OrderState, interchange_processors::ProcessorError> {
                let (_, json) =
                    codec.decode(bytes).map_err(|e| interchange_processors::ProcessorError::Config(e.to_string()))?;
                serde_json::from_value(json).map_err(|e| interchange_processors::ProcessorError::Config(e.to_string()))
            };
        let found = (0..12).find_map(|p| store.get(p, &sample, decode).ok().flatten().map(|s| s.status));
        anyhow::ensure!(
            found == Some(interchange_processors::saga::Status::Completed),
            "restored state of {sample} decodes"
        );
        Ok((seconds, read, held))
    })
    .await??;
    anyhow::ensure!(held == size, "restored {held} states, expected {size}");
    setup::delete_topics(&topology, kafka).await?;
    #[allow(clippy::cast_precision_loss)]
    Ok((seconds, read, read as f64 / seconds.max(1e-9)))
}

/// Runs the processor benchmark and prints the report.
pub async fn run(global: &Global, args: &ProcessBenchArgs) -> anyhow::Result<ExitCode> {
    let kafka = setup::kafka(global)?;
    if let Some(spec) = &args.restore_child {
        let (kafka, spec) = (kafka.clone(), spec.clone());
        tokio::task::spawn_blocking(move || super::retention::child(&kafka, &spec)).await??;
        return Ok(ExitCode::SUCCESS);
    }
    let registry = global.registry().client()?;
    let mut runs = Vec::new();
    for batch in &args.batches {
        for mode in [Mode::ExactlyOnce, Mode::AtLeastOnce] {
            eprintln!("throughput: {mode:?}, {batch} records per transaction, {} orders ...", args.orders);
            let result = throughput(global, &kafka, &registry, mode, *batch, args.orders, args.commit).await?;
            eprintln!(
                "  {:.0} records/s over {:.1} s, {} dispatch commands ({} orders missing, {} repeated)",
                result.records_per_second, result.seconds, result.commands, result.missing, result.duplicated
            );
            runs.push(result);
        }
    }
    let peer = match args.peer {
        Some(peer) => Some(super::peer::compare(global, &kafka, &registry, peer, args).await?),
        None => None,
    };
    let retention = match args.retention_restore.as_deref() {
        Some([terminal, live]) => Some(super::retention::run(global, &kafka, &registry, *terminal, *live).await?),
        Some(other) => anyhow::bail!("--retention-restore takes TERMINAL,LIVE, not {other:?}"),
        None => None,
    };
    let mut restores = Vec::new();
    for size in &args.restore {
        eprintln!("restore: {size} orders ...");
        let (seconds, read, rate) = restore_time(global, &kafka, &registry, *size).await?;
        eprintln!("  {seconds:.2} s ({read} records, {rate:.0} records/s)");
        restores.push((*size, seconds, rate));
    }
    let threads = processor_config(Mode::ExactlyOnce)?.threads;
    println!(
        "\nprocessor benchmark ({} orders per run, {threads} transaction loop(s): HUB_PROCESSOR_THREADS)",
        args.orders
    );
    println!("{:<14} {:>8} {:>14} {:>10} {:>8} {:>9}", "mode", "batch", "records/s", "commands", "missing", "repeated");
    for r in &runs {
        println!(
            "{:<14} {:>8} {:>14.0} {:>10} {:>8} {:>9}",
            format!("{:?}", r.mode),
            r.batch,
            r.records_per_second,
            r.commands,
            r.missing,
            r.duplicated
        );
    }
    let mut ratios = Vec::new();
    for batch in &args.batches {
        let rate = |mode: Mode| {
            runs.iter().find(|r| r.batch == *batch && r.mode == mode).map_or(0.0, |r| r.records_per_second)
        };
        let ratio = rate(Mode::ExactlyOnce) / rate(Mode::AtLeastOnce).max(1e-9);
        println!("exactly-once / at-least-once at batch {batch}: {:.0}%", ratio * 100.0);
        ratios.push(json!({ "batch": batch, "ratio": ratio }));
    }
    for (size, seconds, rate) in &restores {
        println!("restore {size} orders: {seconds:.2} s ({rate:.0} records/s)");
    }
    if let Some(figures) = &retention {
        println!(
            "{:<28} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10}",
            "restore", "seconds", "records", "states", "retiring", "RSS MiB", "peak MiB"
        );
        for f in figures {
            println!(
                "{:<28} {:>9.2} {:>10} {:>9} {:>9} {:>9.0} {:>10.0}",
                f.case, f.seconds, f.records, f.states, f.retiring, f.rss_mib, f.peak_rss_mib
            );
        }
        if let [without, with, compacted] = figures.as_slice() {
            let ratio = |a: f64, b: f64| a / b.max(1e-9);
            println!(
                "with / without retention: time {:.2}, RSS {:.3}; compacted / without: time {:.3}, RSS {:.3}",
                ratio(with.seconds, without.seconds),
                ratio(with.rss_mib, without.rss_mib),
                ratio(compacted.seconds, without.seconds),
                ratio(compacted.rss_mib, without.rss_mib)
            );
        }
    }
    let report = json!({
        "retention_restore": retention,
        "bench": "process",
        "orders": args.orders,
        "runs": runs.iter().map(|r| json!({ "mode": format!("{:?}", r.mode), "batch": r.batch, "records_per_second": r.records_per_second, "commands": r.commands, "missing": r.missing, "repeated": r.duplicated })).collect::<Vec<_>>(),
        "peer": peer.as_ref().map(super::peer::Comparison::json),
        "eos_over_alo": ratios,
        "restore": restores.iter().map(|(size, seconds, rate)| json!({ "orders": size, "seconds": seconds, "records_per_second": rate })).collect::<Vec<_>>(),
    });
    println!("{report}");
    if let Some(comparison) = &peer {
        comparison.print();
    }
    let inexact =
        runs.iter().filter(|r| !r.exact()).count() + peer.as_ref().map_or(0, super::peer::Comparison::inexact);
    if inexact > 0 {
        eprintln!("{inexact} run(s) lost or repeated an order");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
