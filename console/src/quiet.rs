//! The context of the console's readers: they ask Kafka to report each partition's end (that is
//! how they know they have read everything), which librdkafka also reports as a global error;
//! those are not logged, every other error is.

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// A consumer context that does not log the end of a partition as an error.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Quiet;

impl ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !eof {
            tracing::warn!(%error, %reason, "console: Kafka client error");
        }
    }
}

impl ConsumerContext for Quiet {}
