//! The whole pipeline for scenario tests: real HTTP partners on loopback (an ERP that answers,
//! fails for a while or never answers, and the client's callback receiver), and the hub as one
//! `hub run` or as `hub ingest` + `hub process` + `hub sink` child processes.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};

use super::edge::{order, provision, test_topology, SHOP_KEY, SHOP_WEBHOOK_SECRET};
use super::{bootstrap, free_port, http_status, registry_url, repo, service, TopologyCopy};

pub const SIGNING_SECRET: &str = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLXRlc3RzLTAxMjM0NTY=";
pub const ERP_TOKEN: &str = "erp-token";

/// One request a partner received, with the status it answered (0: never answered).
#[derive(Debug, Clone)]
pub struct Call {
    /// The path (and query) called.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub status: u16,
}

pub type Calls = Arc<Mutex<Vec<Call>>>;

/// How a test partner answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// 201 with a reference.
    Answer,
    /// 503 from the first call until `for` has passed, then 201.
    DownFor(Duration),
    /// Records the call and never answers.
    Hang,
}

/// A partner on loopback that records every call; returns its base URL.
pub async fn partner(behaviour: Behaviour) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let first: Arc<Mutex<Option<Instant>>> = Arc::default();
    let state = Arc::clone(&calls);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
        let (state, first) = (Arc::clone(&state), Arc::clone(&first));
        async move {
            let since_first = first.lock().expect("lock").get_or_insert_with(Instant::now).elapsed();
            let status = match behaviour {
                Behaviour::Answer => 201,
                Behaviour::DownFor(down) if since_first < down => 503,
                Behaviour::DownFor(_) => 201,
                Behaviour::Hang => 0,
            };
            let n = {
                let mut calls = state.lock().expect("lock");
                calls.push(Call { path: uri.to_string(), headers, body: body.to_vec(), status });
                calls.len()
            };
            if status == 0 {
                std::future::pending::<()>().await;
            }
            let code = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::CREATED);
            (code, axum::Json(serde_json::json!({ "id": format!("ERP-{n}"), "error": "down for a while" })))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), calls)
}

/// How to run the hub.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    pub erp_url: &'a str,
    pub shop_url: &'a str,
    /// The processor's dispatch deadline (topology `dispatch_deadline`).
    pub deadline: &'a str,
    /// The ERP's per-attempt timeout and retry policy.
    pub erp_timeout: &'a str,
    pub erp_retry: &'a str,
    /// Three processes (`hub ingest`, `hub process`, `hub sink`) instead of one `hub run`.
    pub separate: bool,
    /// With `separate`: `hub process` is not started until [`Pipeline::start_processor`].
    pub processor_later: bool,
    /// Further topology edits (from, to), each of which must match exactly once.
    pub edits: &'a [(&'a str, &'a str)],
    /// Edits of the returns flow's machine (machines/return_saga.toml), likewise.
    pub machine_edits: &'a [(&'a str, &'a str)],
    /// Sinks run besides erp-dispatch and client-notify.
    pub more_sinks: &'a [&'a str],
}

impl<'a> Options<'a> {
    pub fn new(erp_url: &'a str, shop_url: &'a str) -> Self {
        Self {
            erp_url,
            shop_url,
            deadline: "5m",
            erp_timeout: "30s",
            erp_retry: r#"{ initial_backoff = "50ms", max_backoff = "200ms", max_attempts = 3 }"#,
            separate: false,
            processor_later: false,
            edits: &[],
            machine_edits: &[],
            more_sinks: &[],
        }
    }
}

/// A running hub, its children killed on drop.
pub struct Pipeline {
    pub topology: TopologyCopy,
    pub prefix: String,
    pub edge: String,
    /// host:port of the sink role's /metrics.
    pub sink_health: String,
    children: Vec<(Child, std::path::PathBuf)>,
    /// The processor role held back (`processor_later`): its arguments and health port.
    held: Option<(Vec<String>, u16)>,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        for (child, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "topology edit needs exactly one {from:?}");
    text.replacen(from, to, 1)
}

impl Pipeline {
    /// Provisions `prefix`, publishes `stock`, starts the hub and waits until every role is ready.
    pub async fn start(prefix: &str, options: &Options<'_>, stock: &[(&str, i64)]) -> Pipeline {
        let topology = test_topology();
        let mut text = std::fs::read_to_string(&topology.path).expect("read");
        text = edit(&text, "base_url = \"http://127.0.0.1:18081\"", &format!("base_url = \"{}\"", options.shop_url));
        text = edit(&text, "base_url = \"http://127.0.0.1:18082\"", &format!("base_url = \"{}\"", options.erp_url));
        text = edit(&text, "dispatch_deadline = \"5m\"", &format!("dispatch_deadline = \"{}\"", options.deadline));
        text = edit(&text, "timeout = \"30s\"", &format!("timeout = \"{}\"", options.erp_timeout));
        let retry = "retry = { initial_backoff = \"1s\", max_backoff = \"16s\", max_attempts = 5 }";
        text = edit(&text, &format!("{retry}\nauth"), &format!("retry = {}\nauth", options.erp_retry));
        text = edit(
            &text,
            &format!("{retry}\nsigning_secret"),
            "retry = { initial_backoff = \"50ms\", max_backoff = \"200ms\", max_attempts = 5 }\nsigning_secret",
        );
        for (from, to) in options.edits {
            text = edit(&text, from, to);
        }
        std::fs::write(&topology.path, text).expect("write");
        let machine = topology.dir.path().join("machines/return_saga.toml");
        let mut text = std::fs::read_to_string(&machine).expect("read machine");
        for (from, to) in options.machine_edits {
            text = edit(&text, from, to);
        }
        std::fs::write(&machine, text).expect("write machine");
        provision(&topology, prefix);
        super::process::publish_inventory(&format!("{prefix}inventory.levels"), stock).await;
        let (edge_port, processor_port, sink_port) = (free_port(), free_port(), free_port());
        let listen = |port: u16| format!("127.0.0.1:{port}");
        let mut sinks = vec!["--sink", "erp-dispatch", "--sink", "client-notify"];
        for sink in options.more_sinks {
            sinks.extend(["--sink", sink]);
        }
        let roles: Vec<(&str, Vec<String>)> = if options.separate {
            vec![
                ("ingest", vec!["ingest".into(), "--listen".into(), listen(edge_port)]),
                (
                    "process",
                    vec![
                        "process".into(),
                        "--processor-listen".into(),
                        listen(processor_port),
                        "--instance-id".into(),
                        "scenario".into(),
                    ],
                ),
                (
                    "sink",
                    ["sink", "--sink-listen", &listen(sink_port)]
                        .iter()
                        .chain(sinks.iter())
                        .map(|s| (*s).to_owned())
                        .collect(),
                ),
            ]
        } else {
            let mut args: Vec<String> =
                ["run", "--listen", &listen(edge_port), "--processor-listen"].iter().map(|s| (*s).to_owned()).collect();
            args.extend([listen(processor_port), "--sink-listen".into(), listen(sink_port)]);
            args.extend(["--instance-id".into(), "scenario".into()]);
            args.extend(sinks.iter().map(|s| (*s).to_owned()));
            vec![("run", args)]
        };
        let mut children = Vec::new();
        let mut held = None;
        for (role, args) in roles {
            if role == "process" && options.processor_later {
                held = Some((args, processor_port));
                continue;
            }
            children.push(spawn(&topology, prefix, role, &args));
        }
        let pipeline = Pipeline {
            topology,
            prefix: prefix.to_owned(),
            edge: format!("http://{}", listen(edge_port)),
            sink_health: listen(sink_port),
            children,
            held,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        for port in [edge_port, processor_port, sink_port] {
            if options.processor_later && port == processor_port {
                continue;
            }
            while http_status(&listen(port), "/readyz") != Some(200) {
                assert!(Instant::now() < deadline, "role on port {port} not ready:\n{}", pipeline.logs());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        pipeline
    }

    /// Starts the processor held back with `processor_later` and waits until it is ready.
    pub async fn start_processor(&mut self) {
        let (args, port) = self.held.take().expect("a processor held back");
        self.children.push(spawn(&self.topology, &self.prefix, "process", &args));
        let listen = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(120);
        while http_status(&listen, "/readyz") != Some(200) {
            assert!(Instant::now() < deadline, "processor not ready:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `hub` for `topology` and `prefix`, pointed at the local stack with the test partners'
/// secrets, JSON logs; the caller adds the role's arguments and where its output goes.
pub fn hub_command(topology: &TopologyCopy, prefix: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hub"));
    command
        .args(["--topology", topology.arg(), "--topic-prefix", prefix])
        .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
        .env("HUB_REGISTRY_URL", registry_url())
        .env("HUB_REDIS_URL", service("HUB_REDIS_URL", "redis://127.0.0.1:6379"))
        .env("HUB_PARTNER_ACME_SHOP_API_KEYS", SHOP_KEY)
        .env("HUB_PARTNER_ACME_SHOP_WEBHOOK_SECRETS", SHOP_WEBHOOK_SECRET)
        .env("HUB_PARTNER_ACME_SHOP_SIGNING_SECRET", SIGNING_SECRET)
        .env("HUB_PARTNER_ACME_ERP_TOKEN", ERP_TOKEN)
        .env("HUB_TEST_BETA_JWT_SECRET", super::edge::BETA_JWT_SECRET)
        .envs(super::GLOBEX_ENV)
        .env("HUB_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .current_dir(repo())
        .stdout(Stdio::null());
    command
}

/// Starts `hub <role> args` for `prefix` with the test partners' secrets, logging to a file.
fn spawn(topology: &TopologyCopy, prefix: &str, role: &str, args: &[String]) -> (Child, std::path::PathBuf) {
    let log = topology.dir.path().join(format!("hub-{role}.log"));
    let child = hub_command(topology, prefix)
        .args(args)
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn hub");
    (child, log)
}

impl Pipeline {
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn logs(&self) -> String {
        self.children
            .iter()
            .map(|(_, log)| format!("--- {}\n{}", log.display(), std::fs::read_to_string(log).unwrap_or_default()))
            .collect()
    }

    /// The sink role's Prometheus text.
    pub fn sink_metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.sink_health).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.sink_health)
            .expect("write");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    }

    /// Posts one order as acme-shop with `correlation_id`; returns the status and the JSON answer.
    pub async fn post(
        &self,
        body: &serde_json::Value,
        correlation_id: &str,
        idempotency_key: Option<&str>,
    ) -> (u16, serde_json::Value, bool) {
        self.post_as((SHOP_KEY, SHOP_WEBHOOK_SECRET), body, correlation_id, idempotency_key).await
    }

    /// Posts one order as the partner with `(api key, webhook secret)`; as [`Pipeline::post`].
    pub async fn post_as(
        &self,
        (api_key, webhook_secret): (&str, &str),
        body: &serde_json::Value,
        correlation_id: &str,
        idempotency_key: Option<&str>,
    ) -> (u16, serde_json::Value, bool) {
        self.post_to("/api/v1/orders", (api_key, webhook_secret), body, correlation_id, idempotency_key).await
    }

    /// Posts `body` to the edge's route `path` as the partner with `(api key, webhook secret)`.
    pub async fn post_to(
        &self,
        path: &str,
        (api_key, webhook_secret): (&str, &str),
        body: &serde_json::Value,
        correlation_id: &str,
        idempotency_key: Option<&str>,
    ) -> (u16, serde_json::Value, bool) {
        let body = serde_json::to_vec(body).expect("json");
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.edge))
            .header("x-api-key", api_key)
            .header("x-correlation-id", correlation_id)
            .body(body.clone());
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        for (name, value) in super::edge::signature_headers_with(webhook_secret, &body, super::edge::now_unix()) {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("answer");
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        (status, response.json().await.unwrap_or_default(), replayed)
    }

    /// Posts `n` orders tagged `tag` (the reference order without a callback URL); returns their
    /// correlation ids (scoped: `acme-shop:<id>`).
    pub async fn post_orders(&self, tag: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let id = format!("{}{tag}-{i}", self.prefix);
            let (status, answer, _) = self.post(&order_without_callback(&format!("{tag}-{i}")), &id, None).await;
            assert_eq!(status, 202, "{answer}");
            // The order is keyed by the id scoped to the partner.
            assert_eq!(answer["correlation_id"], format!("acme-shop:{id}"));
            ids.push(format!("acme-shop:{id}"));
        }
        ids
    }
}

/// The tests' reference order, with its notifications going to the partner's own callback.
pub fn order_without_callback(order_id: &str) -> serde_json::Value {
    let mut body = order(order_id);
    body.as_object_mut().expect("object").remove("callback_url");
    body
}

/// Waits until `calls` holds at least `n` calls, or `limit` passes.
pub async fn wait_calls(calls: &Calls, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while calls.lock().expect("lock").len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ERP calls per correlation id: (calls, distinct Idempotency-Keys, 2xx answers). Every call
/// must carry the ERP's bearer token.
pub fn erp_calls(calls: &Calls) -> HashMap<String, (usize, usize, usize)> {
    let mut keys: HashMap<String, (usize, HashSet<String>, usize)> = HashMap::new();
    for call in calls.lock().expect("lock").iter() {
        assert_eq!(call.headers["authorization"], format!("Bearer {ERP_TOKEN}").as_str());
        let body: serde_json::Value = serde_json::from_slice(&call.body).expect("dispatch is JSON");
        let id = body["correlation_id"].as_str().expect("correlation_id").to_owned();
        let key = call.headers["idempotency-key"].to_str().expect("key").to_owned();
        let entry = keys.entry(id).or_default();
        entry.0 += 1;
        entry.1.insert(key);
        entry.2 += usize::from((200..300).contains(&call.status));
    }
    keys.into_iter().map(|(id, (n, k, ok))| (id, (n, k.len(), ok))).collect()
}

/// One notification a shop's callback received, its Standard Webhooks signature checked.
#[derive(Debug, Clone)]
pub struct Notification {
    pub webhook_id: String,
    pub correlation_id: String,
    pub order_id: String,
    pub kind: String,
    /// Whether the signature is valid under the secret it was checked with.
    pub signed: bool,
}

/// Whether `call` carries a valid Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature: v1,<HMAC-SHA256 of "id.timestamp.body">`) under `secret`, computed
/// independently of the hub.
pub fn signed_with(call: &Call, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).expect("key");
    let header = |name: &str| call.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (id, ts, sig) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&call.body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    !id.is_empty() && sig == expected
}

/// Every notification `calls` holds, in arrival order (repeats kept), each checked against `secret`.
pub fn notification_list(calls: &Calls, secret: &str) -> Vec<Notification> {
    calls
        .lock()
        .expect("lock")
        .iter()
        .map(|call| {
            let payload: serde_json::Value = serde_json::from_slice(&call.body).unwrap_or_default();
            let field = |k: &str| payload[k].as_str().unwrap_or_default().to_owned();
            Notification {
                webhook_id: call.headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
                correlation_id: field("correlation_id"),
                order_id: field("order_id"),
                kind: field("type"),
                signed: signed_with(call, secret),
            }
        })
        .collect()
}

/// Notifications per correlation id, de-duplicated by webhook-id: (deliveries, distinct ids,
/// types). Every one must carry a valid Standard Webhooks signature.
pub fn notifications(calls: &Calls) -> HashMap<String, (usize, usize, Vec<String>)> {
    let mut out: HashMap<String, (usize, HashSet<String>, Vec<String>)> = HashMap::new();
    for call in calls.lock().expect("lock").iter() {
        assert!(signed_with(call, SIGNING_SECRET), "notification signature");
        let id = call.headers["webhook-id"].to_str().expect("header").to_owned();
        let payload: serde_json::Value = serde_json::from_slice(&call.body).expect("json");
        let correlation = payload["correlation_id"].as_str().unwrap_or_default().to_owned();
        let entry = out.entry(correlation).or_default();
        entry.0 += 1;
        entry.1.insert(id);
        entry.2.push(payload["type"].as_str().unwrap_or_default().to_owned());
    }
    out.into_iter().map(|(id, (n, ids, types))| (id, (n, ids.len(), types))).collect()
}
