//! Several processors in one `hub process`: the topology's second `[[processor]]`
//! (`tests/fixtures/second-processor.toml`, the order saga again on `orders-b.*` with other
//! parameters) runs next to the first, each exactly-once with its own group, transactional id,
//! state topic and metrics; neither sees the other's orders, and Confluent's Python consumer
//! reads both state topics.

mod common;

use common::edge::{provision, test_topology};
use common::orders::{assert_exactly_once_on, counts, delivered};
use common::process::{produce_orders, publish_inventory, upstream_order, FakeErp, Processor};
use common::unique_prefix;

fn orders(prefix: &str, flow: &str, n: usize) -> Vec<(String, serde_json::Value)> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{flow}-{i}");
            (id.clone(), upstream_order(&id, &format!("{flow}-{i}"), "SKU-A", 1))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processors_in_one_process_each_complete_their_own_orders_exactly_once() {
    let topology = test_topology();
    let fixture =
        std::fs::read_to_string(common::repo().join("tests/fixtures/second-processor.toml")).expect("fixture");
    let text = std::fs::read_to_string(&topology.path).expect("read");
    std::fs::write(&topology.path, format!("{text}\n{fixture}")).expect("write");
    let prefix = unique_prefix("many");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000_000), ("SKU-B", 1_000_000)]).await;
    let erp_a = FakeErp::start(&t("orders.commands"), &t("orders.results"), delivered);
    let erp_b = FakeErp::start(&t("orders-b.commands"), &t("orders-b.results"), delivered);
    // Ready only when both processors have their partitions and the lookup table.
    let processor = Processor::start(&topology, &prefix, "m", &[]);
    let log = processor.log_text();
    for (name, group) in [("order-saga", t("order-saga")), ("order-saga-b", t("order-saga-b"))] {
        let starting = log
            .lines()
            .find(|l| l.contains("processor starting") && l.contains(&format!("\"processor\":\"{name}\"")))
            .unwrap_or_else(|| panic!("{name} did not start:\n{log}"));
        assert!(starting.contains(&format!("\"transactional_id\":\"{group}-m\"")), "{starting}");
    }

    let a = orders(&prefix, "A", 20);
    let b = orders(&prefix, "B", 20);
    produce_orders(&t("orders.inbound"), &a).await;
    produce_orders(&t("orders-b.inbound"), &b).await;
    let ids = |orders: &[(String, serde_json::Value)]| orders.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    let (a_ids, b_ids) = (ids(&a), ids(&b));
    let a_states = assert_exactly_once_on(&prefix, "orders", &a_ids).await;
    let b_states = assert_exactly_once_on(&prefix, "orders-b", &b_ids).await;
    erp_a.stop().await;
    erp_b.stop().await;

    // Each processor applied its own parameters: 269.90 is under order-saga's 500.00 discount
    // floor and over order-saga-b's 100.00 (10% off).
    assert!(a_states.values().all(|s| s["discount"] == "0.00" && s["total"] == "269.90"), "{a_states:?}");
    assert!(b_states.values().all(|s| s["discount"] == "26.99" && s["total"] == "242.91"), "{b_states:?}");
    // Neither processor wrote the other's orders.
    let a_keys = counts(&t("orders.commands"), "read_uncommitted");
    let b_keys = counts(&t("orders-b.commands"), "read_uncommitted");
    assert!(a_keys.keys().all(|(id, _)| a_ids.contains(id)), "orders.commands holds only flow A: {a_keys:?}");
    assert!(b_keys.keys().all(|(id, _)| b_ids.contains(id)), "orders-b.commands holds only flow B: {b_keys:?}");
    for (name, expected) in [("order-saga", 20.0), ("order-saga-b", 20.0)] {
        let labels = format!("processor=\"{name}\"");
        assert_eq!(processor.metric_labelled("hub_processor_states", &labels), Some(expected), "{name}");
    }

    // A data team reads both state topics with Confluent's consumer and stock Avro deserializer.
    for (topic, states) in [(t("orders.state"), &a_states), (t("orders-b.state"), &b_states)] {
        let ours = common::kafka::read_all(&topic, "read_committed");
        let records = common::python::consume(&topic, ours.len()).await;
        for (id, state) in states {
            let last = records.iter().rfind(|r| r["key"] == id.as_str()).unwrap_or_else(|| panic!("{topic}: {id}"));
            assert_eq!(&last["value"], state, "{topic}: {id}");
        }
    }
}
