//! `hub-bench console`: the operator console's page times with a realistic amount of history
//! behind it: `--orders` orders projected into the read model (by the projector, from a backlog
//! on the state topic) and `--letters` dead letters on the dead-letter topic, then every page
//! requested `--requests` times in turn; p50/p99/max per page, against the same server's
//! `/healthz` in the same run (the baseline: what HTTP alone costs here).
//!
//! Every run gets a fresh topic prefix and its own keyspace, both deleted at the end.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use clap::Args;
use interchange_console::operators::Operators;
use interchange_console::{ConsoleOptions, Settings};
use interchange_core::cli::Global;
use interchange_core::clock::now_millis;
use interchange_core::kafka::KafkaSettings;
use interchange_core::topology::Topology;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use super::process::{encode, produce};
use super::project::{drop_fresh, fresh_with_keyspace, projected, projector, quantile, start_projector, state};
use super::setup;

/// `hub-bench console` options.
#[derive(Debug, Clone, Args)]
pub struct ConsoleBenchArgs {
    /// Orders in the read model (each with four transitions).
    #[arg(long, default_value_t = 100_000)]
    pub orders: usize,
    /// Dead letters on the dead-letter topic.
    #[arg(long, default_value_t = 10_000)]
    pub letters: usize,
    /// Requests per page.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

/// The page-time goal the issue sets: every page under this at p99.
const GOAL_MS: f64 = 200.0;

const TOKEN: &str = "bench-operator-token";

/// Runs the console benchmark and prints the report.
pub async fn run(global: &Global, args: &ConsoleBenchArgs) -> anyhow::Result<ExitCode> {
    let kafka = setup::kafka(global)?;
    let (topology, ids, keyspace, session) = fresh_with_keyspace(global, &kafka).await?;
    let result = measure(global, args, &kafka, &topology, &ids).await;
    drop_fresh(&topology, &kafka, &session, &keyspace).await?;
    result
}

/// When order `i` of `orders` was created: spread over the last `orders` ms (1,000 orders/s up
/// to now), so the newer half of them is within any page's look-back.
fn created_at(orders: usize, i: usize) -> i64 {
    let orders = i64::try_from(orders).unwrap_or(i64::MAX);
    let i = i64::try_from(i).unwrap_or(0);
    // Fixed at the first call, so every order's time agrees.
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START.get_or_init(now_millis) - orders + i
}

/// Projects `orders` orders (version 4, four transitions each) into the read model, and writes
/// each one's delivery results.
async fn fill_read_model(
    global: &Global,
    kafka: &KafkaSettings,
    topology: &Topology,
    ids: &BTreeMap<String, u32>,
    orders: usize,
) -> anyhow::Result<()> {
    let (sink_name, _) = projector(topology)?;
    let input = topology.sinks.iter().find(|s| s.name == sink_name).map(|s| s.input.clone()).context("input")?;
    let mut backlog = Vec::with_capacity(orders);
    for i in 0..orders {
        let (id, mut json) = state(&topology.topic_prefix, i, 4);
        json["created_at"] = json!(created_at(orders, i));
        json["updated_at"] = json!(created_at(orders, i) + 10);
        backlog.push((id, encode(topology, ids, "order_state", &input, &json)?));
    }
    produce(kafka, &input, backlog).await?;
    // Each order's two delivery results (the ERP's, the client's) on the results topic, stamped
    // with the order's time: what an order's page reads from Kafka.
    let results = topology.topic_named("orders.results").context("no orders.results")?.name.clone();
    let producer: FutureProducer = kafka.producer_config("hub-bench-results").create().context("producer")?;
    let mut pending = Vec::with_capacity(orders * 2);
    for i in 0..orders {
        let (id, _) = state(&topology.topic_prefix, i, 4);
        for (partner, command_type) in [("acme-erp", "dispatch_command"), ("acme-shop", "notification_command")] {
            let json = json!({
                "event_id": uuid::Uuid::new_v4().to_string(), "command_id": uuid::Uuid::new_v4().to_string(),
                "correlation_id": id, "partner": partner, "command_type": command_type, "outcome": "DELIVERED",
                "http_status": 201, "partner_reference": format!("ERP-{i}"), "attempts": 1, "detail": null,
                "completed_at": created_at(orders, i) + 5,
            });
            let payload = encode(topology, ids, "delivery_result", &results, &json)?;
            let record = FutureRecord::to(&results).key(&id).payload(&payload).timestamp(created_at(orders, i) + 5);
            pending.push(producer.send_result(record).map_err(|(e, _)| e).context("queue")?);
        }
        if pending.len() >= 10_000 {
            for delivery in pending.drain(..) {
                delivery.await.context("delivery")?.map_err(|(e, _)| e).context("produce")?;
            }
        }
    }
    for delivery in pending {
        delivery.await.context("delivery")?.map_err(|(e, _)| e).context("produce")?;
    }
    let (run, shutdown, metrics) = start_projector(global, kafka, topology, &sink_name)?;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let total = u64::try_from(orders)?;
    loop {
        let done = projected(&client, &metrics).await;
        if done >= total {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "projector did not finish: {done} of {total}");
        anyhow::ensure!(!run.is_finished(), "projector stopped early");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    run.await.context("projector task")?.context("projector")?;
    Ok(())
}

/// Writes `letters` dead letters on the orders' dead-letter topic, as the sinks write them: half
/// the ERP's dispatches given up on, half the client's notifications refused; one a second over
/// the last `letters` seconds. Returns the topic.
async fn fill_dead_letters(
    kafka: &KafkaSettings,
    topology: &Topology,
    ids: &BTreeMap<String, u32>,
    letters: usize,
) -> anyhow::Result<String> {
    let topic = topology.topic_named("orders.dlq").context("no orders.dlq in the topology")?.name.clone();
    let state_topic = topology.topic_named("orders.state").context("no orders.state")?.name.clone();
    let commands = topology.topic_named("orders.commands").context("no orders.commands")?.name.clone();
    let producer: FutureProducer = kafka.producer_config("hub-bench-letters").create().context("producer")?;
    let now = now_millis();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut pending = Vec::new();
    for i in 0..letters {
        let (id, original) = state(&topology.topic_prefix, i, 4);
        let value = encode(topology, ids, "order_state", &state_topic, &original)?;
        let (partner, stage, class) = if i % 2 == 0 {
            ("acme-erp", "sink:erp-dispatch", "EXHAUSTED")
        } else {
            ("acme-shop", "sink:client-notify", "PERMANENT")
        };
        let json = json!({
            "source_topic": commands, "source_partition": i % 12, "source_offset": i,
            "key": b64(id.as_bytes()), "value": b64(&value), "headers": { "event-type": b64(b"dispatch_command") },
            "stage": stage, "error_class": class,
            "error": format!("{partner} REFUSED after 1 attempt(s): HTTP 422: {{\"error\":\"unknown customer {i}\"}}"),
            "failed_at": now - i64::try_from(letters - i)? * 1000,
        });
        let payload = encode(topology, ids, "dead_letter", &topic, &json)?;
        let headers = OwnedHeaders::new().insert(Header { key: "hub-partner", value: Some(partner) });
        let record = FutureRecord::to(&topic).key(&id).payload(&payload).headers(headers);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).context("queue")?);
    }
    for delivery in pending {
        delivery.await.context("delivery")?.map_err(|(e, _)| e).context("produce")?;
    }
    Ok(topic)
}

async fn measure(
    global: &Global,
    args: &ConsoleBenchArgs,
    kafka: &KafkaSettings,
    topology: &Topology,
    ids: &BTreeMap<String, u32>,
) -> anyhow::Result<ExitCode> {
    eprintln!("read model: {} orders projected ...", args.orders);
    let started = Instant::now();
    fill_read_model(global, kafka, topology, ids, args.orders).await?;
    eprintln!("  in {:.0} s", started.elapsed().as_secs_f64());
    eprintln!("dead letters: {} on the dead-letter topic ...", args.letters);
    let dlq = fill_dead_letters(kafka, topology, ids, args.letters).await?;

    let hash: String = sha2::Sha256::digest(TOKEN.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let operators = Operators::parse(&format!(
        "[[operator]]\nname = \"bench\"\ntoken_sha256 = \"{hash}\"\npermissions = [\"replay\"]\n"
    ))
    .map_err(|problems| anyhow::anyhow!(problems.join("; ")))?;
    let mut services = global.services(kafka.clone());
    services.cql_nodes = global.cql_nodes();
    let options = ConsoleOptions {
        audit_topic: "console.audit".to_owned(),
        instance_id: "bench".to_owned(),
        metrics_from: Vec::new(),
        jaeger_url: None,
    };
    let settings = Settings::from_topology(topology, &services, operators, &options).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(interchange_console::serve(listener, settings, shutdown.clone()));
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(TOKEN);
        async move {
            let answer = request.send().await?;
            let status = answer.status();
            let text = answer.text().await?;
            anyhow::Ok((status, text))
        }
    };
    // Ready: the read model connected, and every dead letter indexed.
    let deadline = Instant::now() + Duration::from_secs(300);
    let everything = format!("{} dead letter(s)", args.letters);
    loop {
        let (status, text) = get("/dead-letters".to_owned()).await?;
        if status.is_success() && text.contains(&everything) && !text.contains("Still reading") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the console did not index {} letters", args.letters);
        anyhow::ensure!(!server.is_finished(), "the console stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let middle = args.orders / 2;
    let id = format!("{}bench-{middle}", topology.topic_prefix);
    let letter = args.letters / 2;
    let pages: Vec<(&str, String, String)> = vec![
        ("baseline: /healthz", "/healthz".to_owned(), "ok".to_owned()),
        ("overview", "/".to_owned(), "Signed in as".to_owned()),
        ("order search by order id", format!("/orders?partner=acme-shop&order_id=B-{middle}"), "1 order(s)".to_owned()),
        (
            "orders by status, last 15 minutes",
            "/orders?partner=acme-shop&status=COMPLETED&within=15m".to_owned(),
            "50 order(s)".to_owned(),
        ),
        (
            "orders by a status none has, last hour",
            "/orders?partner=acme-shop&status=REJECTED&within=1h".to_owned(),
            "No order matches.".to_owned(),
        ),
        ("order page", format!("/orders/acme-shop/{id}"), "dispatch_command: DELIVERED after 1 attempt(s)".to_owned()),
        ("dead letters, all", "/dead-letters".to_owned(), everything.clone()),
        (
            "dead letters, one partner, last hour",
            "/dead-letters?partner=acme-erp&since=1h".to_owned(),
            "dead letter(s)".to_owned(),
        ),
        (
            "dead letters, one order",
            format!("/dead-letters?correlation_id={}", state(&topology.topic_prefix, letter, 4).0),
            "1 dead letter(s)".to_owned(),
        ),
        ("dead letter page (decoded)", format!("/dead-letters/{dlq}/{}/{}", 0, 0), "Original value".to_owned()),
    ];
    // Warm-up: one of each (connections, prepared statements, registry schemas).
    for (name, path, expect) in &pages {
        let (status, text) = get(path.clone()).await?;
        anyhow::ensure!(status.is_success() && text.contains(expect.as_str()), "{name} ({path}): {status}\n{text}");
    }
    let mut results = Vec::new();
    for (name, path, _) in &pages {
        let mut millis = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let at = Instant::now();
            let (status, _) = get(path.clone()).await?;
            millis.push(at.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(status.is_success(), "{name}: {status}");
        }
        millis.sort_by(f64::total_cmp);
        results.push((*name, quantile(&millis, 0.5), quantile(&millis, 0.99), millis.last().copied().unwrap_or(0.0)));
    }
    shutdown.cancel();
    let _ = server.await;
    let base_p50 = results.first().map_or(1.0, |r| r.1).max(1e-6);
    println!(
        "\nconsole benchmark ({} orders, {} dead letters, {} requests per page, one at a time)",
        args.orders, args.letters, args.requests
    );
    println!("{:<40} {:>9} {:>9} {:>9} {:>12}", "page", "p50 ms", "p99 ms", "max ms", "p50/baseline");
    for (name, p50, p99, max) in &results {
        println!("{name:<40} {p50:>9.2} {p99:>9.2} {max:>9.2} {:>11.1}x", p50 / base_p50);
    }
    let slowest = results.iter().skip(1).map(|r| r.2).fold(0.0, f64::max);
    println!(
        "slowest page p99: {slowest:.1} ms ({} the {GOAL_MS:.0} ms goal)",
        if slowest < GOAL_MS { "under" } else { "OVER" }
    );
    let report = json!({
        "bench": "console", "orders": args.orders, "letters": args.letters, "requests": args.requests,
        "pages": results.iter().map(|(n, p50, p99, max)| json!({ "page": n, "p50_ms": p50, "p99_ms": p99, "max_ms": max })).collect::<Vec<_>>(),
    });
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
