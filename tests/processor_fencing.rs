//! Fenced state: an instance paused past the session timeout (SIGSTOP) while the other takes its
//! partitions, works on them and stops, then resumed (SIGCONT), must not work on the state it held
//! before the pause: every order reaches exactly one terminal state, one dispatch each, and no
//! result is dead-lettered as one "for an order this processor has never seen".
//!
//! Its own test binary, so the pause does not share the machine with other tests.

mod common;

use std::time::{Duration, Instant};

use common::edge::{provision, test_topology};
use common::orders::{counts, delivered, latest_states, orders};
use common::process::{produce_orders, publish_inventory, FakeErp, Processor};
use common::{kafka, unique_prefix};
use rdkafka::message::{Headers, Message};

/// The partitions an instance logged last, if any.
fn partitions(p: &Processor) -> Vec<i64> {
    p.log_text()
        .lines()
        .rfind(|l| l.contains("partitions assigned") && l.contains(common::process::ORDER_SAGA))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["partitions"].as_str().map(str::to_owned))
        .map(|s| s.trim_matches(['[', ']']).split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn assignments(p: &Processor) -> usize {
    p.log_text()
        .lines()
        .filter(|l| l.contains("partitions assigned") && l.contains(common::process::ORDER_SAGA))
        .count()
}

/// Waits until `ids` have a dispatch command on the read_committed commands topic.
async fn wait_dispatched(topic: &str, ids: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let c = counts(topic, "read_committed");
        let missing = ids.iter().filter(|id| !c.contains_key(&((*id).clone(), "dispatch_command".to_owned()))).count();
        if missing == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{missing} orders not dispatched");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_paused_past_the_session_timeout_resumes_on_fresh_state() {
    let topology = test_topology();
    let prefix = unique_prefix("fence");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 1_000_000), ("SKU-B", 1_000_000)]).await;
    let all = orders(&prefix, 800);
    let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();

    // Two instances split the partitions; the first 400 orders complete on both.
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), delivered);
    let mut a = Processor::start(&topology, &prefix, "a", &[]);
    let mut b = Processor::start(&topology, &prefix, "b", &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while partitions(&a).len() + partitions(&b).len() != 12 || partitions(&a).is_empty() {
        assert!(Instant::now() < deadline, "no split:\n{}\n{}", a.log_text(), b.log_text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let held_by_a = partitions(&a);
    produce_orders(&t("orders.inbound"), &all[..400]).await;
    common::orders::wait_terminal(&t("orders.state"), &ids[..400], Duration::from_secs(120)).await;
    erp.stop().await;

    // A pauses past the session timeout; B takes every partition and validates the next 400
    // (their results wait: no ERP answers), then stops.
    a.signal("STOP");
    let before = assignments(&b);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(assignments(&b) > before && partitions(&b).len() == 12) {
        assert!(Instant::now() < deadline, "b did not take over:\n{}", b.log_text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    produce_orders(&t("orders.inbound"), &all[400..]).await;
    wait_dispatched(&t("orders.commands"), &ids[400..], Duration::from_secs(120)).await;
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(60)), "b did not stop:\n{}", b.log_text());

    // The ERP answers every dispatch (again: the first 400's results repeat); A resumes.
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), delivered);
    a.signal("CONT");
    // A supervisor restarts an instance that exits (a fenced producer ends the process).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut restarted = 0;
    let pending = loop {
        if a.exited() {
            restarted += 1;
            assert!(restarted <= 3, "a keeps exiting:\n{}", a.log_text());
            a = Processor::spawn(&topology, &prefix, "a", &[]);
        }
        let states = latest_states(&t("orders.state")).await;
        let pending: Vec<String> = ids
            .iter()
            .filter(|id| states.get(*id).is_none_or(|s| s["status"] != "COMPLETED"))
            .map(|id| format!("{id}: {:?}", states.get(id).map(|s| s["status"].clone())))
            .collect();
        if pending.is_empty() || Instant::now() > deadline {
            break pending;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    erp.stop().await;

    let never_seen: Vec<String> = kafka::read_all(&t("orders.dlq"), "read_committed")
        .iter()
        .map(|m| {
            m.headers()
                .and_then(|h| h.iter().find(|x| x.key == "hub-error-message").and_then(|x| x.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        })
        .collect();
    let log = a.log_text();
    assert!(
        never_seen.is_empty(),
        "{} dead letters, e.g. {:?} (a held {held_by_a:?} before the pause)",
        never_seen.len(),
        never_seen.first()
    );
    assert!(pending.is_empty(), "{} orders not COMPLETED, e.g. {:?}", pending.len(), &pending[..pending.len().min(5)]);
    common::orders::assert_exactly_once(&prefix, &ids).await;
    assert!(log.contains("partitions revoked"), "a saw its partitions revoked:\n{log}");
}
