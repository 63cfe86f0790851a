//! Exactly-once through failover: two instances split the partitions, one dies, the other takes over.
//!
//! Its own test binary, so the kill does not share the machine with other tests.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::edge::{provision, test_topology};
use common::orders::{assert_exactly_once, delivered, orders};
use common::process::{produce_orders, publish_inventory, FakeErp, Processor};
use common::unique_prefix;

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_split_the_partitions_and_one_takes_over_from_a_dead_one() {
    let topology = test_topology();
    let prefix = unique_prefix("pair");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000_000), ("SKU-B", 1_000_000)]).await;
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), delivered);
    let mut a = Processor::start(&topology, &prefix, "a", &[]);
    let b = Processor::start(&topology, &prefix, "b", &[]);
    // Wait for the two-member assignment: each logs its partitions.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let split = |log: &str| {
        log.lines()
            .rfind(|l| l.contains("partitions assigned") && l.contains(common::process::ORDER_SAGA))
            .map(str::to_owned)
    };
    loop {
        let (la, lb) = (split(&a.log_text()), split(&b.log_text()));
        let partitions = |line: &Option<String>| -> Vec<i64> {
            line.as_deref()
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .and_then(|v| v["partitions"].as_str().map(str::to_owned))
                .map(|s| s.trim_matches(['[', ']']).split(',').filter_map(|x| x.trim().parse().ok()).collect())
                .unwrap_or_default()
        };
        let (pa, pb) = (partitions(&la), partitions(&lb));
        if !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == 12 {
            assert!(pa.iter().all(|p| !pb.contains(p)), "disjoint: {pa:?} {pb:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no split:\n{la:?}\n{lb:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let all = orders(&prefix, 800);
    let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
    produce_orders(&t("orders.inbound"), &all[..400]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    a.kill();
    produce_orders(&t("orders.inbound"), &all[400..]).await;
    assert_exactly_once(&prefix, &ids).await;
    let took_over = b
        .log_text()
        .lines()
        .filter(|l| l.contains("partitions assigned") && l.contains(common::process::ORDER_SAGA))
        .count();
    assert!(took_over >= 2, "b was assigned again after a died");
    let per_instance: HashMap<&str, usize> = [("b", took_over)].into_iter().collect();
    eprintln!("{per_instance:?}");
    erp.stop().await;
}
