//! The sinks' one error type and its classifier.

use interchange_core::error::{classify_kafka, ErrorClass};

/// Errors of the sink runtimes.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("configuration: {0}")]
    Config(String),
    /// A partner's delivery stack cannot be built (missing outbound section, unresolvable secret).
    #[error("partner {partner:?}: {reason}")]
    Partner { partner: String, reason: String },
    #[error("Kafka {operation}: {source}")]
    Kafka { operation: &'static str, source: rdkafka::error::KafkaError },
    #[error("CQL {operation}: {reason}")]
    Cql { operation: &'static str, reason: String },
    #[error(transparent)]
    Core(#[from] interchange_core::CoreError),
}

impl SinkError {
    /// Permanent, transient or fatal.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Config(_) | Self::Partner { .. } => ErrorClass::Fatal,
            Self::Kafka { source, .. } => classify_kafka(source),
            Self::Cql { .. } => ErrorClass::Transient,
            Self::Core(e) => e.class(),
        }
    }
}
