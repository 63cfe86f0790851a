//! Observability across every hop, with `hub run` on the real stack: one trace from the webhook to
//! the partner (spans exported over OTLP/JSON to a receiver this test runs), the counters of each
//! role after a known workload, and log lines that carry ids but no secret.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use common::edge::*;
use common::orders::wait_terminal;
use common::process::publish_inventory;
use common::sinks::{metric_value, Partner};
use common::{bootstrap, free_port, registry_url, repo, service, unique_prefix};

const SIGNING_SECRET: &str = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLXRlc3RzLTAxMjM0NTY=";
/// The order that carries the caller's own trace context.
const TRACED: usize = 1;
const ERP_TOKEN: &str = "erp-token-that-must-never-be-logged";

/// An OTLP/HTTP receiver (JSON encoding): every span it was sent.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let spans: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let state = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let state = Arc::clone(&state);
            async move {
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let mut out = state.lock().expect("lock");
                for rs in request["resourceSpans"].as_array().into_iter().flatten() {
                    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                        out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                    }
                }
                axum::Json(serde_json::json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

use common::Hub;

fn attr(span: &serde_json::Value, key: &str) -> Option<String> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key).map(|a| {
        let v = &a["value"];
        v["stringValue"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| v["intValue"].as_str().map(str::to_owned))
            .unwrap_or_else(|| v.to_string())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_from_webhook_to_partner_counters_and_clean_logs() {
    let erp = Partner::start(Arc::new(|call: &common::sinks::Call, _| {
        if call.json["order_id"].as_str().is_some_and(|o| o.ends_with("BAD")) {
            (400, vec![])
        } else {
            (201, vec![])
        }
    }))
    .await;
    let shop = Partner::ok().await;
    let (otlp, spans) = otlp_receiver().await;
    let prefix = unique_prefix("telemetry");
    let topology = test_topology();
    let text = std::fs::read_to_string(&topology.path)
        .expect("read")
        .replace("base_url = \"http://127.0.0.1:18081\"", &format!("base_url = \"{}\"", shop.url))
        .replace("base_url = \"http://127.0.0.1:18082\"", &format!("base_url = \"{}\"", erp.url));
    std::fs::write(&topology.path, text).expect("write");
    provision(&topology, &prefix);
    let skus: Vec<String> = (100..113).map(|i| format!("SKU-{i:05}")).collect();
    let levels: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 1_000_000)).collect();
    publish_inventory(&format!("{prefix}inventory.levels"), &levels).await;
    let (edge_port, processor_port, sink_port) = (free_port(), free_port(), free_port());
    let log = topology.dir.path().join("hub-run.log");
    let _hub = Hub(Command::new(env!("CARGO_BIN_EXE_hub"))
        .args([
            "--topology",
            topology.arg(),
            "--topic-prefix",
            &prefix,
            "run",
            "--listen",
            &format!("127.0.0.1:{edge_port}"),
        ])
        .args(["--processor-listen", &format!("127.0.0.1:{processor_port}"), "--instance-id", "telemetry"])
        .args(["--sink-listen", &format!("127.0.0.1:{sink_port}")])
        .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
        .env("HUB_REGISTRY_URL", registry_url())
        .env("HUB_REDIS_URL", service("HUB_REDIS_URL", "redis://127.0.0.1:6379"))
        .env("HUB_PARTNER_ACME_SHOP_API_KEYS", SHOP_KEY)
        .env("HUB_PARTNER_ACME_SHOP_WEBHOOK_SECRETS", SHOP_WEBHOOK_SECRET)
        .env("HUB_PARTNER_ACME_SHOP_SIGNING_SECRET", SIGNING_SECRET)
        .env("HUB_PARTNER_ACME_ERP_TOKEN", ERP_TOKEN)
        .envs(common::GLOBEX_ENV)
        .env("HUB_TEST_BETA_JWT_SECRET", BETA_JWT_SECRET)
        .env("HUB_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,interchange_ingest=debug,interchange_processors=debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("hub run"));
    let edge = Edge {
        child: Command::new("true").spawn().expect("placeholder"),
        base: format!("http://127.0.0.1:{edge_port}"),
        log: log.clone(),
    };
    edge.wait_ready(Duration::from_secs(90));

    // Five orders; the ERP refuses the last. The first carries the caller's own trace.
    let client = reqwest::Client::new();
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = order(&format!("T-{i}{}", if i == 4 { "-BAD" } else { "" }));
        body.as_object_mut().expect("object").remove("callback_url");
        let body = serde_json::to_vec(&body).expect("json");
        let correlation = format!("{prefix}T-{i}");
        let mut request = client
            .post(edge.url("/api/v1/orders"))
            .header("x-api-key", SHOP_KEY)
            .header("x-correlation-id", &correlation)
            .body(body.clone());
        if i == TRACED {
            request = request.header("traceparent", format!("00-{caller_trace}-00f067aa0ba902b7-01"));
        }
        for (name, value) in signature_headers(&body, now_unix()) {
            request = request.header(name, value);
        }
        assert_eq!(request.send().await.expect("answer").status(), reqwest::StatusCode::ACCEPTED);
        // The order is keyed by the id scoped to the partner.
        ids.push(format!("acme-shop:{correlation}"));
    }
    let states = wait_terminal(&format!("{prefix}orders.state"), &ids, Duration::from_secs(120)).await;
    assert_eq!(states[&ids[4]]["status"], "COMPENSATED");
    let deadline = Instant::now() + Duration::from_secs(60);
    while shop.count() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // One trace: edge server span → producer span → processor consumer span → sink consumer span
    // → HTTP client span, whose context the ERP received.
    let erp_call = erp
        .calls()
        .into_iter()
        .find(|c| c.json["correlation_id"] == ids[TRACED].as_str())
        .expect("the ERP got the traced order");
    let traceparent = erp_call
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .expect("traceparent to the partner")
        .to_owned();
    if &traceparent[3..35] != caller_trace {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for s in spans.lock().expect("lock").iter().filter(|s| {
            s["traceId"] == traceparent[3..35] || s["traceId"] == caller_trace || s["name"] == "POST /api/v1/orders"
        }) {
            eprintln!(
                "SPAN {} {} {} {} {:?} {:?}",
                s["traceId"],
                s["spanId"],
                s["parentSpanId"],
                s["name"],
                attr(s, "correlation_id"),
                s["startTimeUnixNano"]
            );
        }
        eprintln!("ERP traceparent {traceparent}");
        for line in std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("trace context") || l.contains(ids[TRACED].as_str()))
            .take(20)
        {
            eprintln!("LOG {line}");
        }
    }
    assert_eq!(&traceparent[3..35], caller_trace, "the partner's request continues the caller's trace");
    let client_span_id = traceparent[36..52].to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let by_id = loop {
        let by_id: HashMap<String, serde_json::Value> = spans
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s["traceId"] == caller_trace)
            .map(|s| (s["spanId"].as_str().unwrap_or_default().to_owned(), s.clone()))
            .collect();
        if by_id.contains_key(&client_span_id) && by_id.values().any(|s| s["name"] == "POST /api/v1/orders") {
            break by_id;
        }
        assert!(
            Instant::now() < deadline,
            "spans of the trace never all arrived: {:?}",
            by_id.values().map(|s| &s["name"]).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut chain = Vec::new();
    let mut at = by_id.get(&client_span_id).cloned();
    while let Some(span) = at {
        chain.push((span["name"].as_str().unwrap_or_default().to_owned(), span["kind"].clone(), span.clone()));
        let parent = span["parentSpanId"].as_str().unwrap_or_default().to_owned();
        at = by_id.get(&parent).cloned();
    }
    let names: Vec<&str> = chain.iter().map(|(n, ..)| n.as_str()).collect();
    let commands = format!("process {prefix}orders.commands");
    let inbound = format!("process {prefix}orders.inbound");
    let send = format!("send {prefix}orders.inbound");
    assert_eq!(
        names,
        ["POST", commands.as_str(), inbound.as_str(), send.as_str(), "POST /api/v1/orders"],
        "parent chain from the partner call up to the edge"
    );
    let kinds: Vec<i64> = chain.iter().map(|(_, k, _)| k.as_i64().unwrap_or(0)).collect();
    assert_eq!(kinds, [3, 5, 5, 4, 2], "client, consumer, consumer, producer, server (OTLP SpanKind)");
    let consumer = &chain[2].2;
    assert_eq!(attr(consumer, "messaging.system").as_deref(), Some("kafka"));
    assert_eq!(attr(consumer, "messaging.destination.name"), Some(format!("{prefix}orders.inbound")));
    assert_eq!(attr(consumer, "correlation_id"), Some(ids[TRACED].clone()));
    assert!(
        attr(consumer, "messaging.kafka.offset").is_some() && attr(consumer, "messaging.consumer.group.name").is_some()
    );
    assert_eq!(attr(&chain[0].2, "http.response.status_code").as_deref(), Some("201"));
    assert_eq!(attr(&chain[4].2, "http.route").as_deref(), Some("/api/v1/orders"));
    // The transaction that committed the record's outputs links to the record's span.
    let processed = chain[2].2["spanId"].as_str().unwrap_or_default().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !spans.lock().expect("lock").iter().any(|s| {
        s["name"] == "commit transaction"
            && s["links"]
                .as_array()
                .is_some_and(|l| l.iter().any(|l| l["traceId"] == caller_trace && l["spanId"] == processed.as_str()))
    }) {
        assert!(Instant::now() < deadline, "no commit span links to the record's span");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The counters of each role after the workload.
    let scrape = |port: u16, path: &str| common::sinks::SinkProcess::scrape(&format!("127.0.0.1:{port}"), path);
    let edge_metrics = scrape(edge_port, "/metrics");
    assert_eq!(
        metric_value(&edge_metrics, "hub_ingest_requests_total", &["partner=\"acme-shop\"", "status_class=\"2xx\""]),
        5.0,
        "{edge_metrics}"
    );
    let processor_metrics = scrape(processor_port, "/metrics");
    assert_eq!(metric_value(&processor_metrics, "hub_processor_dead_letters_total", &[]), 0.0);
    assert!(
        metric_value(&processor_metrics, "hub_processor_records_total", &["outcome=\"changed\""]) >= 10.0,
        "{processor_metrics}"
    );
    // Consumer lag comes from librdkafka's statistics every 5 s: all read by now.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lag_line = format!("hub_processor_lag_records{{processor=\"order-saga\",topic=\"{prefix}orders.inbound\"");
    while !scrape(processor_port, "/metrics").contains(&lag_line) {
        assert!(
            Instant::now() < deadline,
            "no lag gauge for the inbound topic:\n{}",
            scrape(processor_port, "/metrics").lines().filter(|l| l.contains("lag")).collect::<Vec<_>>().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let processor_metrics = scrape(processor_port, "/metrics");
    assert_eq!(
        metric_value(&processor_metrics, "hub_processor_lag_records", &[&lag_line[26..]]),
        0.0,
        "{processor_metrics}"
    );
    let sink_metrics = scrape(sink_port, "/metrics");
    let sink = |labels: &[&str], name: &str| metric_value(&sink_metrics, name, labels);
    assert_eq!(
        sink(&["partner=\"acme-erp\"", "outcome=\"delivered\""], "hub_sink_deliveries_total"),
        4.0,
        "{sink_metrics}"
    );
    assert_eq!(sink(&["partner=\"acme-erp\"", "outcome=\"refused\""], "hub_sink_deliveries_total"), 1.0);
    assert_eq!(sink(&["partner=\"acme-shop\"", "outcome=\"delivered\""], "hub_sink_deliveries_total"), 5.0);
    assert_eq!(sink(&["partner=\"acme-erp\"", "outcome=\"PERMANENT\""], "hub_sink_dead_letters_total"), 1.0);

    // Logs: a request's line carries its correlation id and trace id; no secret anywhere.
    let text = std::fs::read_to_string(&log).expect("log");
    let accepted = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "accepted" && l["span"]["correlation_id"] == ids[0].as_str())
        .unwrap_or_else(|| panic!("no 'accepted' line for {}:\n{text}", ids[0]));
    assert_eq!(accepted["role"], "all");
    assert!(accepted["timestamp"].is_string() && accepted["level"] == "DEBUG");
    let request_line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["span"]["trace_id"] == caller_trace)
        .unwrap_or_else(|| panic!("no log line with trace id {caller_trace}:\n{text}"));
    assert!(request_line["span"]["correlation_id"].is_string(), "{request_line}");
    for secret in [SHOP_KEY, SHOP_WEBHOOK_SECRET, SIGNING_SECRET, ERP_TOKEN, "whsec_"] {
        assert!(!text.contains(secret), "a secret ({secret}) appears in the logs");
    }
    let _ = HeaderMap::new();
}
