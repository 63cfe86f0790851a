//! The processor's error type and how the transaction loop reacts to each error.

use rdkafka::error::KafkaError;

/// Errors of the processor runtime.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("Kafka {operation}: {source}")]
    Kafka { operation: &'static str, source: KafkaError },
    #[error("restoring {topic}/{partition}: {reason}")]
    Restore { topic: String, partition: i32, reason: String },
    #[error("schema registry: {0}")]
    Registry(#[from] interchange_core::CoreError),
    #[error("encoding {contract}: {reason}")]
    Encode { contract: String, reason: String },
    /// A failure while handling one input record, with where to find it.
    #[error("{topic}/{partition}@{offset}: {source}")]
    Record { topic: String, partition: i32, offset: i64, source: Box<ProcessorError> },
}

/// What the transaction loop does about a failed Kafka call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reaction {
    /// Call again.
    Retry,
    /// Abort the transaction, drop the batch's state changes, rewind to the committed offsets, redo.
    AbortAndRewind,
    /// Stop the process (non-zero exit) so the supervisor restarts it: fenced, or broken.
    Fatal,
}

/// The one classifier for transactional calls.
pub(crate) fn react(error: &KafkaError) -> Reaction {
    match error {
        KafkaError::Transaction(e) if e.is_fatal() => Reaction::Fatal,
        KafkaError::Transaction(e) if e.txn_requires_abort() => Reaction::AbortAndRewind,
        KafkaError::Transaction(e) if e.is_retriable() => Reaction::Retry,
        KafkaError::Transaction(_) => Reaction::AbortAndRewind,
        _ => match interchange_core::error::classify_kafka(error) {
            interchange_core::ErrorClass::Transient => Reaction::Retry,
            interchange_core::ErrorClass::Fatal => Reaction::Fatal,
            interchange_core::ErrorClass::Permanent => Reaction::AbortAndRewind,
        },
    }
}
