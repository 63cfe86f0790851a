//! `hub-bench process --retention-restore TERMINAL,LIVE`: restore time and memory of a state
//! topic holding TERMINAL orders finished longer ago than the retention and LIVE orders still
//! waiting, restored with the retention (terminal states not held, only their keys until their
//! tombstones are written) against the same without retention (every state held), in one run.
//! A third restore reads a topic holding only the live states: what the log keeps once the
//! tombstones are written and compaction has run. Each restore runs in a `hub` process of its own
//! (`--restore-child`), so its RSS is its own.

use std::time::{Duration, Instant};

use anyhow::Context;
use interchange_core::cli::Global;
use interchange_core::kafka::KafkaSettings;
use interchange_core::registry::Registry;
use interchange_processors::runtime::{restore, store::Store, store::TERMINAL_HEADER};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use super::process::{encode, fresh};
use super::setup;

const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

/// One restore: seconds, records read, states held, keys awaiting a tombstone, RSS growth (MiB).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RestoreFigures {
    pub case: String,
    pub seconds: f64,
    pub records: u64,
    pub states: usize,
    pub retiring: usize,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

/// (VmRSS, VmHWM) of this process in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn state(id: &str, i: usize, status: &str) -> serde_json::Value {
    let step = |from: &str, to: &str| json!({ "from": from, "to": to, "event_id": "e", "event_type": "order_received", "at": 1_700_000_000_000_i64 });
    json!({
        "correlation_id": id, "order_id": format!("B-{i}"), "partner": "acme-shop", "status": status, "version": 4,
        "items": [{ "sku": "SKU-A", "quantity": 2, "unit_price": "250.00" }], "currency": "BRL",
        "subtotal": "500.00", "discount": "25.00", "total": "475.00", "dispatch_command_id": uuid::Uuid::new_v4().to_string(),
        "partner_reference": format!("ERP-{i}"), "applied_event_ids": [uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string()],
        "history": [step("UNKNOWN", "RECEIVED"), step("RECEIVED", "VALIDATED"), step("VALIDATED", "SENT_TO_PARTNER"), step("SENT_TO_PARTNER", "COMPLETED")],
        "created_at": 1_700_000_000_000_i64, "updated_at": 1_700_000_000_500_i64,
    })
}

/// Produces (key, payload, terminal_at header) with many in flight.
async fn produce(
    kafka: &KafkaSettings,
    topic: &str,
    records: Vec<(String, Vec<u8>, Option<i64>)>,
) -> anyhow::Result<()> {
    let producer: FutureProducer = kafka.producer_config("hub-bench-producer").create().context("producer")?;
    let mut pending = Vec::with_capacity(10_000);
    for (key, payload, terminal_at) in &records {
        let mut headers = OwnedHeaders::new();
        let at = terminal_at.map(|t| t.to_string());
        if let Some(at) = &at {
            headers = headers.insert(Header { key: TERMINAL_HEADER, value: Some(at.as_str()) });
        }
        pending.push(
            producer.send(FutureRecord::to(topic).key(key).payload(payload).headers(headers), Duration::from_secs(60)),
        );
        if pending.len() >= 10_000 {
            for result in futures::future::join_all(pending.drain(..)).await {
                result.map_err(|(e, _)| e).context("produce")?;
            }
        }
    }
    for result in futures::future::join_all(pending).await {
        result.map_err(|(e, _)| e).context("produce")?;
    }
    Ok(())
}

/// Fills a fresh state topic with `terminal` old terminal states (when `terminal` > 0) and `live`
/// VALIDATED ones; returns the topology (to delete) and the topic.
async fn topic_with(
    global: &Global,
    kafka: &KafkaSettings,
    registry: &Registry,
    terminal: usize,
    live: usize,
) -> anyhow::Result<(interchange_core::topology::Topology, String)> {
    let (topology, ids) = fresh(global, kafka, registry).await?;
    let topic = topology.processors.first().context("no processor")?.state.clone();
    let finished_at = interchange_core::clock::now_millis() - WEEK_MS - 3_600_000;
    let records = (0..terminal + live)
        .map(|i| {
            let id = format!("{}bench-{i}", topology.topic_prefix);
            let (status, at) = if i < terminal { ("COMPLETED", Some(finished_at)) } else { ("VALIDATED", None) };
            Ok((id.clone(), encode(&topology, &ids, "order_state", &topic, &state(&id, i, status))?, at))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    produce(kafka, &topic, records).await?;
    Ok((topology, topic))
}

fn restore_once(
    kafka: &KafkaSettings,
    topic: &str,
    partitions: &[i32],
    case: &str,
    retention: Option<i64>,
) -> anyhow::Result<RestoreFigures> {
    // Reset the peak RSS (VmHWM) to the current RSS, then measure growth from here.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (before, _) = rss_kib();
    let mut store: Store<interchange_processors::saga::OrderState> = Store::new(retention, 0);
    let started = Instant::now();
    let records = restore::restore(kafka, topic, partitions, &mut store)?;
    let seconds = started.elapsed().as_secs_f64();
    let (after, peak) = rss_kib();
    #[allow(clippy::cast_precision_loss)]
    let mib = |kib: u64| kib.saturating_sub(before) as f64 / 1024.0;
    Ok(RestoreFigures {
        case: case.to_owned(),
        seconds,
        records,
        states: store.len(),
        retiring: store.retiring(),
        rss_mib: mib(after),
        peak_rss_mib: mib(peak),
    })
}

/// Runs the three restores and returns their figures.
pub async fn run(
    global: &Global,
    kafka: &KafkaSettings,
    registry: &Registry,
    terminal: usize,
    live: usize,
) -> anyhow::Result<Vec<RestoreFigures>> {
    eprintln!("retention restore: {terminal} terminal orders past retention, {live} live ...");
    let (full, full_topic) = topic_with(global, kafka, registry, terminal, live).await?;
    let (live_only, live_topic) = topic_with(global, kafka, registry, 0, live).await?;
    let partitions = usize::try_from(full.topics.iter().find(|t| t.name == full_topic).map_or(1, |t| t.partitions))?;
    // Each restore in a process of its own: memory one frees is not returned for the next.
    let without = in_child(global, "without retention", &full_topic, partitions, None)?;
    let with = in_child(global, "with retention", &full_topic, partitions, Some(WEEK_MS))?;
    let compacted = in_child(global, "compacted, live states only", &live_topic, partitions, Some(WEEK_MS))?;
    let figures = vec![without, with, compacted];
    anyhow::ensure!(figures[0].states == terminal + live, "without retention every state is held: {figures:?}");
    anyhow::ensure!(figures[1].states == live && figures[1].retiring == terminal, "with retention: {figures:?}");
    setup::delete_topics(&full, kafka).await?;
    setup::delete_topics(&live_only, kafka).await?;
    Ok(figures)
}

/// Runs one restore in a fresh `hub-bench process --restore-child` and reads its figures.
fn in_child(
    global: &Global,
    case: &str,
    topic: &str,
    partitions: usize,
    retention: Option<i64>,
) -> anyhow::Result<RestoreFigures> {
    let exe = std::env::current_exe().context("current exe")?;
    let retention = retention.map_or_else(|| "none".to_owned(), |r| r.to_string());
    let spec = format!("{case};{topic};{partitions};{retention}");
    let mut command = std::process::Command::new(exe);
    global.registry_env(&mut command);
    command.arg("--topology").arg(&global.topology).args(["--bootstrap-servers", &global.bootstrap_servers]);
    if let Some(config) = &global.kafka_config {
        command.arg("--kafka-config").arg(config);
    }
    for property in &global.kafka_properties {
        command.args(["-X", property]);
    }
    let output = command
        .args(["process", "--batches", "--restore", "--restore-child", &spec])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("restore child")?;
    anyhow::ensure!(output.status.success(), "restore child failed: {}", output.status);
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().rfind(|l| l.starts_with('{')).context("restore child printed no figures")?;
    serde_json::from_str(line).context("restore child figures")
}

/// The child's side: `CASE;TOPIC;PARTITIONS;RETENTION_MS|none`; prints the figures as one JSON line.
pub fn child(kafka: &KafkaSettings, spec: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = spec.split(';').collect();
    let [case, topic, partitions, retention] = parts.as_slice() else { anyhow::bail!("--restore-child {spec:?}") };
    let partitions: Vec<i32> = (0..partitions.parse::<i32>().context("partitions")?).collect();
    let retention = if *retention == "none" { None } else { Some(retention.parse().context("retention")?) };
    let figures = restore_once(kafka, topic, &partitions, case, retention)?;
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}
