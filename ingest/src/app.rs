//! The edge's shared state, built once from the topology, and its router.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use interchange_core::kafka::KafkaSettings;
use interchange_core::registry::{Compatibility, Registry};
use interchange_core::topology::Topology;
use tokio::sync::Semaphore;

use crate::auth::{Authenticator, JwtConfig, JwtKey, PartnerAuthConfig};
use crate::config::IngestConfig;
use crate::contract::UnknownFields;
use crate::error::IngestError;
use crate::idempotency::Idempotency;
use crate::limits::Limits;
use crate::metrics::IngestMetrics;
use crate::produce::Produce;
use crate::shared::Shared;
use crate::{handlers, health, openapi, orders};

/// The contract of the routes that take orders: they get the order status API beside them.
pub const ORDER_CONTRACT: &str = "order_received";

/// One ingest route, resolved: its topic, contract and registered schema id.
#[derive(Debug)]
pub struct RouteSpec {
    pub path: String,
    pub topic: String,
    /// Contract (schema) name, the `event-type` header.
    pub contract: String,
    pub schema: apache_avro::Schema,
    pub schema_id: u32,
    /// Encoder of the contract under `schema_id`, built once.
    pub encoder: interchange_core::avro::Encoder,
    /// Top-level field names of the contract.
    pub fields: Vec<String>,
    pub partners: Vec<String>,
    /// Contract as JSON, for the OpenAPI document.
    pub schema_json: serde_json::Value,
}

/// Health of the dependencies, refreshed in the background.
#[derive(Debug, Default)]
pub struct Readiness {
    pub broker: AtomicBool,
    pub registry: AtomicBool,
    pub redis: AtomicBool,
    pub shutting_down: AtomicBool,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        !self.shutting_down.load(Ordering::Relaxed)
            && self.broker.load(Ordering::Relaxed)
            && self.registry.load(Ordering::Relaxed)
            && self.redis.load(Ordering::Relaxed)
    }
}

/// Everything a request handler needs.
pub struct AppState {
    pub routes: Vec<Arc<RouteSpec>>,
    pub auth: Authenticator,
    pub limits: Limits,
    pub idempotency: Option<Idempotency>,
    pub shared: Shared,
    pub produce: Produce,
    pub registry_client: Registry,
    pub metrics: IngestMetrics,
    pub metrics_registry: Mutex<prometheus_client::registry::Registry>,
    pub permits: Semaphore,
    pub readiness: Readiness,
    pub unknown_fields: UnknownFields,
    pub body_limit: usize,
    pub max_batch: usize,
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    pub body_timeout: Duration,
    pub replays: crate::replay::Replays,
    pub retry_after_unavailable: u64,
    pub tls: bool,
    pub openapi: serde_json::Value,
    /// Where the order read model is (the topology's CQL projector keyspace), if anywhere.
    pub read_model_config: Option<crate::orders::ReadModelConfig>,
    /// The read model's session, set once connected (in the background: ingest never waits for it).
    pub read_model: Arc<std::sync::OnceLock<crate::orders::ReadModel>>,
    /// How long the "accepted" marker of an order lives.
    pub accepted_ttl: Duration,
    pub topic_prefix: String,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("routes", &self.routes).finish_non_exhaustive()
    }
}

/// Addresses of the services the edge uses.
#[derive(Debug, Clone)]
pub struct Services {
    pub kafka: KafkaSettings,
    /// How to reach the schema registry (the one builder: `RegistrySettings::client`).
    pub registry: interchange_core::registry::RegistrySettings,
    pub redis_url: String,
    /// CQL contact points of the order read model (the status API); empty: no status API.
    pub cql_nodes: Vec<String>,
}

fn auth_configs(topology: &Topology) -> Result<Vec<PartnerAuthConfig>, IngestError> {
    let mut out = Vec::new();
    for partner in &topology.partners {
        let Some(inbound) = &partner.inbound else { continue };
        if partner.name.contains(crate::identity::SCOPE_SEPARATOR) {
            // `<partner>:<id>` must name one partner only.
            return Err(IngestError::Config(format!(
                "partner {:?}: a partner that posts may not have ':' in its name (it scopes correlation ids)",
                partner.name
            )));
        }
        let secret = |what: &str, r: &interchange_core::topology::SecretRef| {
            r.resolve().map_err(|e| IngestError::Config(format!("partner {:?} {what}: {e}", partner.name)))
        };
        let list =
            |what: &str, r: &Option<interchange_core::topology::SecretRef>| -> Result<Vec<String>, IngestError> {
                match r {
                    None => Ok(Vec::new()),
                    Some(r) => r
                        .resolve_list()
                        .map_err(|e| IngestError::Config(format!("partner {:?} {what}: {e}", partner.name))),
                }
            };
        let jwt = match &inbound.jwt {
            None => None,
            Some(jwt) => {
                let key = match (&jwt.hs256_secret, &jwt.rs256_public_key) {
                    (Some(s), _) => JwtKey::Hs256(secret("jwt.hs256_secret", s)?),
                    (None, Some(p)) => JwtKey::Rs256Pem(secret("jwt.rs256_public_key", p)?),
                    (None, None) => {
                        return Err(IngestError::Config(format!("partner {:?}: jwt has no key", partner.name)))
                    }
                };
                Some(JwtConfig { issuer: jwt.issuer.clone(), audience: jwt.audience.clone(), key })
            }
        };
        out.push(PartnerAuthConfig {
            partner: partner.name.clone(),
            api_keys: list("api_keys", &inbound.api_keys)?,
            jwt,
            webhook_secrets: list("webhook_secrets", &inbound.webhook_secrets)?,
            webhook_tolerance: inbound.webhook_tolerance,
        });
    }
    Ok(out)
}

/// Resolves every route's schema id: the exact contract must be registered (no registry call
/// per request afterwards).
async fn routes(topology: &Topology, registry: &Registry) -> Result<Vec<Arc<RouteSpec>>, IngestError> {
    let mut out = Vec::new();
    for route in &topology.routes {
        let topic = topology
            .topics
            .iter()
            .find(|t| t.name == route.topic)
            .ok_or_else(|| IngestError::Config(format!("route {}: unknown topic", route.path)))?;
        let contract = topology
            .contracts
            .get(&route.schema)
            .ok_or_else(|| IngestError::Config(format!("route {}: unknown contract", route.path)))?;
        let subject = topic.subject(contract);
        let schema_id = match registry.check(&subject, &contract.text).await? {
            Compatibility::Registered { id, .. } => u32::try_from(id)
                .map_err(|_| IngestError::Config(format!("subject {subject}: schema id {id} out of range")))?,
            _ => {
                return Err(IngestError::Config(format!(
                    "contract {} is not registered under subject {subject}: run `hub schemas register`",
                    contract.name
                )))
            }
        };
        let fields = match &contract.schema {
            apache_avro::Schema::Record(record) => record.fields.iter().map(|f| f.name.clone()).collect(),
            _ => Vec::new(),
        };
        out.push(Arc::new(RouteSpec {
            path: route.path.clone(),
            topic: route.topic.clone(),
            contract: contract.name.clone(),
            schema: contract.schema.clone(),
            schema_id,
            encoder: interchange_core::avro::Encoder::new(contract.schema.clone(), schema_id)
                .map_err(IngestError::Config)?,
            fields,
            partners: route.partners.clone(),
            schema_json: serde_json::from_str(&contract.text).unwrap_or_default(),
        }));
    }
    Ok(out)
}

/// Builds the state: secrets, schema ids, producer, Redis, limits, metrics.
pub async fn build(
    topology: &Topology,
    services: &Services,
    config: &IngestConfig,
) -> Result<Arc<AppState>, IngestError> {
    if config.trust_forwarded_for {
        return Err(IngestError::Config(
            "--trust-forwarded-for is gone (it believed the leftmost X-Forwarded-For entry, which any client \
             can write): name the proxies in front of the edge with --trusted-proxies CIDR,..."
                .to_owned(),
        ));
    }
    let auth = Authenticator::new(auth_configs(topology)?).map_err(|e| IngestError::Config(e.to_string()))?;
    let registry_client = services.registry.client()?;
    let routes = routes(topology, &registry_client).await?;
    let produce = Produce::new(&services.kafka, config.delivery_timeout)?;
    let shared = Shared::new(&services.redis_url, config.redis_timeout)?;
    let partner_limits = topology
        .partners
        .iter()
        .filter_map(|p| p.inbound.as_ref().and_then(|i| i.rate_limit).map(|l| (p.name.clone(), l)))
        .collect();
    let limits = Limits::new(partner_limits, config.ip_rate_limit, Some(shared.clone()), &topology.topic_prefix);
    let idempotency = Some(Idempotency::new(
        shared.clone(),
        &topology.topic_prefix,
        config.idempotency_pending_ttl.unwrap_or(config.delivery_timeout + Duration::from_secs(30)),
        config.idempotency_ttl,
    ));
    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let metrics = IngestMetrics::register(&mut metrics_registry);
    let openapi = openapi::document(&routes, config.max_batch);
    let keyspace = topology.sinks.iter().find_map(|s| match &s.params {
        interchange_core::topology::SinkParams::CqlProjector { keyspace, .. } => Some(keyspace.clone()),
        _ => None,
    });
    let read_model_config = keyspace
        .filter(|_| !services.cql_nodes.is_empty())
        .map(|keyspace| crate::orders::ReadModelConfig { nodes: services.cql_nodes.clone(), keyspace });
    let replays = crate::replay::Replays::new(shared.clone(), &topology.topic_prefix);
    Ok(Arc::new(AppState {
        routes,
        auth,
        limits,
        idempotency,
        shared,
        produce,
        registry_client,
        metrics,
        metrics_registry: Mutex::new(metrics_registry),
        permits: Semaphore::new(config.concurrency),
        readiness: Readiness::default(),
        unknown_fields: config.unknown_fields.into(),
        body_limit: config.body_limit,
        max_batch: config.max_batch,
        trusted_proxies: config.trusted_proxies.clone(),
        body_timeout: config.body_timeout,
        replays,
        retry_after_unavailable: 1,
        tls: config.tls_cert.is_some(),
        openapi,
        read_model_config,
        read_model: Arc::new(std::sync::OnceLock::new()),
        accepted_ttl: config.idempotency_ttl,
        topic_prefix: topology.topic_prefix.clone(),
    }))
}

/// The edge's routes: one POST (and its `:batch`) per topology route, plus health, metrics and
/// the OpenAPI document.
pub fn router(app: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi));
    let by_path: HashMap<String, Arc<RouteSpec>> = app.routes.iter().map(|r| (r.path.clone(), Arc::clone(r))).collect();
    for (path, route) in by_path {
        if route.contract == ORDER_CONTRACT {
            let base: Arc<str> = Arc::from(path.as_str());
            let for_events = Arc::clone(&base);
            router = router
                .route(
                    &format!("{path}/{{id}}"),
                    get(move |state, connect, id, headers| {
                        orders::status(state, connect, id, headers, Arc::clone(&base))
                    }),
                )
                .route(
                    &format!("{path}/{{id}}/events"),
                    get(move |state, connect, id, page, headers| {
                        orders::events(state, connect, id, page, headers, Arc::clone(&for_events))
                    }),
                );
        }
        let single = Arc::clone(&route);
        let mut methods = post(
            move |state: State<Arc<AppState>>, connect: ConnectInfo<SocketAddr>, headers: HeaderMap, body: Body| {
                handlers::accept(state, connect, headers, body, Arc::clone(&single))
            },
        );
        if route.contract == ORDER_CONTRACT {
            // GET <route>?order_id=: an order by the partner's own order id.
            let base: Arc<str> = Arc::from(path.as_str());
            methods = methods.get(move |state, connect, query, headers| {
                crate::order_lookup::lookup(state, connect, query, headers, Arc::clone(&base))
            });
        }
        router = router.route(&path, methods);
        router = router.route(
            &format!("{path}:batch"),
            post(
                move |state: State<Arc<AppState>>, connect: ConnectInfo<SocketAddr>, headers: HeaderMap, body: Body| {
                    handlers::batch(state, connect, headers, body, Arc::clone(&route))
                },
            ),
        );
    }
    router
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&app), handlers::common_headers))
        .with_state(app)
}
