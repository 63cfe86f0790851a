//! Real `hub process` instances and a stand-in ERP for processor tests.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

use super::{bootstrap, registry_url, repo, TopologyCopy};

/// What the order saga's log lines carry (the processor role also runs the returns flow's).
pub const ORDER_SAGA: &str = "\"processor\":\"order-saga\"";

/// A running `hub process`, killed on drop.
pub struct Processor {
    pub child: Child,
    pub health: String,
    pub log: std::path::PathBuf,
    pub instance: String,
}

impl Drop for Processor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Processor {
    /// Starts `hub process` as `instance` and waits until it has partitions and its state.
    pub fn start(topology: &TopologyCopy, prefix: &str, instance: &str, args: &[&str]) -> Processor {
        let p = Self::spawn(topology, prefix, instance, args);
        p.wait_ready(Duration::from_secs(90));
        p
    }

    /// Starts `hub process` without waiting.
    pub fn spawn(topology: &TopologyCopy, prefix: &str, instance: &str, args: &[&str]) -> Processor {
        let port = super::free_port();
        let log = topology.dir.path().join(format!("process-{instance}-{port}.log"));
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["--topology", topology.arg(), "--topic-prefix", prefix, "process", "--instance-id", instance])
            .args(["--processor-listen", &format!("127.0.0.1:{port}"), "--session-timeout", "6s"])
            .args(args)
            .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
            .env("HUB_REGISTRY_URL", registry_url())
            .env("HUB_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn hub process");
        Processor { child, health: format!("127.0.0.1:{port}"), log, instance: instance.to_owned() }
    }

    pub fn status(&self, path: &str) -> Option<u16> {
        super::http_status(&self.health, path)
    }

    pub fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.status("/readyz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("processor {} not ready:\n{}", self.instance, self.log_text());
    }

    /// SIGKILL: no shutdown, no commit, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([format!("-{signal}"), self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {}", self.instance);
    }

    /// Waits for the process to exit (after SIGTERM); false if it is still running at `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The value of an unlabelled-or-first sample of metric `name` on `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.health).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.health).ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).ok()?;
        body.lines()
            .find(|l| l.starts_with(name) && (name.ends_with('}') || l[name.len()..].starts_with([' ', '{'])))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The sample of `name` whose labels are exactly `labels` (e.g. `processor="order-saga"`).
    pub fn metric_labelled(&self, name: &str, labels: &str) -> Option<f64> {
        self.metric(&format!("{name}{{{labels}}}"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A stand-in for the sinks and the ERP: answers every committed dispatch command on
/// `commands` with a delivery result on `results`, as `answer(order_id)` says (None: silence).
pub struct FakeErp {
    stop: Arc<AtomicBool>,
    pub answered: Arc<AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeErp {
    pub fn start(commands: &str, results: &str, answer: fn(&str) -> Option<&'static str>) -> FakeErp {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", format!("fake-erp-{}", uuid::Uuid::new_v4()))
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&[commands]).expect("subscribe");
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()
            .expect("producer");
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (stop2, answered2, results) = (Arc::clone(&stop), Arc::clone(&answered), results.to_owned());
        let task = tokio::spawn(async move {
            let decoder = super::avro::decoder();
            let encoder = super::avro::encoder();
            while !stop2.load(Ordering::Relaxed) {
                let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await else {
                    continue;
                };
                let kind = message
                    .headers()
                    .and_then(|h| h.iter().find(|x| x.key == "event-type").and_then(|x| x.value).map(|v| v.to_vec()));
                if kind.as_deref() != Some(b"dispatch_command".as_slice()) {
                    continue;
                }
                let Some(payload) = message.payload() else { continue };
                let (_, command) = super::avro::decode(&decoder, payload, "dispatch_command").await;
                let order_id = command["order_id"].as_str().unwrap_or_default().to_owned();
                let Some(outcome) = answer(&order_id) else { continue };
                let command_id = command["command_id"].as_str().unwrap_or_default();
                let correlation_id = command["correlation_id"].as_str().unwrap_or_default().to_owned();
                let result = serde_json::json!({
                    "event_id": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, command_id.as_bytes()).to_string(),
                    "command_id": command_id,
                    "correlation_id": correlation_id,
                    "partner": "acme-erp",
                    "command_type": "dispatch_command",
                    "outcome": outcome,
                    "http_status": if outcome == "DELIVERED" { 201 } else { 422 },
                    "partner_reference": if outcome == "DELIVERED" { Some(format!("ERP-{order_id}")) } else { None },
                    "attempts": 1,
                    "completed_at": 1_700_000_000_000_i64,
                });
                let bytes = super::avro::encode_with(&encoder, "delivery_result", &results, None, &result).await;
                let headers = OwnedHeaders::new()
                    .insert(Header { key: "correlation-id", value: Some(correlation_id.as_str()) })
                    .insert(Header { key: "event-id", value: result["event_id"].as_str() })
                    .insert(Header { key: "event-type", value: Some("delivery_result") })
                    .insert(Header { key: "producer-role", value: Some("fake-erp") });
                let record = FutureRecord::to(&results).key(&correlation_id).payload(&bytes).headers(headers);
                tokio::time::timeout(Duration::from_secs(30), producer.send(record, Duration::from_secs(10)))
                    .await
                    .expect("result produced within 30 s")
                    .expect("result produced");
                answered2.fetch_add(1, Ordering::Relaxed);
            }
        });
        FakeErp { stop, answered, task: Some(task) }
    }

    /// Stops answering. The task gets a moment to finish its current record, then is aborted:
    /// a test never waits on it without a bound.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// Produces orders straight to the inbound topic with a Confluent-compatible encoder (not the
/// edge): key = correlation id, murmur2, the documented headers.
pub async fn produce_orders(topic: &str, orders: &[(String, serde_json::Value)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut sends = Vec::new();
    // One encoder for the batch: the registry is asked once, not once per order (thousands of
    // requests made this the slowest part of the crash tests under load).
    let encoder = super::avro::encoder();
    for (correlation_id, order) in orders {
        let bytes = super::avro::encode_with(&encoder, "order_received", topic, None, order).await;
        let event_id = order["event_id"].as_str().unwrap_or_default().to_owned();
        let (producer, topic, correlation_id) = (producer.clone(), topic.to_owned(), correlation_id.clone());
        sends.push(async move {
            let headers = OwnedHeaders::new()
                .insert(Header { key: "correlation-id", value: Some(correlation_id.as_str()) })
                .insert(Header { key: "event-id", value: Some(event_id.as_str()) })
                .insert(Header { key: "event-type", value: Some("order_received") })
                .insert(Header { key: "producer-role", value: Some("upstream-test") });
            let record = FutureRecord::to(&topic).key(&correlation_id).payload(&bytes).headers(headers);
            tokio::time::timeout(Duration::from_secs(60), producer.send(record, Duration::from_secs(30)))
                .await
                .expect("order produced within 60 s")
                .expect("order produced");
        });
    }
    futures::future::join_all(sends).await;
}

/// An order as an upstream system would publish it.
pub fn upstream_order(correlation_id: &str, order_id: &str, sku: &str, quantity: i32) -> serde_json::Value {
    serde_json::json!({
        "event_id": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, correlation_id.as_bytes()).to_string(),
        "correlation_id": correlation_id,
        "order_id": order_id,
        "partner": "acme-shop",
        "customer_id": "cust-1",
        "items": [{ "sku": sku, "quantity": quantity, "unit_price": "250.00" }, { "sku": "SKU-B", "quantity": 1, "unit_price": "19.90" }],
        "currency": "BRL",
        "received_at": 1_700_000_000_000_i64,
    })
}

/// Publishes inventory levels to the lookup topic.
pub async fn publish_inventory(topic: &str, levels: &[(&str, i64)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let encoder = super::avro::encoder();
    for (sku, available) in levels {
        let json = serde_json::json!({ "sku": sku, "available": available, "updated_at": 1_700_000_000_000_i64 });
        let bytes = super::avro::encode_with(&encoder, "inventory_level", topic, None, &json).await;
        producer
            .send(FutureRecord::to(topic).key(*sku).payload(&bytes), Duration::from_secs(10))
            .await
            .expect("level produced");
    }
}
