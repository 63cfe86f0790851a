//! What the topics say: consumer lag of the processor and the sinks sampled every second
//! (committed offsets against high watermarks), and after the run the records themselves, read
//! back per correlation id: one inbound record per `202`, one dispatch and one notification
//! command per order (read_committed), and the latest state of every order on the state topic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use interchange_core::avro::Reader;
use interchange_core::kafka::KafkaSettings;
use interchange_core::registry::Registry;
use interchange_core::topology::{SinkParams, Topology};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::ledger::Ledger;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One consumer group and the topics it reads.
#[derive(Debug, Clone)]
struct Group {
    name: String,
    topics: Vec<(String, i32)>,
}

/// Lag of every group at one moment.
#[derive(Debug, Clone)]
pub struct LagSample {
    /// Seconds since the ledger's epoch.
    pub at: f64,
    /// (group, records not yet committed), in the order of [`LagSampler::groups`].
    pub lag: Vec<i64>,
}

/// Samples the lag of the processor's and the HTTP sinks' groups every second on its own thread.
pub struct LagSampler {
    pub groups: Vec<String>,
    pub samples: Arc<Mutex<Vec<LagSample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn partitions(topology: &Topology, topic: &str) -> i32 {
    topology.topics.iter().find(|t| t.name == topic).map_or(1, |t| t.partitions)
}

fn groups(topology: &Topology) -> Vec<Group> {
    let prefix = &topology.topic_prefix;
    let mut out: Vec<Group> = topology
        .processors
        .iter()
        .map(|p| Group {
            name: format!("{prefix}{}", p.name),
            topics: p.inputs.iter().map(|t| (t.clone(), partitions(topology, t))).collect(),
        })
        .collect();
    out.extend(topology.sinks.iter().filter(|s| matches!(s.params, SinkParams::Http { .. })).map(|s| Group {
        name: format!("{prefix}{}", s.name),
        topics: vec![(s.input.clone(), partitions(topology, &s.input))],
    }));
    out
}

fn group_lag(consumer: &BaseConsumer, watermarks: &BaseConsumer, group: &Group) -> anyhow::Result<i64> {
    let mut tpl = TopicPartitionList::new();
    for (topic, count) in &group.topics {
        for p in 0..*count {
            tpl.add_partition(topic, p);
        }
    }
    let committed = consumer.committed_offsets(tpl, TIMEOUT)?;
    let mut lag = 0;
    for element in committed.elements() {
        let (low, high) = watermarks.fetch_watermarks(element.topic(), element.partition(), TIMEOUT)?;
        let at = match element.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        lag += (high - at).max(0);
    }
    Ok(lag)
}

impl LagSampler {
    pub fn start(topology: &Topology, kafka: &KafkaSettings, ledger: &Arc<Ledger>) -> anyhow::Result<Self> {
        let groups = groups(topology);
        let consumers: Vec<(Group, BaseConsumer)> = groups
            .iter()
            .map(|g| {
                let mut config = kafka.client_config("hub-bench-lag");
                config.set("group.id", &g.name).set("enable.auto.commit", "false");
                Ok((g.clone(), config.create().context("lag consumer")?))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut config = kafka.client_config("hub-bench-watermarks");
        config.set("group.id", "hub-bench-watermarks");
        let watermarks: BaseConsumer = config.create().context("watermark consumer")?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (samples2, stop2, ledger) = (Arc::clone(&samples), Arc::clone(&stop), Arc::clone(ledger));
        let thread = std::thread::Builder::new().name("bench-lag".to_owned()).spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let at = ledger.now() as f64 / 1e9;
                let lag = consumers
                    .iter()
                    .map(|(group, consumer)| group_lag(consumer, &watermarks, group).unwrap_or(-1))
                    .collect();
                if let Ok(mut samples) = samples2.lock() {
                    samples.push(LagSample { at, lag });
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
            }
        })?;
        Ok(Self { groups: groups.into_iter().map(|g| g.name).collect(), samples, stop, thread: Some(thread) })
    }

    /// Stops sampling; returns the samples.
    pub fn stop(mut self) -> Vec<LagSample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Per request of the run: what the topics hold for its correlation id.
#[derive(Debug, Default)]
pub struct TopicCounts {
    pub inbound_records: i64,
    pub dispatches: Vec<u16>,
    pub notifications: Vec<u16>,
    /// Status name and version of the latest state, if any.
    pub states: Vec<Option<(String, i64)>>,
    /// Records whose key names no request of this run.
    pub strays: u64,
}

fn event_type(message: &rdkafka::message::BorrowedMessage<'_>) -> Option<String> {
    interchange_core::headers::Received::of(message).event_type
}

/// Reads the run's topics back (off the async workers).
pub async fn read_topics(
    topology: &Topology,
    kafka: &KafkaSettings,
    registry: &Registry,
    ledger: &Arc<Ledger>,
    inbound_before: i64,
) -> anyhow::Result<TopicCounts> {
    let processor = topology.processors.first().context("no processor")?.clone();
    let inbound = processor.inputs.first().context("processor inputs")?.clone();
    let commands = processor.outputs.first().context("processor outputs")?.clone();
    let state_schema = topology.contracts.get("order_state").context("contract order_state")?.schema.clone();
    let reader = Reader::new(registry.clone(), [("order_state".to_owned(), state_schema)]);
    let runtime = tokio::runtime::Handle::current();
    let inbound_after = super::super::setup::count_records(kafka, &inbound).await?;
    let (kafka, ledger) = (kafka.clone(), Arc::clone(ledger));
    let (commands_partitions, state_partitions) =
        (partitions(topology, &commands), partitions(topology, &processor.state));
    tokio::task::spawn_blocking(move || -> anyhow::Result<TopicCounts> {
        let n = ledger.slots.len();
        let mut counts = TopicCounts {
            inbound_records: inbound_after - inbound_before,
            dispatches: vec![0; n],
            notifications: vec![0; n],
            states: vec![None; n],
            strays: 0,
        };
        let index = |key: Option<&[u8]>| -> Option<usize> {
            let key = std::str::from_utf8(key?).ok()?;
            // The edge scopes a supplied correlation id to its partner: `<partner>:<run>-<seq>`.
            let id = key.rsplit_once(':').map_or(key, |(_, id)| id);
            let (run, sequence) = id.rsplit_once('-')?;
            (run == ledger.run).then(|| sequence.parse().ok()).flatten()
        };
        super::super::setup::scan(&kafka, &commands, commands_partitions, "read_committed", |m| {
            let Some(i) = index(m.key()).filter(|i| *i < n) else {
                counts.strays += 1;
                return;
            };
            match event_type(m).as_deref() {
                Some("dispatch_command") => counts.dispatches[i] += 1,
                Some("notification_command") => counts.notifications[i] += 1,
                _ => {}
            }
        })?;
        super::super::setup::scan(&kafka, &processor.state, state_partitions, "read_committed", |m| {
            let Some(i) = index(m.key()).filter(|i| *i < n) else {
                counts.strays += 1;
                return;
            };
            counts.states[i] =
                m.payload().and_then(|p| runtime.block_on(reader.decode_json(p)).ok()).and_then(state_of);
        })?;
        Ok(counts)
    })
    .await
    .context("reading the topics")?
}

/// Status and version of an `order_state` read by the hub's reader.
fn state_of((_, json): (String, serde_json::Value)) -> Option<(String, i64)> {
    Some((json.get("status")?.as_str()?.to_owned(), json.get("version")?.as_i64()?))
}
