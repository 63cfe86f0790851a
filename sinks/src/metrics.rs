//! The sink role's Prometheus metrics (names in `interchange_core::metrics`); public only the
//! [`SinkMetrics`] handle, made with [`SinkMetrics::register`] (the metric catalogue test registers them).

use interchange_core::metrics as names;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `partner` and `outcome` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PartnerOutcome {
    pub(crate) partner: String,
    pub(crate) outcome: &'static str,
}

/// `partner` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PartnerLabel {
    pub(crate) partner: String,
}

/// `sink` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SinkLabel {
    pub(crate) sink: String,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// `sink`, `topic` and `partition` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LagLabels {
    pub(crate) sink: String,
    pub(crate) topic: String,
    pub(crate) partition: String,
}

/// Every metric of the sink role; cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    pub(crate) deliveries: Family<PartnerOutcome, Counter>,
    pub(crate) attempts: Family<PartnerOutcome, Counter>,
    pub(crate) attempt_duration: Family<PartnerLabel, Histogram>,
    pub(crate) retries: Family<PartnerLabel, Counter>,
    pub(crate) rate_limit_wait: Family<PartnerLabel, Histogram>,
    pub(crate) breaker_state: Family<PartnerLabel, Gauge>,
    pub(crate) breaker_transitions: Family<PartnerOutcome, Counter>,
    pub(crate) dead_letters: Family<PartnerOutcome, Counter>,
    pub(crate) in_flight: Family<SinkLabel, Gauge>,
    pub(crate) assigned: Family<SinkLabel, Gauge>,
    pub(crate) revoked_jobs: Family<SinkOutcome, Counter>,
    pub(crate) lag: Family<LagLabels, Gauge>,
    pub(crate) projector: ProjectorMetrics,
}

/// `sink` and `outcome` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SinkOutcome {
    pub(crate) sink: String,
    pub(crate) outcome: &'static str,
}

/// The read-model projector's metrics.
#[derive(Debug, Clone)]
pub(crate) struct ProjectorMetrics {
    pub(crate) records: Family<SinkOutcome, Counter>,
    pub(crate) writes: Family<SinkOutcome, Counter>,
    pub(crate) write_duration: Family<SinkLabel, Histogram>,
    pub(crate) lag: Family<SinkLabel, Histogram>,
    pub(crate) cql_down: Family<SinkLabel, Gauge>,
}

impl ProjectorMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            records: Family::default(),
            writes: Family::default(),
            write_duration: Family::new_with_constructor(latency),
            lag: Family::new_with_constructor(latency),
            cql_down: Family::default(),
        };
        registry.register(names::PROJECTOR_RECORDS, "State records handled by outcome", m.records.clone());
        registry.register(names::PROJECTOR_WRITES, "CQL writes of an order's rows by outcome", m.writes.clone());
        registry.register(names::PROJECTOR_WRITE_DURATION, "Duration of one CQL write", m.write_duration.clone());
        registry.register(names::PROJECTOR_LAG, "State record timestamp to rows written", m.lag.clone());
        registry.register(names::PROJECTOR_CQL_DOWN, "1 while CQL writes fail", m.cql_down.clone());
        m
    }

    /// The `sink`/`outcome` label set.
    pub(crate) fn so(sink: &str, outcome: &'static str) -> SinkOutcome {
        SinkOutcome { sink: sink.to_owned(), outcome }
    }
}

impl Default for SinkMetrics {
    /// Metrics registered nowhere (tests and tools).
    fn default() -> Self {
        Self::register(&mut Registry::default())
    }
}

impl SinkMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            deliveries: Family::default(),
            attempts: Family::default(),
            attempt_duration: Family::new_with_constructor(latency),
            retries: Family::default(),
            rate_limit_wait: Family::new_with_constructor(latency),
            breaker_state: Family::default(),
            breaker_transitions: Family::default(),
            dead_letters: Family::default(),
            in_flight: Family::default(),
            assigned: Family::default(),
            revoked_jobs: Family::default(),
            projector: ProjectorMetrics::register(registry),
            lag: Family::default(),
        };
        registry.register(names::SINK_LAG, "Consumer lag per input partition", m.lag.clone());
        registry.register(names::SINK_DELIVERIES, "Deliveries finished by partner and outcome", m.deliveries.clone());
        registry.register(names::SINK_ATTEMPTS, "HTTP attempts by partner and outcome", m.attempts.clone());
        registry.register(names::SINK_ATTEMPT_DURATION, "Duration of one HTTP attempt", m.attempt_duration.clone());
        registry.register(names::SINK_RETRIES, "Attempts after the first", m.retries.clone());
        registry.register(names::SINK_RATE_LIMIT_WAIT, "Wait for a rate-limit token", m.rate_limit_wait.clone());
        registry.register(
            names::SINK_BREAKER_STATE,
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            m.breaker_state.clone(),
        );
        registry.register(
            names::SINK_BREAKER_TRANSITIONS,
            "Circuit breaker transitions by state entered",
            m.breaker_transitions.clone(),
        );
        registry.register(names::SINK_DEAD_LETTERS, "Commands dead-lettered by error class", m.dead_letters.clone());
        registry.register(names::SINK_IN_FLIGHT, "Records read and not yet finished", m.in_flight.clone());
        registry.register(names::SINK_ASSIGNED_PARTITIONS, "Input partitions owned", m.assigned.clone());
        registry.register(
            interchange_core::metrics::SINK_REVOKED_JOBS,
            "Jobs of revoked partitions by outcome",
            m.revoked_jobs.clone(),
        );
        m
    }

    /// The `partner`/`outcome` label set.
    pub(crate) fn po(partner: &str, outcome: &'static str) -> PartnerOutcome {
        PartnerOutcome { partner: partner.to_owned(), outcome }
    }

    /// The `partner` label set.
    pub(crate) fn p(partner: &str) -> PartnerLabel {
        PartnerLabel { partner: partner.to_owned() }
    }

    /// The `sink`/`outcome` label set.
    pub(crate) fn so(sink: &str, outcome: &'static str) -> SinkOutcome {
        SinkOutcome { sink: sink.to_owned(), outcome }
    }

    /// The `sink` label set.
    pub(crate) fn s(sink: &str) -> SinkLabel {
        SinkLabel { sink: sink.to_owned() }
    }
}

/// One sink's rows of the lag gauge.
pub(crate) type LagGauge = interchange_core::kafka::lag::LagGauge<LagLabels>;

/// The lag rows of `sink`.
pub(crate) fn lag_gauge(family: Family<LagLabels, Gauge>, sink: &str) -> LagGauge {
    let sink = sink.to_owned();
    LagGauge::new(family, move |topic, partition| LagLabels {
        sink: sink.clone(),
        topic,
        partition: partition.to_string(),
    })
}
