//! `hub topology apply|describe`: compare declared topics with a cluster, plan safe changes, apply them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;

use super::KafkaSettings;
use crate::error::CoreError;
use crate::topology::{CleanupPolicy, Topic, Topology};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A topic as the cluster has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualTopic {
    pub partitions: i32,
    pub replication_factor: i32,
    /// Every config value the broker reports.
    pub configs: BTreeMap<String, String>,
    /// Configs set on the topic itself (not broker defaults); kept when altering.
    pub dynamic: BTreeMap<String, String>,
}

/// What the cluster holds of the declared topics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterState {
    pub brokers: usize,
    pub topics: BTreeMap<String, ActualTopic>,
}

/// How to plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Lower replication factor and min.insync.replicas to the broker count (development clusters).
    pub allow_fewer_replicas: bool,
}

/// One safe change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create {
        topic: String,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
    },
    AddPartitions {
        topic: String,
        from: i32,
        to: i32,
    },
    /// `set` lists what changes; `full` is the whole dynamic config sent (AlterConfigs replaces it).
    AlterConfigs {
        topic: String,
        set: Vec<(String, Option<String>, String)>,
        full: BTreeMap<String, String>,
    },
}

/// A change the hub will not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    FewerPartitions { topic: String, declared: i32, actual: i32 },
    CompactedToDelete { topic: String, actual: String },
    ReplicationFactor { topic: String, declared: i32, actual: i32 },
    NotEnoughBrokers { topic: String, replication_factor: i32, brokers: usize },
}

/// Changes to make, changes refused, and notes (such as clamped replication).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub refusals: Vec<Refusal>,
    pub notes: Vec<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create { topic, partitions, replication_factor, configs } => {
                let configs: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(
                    f,
                    "create {topic}: {partitions} partitions, replication factor {replication_factor}, {}",
                    configs.join(" ")
                )
            }
            Self::AddPartitions { topic, from, to } => write!(f, "raise {topic} from {from} to {to} partitions"),
            Self::AlterConfigs { topic, set, .. } => {
                let set: Vec<String> = set
                    .iter()
                    .map(|(k, old, new)| format!("{k}: {} -> {new}", old.as_deref().unwrap_or("(unset)")))
                    .collect();
                write!(f, "alter {topic}: {}", set.join(", "))
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FewerPartitions { topic, declared, actual } => write!(
                f,
                "{topic}: declared {declared} partitions but it has {actual}; Kafka cannot remove partitions and \
                 re-keying would break per-key order (create a new topic and migrate)"
            ),
            Self::CompactedToDelete { topic, actual } => write!(
                f,
                "{topic}: is cleanup.policy={actual}; turning a compacted topic to delete would expire state that \
                 readers rely on (change it by hand if you mean it)"
            ),
            Self::ReplicationFactor { topic, declared, actual } => write!(
                f,
                "{topic}: declared replication factor {declared} but it has {actual}; changing it needs a partition \
                 reassignment (kafka-reassign-partitions), which apply does not do"
            ),
            Self::NotEnoughBrokers { topic, replication_factor, brokers } => write!(
                f,
                "{topic}: replication factor {replication_factor} needs that many brokers, the cluster has {brokers} \
                 (pass --allow-fewer-replicas on a development cluster)"
            ),
        }
    }
}

/// The replication factor and min.insync.replicas to use for `topic` on `brokers` brokers.
fn effective_replication(topic: &Topic, brokers: usize, opts: PlanOptions) -> (i32, i32, bool) {
    let brokers = i32::try_from(brokers).unwrap_or(i32::MAX).max(1);
    if opts.allow_fewer_replicas && topic.replication_factor > brokers {
        (brokers, topic.min_insync_replicas.min(brokers), true)
    } else {
        (topic.replication_factor, topic.min_insync_replicas, false)
    }
}

fn same_value(key: &str, a: &str, b: &str) -> bool {
    if key == "cleanup.policy" {
        return CleanupPolicy::from_kafka(a).is_some() && CleanupPolicy::from_kafka(a) == CleanupPolicy::from_kafka(b);
    }
    a == b
}

/// Plans the changes that make `cluster` match `topology`. Pure: no I/O.
pub fn plan(topology: &Topology, cluster: &ClusterState, opts: PlanOptions) -> Plan {
    let mut plan = Plan::default();
    for topic in &topology.topics {
        let (rf, min_isr, clamped) = effective_replication(topic, cluster.brokers, opts);
        if clamped {
            plan.notes.push(format!(
                "{}: replication factor {} lowered to {rf}, min.insync.replicas {} to {min_isr} ({} broker(s))",
                topic.name, topic.replication_factor, topic.min_insync_replicas, cluster.brokers
            ));
        }
        let mut desired = topic.kafka_configs();
        desired.insert("min.insync.replicas".to_owned(), min_isr.to_string());
        let Some(actual) = cluster.topics.get(&topic.name) else {
            if usize::try_from(rf).unwrap_or(usize::MAX) > cluster.brokers {
                plan.refusals.push(Refusal::NotEnoughBrokers {
                    topic: topic.name.clone(),
                    replication_factor: rf,
                    brokers: cluster.brokers,
                });
            } else {
                plan.changes.push(Change::Create {
                    topic: topic.name.clone(),
                    partitions: topic.partitions,
                    replication_factor: rf,
                    configs: desired,
                });
            }
            continue;
        };
        if actual.partitions > topic.partitions {
            plan.refusals.push(Refusal::FewerPartitions {
                topic: topic.name.clone(),
                declared: topic.partitions,
                actual: actual.partitions,
            });
        } else if actual.partitions < topic.partitions {
            plan.changes.push(Change::AddPartitions {
                topic: topic.name.clone(),
                from: actual.partitions,
                to: topic.partitions,
            });
        }
        if actual.replication_factor != rf {
            plan.refusals.push(Refusal::ReplicationFactor {
                topic: topic.name.clone(),
                declared: rf,
                actual: actual.replication_factor,
            });
        }
        let actual_policy = actual.configs.get("cleanup.policy").cloned().unwrap_or_default();
        let was_compacted = CleanupPolicy::from_kafka(&actual_policy).is_some_and(CleanupPolicy::is_compacted);
        if was_compacted && !topic.cleanup_policy.is_compacted() {
            plan.refusals.push(Refusal::CompactedToDelete { topic: topic.name.clone(), actual: actual_policy });
        }
        let set: Vec<(String, Option<String>, String)> = desired
            .iter()
            .filter(|(key, value)| !actual.configs.get(*key).is_some_and(|a| same_value(key, a, value)))
            .map(|(key, value)| (key.clone(), actual.configs.get(key).cloned(), value.clone()))
            .collect();
        if !set.is_empty() {
            let mut full = actual.dynamic.clone();
            full.extend(desired);
            plan.changes.push(Change::AlterConfigs { topic: topic.name.clone(), set, full });
        }
    }
    plan
}

/// An admin connection to the cluster.
pub struct Admin {
    client: Arc<AdminClient<DefaultClientContext>>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

fn kafka<'a>(operation: &'static str, topic: Option<&'a str>) -> impl FnOnce(KafkaError) -> CoreError + 'a {
    move |source| CoreError::Kafka { operation, topic: topic.map(str::to_owned), source }
}

impl Admin {
    /// Connects (lazily) with `settings`.
    pub fn new(settings: &KafkaSettings) -> Result<Self, CoreError> {
        let client = settings.client_config("hub-admin").create().map_err(kafka("admin client", None))?;
        Ok(Self { client: Arc::new(client) })
    }

    fn options() -> AdminOptions {
        AdminOptions::new().request_timeout(Some(TIMEOUT)).operation_timeout(Some(TIMEOUT))
    }

    /// Reads broker count, partitions, replication and configs of the named topics.
    pub async fn cluster_state(&self, names: &[String]) -> Result<ClusterState, CoreError> {
        let client = Arc::clone(&self.client);
        // fetch_metadata blocks the calling thread: keep it off the async workers.
        let metadata = tokio::task::spawn_blocking(move || client.inner().fetch_metadata(None, TIMEOUT))
            .await
            .map_err(|_| CoreError::Kafka { operation: "metadata", topic: None, source: KafkaError::Canceled })?
            .map_err(kafka("metadata", None))?;
        let mut state = ClusterState { brokers: metadata.brokers().len(), topics: BTreeMap::new() };
        for topic in metadata.topics() {
            if !names.iter().any(|n| n == topic.name()) || topic.error().is_some() {
                continue;
            }
            let partitions = i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX);
            let rf = topic.partitions().first().map_or(0, |p| p.replicas().len());
            state.topics.insert(
                topic.name().to_owned(),
                ActualTopic {
                    partitions,
                    replication_factor: i32::try_from(rf).unwrap_or(i32::MAX),
                    configs: BTreeMap::new(),
                    dynamic: BTreeMap::new(),
                },
            );
        }
        let existing: Vec<String> = state.topics.keys().cloned().collect();
        if !existing.is_empty() {
            let specs: Vec<ResourceSpecifier<'_>> = existing.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
            let results = self
                .client
                .describe_configs(&specs, &Self::options())
                .await
                .map_err(kafka("describe configs", None))?;
            for (name, result) in existing.iter().zip(results) {
                let resource = result.map_err(|e| CoreError::Kafka {
                    operation: "describe configs",
                    topic: Some(name.clone()),
                    source: KafkaError::AdminOp(e),
                })?;
                if let Some(topic) = state.topics.get_mut(name) {
                    for entry in resource.entries {
                        let Some(value) = entry.value else { continue };
                        if entry.source == ConfigSource::DynamicTopic {
                            topic.dynamic.insert(entry.name.clone(), value.clone());
                        }
                        topic.configs.insert(entry.name, value);
                    }
                }
            }
        }
        Ok(state)
    }

    /// Applies `changes` in order: creations, partition raises, config changes.
    pub async fn apply(&self, changes: &[Change]) -> Result<(), CoreError> {
        let opts = Self::options();
        let mut creates = Vec::new();
        let mut raises = Vec::new();
        let mut alters = Vec::new();
        for change in changes {
            match change {
                Change::Create { topic, partitions, replication_factor, configs } => {
                    let mut new = NewTopic::new(topic, *partitions, TopicReplication::Fixed(*replication_factor));
                    for (k, v) in configs {
                        new = new.set(k, v);
                    }
                    creates.push(new);
                }
                Change::AddPartitions { topic, to, .. } => {
                    raises.push(NewPartitions::new(topic, usize::try_from(*to).unwrap_or(0)));
                }
                Change::AlterConfigs { topic, full, .. } => {
                    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
                    for (k, v) in full {
                        alter = alter.set(k, v);
                    }
                    alters.push(alter);
                }
            }
        }
        let check = |operation: &'static str, results: Vec<rdkafka::admin::TopicResult>| -> Result<(), CoreError> {
            for result in results {
                if let Err((topic, code)) = result {
                    return Err(CoreError::KafkaTopic { operation, topic, code });
                }
            }
            Ok(())
        };
        if !creates.is_empty() {
            check(
                "create topic",
                self.client.create_topics(&creates, &opts).await.map_err(kafka("create topics", None))?,
            )?;
        }
        if !raises.is_empty() {
            check(
                "create partitions",
                self.client.create_partitions(&raises, &opts).await.map_err(kafka("create partitions", None))?,
            )?;
        }
        if !alters.is_empty() {
            let results = self.client.alter_configs(&alters, &opts).await.map_err(kafka("alter configs", None))?;
            for result in results {
                if let Err((spec, code)) = result {
                    return Err(CoreError::KafkaTopic { operation: "alter configs", topic: format!("{spec:?}"), code });
                }
            }
        }
        self.wait_visible(changes).await
    }

    /// Waits until the broker reports every created topic, raised partition count and changed
    /// config (they propagate through the metadata log), so whatever runs after `apply` sees them.
    async fn wait_visible(&self, changes: &[Change]) -> Result<(), CoreError> {
        let mut expected: BTreeMap<String, (Option<i32>, BTreeMap<String, String>)> = BTreeMap::new();
        for change in changes {
            match change {
                Change::Create { topic, partitions, configs, .. } => {
                    expected.insert(topic.clone(), (Some(*partitions), configs.clone()));
                }
                Change::AddPartitions { topic, to, .. } => expected.entry(topic.clone()).or_default().0 = Some(*to),
                Change::AlterConfigs { topic, set, .. } => {
                    let entry = expected.entry(topic.clone()).or_default();
                    entry.1.extend(set.iter().map(|(k, _, v)| (k.clone(), v.clone())));
                }
            }
        }
        let names: Vec<String> = expected.keys().cloned().collect();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let state = self.cluster_state(&names).await?;
            let pending = expected.iter().find(|(name, (partitions, configs))| {
                let Some(actual) = state.topics.get(*name) else { return true };
                partitions.is_some_and(|p| p != actual.partitions)
                    || configs.iter().any(|(k, v)| !actual.configs.get(k).is_some_and(|a| same_value(k, a, v)))
            });
            let Some((topic, _)) = pending else { return Ok(()) };
            if tokio::time::Instant::now() >= deadline {
                return Err(CoreError::KafkaTopic {
                    operation: "wait for the change to show",
                    topic: topic.clone(),
                    code: rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
