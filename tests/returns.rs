//! The returns flow of the reference topology, built from files only: its contracts
//! (`schemas/return_*.avsc`, `inspection_result`, `refund_command`), its topology entries (topics,
//! the `/api/v1/returns` route, the `return-saga` processor of kind `declared`, two HTTP sinks, the
//! `payflow` partner) and its machine (`machines/return_saga.toml`): no Rust code of its own. It
//! runs in the same `hub run` as the order flow, against real HTTP partners; the warehouse's
//! verdicts come from Confluent's Python producer with its stock Avro serializer.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::edge::SHOP_WEBHOOK_SECRET;
use common::pipeline::{partner, Behaviour, Calls, Options, Pipeline, SIGNING_SECRET};
use common::{avro, kafka, unique_prefix};
use rdkafka::Message;

/// The latest state of every return on `topic` (read_committed), decoded as a data team would.
async fn return_states(topic: &str) -> HashMap<String, serde_json::Value> {
    let decoder = avro::decoder();
    let mut latest = HashMap::new();
    for record in kafka::read_all(topic, "read_committed") {
        let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
        if let Some(payload) = record.payload() {
            let (name, json) = avro::decode(&decoder, payload, "return_state").await;
            assert_eq!(name, "io.interchange.returns.ReturnState");
            latest.insert(key, json);
        }
    }
    latest
}

/// Waits until every return of `expected` has its status; returns the states.
async fn wait_statuses(pipeline: &Pipeline, expected: &[(&str, &str)]) -> HashMap<String, serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let states = return_states(&pipeline.topic("returns.state")).await;
        let pending: Vec<_> = expected
            .iter()
            .filter(|(id, status)| states.get(*id).map(|s| &s["status"]) != Some(&(*status).into()))
            .collect();
        if pending.is_empty() {
            return states;
        }
        assert!(Instant::now() < deadline, "returns not where expected: {pending:?}\n{states:#?}\n{}", pipeline.logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn request(return_id: &str, amount: &str) -> serde_json::Value {
    let reason = if return_id == "FORGOTTEN" { "forgotten" } else { "too small" };
    serde_json::json!({"return_id": return_id, "order_id": format!("O-{return_id}"), "amount": amount, "currency": "EUR",
                       "reason": reason})
}

/// An inspection verdict as the warehouse's system produces it: Confluent's Python producer, the
/// contract registered by the hub, keyed by the return's correlation id.
fn verdict(topic: &str, key: &str, return_id: &str, verdict: &str, event_id: &str) -> serde_json::Value {
    let schema = std::fs::read_to_string(common::repo().join("schemas/inspection_result.avsc")).expect("contract");
    let value = serde_json::json!({"event_id": event_id, "correlation_id": key, "return_id": return_id,
        "verdict": verdict, "note": format!("{verdict} by the test"), "inspected_at": "2026-12-01T10:00:00.000Z"});
    serde_json::json!({"topic": topic, "key": key, "schema": schema, "value": value, "register": false,
        "headers": {"correlation-id": key, "event-id": event_id, "event-type": "inspection_result",
                    "producer-role": "warehouse"}})
}

/// Waits until `calls` holds `n` calls (no more are awaited).
async fn wait_for(calls: &Calls, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while calls.lock().expect("lock").len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_return_flow_runs_beside_the_orders_from_files_only() {
    let (payflow_url, payflow) = partner(Behaviour::Answer).await;
    let (shop_url, shop) = partner(Behaviour::Answer).await;
    let (erp_url, erp) = partner(Behaviour::Answer).await;
    let prefix = unique_prefix("returns");
    let payflow_edit = format!("base_url = \"{payflow_url}\"");
    let mut options = Options::new(&erp_url, &shop_url);
    let edits = [("base_url = \"http://127.0.0.1:18085\"", payflow_edit.as_str())];
    options.edits = &edits;
    // A return whose reason is "forgotten" waits 3 s instead of 14 days for its inspection: a
    // copy of the first transition, placed before it, with that guard and timer (the others keep
    // 14 days, so no verdict races their timer).
    let machine = std::fs::read_to_string(common::repo().join("machines/return_saga.toml")).expect("machine");
    let start = machine.find("[[transition]]").expect("a transition");
    let end = start + 1 + machine[start + 1..].find("[[transition]]").expect("a second transition");
    let first = &machine[start..end];
    let quick = first
        .replace("when = \"event.amount > 0\"", "when = \"event.amount > 0 and event.reason == 'forgotten'\"")
        .replace("timer = \"14d\"", "timer = \"3s\"");
    assert_ne!(quick, first, "the edit applies");
    let quick_first = format!("{quick}{first}");
    let machine_edits = [(first, quick_first.as_str())];
    options.machine_edits = &machine_edits;
    options.more_sinks = &["refund-dispatch", "return-notify"];
    let stock: Vec<(String, i64)> = (100..106).map(|n| (format!("SKU-00{n}"), 1_000)).collect();
    let stock: Vec<(&str, i64)> = stock.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    let pipeline = Pipeline::start(&prefix, &options, &stock).await;
    let shop_credentials = (common::edge::SHOP_KEY, SHOP_WEBHOOK_SECRET);

    // Four returns through the edge, and one order beside them.
    let mut keys = HashMap::new();
    for (id, amount) in [("APPROVED", "40.00"), ("DECLINED", "15.50"), ("NOTHING", "0.00"), ("FORGOTTEN", "9.99")] {
        let correlation = format!("{prefix}{id}");
        let (status, answer, _) =
            pipeline.post_to("/api/v1/returns", shop_credentials, &request(id, amount), &correlation, None).await;
        assert_eq!(status, 202, "{answer}");
        keys.insert(id, answer["correlation_id"].as_str().expect("correlation id").to_owned());
    }
    let order = pipeline.post_orders("ORDER", 1).await;
    let key = |id: &str| keys[id].clone();
    wait_statuses(
        &pipeline,
        &[(&key("APPROVED"), "INSPECTING"), (&key("DECLINED"), "INSPECTING"), (&key("NOTHING"), "DECLINED")],
    )
    .await;

    // The warehouse's verdicts, one of them sent twice, and one for a return no one asked for.
    let inspections = pipeline.topic("returns.inspections");
    let approved_event = uuid::Uuid::new_v4().to_string();
    let stranger = format!("acme-shop:{prefix}STRANGER");
    let requests = vec![
        verdict(&inspections, &key("APPROVED"), "APPROVED", "APPROVED", &approved_event),
        verdict(&inspections, &key("APPROVED"), "APPROVED", "APPROVED", &approved_event),
        verdict(&inspections, &key("DECLINED"), "DECLINED", "DECLINED", &uuid::Uuid::new_v4().to_string()),
        verdict(&inspections, &stranger, "STRANGER", "APPROVED", &uuid::Uuid::new_v4().to_string()),
    ];
    assert_eq!(common::python::run_async("produce", requests).await.len(), 4);

    let states = wait_statuses(
        &pipeline,
        &[
            (&key("APPROVED"), "REFUNDED"),
            (&key("DECLINED"), "DECLINED"),
            (&key("NOTHING"), "DECLINED"),
            (&key("FORGOTTEN"), "EXPIRED"),
        ],
    )
    .await;
    assert!(!states.contains_key(&stranger), "a verdict for no return starts nothing");

    // payflow got exactly one refund: the approved return's, with its bearer token and amount.
    wait_for(&payflow, 1).await;
    let refunds = payflow.lock().expect("lock").clone();
    assert_eq!(refunds.len(), 1, "one refund, the repeated verdict changed nothing: {refunds:?}");
    let refund: serde_json::Value = serde_json::from_slice(&refunds[0].body).expect("JSON");
    let approved = &states[&key("APPROVED")];
    assert_eq!(refunds[0].path, "/v1/refunds");
    assert_eq!(refunds[0].headers["authorization"], format!("Bearer {}", common::PAYFLOW_TOKEN).as_str());
    assert_eq!(refunds[0].headers["idempotency-key"], approved["refund_command_id"].as_str().expect("refund id"));
    assert_eq!(
        (&refund["amount"], &refund["currency"], &refund["return_id"], &refund["shop"]),
        (&"40.00".into(), &"EUR".into(), &"APPROVED".into(), &"acme-shop".into())
    );
    assert_eq!(approved["refund_reference"], "ERP-1", "the partner's reference is kept: {approved}");
    assert_eq!((approved["amount"].as_str(), approved["version"].as_i64()), (Some("40.00"), Some(3)));

    // The shop heard how each return ended, once each, signed; and its order completed.
    wait_for(&shop, 5).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut heard: HashMap<String, Vec<String>> = HashMap::new();
    let calls = shop.lock().expect("lock").clone();
    for call in &calls {
        // As the shop would check it: with the Standard Webhooks reference library.
        let verified = common::python::verify_webhook(SIGNING_SECRET, &call.body, &call.headers)
            .unwrap_or_else(|why| panic!("standardwebhooks (PyPI) refused the signature: {why}"));
        let body: serde_json::Value = serde_json::from_slice(&call.body).expect("JSON");
        assert_eq!(verified, body, "the verified payload is the body");
        let kind = body["type"].as_str().expect("type").to_owned();
        let id = body["return_id"].as_str().or(body["order_id"].as_str()).expect("id").to_owned();
        heard.entry(id).or_default().push(kind);
    }
    let expected: HashMap<String, Vec<String>> = [
        ("APPROVED", "return.refunded"),
        ("DECLINED", "return.declined"),
        ("NOTHING", "return.declined"),
        ("FORGOTTEN", "return.expired"),
        ("ORDER-0", "order.completed"),
    ]
    .iter()
    .map(|(id, kind)| ((*id).to_owned(), vec![(*kind).to_owned()]))
    .collect();
    assert_eq!(heard, expected, "{calls:?}");
    assert_eq!(erp.lock().expect("lock").len(), 1, "the order's dispatch");
    assert_eq!(order.len(), 1);

    // Read_committed: one refund and four notifications, nothing twice; the stranger's verdict is
    // a dead letter naming where it was read.
    let commands = common::orders::counts(&pipeline.topic("returns.commands"), "read_committed");
    let total: usize = commands.values().sum();
    assert_eq!(total, 5, "{commands:?}");
    assert_eq!(commands.get(&(key("APPROVED"), "refund_command".to_owned())), Some(&1));
    let letters = kafka::read_all(&pipeline.topic("returns.dlq"), "read_committed");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let decoder = avro::decoder();
    let (_, letter) = avro::decode(&decoder, letters[0].payload().expect("value"), "dead_letter").await;
    assert_eq!(letter["source_topic"], inspections.as_str(), "{letter}");
    assert!(letter["error"].as_str().is_some_and(|r| r.contains("never seen")), "{letter}");

    // A data team reads returns.state with Confluent's consumer and stock Avro deserializer.
    let topic = pipeline.topic("returns.state");
    let ours = kafka::read_all(&topic, "read_committed");
    let records = common::python::consume(&topic, ours.len()).await;
    for (key, state) in &states {
        let last = records.iter().rfind(|r| &r["key"] == key).unwrap_or_else(|| panic!("{key}"));
        assert_eq!(&last["value"], state, "{key}");
    }
}
