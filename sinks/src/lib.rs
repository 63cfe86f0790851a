//! Sink connectors: deliver commands to partners' HTTP APIs, per partner rate-limited, ordered per
//! correlation id, retried with backoff, behind a circuit breaker.
//!
//! Built so far: the pure parts of the delivery stack (retry policy, circuit breaker, ordered
//! completion). The runtime that wires them to Kafka and HTTP is the rest of issue 5.

pub mod breaker;
pub mod ordering;
pub mod partner;
pub mod retry;
pub mod runtime;

pub use runtime::{run, Services, SinkError};
