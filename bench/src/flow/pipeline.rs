//! The whole pipeline in the bench's process under a fresh topic prefix: the topology loaded with
//! the bench's partners and secrets, topics and contracts, stock for the bench's SKUs, then the
//! edge, the processor and the HTTP sinks, each stopped through its shutdown token.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use interchange_core::kafka::KafkaSettings;
use interchange_core::registry::Registry;
use interchange_core::topology::{OutboundAuth, ProcessorParams, RateLimit, SecretRef, SinkParams, Topology};
use interchange_processors::runtime::Mode;
use interchange_processors::ProcessorConfig;
use interchange_sinks::SinkConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::super::edge::{self, RunningEdge};
use super::super::requests::Credentials;
use super::super::setup::{self, SecretDir, Target};
use super::partners::{CALLBACK_PATH, ERP_PATH};

/// Lines of the bench's order (`requests::order`): SKU-00100 to SKU-00112.
const SKUS: std::ops::Range<usize> = 100..113;

/// How the bench configures the partners it stands in for.
#[derive(Debug, Clone, Copy)]
pub struct PartnerLimits {
    pub rate: u32,
    pub concurrency: u32,
}

/// The bench's topology and secrets: the shipped topology with a fresh prefix, the bench's
/// credentials for the inbound partner, and the outbound partners pointed at the bench's ERP and
/// callback receiver with their limits raised to `limits`.
#[derive(Debug)]
pub struct Prepared {
    pub topology: Topology,
    pub target: Target,
    pub credentials: Credentials,
    pub secrets: SecretDir,
}

/// A fresh `whsec_` secret of 32 random bytes.
pub fn random_secret() -> String {
    use base64::Engine;
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key))
}

pub fn prepare(
    path: &std::path::Path,
    prefix: &str,
    erp_url: &str,
    callback_url: &str,
    signing_secret: &str,
    limits: PartnerLimits,
) -> anyhow::Result<Prepared> {
    let mut topology = Topology::load(path, prefix).map_err(anyhow::Error::new)?;
    let credentials = Credentials::random();
    let secrets = SecretDir::new(prefix)?;
    let target = setup::use_credentials(&mut topology, &credentials, &secrets)?;
    let erp_partner = topology
        .processors
        .iter()
        .find_map(|p| match &p.params {
            ProcessorParams::OrderSaga { erp_partner, .. } => Some(erp_partner.clone()),
            #[allow(unreachable_patterns)]
            _ => None,
        })
        .context("the topology has no order saga")?;
    let signing_file = secrets.write("signing-secret", signing_secret)?;
    let token_file = secrets.write("erp-token", &format!("bench-{}", uuid::Uuid::new_v4().simple()))?;
    for partner in &mut topology.partners {
        let is_erp = partner.name == erp_partner;
        let is_client = partner.name == target.partner;
        let Some(outbound) = partner.outbound.as_mut() else { continue };
        outbound.rate_limit = RateLimit { per_second: limits.rate, burst: limits.rate.max(1) };
        outbound.concurrency = limits.concurrency;
        if is_erp {
            outbound.base_url = erp_url.to_owned();
            outbound.path = ERP_PATH.to_owned();
            outbound.auth = match outbound.auth.take() {
                None => None,
                Some(OutboundAuth::Bearer { .. }) => {
                    Some(OutboundAuth::Bearer { token: SecretRef::File(token_file.clone()) })
                }
                Some(OutboundAuth::ApiKey { header, .. }) => {
                    Some(OutboundAuth::ApiKey { header, key: SecretRef::File(token_file.clone()) })
                }
                Some(other) => anyhow::bail!("the bench cannot stand in for {erp_partner}'s auth {other:?}"),
            };
        } else if is_client {
            outbound.base_url = callback_url.to_owned();
            outbound.path = CALLBACK_PATH.to_owned();
            outbound.signing_secret = Some(SecretRef::File(signing_file.clone()));
        } else {
            // Other tenants the sinks also serve (the bench sends them nothing): stand-in secrets,
            // so the sinks start without their real ones.
            if outbound.signing_secret.is_some() {
                outbound.signing_secret = Some(SecretRef::File(signing_file.clone()));
            }
            outbound.auth = match outbound.auth.take() {
                Some(OutboundAuth::Bearer { .. }) => {
                    Some(OutboundAuth::Bearer { token: SecretRef::File(token_file.clone()) })
                }
                Some(OutboundAuth::ApiKey { header, .. }) => {
                    Some(OutboundAuth::ApiKey { header, key: SecretRef::File(token_file.clone()) })
                }
                other => other,
            };
        }
    }
    Ok(Prepared { topology, target, credentials, secrets })
}

/// Creates the topics, registers the contracts and publishes plenty of stock for the bench's
/// SKUs on the processor's lookup topic; returns the schema ids.
pub async fn provision(
    topology: &Topology,
    kafka: &KafkaSettings,
    registry: &Registry,
) -> anyhow::Result<BTreeMap<String, u32>> {
    setup::create_topics(topology, kafka).await?;
    let ids = setup::register_schemas(topology, registry).await?;
    let lookup = topology
        .processors
        .first()
        .and_then(|p| p.lookups.first())
        .context("the order saga has no inventory lookup")?;
    let topic = topology.topics.iter().find(|t| &t.name == lookup).context("lookup topic")?;
    let contract = topology.contracts.get("inventory_level").context("contract inventory_level")?;
    let id = *ids.get(&topic.subject(contract)).context("inventory_level was not registered")?;
    let producer: FutureProducer = kafka.producer_config("hub-bench-stock").create().context("stock producer")?;
    for n in SKUS {
        let sku = format!("SKU-{n:05}");
        let json = serde_json::json!({ "sku": sku, "available": 2_000_000_000_i64, "updated_at": 0 });
        let value = interchange_core::contract::json_to_avro(
            &contract.schema,
            &json,
            interchange_core::contract::UnknownFields::Reject,
        )
        .map_err(|v| anyhow::anyhow!("inventory_level: {v:?}"))?;
        let payload = interchange_core::avro::wire_format(&contract.schema, id, value).map_err(anyhow::Error::msg)?;
        producer
            .send(FutureRecord::to(lookup).key(&sku).payload(&payload), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .context("publishing stock")?;
    }
    Ok(ids)
}

#[derive(Parser)]
struct ProcessorDefaults {
    #[command(flatten)]
    config: ProcessorConfig,
}

#[derive(Parser)]
struct SinkDefaults {
    #[command(flatten)]
    config: SinkConfig,
}

/// A runtime of a role's own, its threads named `hub-<role>`: the CPU budget (`cpu.rs`) tells the
/// roles apart by thread name, as it would tell processes apart. Shut down without blocking when
/// dropped (a runtime dropped on an async worker would panic).
struct RoleRuntime(Option<tokio::runtime::Runtime>);

impl RoleRuntime {
    fn new(role: &str, workers: usize) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(format!("hub-{role}"))
            .enable_all()
            .build()
            .with_context(|| format!("the {role} runtime"))?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> anyhow::Result<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle).context("runtime already shut down")
    }
}

impl Drop for RoleRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The running roles.
pub struct Running {
    pub edge: RunningEdge,
    shutdown: CancellationToken,
    processor: JoinHandle<Result<(), interchange_processors::ProcessorError>>,
    sinks: JoinHandle<Result<(), interchange_sinks::SinkError>>,
    /// Dropped last: the roles' tasks run on them.
    _runtimes: Vec<RoleRuntime>,
}

/// Starts the processor and the HTTP sinks (the read-model projector is not part of the
/// measured path), then the edge, each on a runtime of its own; returns once the edge is ready.
pub async fn start(
    topology: &Topology,
    services: &interchange_core::Services,
    mode: Mode,
    edge_in_flight: usize,
) -> anyhow::Result<Running> {
    let shutdown = CancellationToken::new();
    let (processor_runtime, sinks_runtime, edge_runtime) =
        (RoleRuntime::new("processor", 1)?, RoleRuntime::new("sinks", 2)?, RoleRuntime::new("edge", 2)?);
    let mut processor = ProcessorDefaults::try_parse_from(["bench", "--processor-listen", "127.0.0.1:0"])?.config;
    processor.mode = mode;
    processor.instance_id = "bench-flow".to_owned();
    let processor_services = interchange_core::Services::new(services.kafka.clone(), services.registry.clone());
    let processor = {
        let (topology, shutdown) = (topology.clone(), shutdown.clone());
        processor_runtime.handle()?.spawn(async move {
            interchange_processors::run(&topology, &processor_services, &processor, shutdown).await
        })
    };
    let mut args = vec!["bench".to_owned(), "--sink-listen".to_owned(), "127.0.0.1:0".to_owned()];
    for sink in topology.sinks.iter().filter(|s| matches!(s.params, SinkParams::Http { .. })) {
        args.extend(["--sink".to_owned(), sink.name.clone()]);
    }
    let sink_config = SinkDefaults::try_parse_from(args)?.config;
    let sink_services = interchange_core::Services::new(services.kafka.clone(), services.registry.clone());
    let sinks = {
        let (topology, shutdown) = (topology.clone(), shutdown.clone());
        sinks_runtime
            .handle()?
            .spawn(async move { interchange_sinks::run(&topology, &sink_services, &sink_config, shutdown).await })
    };
    let edge = {
        let (topology, services, config) = (topology.clone(), services.clone(), edge::config(edge_in_flight)?);
        // The readiness probe's connections belong to the edge's runtime, not the load's client.
        edge_runtime
            .handle()?
            .spawn(async move { edge::start(&topology, &services, config, &reqwest::Client::new()).await })
    };
    let edge = match edge.await.context("edge start task").and_then(|started| started) {
        Ok(edge) => edge,
        Err(error) => {
            shutdown.cancel();
            return Err(error);
        }
    };
    Ok(Running { edge, shutdown, processor, sinks, _runtimes: vec![processor_runtime, sinks_runtime, edge_runtime] })
}

impl Running {
    /// Whether the processor or the sinks stopped on their own (an error).
    pub fn failed(&self) -> bool {
        self.processor.is_finished() || self.sinks.is_finished()
    }

    /// Stops the edge (drained), then the processor and the sinks.
    pub async fn stop(self) -> anyhow::Result<()> {
        let edge = self.edge.stop().await;
        self.shutdown.cancel();
        let limit = Duration::from_secs(30);
        let processor = tokio::time::timeout(limit, self.processor).await;
        let sinks = tokio::time::timeout(limit, self.sinks).await;
        edge?;
        processor.context("the processor did not stop within 30 s")?.context("processor task")?.context("processor")?;
        sinks.context("the sinks did not stop within 30 s")?.context("sinks task")?.context("sinks")?;
        Ok(())
    }
}
