//! Consumer lag from librdkafka's statistics: records between where the application stands in
//! each assigned partition and its end (the last stable offset under read_committed). Parsed from the raw JSON, so fields
//! a newer librdkafka adds or drops do not break it.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// One consumer's rows of a lag gauge, refreshed from its statistics: partitions no longer
/// reported (revoked) are removed, rows of other consumers in the process are left alone.
pub struct LagGauge<L> {
    family: Family<L, Gauge>,
    /// The labels of a row: topic and partition.
    labels: Box<dyn Fn(String, i32) -> L + Send + Sync>,
    shown: std::sync::Mutex<Vec<L>>,
}

impl<L> std::fmt::Debug for LagGauge<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagGauge").finish_non_exhaustive()
    }
}

impl<L> LagGauge<L>
where
    L: Clone + std::hash::Hash + Eq + Send + Sync,
{
    pub fn new(family: Family<L, Gauge>, labels: impl Fn(String, i32) -> L + Send + Sync + 'static) -> Self {
        Self { family, labels: Box::new(labels), shown: std::sync::Mutex::default() }
    }

    /// Sets the rows from one statistics JSON document.
    pub fn update(&self, statistics: &[u8]) {
        let mut now = Vec::new();
        for (topic, partition, lag) in lags(statistics) {
            let labels = (self.labels)(topic, partition);
            self.family.get_or_create(&labels).set(lag);
            now.push(labels);
        }
        if let Ok(mut shown) = self.shown.lock() {
            for gone in shown.iter().filter(|l| !now.contains(l)) {
                self.family.remove(gone);
            }
            *shown = now;
        }
    }
}

/// `(topic, partition, lag)` for every partition the consumer fetches and knows the lag of.
pub fn lags(stats_json: &[u8]) -> Vec<(String, i32, i64)> {
    let Ok(stats) = serde_json::from_slice::<serde_json::Value>(stats_json) else { return Vec::new() };
    let mut out = Vec::new();
    for (name, topic) in stats["topics"].as_object().into_iter().flatten() {
        for (id, p) in topic["partitions"].as_object().into_iter().flatten() {
            // -1 is librdkafka's internal partition; only partitions being fetched count.
            let Ok(id) = id.parse::<i32>() else { continue };
            if id < 0 || p["fetch_state"] != "active" {
                continue;
            }
            let field = |k: &str| p[k].as_i64().filter(|v| *v >= 0);
            // The end a read_committed consumer can reach, and where the application stands:
            // librdkafka's own consumer_lag uses the committed offset only, which a
            // transactional consumer's commits (sent by its producer) never refresh.
            let end = field("ls_offset").or_else(|| field("hi_offset"));
            let position = field("app_offset").or_else(|| field("committed_offset")).or_else(|| field("lo_offset"));
            if let (Some(end), Some(position)) = (end, position) {
                out.push((name.clone(), id, (end - position).max(0)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_partitions_being_fetched() {
        let json = br#"{"topics": {"t": {"partitions": {
            "0": {"fetch_state": "active", "app_offset": 5, "committed_offset": -1001, "ls_offset": 10, "hi_offset": 12},
            "1": {"fetch_state": "active", "app_offset": -1001, "committed_offset": 3, "ls_offset": -1001, "hi_offset": 4},
            "2": {"fetch_state": "active", "app_offset": -1001, "committed_offset": -1001, "lo_offset": 0, "ls_offset": 0},
            "3": {"fetch_state": "none", "app_offset": 1, "ls_offset": 9},
            "-1": {"fetch_state": "active", "app_offset": 1, "ls_offset": 9}}}}}"#;
        let mut lags = super::lags(json);
        lags.sort();
        assert_eq!(lags, [("t".to_owned(), 0, 5), ("t".to_owned(), 1, 1), ("t".to_owned(), 2, 0)]);
        assert!(super::lags(b"not json").is_empty());
    }
}
