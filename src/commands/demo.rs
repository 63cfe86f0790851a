//! `hub demo`: stand-in partners on loopback for a first run (the ERP, the client's callback and,
//! when asked, the payment partner of the returns flow).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use interchange_core::cli::Global;
use interchange_core::shutdown;

/// `hub demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where the demo ERP listens (the reference topology's acme-erp base URL).
    #[arg(long, default_value = "127.0.0.1:18082")]
    pub erp: std::net::SocketAddr,
    /// Where the demo client callback receiver listens (acme-shop's base URL).
    #[arg(long, default_value = "127.0.0.1:18081")]
    pub callback: std::net::SocketAddr,
    /// Where a demo payment partner listens, if anywhere (the reference topology's payflow is
    /// 127.0.0.1:18085).
    #[arg(long)]
    pub payments: Option<std::net::SocketAddr>,
}

async fn serve(
    name: &'static str,
    addr: SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let count = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
        let count = Arc::clone(&count);
        async move {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            let header = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
            tracing::info!(partner = name, n, idempotency_key = %header("idempotency-key"), webhook_id = %header("webhook-id"), body = %body.chars().take(200).collect::<String>(), "demo partner received");
            (StatusCode::CREATED, axum::Json(serde_json::json!({ "id": format!("{}-{n}", name.to_uppercase()) })))
        }
    });
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(partner = name, %addr, "demo partner listening");
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    Ok(())
}

/// Publishes stock for SKU-1 to SKU-9 to the topology's lookup topic, as an upstream inventory
/// system would, so demo orders pass the stock check.
async fn publish_stock(global: &Global) -> anyhow::Result<()> {
    let topology = super::load(global)?;
    let Some(topic) = topology.processors.first().and_then(|p| p.lookups.first()) else { return Ok(()) };
    let t = topology.topics.iter().find(|t| &t.name == topic).context("lookup topic")?;
    let contract = topology.contracts.get("inventory_level").context("inventory_level contract")?;
    let registry = global.registry().client()?;
    let id = registry.registered_id(&t.subject(contract), &contract.text).await?;
    let encoder = interchange_core::avro::Encoder::new(contract.schema.clone(), id).map_err(anyhow::Error::msg)?;
    let producer: rdkafka::producer::FutureProducer = super::kafka(global)?.producer_config("hub-demo").create()?;
    for i in 1..=9 {
        let sku = format!("SKU-{i}");
        let json = serde_json::json!({ "sku": sku, "available": 1000, "updated_at": 0 });
        let value = interchange_core::contract::json_to_avro(
            encoder.schema(),
            &json,
            interchange_core::contract::UnknownFields::Reject,
        )
        .map_err(|v| anyhow::anyhow!("{v:?}"))?;
        let payload = encoder.encode(value).map_err(anyhow::Error::msg)?;
        producer
            .send(
                rdkafka::producer::FutureRecord::to(topic).key(&sku).payload(&payload),
                std::time::Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    tracing::info!(topic = %topic, "demo stock published: SKU-1 to SKU-9, 1000 each");
    Ok(())
}

pub async fn run(global: &Global, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    publish_stock(global).await.context("publishing demo stock")?;
    let shutdown = shutdown::on_signal();
    let payments = async {
        match args.payments {
            Some(addr) => serve("payments", addr, shutdown.clone()).await,
            None => Ok(()),
        }
    };
    let (erp, callback, payments) = tokio::join!(
        serve("erp", args.erp, shutdown.clone()),
        serve("client", args.callback, shutdown.clone()),
        payments
    );
    erp?;
    callback?;
    payments?;
    Ok(ExitCode::SUCCESS)
}
