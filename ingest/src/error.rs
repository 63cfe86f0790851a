//! The edge's error type, with context, and how each maps to a problem answer.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Errors of the ingest edge.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("Redis {operation}: {source}")]
    Redis { operation: &'static str, source: redis::RedisError },
    #[error("Redis {operation}: no answer within {timeout:?}")]
    RedisTimeout { operation: &'static str, timeout: Duration },
    #[error("producing to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("encoding for {topic}: {reason}")]
    Encode { topic: String, reason: String },
    #[error("schema registry: {0}")]
    Registry(#[from] interchange_core::CoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl IngestError {
    /// Whether the broker is unavailable or overloaded (answer 503, retry later) rather than broken.
    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Self::Redis { .. } | Self::RedisTimeout { .. } => true,
            Self::Produce { source, .. } => matches!(
                source.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::QueueFull
                        | RDKafkaErrorCode::MessageTimedOut
                        | RDKafkaErrorCode::AllBrokersDown
                        | RDKafkaErrorCode::BrokerTransportFailure
                        | RDKafkaErrorCode::RequestTimedOut
                        | RDKafkaErrorCode::NotEnoughReplicas
                        | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
                        | RDKafkaErrorCode::LeaderNotAvailable
                        | RDKafkaErrorCode::NotLeaderForPartition
                        | RDKafkaErrorCode::UnknownTopicOrPartition
                )
            ),
            _ => false,
        }
    }
}
