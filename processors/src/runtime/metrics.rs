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

/// `processor` and `mismatch` (the kind a machine gave a refusal) of a refused result.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MismatchLabels {
    pub(crate) processor: String,
    pub(crate) mismatch: String,
}

/// `processor`, `topic` and `partition` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LagLabels {
    pub(crate) processor: String,
    pub(crate) topic: String,
    pub(crate) partition: String,
}

/// The `processor` label of a metric with no other.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProcessorLabel {
    pub(crate) processor: String,
}

/// A histogram family whose buckets are fixed by a plain function.
type Histograms = Family<ProcessorLabel, Histogram, fn() -> Histogram>;

fn commit_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

fn batch_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

fn restore_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// Every metric of the processor role; each processor of the topology has its rows, told
/// apart by the `processor` label ([`ProcessorMetrics::of`]).
#[derive(Debug, Clone)]
pub struct ProcessorMetrics {
    records: Family<OutcomeLabels, Counter>,
    transactions: Family<OutcomeLabels, Counter>,
    commit: Histograms,
    batch: Histograms,
    restore: Histograms,
    states: Family<ProcessorLabel, Gauge>,
    dead_letters: Family<OutcomeLabels, Counter>,
    foreign_results: Family<MismatchLabels, Counter>,
    rebalances: Family<OutcomeLabels, Counter>,
    lag: Family<LagLabels, Gauge>,
}

/// One processor's metrics: its rows of the histograms and the gauge, and the labelled
/// families (whose labels name the processor).
#[derive(Debug, Clone)]
pub(crate) struct Meters {
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
            commit: Family::new_with_constructor(commit_buckets),
            batch: Family::new_with_constructor(batch_buckets),
            restore: Family::new_with_constructor(restore_buckets),
            states: Family::default(),
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
            "Delivery results refused as not answering a command the processor sent, by mismatch",
            m.foreign_results.clone(),
        );
        registry.register(names::PROCESSOR_REBALANCES, "Rebalances by outcome", m.rebalances.clone());
        m
    }

    /// The metrics of `processor`.
    pub(crate) fn of(&self, processor: &str) -> Meters {
        let label = ProcessorLabel { processor: processor.to_owned() };
        Meters {
            records: self.records.clone(),
            transactions: self.transactions.clone(),
            commit: self.commit.get_or_create(&label).clone(),
            batch: self.batch.get_or_create(&label).clone(),
            restore: self.restore.get_or_create(&label).clone(),
            states: self.states.get_or_create(&label).clone(),
            dead_letters: self.dead_letters.clone(),
            foreign_results: self.foreign_results.clone(),
            rebalances: self.rebalances.clone(),
            lag: self.lag.clone(),
        }
    }
}
