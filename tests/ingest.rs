//! The ingest edge against the real broker, registry and Redis of the local stack.

mod common;

use std::time::{Duration, Instant};

use common::edge::*;
use common::kafka;
use common::{registry_url, unique_prefix};
use rdkafka::message::{Headers, Message};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Posts `body` as acme-shop: API key and a fresh Standard Webhooks signature.
async fn post_shop(edge: &Edge, path: &str, body: &[u8], extra: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(edge.url(path))
        .header("content-type", "application/json")
        .header("x-api-key", SHOP_KEY)
        .body(body.to_vec());
    for (name, value) in signature_headers(body, now_unix()) {
        request = request.header(name, value);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.expect("edge answers")
}

async fn problem(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body: Value = response.json().await.expect("json body");
    assert_eq!(content_type, "application/problem+json", "{status} {body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(body["type"].as_str().is_some_and(|t| t.starts_with("https://")), "{body}");
    (status, body)
}

struct Setup {
    topology: common::TopologyCopy,
    prefix: String,
    topic: String,
}

fn setup(name: &str) -> Setup {
    let topology = test_topology();
    let prefix = unique_prefix(name);
    provision(&topology, &prefix);
    let topic = format!("{prefix}orders.inbound");
    Setup { topology, prefix, topic }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_order_is_durable_and_reads_back_with_the_registry_schema() {
    let s = setup("valid");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let sent = order("A-1001");
    let body = serde_json::to_vec(&sent).expect("json");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response =
        post_shop(&edge, "/api/v1/orders", &body, &[("x-correlation-id", "corr-A-1001"), ("traceparent", traceparent)])
            .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // A supplied correlation id is scoped to the partner.
    assert_eq!(response.headers()["location"], "/api/v1/orders/acme-shop:corr-A-1001");
    assert_eq!(response.headers()["x-correlation-id"], "acme-shop:corr-A-1001");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let event_id = response.headers()["x-event-id"].to_str().expect("event id").to_owned();
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["event_id"], event_id.as_str());
    assert_eq!(answer["correlation_id"], "acme-shop:corr-A-1001");

    let partition = answer["partition"].as_i64().expect("partition") as i32;
    let offset = answer["offset"].as_i64().expect("offset");
    let record = kafka::read(&s.topic, partition, offset);
    assert_eq!(record.key(), Some("acme-shop:corr-A-1001".as_bytes()));
    let headers = record.headers().expect("headers");
    let header = |name: &str| {
        headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("correlation-id").as_deref(), Some("acme-shop:corr-A-1001"));
    assert_eq!(header("event-id").as_deref(), Some(event_id.as_str()));
    assert_eq!(header("event-type").as_deref(), Some("order_received"));
    assert_eq!(header("producer-role").as_deref(), Some("ingest"));
    let tp = header("traceparent").expect("traceparent");
    assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && !tp.contains("00f067aa0ba902b7"), "{tp}");

    // Decode with the registry's schema, through a Confluent-compatible decoder (not the hub's code).
    let payload = record.payload().expect("payload");
    assert_eq!(payload[0], 0, "Confluent magic byte");
    let settings = schema_registry_converter::async_impl::schema_registry::SrSettings::new(registry_url());
    let decoder = schema_registry_converter::async_impl::avro::AvroDecoder::new(settings);
    let decoded = decoder.decode(Some(payload)).await.expect("decodes with the registry schema");
    let schema = apache_avro::Schema::parse_str(
        &std::fs::read_to_string(common::repo().join("schemas/order_received.avsc")).expect("avsc"),
    )
    .expect("schema");
    let back = interchange_ingest::contract::avro_to_json(&schema, &decoded.value);
    for field in ["order_id", "customer_id", "currency", "channel", "callback_url", "attributes"] {
        assert_eq!(back[field], sent[field], "{field}");
    }
    assert_eq!(back["items"][2]["unit_price"], "24.26");
    assert_eq!(back["items"], sent["items"]);
    assert_eq!(back["event_id"], event_id.as_str());
    assert_eq!(back["correlation_id"], "acme-shop:corr-A-1001");
    assert_eq!(back["partner"], "acme-shop");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let s = setup("idem");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let body = serde_json::to_vec(&order("A-2001")).expect("json");
    let first = post_shop(&edge, "/api/v1/orders", &body, &[("idempotency-key", "key-2001")]).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first_event = first.headers()["x-event-id"].clone();
    let first_body: Value = first.json().await.expect("json");
    let second = post_shop(&edge, "/api/v1/orders", &body, &[("idempotency-key", "key-2001")]).await;
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    assert_eq!(second.headers()["x-event-id"], first_event);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second_body: Value = second.json().await.expect("json");
    assert_eq!(second_body, first_body, "identical responses");
    assert_eq!(kafka::count(&s.topic), 1, "one record for two requests");

    let other = serde_json::to_vec(&order("A-2002")).expect("json");
    let (status, body) =
        problem(post_shop(&edge, "/api/v1/orders", &other, &[("idempotency-key", "key-2001")]).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["type"].as_str().is_some_and(|t| t.ends_with("idempotency-key-reused")), "{body}");
    assert_eq!(kafka::count(&s.topic), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_problem_json_and_nothing_reaches_the_topic() {
    let s = setup("bad");
    let edge = Edge::start(&s.topology, &s.prefix, &["--body-limit", "4096"]);
    let client = reqwest::Client::new();
    let orders = "/api/v1/orders";

    let (status, body) = problem(post_shop(&edge, orders, b"{\"order_id\": ", &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let mut broken = order("A-3001");
    broken["items"][1]["quantity"] = json!("three");
    broken.as_object_mut().expect("object").remove("customer_id");
    broken["channel"] = json!("FAX");
    broken["coupon"] = json!("FREE");
    let (status, body) =
        problem(post_shop(&edge, orders, &serde_json::to_vec(&broken).expect("json"), &[]).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let pointers: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["pointer"].as_str()).collect();
    for expected in ["/items/1/quantity", "/customer_id", "/channel", "/coupon"] {
        assert!(pointers.contains(&expected), "{expected} in {pointers:?}: {body}");
    }

    let good = serde_json::to_vec(&order("A-3002")).expect("json");
    let no_credentials = client.post(edge.url(orders)).body(good.clone()).send().await.expect("answer");
    assert_eq!(problem(no_credentials).await.0, StatusCode::UNAUTHORIZED);

    let mut wrong_key = client.post(edge.url(orders)).header("x-api-key", "not-a-key").body(good.clone());
    for (name, value) in signature_headers(&good, now_unix()) {
        wrong_key = wrong_key.header(name, value);
    }
    assert_eq!(problem(wrong_key.send().await.expect("answer")).await.0, StatusCode::UNAUTHORIZED);

    let expired =
        client.post(edge.url(orders)).bearer_auth(beta_token(-600)).body(good.clone()).send().await.expect("answer");
    let (status, body) = problem(expired).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["type"].as_str().is_some_and(|t| t.contains("expired")), "{body}");

    let mut tampered = client.post(edge.url(orders)).header("x-api-key", SHOP_KEY).body(good.clone());
    for (name, value) in signature_headers(&serde_json::to_vec(&order("A-OTHER")).expect("json"), now_unix()) {
        tampered = tampered.header(name, value);
    }
    assert_eq!(problem(tampered.send().await.expect("answer")).await.0, StatusCode::UNAUTHORIZED);

    let mut stale = client.post(edge.url(orders)).header("x-api-key", SHOP_KEY).body(good.clone());
    for (name, value) in signature_headers(&good, now_unix() - 301) {
        stale = stale.header(name, value);
    }
    let (status, body) = problem(stale.send().await.expect("answer")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["type"].as_str().is_some_and(|t| t.contains("stale")), "{body}");

    let unsigned =
        client.post(edge.url(orders)).header("x-api-key", SHOP_KEY).body(good.clone()).send().await.expect("answer");
    assert_eq!(problem(unsigned).await.0, StatusCode::UNAUTHORIZED);

    let mut huge = order("A-3003");
    huge["attributes"]["padding"] = json!("x".repeat(8192));
    let (status, _) = problem(post_shop(&edge, orders, &serde_json::to_vec(&huge).expect("json"), &[]).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, _) =
        problem(post_shop(&edge, orders, &good, &[("x-correlation-id", "no spaces allowed")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    assert_eq!(kafka::count(&s.topic), 0, "nothing reached the topic");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwt_partner_and_a_rotated_api_key_are_accepted() {
    let s = setup("jwt");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let body = serde_json::to_vec(&order("B-1")).expect("json");
    let response = reqwest::Client::new()
        .post(edge.url("/api/v1/orders"))
        .bearer_auth(beta_token(300))
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mut rotated = reqwest::Client::new()
        .post(edge.url("/api/v1/orders"))
        .header("x-api-key", SHOP_KEY_ROTATED)
        .body(body.clone());
    for (name, value) in signature_headers(&body, now_unix()) {
        rotated = rotated.header(name, value);
    }
    assert_eq!(rotated.send().await.expect("answer").status(), StatusCode::ACCEPTED);
    assert_eq!(kafka::count(&s.topic), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_rate_limit_holds_across_two_edges_and_spares_other_partners() {
    let s = setup("limit");
    let edges = [Edge::start(&s.topology, &s.prefix, &[]), Edge::start(&s.topology, &s.prefix, &[])];
    let body = serde_json::to_vec(&order("B-LIMIT")).expect("json");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (mut accepted, mut limited, mut shop_ok) = (0, 0, 0);
    for i in 0..40 {
        let edge = &edges[i % 2];
        let response = client
            .post(edge.url("/api/v1/orders"))
            .bearer_auth(beta_token(300))
            .body(body.clone())
            .send()
            .await
            .expect("answer");
        match response.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after: u64 =
                    response.headers()["retry-after"].to_str().expect("header").parse().expect("seconds");
                assert!(retry_after >= 1);
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
        if i % 10 == 0 {
            let shop =
                post_shop(edge, "/api/v1/orders", &serde_json::to_vec(&order("A-LIMIT")).expect("json"), &[]).await;
            assert_eq!(shop.status(), StatusCode::ACCEPTED, "acme-shop is not limited by beta-shop's traffic");
            shop_ok += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // 5 per second, burst 5: the whole deployment may accept at most burst + rate × elapsed.
    let bound = 5.0 + 5.0 * elapsed + 1.0;
    assert!(f64::from(accepted) <= bound, "accepted {accepted} > {bound:.1} in {elapsed:.2}s across two edges");
    assert!(accepted >= 5 && limited > 0, "accepted {accepted}, limited {limited}");
    assert_eq!(kafka::count(&s.topic), i64::from(accepted + shop_ok), "every 202 is a record, nothing else");
}

/// Kafka's Java `Utils.murmur2` and `toPositive(h) % partitions`.
fn java_partition(key: &[u8], partitions: i32) -> i32 {
    let m: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let chunks = key.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(m);
        k ^= k >> 24;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m) ^ k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(m);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    ((h & 0x7fff_ffff) as i32) % partitions
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_and_a_plain_murmur2_producer_put_a_key_on_the_same_partition() {
    // Kafka's own test vectors for murmur2 (UtilsTest): the reference below is Java's.
    assert_eq!(java_partition(b"21", 1_000_003), (-973_932_308_i32 & 0x7fff_ffff) % 1_000_003);
    assert_eq!(java_partition(b"foobar", 1_000_003), (-790_332_482_i32 & 0x7fff_ffff) % 1_000_003);
    let s = setup("murmur");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let partitions = kafka::partitions(&s.topic);
    for i in 0..20 {
        let key = format!("order-{i}-{}", i * 7919);
        let body = serde_json::to_vec(&order(&key)).expect("json");
        let response = post_shop(&edge, "/api/v1/orders", &body, &[("x-correlation-id", &key)]).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let answer: Value = response.json().await.expect("json");
        let edge_partition = answer["partition"].as_i64().expect("partition") as i32;
        // The edge keys the order by the id scoped to the partner; a plain producer with that key
        // lands on the same partition.
        let key = format!("acme-shop:{key}");
        let record = rdkafka::producer::FutureRecord::to(&s.topic).key(&key).payload("plain");
        let delivered = producer.send(record, Duration::from_secs(10)).await.expect("plain produce");
        assert_eq!(edge_partition, delivered.partition, "{key}");
        assert_eq!(edge_partition, java_partition(key.as_bytes(), partitions), "{key} as Java would partition it");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_answers_each_event_in_order() {
    let s = setup("batch");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let mut bad = order("C-2");
    bad["items"] = json!([]);
    bad["items"] = json!([{ "sku": "X", "quantity": 1.5, "unit_price": "1.00" }]);
    let events = json!({ "events": [
        { "correlation_id": "corr-C", "idempotency_key": "c-1", "data": order("C-1") },
        { "correlation_id": "corr-C", "data": bad },
        { "correlation_id": "corr-C", "idempotency_key": "c-3", "data": order("C-3") },
        { "correlation_id": "corr-C", "idempotency_key": "c-1", "data": order("C-1") },
    ]});
    let body = serde_json::to_vec(&events).expect("json");
    let response = post_shop(&edge, "/api/v1/orders:batch", &body, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.expect("json");
    let statuses: Vec<&str> =
        answer["results"].as_array().expect("results").iter().filter_map(|r| r["status"].as_str()).collect();
    assert_eq!(statuses, ["accepted", "rejected", "accepted", "duplicate"], "{answer}");
    assert_eq!(answer["results"][1]["problem"]["errors"][0]["pointer"], "/items/0/quantity", "{answer}");
    assert_eq!(answer["results"][3]["event_id"], answer["results"][0]["event_id"]);
    // Same correlation id: same partition, in request order.
    let records = kafka::read_all(&s.topic, "read_committed");
    assert_eq!(records.len(), 2);
    let ids: Vec<String> = records
        .iter()
        .map(|r| {
            let h = r.headers().expect("headers");
            String::from_utf8_lossy(h.iter().find(|x| x.key == "event-id").and_then(|x| x.value).expect("id"))
                .into_owned()
        })
        .collect();
    assert_eq!(
        ids,
        [
            answer["results"][0]["event_id"].as_str().expect("id"),
            answer["results"][2]["event_id"].as_str().expect("id")
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_matches_what_the_edge_serves() {
    let s = setup("openapi");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let doc: Value = reqwest::get(edge.url("/openapi.json")).await.expect("answer").json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for route in ["/api/v1/orders", "/api/v1/orders:batch", "/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert!(paths.contains_key(route), "{route} documented");
    }
    let body_schema = &paths["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let required: Vec<&str> =
        body_schema["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert!(
        required.contains(&"order_id") && required.contains(&"items") && !required.contains(&"event_id"),
        "{required:?}"
    );
    assert_eq!(body_schema["properties"]["channel"]["enum"][1], "WEB");

    // Every status the route answers in this test is documented for it.
    let documented = |path: &str, status: StatusCode| paths[path]["post"]["responses"].get(status.as_str()).is_some();
    let good = serde_json::to_vec(&order("D-1")).expect("json");
    let mut seen = vec![post_shop(&edge, "/api/v1/orders", &good, &[]).await.status()];
    seen.push(post_shop(&edge, "/api/v1/orders", b"{", &[]).await.status());
    seen.push(post_shop(&edge, "/api/v1/orders", b"{}", &[]).await.status());
    seen.push(
        reqwest::Client::new()
            .post(edge.url("/api/v1/orders"))
            .body(good.clone())
            .send()
            .await
            .expect("answer")
            .status(),
    );
    assert_eq!(
        seen,
        [StatusCode::ACCEPTED, StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY, StatusCode::UNAUTHORIZED]
    );
    for status in seen {
        assert!(documented("/api/v1/orders", status), "{status} documented");
    }
    let batch = post_shop(&edge, "/api/v1/orders:batch", br#"{"events": [{"data": {}}]}"#, &[]).await.status();
    assert!(documented("/api/v1/orders:batch", batch), "{batch} documented");
    let undocumented = reqwest::get(edge.url("/api/v1/nothing")).await.expect("answer");
    assert_eq!(undocumented.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_happened() {
    let s = setup("metrics");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let good = serde_json::to_vec(&order("E-1")).expect("json");
    for _ in 0..3 {
        assert_eq!(post_shop(&edge, "/api/v1/orders", &good, &[]).await.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(post_shop(&edge, "/api/v1/orders", b"[", &[]).await.status(), StatusCode::BAD_REQUEST);
    let text = reqwest::get(edge.url("/metrics")).await.expect("answer").text().await.expect("text");
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line_start} in\n{text}"))
    };
    assert_eq!(
        value(r#"hub_ingest_requests_total{route="/api/v1/orders",partner="acme-shop",status_class="2xx"}"#),
        3.0
    );
    assert_eq!(
        value(r#"hub_ingest_requests_total{route="/api/v1/orders",partner="acme-shop",status_class="4xx"}"#),
        1.0
    );
    assert_eq!(value("hub_ingest_produce_duration_seconds_count"), 3.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_terminates_tls_itself() {
    let s = setup("tls");
    let dir = s.topology.dir.path();
    let (cert, key, ca) = (dir.join("edge.crt"), dir.join("edge.key"), dir.join("ca.crt"));
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        .expect("ext");
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=interchange-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "edge.key",
        "-out",
        "edge.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "edge.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "edge.crt",
    ]);
    let edge = Edge::spawn(
        &s.topology,
        &s.prefix,
        &["--tls-cert", cert.to_str().expect("path"), "--tls-key", key.to_str().expect("path")],
        "https",
    );
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("ca")).expect("pem");
    let client = reqwest::Client::builder().tls_certs_only([root]).build().expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.get(edge.url("/readyz")).send().await {
            Ok(r) if r.status() == StatusCode::OK => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("TLS edge not ready: {other:?}\n{}", edge.log_text()),
        }
    }
    let body = serde_json::to_vec(&order("T-1")).expect("json");
    let mut request = client.post(edge.url("/api/v1/orders")).header("x-api-key", SHOP_KEY).body(body.clone());
    for (name, value) in signature_headers(&body, now_unix()) {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("answer over TLS");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(response.headers()["strict-transport-security"].to_str().expect("hsts").starts_with("max-age="));
    // Plain HTTP to the TLS port is not served.
    assert_ne!(edge.status("/readyz"), Some(200));
    assert_eq!(kafka::count(&s.topic), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_and_exits_cleanly() {
    let s = setup("drain");
    let mut edge = Edge::start(&s.topology, &s.prefix, &["--drain-deadline", "10s"]);
    let bodies: Vec<Vec<u8>> = (0..40).map(|i| serde_json::to_vec(&order(&format!("S-{i}"))).expect("json")).collect();
    let client = reqwest::Client::new();
    let requests = bodies.iter().map(|body| {
        let mut request = client.post(edge.url("/api/v1/orders")).header("x-api-key", SHOP_KEY).body(body.clone());
        for (name, value) in signature_headers(body, now_unix()) {
            request = request.header(name, value);
        }
        request.send()
    });
    let pid = edge.child.id().to_string();
    let term = async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(killed.success());
    };
    let (responses, ()) = tokio::join!(futures::future::join_all(requests), term);
    let accepted = responses.iter().filter(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::ACCEPTED)).count();
    let refused_cleanly = responses
        .iter()
        .filter(|r| match r {
            Ok(r) => r.status() != StatusCode::ACCEPTED,
            Err(e) => e.is_connect() || e.is_request(),
        })
        .count();
    assert_eq!(accepted + refused_cleanly, bodies.len());
    let exit = edge.child.wait().expect("edge exits");
    assert!(exit.success(), "exit {exit:?}\n{}", edge.log_text());
    assert!(edge.log_text().contains("ingest edge stopped"), "{}", edge.log_text());
    assert_eq!(kafka::count(&s.topic), accepted as i64, "every 202 given before shutdown is on the topic");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_repeats_of_a_key_write_one_record() {
    let s = setup("inflight");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let body = serde_json::to_vec(&order("F-1")).expect("json");
    let statuses_and_ids = futures::future::join_all((0..12).map(|_| {
        let (edge, body) = (&edge, &body);
        async move {
            let response = post_shop(edge, "/api/v1/orders", body, &[("idempotency-key", "same-key")]).await;
            let id = response.headers().get("x-event-id").map(|v| v.to_str().unwrap_or("").to_owned());
            (response.status(), id)
        }
    }))
    .await;
    let accepted: Vec<&Option<String>> =
        statuses_and_ids.iter().filter(|(s, _)| *s == StatusCode::ACCEPTED).map(|(_, id)| id).collect();
    assert!(!accepted.is_empty());
    assert!(accepted.iter().all(|id| *id == accepted[0]), "every 202 carries the one event id");
    assert!(
        statuses_and_ids.iter().all(|(s, _)| *s == StatusCode::ACCEPTED || *s == StatusCode::CONFLICT),
        "{statuses_and_ids:?}"
    );
    assert_eq!(kafka::count(&s.topic), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn money_is_exact_or_refused_and_the_openapi_document_says_the_same() {
    let s = setup("money");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let doc: Value = reqwest::get(edge.url("/openapi.json")).await.expect("answer").json().await.expect("json");
    let body_schema = &doc["paths"]["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let price_schema = &body_schema["properties"]["items"]["items"]["properties"]["unit_price"];
    let validator = jsonschema::validator_for(price_schema).unwrap_or_else(|e| panic!("{e}: {price_schema}"));
    // (the literal as the partner writes it, what the hub must store, or None when refused)
    let cases: [(&str, Option<&str>); 9] = [
        (r#""12.34""#, Some("12.34")),
        (r#""12.340""#, Some("12.34")),
        ("5", Some("5.00")),
        (r#""9999999999999999.99""#, Some("9999999999999999.99")),
        ("12.5", None),
        ("1234567890123456.78", None),
        (r#""12.345""#, None),
        (r#""12.""#, None),
        (r#""1e3""#, None),
    ];
    let mut accepted = Vec::new();
    for (i, (literal, stored)) in cases.iter().enumerate() {
        let mut body = order(&format!("MONEY-{i}"));
        body["items"] = json!([{ "sku": "SKU-1", "quantity": 1, "unit_price": "__PRICE__" }]);
        let text = body.to_string().replace(r#""__PRICE__""#, literal);
        let response = post_shop(&edge, "/api/v1/orders", text.as_bytes(), &[]).await;
        let parsed: Value = serde_json::from_str(literal).expect("a JSON literal");
        assert_eq!(
            validator.is_valid(&parsed),
            stored.is_some(),
            "{literal}: openapi.json and the edge disagree ({price_schema})"
        );
        match stored {
            Some(stored) => {
                assert_eq!(response.status(), StatusCode::ACCEPTED, "{literal}");
                let answer: Value = response.json().await.expect("json");
                accepted.push((answer["correlation_id"].as_str().expect("id").to_owned(), *stored));
            }
            None => {
                let (status, problem) = problem(response).await;
                assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{literal}: {problem}");
                assert_eq!(problem["errors"][0]["pointer"], "/items/0/unit_price", "{literal}: {problem}");
                if parsed.is_f64() {
                    let detail = problem["errors"][0]["detail"].as_str().unwrap_or_default();
                    assert!(detail.contains("send the amount as a string"), "{literal}: {problem}");
                }
            }
        }
    }
    let records = kafka::read_all(&s.topic, "read_committed");
    assert_eq!(records.len(), accepted.len(), "one record per 202, none for a refusal");
    let decoder = common::avro::decoder();
    for record in &records {
        let (_, json) = common::avro::decode(&decoder, record.payload().expect("value"), "order_received").await;
        let id = json["correlation_id"].as_str().expect("id");
        let (_, stored) = accepted.iter().find(|(a, _)| a == id).expect("an accepted order");
        assert_eq!(json["items"][0]["unit_price"], *stored, "stored exactly, never rounded");
    }
}
