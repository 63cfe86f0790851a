//! The CQL read model in tests: a keyspace per test, `hub sink` running the projector, state
//! records produced straight to the state topic, and the tables read back.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use serde_json::Value;

use super::edge::{
    hub_ok, now_unix, order, signature_headers, test_topology, Edge, BETA_JWT_SECRET, SHOP_KEY, SHOP_WEBHOOK_SECRET,
};
use super::{bootstrap, registry_url, repo, service, Hub, TopologyCopy};

pub fn cql_nodes() -> String {
    service("HUB_CQL_NODES", "127.0.0.1:9042")
}

/// A keyspace no other test run uses.
pub fn unique_keyspace(test: &str) -> String {
    format!("it_{test}_{}", uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap_or("x"))
}

/// The test topology (with beta-shop) whose projector writes to `keyspace`.
pub fn topology_with_keyspace(keyspace: &str) -> TopologyCopy {
    let copy = test_topology();
    let text = std::fs::read_to_string(&copy.path).expect("read");
    assert_eq!(text.matches("keyspace = \"interchange\"").count(), 1);
    let text = text.replace("keyspace = \"interchange\"", &format!("keyspace = \"{keyspace}\""));
    std::fs::write(&copy.path, text).expect("write");
    copy
}

/// [`topology_with_keyspace`] with both partners' `base_url` pointing at a [`partner`] on loopback.
pub async fn topology_with_partner(keyspace: &str) -> TopologyCopy {
    let topology = topology_with_keyspace(keyspace);
    let partner_url = partner().await;
    let text = std::fs::read_to_string(&topology.path)
        .expect("read")
        .replace("base_url = \"http://127.0.0.1:18081\"", &format!("base_url = \"{partner_url}\""))
        .replace("base_url = \"http://127.0.0.1:18082\"", &format!("base_url = \"{partner_url}\""));
    std::fs::write(&topology.path, text).expect("write");
    topology
}

/// A copy of `topology` whose projector sink is named `name` (its own consumer group, so it reads
/// the state topic from the beginning) and writes to `keyspace`.
pub fn replay_topology(keyspace: &str, name: &str) -> TopologyCopy {
    let copy = topology_with_keyspace(keyspace);
    let text = std::fs::read_to_string(&copy.path).expect("read");
    let text = text.replace("name = \"order-projector\"", &format!("name = \"{name}\""));
    std::fs::write(&copy.path, text).expect("write");
    copy
}

/// `hub readmodel migrate` for the topology's keyspace.
pub fn migrate(topology: &TopologyCopy, prefix: &str) {
    hub_ok(topology, prefix, &["--cql-nodes", &cql_nodes(), "readmodel", "migrate"]);
}

pub async fn session() -> Session {
    SessionBuilder::new().known_node(cql_nodes()).build().await.expect("CQL session")
}

pub async fn drop_keyspace(session: &Session, keyspace: &str) {
    let _ = session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ()).await;
}

/// Whether the [`partner`]s of this test process refuse orders whose id starts `REFUSE-` (422);
/// once cleared, they take them.
pub static REFUSING: AtomicBool = AtomicBool::new(true);

/// The ERP dispatches (`POST /orders`) of `REFUSE-` orders the [`partner`]s took (201), since the
/// test process started.
pub static REFUSED_ONCE_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// A partner on loopback that answers 201 with an id to everything, except 422 to a body that
/// names an order id starting `REFUSE-` while [`REFUSING`] (a partner refusing one order).
pub async fn partner() -> String {
    let app = axum::Router::new().fallback(|uri: axum::http::Uri, body: axum::body::Bytes| async move {
        if String::from_utf8_lossy(&body).contains("\"REFUSE-") {
            if REFUSING.load(Ordering::SeqCst) {
                let refusal = serde_json::json!({ "error": "unknown customer" });
                return (axum::http::StatusCode::UNPROCESSABLE_ENTITY, axum::Json(refusal));
            }
            if uri.path() == "/orders" {
                REFUSED_ONCE_TAKEN.fetch_add(1, Ordering::SeqCst);
            }
        }
        (
            axum::http::StatusCode::CREATED,
            axum::Json(serde_json::json!({ "id": format!("ERP-{}", uuid::Uuid::new_v4()) })),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// `hub run` (every role, the projector included) for `prefix` on `topology`.
pub fn hub_run(topology: &TopologyCopy, prefix: &str, port: u16) -> Hub {
    hub_run_with_metrics(topology, prefix, port).0
}

/// [`hub_run`], and the `/metrics` URLs of its edge, processors and sinks.
pub fn hub_run_with_metrics(topology: &TopologyCopy, prefix: &str, port: u16) -> (Hub, Vec<String>) {
    let processor_port = super::free_port();
    let sink_port = super::free_port();
    let metrics = [port, processor_port, sink_port].map(|p| format!("http://127.0.0.1:{p}/metrics")).to_vec();
    let hub = Hub(Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["--topology", topology.arg(), "--topic-prefix", prefix, "--cql-nodes", &cql_nodes(), "run"])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--processor-listen", &format!("127.0.0.1:{processor_port}")])
        .args(["--sink-listen", &format!("127.0.0.1:{sink_port}"), "--instance-id", "readmodel"])
        .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
        .env("HUB_REGISTRY_URL", registry_url())
        .env("HUB_REDIS_URL", service("HUB_REDIS_URL", "redis://127.0.0.1:6379"))
        .env("HUB_PARTNER_ACME_SHOP_API_KEYS", SHOP_KEY)
        .env("HUB_PARTNER_ACME_SHOP_WEBHOOK_SECRETS", SHOP_WEBHOOK_SECRET)
        .env("HUB_PARTNER_ACME_SHOP_SIGNING_SECRET", SHOP_WEBHOOK_SECRET)
        .env("HUB_PARTNER_ACME_ERP_TOKEN", "erp-token")
        .envs(super::GLOBEX_ENV)
        .env("HUB_TEST_BETA_JWT_SECRET", BETA_JWT_SECRET)
        .env("HUB_LOG_FORMAT", "json")
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(topology.dir.path().join("hub-run.log")).expect("log"))
        .spawn()
        .expect("hub run"));
    (hub, metrics)
}

/// [`hub_run`] on a free port, once its edge is ready: the hub and its edge (as an [`Edge`] whose
/// process is a placeholder; the hub is the one that runs).
pub fn hub_run_ready(topology: &TopologyCopy, prefix: &str) -> (Hub, Edge) {
    let (hub, edge, _) = hub_run_ready_with_metrics(topology, prefix);
    (hub, edge)
}

/// [`hub_run_ready`], and the `/metrics` URLs of its roles.
pub fn hub_run_ready_with_metrics(topology: &TopologyCopy, prefix: &str) -> (Hub, Edge, Vec<String>) {
    let port = super::free_port();
    let (hub, metrics) = hub_run_with_metrics(topology, prefix, port);
    let edge = Edge {
        child: Command::new("true").spawn().expect("placeholder"),
        base: format!("http://127.0.0.1:{port}"),
        log: topology.dir.path().join("hub-run.log"),
    };
    edge.wait_ready(Duration::from_secs(90));
    (hub, edge, metrics)
}

/// A running `hub sink` (only the projector), killed on drop.
pub struct Projector {
    pub child: Child,
    pub health: String,
    pub log: std::path::PathBuf,
}

impl Drop for Projector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Projector {
    /// Starts `hub sink --sink <name>` for `prefix`.
    pub fn start(topology: &TopologyCopy, prefix: &str, name: &str) -> Projector {
        let port = super::free_port();
        let log = topology.dir.path().join(format!("projector-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["--topology", topology.arg(), "--topic-prefix", prefix, "--cql-nodes", &cql_nodes(), "sink"])
            .args(["--sink", name, "--sink-listen", &format!("127.0.0.1:{port}")])
            .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
            .env("HUB_REGISTRY_URL", registry_url())
            .env("HUB_PARTNER_ACME_SHOP_API_KEYS", SHOP_KEY)
            .env("HUB_PARTNER_ACME_SHOP_WEBHOOK_SECRETS", SHOP_WEBHOOK_SECRET)
            .env("HUB_PARTNER_ACME_SHOP_SIGNING_SECRET", SHOP_WEBHOOK_SECRET)
            .env("HUB_PARTNER_ACME_ERP_TOKEN", "erp-token")
            .envs(super::GLOBEX_ENV)
            .env("HUB_TEST_BETA_JWT_SECRET", BETA_JWT_SECRET)
            .env("HUB_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn hub sink");
        Projector { child, health: format!("127.0.0.1:{port}"), log }
    }

    pub fn status(&self, path: &str) -> Option<u16> {
        super::http_status(&self.health, path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Records projected so far (its metrics), 0 when it does not answer.
    pub async fn projected(&self) -> u64 {
        let Ok(response) = reqwest::get(format!("http://{}/metrics", self.health)).await else { return 0 };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("hub_projector_records") && l.contains("outcome=\"projected\""))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .map(|v| v as u64)
            .sum()
    }

    /// Waits until at least `n` records are projected.
    pub async fn wait_projected(&self, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let done = self.projected().await;
            if done >= n {
                return;
            }
            assert!(Instant::now() < deadline, "projected {done} of {n}:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

const STATUSES: [&str; 5] = ["UNKNOWN", "RECEIVED", "VALIDATED", "SENT_TO_PARTNER", "COMPLETED"];

/// The state of `id` at `version` (1 to 4) for acme-shop, as the processor would write it.
pub fn state(id: &str, version: usize) -> serde_json::Value {
    let base = 1_795_000_000_000_i64;
    let history: Vec<serde_json::Value> = (0..version)
        .map(|v| {
            serde_json::json!({ "from": STATUSES[v], "to": STATUSES[v + 1], "event_id": format!("{id}-e{v}"),
                "event_type": "order_received", "at": base + v as i64 * 1000, "detail": null })
        })
        .collect();
    serde_json::json!({
        "correlation_id": id, "order_id": format!("O-{id}"), "partner": "acme-shop", "status": STATUSES[version],
        "version": version, "items": [{ "sku": "SKU-1", "quantity": 2, "unit_price": "10.00" }], "currency": "EUR",
        "subtotal": "20.00", "discount": "0.00", "total": "20.00", "dispatch_command_id": null,
        "partner_reference": if version >= 4 { serde_json::json!(format!("ERP-{id}")) } else { serde_json::Value::Null },
        "failure_reason": null, "deadline": null, "callback_url": null, "applied_event_ids": [],
        "history": history, "created_at": base, "updated_at": base + version as i64 * 1000,
    })
}

/// Produces states (key = correlation id) to `topic`, in order, acknowledged.
pub async fn produce_states(topic: &str, states: &[serde_json::Value]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let encoder = super::avro::encoder();
    for state in states {
        let payload = super::avro::encode_with(&encoder, "order_state", topic, None, state).await;
        let key = state["correlation_id"].as_str().expect("key").to_owned();
        producer
            .send(FutureRecord::to(topic).key(&key).payload(&payload), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

type OrderRow = (String, String, String, i64, Option<String>, Option<String>, Option<i64>);
type EventRow = (String, i64, String, String, String, Option<i64>);
type LookupRow = (String, String, String, String, i64, Option<i64>);

/// Every row of the keyspace (orders with the write time of their status, events with the write
/// time of theirs), sorted: equal when the tables hold the same data.
pub async fn snapshot(session: &Session, keyspace: &str) -> Vec<String> {
    let mut out = Vec::new();
    let orders = session
        .query_unpaged(
            format!(
                "SELECT partner, correlation_id, status, version, partner_reference, items_json, writetime(status) \
                 FROM {keyspace}.orders"
            ),
            (),
        )
        .await
        .expect("read orders")
        .into_rows_result()
        .expect("rows");
    for row in orders.rows::<OrderRow>().expect("typed") {
        out.push(format!("order {:?}", row.expect("row")));
    }
    let events = session
        .query_unpaged(
            format!(
                "SELECT correlation_id, version, to_status, event_id, event_type, writetime(to_status) \
                 FROM {keyspace}.order_events"
            ),
            (),
        )
        .await
        .expect("read events")
        .into_rows_result()
        .expect("rows");
    for row in events.rows::<EventRow>().expect("typed") {
        out.push(format!("event {:?}", row.expect("row")));
    }
    let lookups = session
        .query_unpaged(
            format!(
                "SELECT partner, order_id, correlation_id, status, version, writetime(status) \
                 FROM {keyspace}.orders_by_order_id"
            ),
            (),
        )
        .await
        .expect("read lookups")
        .into_rows_result()
        .expect("rows");
    for row in lookups.rows::<LookupRow>().expect("typed") {
        out.push(format!("lookup {:?}", row.expect("row")));
    }
    out.sort();
    out
}

/// The (status, version) of `id` in the orders table.
pub async fn order_row(session: &Session, keyspace: &str, id: &str) -> Option<(String, i64)> {
    session
        .query_unpaged(
            format!("SELECT status, version FROM {keyspace}.orders WHERE partner = 'acme-shop' AND correlation_id = ?"),
            (id,),
        )
        .await
        .expect("read")
        .into_rows_result()
        .expect("rows")
        .maybe_first_row::<(String, i64)>()
        .expect("typed")
}

/// Versions of `id`'s timeline, newest first.
pub async fn timeline(session: &Session, keyspace: &str, id: &str) -> Vec<i64> {
    session
        .query_unpaged(
            format!("SELECT version FROM {keyspace}.order_events WHERE partner = 'acme-shop' AND correlation_id = ?"),
            (id,),
        )
        .await
        .expect("read")
        .into_rows_result()
        .expect("rows")
        .rows::<(i64,)>()
        .expect("typed")
        .map(|r| r.expect("row").0)
        .collect()
}

/// acme-shop's lookup rows of `order_id`: (correlation id, status, version), each checked to be
/// written with its version as timestamp (the projector's guard).
pub async fn lookup_rows(session: &Session, keyspace: &str, order_id: &str) -> Vec<(String, String, i64)> {
    lookup_rows_of(session, keyspace, "acme-shop", order_id).await
}

/// `partner`'s lookup rows of `order_id`, as [`lookup_rows`].
pub async fn lookup_rows_of(
    session: &Session,
    keyspace: &str,
    partner: &str,
    order_id: &str,
) -> Vec<(String, String, i64)> {
    session
        .query_unpaged(
            format!(
                "SELECT correlation_id, status, version, writetime(status) FROM {keyspace}.orders_by_order_id \
                 WHERE partner = ? AND order_id = ?"
            ),
            (partner, order_id),
        )
        .await
        .expect("read")
        .into_rows_result()
        .expect("rows")
        .rows::<(String, String, i64, i64)>()
        .expect("typed")
        .map(|r| {
            let (id, status, version, written) = r.expect("row");
            assert_eq!(written, version, "{id}: written with its version as timestamp");
            (id, status, version)
        })
        .collect()
}

/// Posts an order as acme-shop; returns the 202 body.
pub async fn post_order(client: &reqwest::Client, edge: &Edge, correlation: &str, order_id: &str) -> Value {
    let mut body = order(order_id);
    body.as_object_mut().expect("object").remove("callback_url");
    let body = serde_json::to_vec(&body).expect("json");
    let mut request = client
        .post(edge.url("/api/v1/orders"))
        .header("x-api-key", SHOP_KEY)
        .header("x-correlation-id", correlation)
        .body(body.clone());
    for (name, value) in signature_headers(&body, now_unix()) {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("answer");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    response.json().await.expect("json")
}

/// GET as acme-shop (API key, no signature needed for reads).
pub async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client.get(url).header("x-api-key", SHOP_KEY).send().await.expect("answer")
}

/// Polls the status API until the order is in `status`; returns the body and ETag.
pub async fn wait_status(client: &reqwest::Client, url: &str, status: &str) -> (Value, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = get(client, url).await;
        if response.status() == reqwest::StatusCode::OK {
            let etag = response.headers()["etag"].to_str().expect("etag").to_owned();
            let body: Value = response.json().await.expect("json");
            if body["status"] == status {
                return (body, etag);
            }
        }
        assert!(Instant::now() < deadline, "{url} never reached {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
