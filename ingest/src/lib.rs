//! Interchange's HTTP ingest edge: verified, rate-limited, de-duplicated, durable webhooks into Kafka,
//! and the order status API read from the CQL read model.
//!
//! Offers: [`build`] the edge from the topology and [`interchange_core::Services`] with an
//! [`IngestConfig`], then [`run`] it on a listener; [`IngestError`]. Also, for the benches and
//! tests: [`auth`] (partner authentication), [`idempotency::fingerprint`],
//! [`metrics::IngestMetrics`], [`produce::wire_format`] and [`contract`] (core's JSON ↔ Avro).
//!
//! Keeps to itself: the state (`state`, each route group taking only its part) and the routes,
//! admission, the pipeline, the idempotency and replay stores, limits, and the status API's queries.
//! Dependencies go one way: `server` → `app` (build and router) → handlers (`handlers`, `orders`,
//! `order_lookup`, `health`) → `admission` / `pipeline` → `state` → the leaf modules.

// `Problem` (an RFC 9457 body) is the error of the request path; it is built once per refused
// request, so its size does not matter there.
#![allow(clippy::result_large_err)]

mod accepted;
mod admission;
mod amounts;
mod app;
pub mod auth;
mod client_ip;
mod config;
mod envelope;
mod error;
mod handlers;
mod health;
pub mod idempotency;
mod identity;
mod limits;
pub mod metrics;
mod openapi;
mod order_lookup;
mod orders;
mod pipeline;
mod problem;
pub mod produce;
pub mod read_model;
mod replay;
mod server;
mod shared;
mod state;

pub use app::{build, Edge};
pub use config::IngestConfig;
pub use error::IngestError;
/// JSON to Avro conversion lives in core (processors use it too).
pub use interchange_core::contract;
pub use server::run;
