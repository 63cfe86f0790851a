//! Shared model of Interchange: topology, record headers, Avro contracts, Kafka settings, registry, telemetry, shutdown.

pub mod avro;
pub mod contract;
pub mod dead_letter;
pub mod error;
pub mod headers;
pub mod kafka;
pub mod metrics;
pub mod money;
pub mod readmodel;
pub mod registry;
pub mod shutdown;
pub mod telemetry;
pub mod topology;

pub use error::{CoreError, ErrorClass};
