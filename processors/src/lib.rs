//! Interchange's stateful processors: pure sagas driven by a Kafka exactly-once runtime.

pub mod runtime;
pub mod saga;

pub use runtime::{run, ProcessorConfig, ProcessorError, Services};
