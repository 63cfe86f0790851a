//! `hub process --threads 2`: one instance runs two transaction loops, each a member of the
//! processor's group with its own transactional producer and the state of its partitions. The
//! loops split the partitions; SIGKILL with both transactions open and a restart with the same
//! threads keeps every order exactly once; the state gauge counts both loops' states.
//!
//! Its own test binary, so the kill does not share the machine with other tests.

mod common;

use std::time::{Duration, Instant};

use common::edge::{provision, test_topology};
use common::orders::{assert_exactly_once, delivered, orders};
use common::process::{produce_orders, publish_inventory, FakeErp, Processor, ORDER_SAGA};
use common::unique_prefix;

/// The partitions each loop (lane) of the order saga was last assigned, from the JSON log.
fn lanes(log: &str) -> [Vec<i64>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for line in log.lines().filter(|l| l.contains("partitions assigned") && l.contains(ORDER_SAGA)) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(lane) = v["lane"].as_u64().and_then(|l| usize::try_from(l).ok()).filter(|l| *l < 2) else {
            panic!("a loop with no lane 0 or 1: {line}")
        };
        out[lane] = v["partitions"]
            .as_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
    }
    out
}

/// Waits until the two loops own disjoint halves covering the 12 partitions.
fn wait_split(processor: &Processor) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let [a, b] = lanes(&processor.log_text());
        if !a.is_empty() && !b.is_empty() && a.len() + b.len() == 12 {
            assert!(a.iter().all(|p| !b.contains(p)), "disjoint: {a:?} {b:?}");
            return;
        }
        assert!(Instant::now() < deadline, "the two loops did not split the partitions: {a:?} {b:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_loops_in_one_instance_split_the_partitions_and_stay_exactly_once_through_a_kill() {
    let topology = test_topology();
    let prefix = unique_prefix("threads");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000_000), ("SKU-B", 1_000_000)]).await;
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), delivered);
    let mut first = Processor::start(&topology, &prefix, "t", &["--threads", "2"]);
    wait_split(&first);
    let all = orders(&prefix, 800);
    let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
    produce_orders(&t("orders.inbound"), &all[..400]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    first.kill();
    let second = Processor::start(&topology, &prefix, "t", &["--threads", "2"]);
    wait_split(&second);
    produce_orders(&t("orders.inbound"), &all[400..]).await;
    assert_exactly_once(&prefix, &ids).await;
    // Both loops committed their own transactions, and the gauge sums their states.
    let deadline = Instant::now() + Duration::from_secs(30);
    let label = "processor=\"order-saga\"";
    while second.metric_labelled("hub_processor_states", label) != Some(800.0) {
        assert!(Instant::now() < deadline, "states gauge: {:?}", second.metric_labelled("hub_processor_states", label));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    erp.stop().await;
}
