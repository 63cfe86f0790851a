//! The core crate's error type and the one classifier every role uses.

use std::path::PathBuf;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// How a caller should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retrying will not help: bad input, refused change, incompatible schema.
    Permanent,
    /// May succeed later: broker or registry unreachable, timeouts.
    Transient,
    /// The process must stop: fenced, misconfigured, invariant broken.
    Fatal,
}

/// Errors of the shared layer, with the context needed to act on them.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("bad Kafka property {property:?}: {reason}")]
    KafkaProperty { property: String, reason: String },
    #[error("Kafka {operation} failed{}: {source}", topic.as_ref().map(|t| format!(" for topic {t:?}")).unwrap_or_default())]
    Kafka { operation: &'static str, topic: Option<String>, source: KafkaError },
    #[error("Kafka {operation} for topic {topic:?} refused: {code}")]
    KafkaTopic { operation: &'static str, topic: String, code: RDKafkaErrorCode },
    #[error("schema registry {url}: {reason}")]
    RegistryUnreachable { url: String, reason: String },
    #[error("schema registry refused {subject:?}: HTTP {status}: {message}")]
    Registry { subject: String, status: u16, message: String },
    #[error("schema {subject:?} is incompatible with the registered version: {}", messages.join("; "))]
    Incompatible { subject: String, messages: Vec<String> },
}

impl CoreError {
    /// Permanent, transient or fatal.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Config { .. } | Self::KafkaProperty { .. } | Self::Incompatible { .. } => ErrorClass::Permanent,
            Self::RegistryUnreachable { .. } => ErrorClass::Transient,
            Self::Registry { status, .. } if *status >= 500 => ErrorClass::Transient,
            Self::Registry { .. } => ErrorClass::Permanent,
            Self::Kafka { source, .. } => classify_kafka(source),
            Self::KafkaTopic { code, .. } => classify_code(*code),
        }
    }
}

/// Classifies a librdkafka error.
pub fn classify_kafka(error: &KafkaError) -> ErrorClass {
    if let KafkaError::Transaction(e) = error {
        if e.is_fatal() {
            return ErrorClass::Fatal;
        }
        if e.is_retriable() {
            return ErrorClass::Transient;
        }
        return ErrorClass::Permanent;
    }
    match error.rdkafka_error_code() {
        Some(code) => classify_code(code),
        None => ErrorClass::Permanent,
    }
}

fn classify_code(code: RDKafkaErrorCode) -> ErrorClass {
    use RDKafkaErrorCode as C;
    match code {
        C::Fatal
        | C::ProducerFenced
        | C::InvalidProducerEpoch
        | C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::Authentication => ErrorClass::Fatal,
        C::MessageTimedOut
        | C::OperationTimedOut
        | C::RequestTimedOut
        | C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::NetworkException
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::NotCoordinator
        | C::CoordinatorNotAvailable
        | C::CoordinatorLoadInProgress
        | C::QueueFull
        | C::Resolve => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}
