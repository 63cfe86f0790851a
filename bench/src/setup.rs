//! The bench's own corner of the stack: a fresh topic prefix, its topics and subjects (made by
//! the same library code as `hub topology apply` and `hub schemas register`), partner secrets in
//! files, records counted from the watermarks, and the topics deleted afterwards; the Kafka
//! settings from the shared options, and the `hub` binary the benches run as a child process.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use interchange_core::cli::Global;
use interchange_core::kafka::admin::{plan, Admin, PlanOptions};
use interchange_core::kafka::KafkaSettings;
use interchange_core::registry::Registry;
use interchange_core::topology::{Route, SecretRef, Topology};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::requests::Credentials;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The compatibility rule `hub schemas register` sets on every subject.
const COMPATIBILITY: &str = "BACKWARD";

/// Kafka settings from the options `hub-bench` shares with `hub`.
pub fn kafka(global: &Global) -> anyhow::Result<KafkaSettings> {
    global.kafka().context("Kafka settings")
}

/// The `hub` binary next to this executable (`target/<profile>/hub` beside
/// `target/<profile>/hub-bench`): the benches that measure a role in its own process run it.
pub fn hub_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("current exe")?;
    let hub = exe.with_file_name(format!("hub{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        hub.is_file(),
        "{} not found: hub-bench runs the hub binary next to it (build both: cargo build -p hub -p hub-bench)",
        hub.display()
    );
    Ok(hub)
}

/// A fresh prefix, `bench-<8 hex>.`, so a run never touches anyone else's topics or subjects.
pub fn fresh_prefix() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("bench-{}.", hex.get(..8).unwrap_or(&hex))
}

/// A private folder for the partner secret files, removed on drop.
#[derive(Debug)]
pub struct SecretDir {
    pub path: PathBuf,
}

impl SecretDir {
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("hub-{}", prefix.trim_end_matches('.')));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// Writes `secret` to a file only the owner can read; returns its path.
    pub fn write(&self, name: &str, secret: &str) -> anyhow::Result<String> {
        let path = self.path.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(secret.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        Ok(path.display().to_string())
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What the bench posts to: the topology's first route and the first of its partners that
/// takes inbound requests.
#[derive(Debug, Clone)]
pub struct Target {
    pub route: Route,
    pub partner: String,
}

/// Picks the route and partner, and points that partner's API keys and webhook secrets at
/// files holding `credentials` (in the loaded topology only; nothing is written to the
/// topology file or the environment).
pub fn use_credentials(topology: &mut Topology, credentials: &Credentials, dir: &SecretDir) -> anyhow::Result<Target> {
    let route = topology.routes.first().context("the topology has no ingest route")?.clone();
    let api_keys = dir.write("api-keys", &credentials.api_key)?;
    let secrets = dir.write("webhook-secrets", &credentials.webhook_secret)?;
    let partner = topology
        .partners
        .iter_mut()
        .find(|p| route.partners.contains(&p.name) && p.inbound.is_some())
        .with_context(|| format!("no partner of route {} takes inbound requests", route.path))?;
    if let Some(inbound) = partner.inbound.as_mut() {
        inbound.api_keys = Some(SecretRef::File(api_keys));
        inbound.webhook_secrets = Some(SecretRef::File(secrets));
    }
    let target = partner.name.clone();
    // The route's other partners (other tenants) get credentials of their own nobody uses, so the
    // edge starts without their real secrets.
    for other in topology.partners.iter_mut().filter(|p| route.partners.contains(&p.name) && p.name != target) {
        let Some(inbound) = other.inbound.as_mut() else { continue };
        let unused = Credentials::random();
        if inbound.api_keys.is_some() {
            inbound.api_keys = Some(SecretRef::File(dir.write(&format!("api-keys-{}", other.name), &unused.api_key)?));
        }
        if inbound.webhook_secrets.is_some() {
            let file = dir.write(&format!("webhook-secrets-{}", other.name), &unused.webhook_secret)?;
            inbound.webhook_secrets = Some(SecretRef::File(file));
        }
        if let Some(jwt) = inbound.jwt.as_mut() {
            if jwt.hs256_secret.is_some() {
                jwt.hs256_secret =
                    Some(SecretRef::File(dir.write(&format!("jwt-{}", other.name), &unused.webhook_secret)?));
            }
        }
    }
    Ok(Target { route, partner: target })
}

/// Creates the prefixed topics as `hub topology apply --allow-fewer-replicas` does.
pub async fn create_topics(topology: &Topology, kafka: &KafkaSettings) -> anyhow::Result<usize> {
    let admin = Admin::new(kafka)?;
    let names: Vec<String> = topology.topics.iter().map(|t| t.name.clone()).collect();
    let cluster = admin.cluster_state(&names).await.context("reading the cluster")?;
    let plan = plan(topology, &cluster, PlanOptions { allow_fewer_replicas: true });
    if !plan.refusals.is_empty() {
        let refusals: Vec<String> = plan.refusals.iter().map(ToString::to_string).collect();
        anyhow::bail!("topology apply refused: {}", refusals.join("; "));
    }
    admin.apply(&plan.changes).await.context("creating the bench topics")?;
    Ok(plan.changes.len())
}

/// Registers every contract under its prefixed subject as `hub schemas register` does; returns
/// the schema id of each subject.
pub async fn register_schemas(topology: &Topology, registry: &Registry) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut ids = BTreeMap::new();
    for (subject, contract) in topology.subjects() {
        registry.set_compatibility(&subject, COMPATIBILITY).await?;
        let id = registry.register(&subject, &contract.text).await?;
        let id = u32::try_from(id).with_context(|| format!("subject {subject}: schema id {id} out of range"))?;
        ids.insert(subject, id);
    }
    Ok(ids)
}

/// Records on `topic` now: high minus low watermark, summed over its partitions.
pub async fn count_records(kafka: &KafkaSettings, topic: &str) -> anyhow::Result<i64> {
    let mut config = kafka.client_config("hub-bench-count");
    config.set("group.id", "hub-bench-count");
    let consumer: BaseConsumer = config.create().context("watermark consumer")?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT).context("topic metadata")?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions");
        let mut total = 0;
        for partition in partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, TIMEOUT)
                .with_context(|| format!("watermarks of {topic}/{partition}"))?;
            total += high - low;
        }
        Ok(total)
    })
    .await
    .context("watermark task")?
}

/// Deletes the run's topics (every name carries the run's fresh prefix).
pub async fn delete_topics(topology: &Topology, kafka: &KafkaSettings) -> anyhow::Result<()> {
    anyhow::ensure!(topology.topic_prefix.starts_with("bench-"), "refusing to delete topics without a bench prefix");
    let client: AdminClient<DefaultClientContext> =
        kafka.client_config("hub-bench-admin").create().context("admin client")?;
    let names: Vec<&str> = topology.topics.iter().map(|t| t.name.as_str()).collect();
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT)).operation_timeout(Some(TIMEOUT));
    for result in client.delete_topics(&names, &options).await.context("deleting the bench topics")? {
        if let Err((name, code)) = result {
            anyhow::bail!("deleting {name}: {code}");
        }
    }
    Ok(())
}

/// The contract a route carries.
pub fn route_contract<'t>(
    topology: &'t Topology,
    route: &Route,
) -> anyhow::Result<&'t interchange_core::topology::Contract> {
    topology
        .contracts
        .get(&route.schema)
        .with_context(|| format!("route {}: unknown contract {}", route.path, route.schema))
}

/// The subject of the route's contract on its topic.
pub fn route_subject(topology: &Topology, route: &Route) -> anyhow::Result<String> {
    let topic = topology
        .topics
        .iter()
        .find(|t| t.name == route.topic)
        .with_context(|| format!("route {}: unknown topic", route.path))?;
    Ok(topic.subject(route_contract(topology, route)?))
}

/// Calls `each` with every record of `topic` from the start to the end as it is now.
pub fn scan(
    kafka: &KafkaSettings,
    topic: &str,
    count: i32,
    isolation: &str,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let mut config = kafka.client_config("hub-bench-scan");
    config
        .set("group.id", format!("hub-bench-scan-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation);
    let consumer: BaseConsumer = config.create().context("scan consumer")?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..count {
        let (low, high) = consumer.fetch_watermarks(topic, p, TIMEOUT)?;
        if high > low {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
            ends.push((p, high));
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    let mut done = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while done.len() < ends.len() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "reading {topic} took over 10 minutes");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let end = ends.iter().find(|(p, _)| *p == message.partition()).map_or(0, |(_, h)| *h);
                if message.offset() + 1 >= end {
                    done.insert(message.partition());
                }
                each(&message);
            }
            Some(Err(error)) => anyhow::bail!("reading {topic}: {error}"),
            None => {
                // read_committed stops short of the high watermark after a commit marker.
                let position = consumer.position()?;
                for (p, end) in &ends {
                    if let Some(Offset::Offset(o)) = position.find_partition(topic, *p).map(|e| e.offset()) {
                        if o >= *end {
                            done.insert(*p);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
