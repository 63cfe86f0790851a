//! The edge while its broker or Redis is down: never a 202 it cannot keep.
//!
//! This file stops and restarts services of the local stack, so it is its own test binary
//! (cargo runs test binaries one after another) with one test.

mod common;

use std::process::Command;
use std::time::Duration;

use common::edge::*;
use common::{kafka, repo, unique_prefix};
use reqwest::StatusCode;

fn stack(args: &[&str]) {
    let output = Command::new(repo().join("scripts/stack")).args(args).output().expect("scripts/stack");
    assert!(
        output.status.success(),
        "scripts/stack {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn post(edge: &Edge, order_id: &str, key: Option<&str>) -> StatusCode {
    let body = serde_json::to_vec(&order(order_id)).expect("json");
    let mut request = reqwest::Client::new()
        .post(edge.url("/api/v1/orders"))
        .header("x-api-key", SHOP_KEY)
        .timeout(Duration::from_secs(30))
        .body(body.clone());
    for (name, value) in signature_headers(&body, now_unix()) {
        request = request.header(name, value);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.expect("the edge answers").status()
}

#[tokio::test(flavor = "multi_thread")]
async fn outages_get_503_never_a_202_and_service_resumes() {
    let topology = test_topology();
    let prefix = unique_prefix("outage");
    provision(&topology, &prefix);
    let topic = format!("{prefix}orders.inbound");
    let edge = Edge::start(&topology, &prefix, &["--delivery-timeout", "3s"]);
    let mut accepted = 0;
    for i in 0..5 {
        assert_eq!(post(&edge, &format!("before-{i}"), None).await, StatusCode::ACCEPTED);
        accepted += 1;
    }

    // Broker down: every request is refused with 503, none accepted.
    stack(&["down", "kafka"]);
    let during = futures::future::join_all((0..10).map(|i| {
        let edge = &edge;
        async move { post(edge, &format!("during-{i}"), Some(&format!("outage-key-{i}"))).await }
    }))
    .await;
    assert!(during.iter().all(|s| *s == StatusCode::SERVICE_UNAVAILABLE), "{during:?}");
    stack(&["up", "kafka"]);
    edge.wait_ready(Duration::from_secs(90));
    // Metadata answers before every partition has its leader back: a client that honours
    // Retry-After gets through once the broker has recovered, and no 503 left a record behind.
    let mut first = post(&edge, "after-first", None).await;
    for _ in 0..60 {
        if first != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        first = post(&edge, "after-first", None).await;
    }
    assert_eq!(first, StatusCode::ACCEPTED);
    accepted += 1;
    for i in 0..5 {
        assert_eq!(post(&edge, &format!("after-{i}"), None).await, StatusCode::ACCEPTED);
        accepted += 1;
    }
    // The refused requests' keys were released: the partner's retry succeeds.
    assert_eq!(post(&edge, "during-0", Some("outage-key-0")).await, StatusCode::ACCEPTED);
    accepted += 1;
    assert_eq!(kafka::count(&topic), accepted, "every 202 is exactly one record");

    // Redis down: a request with an Idempotency-Key cannot be de-duplicated safely, so 503; one
    // without a key is still accepted (rate limits fall back to each instance's own).
    stack(&["down", "redis"]);
    assert_eq!(post(&edge, "redis-down-1", Some("redis-key-1")).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(post(&edge, "redis-down-2", None).await, StatusCode::ACCEPTED);
    accepted += 1;
    stack(&["up", "redis"]);
    edge.wait_ready(Duration::from_secs(30));
    assert_eq!(post(&edge, "redis-down-1", Some("redis-key-1")).await, StatusCode::ACCEPTED);
    accepted += 1;
    assert_eq!(kafka::count(&topic), accepted, "every 202 is exactly one record");
    let metrics = reqwest::get(edge.url("/metrics")).await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.lines().any(|l| l.starts_with(r#"hub_ingest_redis_errors_total{operation="idempotency"}"#)),
        "{metrics}"
    );
}
