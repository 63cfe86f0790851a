//! The flow bench's report: the check against the topics, a short table on stdout, and the
//! JSON document (`--out`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

pub use super::account::LagSample;
use super::account::TopicCounts;
use super::ledger::{Ledger, ACCEPTED};
use super::results::{ms, PhaseResult};
use super::{sustained, Summary};

/// Every request of the run against what the topics hold for it.
#[derive(Debug, Clone, Default)]
pub struct TopicCheck {
    pub accepted: u64,
    pub inbound_records: i64,
    pub dispatch_once: u64,
    pub dispatch_missing: u64,
    pub dispatch_duplicated: u64,
    pub notification_once: u64,
    pub notification_missing: u64,
    pub notification_duplicated: u64,
    /// Latest state COMPLETED at version 4 (each of the four transitions once).
    pub completed: u64,
    /// Latest state of the other accepted orders, by status.
    pub other_states: BTreeMap<String, u64>,
    /// Requests without a 202 that still left records.
    pub unacknowledged_with_records: u64,
    pub strays: u64,
}

impl TopicCheck {
    pub fn of(ledger: &Ledger, counts: &TopicCounts, used: usize) -> Self {
        let mut check = Self { inbound_records: counts.inbound_records, strays: counts.strays, ..Self::default() };
        for (i, slot) in ledger.slots.iter().enumerate().take(used) {
            let (d, n) = (counts.dispatches[i], counts.notifications[i]);
            let state = &counts.states[i];
            if slot.outcome.load(Ordering::Relaxed) != ACCEPTED {
                if d > 0 || n > 0 || state.is_some() {
                    check.unacknowledged_with_records += 1;
                }
                continue;
            }
            check.accepted += 1;
            match d {
                0 => check.dispatch_missing += 1,
                1 => check.dispatch_once += 1,
                _ => check.dispatch_duplicated += 1,
            }
            match n {
                0 => check.notification_missing += 1,
                1 => check.notification_once += 1,
                _ => check.notification_duplicated += 1,
            }
            match state {
                Some((status, 4)) if status == "COMPLETED" => check.completed += 1,
                Some((status, version)) => {
                    *check.other_states.entry(format!("{status} v{version}")).or_insert(0) += 1;
                }
                None => *check.other_states.entry("none".to_owned()).or_insert(0) += 1,
            }
        }
        check
    }

    pub fn exact(&self) -> bool {
        u64::try_from(self.inbound_records).is_ok_and(|n| n == self.accepted)
            && self.dispatch_once == self.accepted
            && self.notification_once == self.accepted
            && self.completed == self.accepted
            && self.unacknowledged_with_records == 0
            && self.strays == 0
    }

    fn to_json(&self) -> Value {
        json!({
            "accepted": self.accepted, "inbound_records": self.inbound_records,
            "dispatch_once": self.dispatch_once, "dispatch_missing": self.dispatch_missing,
            "dispatch_duplicated": self.dispatch_duplicated, "notification_once": self.notification_once,
            "notification_missing": self.notification_missing, "notification_duplicated": self.notification_duplicated,
            "completed_v4": self.completed, "other_states": self.other_states,
            "unacknowledged_with_records": self.unacknowledged_with_records, "strays": self.strays,
            "exact": self.exact(),
        })
    }
}

/// One line per phase while the bench runs.
pub fn line(p: &PhaseResult, sustained: bool) -> String {
    format!(
        "  {:>7.0}/s target: {:>7.0} accepted/s, {:>7.0} completed/s, {:.3}% errors, {} missed; ERP p99 {:.1} ms, completion p99 {:.1} ms; {}",
        p.rate,
        p.accepted_per_s,
        p.completed_per_s,
        p.error_rate * 100.0,
        p.load.missed,
        ms(&p.erp, 0.99),
        ms(&p.complete, 0.99),
        if sustained { "sustained" } else { "NOT sustained" }
    )
}

/// The highest sustained phase.
fn best(summary: &Summary) -> Option<&PhaseResult> {
    summary
        .phases
        .iter()
        .filter(|p| sustained(p, summary.max_p99))
        .max_by(|a, b| a.accepted_per_s.total_cmp(&b.accepted_per_s))
}

/// The most completed orders per second any phase reached, sustained or not.
fn peak(summary: &Summary) -> f64 {
    summary.phases.iter().map(|p| p.completed_per_s).fold(0.0, f64::max)
}

fn ratio(summary: &Summary, key: &str) -> Option<f64> {
    let base = *summary.baselines.get(key)?;
    let best = best(summary)?;
    (base > 0.0).then(|| best.accepted_per_s / base)
}

fn peak_ratio(summary: &Summary, key: &str) -> Option<f64> {
    let base = *summary.baselines.get(key)?;
    (base > 0.0).then(|| peak(summary) / base)
}

/// The table and the checks on stdout.
pub fn print(summary: &Summary) {
    println!();
    println!(
        "hub-bench flow: prefix {}  processor {:?}  idempotency {}  body ~{} B  (latencies from each request's scheduled send)",
        summary.prefix,
        summary.mode,
        if summary.idempotency { "on" } else { "off" },
        summary.body_bytes
    );
    println!(
        "{:>8} {:>9} {:>9} {:>7} {:>6} | {:>7} {:>7} | {:>7} {:>7} {:>8} | {:>7} {:>7} {:>8} | {:>5}",
        "target/s",
        "accept/s",
        "compl/s",
        "err %",
        "missed",
        "202 p50",
        "p99",
        "ERP p50",
        "p99",
        "p99.9",
        "done p50",
        "p99",
        "p99.9",
        "exact"
    );
    for p in &summary.phases {
        println!(
            "{:>8.0} {:>9.0} {:>9.0} {:>7.3} {:>6} | {:>7.1} {:>7.1} | {:>7.1} {:>7.1} {:>8.1} | {:>7.1} {:>7.1} {:>8.1} | {:>5}",
            p.rate,
            p.accepted_per_s,
            p.completed_per_s,
            p.error_rate * 100.0,
            p.load.missed,
            ms(&p.ack, 0.5),
            ms(&p.ack, 0.99),
            ms(&p.erp, 0.5),
            ms(&p.erp, 0.99),
            ms(&p.erp, 0.999),
            ms(&p.complete, 0.5),
            ms(&p.complete, 0.99),
            ms(&p.complete, 0.999),
            if p.accounting.exact() { "yes" } else { "NO" }
        );
    }
    println!("(latencies in ms; 'done' = the client's signed completion webhook; rates over the measured window)");
    for p in &summary.phases {
        if let Some(budget) = &p.cpu {
            println!("CPU budget at {:.0}/s target:", p.rate);
            budget.print();
        }
    }
    for (i, group) in summary.lag_groups.iter().enumerate() {
        let max = summary.lag.iter().filter_map(|s| s.lag.get(i).copied()).max().unwrap_or(0);
        println!("consumer lag of {group}: at most {max} records");
    }
    if let Some(best) = best(summary) {
        println!("highest sustained: {:.0} accepted/s (target {:.0}/s)", best.accepted_per_s, best.rate);
    } else {
        println!("highest sustained: none of the rates was sustained");
    }
    for (key, value) in &summary.baselines {
        println!("baseline {key}: {value:.0}/s");
    }
    println!("peak completed: {:.0} orders/s", peak(summary));
    for key in ["http_ceiling_per_s", "kafka_ceiling_per_s"] {
        if let Some(r) = ratio(summary, key) {
            println!("highest sustained / {key}: {r:.3}");
        }
        if let Some(r) = peak_ratio(summary, key) {
            println!("peak completed / {key}: {r:.3}");
        }
    }
    let t = &summary.topics;
    println!(
        "topics: {} accepted, {} inbound records, {} with one dispatch, {} with one notification, {} COMPLETED at version 4; missing {}/{}, duplicated {}/{}; other states {:?}; strays {}",
        t.accepted,
        t.inbound_records,
        t.dispatch_once,
        t.notification_once,
        t.completed,
        t.dispatch_missing,
        t.notification_missing,
        t.dispatch_duplicated,
        t.notification_duplicated,
        t.other_states,
        t.strays
    );
    println!(
        "{}",
        if summary.exact() {
            "zero lost, zero duplicated: every accepted order reached the ERP once (per Idempotency-Key), was notified once and is COMPLETED"
        } else {
            "MISMATCH: orders were lost or duplicated (see the counts above and in --out)"
        }
    );
}

/// Every figure, for `--out`.
pub fn json(summary: &Summary) -> Value {
    let ratios: BTreeMap<String, Option<f64>> = ["http_ceiling_per_s", "kafka_ceiling_per_s"]
        .iter()
        .flat_map(|k| {
            [
                (format!("highest_sustained_over_{k}"), ratio(summary, k)),
                (format!("peak_completed_over_{k}"), peak_ratio(summary, k)),
            ]
        })
        .collect();
    json!({
        "bench": "flow",
        "prefix": summary.prefix,
        "processor_mode": format!("{:?}", summary.mode),
        "idempotency": summary.idempotency,
        "body_bytes": summary.body_bytes,
        "phases": summary.phases.iter().map(|p| {
            let mut v = p.to_json();
            if let Value::Object(map) = &mut v {
                map.insert("sustained".to_owned(), json!(sustained(p, summary.max_p99)));
            }
            v
        }).collect::<Vec<_>>(),
        "highest_sustained_accepted_per_s": best(summary).map(|p| p.accepted_per_s),
        "peak_completed_per_s": peak(summary),
        "baselines": summary.baselines,
        "ratios": ratios,
        "lag": {
            "groups": summary.lag_groups,
            "samples": summary.lag.iter().map(|s| json!({ "at_s": s.at, "records": s.lag })).collect::<Vec<_>>(),
        },
        "topics": summary.topics.to_json(),
        "exact": summary.exact(),
    })
}
