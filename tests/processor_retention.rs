//! Bounded state: orders in a terminal state leave the store after `terminal_retention`, with a
//! tombstone on the state topic; a restarted processor restores only the live orders, and a late
//! repeat of a retired order's `order_received` is dead-lettered, not taken for a new order.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::edge::{provision, test_topology};
use common::orders::{counts, try_wait_until_terminal};
use common::process::{produce_orders, publish_inventory, upstream_order, FakeErp, Processor};
use common::{kafka, unique_prefix};
use rdkafka::message::{Headers, Message};

fn answer(order_id: &str) -> Option<&'static str> {
    if order_id.starts_with("LIVE") {
        None
    } else {
        Some("DELIVERED")
    }
}

/// The last record of each key on the state topic (read_committed): `true` for a tombstone.
fn last_is_tombstone(topic: &str) -> HashMap<String, bool> {
    kafka::read_all(topic, "read_committed")
        .iter()
        .map(|m| (String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(), m.payload().is_none()))
        .collect()
}

fn dead_letter_reasons(topic: &str) -> Vec<String> {
    kafka::read_all(topic, "read_committed")
        .iter()
        .map(|m| {
            m.headers()
                .and_then(|h| h.iter().find(|x| x.key == "hub-error-message").and_then(|x| x.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// Waits until the processor's `hub_processor_states` gauge reads `expected`.
fn wait_states(p: &Processor, expected: f64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let states = p.metric_labelled("hub_processor_states", "processor=\"order-saga\"");
        if states == Some(expected) {
            return;
        }
        assert!(Instant::now() < deadline, "hub_processor_states {states:?}, expected {expected}:\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_orders_are_tombstoned_after_the_retention_and_not_restored() {
    let topology = test_topology();
    let text = std::fs::read_to_string(&topology.path)
        .expect("read")
        .replace("terminal_retention = \"7d\"", "terminal_retention = \"1s\"");
    std::fs::write(&topology.path, text).expect("write");
    let prefix = unique_prefix("retain");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000_000), ("SKU-B", 1_000_000)]).await;
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), answer);
    let mut processor = Processor::start(&topology, &prefix, "r", &[]);

    let done: Vec<(String, serde_json::Value)> = (0..20)
        .map(|i| {
            let id = format!("{prefix}D-{i}");
            let order = upstream_order(&id, &format!("DONE-{i}"), "SKU-A", 1);
            (id, order)
        })
        .collect();
    let live: Vec<(String, serde_json::Value)> = (0..5)
        .map(|i| {
            let id = format!("{prefix}L-{i}");
            let order = upstream_order(&id, &format!("LIVE-{i}"), "SKU-A", 1);
            (id, order)
        })
        .collect();
    let done_ids: Vec<String> = done.iter().map(|(id, _)| id.clone()).collect();
    produce_orders(&t("orders.inbound"), &done).await;
    produce_orders(&t("orders.inbound"), &live).await;
    // Retired 1 s after finishing (the shortest allowed): a finished order may be tombstoned before it is read, so its
    // last state written is what counts.
    let states = try_wait_until_terminal(&t("orders.state"), &done_ids, Duration::from_secs(120), true)
        .await
        .unwrap_or_else(|e| panic!("{e}\nprocessor log:\n{}", processor.log_text()));
    assert!(done_ids.iter().all(|id| states[id]["status"] == "COMPLETED"));

    // Every finished order gets its tombstone (read_committed); the live ones keep their state.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = last_is_tombstone(&t("orders.state"));
        let retired = done_ids.iter().filter(|id| last.get(*id) == Some(&true)).count();
        if retired == done_ids.len() {
            assert!(live.iter().all(|(id, _)| last.get(id) == Some(&false)), "live orders kept: {last:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{retired} of {} finished orders tombstoned", done_ids.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_states(&processor, 5.0, Duration::from_secs(30));

    // A restarted processor restores the live orders only.
    processor.kill();
    let processor = Processor::start(&topology, &prefix, "r", &[]);
    wait_states(&processor, 5.0, Duration::from_secs(30));
    let log = processor.log_text();
    let restored = log
        .lines()
        .rfind(|l| l.contains("partitions assigned") && l.contains(common::process::ORDER_SAGA))
        .unwrap_or_default()
        .to_owned();
    let line: serde_json::Value = serde_json::from_str(&restored).expect("json log line");
    assert_eq!(line["states"], 5, "{restored}");

    // A late repeat of a retired order's order_received (same event id) is dead-lettered.
    produce_orders(&t("orders.inbound"), &done[..3]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let letters = loop {
        let letters = dead_letter_reasons(&t("orders.dlq"));
        if letters.len() >= 3 || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    erp.stop().await;
    assert_eq!(letters.len(), 3, "{letters:?}\n{}", processor.log_text());
    assert!(letters.iter().all(|l| l.contains("retired")), "{letters:?}");
    let commands = counts(&t("orders.commands"), "read_committed");
    for id in &done_ids {
        let dispatches = commands.get(&(id.clone(), "dispatch_command".to_owned())).copied().unwrap_or(0);
        assert_eq!(dispatches, 1, "{id} dispatched once");
    }
    let last = last_is_tombstone(&t("orders.state"));
    assert!(done_ids.iter().all(|id| last.get(id) == Some(&true)), "no retired order came back: {last:?}");
    assert_eq!(processor.metric_labelled("hub_processor_states", "processor=\"order-saga\""), Some(5.0));
}
