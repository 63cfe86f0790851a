//! The whole order flow in one `hub run`: a client posts orders to the edge, the processor
//! validates them, the ERP (a real HTTP server here) receives the dispatches, and the client's
//! callback receives one signed completion webhook per order.

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use common::edge::*;
use common::orders::wait_terminal;
use common::process::publish_inventory;
use common::{bootstrap, registry_url, repo, service, unique_prefix};
use hmac::{Hmac, Mac};

const SIGNING_SECRET: &str = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLXRlc3RzLTAxMjM0NTY=";

type Calls = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A partner on loopback that records every call and answers 201 with an id.
async fn recorder() -> (String, Calls) {
    recorder_with(201).await
}

/// A partner on loopback that records every call and answers `status`.
async fn recorder_with(status: u16) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let state = Arc::clone(&calls);
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
        let state = Arc::clone(&state);
        async move {
            let n = {
                let mut calls = state.lock().expect("lock");
                calls.push((headers, body.to_vec()));
                calls.len()
            };
            let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::CREATED);
            (status, axum::Json(serde_json::json!({ "id": format!("ERP-{n}"), "error": "refused by test" })))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), calls)
}

use common::Hub;

/// Starts `hub run` for `prefix` with the partners at `shop_url` and `erp_url`; returns it and the edge.
async fn start_hub(shop_url: &str, erp_url: &str, prefix: &str) -> (common::TopologyCopy, Hub, Edge) {
    let topology = test_topology();
    let text = std::fs::read_to_string(&topology.path)
        .expect("read")
        .replace("base_url = \"http://127.0.0.1:18081\"", &format!("base_url = \"{shop_url}\""))
        .replace("base_url = \"http://127.0.0.1:18082\"", &format!("base_url = \"{erp_url}\""))
        .replace(
            "retry = { initial_backoff = \"1s\", max_backoff = \"16s\", max_attempts = 5 }\nauth",
            "retry = { initial_backoff = \"50ms\", max_backoff = \"200ms\", max_attempts = 3 }\nauth",
        );
    std::fs::write(&topology.path, text).expect("write");
    provision(&topology, prefix);
    let skus: Vec<String> = (100..113).map(|i| format!("SKU-{i:05}")).collect();
    let levels: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 1_000_000)).collect();
    publish_inventory(&format!("{prefix}inventory.levels"), &levels).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let processor_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let log = topology.dir.path().join("hub-run.log");
    let hub = Hub(Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["--topology", topology.arg(), "--topic-prefix", prefix, "run", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--processor-listen", &format!("127.0.0.1:{processor_port}"), "--instance-id", "flow"])
        .args(["--sink-listen", &format!("127.0.0.1:{}", common::free_port())])
        .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
        .env("HUB_REGISTRY_URL", registry_url())
        .env("HUB_REDIS_URL", service("HUB_REDIS_URL", "redis://127.0.0.1:6379"))
        .env("HUB_PARTNER_ACME_SHOP_API_KEYS", SHOP_KEY)
        .env("HUB_PARTNER_ACME_SHOP_WEBHOOK_SECRETS", SHOP_WEBHOOK_SECRET)
        .env("HUB_PARTNER_ACME_SHOP_SIGNING_SECRET", SIGNING_SECRET)
        .env("HUB_PARTNER_ACME_ERP_TOKEN", "erp-token")
        .envs(common::GLOBEX_ENV)
        .env("HUB_TEST_BETA_JWT_SECRET", BETA_JWT_SECRET)
        .env("HUB_LOG_FORMAT", "json")
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("hub run"));
    let edge = Edge {
        child: Command::new("true").spawn().expect("placeholder"),
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    edge.wait_ready(Duration::from_secs(90));
    (topology, hub, edge)
}

/// Posts `n` orders as acme-shop; returns their correlation ids.
async fn post_orders(edge: &Edge, prefix: &str, tag: &str, n: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let mut body = order(&format!("{tag}-{i}"));
        body.as_object_mut().expect("object").remove("callback_url");
        let body = serde_json::to_vec(&body).expect("json");
        let correlation = format!("{prefix}{tag}-{i}");
        let mut request = client
            .post(edge.url("/api/v1/orders"))
            .header("x-api-key", SHOP_KEY)
            .header("x-correlation-id", &correlation)
            .body(body.clone());
        for (name, value) in signature_headers(&body, now_unix()) {
            request = request.header(name, value);
        }
        assert_eq!(request.send().await.expect("answer").status(), reqwest::StatusCode::ACCEPTED);
        // The order is keyed by the id scoped to the partner.
        ids.push(format!("acme-shop:{correlation}"));
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn posted_orders_reach_the_erp_and_complete_with_one_signed_webhook_each() {
    let (erp_url, erp_calls) = recorder().await;
    let (shop_url, shop_calls) = recorder().await;
    let prefix = unique_prefix("flow");
    let t = |name: &str| format!("{prefix}{name}");
    let (_topology, hub, edge) = start_hub(&shop_url, &erp_url, &prefix).await;
    let ids = post_orders(&edge, &prefix, "F", 20).await;
    let states = wait_terminal(&t("orders.state"), &ids, Duration::from_secs(120)).await;
    for id in &ids {
        assert_eq!(states[id]["status"], "COMPLETED", "{id}: {}", states[id]);
        assert!(states[id]["partner_reference"].as_str().is_some_and(|r| r.starts_with("ERP-")));
    }
    // The completion webhooks may still be in flight when the state says COMPLETED.
    let deadline = Instant::now() + Duration::from_secs(60);
    while shop_calls.lock().expect("lock").len() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(hub);
    let erp = erp_calls.lock().expect("lock").clone();
    assert_eq!(erp.len(), ids.len(), "one dispatch per order");
    assert!(erp.iter().all(|(h, _)| h["authorization"] == "Bearer erp-token" && h.contains_key("idempotency-key")));
    let shop = shop_calls.lock().expect("lock").clone();
    assert_eq!(shop.len(), ids.len(), "one notification per order");
    let key =
        base64::engine::general_purpose::STANDARD.decode(SIGNING_SECRET.trim_start_matches("whsec_")).expect("key");
    let mut notified = std::collections::HashSet::new();
    for (headers, body) in &shop {
        let (id, ts, sig) = (
            headers["webhook-id"].to_str().expect("id"),
            headers["webhook-timestamp"].to_str().expect("ts"),
            headers["webhook-signature"].to_str().expect("sig"),
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac");
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        assert_eq!(
            sig,
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
        );
        let payload: serde_json::Value = serde_json::from_slice(body).expect("json");
        assert_eq!(payload["type"], "order.completed");
        notified.insert(payload["correlation_id"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(notified.len(), ids.len(), "each order notified once");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erp_that_refuses_leads_to_compensation_a_dead_letter_and_a_failure_webhook() {
    let (erp_url, erp_calls) = recorder_with(400).await;
    let (shop_url, shop_calls) = recorder().await;
    let prefix = unique_prefix("refuse");
    let t = |name: &str| format!("{prefix}{name}");
    let (_topology, hub, edge) = start_hub(&shop_url, &erp_url, &prefix).await;
    let ids = post_orders(&edge, &prefix, "R", 5).await;
    let states = wait_terminal(&t("orders.state"), &ids, Duration::from_secs(120)).await;
    for id in &ids {
        assert_eq!(states[id]["status"], "COMPENSATED", "{id}: {}", states[id]);
        assert!(states[id]["failure_reason"].as_str().is_some_and(|r| r.contains("HTTP 400")), "{}", states[id]);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while shop_calls.lock().expect("lock").len() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(hub);
    assert_eq!(erp_calls.lock().expect("lock").len(), ids.len(), "a 400 is not retried");
    let failures: Vec<String> = shop_calls
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, body)| {
            serde_json::from_slice::<serde_json::Value>(body).expect("json")["type"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    assert_eq!(failures, vec!["order.failed"; ids.len()]);
    let dead = common::kafka::read_all(&t("orders.dlq"), "read_committed");
    assert_eq!(dead.len(), ids.len(), "one dead letter per refused dispatch");
    use rdkafka::message::{Headers, Message};
    for record in &dead {
        let class = record.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == "hub-error-class")
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        assert_eq!(class.as_deref(), Some("PERMANENT"));
    }
    let commands = common::orders::counts(&t("orders.commands"), "read_committed");
    for id in &ids {
        assert_eq!(commands.get(&(id.clone(), "stock_release_command".to_owned())), Some(&1), "{id}");
    }
}
