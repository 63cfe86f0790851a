//! The processor's Prometheus metrics (names in `interchange_core::metrics`).

use interchange_core::metrics as names;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub(crate) processor: String,
    pub(crate) outcome: &'static str,
}

/// `processor` and `mismatch` (a [`crate::saga::Mismatch`] label) of a refused delivery result.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MismatchLabels {
    pub(crate) processor: String,
    pub(crate) mismatch: &'static str,
}

/// `processor`, `topic` and `partition` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LagLabels {
    pub(crate) processor: String,
    pub(crate) topic: String,
    pub(crate) partition: String,
}

/// Every metric of the processor role.
#[derive(Debug, Clone)]
pub struct ProcessorMetrics {
    pub(crate) records: Family<OutcomeLabels, Counter>,
    pub(crate) transactions: Family<OutcomeLabels, Counter>,
    pub(crate) commit: Histogram,
    pub(crate) batch: Histogram,
    pub(crate) restore: Histogram,
    pub(crate) states: Gauge,
    pub(crate) dead_letters: Family<OutcomeLabels, Counter>,
    pub(crate) foreign_results: Family<MismatchLabels, Counter>,
    pub(crate) rebalances: Family<OutcomeLabels, Counter>,
    pub(crate) lag: Family<LagLabels, Gauge>,
}

impl ProcessorMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            records: Family::default(),
            transactions: Family::default(),
            commit: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            batch: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            restore: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            states: Gauge::default(),
            dead_letters: Family::default(),
            foreign_results: Family::default(),
            rebalances: Family::default(),
            lag: Family::default(),
        };
        registry.register(names::PROCESSOR_LAG, "Consumer lag per input partition", m.lag.clone());
        registry.register(names::PROCESSOR_RECORDS, "Records handled by outcome", m.records.clone());
        registry.register(names::PROCESSOR_TRANSACTIONS, "Transactions by outcome", m.transactions.clone());
        registry.register(names::PROCESSOR_COMMIT_DURATION, "Time to commit a transaction", m.commit.clone());
        registry.register(names::PROCESSOR_TRANSACTION_RECORDS, "Input records per transaction", m.batch.clone());
        registry.register(names::PROCESSOR_RESTORE_DURATION, "Time to restore state partitions", m.restore.clone());
        registry.register(names::PROCESSOR_STATES, "States held in memory", m.states.clone());
        registry.register(
            names::PROCESSOR_DEAD_LETTERS,
            "Records dead-lettered by error class",
            m.dead_letters.clone(),
        );
        registry.register(
            names::PROCESSOR_FOREIGN_RESULTS,
            "Delivery results refused as not answering a command the saga sent, by mismatch",
            m.foreign_results.clone(),
        );
        registry.register(names::PROCESSOR_REBALANCES, "Rebalances by outcome", m.rebalances.clone());
        m
    }
}
