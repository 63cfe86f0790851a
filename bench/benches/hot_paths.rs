//! Criterion micro-benchmarks of the hot pure paths, each beside a baseline in its group so the
//! report reads as ratios: JSON to Avro and Confluent encoding (against parsing the JSON alone),
//! the saga's `apply` (against cloning the state it returns), the idempotency fingerprint
//! (against SHA-256 of the body alone) and webhook authentication (against one bare HMAC).
//!
//! `cargo bench -p hub-bench --bench hot_paths` measures; under `cargo test --all-targets` each benchmark
//! runs once as a smoke test.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hmac::{Hmac, Mac};
use interchange_core::avro::Encoder;
use interchange_core::contract::{json_to_avro, UnknownFields};
use interchange_core::topology::Topology;
use interchange_ingest::auth::{Authenticator, PartnerAuthConfig};
use interchange_processors::saga::{apply, DeliveryResult, Event, Millis, Money, Now, OrderReceived, Outcome, Params};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The edge's record for a ~1 KB order: the partner's JSON plus the envelope fields.
fn order_json() -> Value {
    let items: Vec<Value> = (0..13)
        .map(|i| json!({ "sku": format!("SKU-{:05}", 100 + i), "quantity": i + 1, "unit_price": format!("{}.{:02}", 10 + i * 7, i * 13 % 100) }))
        .collect();
    json!({
        "event_id": "0192f0c4-6c1e-7b7a-9d0e-3f5a1c2b4d6e",
        "correlation_id": "0192f0c4-6c1e-7b7a-9d0e-3f5a1c2b4d6f",
        "order_id": "BENCH-0000001",
        "partner": "acme-shop",
        "customer_id": "cust-000042",
        "items": items,
        "currency": "BRL",
        "channel": "WEB",
        "received_at": 1_700_000_000_000_i64,
        "attributes": { "campaign": "black-friday", "notes": "leave at the door, ring twice, the dog is friendly" },
    })
}

fn topology() -> Topology {
    // The workspace's reference topology, one level above this crate.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../topology.toml");
    match Topology::load(&path, "") {
        Ok(t) => t,
        Err(e) => panic!("topology.toml: {e}"),
    }
}

fn avro(c: &mut Criterion) {
    let topology = topology();
    let schema = topology.contracts.get("order_received").map(|c| c.schema.clone()).expect("contract order_received");
    let encoder = Encoder::new(schema.clone(), 1).expect("encoder");
    let body = serde_json::to_vec(&order_json()).expect("json");
    let mut group = c.benchmark_group("json_to_avro");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("baseline: serde_json parse", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&body)).expect("parse")));
    });
    group.bench_function("parse + convert", |b| {
        b.iter(|| {
            let json: Value = serde_json::from_slice(black_box(&body)).expect("parse");
            black_box(json_to_avro(&schema, &json, UnknownFields::Reject).expect("converts"))
        });
    });
    group.bench_function("parse + convert + Confluent encode", |b| {
        b.iter(|| {
            let json: Value = serde_json::from_slice(black_box(&body)).expect("parse");
            let value = json_to_avro(&schema, &json, UnknownFields::Reject).expect("converts");
            black_box(encoder.encode(value).expect("encodes"))
        });
    });
    group.bench_function("parse + direct Confluent encode (encode_json)", |b| {
        b.iter(|| {
            let json: Value = serde_json::from_slice(black_box(&body)).expect("parse");
            black_box(encoder.encode_json(&json, UnknownFields::Reject).expect("encodes"))
        });
    });
    group.finish();
}

fn saga(c: &mut Criterion) {
    let params = Params {
        erp_partner: "acme-erp".into(),
        erp_partner_by_shop: Default::default(),
        discount_percent: 5,
        discount_min_total: Money(50_000),
        dispatch_deadline_ms: 300_000,
        history_limit: 32,
        applied_limit: 64,
    };
    let order: OrderReceived = serde_json::from_value(order_json()).expect("order");
    let stock: HashMap<String, i64> = order.items.iter().map(|l| (l.sku.clone(), 1_000_000)).collect();
    let received = Event::Received(order.clone());
    let validated = match apply(None, &received, &order.event_id, Now::at(Millis(1_000)), &params, &stock) {
        Ok(Outcome::Changed(t)) => t.state,
        other => panic!("expected a transition, got {other:?}"),
    };
    let delivered = Event::Delivered(DeliveryResult {
        event_id: "r-1".into(),
        command_id: validated.dispatch_command_id.clone().expect("dispatched"),
        correlation_id: validated.correlation_id.clone(),
        partner: "acme-erp".into(),
        command_type: "dispatch_command".into(),
        outcome: "DELIVERED".into(),
        http_status: Some(201),
        partner_reference: Some("ERP-1".into()),
        attempts: 1,
        detail: None,
        completed_at: Millis(2_000),
    });
    let mut group = c.benchmark_group("saga_apply");
    group.bench_function("baseline: clone the state", |b| b.iter(|| black_box(black_box(&validated).clone())));
    group.bench_function("received -> validated (stock check, dispatch)", |b| {
        b.iter(|| black_box(apply(None, black_box(&received), "e-1", Now::at(Millis(1_000)), &params, &stock)));
    });
    group.bench_function("delivered -> completed (notification)", |b| {
        b.iter(|| {
            black_box(apply(Some(&validated), black_box(&delivered), "r-1", Now::at(Millis(2_000)), &params, &stock))
        });
    });
    group.bench_function("repeat of an applied event", |b| {
        b.iter(|| {
            black_box(apply(
                Some(&validated),
                black_box(&received),
                &order.event_id,
                Now::at(Millis(3_000)),
                &params,
                &stock,
            ))
        });
    });
    group.finish();
}

fn idempotency(c: &mut Criterion) {
    let body = serde_json::to_vec(&order_json()).expect("json");
    let mut group = c.benchmark_group("idempotency_fingerprint");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("baseline: SHA-256 of the body", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&body))));
    });
    group.bench_function("fingerprint (route + body, hex)", |b| {
        b.iter(|| black_box(interchange_ingest::idempotency::fingerprint("/api/v1/orders", black_box(&body))));
    });
    group.finish();
}

fn signature(c: &mut Criterion) {
    let body = serde_json::to_vec(&order_json()).expect("json");
    let now = 1_700_000_000_i64;
    let key =
        base64::engine::general_purpose::STANDARD.decode(WEBHOOK_SECRET.trim_start_matches("whsec_")).expect("secret");
    let id = "msg_2b8f0c5e1a";
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(format!("{id}.{now}.").as_bytes());
    mac.update(&body);
    let signature = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", "bench-key".parse().expect("header"));
    headers.insert("webhook-id", id.parse().expect("header"));
    headers.insert("webhook-timestamp", now.to_string().parse().expect("header"));
    headers.insert("webhook-signature", signature.parse().expect("header"));
    let authenticator = Authenticator::new(vec![PartnerAuthConfig {
        partner: "acme-shop".into(),
        api_keys: vec!["bench-key".into()],
        jwt: None,
        webhook_secrets: vec![WEBHOOK_SECRET.into()],
        webhook_tolerance: Duration::from_secs(300),
    }])
    .expect("authenticator");
    assert!(authenticator.authenticate(&headers, &body, now).is_ok(), "the signature verifies");
    let mut group = c.benchmark_group("webhook_signature");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("baseline: one HMAC-SHA256", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
            mac.update(black_box(&body));
            black_box(mac.finalize())
        });
    });
    group.bench_function("authenticate (API key + Standard Webhooks signature)", |b| {
        b.iter(|| black_box(authenticator.authenticate(black_box(&headers), black_box(&body), now)));
    });
    group.finish();
}

criterion_group!(benches, avro, saga, idempotency, signature);
criterion_main!(benches);
