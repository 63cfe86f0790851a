//! The edge's state, built once by [`crate::app::build`], and its route type. Each group of
//! routes takes only its part ([`axum::extract::State`] of one of them, through [`FromRef`]):
//!
//! - [`Gate`]: admission, shared by every partner route ([`crate::admission`]);
//! - [`Intake`]: posting events after admission ([`crate::pipeline`]);
//! - [`Reads`]: the order status API after admission ([`crate::orders`]);
//! - [`Readiness`], the metrics registry and the [`OpenApi`] document: `/readyz`, `/metrics`,
//!   `/openapi.json` ([`crate::health`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::FromRef;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;

use crate::accepted::Accepted;
use crate::auth::Authenticator;
use crate::client_ip::TrustedProxies;
use crate::contract::UnknownFields;
use crate::idempotency::Idempotency;
use crate::limits::Limits;
use crate::metrics::IngestMetrics;
use crate::produce::Produce;
use crate::read_model;
use crate::replay::Replays;

/// The contract of the routes that take orders: they get the order status API beside them.
pub(crate) const ORDER_CONTRACT: &str = "order_received";

/// `Retry-After` (seconds) when the broker or the read model is unavailable.
pub(crate) const RETRY_AFTER_UNAVAILABLE: u64 = 1;

/// One ingest route, resolved: its topic, contract and registered schema id.
#[derive(Debug)]
pub(crate) struct RouteSpec {
    pub(crate) path: String,
    pub(crate) topic: String,
    /// Contract (schema) name, the `event-type` header.
    pub(crate) contract: String,
    /// Encoder of the contract under its registered schema id, built once.
    pub(crate) encoder: interchange_core::avro::Encoder,
    /// Top-level field names of the contract.
    pub(crate) fields: Vec<String>,
    pub(crate) partners: Vec<String>,
    /// Contract as JSON, for the OpenAPI document.
    pub(crate) schema_json: serde_json::Value,
}

/// Health of the dependencies, refreshed in the background ([`crate::health::probe`]).
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    pub(crate) broker: AtomicBool,
    pub(crate) registry: AtomicBool,
    pub(crate) redis: AtomicBool,
    pub(crate) shutting_down: AtomicBool,
}

impl Readiness {
    pub(crate) fn ready(&self) -> bool {
        !self.shutting_down.load(Ordering::Relaxed)
            && self.broker.load(Ordering::Relaxed)
            && self.registry.load(Ordering::Relaxed)
            && self.redis.load(Ordering::Relaxed)
    }
}

/// What admission checks a request with: limits, identity, permits, the body's bounds, replays.
pub(crate) struct Gate {
    pub(crate) auth: Authenticator,
    pub(crate) limits: Limits,
    pub(crate) permits: Semaphore,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) body_limit: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) replays: Replays,
    pub(crate) metrics: Arc<IngestMetrics>,
}

/// What an admitted post goes through: contract, idempotency, produce, the accepted marker.
pub(crate) struct Intake {
    pub(crate) unknown_fields: UnknownFields,
    pub(crate) max_batch: usize,
    pub(crate) idempotency: Idempotency,
    pub(crate) produce: Produce,
    pub(crate) accepted: Accepted,
    pub(crate) metrics: Arc<IngestMetrics>,
}

/// What an admitted read of the order status API uses.
pub(crate) struct Reads {
    /// The read model's session, set once connected (in the background: the edge never waits for it).
    pub(crate) read_model: read_model::Slot,
    pub(crate) accepted: Accepted,
    pub(crate) metrics: Arc<IngestMetrics>,
}

/// The OpenAPI document the edge serves, built once from its routes.
#[derive(Debug)]
pub(crate) struct OpenApi(pub(crate) serde_json::Value);

/// The router's state: every part, each taken by the routes that use it.
#[derive(Clone)]
pub(crate) struct RouterState {
    pub(crate) gate: Arc<Gate>,
    pub(crate) intake: Arc<Intake>,
    pub(crate) reads: Arc<Reads>,
    pub(crate) readiness: Arc<Readiness>,
    pub(crate) metrics_registry: Arc<Mutex<Registry>>,
    pub(crate) openapi: Arc<OpenApi>,
}

macro_rules! part {
    ($field:ident: $part:ty) => {
        impl FromRef<RouterState> for Arc<$part> {
            fn from_ref(state: &RouterState) -> Self {
                Arc::clone(&state.$field)
            }
        }
    };
}

part!(gate: Gate);
part!(intake: Intake);
part!(reads: Reads);
part!(readiness: Readiness);
part!(metrics_registry: Mutex<Registry>);
part!(openapi: OpenApi);
