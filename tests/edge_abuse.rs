//! The edge under abuse, against the real broker and Redis of the local stack: thousands of slow
//! unauthenticated uploads, spoofed X-Forwarded-For, the status API hammered, replayed webhooks,
//! bodies and headers that never finish.
//!
//! The load check prints a valid partner's latency alone and while the attack connections are
//! held open; it asserts outcomes only (every partner request accepted, the records on the topic).
//! `HUB_ABUSE_CONNECTIONS` sets the number of slow uploads (default 5000).

mod common;

use std::time::{Duration, Instant};

use common::edge::*;
use common::kafka;
use common::unique_prefix;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ORDERS: &str = "/api/v1/orders";

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

fn addr(edge: &Edge) -> String {
    edge.base.trim_start_matches("http://").to_owned()
}

/// A signed acme-shop request, kept whole so that it can be sent again byte for byte.
struct Signed {
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

fn signed(order_id: &str) -> Signed {
    let body = serde_json::to_vec(&order(order_id)).expect("json");
    let headers = signature_headers(&body, now_unix());
    Signed { body, headers }
}

async fn send(client: &reqwest::Client, edge: &Edge, signed: &Signed, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client
        .post(edge.url(ORDERS))
        .header("content-type", "application/json")
        .header("x-api-key", SHOP_KEY)
        .body(signed.body.clone());
    for (name, value) in &signed.headers {
        request = request.header(*name, value);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.expect("edge answers")
}

async fn problem_type(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let slug = body["type"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("").to_owned();
    (status, slug)
}

/// Reads what the edge sends on `stream` until it closes it (or 64 KiB), within a generous bound
/// that only keeps a broken edge from hanging the test.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if out.len() > 65_536 {
                return;
            }
        }
    })
    .await;
    done.ok().map(|()| String::from_utf8_lossy(&out).into_owned())
}

/// `count` connections that each send complete headers of an unauthenticated 1 MiB upload and
/// one byte of its body, then nothing more.
async fn slow_uploads(addr: &str, count: usize) -> Vec<TcpStream> {
    let head = format!(
        "POST {ORDERS} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{{"
    );
    open(addr, count, head.into_bytes()).await
}

/// `count` connections that send half of their headers, then nothing more (slowloris).
async fn partial_headers(addr: &str, count: usize) -> Vec<TcpStream> {
    open(addr, count, format!("POST {ORDERS} HTTP/1.1\r\nHost: {addr}\r\nX-Api-Key: ").into_bytes()).await
}

async fn open(addr: &str, count: usize, bytes: Vec<u8>) -> Vec<TcpStream> {
    futures::stream::iter(0..count)
        .map(|_| {
            let bytes = bytes.clone();
            async move {
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                // The edge may answer and close before the write: that is fine.
                let _ = stream.write_all(&bytes).await;
                stream
            }
        })
        .buffer_unordered(200)
        .collect()
        .await
}

/// Latencies and failures of one partner run.
struct Run {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

impl Run {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
        sorted.get(index).copied().unwrap_or_default()
    }

    fn report(&self, label: &str) {
        println!(
            "{label}: {} requests, {} errors ({:.2}%), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.latencies.len(),
            self.errors.len(),
            100.0 * self.errors.len() as f64 / self.latencies.len().max(1) as f64,
            self.percentile(0.50).as_secs_f64() * 1000.0,
            self.percentile(0.99).as_secs_f64() * 1000.0,
            self.percentile(1.0).as_secs_f64() * 1000.0,
        );
    }
}

/// `total` signed acme-shop orders from 4 workers, each pausing 25 ms between requests (under
/// acme-shop's 200/s limit, so every request should be accepted).
async fn partner_run(edge: &Edge, tag: &str, total: usize) -> Run {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let workers = 4;
    let results = futures::future::join_all((0..workers).map(|w| {
        let client = client.clone();
        async move {
            let mut out = Vec::new();
            for i in (w..total).step_by(workers) {
                let request = signed(&format!("{tag}-{i}"));
                let started = Instant::now();
                let outcome = match client
                    .post(edge.url(ORDERS))
                    .header("content-type", "application/json")
                    .header("x-api-key", SHOP_KEY)
                    .headers(
                        request
                            .headers
                            .iter()
                            .filter_map(|(n, v)| Some((reqwest::header::HeaderName::from_static(n), v.parse().ok()?)))
                            .collect(),
                    )
                    .body(request.body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => Ok(()),
                    Ok(r) => Err(format!("{}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                out.push((started.elapsed(), outcome));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            out
        }
    }))
    .await;
    let mut run = Run { latencies: Vec::new(), errors: Vec::new() };
    for (latency, outcome) in results.into_iter().flatten() {
        run.latencies.push(latency);
        if let Err(e) = outcome {
            run.errors.push(e);
        }
    }
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_unauthenticated_uploads_leave_a_valid_partner_served() {
    let s = setup("abuse");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let attackers: usize = std::env::var("HUB_ABUSE_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let per_run = 200;

    let alone = partner_run(&edge, "alone", per_run).await;
    alone.report("valid partner alone");

    let mut uploads = slow_uploads(&addr(&edge), attackers).await;
    let slowloris = partial_headers(&addr(&edge), 500).await;
    let under = partner_run(&edge, "attacked", per_run).await;
    under.report(&format!(
        "valid partner with {attackers} slow unauthenticated uploads and {} unfinished headers held open",
        slowloris.len()
    ));

    assert!(alone.errors.is_empty(), "alone: {:?}", alone.errors);
    assert!(under.errors.is_empty(), "under attack: {} errors, first {:?}", under.errors.len(), under.errors.first());
    assert_eq!(kafka::count(&s.topic), (2 * per_run) as i64, "every partner order on the topic, nothing else");

    // The edge answered the unauthenticated uploads without waiting for their bodies, and closed them.
    let answers = futures::future::join_all(uploads.iter_mut().take(50).map(read_until_closed)).await;
    for answer in answers {
        let answer = answer.expect("the edge closes an unauthenticated upload");
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains("missing-credentials"), "{answer}");
    }
    drop(uploads);
    drop(slowloris);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoofed_leftmost_forwarded_for_does_not_change_the_client_ip() {
    let s = setup("xff");
    let edge = Edge::start(&s.topology, &s.prefix, &["--ip-rate-limit", "1/3", "--trusted-proxies", "127.0.0.1/32"]);
    let client = reqwest::Client::new();
    // The test is the trusted proxy (127.0.0.1); it appended the client 203.0.113.7, which wrote
    // a different address of its own on the left each time.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let forwarded = format!("198.51.100.{i}, 203.0.113.7");
        let response =
            send(&client, &edge, &signed(&format!("X-{i}")), &[("x-forwarded-for", forwarded.as_str())]).await;
        statuses.push(problem_or_status(response).await);
    }
    let accepted = statuses.iter().filter(|s| s.as_str() == "202").count();
    assert!(statuses.iter().any(|s| s == "429 rate-limited"), "the one client is limited: {statuses:?}");
    assert!(accepted >= 3, "its burst is served: {statuses:?}");
    assert_eq!(kafka::count(&s.topic), accepted as i64);

    // Another client behind the same proxy has its own bucket.
    let other = send(&client, &edge, &signed("X-other"), &[("x-forwarded-for", "203.0.113.7, 203.0.113.8")]).await;
    assert_eq!(other.status(), StatusCode::ACCEPTED);
}

async fn problem_or_status(response: reqwest::Response) -> String {
    if response.status().is_success() {
        return response.status().as_str().to_owned();
    }
    let (status, slug) = problem_type(response).await;
    format!("{} {slug}", status.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_api_is_rate_limited_like_posting() {
    let s = setup("statuslimit");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let client = reqwest::Client::new();
    let token = beta_token(300);
    // beta-shop may make 5 requests a second (burst 5); reads count against the same quota.
    let mut statuses = Vec::new();
    for i in 0..15 {
        let response =
            client.get(edge.url(&format!("{ORDERS}/corr-{i}"))).bearer_auth(&token).send().await.expect("answer");
        statuses.push(problem_or_status(response).await);
    }
    assert!(statuses.iter().any(|s| s == "429 rate-limited"), "{statuses:?}");
    let events = client.get(edge.url(&format!("{ORDERS}/corr-0/events"))).bearer_auth(&token).send().await;
    assert_eq!(problem_or_status(events.expect("answer")).await, "429 rate-limited");
    // Without credentials a read is refused before anything else.
    let anonymous = client.get(edge.url(&format!("{ORDERS}/corr-0"))).send().await.expect("answer");
    assert_eq!(problem_or_status(anonymous).await, "401 missing-credentials");

    let doc: Value = client.get(edge.url("/openapi.json")).send().await.expect("doc").json().await.expect("json");
    assert!(doc["paths"]["/api/v1/orders/{id}"]["get"]["responses"].get("429").is_some(), "429 documented");
    assert!(doc["paths"]["/api/v1/orders/{id}/events"]["get"]["responses"].get("429").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_webhook_id_is_refused_and_a_keyed_retry_is_replayed() {
    let s = setup("replay");
    let edge = Edge::start(&s.topology, &s.prefix, &[]);
    let client = reqwest::Client::new();

    // An attacker re-sends a captured request byte for byte: no second order.
    let captured = signed("R-1");
    assert_eq!(send(&client, &edge, &captured, &[]).await.status(), StatusCode::ACCEPTED);
    let (status, slug) = problem_type(send(&client, &edge, &captured, &[]).await).await;
    assert_eq!((status, slug.as_str()), (StatusCode::CONFLICT, "webhook-replayed"));
    assert_eq!(kafka::count(&s.topic), 1);

    // The partner's retry of a request with an Idempotency-Key (same webhook-id, same body) gets
    // the first answer again, and writes nothing.
    let keyed = signed("R-2");
    let first = send(&client, &edge, &keyed, &[("idempotency-key", "key-R-2")]).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first_event = first.headers()["x-event-id"].clone();
    let again = send(&client, &edge, &keyed, &[("idempotency-key", "key-R-2")]).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["x-event-id"], first_event);
    assert_eq!(kafka::count(&s.topic), 2);

    // A request that was refused does not burn its webhook-id: the retry is accepted.
    let refused = signed("R-3");
    let (status, _) = problem_type(send(&client, &edge, &refused, &[("x-correlation-id", "-bad")]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(send(&client, &edge, &refused, &[]).await.status(), StatusCode::ACCEPTED);
    assert_eq!(kafka::count(&s.topic), 3);

    let doc: Value = client.get(edge.url("/openapi.json")).send().await.expect("doc").json().await.expect("json");
    assert!(doc["paths"][ORDERS]["post"]["responses"].get("409").is_some());
    assert!(doc["paths"][ORDERS]["post"]["responses"].get("408").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_finishes_gets_408_and_unfinished_headers_are_closed() {
    let s = setup("slowbody");
    let edge = Edge::start(&s.topology, &s.prefix, &["--body-timeout", "1s", "--header-timeout", "2s"]);
    let signed = signed("S-1");
    let mut head = format!(
        "POST {ORDERS} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nX-Api-Key: {SHOP_KEY}\r\nContent-Length: {}\r\n",
        addr(&edge),
        signed.body.len()
    );
    for (name, value) in &signed.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(addr(&edge)).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream.write_all(&signed.body[..10]).await.expect("some body");
    let answer = read_until_closed(&mut stream).await.expect("the edge gives up on the body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("body-timeout"), "{answer}");

    let mut slowloris = partial_headers(&addr(&edge), 1).await;
    let closed = read_until_closed(&mut slowloris[0]).await;
    assert!(closed.is_some(), "the edge closes a connection whose headers never finish");
    assert_eq!(kafka::count(&s.topic), 0);
}
