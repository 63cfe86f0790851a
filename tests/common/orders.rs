//! Reading the processor's topics back: latest state per order, commands per order.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use rdkafka::message::{Headers, Message};

use std::time::Duration;

use super::process::upstream_order;
use super::{avro, kafka};

/// The latest state of every order on the state topic (read_committed), decoded with the
/// registry's schema by a Confluent-compatible decoder, as a data team would.
pub async fn latest_states(topic: &str) -> HashMap<String, serde_json::Value> {
    states(topic, false).await
}

/// [`latest_states`]; with `retired`, tombstones are skipped, so an order retired since keeps
/// the last state written for it.
async fn states(topic: &str, retired: bool) -> HashMap<String, serde_json::Value> {
    let decoder = avro::decoder();
    let mut latest = HashMap::new();
    for record in kafka::read_all(topic, "read_committed") {
        let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
        match record.payload() {
            None if retired => {}
            None => {
                latest.remove(&key);
            }
            Some(payload) => {
                let (name, json) = avro::decode(&decoder, payload, "order_state").await;
                assert_eq!(name, "io.interchange.orders.OrderState");
                latest.insert(key, json);
            }
        }
    }
    latest
}

/// Count of records per (correlation id, event type) on a topic.
pub fn counts(topic: &str, isolation: &str) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for record in kafka::read_all(topic, isolation) {
        let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
        let kind = record
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|x| x.key == "event-type")
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .unwrap_or_default();
        *out.entry((key, kind)).or_default() += 1;
    }
    out
}

/// Waits until every order in `ids` has a terminal state; returns the states.
pub async fn wait_terminal(
    topic: &str,
    ids: &[String],
    limit: std::time::Duration,
) -> HashMap<String, serde_json::Value> {
    try_wait_terminal(topic, ids, limit).await.unwrap_or_else(|e| panic!("{e}"))
}

/// [`wait_terminal`], saying what is missing instead of panicking (so the caller can add the
/// logs of the processes it runs).
pub async fn try_wait_terminal(
    topic: &str,
    ids: &[String],
    limit: std::time::Duration,
) -> Result<HashMap<String, serde_json::Value>, String> {
    try_wait_until_terminal(topic, ids, limit, false).await
}

/// [`try_wait_terminal`]; with `retired`, an order whose terminal state has since been
/// tombstoned counts as finished (its last state written is what is returned), so a short
/// retention cannot retire an order between two reads and hide that it finished.
pub async fn try_wait_until_terminal(
    topic: &str,
    ids: &[String],
    limit: std::time::Duration,
    retired: bool,
) -> Result<HashMap<String, serde_json::Value>, String> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let states = states(topic, retired).await;
        let pending: Vec<&String> = ids
            .iter()
            .filter(|id| {
                !states
                    .get(*id)
                    .is_some_and(|s| matches!(s["status"].as_str(), Some("COMPLETED" | "REJECTED" | "COMPENSATED")))
            })
            .collect();
        if pending.is_empty() {
            return Ok(states);
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "{} orders not finished, e.g. {:?}: {:?}",
                pending.len(),
                pending.first(),
                pending.first().and_then(|p| states.get(*p))
            ));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

pub fn delivered(_: &str) -> Option<&'static str> {
    Some("DELIVERED")
}

/// Every order completed, with one dispatch and one notification on the read_committed
/// commands topic and no transition applied twice.
pub async fn assert_exactly_once(prefix: &str, ids: &[String]) {
    assert_exactly_once_on(prefix, "orders", ids).await;
}

/// [`assert_exactly_once`] on the topics `{flow}.state` and `{flow}.commands`; returns the
/// final states.
pub async fn assert_exactly_once_on(prefix: &str, flow: &str, ids: &[String]) -> HashMap<String, serde_json::Value> {
    let t = |name: &str| format!("{prefix}{flow}.{name}");
    let states = wait_terminal(&t("state"), ids, Duration::from_secs(180)).await;
    for id in ids {
        let state = &states[id];
        assert_eq!(state["status"], "COMPLETED", "{id}: {state}");
        assert_eq!(state["version"], 4, "{id}: four transitions, each once: {state}");
        let steps: Vec<(String, String)> = state["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|h| (h["event_id"].as_str().unwrap_or("").to_owned(), h["to"].as_str().unwrap_or("").to_owned()))
            .collect();
        assert_eq!(steps.iter().collect::<HashSet<_>>().len(), steps.len(), "{id}: a transition twice: {steps:?}");
    }
    let committed = counts(&t("commands"), "read_committed");
    let mut wrong = Vec::new();
    for id in ids {
        for kind in ["dispatch_command", "notification_command"] {
            let n = committed.get(&(id.clone(), kind.to_owned())).copied().unwrap_or(0);
            if n != 1 {
                wrong.push(format!("{id} {kind} x{n}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} commands not exactly once: {:?}", wrong.len(), &wrong[..wrong.len().min(10)]);
    let uncommitted: usize = counts(&t("commands"), "read_uncommitted").values().sum();
    let committed_total: usize = committed.values().sum();
    assert!(uncommitted >= committed_total);
    eprintln!(
        "{flow}: commands {committed_total} read_committed, {uncommitted} read_uncommitted (aborted ones included)"
    );
    states
}

pub fn orders(prefix: &str, n: usize) -> Vec<(String, serde_json::Value)> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}K-{i}");
            let order = upstream_order(&id, &format!("K-{i}"), "SKU-A", 1);
            (id, order)
        })
        .collect()
}
