//! Shared model of Interchange: topology, record headers, Avro contracts, Kafka settings, registry, telemetry, shutdown.

pub mod avro;
pub mod cli;
pub mod clock;
pub mod contract;
pub mod dead_letter;
pub mod error;
pub mod headers;
pub mod health;
pub mod kafka;
pub mod metrics;
pub mod money;
pub mod readmodel;
pub mod registry;
pub mod services;
pub mod shutdown;
pub mod telemetry;
pub mod topology;

pub use error::{CoreError, ErrorClass};
pub use services::Services;
