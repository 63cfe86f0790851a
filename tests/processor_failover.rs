//! Exactly-once through crashes and failover: SIGKILL at random moments, and two instances.
//!
//! Its own test binary, so the kills and restarts do not share the machine with other tests.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::edge::{provision, test_topology};
use common::orders::{counts, wait_terminal};
use common::process::{produce_orders, publish_inventory, upstream_order, FakeErp, Processor};
use common::unique_prefix;

/// A small deterministic generator of pauses, seeded from the clock (printed on failure).
struct Pauses(u64);

impl Pauses {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        low + (self.0 >> 33) % (high - low)
    }
}

fn delivered(_: &str) -> Option<&'static str> {
    Some("DELIVERED")
}

/// Every order completed, with one dispatch and one notification on the read_committed
/// commands topic and no transition applied twice.
async fn assert_exactly_once(prefix: &str, ids: &[String]) {
    let t = |name: &str| format!("{prefix}{name}");
    let states = wait_terminal(&t("orders.state"), ids, Duration::from_secs(180)).await;
    for id in ids {
        let state = &states[id];
        assert_eq!(state["status"], "COMPLETED", "{id}: {state}");
        assert_eq!(state["version"], 4, "{id}: four transitions, each once: {state}");
        let steps: Vec<(String, String)> = state["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|h| (h["event_id"].as_str().unwrap_or("").to_owned(), h["to"].as_str().unwrap_or("").to_owned()))
            .collect();
        assert_eq!(steps.iter().collect::<HashSet<_>>().len(), steps.len(), "{id}: a transition twice: {steps:?}");
    }
    let committed = counts(&t("orders.commands"), "read_committed");
    let mut wrong = Vec::new();
    for id in ids {
        for kind in ["dispatch_command", "notification_command"] {
            let n = committed.get(&(id.clone(), kind.to_owned())).copied().unwrap_or(0);
            if n != 1 {
                wrong.push(format!("{id} {kind} x{n}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} commands not exactly once: {:?}", wrong.len(), &wrong[..wrong.len().min(10)]);
    let uncommitted: usize = counts(&t("orders.commands"), "read_uncommitted").values().sum();
    let committed_total: usize = committed.values().sum();
    assert!(uncommitted >= committed_total);
    eprintln!("commands: {committed_total} read_committed, {uncommitted} read_uncommitted (aborted ones included)");
}

fn orders(prefix: &str, n: usize) -> Vec<(String, serde_json::Value)> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}K-{i}");
            let order = upstream_order(&id, &format!("K-{i}"), "SKU-A", 1);
            (id, order)
        })
        .collect()
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
    producing.await.expect("orders produced");
    processor.wait_ready(Duration::from_secs(90));
    assert_exactly_once(&prefix, &ids).await;
    let log = processor.log_text();
    erp.stop().await;
    drop(processor);
    assert!(!log.contains("\"level\":\"ERROR\""), "{log}");
}

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
    let split = |log: &str| log.lines().rfind(|l| l.contains("partitions assigned")).map(str::to_owned);
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
    let took_over = b.log_text().lines().filter(|l| l.contains("partitions assigned")).count();
    assert!(took_over >= 2, "b was assigned again after a died");
    let per_instance: HashMap<&str, usize> = [("b", took_over)].into_iter().collect();
    eprintln!("{per_instance:?}");
    erp.stop().await;
}
