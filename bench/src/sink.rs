//! `hub-bench sink`: the HTTP sink's delivery stack against fast local partners, measured against
//! a bare reqwest client in the same run; the rate limiter's accuracy; and the resident memory of
//! a `hub sink` process holding a backlog of a million commands (against the same process idle).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use interchange_core::cli::Global;
use interchange_core::topology::{BreakerSettings, Outbound, Partner, RateLimit, RetryPolicy, Topology};
use interchange_sinks::http::breaker::BreakerConfig;
use interchange_sinks::http::partner::{Outcome, PartnerClient, Request};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::setup;

/// `hub-bench sink` options.
#[derive(Debug, Clone, Args)]
pub struct SinkBenchArgs {
    /// Deliveries per throughput run.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Deliveries in flight per partner.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Partners served at once in the multi-partner run.
    #[arg(long, default_value_t = 10)]
    pub partners: usize,
    /// Rate limits (requests/s) whose accuracy is measured.
    #[arg(long, value_delimiter = ',', default_value = "50,200,1000")]
    pub rates: Vec<u32>,
    /// Seconds each rate is measured.
    #[arg(long, default_value_t = 10)]
    pub rate_seconds: u64,
    /// Commands in the memory run's backlog (0 skips it; it needs the local stack).
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog: usize,
}

/// A partner on loopback that answers 201 at once and counts.
async fn fast_partner() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    let app = axum::Router::new().fallback(move || {
        let c = Arc::clone(&c);
        async move {
            c.fetch_add(1, Ordering::Relaxed);
            (axum::http::StatusCode::CREATED, "{\"id\":\"REF\"}")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}"), count))
}

fn partner(name: &str, base_url: &str, per_second: u32, burst: u32, concurrency: usize) -> Partner {
    let outbound = Outbound {
        base_url: base_url.to_owned(),
        path: "/orders".to_owned(),
        method: "POST".to_owned(),
        timeout: Duration::from_secs(30),
        concurrency: u32::try_from(concurrency).unwrap_or(64),
        rate_limit: RateLimit { per_second, burst },
        retry: RetryPolicy::default(),
        breaker: BreakerSettings::default(),
        auth: None,
        signing_secret: None,
        headers: std::collections::BTreeMap::new(),
        body: None,
        requests: std::collections::BTreeMap::new(),
    };
    Partner { name: name.to_owned(), doc: String::new(), inbound: None, outbound: Some(outbound) }
}

fn body(i: usize) -> Vec<u8> {
    json!({ "command_id": format!("cmd-{i}"), "order_id": format!("B-{i}"), "total": "269.90" })
        .to_string()
        .into_bytes()
}

/// Deliveries per second through the hub's stack to `clients`, `n` spread over them.
async fn through_stack(clients: &[Arc<PartnerClient>], n: usize, concurrency: usize) -> anyhow::Result<f64> {
    let stop = CancellationToken::new();
    let started = Instant::now();
    let failed = AtomicU64::new(0);
    futures::stream::iter(0..n)
        .for_each_concurrent(concurrency * clients.len(), |i| {
            let client = &clients[i % clients.len()];
            let (stop, failed) = (&stop, &failed);
            async move {
                let request = Request {
                    method: "POST".to_owned(),
                    deadline: None,
                    url: client.url(),
                    body: body(i),
                    idempotency_key: format!("cmd-{i}"),
                    webhook_id: None,
                    traceparent: None,
                };
                if client.deliver(&request, stop).await.outcome != Outcome::Delivered {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    anyhow::ensure!(failed.load(Ordering::Relaxed) == 0, "{} deliveries failed", failed.load(Ordering::Relaxed));
    #[allow(clippy::cast_precision_loss)]
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The same requests from a bare reqwest client: the ceiling of HTTP on this machine.
async fn bare_reqwest(url: &str, n: usize, concurrency: usize) -> anyhow::Result<f64> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(concurrency, |i| {
            let http = &http;
            async move {
                let _ = http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("cmd-{i}"))
                    .body(body(i))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status);
            }
        })
        .await;
    #[allow(clippy::cast_precision_loss)]
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Resident set size of `pid` in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Peak RSS of a `hub sink` over `seconds`, reading a topic with `backlog` dispatch commands while
/// its partner takes 100 a second (so the backlog stays).
async fn sink_memory(global: &Global, backlog: usize, seconds: u64) -> anyhow::Result<f64> {
    let (url, _) = fast_partner().await?;
    let source = std::fs::read_to_string(&global.topology).context("topology")?;
    let schemas = global.topology.parent().map_or_else(|| std::path::PathBuf::from("schemas"), |d| d.join("schemas"));
    let schemas = std::fs::canonicalize(schemas).context("schemas dir")?;
    let text = source
        .replace("schemas_dir = \"schemas\"", &format!("schemas_dir = {:?}", schemas.display().to_string()))
        .replace("base_url = \"http://127.0.0.1:18082\"", &format!("base_url = \"{url}\""))
        .replace("rate_limit = { per_second = 500, burst = 200 }", "rate_limit = { per_second = 100, burst = 10 }");
    let dir = std::env::temp_dir().join(format!("hub-bench-sink-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("topology.toml");
    std::fs::write(&path, text)?;
    let prefix = setup::fresh_prefix();
    let topology = Topology::load(&path, &prefix).map_err(anyhow::Error::new)?;
    let kafka = setup::kafka(global)?;
    let registry = global.registry().client()?;
    setup::create_topics(&topology, &kafka).await?;
    let ids = setup::register_schemas(&topology, &registry).await?;
    let topic = format!("{prefix}orders.commands");
    if backlog > 0 {
        let t = topology.topics.iter().find(|t| t.name == topic).context("commands topic")?;
        let c = topology.contracts.get("dispatch_command").context("contract")?;
        let id = *ids.get(&t.subject(c)).context("schema id")?;
        let command = json!({
            "command_id": uuid::Uuid::new_v4().to_string(), "correlation_id": "bench", "order_id": "B-1", "partner": "acme-erp",
            "items": [{ "sku": "SKU-A", "quantity": 2, "unit_price": "250.00" }], "total": "500.00", "currency": "BRL",
            "deadline": 1_900_000_000_000_i64, "issued_at": 1_700_000_000_000_i64,
        });
        let value = interchange_core::contract::json_to_avro(
            &c.schema,
            &command,
            interchange_core::contract::UnknownFields::Reject,
        )
        .map_err(|v| anyhow::anyhow!("{v:?}"))?;
        let payload = interchange_core::avro::wire_format(&c.schema, id, value).map_err(|e| anyhow::anyhow!(e))?;
        let producer: rdkafka::producer::FutureProducer = kafka.producer_config("hub-bench-producer").create()?;
        let mut pending = Vec::with_capacity(20_000);
        for i in 0..backlog {
            let key = format!("order-{i}");
            let headers =
                interchange_core::headers::EventHeaders::new(&key, &key, "dispatch_command", "hub-bench").to_kafka();
            let record = rdkafka::producer::FutureRecord::to(&topic).key(&key).payload(&payload).headers(headers);
            pending.push(producer.send_result(record).map_err(|(e, _)| e)?);
            if pending.len() >= 20_000 {
                for r in futures::future::join_all(pending.drain(..)).await {
                    r.context("produce")?.map_err(|(e, _)| e)?;
                }
            }
        }
        for r in futures::future::join_all(pending).await {
            r.context("produce")?.map_err(|(e, _)| e)?;
        }
    }
    let mut command = std::process::Command::new(setup::hub_exe()?);
    global.registry_env(&mut command);
    let mut child = command
        .args([
            "--topology",
            &path.display().to_string(),
            "--topic-prefix",
            &prefix,
            "--bootstrap-servers",
            &global.bootstrap_servers,
        ])
        .args(["sink", "--sink", "erp-dispatch", "--sink-listen", "127.0.0.1:0"])
        .env("HUB_PARTNER_ACME_ERP_TOKEN", "bench")
        .env("HUB_PARTNER_GLOBEX_ERP_TOKEN", "bench")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let mut peak: f64 = 0.0;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(rss_mib(child.id()));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = setup::delete_topics(&topology, &kafka).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(peak)
}

/// Deliveries per second achieved through a partner limited to `rate` (with `burst`) while
/// `concurrency` workers always have one more waiting.
async fn limited(rate: u32, burst: u32, concurrency: usize, seconds: u64) -> anyhow::Result<f64> {
    let (url, count) = fast_partner().await?;
    let client =
        Arc::new(PartnerClient::new(&partner("limited", &url, rate, burst, concurrency), BreakerConfig::default())?);
    let stop = CancellationToken::new();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (client, stop) = (Arc::clone(&client), stop.clone());
            tokio::spawn(async move {
                let mut i = w;
                while !stop.is_cancelled() {
                    let request = Request {
                        method: "POST".to_owned(),
                        deadline: None,
                        url: client.url(),
                        body: body(i),
                        idempotency_key: format!("k{i}"),
                        webhook_id: None,
                        traceparent: None,
                    };
                    let _ = client.deliver(&request, &stop).await;
                    i += 1_000_000;
                }
            })
        })
        .collect();
    // The burst is spent in the first second; measure after it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (from, at) = (count.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    #[allow(clippy::cast_precision_loss)]
    let achieved = (count.load(Ordering::Relaxed) - from) as f64 / at.elapsed().as_secs_f64();
    stop.cancel();
    futures::future::join_all(workers).await;
    Ok(achieved)
}

pub async fn run(global: &Global, args: &SinkBenchArgs) -> anyhow::Result<ExitCode> {
    let mut report = serde_json::Map::new();
    // Throughput, one partner, no limit, against bare reqwest to the same server.
    let (url, _) = fast_partner().await?;
    let bare = bare_reqwest(&format!("{url}/orders"), args.requests, args.concurrency).await?;
    let one = Arc::new(PartnerClient::new(
        &partner("p0", &url, 1_000_000, 100_000, args.concurrency),
        BreakerConfig::default(),
    )?);
    let stack = through_stack(&[one], args.requests, args.concurrency).await?;
    println!(
        "one partner, no limit:   {stack:>8.0} deliveries/s   (bare reqwest {bare:.0}/s, ratio {:.2})",
        stack / bare
    );
    report.insert("one_partner_per_s".into(), json!(stack));
    report.insert("bare_reqwest_per_s".into(), json!(bare));
    // Ten partners at once.
    let mut clients = Vec::new();
    for i in 0..args.partners {
        let (url, _) = fast_partner().await?;
        clients.push(Arc::new(PartnerClient::new(
            &partner(&format!("p{i}"), &url, 1_000_000, 100_000, args.concurrency),
            BreakerConfig::default(),
        )?));
    }
    let many = through_stack(&clients, args.requests, args.concurrency / args.partners.max(1) + 1).await?;
    println!(
        "{} partners at once:    {many:>8.0} deliveries/s in total (ratio to one partner {:.2})",
        args.partners,
        many / stack
    );
    report.insert("many_partners_per_s".into(), json!(many));
    // Rate limiter accuracy: achieved / configured while more is always waiting.
    let mut accuracy = serde_json::Map::new();
    for &rate in &args.rates {
        // A burst of a tenth of a second's rate (as a partner would configure it), and of one.
        for burst in [(rate / 10).max(1), 1] {
            let achieved = limited(rate, burst, args.concurrency, args.rate_seconds).await?;
            println!(
                "limit {rate:>5}/s burst {burst:>4}: achieved {achieved:>8.1}/s   accuracy {:.3}",
                achieved / f64::from(rate)
            );
            accuracy.insert(format!("{rate}/burst{burst}"), json!(achieved / f64::from(rate)));
        }
    }
    report.insert("limiter_accuracy".into(), serde_json::Value::Object(accuracy));
    if args.backlog > 0 {
        let idle = sink_memory(global, 0, 15).await?;
        let loaded = sink_memory(global, args.backlog, 30).await?;
        println!(
            "hub sink RSS: idle {idle:.0} MiB, with a backlog of {} commands {loaded:.0} MiB (ratio {:.2})",
            args.backlog,
            loaded / idle
        );
        report.insert("rss_idle_mib".into(), json!(idle));
        report.insert("rss_backlog_mib".into(), json!(loaded));
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(ExitCode::SUCCESS)
}
