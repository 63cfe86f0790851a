//! Sink tests' pieces: a scriptable partner (a real HTTP server on loopback that records every
//! call), commands produced straight to the commands topic, and `hub sink` processes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use super::{bootstrap, registry_url, repo, TopologyCopy};

pub const ERP_TOKEN: &str = "erp-token-for-tests";
pub const SIGNING_SECRET: &str = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLXRlc3RzLTAxMjM0NTY=";

/// One request a partner received.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    /// Method and path (with the query) the call was made to.
    pub method: String,
    pub path: String,
    pub key: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub json: serde_json::Value,
}

/// How the partner answers a call: status and extra headers. `attempt` counts calls with the
/// same Idempotency-Key, from 1.
pub type Answer = Arc<dyn Fn(&Call, usize) -> (u16, Vec<(&'static str, String)>) + Send + Sync>;

/// A partner on loopback; `status_override` (non-zero) answers every call with that status.
#[derive(Clone)]
pub struct Partner {
    pub url: String,
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub status_override: Arc<AtomicU16>,
    /// Milliseconds each answer waits (read again while waiting: lowering it releases the
    /// calls held).
    pub delay_ms: Arc<AtomicU64>,
}

impl Partner {
    /// Starts a partner answering with `answer`.
    pub async fn start(answer: Answer) -> Partner {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let status_override = Arc::new(AtomicU16::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (state, over, delay) = (Arc::clone(&calls), Arc::clone(&status_override), Arc::clone(&delay_ms));
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (state, answer, over, delay) =
                    (Arc::clone(&state), Arc::clone(&answer), Arc::clone(&over), Arc::clone(&delay));
                async move {
                    let key =
                        headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let (method, path) = (method.to_string(), uri.to_string());
                    let call =
                        Call { at: Instant::now(), method, path, key: key.clone(), headers, body: body.to_vec(), json };
                    let attempt = {
                        let mut calls = state.lock().expect("lock");
                        calls.push(call.clone());
                        calls.iter().filter(|c| c.key == key).count()
                    };
                    // Re-read while waiting: lowering `delay_ms` releases the calls held now.
                    let arrived = Instant::now();
                    loop {
                        let wait = Duration::from_millis(delay.load(Ordering::Relaxed));
                        let waited = arrived.elapsed();
                        if waited >= wait {
                            break;
                        }
                        tokio::time::sleep((wait - waited).min(Duration::from_millis(50))).await;
                    }
                    let (status, extra) = match over.load(Ordering::Relaxed) {
                        0 => answer(&call, attempt),
                        s => (s, vec![]),
                    };
                    let code = StatusCode::from_u16(status).expect("status");
                    let mut response =
                        (code, axum::Json(serde_json::json!({ "id": format!("REF-{key}"), "error": "test answer" })))
                            .into_response();
                    for (name, value) in extra {
                        response.headers_mut().insert(name, value.parse().expect("header"));
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Partner { url: format!("http://{addr}"), calls, status_override, delay_ms }
    }

    /// A partner that answers 201 to everything.
    pub async fn ok() -> Partner {
        Self::start(Arc::new(|_, _| (201, vec![]))).await
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.calls.lock().expect("lock").len()
    }

    /// Distinct Idempotency-Keys received.
    pub fn keys(&self) -> std::collections::HashSet<String> {
        self.calls().into_iter().map(|c| c.key).collect()
    }

    /// Calls answered 2xx per key would need the answers; count calls per key instead.
    pub fn per_key(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for c in self.calls() {
            *out.entry(c.key).or_default() += 1;
        }
        out
    }
}

/// The shipped topology with the partners at `erp` and `shop`; `erp_outbound` replaces the ERP's
/// rate limit and retry lines (and may add a breaker line), `shop_rate` the shop's rate limit.
pub fn topology(erp: &str, shop: &str, erp_outbound: &str, shop_rate: &str) -> TopologyCopy {
    TopologyCopy::new(&[
        ("base_url = \"http://127.0.0.1:18081\"", &format!("base_url = \"{shop}\"")),
        ("base_url = \"http://127.0.0.1:18082\"", &format!("base_url = \"{erp}\"")),
        (
            "rate_limit = { per_second = 500, burst = 200 }\nretry = { initial_backoff = \"1s\", max_backoff = \"16s\", max_attempts = 5 }\nauth",
            &format!("{erp_outbound}\nauth"),
        ),
        ("rate_limit = { per_second = 200, burst = 100 }", shop_rate),
    ])
}

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("time").as_millis()).expect("ms")
}

/// A dispatch command for the ERP; `seq` goes in the order id so tests can see the order.
pub fn dispatch(correlation_id: &str, seq: usize) -> serde_json::Value {
    serde_json::json!({
        "command_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": correlation_id,
        "order_id": format!("{correlation_id}/{seq}"),
        "partner": "acme-erp",
        "items": [{ "sku": "SKU-1", "quantity": 1, "unit_price": "10.00" }],
        "total": "10.00",
        "currency": "EUR",
        "deadline": now_ms() + 600_000,
        "issued_at": now_ms(),
    })
}

/// A cancel of the dispatch `dispatch_command_id` for the ERP.
pub fn cancel(correlation_id: &str, dispatch_command_id: &str) -> serde_json::Value {
    serde_json::json!({
        "command_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": correlation_id,
        "order_id": format!("{correlation_id}/0"),
        "partner": "acme-erp",
        "dispatch_command_id": dispatch_command_id,
        "partner_reference": format!("REF-{dispatch_command_id}"),
        "reason": "the order was compensated before the dispatch was accepted",
        "issued_at": now_ms(),
    })
}

/// A notification for the client (to the partner's configured URL).
pub fn notification(correlation_id: &str) -> serde_json::Value {
    serde_json::json!({
        "command_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": correlation_id,
        "order_id": correlation_id,
        "partner": "acme-shop",
        "callback_url": null,
        "event_type": "order.completed",
        "status": "COMPLETED",
        "payload_json": serde_json::json!({ "type": "order.completed", "order_id": correlation_id }).to_string(),
        "issued_at": now_ms(),
    })
}

/// Produces commands (`contract`, JSON) to `topic` keyed by correlation id with the hub's headers;
/// `partition` pins them all to one partition when given.
pub async fn produce(topic: &str, contract: &str, commands: &[serde_json::Value], partition: Option<i32>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let full = match contract {
        "dispatch_command" => "io.interchange.orders.DispatchCommand",
        "cancel_command" => "io.interchange.orders.CancelCommand",
        _ => "io.interchange.orders.NotificationCommand",
    };
    let mut sends = Vec::new();
    // One encoder for the batch: a new one per record built a TLS client from the system's CA
    // bundle and asked the registry again, minutes of CPU for this file's 4,000-record tests.
    let encoder = super::avro::encoder();
    for command in commands {
        let bytes = super::avro::encode_with(&encoder, contract, topic, Some(full), command).await;
        let (producer, topic) = (producer.clone(), topic.to_owned());
        let key = command["correlation_id"].as_str().expect("key").to_owned();
        let id = command["command_id"].as_str().expect("id").to_owned();
        sends.push(async move {
            let headers = OwnedHeaders::new()
                .insert(Header { key: "correlation-id", value: Some(key.as_str()) })
                .insert(Header { key: "event-id", value: Some(id.as_str()) })
                .insert(Header { key: "event-type", value: Some(contract) });
            let mut record = FutureRecord::to(&topic).key(&key).payload(&bytes).headers(headers);
            if let Some(p) = partition {
                record = record.partition(p);
            }
            producer.send(record, Duration::from_secs(30)).await.expect("command produced");
        });
        if sends.len() >= 500 {
            futures::future::join_all(sends.drain(..)).await;
        }
    }
    futures::future::join_all(sends).await;
}

/// A running `hub sink`, killed on drop.
pub struct SinkProcess {
    pub child: Child,
    pub health: String,
    pub log: std::path::PathBuf,
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SinkProcess {
    /// Starts `hub sink` for `prefix` running `sinks`; `name` tells its log apart.
    pub fn start(topology: &TopologyCopy, prefix: &str, sinks: &[&str], name: &str) -> SinkProcess {
        Self::start_with(topology, prefix, sinks, name, &[])
    }

    /// As `start`, with extra `hub sink` arguments.
    pub fn start_with(
        topology: &TopologyCopy,
        prefix: &str,
        sinks: &[&str],
        name: &str,
        extra: &[&str],
    ) -> SinkProcess {
        let port = super::free_port();
        let log = topology.dir.path().join(format!("sink-{name}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_hub"));
        command
            .args(["--topology", topology.arg(), "--topic-prefix", prefix, "sink"])
            .args(["--sink-listen", &format!("127.0.0.1:{port}")])
            .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
            .env("HUB_REGISTRY_URL", registry_url())
            .env("HUB_PARTNER_ACME_ERP_TOKEN", ERP_TOKEN)
            .env("HUB_PARTNER_ACME_SHOP_SIGNING_SECRET", SIGNING_SECRET)
            .envs(super::GLOBEX_ENV)
            .env("HUB_LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(file.try_clone().expect("log"));
        for sink in sinks {
            command.args(["--sink", sink]);
        }
        command.args(extra);
        let child = command.spawn().expect("spawn hub sink");
        SinkProcess { child, health: format!("127.0.0.1:{port}"), log }
    }

    /// Waits until /readyz answers 200.
    pub fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if super::http_status(&self.health, "/readyz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("hub sink not ready in {limit:?}:\n{}", self.log_text());
    }

    /// The sink's /metrics text.
    pub fn metrics(&self) -> String {
        plain::get(&format!("http://{}/metrics", self.health))
    }

    /// The body of `GET path` on `addr` (host:port).
    pub fn scrape(addr: &str, path: &str) -> String {
        plain::get(&format!("http://{addr}{path}"))
    }

    /// A metric's value from /metrics: `name` with every `labels` pair (`partner="acme-erp"`).
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The value of the first sample of `name` carrying every label in `labels`; 0 when absent.
pub fn metric_value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .next()
        .unwrap_or(0.0)
}

mod plain {
    /// GET over plain std I/O (the tests' HTTP client is for async code).
    pub fn get(url: &str) -> String {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (addr, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return String::new() };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
    }
}
