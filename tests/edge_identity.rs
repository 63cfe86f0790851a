//! Who an order belongs to and that a retry never makes a second one, on the real stack: two
//! partners posting with the same X-Correlation-Id each get their own order (scoped
//! `<partner>:<id>`), and an Idempotency-Key whose answer could not be recorded in Redis (a TCP
//! proxy in the test stalls exactly that step) still yields one order when the partner retries.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::edge::{beta_token, now_unix, order, provision, signature_headers, test_topology, Edge, SHOP_KEY};
use common::orders::{counts, wait_terminal};
use common::pipeline::hub_command;
use common::process::{publish_inventory, Processor};
use common::readmodel::{cql_nodes, migrate, topology_with_partner, unique_keyspace};
use common::{avro, kafka, unique_prefix, Hub};
use rdkafka::Message;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Stock for the reference order's SKUs (SKU-00100..SKU-00105).
fn stock() -> Vec<(String, i64)> {
    (100..106).map(|i| (format!("SKU-{i:05}"), 1_000_000)).collect()
}

async fn publish_stock(prefix: &str) {
    let levels = stock();
    let levels: Vec<(&str, i64)> = levels.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    publish_inventory(&format!("{prefix}inventory.levels"), &levels).await;
}

/// The reference order without a callback URL (notifications go to the partner's own callback).
fn order_body(order_id: &str) -> Vec<u8> {
    let mut body = order(order_id);
    body.as_object_mut().expect("object").remove("callback_url");
    serde_json::to_vec(&body).expect("json")
}

/// Posts `body` as acme-shop (API key, signed), with the optional headers; (status, JSON answer).
async fn post_acme(base: &str, body: &[u8], correlation: Option<&str>, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/api/v1/orders"))
        .header("x-api-key", SHOP_KEY)
        .timeout(Duration::from_secs(30))
        .body(body.to_vec());
    if let Some(id) = correlation {
        request = request.header("x-correlation-id", id);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    for (name, value) in signature_headers(body, now_unix()) {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Posts `body` as beta-shop (JWT); (status, JSON answer).
async fn post_beta(base: &str, body: &[u8], correlation: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(beta_token(300))
        .header("x-correlation-id", correlation)
        .body(body.to_vec())
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Every record of the state topic (read_committed) as (key, decoded state), in topic order.
async fn state_records(topic: &str) -> Vec<(String, Value)> {
    let decoder = avro::decoder();
    let mut out = Vec::new();
    for record in kafka::read_all(topic, "read_committed") {
        let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
        if let Some(payload) = record.payload() {
            out.push((key, avro::decode(&decoder, payload, "order_state").await.1));
        }
    }
    out
}

/// `hub run` (edge, processor, every sink, the projector included) with its edge on `port`.
fn hub_run(topology: &common::TopologyCopy, prefix: &str, port: u16) -> Hub {
    let log = topology.dir.path().join("hub-run.log");
    let listen = |p: u16| format!("127.0.0.1:{p}");
    Hub(hub_command(topology, prefix)
        .args(["--cql-nodes", &cql_nodes(), "run", "--listen", &listen(port)])
        .args(["--processor-listen", &listen(common::free_port()), "--sink-listen", &listen(common::free_port())])
        .args(["--instance-id", "edge-identity"])
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("hub run"))
}

/// GET of the status API as `auth` (acme-shop's key, or beta-shop's token); (status, body).
async fn status_of(base: &str, id: &str, beta: bool) -> (u16, Value) {
    let request = reqwest::Client::new().get(format!("{base}/api/v1/orders/{id}"));
    let request = if beta { request.bearer_auth(beta_token(300)) } else { request.header("x-api-key", SHOP_KEY) };
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Polls the status API until the order is finished (paced under beta-shop's 5/s limit).
async fn wait_finished(base: &str, id: &str, beta: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = status_of(base, id, beta).await;
        if status == 200 && matches!(body["status"].as_str(), Some("COMPLETED" | "REJECTED" | "COMPENSATED")) {
            return body;
        }
        assert!(Instant::now() < deadline, "{id} (beta: {beta}) not finished in the status API: {status} {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_partners_with_the_same_correlation_id_each_get_their_own_order() {
    let prefix = unique_prefix("identity");
    let keyspace = unique_keyspace("identity");
    let topology = topology_with_partner(&keyspace).await;
    provision(&topology, &prefix);
    migrate(&topology, &prefix);
    publish_stock(&prefix).await;
    let port = common::free_port();
    let _hub = hub_run(&topology, &prefix, port);
    let edge = Edge {
        child: std::process::Command::new("true").spawn().expect("placeholder"),
        base: format!("http://127.0.0.1:{port}"),
        log: topology.dir.path().join("hub-run.log"),
    };
    edge.wait_ready(Duration::from_secs(90));

    // Both shops pick the same id for their own orders.
    let supplied = format!("{prefix}shared-1");
    let (acme_status, acme) = post_acme(&edge.base, &order_body("ACME-1"), Some(&supplied), None).await;
    let (beta_status, beta) = post_beta(&edge.base, &order_body("BETA-1"), &supplied).await;
    assert_eq!((acme_status, beta_status), (202, 202), "{acme}\n{beta}");
    let acme_id = acme["correlation_id"].as_str().expect("acme id").to_owned();
    let beta_id = beta["correlation_id"].as_str().expect("beta id").to_owned();
    eprintln!("acme-shop's order: {acme_id}; beta-shop's order: {beta_id}");

    // Every order the edge accepted reaches a terminal state.
    let answered: Vec<String> =
        if acme_id == beta_id { vec![acme_id.clone()] } else { vec![acme_id.clone(), beta_id.clone()] };
    wait_terminal(&format!("{prefix}orders.state"), &answered, Duration::from_secs(120)).await;
    // Room for a late record (a dead letter) to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The state topic holds exactly two orders, each with its own partner and order id.
    let records = state_records(&format!("{prefix}orders.state")).await;
    let mut owners: Vec<(String, String, String)> = records
        .iter()
        .map(|(key, s)| {
            (
                key.clone(),
                s["partner"].as_str().unwrap_or("").to_owned(),
                s["order_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    owners.sort();
    owners.dedup();
    assert_eq!(
        owners,
        vec![
            (acme_id.clone(), "acme-shop".to_owned(), "ACME-1".to_owned()),
            (beta_id.clone(), "beta-shop".to_owned(), "BETA-1".to_owned()),
        ],
        "two accepted orders, two orders in the state topic (key, partner, order id)"
    );
    assert_eq!(acme_id, format!("acme-shop:{supplied}"), "the supplied id, scoped to the partner");
    assert_eq!(beta_id, format!("beta-shop:{supplied}"));
    assert_eq!(acme["links"]["status"], format!("/api/v1/orders/{acme_id}"), "links carry the scoped id");
    let dead = kafka::read_all(&format!("{prefix}orders.dlq"), "read_committed").len();
    assert_eq!(dead, 0, "nothing dead-lettered");
    let commands = counts(&format!("{prefix}orders.commands"), "read_committed");
    for id in [&acme_id, &beta_id] {
        assert_eq!(commands.get(&(id.clone(), "dispatch_command".to_owned())), Some(&1), "{id}: one dispatch");
    }

    // Each partner finds its own order, by the scoped id and by the id it supplied.
    for (id, beta, order_id) in [(&acme_id, false, "ACME-1"), (&beta_id, true, "BETA-1")] {
        let body = wait_finished(&edge.base, id, beta).await;
        assert_eq!(body["order_id"], order_id, "{body}");
        assert_eq!(body["status"], "COMPLETED", "{body}");
        let (status, by_supplied) = status_of(&edge.base, &supplied, beta).await;
        assert_eq!(status, 200, "{by_supplied}");
        assert_eq!(by_supplied["order_id"], order_id, "the unscoped id resolves to the caller's own order");
        assert_eq!(by_supplied["id"], id.as_str(), "answered under the scoped id");
    }
    // Neither can read the other's order by its scoped id.
    let (status, _) = status_of(&edge.base, &beta_id, false).await;
    assert_eq!(status, 404, "acme-shop asking for beta-shop's order");
    let (status, _) = status_of(&edge.base, &acme_id, true).await;
    assert_eq!(status, 404, "beta-shop asking for acme-shop's order");
}

/// A TCP proxy in front of Redis that, once armed with a byte pattern, holds every byte a
/// connection sends from the chunk holding the pattern on (never forwarding it), until cut:
/// then it drops what it held and closes the connections, and new ones pass again. Bytes held
/// this way never reach Redis, as when the connection breaks with a command in flight.
struct StallProxy {
    addr: String,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    stalled: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl StallProxy {
    async fn start(upstream: String) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let armed: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let stalled = Arc::new(AtomicBool::new(false));
        let (cut, _) = tokio::sync::watch::channel(0_u64);
        let (a, s, c) = (Arc::clone(&armed), Arc::clone(&stalled), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (armed, stalled, cut) = (Arc::clone(&a), Arc::clone(&s), c.subscribe());
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, armed, stalled, cut).await;
                    }
                });
            }
        });
        StallProxy { addr, armed, stalled, cut }
    }

    /// Holds a connection's bytes from the first chunk containing `pattern`.
    fn arm(&self, pattern: &[u8]) {
        *self.armed.lock().expect("lock") = Some(pattern.to_vec());
    }

    /// Drops the held bytes, closes every connection open now, and lets new ones pass.
    fn cut(&self) {
        *self.armed.lock().expect("lock") = None;
        self.cut.send_modify(|n| *n += 1);
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    stalled: Arc<AtomicBool>,
    mut cut: tokio::sync::watch::Receiver<u64>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let to_client = tokio::io::copy(&mut server_read, &mut client_write);
    let to_server = async {
        let mut buf = vec![0_u8; 64 * 1024];
        // The end of the previous chunk, so a pattern split across two reads is still seen.
        let mut tail: Vec<u8> = Vec::new();
        let mut holding = false;
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !holding {
                let pattern = armed.lock().expect("lock").clone();
                if let Some(pattern) = pattern {
                    let mut window = tail.clone();
                    window.extend_from_slice(&buf[..n]);
                    if window.windows(pattern.len()).any(|w| w == pattern.as_slice()) {
                        holding = true;
                        stalled.store(true, Ordering::SeqCst);
                    }
                    let keep = pattern.len().min(window.len());
                    tail = window[window.len() - keep..].to_vec();
                }
            }
            if holding {
                continue;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = to_client => {}
        () = to_server => {}
        _ = cut.changed() => {}
    }
}

/// Records whose decoded state has `order_id`, as (key, status); in topic order, duplicates kept.
async fn states_of(topic: &str, order_id: &str) -> Vec<(String, String)> {
    state_records(topic)
        .await
        .into_iter()
        .filter(|(_, s)| s["order_id"] == order_id)
        .map(|(k, s)| (k, s["status"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_redis_lost_the_answer_makes_no_second_order() {
    let prefix = unique_prefix("identity-redis");
    let topology = test_topology();
    provision(&topology, &prefix);
    publish_stock(&prefix).await;
    let redis = common::service("HUB_REDIS_URL", "redis://127.0.0.1:6379");
    let upstream = redis.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let proxy = StallProxy::start(upstream).await;
    let edge = Edge::start(
        &topology,
        &prefix,
        &[
            "--redis-url",
            &format!("redis://{}", proxy.addr),
            "--redis-timeout",
            "300ms",
            "--idempotency-pending-ttl",
            "2s",
        ],
    );
    let _processor = Processor::start(&topology, &prefix, "identity", &[]);

    // Recording the answer is the only command carrying a stored 202 response: the reservation
    // before it passes, the record stalls past --redis-timeout.
    proxy.arm(br#""r":{"status":202"#);
    let body = order_body("IDEM-1");
    let key = format!("{prefix}idem-1");
    let (status, first) = post_acme(&edge.base, &body, None, Some(&key)).await;
    assert_eq!(status, 202, "the broker has the record, so the partner is told: {first}");
    assert!(proxy.stalled.load(Ordering::SeqCst), "the proxy stalled the record step");
    // The held command never reaches Redis; the key stays pending until its window passes.
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The partner retries with the same key (and without X-Correlation-Id, as the first time).
    // The edge may need a request to notice the cut connection: a 503 is a refusal, retried.
    let mut answers = Vec::new();
    let retry = loop {
        let (status, answer) = post_acme(&edge.base, &body, None, Some(&key)).await;
        answers.push(status);
        if status != 503 || answers.len() >= 10 {
            break (status, answer);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Exactly one order: wait until it is validated, leave room for a second copy, count.
    let topic = format!("{prefix}orders.state");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !states_of(&topic, "IDEM-1").await.iter().any(|(_, s)| s == "VALIDATED") {
        assert!(Instant::now() < deadline, "the order was never validated:\n{}", edge.log_text());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let states = states_of(&topic, "IDEM-1").await;
    let validated: Vec<&(String, String)> = states.iter().filter(|(_, s)| s == "VALIDATED").collect();
    assert_eq!(validated.len(), 1, "one order validated once: {states:?}");
    let id = first["correlation_id"].as_str().expect("id");
    assert!(states.iter().all(|(k, _)| k == id), "every state record is the one order {id}: {states:?}");
    let inbound = kafka::read_all(&format!("{prefix}orders.inbound"), "read_committed");
    assert_eq!(inbound.len(), 2, "the retry after the lost answer was produced again (same event id)");
    let dispatches: usize = counts(&format!("{prefix}orders.commands"), "read_committed")
        .iter()
        .filter(|((_, kind), _)| kind == "dispatch_command")
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(dispatches, 1, "one dispatch command in all");

    // What the partner was told: the same order and event each time.
    eprintln!("first: {first}\nretry answers {answers:?}, last: {}", retry.1);
    assert_eq!(retry.0, 202, "the retry is accepted: {}", retry.1);
    assert_eq!(retry.1["correlation_id"], first["correlation_id"], "the same order");
    assert_eq!(retry.1["event_id"], first["event_id"], "the same event");
    // A third attempt, now that Redis holds the answer: the answer again, nothing written.
    let (status, third) = post_acme(&edge.base, &body, None, Some(&key)).await;
    assert_eq!(status, 202, "{third}");
    assert_eq!(third["event_id"], first["event_id"]);
    assert_eq!(third["offset"], retry.1["offset"], "replayed, not produced again");
}
