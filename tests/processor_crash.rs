//! Exactly-once through crashes: SIGKILL at random moments while thousands of orders flow.
//!
//! Its own test binary, so the kills and restarts do not share the machine with other tests.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::edge::{provision, test_topology};
use common::orders::{assert_exactly_once, delivered, orders};
use common::process::{produce_orders, publish_inventory, FakeErp, Processor};
use common::unique_prefix;

/// A small deterministic generator of pauses, seeded from the clock (printed on failure).
struct Pauses(u64);

impl Pauses {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        low + (self.0 >> 33) % (high - low)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let topology = test_topology();
    let prefix = unique_prefix("crash");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000_000), ("SKU-B", 1_000_000)]).await;
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), delivered);
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7);
    eprintln!("pause seed {seed}");
    let mut pauses = Pauses(seed);
    let mut processor = Processor::start(&topology, &prefix, "crashy", &[]);
    let all = orders(&prefix, 3000);
    let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
    let producing = {
        let (topic, all) = (t("orders.inbound"), all.clone());
        tokio::spawn(async move {
            for chunk in all.chunks(300) {
                produce_orders(&topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(pauses.next_ms(700, 2500))).await;
        processor.kill();
        eprintln!("round {round}: killed");
        processor = Processor::spawn(&topology, &prefix, "crashy", &[]);
    }
    tokio::time::timeout(Duration::from_secs(300), producing)
        .await
        .expect("orders produced in time")
        .expect("orders produced");
    processor.wait_ready(Duration::from_secs(90));
    assert_exactly_once(&prefix, &ids).await;
    let log = processor.log_text();
    erp.stop().await;
    drop(processor);
    assert!(!log.contains("\"level\":\"ERROR\""), "{log}");
}
