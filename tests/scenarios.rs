//! The e-commerce flow's unhappy paths end to end, on the real stack with real HTTP partners:
//! out of stock, duplicate webhooks, a poison record from upstream, an ERP down for a while, an
//! ERP that never answers, and the roles as three separate processes. Each scenario counts
//! exactly: orders accepted = orders in a terminal state, ERP calls per order after
//! de-duplication by Idempotency-Key = 1, notifications per order = 1.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::orders::{counts, latest_states, wait_terminal};
use common::pipeline::{erp_calls, notifications, order_without_callback, partner, wait_calls, Behaviour, Options};
use common::pipeline::{Calls, Pipeline};
use common::process::{produce_orders, upstream_order};
use common::unique_prefix;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Stock for the reference order (SKU-00100..SKU-00105), the upstream order (SKU-A, SKU-B) and a
/// short SKU.
const STOCK: &[(&str, i64)] = &[
    ("SKU-00100", 1_000_000),
    ("SKU-00101", 1_000_000),
    ("SKU-00102", 1_000_000),
    ("SKU-00103", 1_000_000),
    ("SKU-00104", 1_000_000),
    ("SKU-00105", 1_000_000),
    ("SKU-A", 1_000_000),
    ("SKU-B", 1_000_000),
    ("SKU-SHORT", 2),
];

const LIMIT: Duration = Duration::from_secs(150);

/// Exact counts over a finished scenario: every accepted order is in a terminal state and no
/// other order exists; `dispatched` orders reached the ERP under exactly one Idempotency-Key
/// (with `successes` 2xx answers), the others never; every accepted order was notified exactly
/// once with `kind(id)`.
async fn assert_exact(
    pipeline: &Pipeline,
    accepted: &[String],
    (dispatched, successes): (&[String], usize),
    erp: &Calls,
    shop: &Calls,
    kind: impl Fn(&str) -> &'static str,
) -> HashMap<String, serde_json::Value> {
    let states = wait_terminal(&pipeline.topic("orders.state"), accepted, LIMIT).await;
    let all: BTreeSet<&String> = states.keys().collect();
    assert_eq!(all, accepted.iter().collect(), "orders in the state topic = orders accepted");
    wait_calls(shop, accepted.len(), Duration::from_secs(60)).await;
    // Room for a duplicate to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per_order = erp_calls(erp);
    assert_eq!(
        per_order.keys().collect::<BTreeSet<_>>(),
        dispatched.iter().collect(),
        "the ERP saw exactly the dispatched orders"
    );
    for (id, (calls, keys, ok)) in &per_order {
        assert_eq!(
            (*keys, *ok),
            (1, successes),
            "{id}: {calls} ERP calls under {keys} Idempotency-Keys, {ok} answered 2xx"
        );
    }
    let notes = notifications(shop);
    assert_eq!(notes.keys().collect::<BTreeSet<_>>(), accepted.iter().collect(), "every order notified");
    for (id, (deliveries, ids, types)) in &notes {
        assert_eq!((*deliveries, *ids), (1, 1), "{id}: notified {deliveries} times under {ids} webhook ids");
        assert_eq!(types, &vec![kind(id).to_owned()], "{id}");
    }
    states
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_stock_duplicate_webhooks_and_a_poison_record_leave_exactly_one_outcome_per_order() {
    let (erp_url, erp) = partner(Behaviour::Answer).await;
    let (shop_url, shop) = partner(Behaviour::Answer).await;
    let prefix = unique_prefix("scenario");
    let pipeline = Pipeline::start(&prefix, &Options::new(&erp_url, &shop_url), STOCK).await;

    // A poison record produced upstream straight to the inbound topic, ahead of everything.
    let poison_key = format!("{prefix}POISON-0");
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let headers = OwnedHeaders::new()
        .insert(Header { key: "event-type", value: Some("order_received") })
        .insert(Header { key: "correlation-id", value: Some(poison_key.as_str()) });
    producer
        .send(
            FutureRecord::to(&pipeline.topic("orders.inbound"))
                .key(&poison_key)
                .payload(b"{\"not\": \"avro\"}".as_slice())
                .headers(headers),
            Duration::from_secs(30),
        )
        .await
        .expect("poison produced");

    let mut accepted = pipeline.post_orders("OK", 6).await;
    let mut short = Vec::new();
    for i in 0..3 {
        let id = format!("{prefix}SHORT-{i}");
        let mut body = order_without_callback(&format!("SHORT-{i}"));
        body["items"] = serde_json::json!([{ "sku": "SKU-SHORT", "quantity": 5, "unit_price": "10.00" }]);
        assert_eq!(pipeline.post(&body, &id, None).await.0, 202);
        short.push(format!("acme-shop:{id}"));
    }
    // The same webhook twice with one Idempotency-Key (a client retrying): one order.
    let mut duplicated = Vec::new();
    for i in 0..3 {
        let (first, second) = (format!("{prefix}DUP-{i}"), format!("{prefix}DUP-{i}-again"));
        let body = order_without_callback(&format!("DUP-{i}"));
        let key = format!("{prefix}dup-key-{i}");
        let (status, answer, replayed) = pipeline.post(&body, &first, Some(&key)).await;
        assert_eq!((status, replayed), (202, false), "{answer}");
        let (status, answer, replayed) = pipeline.post(&body, &second, Some(&key)).await;
        assert_eq!((status, replayed), (202, true), "{answer}");
        let first = format!("acme-shop:{first}");
        assert_eq!(answer["correlation_id"], first.as_str(), "the replay names the first order");
        duplicated.push(first);
    }
    let upstream: Vec<(String, serde_json::Value)> = (0..2)
        .map(|i| {
            let id = format!("{prefix}UP-{i}");
            (id.clone(), upstream_order(&id, &format!("UP-{i}"), "SKU-A", 1))
        })
        .collect();
    produce_orders(&pipeline.topic("orders.inbound"), &upstream).await;

    let mut dispatched = accepted.clone();
    dispatched.extend(duplicated.iter().cloned());
    dispatched.extend(upstream.iter().map(|(id, _)| id.clone()));
    accepted = dispatched.clone();
    accepted.extend(short.iter().cloned());
    let kind = |id: &str| if id.contains("SHORT-") { "order.rejected" } else { "order.completed" };
    let states = assert_exact(&pipeline, &accepted, (&dispatched, 1), &erp, &shop, kind).await;
    for id in &short {
        assert_eq!(states[id]["status"], "REJECTED", "{id}: {}", states[id]);
        assert!(states[id]["failure_reason"].as_str().is_some_and(|r| r.contains("SKU-SHORT")), "{}", states[id]);
    }
    for id in &dispatched {
        assert_eq!(states[id]["status"], "COMPLETED", "{id}: {}", states[id]);
    }

    let dead = common::kafka::read_all(&pipeline.topic("orders.dlq"), "read_committed");
    assert_eq!(dead.len(), 1, "one dead letter: the poison record");
    let header = |name: &str| {
        dead[0].headers().and_then(|h| {
            h.iter().find(|x| x.key == name).and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned())
        })
    };
    assert_eq!(dead[0].key(), Some(poison_key.as_bytes()));
    assert_eq!(header("hub-error-class").as_deref(), Some("PERMANENT"));
    assert_eq!(header("hub-source-topic"), Some(pipeline.topic("orders.inbound")));
    assert!(header("hub-error-stage").is_some_and(|s| s.starts_with("processor:")), "{:?}", header("hub-error-stage"));
    assert!(header("hub-error-message").is_some_and(|m| !m.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erp_down_for_a_while_opens_the_breaker_and_every_order_completes_after_it_recovers() {
    let (erp_url, erp) = partner(Behaviour::DownFor(Duration::from_secs(4))).await;
    let (shop_url, shop) = partner(Behaviour::Answer).await;
    let prefix = unique_prefix("erp-down");
    let mut options = Options::new(&erp_url, &shop_url);
    options.erp_retry = r#"{ initial_backoff = "200ms", max_backoff = "1s", max_attempts = 60 }"#;
    let pipeline = Pipeline::start(&prefix, &options, STOCK).await;
    let accepted = pipeline.post_orders("DOWN", 12).await;
    let states = assert_exact(&pipeline, &accepted, (&accepted, 1), &erp, &shop, |_| "order.completed").await;
    for id in &accepted {
        assert_eq!(states[id]["status"], "COMPLETED", "{id}: {}", states[id]);
    }
    let calls = erp.lock().expect("lock").clone();
    let refused = calls.iter().filter(|c| c.status == 503).count();
    // Orders that met the outage were retried; once the breaker opened the rest waited instead
    // of calling.
    assert!(refused >= 1, "the outage was met");
    assert!(erp_calls(&erp).values().any(|(calls, _, _)| *calls > 1), "a refused dispatch was retried");
    assert_eq!(calls.len() - refused, accepted.len(), "after recovery, one successful call per order");
    let metrics = pipeline.sink_metrics();
    let opened = metrics
        .lines()
        .filter(|l| {
            l.starts_with("hub_sink_breaker_transitions_total") && l.contains("acme-erp") && l.contains("\"open\"")
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>();
    assert!(opened >= 1.0, "the ERP's breaker opened during the outage:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erp_that_never_answers_lets_the_deadline_compensate_each_order_once() {
    let (erp_url, erp) = partner(Behaviour::Hang).await;
    let (shop_url, shop) = partner(Behaviour::Answer).await;
    let prefix = unique_prefix("erp-hang");
    let mut options = Options::new(&erp_url, &shop_url);
    options.deadline = "2s";
    options.erp_timeout = "3s";
    options.erp_retry = r#"{ initial_backoff = "50ms", max_backoff = "100ms", max_attempts = 2 }"#;
    let pipeline = Pipeline::start(&prefix, &options, STOCK).await;
    let accepted = pipeline.post_orders("HANG", 4).await;
    // The sink gives up after two timed-out attempts per order, after the deadline fired: its
    // late results must change nothing.
    wait_calls(&erp, 2 * accepted.len(), Duration::from_secs(60)).await;
    let dead_letters = |pipeline: &Pipeline| common::kafka::read_all(&pipeline.topic("orders.dlq"), "read_committed");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while dead_letters(&pipeline).len() < accepted.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let states = assert_exact(&pipeline, &accepted, (&accepted, 0), &erp, &shop, |_| "order.failed").await;
    for id in &accepted {
        let state = &states[id];
        assert_eq!(state["status"], "COMPENSATED", "{id}: {state}");
        assert!(state["failure_reason"].as_str().is_some_and(|r| r.contains("no delivery result")), "{state}");
    }
    let erp_raw = erp_calls(&erp);
    assert!(erp_raw.values().all(|(calls, _, _)| *calls == 2), "two attempts per order: {erp_raw:?}");
    let commands = counts(&pipeline.topic("orders.commands"), "read_committed");
    for id in &accepted {
        for kind in ["dispatch_command", "stock_release_command", "notification_command"] {
            assert_eq!(commands.get(&(id.clone(), kind.to_owned())), Some(&1), "{id} {kind}");
        }
    }
    let dead = dead_letters(&pipeline);
    assert_eq!(dead.len(), accepted.len(), "one dead letter per dispatch the sink gave up on");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_roles_as_separate_processes_complete_every_order_and_a_data_team_reads_the_final_states() {
    let (erp_url, erp) = partner(Behaviour::Answer).await;
    let (shop_url, shop) = partner(Behaviour::Answer).await;
    let prefix = unique_prefix("separate");
    let mut options = Options::new(&erp_url, &shop_url);
    options.separate = true;
    let pipeline = Pipeline::start(&prefix, &options, STOCK).await;
    let mut accepted = pipeline.post_orders("SEP", 10).await;
    let upstream: Vec<(String, serde_json::Value)> = (0..2)
        .map(|i| {
            let id = format!("{prefix}UP-{i}");
            (id.clone(), upstream_order(&id, &format!("UP-{i}"), "SKU-B", 3))
        })
        .collect();
    produce_orders(&pipeline.topic("orders.inbound"), &upstream).await;
    accepted.extend(upstream.iter().map(|(id, _)| id.clone()));
    assert_exact(&pipeline, &accepted, (&accepted, 1), &erp, &shop, |_| "order.completed").await;
    // A data team's consumer: the compacted state topic, read_committed, decoded with a
    // Confluent-compatible Avro deserializer against the registry.
    let states = latest_states(&pipeline.topic("orders.state")).await;
    assert_eq!(states.len(), accepted.len());
    for id in &accepted {
        let state = &states[id];
        assert_eq!(state["status"], "COMPLETED", "{id}: {state}");
        assert_eq!(state["version"], 4, "{id}: each transition once: {state}");
        assert!(state["partner_reference"].as_str().is_some_and(|r| r.starts_with("ERP-")), "{state}");
        let steps: Vec<&str> =
            state["history"].as_array().expect("history").iter().filter_map(|h| h["to"].as_str()).collect();
        assert_eq!(steps, ["RECEIVED", "VALIDATED", "SENT_TO_PARTNER", "COMPLETED"], "{id}");
    }
}

/// An order as an upstream system publishes it with Confluent's Python client: `value` in the
/// contract's JSON shape, serialized by the stock `AvroSerializer` (shortest decimals).
fn python_produce(topic: &str, id: &str, schema: &str, value: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "topic": topic, "key": id, "schema": schema, "value": value, "register": false,
        "headers": { "correlation-id": id, "event-id": value["event_id"], "event-type": "order_received",
                     "producer-role": "upstream-python" },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_orders_from_confluents_python_client_complete_next_to_the_edges_orders() {
    let (erp_url, erp) = partner(Behaviour::Answer).await;
    let (shop_url, shop) = partner(Behaviour::Answer).await;
    let prefix = unique_prefix("python-upstream");
    let pipeline = Pipeline::start(&prefix, &Options::new(&erp_url, &shop_url), STOCK).await;
    let inbound = pipeline.topic("orders.inbound");
    let contract = std::fs::read_to_string(common::repo().join("schemas/order_received.avsc")).expect("contract");

    // A newer compatible version, as an upstream team would register it: a new optional field
    // and a new sales channel.
    let mut evolved: serde_json::Value = serde_json::from_str(&contract).expect("contract JSON");
    let fields = evolved["fields"].as_array_mut().expect("fields");
    for field in fields.iter_mut() {
        if field["name"] == "channel" {
            field["type"]["symbols"].as_array_mut().expect("symbols").push(serde_json::json!("KIOSK"));
        }
    }
    fields.push(serde_json::json!({"name": "loyalty_tier", "type": ["null", "string"], "default": null}));
    let evolved = evolved.to_string();
    let registered = common::python::run_async(
        "register",
        vec![serde_json::json!({"subject": format!("{inbound}-value"), "schema": evolved})],
    )
    .await;
    assert!(registered[0]["id"].as_u64().is_some(), "{registered:?}");

    let mut accepted = pipeline.post_orders("EDGE", 2).await;
    let prices = ["0.01", "250.00", "99999.99"];
    let mut requests = Vec::new();
    let mut sent = HashMap::new();
    for (i, price) in prices.iter().enumerate() {
        let id = format!("{prefix}PY-{i}");
        let mut order = upstream_order(&id, &format!("PY-{i}"), "SKU-A", 1);
        order["items"][0]["unit_price"] = serde_json::json!(price);
        order["received_at"] = serde_json::json!("2026-11-30T12:00:00.000Z");
        requests.push(python_produce(&inbound, &id, &contract, &order));
        sent.insert(id.clone(), order);
        accepted.push(id);
    }
    let id = format!("{prefix}PY-EVOLVED");
    let mut order = upstream_order(&id, "PY-EVOLVED", "SKU-A", 2);
    order["received_at"] = serde_json::json!("2026-11-30T12:00:00.000Z");
    order["channel"] = serde_json::json!("KIOSK");
    order["loyalty_tier"] = serde_json::json!("gold");
    requests.push(python_produce(&inbound, &id, &evolved, &order));
    sent.insert(id.clone(), order);
    accepted.push(id);
    let produced = common::python::run_async("produce", requests).await;
    assert_eq!(produced.len(), sent.len(), "{produced:?}");

    // A record naming a schema id the registry does not hold: a dead letter that names it.
    let unknown_key = format!("{prefix}PY-UNKNOWN-ID");
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let headers = OwnedHeaders::new()
        .insert(Header { key: "event-type", value: Some("order_received") })
        .insert(Header { key: "correlation-id", value: Some(unknown_key.as_str()) });
    producer
        .send(
            FutureRecord::to(&inbound)
                .key(&unknown_key)
                .payload([0_u8, 0x7f, 0xff, 0xff, 0x01, 2, 0].as_slice())
                .headers(headers),
            Duration::from_secs(30),
        )
        .await
        .expect("record produced");

    let states = assert_exact(&pipeline, &accepted, (&accepted, 1), &erp, &shop, |_| "order.completed").await;
    for (id, order) in &sent {
        let state = &states[id];
        assert_eq!(state["status"], "COMPLETED", "{id}: {state}");
        assert_eq!(state["items"][0]["unit_price"], order["items"][0]["unit_price"], "{id}: the price exactly");
        assert_eq!(state["items"][1]["unit_price"], "19.90", "{id}");
    }
    let dead = common::kafka::read_all(&pipeline.topic("orders.dlq"), "read_committed");
    assert_eq!(dead.len(), 1, "one dead letter: the record with an unknown schema id");
    let message = dead[0].headers().and_then(|h| {
        h.iter()
            .find(|x| x.key == "hub-error-message")
            .and_then(|x| x.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    });
    assert_eq!(dead[0].key(), Some(unknown_key.as_bytes()));
    assert!(message.as_deref().is_some_and(|m| m.contains("schema id 2147483393")), "{message:?}");

    // Confluent's Python consumer and stock AvroDeserializer read every record the roles wrote
    // (state, events, commands, results, dead letters), field for field as the hub reads them.
    let decoder = common::avro::decoder();
    for name in ["orders.state", "orders.events", "orders.commands", "orders.results", "orders.dlq"] {
        let topic = pipeline.topic(name);
        let ours = common::kafka::read_all(&topic, "read_committed");
        assert!(!ours.is_empty(), "{name}: records to read");
        let records = common::python::consume(&topic, ours.len()).await;
        for record in records {
            let (partition, offset) =
                (record["partition"].as_i64().expect("partition"), record["offset"].as_i64().expect("offset"));
            let message = ours
                .iter()
                .find(|m| i64::from(m.partition()) == partition && m.offset() == offset)
                .unwrap_or_else(|| panic!("{name}: {partition}@{offset} is not a committed record"));
            let contract = message
                .headers()
                .and_then(|h| h.iter().find(|x| x.key == "event-type").and_then(|x| x.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_else(|| "dead_letter".to_owned());
            let contract = if name == "orders.dlq" { "dead_letter".to_owned() } else { contract };
            let (_, json) = common::avro::decode(&decoder, message.payload().expect("value"), &contract).await;
            assert_eq!(record["value"], json, "{name} {partition}@{offset} ({contract})");
        }
    }
}
