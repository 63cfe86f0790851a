//! Tenancy of the sinks: two shops of the shipped topology (acme-shop and globex-shop) post orders
//! at once through one edge; `client-notify` serves both, and each shop's callback (a real HTTP
//! server) must receive exactly its own orders' notifications, each signed with its own secret.
//! A notification for a partner no sink serves is dead-lettered naming the partner, contract,
//! topic, partition and offset, and reaches nobody.
//!
//! `cargo test --test tenancy` against the local stack (`scripts/stack up`).

mod common;

use std::time::{Duration, Instant};

use common::edge::{GLOBEX_KEY, GLOBEX_SIGNING_SECRET, GLOBEX_WEBHOOK_SECRET, SHOP_KEY, SHOP_WEBHOOK_SECRET};
use common::pipeline::{
    notification_list, order_without_callback, partner, Behaviour, Notification, Options, Pipeline, SIGNING_SECRET,
};
use common::sinks::metric_value;
use rdkafka::message::Headers;
use rdkafka::Message;

/// Orders each shop posts.
const PER_SHOP: usize = 10;

/// Stock for the reference order's SKUs.
const STOCK: &[(&str, i64)] = &[
    ("SKU-00100", 1_000_000),
    ("SKU-00101", 1_000_000),
    ("SKU-00102", 1_000_000),
    ("SKU-00103", 1_000_000),
    ("SKU-00104", 1_000_000),
    ("SKU-00105", 1_000_000),
];

/// Posts `PER_SHOP` orders as one shop; returns their correlation ids.
async fn post_all(pipeline: &Pipeline, credentials: (&str, &str), tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..PER_SHOP {
        let id = format!("{}{tag}-{i}", pipeline.prefix);
        let (status, answer, _) =
            pipeline.post_as(credentials, &order_without_callback(&format!("{tag}-{i}")), &id, None).await;
        assert_eq!(status, 202, "{tag}-{i}: {answer}");
        // The order is keyed by the supplied id scoped to the shop that posted it.
        let scoped = answer["correlation_id"].as_str().expect("correlation_id").to_owned();
        assert!(scoped.ends_with(&format!("-shop:{id}")), "{scoped}");
        ids.push(scoped);
    }
    ids
}

/// The correlation ids of `list`, sorted (repeats kept).
fn correlation_ids(list: &[Notification]) -> Vec<String> {
    let mut ids: Vec<String> = list.iter().map(|n| n.correlation_id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_shops_posting_at_once_each_receive_only_their_own_signed_notifications() {
    let prefix = common::unique_prefix("tenancy");
    let (erp_url, _erp_calls) = partner(Behaviour::Answer).await;
    let (globex_erp_url, _globex_erp_calls) = partner(Behaviour::Answer).await;
    let (acme_url, acme_calls) = partner(Behaviour::Answer).await;
    let (globex_url, globex_calls) = partner(Behaviour::Answer).await;
    let globex_base = format!("base_url = \"{globex_url}\"");
    let globex_erp_base = format!("base_url = \"{globex_erp_url}\"");
    let edits = [
        ("base_url = \"http://127.0.0.1:18083\"", globex_base.as_str()),
        ("base_url = \"http://127.0.0.1:18084\"", globex_erp_base.as_str()),
        (
            "retry = { initial_backoff = \"2s\", max_backoff = \"30s\", max_attempts = 6 }",
            "retry = { initial_backoff = \"50ms\", max_backoff = \"200ms\", max_attempts = 5 }",
        ),
    ];
    let options = Options { edits: &edits, ..Options::new(&erp_url, &acme_url) };
    let pipeline = Pipeline::start(&prefix, &options, STOCK).await;

    // Both shops at once.
    let (acme_ids, globex_ids) = tokio::join!(
        post_all(&pipeline, (SHOP_KEY, SHOP_WEBHOOK_SECRET), "acme"),
        post_all(&pipeline, (GLOBEX_KEY, GLOBEX_WEBHOOK_SECRET), "globex"),
    );
    let all: Vec<String> = acme_ids.iter().chain(&globex_ids).cloned().collect();
    let states = common::orders::wait_terminal(&pipeline.topic("orders.state"), &all, Duration::from_secs(120)).await;
    for (ids, shop) in [(&acme_ids, "acme-shop"), (&globex_ids, "globex-shop")] {
        for id in ids {
            assert_eq!(states[id]["status"], "COMPLETED", "{id}: {}", states[id]);
            assert_eq!(states[id]["partner"], shop, "{id}");
        }
    }

    // Every notification the sink writes is finished (delivered or not) before counting what the
    // callbacks got: the sink's own count of notification deliveries, whichever partner.
    let finished = |metrics: &str| -> f64 {
        ["acme-shop", "globex-shop"]
            .iter()
            .map(|p| {
                ["delivered", "refused", "exhausted", "invalid"]
                    .iter()
                    .map(|o| {
                        metric_value(
                            metrics,
                            "hub_sink_deliveries_total",
                            &[&format!("partner=\"{p}\""), &format!("outcome=\"{o}\"")],
                        )
                    })
                    .sum::<f64>()
            })
            .sum()
    };
    let expected = f64::from(u32::try_from(2 * PER_SHOP).unwrap_or(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    while finished(&pipeline.sink_metrics()) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = pipeline.sink_metrics();

    let acme = notification_list(&acme_calls, SIGNING_SECRET);
    let globex = notification_list(&globex_calls, GLOBEX_SIGNING_SECRET);
    println!(
        "acme-shop callback: {} notifications for {PER_SHOP} orders ({} of globex's); globex-shop callback: {} ({} of acme's)",
        acme.len(),
        acme.iter().filter(|n| globex_ids.contains(&n.correlation_id)).count(),
        globex.len(),
        globex.iter().filter(|n| acme_ids.contains(&n.correlation_id)).count(),
    );
    // Exact counts, repeats kept: one order.completed per own order, and nothing else.
    let mut expected_acme = acme_ids.clone();
    expected_acme.sort();
    let mut expected_globex = globex_ids.clone();
    expected_globex.sort();
    assert_eq!(correlation_ids(&acme), expected_acme, "acme-shop's callback got exactly its own orders");
    assert_eq!(correlation_ids(&globex), expected_globex, "globex-shop's callback got exactly its own orders");
    for (list, own, other_tag) in [(&acme, "acme", "globex-"), (&globex, "globex", "acme-")] {
        for n in list.iter() {
            assert_eq!(n.kind, "order.completed", "{n:?}");
            assert!(n.order_id.starts_with(&format!("{own}-")), "{own}'s callback got another shop's order {n:?}");
            assert!(!n.correlation_id.contains(other_tag), "{n:?}");
            assert!(n.signed, "{own}'s callback got a notification not signed with its own secret: {n:?}");
        }
    }
    // And no shop's secret signs the other's notifications (the secrets differ).
    assert!(notification_list(&acme_calls, GLOBEX_SIGNING_SECRET).iter().all(|n| !n.signed));
    assert!(notification_list(&globex_calls, SIGNING_SECRET).iter().all(|n| !n.signed));
    // The sink's own account, per partner.
    for shop in ["acme-shop", "globex-shop"] {
        let delivered = metric_value(
            &metrics,
            "hub_sink_deliveries_total",
            &[&format!("partner=\"{shop}\""), "outcome=\"delivered\""],
        );
        assert!((delivered - f64::from(u32::try_from(PER_SHOP).unwrap_or(0))).abs() < 0.5, "{shop}: {delivered}");
    }

    // A notification for a partner no sink serves: a dead letter naming it, delivered to nobody.
    let stray = serde_json::json!({
        "command_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": format!("{prefix}stray-0"),
        "order_id": "stray-0",
        "partner": "initech-shop",
        "callback_url": null,
        "event_type": "order.completed",
        "status": "COMPLETED",
        "payload_json": serde_json::json!({ "type": "order.completed", "order_id": "stray-0", "correlation_id": format!("{prefix}stray-0") }).to_string(),
        "issued_at": 0,
    });
    let commands = pipeline.topic("orders.commands");
    common::sinks::produce(&commands, "notification_command", &[stray], None).await;
    let dlq = pipeline.topic("orders.dlq");
    let deadline = Instant::now() + Duration::from_secs(60);
    let letters = loop {
        let letters: Vec<_> = common::kafka::read_all(&dlq, "read_committed")
            .into_iter()
            .filter(|m| m.key().is_some_and(|k| k == format!("{prefix}stray-0").as_bytes()))
            .collect();
        if !letters.is_empty() || Instant::now() >= deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(letters.len(), 1, "one dead letter for the stray notification");
    let header = |name: &str| {
        letters[0]
            .headers()
            .and_then(|h| {
                h.iter().find(|x| x.key == name).and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            })
            .unwrap_or_default()
    };
    let cause = header("hub-error-message");
    let (partition, offset) = (header("hub-source-partition"), header("hub-source-offset"));
    for part in ["initech-shop", "notification_command", &commands, &format!("/{partition}@{offset}")] {
        assert!(cause.contains(part), "{part:?} in {cause:?}");
    }
    assert_eq!(header("hub-partner"), "initech-shop");
    assert_eq!(header("hub-error-stage"), "sink:client-notify");
    // Nobody got it: the callbacks hold exactly what they held.
    assert_eq!(
        (acme_calls.lock().expect("lock").len(), globex_calls.lock().expect("lock").len()),
        (PER_SHOP, PER_SHOP)
    );
    // Only the stray is a dead letter.
    let dead = common::kafka::read_all(&dlq, "read_committed").len();
    assert_eq!(
        dead,
        1,
        "no other dead letter:\n{}",
        pipeline
            .logs()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("\"warn"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
