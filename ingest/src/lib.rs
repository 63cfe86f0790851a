//! Interchange's HTTP ingest edge: verified, rate-limited, de-duplicated, durable webhooks into Kafka.

// `Problem` (an RFC 9457 body) is the error of the request path; it is built once per refused
// request, so its size does not matter there.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod amounts;
pub mod app;
pub mod auth;
pub mod client_ip;
pub mod config;
pub mod envelope;
pub mod error;
pub mod handlers;
pub mod health;
pub mod idempotency;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod order_lookup;
pub mod orders;
pub mod pipeline;
pub mod problem;
pub mod produce;
pub mod replay;
pub mod server;
pub mod shared;

pub use app::{build, Services};
pub use config::IngestConfig;
pub use error::IngestError;
/// JSON to Avro conversion lives in core (processors use it too).
pub use interchange_core::contract;
pub use server::run;
