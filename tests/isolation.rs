//! Per-record isolation on the real stack: no order can stop the hub. An order whose totals the
//! contracts cannot carry is refused at the edge and REJECTED by the processor; an order whose
//! output is over the broker's size limit becomes a dead letter; the other orders complete and
//! the processor keeps running.

mod common;

use std::time::Duration;

use common::edge::{now_unix, provision, signature_headers, test_topology, Edge, SHOP_KEY};
use common::orders::{counts, delivered, wait_terminal};
use common::process::{produce_orders, publish_inventory, upstream_order, FakeErp, Processor};
use common::{kafka, unique_prefix};
use rdkafka::message::{Headers, Message, OwnedMessage};

/// The order: each price fits decimal(18,2), the line total has 19 digits.
fn oversized_items() -> serde_json::Value {
    serde_json::json!([{ "sku": "SKU-1", "quantity": 2, "unit_price": "9999999999999999.99" }])
}

fn header(record: &OwnedMessage, name: &str) -> Option<String> {
    record.headers().and_then(|h| {
        h.iter().find(|x| x.key == name).and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

fn assert_running(processor: &mut Processor) {
    assert!(processor.child.try_wait().expect("wait").is_none(), "the processor exited:\n{}", processor.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_refuses_an_order_whose_totals_the_contract_cannot_carry() {
    let topology = test_topology();
    let prefix = unique_prefix("bigtotal-edge");
    provision(&topology, &prefix);
    let edge = Edge::start(&topology, &prefix, &[]);
    let mut order = common::edge::order("BIG-1");
    order["items"] = oversized_items();
    let body = serde_json::to_vec(&order).expect("json");
    let mut request = reqwest::Client::new()
        .post(edge.url("/api/v1/orders"))
        .header("content-type", "application/json")
        .header("x-api-key", SHOP_KEY)
        .body(body.clone());
    for (name, value) in signature_headers(&body, now_unix()) {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("edge answers");
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let problem: serde_json::Value = response.json().await.expect("json");
    assert_eq!(status, 422, "{problem}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(problem["type"], "https://interchange.dev/problems/contract-violation", "{problem}");
    let errors = problem["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{problem}");
    assert_eq!(errors[0]["pointer"], "/items/0/unit_price", "{problem}");
    assert!(errors[0]["detail"].as_str().is_some_and(|d| d.contains("19 digits")), "{problem}");
    assert_eq!(kafka::count(&format!("{prefix}orders.inbound")), 0, "nothing was produced");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_order_whose_totals_cannot_be_carried_is_rejected_and_the_hub_keeps_running() {
    let topology = test_topology();
    let prefix = unique_prefix("bigtotal");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-1", 100), ("SKU-A", 1_000), ("SKU-B", 1_000)]).await;
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), delivered);
    let mut processor = Processor::start(&topology, &prefix, "big1", &[]);

    let big_id = format!("{prefix}BIG");
    let mut big = upstream_order(&big_id, "BIG", "SKU-1", 1);
    big["items"] = oversized_items();
    // The oversized order first, then others on every partition.
    produce_orders(&t("orders.inbound"), &[(big_id.clone(), big)]).await;
    let others: Vec<(String, serde_json::Value)> = (0..12)
        .map(|i| format!("{prefix}OK-{i}"))
        .map(|id| (id.clone(), upstream_order(&id, "OK", "SKU-A", 1)))
        .collect();
    produce_orders(&t("orders.inbound"), &others).await;

    let mut ids: Vec<String> = others.iter().map(|(id, _)| id.clone()).collect();
    ids.push(big_id.clone());
    let states = wait_terminal(&t("orders.state"), &ids, Duration::from_secs(90)).await;
    assert_running(&mut processor);
    let rejected = &states[&big_id];
    assert_eq!(rejected["status"], "REJECTED", "{rejected}");
    let reason = rejected["failure_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("subtotal 19999999999999999.98 has 19 digits"), "{rejected}");
    for (id, _) in &others {
        assert_eq!(states[id]["status"], "COMPLETED", "{id}: {}", states[id]);
    }
    let commands = counts(&t("orders.commands"), "read_committed");
    let n = |kind: &str| commands.get(&(big_id.clone(), kind.to_owned())).copied().unwrap_or(0);
    assert_eq!((n("notification_command"), n("dispatch_command")), (1, 0), "notified once, never dispatched");
    let events = counts(&t("orders.events"), "read_committed");
    assert_eq!(events.get(&(big_id.clone(), "order_rejected".to_owned())), Some(&1));
    assert!(kafka::read_all(&t("orders.dlq"), "read_committed").is_empty(), "nothing dead-lettered");
    erp.stop().await;
}

/// A deterministic generator of prices and quantities that lz4 cannot squeeze.
fn noisy_lines(n: usize) -> serde_json::Value {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let lines: Vec<serde_json::Value> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let cents = x % 100_000_000;
            serde_json::json!({ "sku": "SKU-A", "quantity": 1 + (x >> 40) % 9, "unit_price": format!("{}.{:02}", cents / 100, cents % 100) })
        })
        .collect();
    serde_json::Value::Array(lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_whose_output_is_over_the_brokers_size_limit_is_dead_lettered_and_others_complete() {
    over_the_size_limit(&[], true).await;
}

/// At least once, offsets commit only after the broker acknowledged every output: the refused
/// order is dead-lettered, not skipped (outputs of a redone batch may repeat).
#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_commits_only_what_the_broker_acknowledged() {
    over_the_size_limit(&["--mode", "at-least-once"], false).await;
}

async fn over_the_size_limit(args: &[&str], exactly_once: bool) {
    let topology = test_topology();
    let prefix = unique_prefix("toolarge");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    // The commands topic takes records up to 16 KB: a dispatch with 4000 lines does not fit.
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", common::bootstrap()).create().expect("admin");
    let commands = t("orders.commands");
    let alter = rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(&commands))
        .set("max.message.bytes", "16384")
        .set("min.insync.replicas", "1");
    let altered = admin.alter_configs(&[alter], &rdkafka::admin::AdminOptions::new()).await.expect("altered");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000_000_000), ("SKU-B", 1_000_000)]).await;
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), delivered);
    let mut processor = Processor::start(&topology, &prefix, "large1", args);

    let before: Vec<(String, serde_json::Value)> = (0..10)
        .map(|i| format!("{prefix}A-{i}"))
        .map(|id| (id.clone(), upstream_order(&id, "A", "SKU-A", 1)))
        .collect();
    let huge_id = format!("{prefix}HUGE");
    let mut huge = upstream_order(&huge_id, "HUGE", "SKU-A", 1);
    huge["items"] = noisy_lines(4_000);
    let after: Vec<(String, serde_json::Value)> = (0..10)
        .map(|i| format!("{prefix}B-{i}"))
        .map(|id| (id.clone(), upstream_order(&id, "B", "SKU-A", 1)))
        .collect();
    // In one go, so they share batches and transactions with the huge one.
    let mut all = before.clone();
    all.push((huge_id.clone(), huge));
    all.extend(after.iter().cloned());
    produce_orders(&t("orders.inbound"), &all).await;

    let ids: Vec<String> = before.iter().chain(&after).map(|(id, _)| id.clone()).collect();
    let states = wait_terminal(&t("orders.state"), &ids, Duration::from_secs(90)).await;
    for id in &ids {
        assert_eq!(states[id]["status"], "COMPLETED", "{id}: {}", states[id]);
    }
    // Exactly once, nothing of the refused order's outputs commits; at least once, there is no
    // transaction to take back what the broker took before the refusal.
    assert!(!exactly_once || !states.contains_key(&huge_id), "nothing of the huge order's outputs is committed");
    // The huge order may still be on its way to the dead-letter topic (processed alone, then
    // dead-lettered, in batches of its own).
    let limit = std::time::Instant::now() + Duration::from_secs(60);
    let mut dead = kafka::read_all(&t("orders.dlq"), "read_committed");
    while dead.is_empty() && std::time::Instant::now() < limit {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead = kafka::read_all(&t("orders.dlq"), "read_committed");
    }
    // At least once, the aborted attempt's dispatches were delivered (no transaction) and the
    // ERP may answer them before the redo commits the order: such results are dead-lettered as
    // results for an unknown order (the redo's own dispatch completes the order).
    let (mut dead, early): (Vec<_>, Vec<_>) = dead.into_iter().partition(|d| d.key() == Some(huge_id.as_bytes()));
    assert!(
        early.is_empty()
            || (!exactly_once
                && early.iter().all(|d| header(d, "hub-error-message")
                    .is_some_and(|m| m.contains("for an order this processor has never seen")))),
        "the huge order, and only it: {:?}",
        early.iter().map(|d| header(d, "hub-error-message")).collect::<Vec<_>>()
    );
    assert!(!dead.is_empty(), "the huge order is dead-lettered");
    assert!(dead.len() == 1 || !exactly_once, "one dead letter: {}", dead.len());
    dead.truncate(1);
    let (partition, offset) = {
        let inbound = kafka::read_all(&t("orders.inbound"), "read_committed");
        let record = inbound.iter().find(|r| r.key() == Some(huge_id.as_bytes())).expect("huge order on inbound");
        (record.partition(), record.offset())
    };
    assert_eq!(dead[0].key(), Some(huge_id.as_bytes()));
    assert_eq!(header(&dead[0], "hub-source-topic"), Some(t("orders.inbound")));
    assert_eq!(header(&dead[0], "hub-source-partition"), Some(partition.to_string()));
    assert_eq!(header(&dead[0], "hub-source-offset"), Some(offset.to_string()));
    let message = header(&dead[0], "hub-error-message").unwrap_or_default();
    assert!(message.contains("too large") || message.contains("TooLarge"), "{message}");
    let commands = counts(&t("orders.commands"), "read_committed");
    for id in &ids {
        let n = commands.get(&(id.clone(), "dispatch_command".to_owned())).copied().unwrap_or(0);
        assert!(n == 1 || (!exactly_once && n > 1), "{id}: {n} dispatches");
    }
    let huge_dispatches = commands.get(&(huge_id.clone(), "dispatch_command".to_owned())).copied().unwrap_or(0);
    assert_eq!(huge_dispatches, 0, "the huge order's dispatch never reached the broker");
    assert_running(&mut processor);
    erp.stop().await;
}
