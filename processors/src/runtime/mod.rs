//! The processor runtime: restore, lookup tables, the transaction loop, health and metrics.
//!
//! Offers [`run`] and its options; `restore`, `store`, `codec` and `metrics` are public for the
//! benches and tests that measure restores or register the metrics. The loop (`eos.rs`, extended
//! by `rebalance.rs`), what it writes (`outputs.rs`), its consumer (`consumer.rs`), delivery
//! reports (`delivery.rs`) and the lookup table stay inside the crate.

pub mod codec;
mod config;
mod consumer;
mod delivery;
mod eos;
mod error;
mod lookup;
pub mod metrics;
mod outputs;
mod rebalance;
pub mod restore;
mod shared;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use interchange_core::health::{self, Readiness};
use interchange_core::kafka::KafkaSettings;
use interchange_core::topology::{Processor, Topology};
use interchange_core::Services;
use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseProducer;
use tokio_util::sync::CancellationToken;

pub use config::{Mode, ProcessorConfig};
pub use error::ProcessorError;

use crate::machine::Machine;
use shared::Shared;

/// What every processor of a run is started with.
pub(crate) struct Context<'a> {
    topology: &'a Topology,
    services: &'a Services,
    pub(crate) config: &'a ProcessorConfig,
    registry: interchange_core::registry::Registry,
    metrics: metrics::ProcessorMetrics,
    shutdown: CancellationToken,
}

/// A processor started, whatever its machine: its readiness and its loop, to be spawned.
pub(crate) struct Launched {
    /// `None` once its partitions are assigned and restored and its lookup table read; else why not.
    ready: Box<dyn Fn() -> Option<String> + Send + Sync>,
    run: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ProcessorError>> + Send>>,
}

/// Runs every processor of the topology until `shutdown`, each with its own consumer group,
/// transactional id, state and loop thread, behind one health and metrics endpoint, with Kafka
/// and the schema registry of `services`. One processor stopping (an error, or `shutdown`)
/// stops the others; an error means exit non-zero.
pub async fn run(
    topology: &Topology,
    services: &Services,
    config: &ProcessorConfig,
    shutdown: CancellationToken,
) -> Result<(), ProcessorError> {
    if topology.processors.is_empty() {
        return Err(ProcessorError::Config("the topology has no processor".to_owned()));
    }
    let mut registry_metrics = prometheus_client::registry::Registry::default();
    let ctx = Context {
        topology,
        services,
        config,
        registry: services.registry.client()?,
        metrics: metrics::ProcessorMetrics::register(&mut registry_metrics),
        shutdown: shutdown.clone(),
    };
    let mut launched = Vec::new();
    for processor in &topology.processors {
        match crate::kinds::launch(&ctx, processor).await {
            Ok(one) => launched.push(one),
            Err(error) => {
                // The lookup threads already started stop with the token.
                shutdown.cancel();
                return Err(error);
            }
        }
    }
    let (checks, loops): (Vec<_>, Vec<_>) = launched.into_iter().map(|l| (l.ready, l.run)).unzip();
    let readiness: Readiness = Arc::new(move || checks.iter().filter_map(|ready| ready()).collect());
    let app = health::router(readiness, Arc::new(Mutex::new(registry_metrics)), shutdown.clone());
    let health = tokio::spawn(health::bind_and_serve(config.processor_listen, app, "processor", shutdown.clone()));
    let loops: Vec<_> = loops.into_iter().map(tokio::spawn).collect();
    let mut result = Ok(());
    for handle in loops {
        let outcome = handle.await.map_err(|e| ProcessorError::Config(format!("processor loop: {e}"))).and_then(|r| r);
        if result.is_ok() {
            result = outcome;
        }
    }
    health.abort();
    result
}

/// One processor set up and ready to loop: its shared state, its loops' clients (one consumer
/// and one producer per `--threads`) and its lookup thread.
struct Started<M: Machine> {
    shared: Arc<Shared<M>>,
    lanes: Vec<(rdkafka::consumer::BaseConsumer<consumer::RebalanceContext>, BaseProducer<delivery::DeliveryContext>)>,
    lookup_thread: Option<std::thread::JoinHandle<()>>,
}

impl<M: Machine> Started<M> {
    /// Runs each loop on a blocking thread of its own until `shutdown`; the first to end
    /// (an error, or `shutdown`) cancels it, so the others and the other processors stop too.
    /// Then waits for the lookup thread.
    async fn run(self, shutdown: CancellationToken) -> Result<(), ProcessorError> {
        let Started { shared, lanes, lookup_thread } = self;
        let mut loops = Vec::new();
        for (lane, (consumer, producer)) in lanes.into_iter().enumerate() {
            let (loop_shared, loop_shutdown) = (Arc::clone(&shared), shutdown.clone());
            loops.push(tokio::task::spawn_blocking(move || {
                // Cancels when this loop ends, however it ends (a panic too): the handles are
                // awaited in order, so a loop that is not first must stop the others itself.
                let _stop_the_others = loop_shutdown.clone().drop_guard();
                let mut l = eos::Loop::new(&loop_shared, lane, consumer, producer);
                let result = l.run(&loop_shutdown);
                l.consumer.unsubscribe();
                if let Err(error) = &result {
                    tracing::error!(processor = %loop_shared.name, lane, %error, "processor failed; stopping the others");
                }
                result
            }));
        }
        let mut result = Ok(());
        for handle in loops {
            let outcome =
                handle.await.map_err(|e| ProcessorError::Config(format!("processor loop: {e}"))).and_then(|r| r);
            if result.is_ok() {
                result = outcome;
            }
        }
        shutdown.cancel();
        if let Some(handle) = lookup_thread {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        tracing::info!(processor = %shared.name, "processor stopped");
        result
    }
}

/// Sets up `processor` driving `machine` (an error in its params stops the start): its codec,
/// topics checked on the broker, lookup table, consumer (subscribed) and producer.
pub(crate) async fn start<M: Machine>(
    ctx: &Context<'_>,
    processor: &Processor,
    machine: Result<M, ProcessorError>,
    retention_ms: Option<i64>,
) -> Result<Launched, ProcessorError> {
    let Context { topology, services, config, registry, metrics, shutdown } = ctx;
    let machine = machine?;
    let mut topics: Vec<String> = processor.inputs.clone();
    topics.extend(processor.outputs.iter().cloned());
    topics.extend(processor.lookups.iter().cloned());
    topics.push(processor.state.clone());
    topics.push(processor.dead_letter.clone());
    let codec = Arc::new(codec::Codec::new(topology, registry, &topics).await?);
    check_contracts(&machine, processor, topology)?;
    let mut output_topics = HashMap::new();
    for topic in topology.topics.iter().filter(|t| processor.outputs.contains(&t.name)) {
        for schema in &topic.schemas {
            output_topics.insert(schema.clone(), topic.name.clone());
        }
    }
    let remember_ms = check_topics(&services.kafka, processor).await?;
    let (table, lookup_thread) = match processor.lookups.first() {
        Some(topic) => {
            // Metadata and watermark calls block: keep them off the async workers.
            let (settings, topic, codec, stop) =
                (services.kafka.clone(), topic.clone(), Arc::clone(&codec), shutdown.clone());
            let (table, handle) = tokio::task::spawn_blocking(move || lookup::spawn(&settings, topic, codec, stop))
                .await
                .map_err(|e| ProcessorError::Config(format!("lookup set-up: {e}")))??;
            (table, Some(handle))
        }
        None => (lookup::Table::default(), None),
    };
    while !table.loaded() && lookup_thread.is_some() && !shutdown.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let group = topology.consumer_group(&processor.name);
    // clap refuses 0; a config built in code gets one loop.
    let threads = config.threads.max(1);
    let shared = Arc::new(Shared {
        name: processor.name.clone(),
        group: group.clone(),
        mode: config.mode,
        settings: services.kafka.clone(),
        codec,
        machine,
        table,
        state_topic: processor.state.clone(),
        dead_letter_topic: processor.dead_letter.clone(),
        output_topics,
        commit: processor.commit,
        commit_interval: processor.commit_interval,
        max_batch: u64::try_from(processor.max_batch).unwrap_or(u64::MAX),
        retention_ms,
        remember_ms,
        metrics: metrics.of(&processor.name),
        lanes: (0..threads).map(|_| shared::Lane::default()).collect(),
    });
    let mut lanes = Vec::new();
    for lane in 0..threads {
        let consumer = consumer::consumer(&services.kafka, &group, config, shared.metrics.lag.clone(), &shared.name)?;
        consumer
            .subscribe(&processor.inputs.iter().map(String::as_str).collect::<Vec<_>>())
            .map_err(|source| ProcessorError::Kafka { operation: "subscribe", source })?;
        let transactional_id = transactional_id(&group, &config.instance_id, lane);
        let producer = producer(&services.kafka, &transactional_id, config)?;
        tracing::info!(processor = %processor.name, %group, %transactional_id, lane, mode = ?config.mode, "processor starting");
        lanes.push((consumer, producer));
    }
    let lookup = !processor.lookups.is_empty();
    let check = Arc::clone(&shared);
    let ready = Box::new(move || {
        let waiting = !check.ready() || (lookup && !check.table.loaded());
        waiting.then(|| format!("processor {}: waiting for partitions or the lookup table", check.name))
    });
    let started = Started { shared, lanes, lookup_thread };
    Ok(Launched { ready, run: Box::pin(started.run(shutdown.clone())) })
}

/// The transactional id of loop `lane` of an instance: the first keeps the id an instance had
/// before `--threads` existed, so an upgraded instance still fences its predecessor; the others
/// are named like Kafka Streams' threads. An instance restarted with fewer threads leaves the
/// others' open transactions to `transaction.timeout.ms`, as a replica that is gone does.
fn transactional_id(group: &str, instance_id: &str, lane: u16) -> String {
    match lane {
        0 => format!("{group}-{instance_id}"),
        n => format!("{group}-{instance_id}-thread-{n}"),
    }
}

/// The machine's state contract is carried by the state topic.
fn check_contracts<M: Machine>(machine: &M, processor: &Processor, topology: &Topology) -> Result<(), ProcessorError> {
    let contract = machine.state_contract();
    let carried = topology.topics.iter().any(|t| t.name == processor.state && t.schemas.iter().any(|s| s == contract));
    if carried {
        Ok(())
    } else {
        Err(ProcessorError::Config(format!(
            "processor {}: its state topic {} does not carry its state contract {contract}",
            processor.name, processor.state
        )))
    }
}

/// The broker's topics, not only the declaration: inputs and state co-partitioned, state and
/// lookups compacted. A mismatch stops the processor before it reads anything. Returns the state
/// topic's `delete.retention.ms` (how long its tombstones stay), 1 day if unknown.
async fn check_topics(settings: &KafkaSettings, processor: &Processor) -> Result<i64, ProcessorError> {
    let admin = interchange_core::kafka::admin::Admin::new(settings)?;
    let mut names = processor.inputs.clone();
    names.push(processor.state.clone());
    names.extend(processor.lookups.iter().cloned());
    let cluster = admin.cluster_state(&names).await?;
    let mut problems = Vec::new();
    for name in &names {
        if !cluster.topics.contains_key(name) {
            problems.push(format!("topic {name} does not exist (run `hub topology apply`)"));
        }
    }
    let partitions = |name: &String| cluster.topics.get(name).map(|t| t.partitions);
    let state = partitions(&processor.state);
    for input in &processor.inputs {
        if partitions(input).is_some() && state.is_some() && partitions(input) != state {
            problems.push(format!(
                "{input} has {:?} partitions but the state topic {} has {state:?}: not co-partitioned",
                partitions(input),
                processor.state
            ));
        }
    }
    for compacted in std::iter::once(&processor.state).chain(&processor.lookups) {
        let policy =
            cluster.topics.get(compacted).and_then(|t| t.configs.get("cleanup.policy")).cloned().unwrap_or_default();
        if cluster.topics.contains_key(compacted) && !policy.contains("compact") {
            problems.push(format!("{compacted} has cleanup.policy={policy}, it must be compacted"));
        }
    }
    if problems.is_empty() {
        Ok(cluster
            .topics
            .get(&processor.state)
            .and_then(|t| t.configs.get("delete.retention.ms"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(86_400_000))
    } else {
        Err(ProcessorError::Config(problems.join("; ")))
    }
}

fn producer(
    settings: &KafkaSettings,
    transactional_id: &str,
    config: &ProcessorConfig,
) -> Result<BaseProducer<delivery::DeliveryContext>, ProcessorError> {
    let mut p = settings.producer_config("hub-processor");
    if config.mode == Mode::ExactlyOnce {
        p.set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", config.transaction_timeout.as_millis().to_string());
    }
    // Right after a commit the coordinator answers CONCURRENT_TRANSACTIONS until its markers are
    // written; librdkafka retries after retry.backoff.ms (100 ms by default), which capped every
    // transaction at 100 ms. The Java client retries these after 20 ms.
    p.set("retry.backoff.ms", "10").set("retry.backoff.max.ms", "500");
    for (k, v) in &settings.properties {
        p.set(k, v);
    }
    p.create_with_context(delivery::DeliveryContext::default())
        .map_err(|source| ProcessorError::Kafka { operation: "producer", source })
}

#[cfg(test)]
mod tests {
    use super::transactional_id;

    #[test]
    fn the_first_loop_keeps_the_instance_id_and_the_others_are_numbered() {
        assert_eq!(transactional_id("p.flow", "hub-0", 0), "p.flow-hub-0");
        assert_eq!(transactional_id("p.flow", "hub-0", 1), "p.flow-hub-0-thread-1");
        assert_ne!(transactional_id("g", "hub-0", 1), transactional_id("g", "hub-1", 0));
    }
}
