//! The processor's consumer of its inputs: how it is configured, and its context, which records
//! what the rebalance callbacks saw (for the loop to act on, `rebalance.rs`) and exports the
//! consumer lag from librdkafka's statistics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use interchange_core::kafka::lag::LagGauge;
use interchange_core::kafka::KafkaSettings;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientConfig, ClientContext};

use super::config::ProcessorConfig;
use super::error::ProcessorError;
use super::metrics::LagLabels;

/// The consumer of `group`: read_committed (core's one builder), eager `range` assignment, short
/// fetch waits, the configured session timeout; librdkafka's statistics feed the lag gauge.
pub(crate) fn consumer(
    settings: &KafkaSettings,
    group: &str,
    config: &ProcessorConfig,
    lag: Family<LagLabels, Gauge>,
    processor: &str,
) -> Result<BaseConsumer<RebalanceContext>, ProcessorError> {
    let context = RebalanceContext { seen: Arc::default(), lag: Some(Arc::new(lag_gauge(lag, processor))) };
    client_config(settings, group, config.session_timeout)
        .create_with_context(context)
        .map_err(|source| ProcessorError::Kafka { operation: "consumer", source })
}

/// The consumer's librdkafka configuration.
fn client_config(settings: &KafkaSettings, group: &str, session_timeout: Duration) -> ClientConfig {
    let mut c = settings
        .read_committed("hub-processor", group)
        // Eager assignment: a rebalance aborts the open transaction and every partition
        // restarts from its committed offset.
        .set("partition.assignment.strategy", "range")
        // A read_committed fetch waits for fetch.wait.max.ms (500 ms by default) when the broker
        // has nothing committed to return; every hop after a transaction paid it.
        .set("fetch.wait.max.ms", "10")
        .set("session.timeout.ms", session_timeout.as_millis().to_string())
        .set("heartbeat.interval.ms", (session_timeout.as_millis() / 5).max(100).to_string())
        .into_config();
    // After the operator's properties: the lag gauge needs the statistics.
    c.set("statistics.interval.ms", "5000");
    c
}

/// The lag rows of `processor`.
fn lag_gauge(family: Family<LagLabels, Gauge>, processor: &str) -> LagGauge<LagLabels> {
    let processor = processor.to_owned();
    LagGauge::new(family, move |topic, partition| LagLabels {
        processor: processor.clone(),
        topic,
        partition: partition.to_string(),
    })
}

/// What the rebalance callbacks saw, for the loop to act on after `poll` returns.
#[derive(Debug, Default)]
pub(crate) struct Rebalances {
    /// Partitions revoked (all of them under eager assignment), and whether librdkafka reported
    /// the assignment as lost (the group moved on without this member: a pause past the session
    /// timeout or `max.poll.interval.ms`).
    pub(crate) revoked: Option<(Vec<i32>, bool)>,
    pub(crate) assigned: Option<Vec<(String, i32)>>,
}

/// Records rebalances; the loop (same thread) handles them before the next record. Exports the
/// consumer lag from librdkafka's statistics.
#[derive(Debug, Default, Clone)]
pub(crate) struct RebalanceContext {
    pub(crate) seen: Arc<Mutex<Rebalances>>,
    /// This processor's rows of the lag gauge.
    pub(crate) lag: Option<Arc<LagGauge<LagLabels>>>,
}

impl ClientContext for RebalanceContext {
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(lag) = &self.lag {
            lag.update(statistics);
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Ok(mut seen) = self.seen.lock() else { return };
        match rebalance {
            Rebalance::Revoke(list) => {
                let lost = consumer.assignment_lost();
                let (partitions, was_lost) = seen.revoked.get_or_insert_with(Default::default);
                partitions.extend(list.elements().iter().map(|e| e.partition()));
                *was_lost |= lost;
                // An assignment seen before this revocation is no longer owned.
                seen.assigned = None;
            }
            // A failed rebalance: ownership is unknown, so nothing is trusted.
            Rebalance::Error(_) => {
                let (_, was_lost) = seen.revoked.get_or_insert_with(Default::default);
                *was_lost = true;
            }
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(list), Ok(mut seen)) = (rebalance, self.seen.lock()) {
            seen.assigned = Some(list.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the consumer was configured before core's builder: the same properties result.
    fn before(settings: &KafkaSettings, group: &str, session_timeout: Duration) -> ClientConfig {
        let mut c = settings.client_config("hub-processor");
        c.set("group.id", group)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            .set("fetch.wait.max.ms", "10")
            .set("session.timeout.ms", session_timeout.as_millis().to_string())
            .set("heartbeat.interval.ms", (session_timeout.as_millis() / 5).max(100).to_string());
        for (k, v) in &settings.properties {
            c.set(k, v);
        }
        c.set("statistics.interval.ms", "5000");
        c
    }

    #[test]
    fn the_operator_wins_except_for_the_statistics_the_lag_gauge_needs() {
        let passed = ["fetch.wait.max.ms=50", "statistics.interval.ms=0", "security.protocol=SASL_SSL"];
        for properties in [&[][..], &passed[..]] {
            let properties: Vec<String> = properties.iter().map(|p| (*p).to_owned()).collect();
            let settings = KafkaSettings::new("b:9092", None, &properties).expect("settings");
            let timeout = Duration::from_secs(10);
            let config = client_config(&settings, "g", timeout);
            assert_eq!(config.config_map(), before(&settings, "g", timeout).config_map());
            assert_eq!(config.get("statistics.interval.ms"), Some("5000"));
            assert_eq!(config.get("isolation.level"), Some("read_committed"));
        }
    }
}
