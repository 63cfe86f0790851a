//! The edge assembled: [`build`] makes its state from the topology (secrets, schema ids, producer,
//! Redis, limits, metrics, the OpenAPI document) into the [`Edge`] that [`crate::run`] serves with
//! [`router`]: one POST (and its `:batch`) per topology route, the order status API beside every
//! route that takes orders, plus health, metrics and the OpenAPI document.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use interchange_core::avro::Encoder;
use interchange_core::registry::{Compatibility, Registry};
use interchange_core::topology::{SecretRef, Topology};
use interchange_core::Services;
use tokio::sync::Semaphore;

use crate::accepted::Accepted;
use crate::auth::{Authenticator, JwtConfig, JwtKey, PartnerAuthConfig};
use crate::config::IngestConfig;
use crate::error::IngestError;
use crate::health::Dependencies;
use crate::idempotency::Idempotency;
use crate::identity::SCOPE_SEPARATOR;
use crate::limits::Limits;
use crate::metrics::IngestMetrics;
use crate::produce::Produce;
use crate::read_model::ReadModelConfig;
use crate::replay::Replays;
use crate::shared::Shared;
use crate::state::{Gate, Intake, OpenApi, Readiness, Reads, RouteSpec, RouterState, ORDER_CONTRACT};
use crate::{handlers, health, openapi, order_lookup, orders};

/// The edge, built and ready to serve ([`crate::run`]).
pub struct Edge {
    /// One per `[[route]]` of the topology.
    pub(crate) routes: Vec<Arc<RouteSpec>>,
    pub(crate) state: RouterState,
    /// Whether the edge terminates TLS itself (then every answer carries HSTS).
    pub(crate) tls: bool,
    /// What the readiness probe checks.
    pub(crate) dependencies: Dependencies,
    /// Where the order read model is (the topology's projector keyspace), if anywhere.
    pub(crate) read_model: Option<ReadModelConfig>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge").field("tls", &self.tls).field("read_model", &self.read_model).finish_non_exhaustive()
    }
}

fn auth_configs(topology: &Topology) -> Result<Vec<PartnerAuthConfig>, IngestError> {
    let mut out = Vec::new();
    for partner in &topology.partners {
        let Some(inbound) = &partner.inbound else { continue };
        if partner.name.contains(SCOPE_SEPARATOR) {
            // `<partner>:<id>` must name one partner only.
            return Err(IngestError::Config(format!(
                "partner {:?}: a partner that posts may not have ':' in its name (it scopes correlation ids)",
                partner.name
            )));
        }
        let secret = |what: &str, r: &SecretRef| {
            r.resolve().map_err(|e| IngestError::Config(format!("partner {:?} {what}: {e}", partner.name)))
        };
        let list = |what: &str, r: &Option<SecretRef>| -> Result<Vec<String>, IngestError> {
            match r {
                None => Ok(Vec::new()),
                Some(r) => {
                    r.resolve_list().map_err(|e| IngestError::Config(format!("partner {:?} {what}: {e}", partner.name)))
                }
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
            encoder: Encoder::new(contract.schema.clone(), schema_id).map_err(IngestError::Config)?,
            fields,
            partners: route.partners.clone(),
            schema_json: serde_json::from_str(&contract.text).unwrap_or_default(),
        }));
    }
    Ok(out)
}

/// Builds the edge: secrets, schema ids, producer, Redis, limits, metrics.
pub async fn build(topology: &Topology, services: &Services, config: &IngestConfig) -> Result<Edge, IngestError> {
    if config.trust_forwarded_for {
        return Err(IngestError::Config(
            "--trust-forwarded-for is gone (it believed the leftmost X-Forwarded-For entry, which any client \
             can write): name the proxies in front of the edge with --trusted-proxies CIDR,..."
                .to_owned(),
        ));
    }
    let redis_url = services.redis_url.as_deref().ok_or_else(|| {
        IngestError::Config(
            "the edge needs Redis (idempotency keys, shared rate limits, webhook-id replays): set --redis-url \
             (HUB_REDIS_URL)"
                .to_owned(),
        )
    })?;
    let auth = Authenticator::new(auth_configs(topology)?).map_err(|e| IngestError::Config(e.to_string()))?;
    let registry = services.registry.client()?;
    let routes = routes(topology, &registry).await?;
    let produce = Produce::new(&services.kafka, config.delivery_timeout)?;
    let shared = Shared::new(redis_url, config.redis_timeout)?;
    let partner_limits = topology
        .partners
        .iter()
        .filter_map(|p| p.inbound.as_ref().and_then(|i| i.rate_limit).map(|l| (p.name.clone(), l)))
        .collect();
    let limits = Limits::new(partner_limits, config.ip_rate_limit, Some(shared.clone()), &topology.topic_prefix);
    let idempotency = Idempotency::new(
        shared.clone(),
        &topology.topic_prefix,
        config.idempotency_pending_ttl.unwrap_or(config.delivery_timeout + Duration::from_secs(30)),
        config.idempotency_ttl,
    );
    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(IngestMetrics::register(&mut metrics_registry));
    let openapi = OpenApi(openapi::document(&routes, config.max_batch));
    let read_model = topology
        .read_model_keyspace()
        .filter(|_| !services.cql_nodes.is_empty())
        .map(|keyspace| ReadModelConfig { nodes: services.cql_nodes.clone(), keyspace: keyspace.to_owned() });
    // Orders are noted as accepted for as long as an Idempotency-Key's answer is kept.
    let accepted = Accepted::new(shared.clone(), &topology.topic_prefix, config.idempotency_ttl);
    let gate = Gate {
        auth,
        limits,
        permits: Semaphore::new(config.concurrency),
        trusted_proxies: config.trusted_proxies.clone(),
        body_limit: config.body_limit,
        body_timeout: config.body_timeout,
        replays: Replays::new(shared.clone(), &topology.topic_prefix),
        metrics: Arc::clone(&metrics),
    };
    let intake = Intake {
        unknown_fields: config.unknown_fields.into(),
        max_batch: config.max_batch,
        idempotency,
        produce: produce.clone(),
        accepted: accepted.clone(),
        metrics: Arc::clone(&metrics),
    };
    let reads = Reads { read_model: Arc::new(OnceLock::new()), accepted, metrics };
    let state = RouterState {
        gate: Arc::new(gate),
        intake: Arc::new(intake),
        reads: Arc::new(reads),
        readiness: Arc::new(Readiness::default()),
        metrics_registry: Arc::new(Mutex::new(metrics_registry)),
        openapi: Arc::new(openapi),
    };
    Ok(Edge {
        routes,
        state,
        tls: config.tls_cert.is_some(),
        dependencies: Dependencies { produce, registry, shared },
        read_model,
    })
}

/// The router of `routes` over `state`; `tls`: the edge terminates TLS itself.
pub(crate) fn router(routes: &[Arc<RouteSpec>], state: RouterState, tls: bool) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi));
    let by_path: HashMap<String, Arc<RouteSpec>> = routes.iter().map(|r| (r.path.clone(), Arc::clone(r))).collect();
    for (path, route) in by_path {
        if route.contract == ORDER_CONTRACT {
            let base: Arc<str> = Arc::from(path.as_str());
            let for_events = Arc::clone(&base);
            router = router
                .route(
                    &format!("{path}/{{id}}"),
                    get(move |gate, reads, connect, id, headers| {
                        orders::status(gate, reads, connect, id, headers, Arc::clone(&base))
                    }),
                )
                .route(
                    &format!("{path}/{{id}}/events"),
                    get(move |gate, reads, connect, id, page, headers| {
                        orders::events(gate, reads, connect, id, page, headers, Arc::clone(&for_events))
                    }),
                );
        }
        let single = Arc::clone(&route);
        let mut methods = post(
            move |gate: State<Arc<Gate>>,
                  intake: State<Arc<Intake>>,
                  connect: ConnectInfo<SocketAddr>,
                  headers: HeaderMap,
                  body: Body| {
                handlers::accept(gate, intake, connect, headers, body, Arc::clone(&single))
            },
        );
        if route.contract == ORDER_CONTRACT {
            // GET <route>?order_id=: an order by the partner's own order id.
            let base: Arc<str> = Arc::from(path.as_str());
            methods = methods.get(move |gate, reads, connect, query, headers| {
                order_lookup::lookup(gate, reads, connect, query, headers, Arc::clone(&base))
            });
        }
        router = router.route(&path, methods);
        router = router.route(
            &format!("{path}:batch"),
            post(
                move |gate: State<Arc<Gate>>,
                      intake: State<Arc<Intake>>,
                      connect: ConnectInfo<SocketAddr>,
                      headers: HeaderMap,
                      body: Body| {
                    handlers::batch(gate, intake, connect, headers, body, Arc::clone(&route))
                },
            ),
        );
    }
    router
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(tls, handlers::common_headers))
        .with_state(state)
}
