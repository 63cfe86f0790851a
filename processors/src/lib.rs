//! Interchange's stateful processors: pure sagas driven by a Kafka exactly-once runtime.

pub mod saga;
