//! The bench's report on stdout: a plain table, the ratios, the record count check, and one
//! final JSON line (`{"bench":"ingest",...}`) with every number for machines.

use std::time::Duration;

use serde_json::{json, Value};

use super::stats::Phase;

/// Everything a run found.
#[derive(Debug, Clone)]
pub struct Summary {
    pub prefix: String,
    pub route: String,
    pub partner: String,
    pub connections: usize,
    pub kafka_in_flight: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub idempotency: bool,
    pub pool: usize,
    pub body_bytes: usize,
    pub phases: Vec<Phase>,
    pub records: Option<RecordCheck>,
}

/// Records the edge wrote (watermarks after minus before its phases) against its 202s.
#[derive(Debug, Clone, Copy)]
pub struct RecordCheck {
    pub on_topic: i64,
    /// New (not replayed) 202s of the edge, warm-ups included.
    pub accepted: u64,
}

impl RecordCheck {
    pub fn matches(&self) -> bool {
        u64::try_from(self.on_topic).is_ok_and(|n| n == self.accepted)
    }
}

impl Summary {
    fn phase(&self, key: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.key == key)
    }

    /// `a / b` of two phases' rates, when both ran and `b` is not zero.
    fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        let (a, b) = (self.phase(a)?.rate(), self.phase(b)?.rate());
        (b > 0.0).then(|| a / b)
    }
}

fn fmt_ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}

/// Prints the table, the checks and the JSON line.
pub fn print(summary: &Summary) {
    println!();
    println!(
        "hub-bench ingest: prefix {}  route POST {} as {}  body ~{} B (pool {} signed orders)  idempotency {}",
        summary.prefix,
        summary.route,
        summary.partner,
        summary.body_bytes,
        summary.pool,
        if summary.idempotency { "on (unique Idempotency-Key per request)" } else { "off" },
    );
    println!(
        "{} connections, {:?} per phase after {:?} warm-up; Kafka baseline {} sends in flight; latencies of accepted requests only",
        summary.connections, summary.duration, summary.warmup, summary.kafka_in_flight
    );
    println!();
    println!(
        "{:<34} {:>10} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "phase", "ok/s", "ok", "errors", "err %", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for phase in &summary.phases {
        println!(
            "{:<34} {:>10.0} {:>9} {:>8} {:>8.3} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            phase.label,
            phase.rate(),
            phase.recorder.accepted,
            phase.recorder.error_count(),
            phase.error_rate() * 100.0,
            phase.millis(0.5),
            phase.millis(0.99),
            phase.millis(0.999),
            phase.max_millis(),
        );
    }
    println!();
    for phase in &summary.phases {
        if let Some(open) = &phase.open {
            println!(
                "{}: target {:.0} req/s, {} scheduled, {} missed (in-flight cap {}), launches up to {:.1} ms late",
                phase.label,
                open.target_rate,
                open.scheduled,
                open.missed,
                open.in_flight_cap,
                open.max_launch_lag.as_secs_f64() * 1000.0
            );
        }
        if phase.recorder.replayed > 0 {
            println!(
                "{}: {} answers were idempotent replays (not counted as ok)",
                phase.label, phase.recorder.replayed
            );
        }
        for (kind, count) in &phase.recorder.errors {
            println!("{}: error {kind} x{count}", phase.label);
        }
    }
    println!("edge peak / HTTP ceiling:  {}", fmt_ratio(summary.ratio("edge_peak", "http_ceiling")));
    println!("edge peak / Kafka ceiling: {}", fmt_ratio(summary.ratio("edge_peak", "kafka_ceiling")));
    if summary.phases.iter().any(|p| p.key == "edge_peak_traced") {
        println!("edge peak traced / untraced: {}", fmt_ratio(summary.ratio("edge_peak_traced", "edge_peak")));
    }
    if let Some(half) = summary.phase("edge_half") {
        println!(
            "p99 at half of peak (open loop): {:.2} ms (p50 {:.2}, p99.9 {:.2})",
            half.millis(0.99),
            half.millis(0.5),
            half.millis(0.999)
        );
    }
    match &summary.records {
        Some(check) if check.matches() => {
            println!("records on the topic: {} = edge 202s: {} (match)", check.on_topic, check.accepted);
        }
        Some(check) => {
            println!(
                "MISMATCH: {} records on the topic but the edge answered {} new 202s (difference {})",
                check.on_topic,
                check.accepted,
                check.on_topic - i64::try_from(check.accepted).unwrap_or(i64::MAX)
            );
        }
        None => println!("records on the topic: not counted"),
    }
    println!("{}", json_line(summary));
}

fn phase_json(phase: &Phase) -> Value {
    let mut value = json!({
        "ok_per_s": round(phase.rate()),
        "ok": phase.recorder.accepted,
        "replayed": phase.recorder.replayed,
        "errors": phase.recorder.error_count(),
        "error_rate": phase.error_rate(),
        "error_kinds": phase.recorder.errors,
        "elapsed_s": round(phase.elapsed.as_secs_f64()),
        "p50_ms": round(phase.millis(0.5)),
        "p99_ms": round(phase.millis(0.99)),
        "p999_ms": round(phase.millis(0.999)),
        "max_ms": round(phase.max_millis()),
        "mean_ms": round(phase.recorder.latency.mean() / 1000.0),
    });
    if let (Some(open), Value::Object(map)) = (&phase.open, &mut value) {
        map.insert("target_per_s".to_owned(), json!(round(open.target_rate)));
        map.insert("scheduled".to_owned(), json!(open.scheduled));
        map.insert("missed".to_owned(), json!(open.missed));
        map.insert("in_flight_cap".to_owned(), json!(open.in_flight_cap));
        map.insert("max_launch_lag_ms".to_owned(), json!(round(open.max_launch_lag.as_secs_f64() * 1000.0)));
    }
    value
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The machine-readable line.
pub fn json_line(summary: &Summary) -> String {
    let phases: serde_json::Map<String, Value> =
        summary.phases.iter().map(|p| (p.key.to_owned(), phase_json(p))).collect();
    let records =
        summary.records.map(|c| json!({ "on_topic": c.on_topic, "accepted_202": c.accepted, "match": c.matches() }));
    json!({
        "bench": "ingest",
        "prefix": summary.prefix,
        "route": summary.route,
        "partner": summary.partner,
        "connections": summary.connections,
        "kafka_in_flight": summary.kafka_in_flight,
        "duration_s": summary.duration.as_secs_f64(),
        "warmup_s": summary.warmup.as_secs_f64(),
        "idempotency": summary.idempotency,
        "body_bytes": summary.body_bytes,
        "phases": phases,
        "ratios": {
            "edge_peak_over_http_ceiling": summary.ratio("edge_peak", "http_ceiling").map(round),
            "edge_peak_over_kafka_ceiling": summary.ratio("edge_peak", "kafka_ceiling").map(round),
            "edge_peak_traced_over_untraced": summary.ratio("edge_peak_traced", "edge_peak").map(round),
        },
        "half_load_p99_ms": summary.phase("edge_half").map(|p| round(p.millis(0.99))),
        "records": records,
    })
    .to_string()
}
