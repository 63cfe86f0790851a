//! What the hub is doing now, sampled every few seconds: the roles' own metrics (their
//! `/metrics`, Prometheus text) turned into rates over the last interval (throughput per stage,
//! errors, each partner's attempts, breaker and latency), and every consumer group's lag read
//! from Kafka itself (committed offsets against the end of each partition), so a stopped role's
//! lag still shows. The overview and the partners' pages render the latest [`Live`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use interchange_core::clock::now_millis;
use interchange_core::kafka::KafkaSettings;
use interchange_core::metrics as names;
use interchange_core::topology::Topology;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// How often the sampler scrapes and reads lag.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(3);

/// Breaker changes kept per console.
const HISTORY: usize = 200;

/// One series of a scrape.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Every series of every role's `/metrics`, at one instant.
#[derive(Debug, Clone)]
struct Scrape {
    at: Instant,
    series: Vec<Series>,
}

/// Parses Prometheus text exposition: `name{label="value",...} value`; comments skipped.
fn parse(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some((head, value)) => (head.trim(), value),
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => (name, labels_of(rest.trim_end_matches('}'))),
            None => (head, BTreeMap::new()),
        };
        out.push(Series { name: name.to_owned(), labels, value });
    }
    out
}

/// `a="x",b="y"` (values may hold escaped quotes and commas).
fn labels_of(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, next)) = chars.next() {
                        value.push(match next {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

impl Scrape {
    /// The sum of `name`'s series whose labels include every pair of `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|s| s.name == name && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.value)
            .sum()
    }

    /// Whether any series is named `name`.
    fn has(&self, name: &str) -> bool {
        self.series.iter().any(|s| s.name == name)
    }

    /// The distinct values of `label` on `name`'s series.
    fn values_of(&self, name: &str, label: &str) -> Vec<String> {
        let mut values: Vec<String> =
            self.series.iter().filter(|s| s.name == name).filter_map(|s| s.labels.get(label).cloned()).collect();
        values.sort();
        values.dedup();
        values
    }

    /// The cumulative buckets of histogram `name` for `with`: (upper bound, count).
    fn buckets(&self, name: &str, with: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .series
            .iter()
            .filter(|s| s.name == bucket && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .filter_map(|s| {
                let le = s.labels.get("le")?;
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((bound, s.value))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

/// Per second between two scrapes; none without both, or when a counter went back (a restart).
fn rate(before: Option<&Scrape>, now: &Scrape, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let before = before?;
    if !now.has(name) {
        return None;
    }
    let seconds = now.at.duration_since(before.at).as_secs_f64();
    let delta = now.sum(name, with) - before.sum(name, with);
    (seconds > 0.0 && delta >= 0.0).then(|| delta / seconds)
}

/// The `q` quantile (seconds) of what histogram `name` observed between two scrapes (or since
/// the start without an earlier one): the upper bound of the bucket it falls in.
fn quantile(before: Option<&Scrape>, now: &Scrape, name: &str, with: &[(&str, &str)], q: f64) -> Option<f64> {
    let mut buckets = now.buckets(name, with);
    if let Some(before) = before {
        let earlier = before.buckets(name, with);
        if earlier.len() == buckets.len() {
            for (b, e) in buckets.iter_mut().zip(earlier) {
                b.1 -= e.1;
            }
        }
    }
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    buckets.iter().find(|(_, count)| *count >= q * total).map(|(bound, _)| *bound)
}

/// One stage's throughput.
#[derive(Debug, Clone)]
pub(crate) struct Stage {
    pub name: &'static str,
    pub what: &'static str,
    pub per_second: Option<f64>,
}

/// One error rate.
#[derive(Debug, Clone)]
pub(crate) struct ErrorRate {
    pub name: &'static str,
    pub per_second: Option<f64>,
}

/// A consumer group's lag: records behind the end of its input partitions.
#[derive(Debug, Clone)]
pub(crate) struct GroupLag {
    pub group: String,
    pub lag: i64,
    pub partitions: usize,
}

/// One partner, live.
#[derive(Debug, Clone, Default)]
pub(crate) struct PartnerLive {
    /// 0 closed, 1 half-open, 2 open; none when no sink reports it.
    pub breaker: Option<f64>,
    pub attempts_per_second: Option<f64>,
    pub failed_per_second: Option<f64>,
    pub delivered_per_second: Option<f64>,
    /// Attempt latency over the last interval (seconds, bucket bounds).
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// Attempt latency since the sink started.
    pub p50_total: Option<f64>,
    pub p99_total: Option<f64>,
    /// Attempts by outcome class since the sink started.
    pub attempts_total: BTreeMap<String, f64>,
    /// Breaker transitions by state entered since the sink started.
    pub transitions_total: BTreeMap<String, f64>,
}

/// A breaker change the console saw between two samples.
#[derive(Debug, Clone)]
pub(crate) struct BreakerChange {
    pub at_ms: i64,
    pub partner: String,
    pub from: &'static str,
    pub to: &'static str,
}

/// The latest sample.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    /// When it was taken (Unix ms); 0 before the first.
    pub at_ms: i64,
    pub stages: Vec<Stage>,
    pub errors: Vec<ErrorRate>,
    pub lag: Vec<GroupLag>,
    pub lag_problem: Option<String>,
    pub partners: BTreeMap<String, PartnerLive>,
    /// Metrics endpoints that did not answer, with why.
    pub unreachable: Vec<String>,
    /// Breaker changes seen, newest last.
    pub breaker_history: VecDeque<BreakerChange>,
}

/// The breaker gauge's value as a word.
pub(crate) fn breaker_word(value: Option<f64>) -> &'static str {
    match value {
        None => "not reported",
        Some(v) if v >= 1.5 => "open",
        Some(v) if v >= 0.5 => "half-open",
        Some(_) => "closed",
    }
}

/// Where the sampler reads from.
#[derive(Debug, Clone)]
pub struct LiveSources {
    /// The roles' `/metrics` URLs.
    pub metrics: Vec<String>,
    /// Kafka, for the consumer groups' lag.
    pub kafka: KafkaSettings,
}

/// The latest [`Live`], kept current in the background.
#[derive(Debug, Default)]
pub(crate) struct LiveView {
    latest: RwLock<Live>,
}

impl LiveView {
    /// Starts sampling; it ends with `shutdown`.
    pub(crate) fn start(sources: LiveSources, topology: Topology, shutdown: CancellationToken) -> Arc<Self> {
        let view = Arc::new(Self::default());
        let sampler = view.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap_or_default();
            let mut before: Option<Scrape> = None;
            let members = Members::default();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let (now, unreachable) = scrape(&client, &sources.metrics).await;
                let (lag, lag_problem) = match consumer_lag(&sources.kafka, &topology, &members).await {
                    Ok(lag) => (lag, None),
                    Err(e) => (Vec::new(), Some(e)),
                };
                let previous = sampler.latest();
                let mut live = summarise(before.as_ref(), &now, &topology);
                live.lag = lag;
                live.lag_problem = lag_problem;
                live.unreachable = unreachable;
                live.breaker_history = previous.breaker_history;
                for (partner, p) in &live.partners {
                    let was = previous.partners.get(partner).and_then(|p| p.breaker);
                    if previous.at_ms > 0 && was.is_some() && breaker_word(was) != breaker_word(p.breaker) {
                        live.breaker_history.push_back(BreakerChange {
                            at_ms: live.at_ms,
                            partner: partner.clone(),
                            from: breaker_word(was),
                            to: breaker_word(p.breaker),
                        });
                        if live.breaker_history.len() > HISTORY {
                            live.breaker_history.pop_front();
                        }
                    }
                }
                *sampler.latest.write().unwrap_or_else(std::sync::PoisonError::into_inner) = live;
                before = Some(now);
            }
        });
        view
    }

    /// The latest sample.
    pub(crate) fn latest(&self) -> Live {
        self.latest.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Every endpoint's series, and the endpoints that did not answer.
async fn scrape(client: &reqwest::Client, urls: &[String]) -> (Scrape, Vec<String>) {
    let mut series = Vec::new();
    let mut unreachable = Vec::new();
    for url in urls {
        let text = match client.get(url).send().await {
            Ok(answer) if answer.status().is_success() => answer.text().await.map_err(|e| e.to_string()),
            Ok(answer) => Err(format!("HTTP {}", answer.status().as_u16())),
            Err(e) => Err(if e.is_connect() { "not listening".to_owned() } else { e.to_string() }),
        };
        match text {
            Ok(text) => series.extend(parse(&text)),
            Err(e) => unreachable.push(format!("{url}: {e}")),
        }
    }
    (Scrape { at: Instant::now(), series }, unreachable)
}

fn total(name: &str) -> String {
    format!("{name}_total")
}

/// Rates and partner views from two scrapes.
fn summarise(before: Option<&Scrape>, now: &Scrape, topology: &Topology) -> Live {
    let r = |name: &str, with: &[(&str, &str)]| rate(before, now, &total(name), with);
    let sum_of = |parts: &[Option<f64>]| -> Option<f64> {
        parts.iter().any(Option::is_some).then(|| parts.iter().flatten().sum())
    };
    let processor_ok = sum_of(&[
        r(names::PROCESSOR_RECORDS, &[("outcome", "changed")]),
        r(names::PROCESSOR_RECORDS, &[("outcome", "unchanged")]),
        r(names::PROCESSOR_RECORDS, &[("outcome", "timer")]),
    ]);
    let stages = vec![
        Stage {
            name: "Edge",
            what: "requests accepted/s",
            per_second: r(names::INGEST_REQUESTS, &[("status_class", "2xx")]),
        },
        Stage { name: "Processors", what: "records advanced/s", per_second: processor_ok },
        Stage {
            name: "Sinks",
            what: "deliveries/s",
            per_second: r(names::SINK_DELIVERIES, &[("outcome", "delivered")]),
        },
        Stage {
            name: "Read model",
            what: "states projected/s",
            per_second: r(names::PROJECTOR_RECORDS, &[("outcome", "projected")]),
        },
    ];
    let failed_attempts = sum_of(&[
        r(names::SINK_ATTEMPTS, &[("outcome", "4xx")]),
        r(names::SINK_ATTEMPTS, &[("outcome", "5xx")]),
        r(names::SINK_ATTEMPTS, &[("outcome", "timeout")]),
        r(names::SINK_ATTEMPTS, &[("outcome", "error")]),
    ]);
    let errors = vec![
        ErrorRate { name: "Edge answers 4xx/s", per_second: r(names::INGEST_REQUESTS, &[("status_class", "4xx")]) },
        ErrorRate { name: "Edge answers 5xx/s", per_second: r(names::INGEST_REQUESTS, &[("status_class", "5xx")]) },
        ErrorRate {
            name: "Processor dead letters/s",
            per_second: r(names::PROCESSOR_RECORDS, &[("outcome", "dead_letter")]),
        },
        ErrorRate { name: "Partner attempts failed/s", per_second: failed_attempts },
        ErrorRate { name: "Sink dead letters/s", per_second: r(names::SINK_DEAD_LETTERS, &[]) },
    ];
    let mut partners = BTreeMap::new();
    for partner in topology.partners.iter().filter(|p| p.outbound.is_some()) {
        let p = partner.name.as_str();
        let with = [("partner", p)];
        let state = now
            .series
            .iter()
            .find(|s| s.name == names::SINK_BREAKER_STATE && s.labels.get("partner").map(String::as_str) == Some(p));
        let class_rate = |class: &str| r(names::SINK_ATTEMPTS, &[("partner", p), ("outcome", class)]);
        let failed = sum_of(&[class_rate("4xx"), class_rate("5xx"), class_rate("timeout"), class_rate("error")]);
        let attempts_total = now
            .values_of(&total(names::SINK_ATTEMPTS), "outcome")
            .into_iter()
            .map(|class| {
                let n = now.sum(&total(names::SINK_ATTEMPTS), &[("partner", p), ("outcome", class.as_str())]);
                (class, n)
            })
            .filter(|(_, n)| *n > 0.0)
            .collect();
        let transitions_total = now
            .values_of(&total(names::SINK_BREAKER_TRANSITIONS), "outcome")
            .into_iter()
            .map(|to| {
                let n = now.sum(&total(names::SINK_BREAKER_TRANSITIONS), &[("partner", p), ("outcome", to.as_str())]);
                (to, n)
            })
            .filter(|(_, n)| *n > 0.0)
            .collect();
        partners.insert(
            p.to_owned(),
            PartnerLive {
                breaker: state.map(|s| s.value),
                attempts_per_second: r(names::SINK_ATTEMPTS, &with),
                failed_per_second: failed,
                delivered_per_second: r(names::SINK_DELIVERIES, &[("partner", p), ("outcome", "delivered")]),
                p50: quantile(before, now, names::SINK_ATTEMPT_DURATION, &with, 0.5),
                p99: quantile(before, now, names::SINK_ATTEMPT_DURATION, &with, 0.99),
                p50_total: quantile(None, now, names::SINK_ATTEMPT_DURATION, &with, 0.5),
                p99_total: quantile(None, now, names::SINK_ATTEMPT_DURATION, &with, 0.99),
                attempts_total,
                transitions_total,
            },
        );
    }
    Live { at_ms: now_millis(), stages, errors, partners, ..Live::default() }
}

/// One offsets reader per consumer group, kept between samples.
type Members = Arc<std::sync::Mutex<BTreeMap<String, BaseConsumer>>>;

/// Every consumer group of the topology with its lag: each group's committed offsets on the
/// topics it reads against each partition's end. A group that has committed nothing yet is left out.
async fn consumer_lag(kafka: &KafkaSettings, topology: &Topology, members: &Members) -> Result<Vec<GroupLag>, String> {
    let groups = topology.consumer_groups();
    let kafka = kafka.clone();
    let members = members.clone();
    tokio::task::spawn_blocking(move || {
        let mut members = members.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let timeout = Duration::from_secs(5);
        let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let mut out = Vec::new();
        for (group, topics) in groups {
            // Assigned nothing, subscribed to nothing: it never joins the group, only reads its offsets.
            let member = match members.entry(group.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(
                    kafka.read_committed("hub-console-lag", &group).create().map_err(|e| format!("consumer: {e}"))?,
                ),
            };
            let mut wanted = TopicPartitionList::new();
            for topic in &topics {
                let metadata = member.fetch_metadata(Some(topic), timeout).map_err(|e| format!("metadata: {e}"))?;
                for p in metadata.topics().iter().filter(|t| t.error().is_none()).flat_map(|t| t.partitions()) {
                    wanted.add_partition(topic, p.id());
                }
            }
            let committed = member.committed_offsets(wanted, timeout).map_err(|e| format!("{group}: {e}"))?;
            let mut lag = 0;
            let mut partitions = 0;
            for element in committed.elements() {
                let Offset::Offset(at) = element.offset() else { continue };
                let key = (element.topic().to_owned(), element.partition());
                let end = match ends.get(&key) {
                    Some(end) => *end,
                    None => {
                        let (_, high) = member
                            .fetch_watermarks(element.topic(), element.partition(), timeout)
                            .map_err(|e| format!("watermarks: {e}"))?;
                        ends.insert(key, high);
                        high
                    }
                };
                lag += (end - at).max(0);
                partitions += 1;
            }
            if partitions > 0 {
                out.push(GroupLag { group, lag, partitions });
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(text: &str, seconds: u64, start: Instant) -> Scrape {
        Scrape { at: start + Duration::from_secs(seconds), series: parse(text) }
    }

    #[test]
    fn series_are_read_with_their_labels_and_escaped_values() {
        let s =
            parse("# HELP x y\n# TYPE x counter\nhub_x_total{partner=\"a,\\\"b\",outcome=\"2xx\"} 3\nplain 1.5\n\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "hub_x_total");
        assert_eq!(s[0].labels["partner"], "a,\"b");
        assert_eq!(s[0].labels["outcome"], "2xx");
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1], Series { name: "plain".into(), labels: BTreeMap::new(), value: 1.5 });
    }

    #[test]
    fn rates_are_per_second_between_scrapes_and_none_after_a_restart() {
        let start = Instant::now();
        let a = scrape("c_total{p=\"x\"} 10\nc_total{p=\"y\"} 5", 0, start);
        let b = scrape("c_total{p=\"x\"} 40\nc_total{p=\"y\"} 5", 3, start);
        assert_eq!(rate(Some(&a), &b, "c_total", &[("p", "x")]), Some(10.0));
        assert_eq!(rate(Some(&a), &b, "c_total", &[]), Some(10.0));
        assert_eq!(rate(None, &b, "c_total", &[]), None);
        let restarted = scrape("c_total{p=\"x\"} 1", 6, start);
        assert_eq!(rate(Some(&b), &restarted, "c_total", &[("p", "x")]), None);
    }

    #[test]
    fn a_quantile_is_the_bound_of_the_bucket_it_falls_in_over_the_interval() {
        let start = Instant::now();
        let h = |a: u32, b: u32, c: u32| {
            format!("d_bucket{{le=\"0.01\"}} {a}\nd_bucket{{le=\"0.1\"}} {b}\nd_bucket{{le=\"+Inf\"}} {c}\n")
        };
        let before = scrape(&h(100, 100, 100), 0, start);
        // Since then: 10 under 10 ms, 80 between 10 and 100 ms, 10 above.
        let now = scrape(&h(110, 190, 200), 3, start);
        assert_eq!(quantile(Some(&before), &now, "d", &[], 0.5), Some(0.1));
        assert_eq!(quantile(Some(&before), &now, "d", &[], 0.05), Some(0.01));
        assert_eq!(quantile(Some(&before), &now, "d", &[], 0.99), Some(f64::INFINITY));
        assert_eq!(quantile(None, &before, "d", &[], 0.5), Some(0.01));
    }
}
