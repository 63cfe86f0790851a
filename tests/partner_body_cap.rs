//! A partner that answers `200` with an endless body: the sink reads at most
//! `MAX_RESPONSE_BODY` (64 KiB) of it, closes the connection, and records the delivery as
//! `DELIVERED` with the partner's reference and a detail saying the body was cut. The partner
//! is a real HTTP/1.1 server on loopback that counts what it wrote and sees the close.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::edge::provision;
use common::kafka::read_all;
use common::sinks::{dispatch, produce, topology, Partner, SinkProcess};
use common::unique_prefix;
use rdkafka::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 16 * 1024;

/// What one connection of the endless partner saw.
#[derive(Debug, Default, Clone)]
struct Connection {
    idempotency_key: String,
    /// Body bytes the socket accepted before the client went away.
    written: usize,
    /// A write failed: the client closed the connection.
    closed: bool,
}

/// An ERP that answers every request `200` with `Location: /orders/REF-<key>` and a chunked JSON
/// body that never ends: `{"id":"REF-<key>","padding":"xxxx...` for as long as the client reads.
async fn endless_partner() -> (String, Arc<Mutex<Vec<Arc<Mutex<Connection>>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let connections: Arc<Mutex<Vec<Arc<Mutex<Connection>>>>> = Arc::default();
    let all = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let connection = Arc::new(Mutex::new(Connection::default()));
            all.lock().expect("lock").push(Arc::clone(&connection));
            tokio::spawn(async move {
                // The request head (and whatever of the body came with it: never needed here).
                let mut buffer = vec![0u8; 64 * 1024];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = String::from_utf8_lossy(&buffer[..read]).into_owned();
                let key = head
                    .lines()
                    .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("idempotency-key")))
                    .map(|(_, v)| v.trim().to_owned())
                    .unwrap_or_default();
                connection.lock().expect("lock").idempotency_key.clone_from(&key);
                let start = format!("{{\"id\":\"REF-{key}\",\"padding\":\"");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlocation: /orders/REF-{key}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{start}\r\n",
                    start.len()
                );
                if socket.write_all(answer.as_bytes()).await.is_err() {
                    connection.lock().expect("lock").closed = true;
                    return;
                }
                let chunk = format!("{CHUNK:x}\r\n{}\r\n", "x".repeat(CHUNK));
                loop {
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        connection.lock().expect("lock").closed = true;
                        return;
                    }
                    connection.lock().expect("lock").written += CHUNK;
                }
            });
        }
    });
    (url, connections)
}

/// The resident set of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_partner_body_is_capped_and_the_delivery_completes() {
    const COMMANDS: usize = 5;
    let (erp, connections) = endless_partner().await;
    let shop = Partner::ok().await;
    let topology = topology(
        &erp,
        &shop.url,
        "rate_limit = { per_second = 100, burst = 10 }\nretry = { initial_backoff = \"100ms\", max_backoff = \"200ms\", max_attempts = 3 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let prefix = unique_prefix("sink-body-cap");
    provision(&topology, &prefix);
    let commands: Vec<_> = (0..COMMANDS).map(|i| dispatch(&format!("endless-{i}"), 0)).collect();
    produce(&format!("{prefix}orders.commands"), "dispatch_command", &commands, None).await;
    let mut sink = SinkProcess::start(&topology, &prefix, &["erp-dispatch"], "body-cap");
    sink.wait_ready(Duration::from_secs(60));

    let results_topic = format!("{prefix}orders.results");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut peak_rss = 0;
    while common::kafka::count(&results_topic) < COMMANDS as i64 {
        assert!(Instant::now() < deadline, "no {COMMANDS} results in 90 s:\n{}", sink.log_text());
        peak_rss = peak_rss.max(rss_kib(sink.child.id()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak_rss = peak_rss.max(rss_kib(sink.child.id()));

    let decoder = common::avro::decoder();
    let mut results = HashMap::new();
    for message in read_all(&results_topic, "read_committed") {
        let (_, result) = common::avro::decode(&decoder, message.payload().expect("value"), "delivery_result").await;
        let id = result["command_id"].as_str().unwrap_or_default().to_owned();
        assert!(results.insert(id.clone(), result).is_none(), "a second result for {id}");
    }
    assert_eq!(results.len(), COMMANDS, "one result per command");
    for command in &commands {
        let id = command["command_id"].as_str().expect("id");
        let r = &results[id];
        assert_eq!(
            (r["outcome"].as_str(), r["http_status"].as_i64(), r["attempts"].as_i64()),
            (Some("DELIVERED"), Some(200), Some(1)),
            "{r}"
        );
        // The JSON body was cut, so the reference is the Location header's.
        assert_eq!(r["partner_reference"].as_str(), Some(format!("/orders/REF-{id}").as_str()), "{r}");
        assert_eq!(r["detail"].as_str(), Some("response body truncated at 65536 bytes (the rest was not read)"), "{r}");
    }

    // Every connection was closed by the sink after the cap, not drained: the partner could
    // write only the cap plus what loopback socket buffers hold.
    let wait = Instant::now() + Duration::from_secs(20);
    loop {
        let snapshot: Vec<Connection> =
            connections.lock().expect("lock").iter().map(|c| c.lock().expect("lock").clone()).collect();
        let open = snapshot.iter().filter(|c| !c.closed).count();
        if open == 0 {
            assert_eq!(snapshot.len(), COMMANDS, "one connection per delivery (no retry): {snapshot:?}");
            for c in &snapshot {
                assert!(
                    c.written < 32 * 1024 * 1024,
                    "the partner wrote {} bytes to {} before the close",
                    c.written,
                    c.idempotency_key
                );
            }
            let total: usize = snapshot.iter().map(|c| c.written).sum();
            eprintln!("{COMMANDS} deliveries: the partner wrote {total} body bytes in all before the sink closed; sink peak RSS {peak_rss} KiB");
            break;
        }
        assert!(Instant::now() < wait, "{open} partner connection(s) still open: {snapshot:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(peak_rss < 256 * 1024, "the sink's resident set reached {peak_rss} KiB");
    sink.kill();
}
