//! Reading the processor's topics back: latest state per order, commands per order.
#![allow(dead_code)]

use std::collections::HashMap;

use rdkafka::message::{Headers, Message};

use super::{avro, kafka};

/// The latest state of every order on the state topic (read_committed), decoded with the
/// registry's schema by a Confluent-compatible decoder, as a data team would.
pub async fn latest_states(topic: &str) -> HashMap<String, serde_json::Value> {
    let decoder = avro::decoder();
    let mut latest = HashMap::new();
    for record in kafka::read_all(topic, "read_committed") {
        let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
        match record.payload() {
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
            .and_then(|h| h.iter().find(|x| x.key == "event-type").and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned()))
            .unwrap_or_default();
        *out.entry((key, kind)).or_default() += 1;
    }
    out
}

/// Waits until every order in `ids` has a terminal state; returns the states.
pub async fn wait_terminal(topic: &str, ids: &[String], limit: std::time::Duration) -> HashMap<String, serde_json::Value> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let states = latest_states(topic).await;
        let pending: Vec<&String> = ids
            .iter()
            .filter(|id| !states.get(*id).is_some_and(|s| matches!(s["status"].as_str(), Some("COMPLETED" | "REJECTED" | "COMPENSATED"))))
            .collect();
        if pending.is_empty() {
            return states;
        }
        assert!(std::time::Instant::now() < deadline, "{} orders not finished, e.g. {:?}: {:?}", pending.len(), pending.first(), pending.first().and_then(|p| states.get(*p)));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
