//! The shared model and kit of Interchange, the one crate every role depends on.
//!
//! It offers what two roles would otherwise spell twice: the topology (`topology.toml` parsed and
//! validated), the envelope of every record (`headers`), the Avro contracts and the one reader of
//! records (`contract`, `avro`), the Kafka settings with the one consumer and producer builders
//! (`kafka`), the registry client and its settings (`registry`), the dead-letter record, the read
//! model's shared names (`readmodel`), the health and metrics server (`health`), metric names,
//! telemetry, the clock and shutdown. It knows no role: nothing here starts a server of the edge,
//! runs a saga or delivers to a partner, and it keeps to itself how a topology is parsed
//! (`topology`'s raw form and validation passes) and how writer schemas are cached.

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
