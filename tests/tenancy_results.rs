//! Tenancy on the saga, against the real stack: a delivery result counts only when it answers the
//! command the saga sent (its command id, its command type AND the partner it was sent to); the
//! ERP is chosen per shop (`erp_partner_by_shop`); an order whose correlation id belongs to
//! another partner's order is dead-lettered naming both, the first order untouched.

mod common;

use std::time::{Duration, Instant};

use common::edge::provision;
use common::orders::{latest_states, wait_terminal};
use common::process::{produce_orders, publish_inventory, upstream_order, Processor};
use common::{avro, kafka, unique_prefix, TopologyCopy};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

/// The shipped topology with a second shop and a second ERP (added here only when the shipped
/// file does not declare them yet) and `globex-shop`'s orders sent to `globex-erp`.
fn tenancy_topology() -> TopologyCopy {
    let copy = TopologyCopy::new(&[]);
    let mut text = std::fs::read_to_string(&copy.path).expect("read copy");
    if !text.contains("\n[processor.params.erp_partner_by_shop]") {
        let anchor = "terminal_retention = \"7d\"\n";
        assert_eq!(text.matches(anchor).count(), 1, "the processor params end with terminal_retention");
        text = text.replacen(
            anchor,
            &format!("{anchor}\n[processor.params.erp_partner_by_shop]\n\"globex-shop\" = \"globex-erp\"\n"),
            1,
        );
    }
    if !text.contains("name = \"globex-shop\"") {
        text.push_str("\n[[partner]]\nname = \"globex-shop\"\ndoc = \"Test: a second shop.\"\n");
    }
    if !text.contains("name = \"globex-erp\"") {
        text.push_str(
            r#"
[[partner]]
name = "globex-erp"
doc = "Test: a second ERP."

[partner.outbound]
base_url = "http://127.0.0.1:18083"
path = "/orders"
rate_limit = { per_second = 500, burst = 200 }
"#,
        );
    }
    std::fs::write(&copy.path, text).expect("write copy");
    copy
}

fn header(record: &OwnedMessage, name: &str) -> Option<String> {
    record.headers().and_then(|h| {
        h.iter().find(|x| x.key == name).and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// An order of `shop` as an upstream producer publishes it.
fn order_of(shop: &str, correlation_id: &str, order_id: &str, event: &str) -> serde_json::Value {
    let mut order = upstream_order(correlation_id, order_id, "SKU-A", 1);
    order["partner"] = serde_json::json!(shop);
    order["event_id"] = serde_json::json!(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, event.as_bytes()).to_string());
    order
}

/// Waits until `done(states)` holds for the latest states (read_committed); returns them.
async fn wait_states(
    topic: &str,
    what: &str,
    done: impl Fn(&std::collections::HashMap<String, serde_json::Value>) -> bool,
) -> std::collections::HashMap<String, serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let states = latest_states(topic).await;
        if done(&states) {
            return states;
        }
        assert!(Instant::now() < deadline, "{what}: {states:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every committed dispatch command on the commands topic, decoded: (correlation id, command).
async fn dispatches(topic: &str) -> Vec<(String, serde_json::Value)> {
    let decoder = avro::decoder();
    let mut out = Vec::new();
    for record in kafka::read_all(topic, "read_committed") {
        if header(&record, "event-type").as_deref() != Some("dispatch_command") {
            continue;
        }
        let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
        let (_, json) = avro::decode(&decoder, record.payload().expect("payload"), "dispatch_command").await;
        out.push((key, json));
    }
    out
}

/// Waits until the dead-letter topic holds `n` committed records; returns them.
fn wait_dead_letters(topic: &str, n: usize) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let letters = kafka::read_all(topic, "read_committed");
        if letters.len() >= n {
            return letters;
        }
        assert!(Instant::now() < deadline, "{} dead letters, waited for {n}", letters.len());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Produces a delivery result as a sink would (any sink may write to the shared results topic);
/// returns its partition and offset.
async fn produce_result(topic: &str, result: &serde_json::Value) -> (i32, i64) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let bytes = avro::encode("delivery_result", topic, None, result).await;
    let correlation_id = result["correlation_id"].as_str().expect("correlation id").to_owned();
    let headers = OwnedHeaders::new()
        .insert(Header { key: "correlation-id", value: Some(correlation_id.as_str()) })
        .insert(Header { key: "event-id", value: result["event_id"].as_str() })
        .insert(Header { key: "event-type", value: Some("delivery_result") })
        .insert(Header { key: "producer-role", value: Some("sink") });
    let record = FutureRecord::to(topic).key(&correlation_id).payload(&bytes).headers(headers);
    let delivery = tokio::time::timeout(Duration::from_secs(60), producer.send(record, Duration::from_secs(30)))
        .await
        .expect("result produced within 60 s")
        .expect("result produced");
    (delivery.partition, delivery.offset)
}

fn result(command: &serde_json::Value, partner: &str, command_type: &str, outcome: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "command_id": command["command_id"],
        "correlation_id": command["correlation_id"],
        "partner": partner,
        "command_type": command_type,
        "outcome": outcome,
        "http_status": if outcome == "DELIVERED" { 201 } else { 422 },
        "partner_reference": if outcome == "DELIVERED" { Some(format!("{partner}-REF")) } else { None },
        "attempts": 1,
        "completed_at": 1_700_000_000_000_i64,
    })
}

/// The value of the sample of `name` whose labels contain `label` on the processor's /metrics.
fn metric(processor: &Processor, name: &str, label: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&processor.health).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", processor.health).ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_result_does_not_complete_an_order_and_the_real_one_does() {
    let topology = TopologyCopy::new(&[]);
    let prefix = unique_prefix("forged");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000), ("SKU-B", 1_000)]).await;
    let processor = Processor::start(&topology, &prefix, "forged1", &[]);

    let id = format!("{prefix}F-1");
    produce_orders(&t("orders.inbound"), &[(id.clone(), order_of("acme-shop", &id, "F-1", &id))]).await;
    wait_states(&t("orders.state"), "the order is validated", |s| {
        s.get(&id).is_some_and(|o| o["status"] == "VALIDATED")
    })
    .await;
    let sent = dispatches(&t("orders.commands")).await;
    let [(key, command)] = sent.as_slice() else { panic!("one dispatch: {sent:?}") };
    assert_eq!((key.as_str(), command["partner"].as_str()), (id.as_str(), Some("acme-erp")));

    // Right command id, wrong partner; right command id and partner, wrong command type; and a
    // forged failure from the shop itself. None of them is the ERP answering the dispatch.
    let forged = [
        (
            result(command, "globex-erp", "dispatch_command", "DELIVERED"),
            "result from partner globex-erp for a dispatch sent to acme-erp",
        ),
        (
            result(command, "acme-erp", "notification_command", "DELIVERED"),
            "a notification_command result names the order's dispatch_command",
        ),
        (
            result(command, "acme-shop", "dispatch_command", "REFUSED"),
            "result from partner acme-shop for a dispatch sent to acme-erp",
        ),
    ];
    let mut offsets = Vec::new();
    for (r, _) in &forged {
        offsets.push(produce_result(&t("orders.results"), r).await);
    }
    // Until the forged results are dead-lettered, or one of them moved the order on.
    let deadline = Instant::now() + Duration::from_secs(90);
    let letters = loop {
        let letters = kafka::read_all(&t("orders.dlq"), "read_committed");
        let states = latest_states(&t("orders.state")).await;
        assert_eq!(states[&id]["status"], "VALIDATED", "a forged result moved the order: {}", states[&id]);
        if letters.len() >= forged.len() {
            break letters;
        }
        assert!(Instant::now() < deadline, "{} dead letters, waited for {}", letters.len(), forged.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(letters.len(), forged.len(), "each forged result dead-lettered once");
    for ((_, cause), (partition, offset)) in forged.iter().zip(&offsets) {
        let letter = letters
            .iter()
            .find(|l| header(l, "hub-source-offset") == Some(offset.to_string()))
            .unwrap_or_else(|| panic!("no dead letter for offset {offset}"));
        assert_eq!(header(letter, "hub-source-topic"), Some(t("orders.results")));
        assert_eq!(header(letter, "hub-source-partition"), Some(partition.to_string()));
        assert_eq!(header(letter, "hub-error-class").as_deref(), Some("PERMANENT"));
        let message = header(letter, "hub-error-message").unwrap_or_default();
        assert!(message.contains(cause), "{message}");
        assert!(message.contains(&format!("correlation id {id}")), "{message}");
    }
    // The order still waits for its dispatch's result (the dead letters were committed with the
    // forged results' offsets, after them on the same partition).
    let states = latest_states(&t("orders.state")).await;
    assert_eq!(states[&id]["status"], "VALIDATED", "{}", states[&id]);
    assert_eq!(states[&id]["version"], 2, "{}", states[&id]);
    assert_eq!(states[&id]["dispatch_partner"], "acme-erp", "{}", states[&id]);
    assert_eq!(metric(&processor, "hub_processor_foreign_results_total", "mismatch=\"partner\""), Some(2.0));
    assert_eq!(metric(&processor, "hub_processor_foreign_results_total", "mismatch=\"command_type\""), Some(1.0));

    // The ERP's own answer completes it.
    produce_result(&t("orders.results"), &result(command, "acme-erp", "dispatch_command", "DELIVERED")).await;
    let states = wait_terminal(&t("orders.state"), std::slice::from_ref(&id), Duration::from_secs(90)).await;
    let done = &states[&id];
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["version"], 4, "{done}");
    assert_eq!(done["partner_reference"], "acme-erp-REF", "{done}");
    assert_eq!(kafka::read_all(&t("orders.dlq"), "read_committed").len(), forged.len(), "nothing else dead-lettered");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_shop_s_orders_go_to_its_erp_and_a_correlation_id_stays_with_its_partner() {
    let topology = tenancy_topology();
    let prefix = unique_prefix("pershop");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000), ("SKU-B", 1_000)]).await;
    let _processor = Processor::start(&topology, &prefix, "pershop1", &[]);

    let acme = format!("{prefix}A-1");
    let globex = format!("{prefix}G-1");
    produce_orders(
        &t("orders.inbound"),
        &[
            (acme.clone(), order_of("acme-shop", &acme, "A-1", &acme)),
            (globex.clone(), order_of("globex-shop", &globex, "G-1", &globex)),
        ],
    )
    .await;
    wait_states(&t("orders.state"), "both orders validated", |s| {
        [&acme, &globex].iter().all(|id| s.get(*id).is_some_and(|o| o["status"] == "VALIDATED"))
    })
    .await;
    let sent = dispatches(&t("orders.commands")).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    let to = |id: &str| sent.iter().find(|(k, _)| k == id).map(|(_, c)| c.clone()).expect("dispatched");
    assert_eq!(to(&acme)["partner"], "acme-erp");
    assert_eq!(to(&globex)["partner"], "globex-erp");

    // The default ERP answering globex-shop's dispatch is not globex-erp answering it.
    let offset =
        produce_result(&t("orders.results"), &result(&to(&globex), "acme-erp", "dispatch_command", "DELIVERED")).await;
    // globex-shop's order with acme-shop's correlation id: refused, acme-shop's order untouched.
    produce_orders(&t("orders.inbound"), &[(acme.clone(), order_of("globex-shop", &acme, "G-2", "collision"))]).await;
    let letters = wait_dead_letters(&t("orders.dlq"), 2);
    assert_eq!(letters.len(), 2);
    let forged = letters.iter().find(|l| header(l, "hub-source-topic") == Some(t("orders.results"))).expect("forged");
    assert_eq!(header(forged, "hub-source-offset"), Some(offset.1.to_string()));
    let message = header(forged, "hub-error-message").unwrap_or_default();
    assert!(message.contains("result from partner acme-erp for a dispatch sent to globex-erp"), "{message}");
    let collision =
        letters.iter().find(|l| header(l, "hub-source-topic") == Some(t("orders.inbound"))).expect("collision");
    let message = header(collision, "hub-error-message").unwrap_or_default();
    assert!(
        message.contains(&format!("correlation id {acme}"))
            && message.contains("partner acme-shop")
            && message.contains("globex-shop"),
        "{message}"
    );

    // Each ERP's own answer completes its shop's order.
    produce_result(&t("orders.results"), &result(&to(&globex), "globex-erp", "dispatch_command", "DELIVERED")).await;
    produce_result(&t("orders.results"), &result(&to(&acme), "acme-erp", "dispatch_command", "DELIVERED")).await;
    let states = wait_terminal(&t("orders.state"), &[acme.clone(), globex.clone()], Duration::from_secs(90)).await;
    for (id, shop, erp) in [(&acme, "acme-shop", "acme-erp"), (&globex, "globex-shop", "globex-erp")] {
        let s = &states[id];
        assert_eq!((s["status"].as_str(), s["version"].as_i64()), (Some("COMPLETED"), Some(4)), "{s}");
        assert_eq!((s["partner"].as_str(), s["dispatch_partner"].as_str()), (Some(shop), Some(erp)), "{s}");
        assert_eq!(s["partner_reference"], format!("{erp}-REF"), "{s}");
    }
    assert_eq!(states[&acme]["order_id"], "A-1", "the colliding order never touched acme-shop's");
    assert_eq!(dispatches(&t("orders.commands")).await.len(), 2, "the colliding order was not dispatched");
}
