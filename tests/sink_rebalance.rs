//! Sinks under rebalances: a slow partner with a deep queue while a second `hub sink` instance
//! joins the group and leaves it, twice. Every command reaches the partner exactly once (calls
//! counted per Idempotency-Key, not a set of keys) and is reported exactly once.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::edge::provision;
use common::kafka::read_all;
use common::sinks::{dispatch, produce, topology, Partner, SinkProcess};
use common::unique_prefix;
use rdkafka::message::Headers;
use rdkafka::Message;

const PARTITIONS: f64 = 12.0;
const ASSIGNED: &str = "hub_sink_assigned_partitions";
const LABEL: [&str; 1] = ["sink=\"erp-dispatch\""];

async fn wait_for(what: &str, limit: Duration, logs: &[&SinkProcess], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        let text: Vec<String> = logs.iter().map(|s| s.log_text()).collect();
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}:\n{}", text.join("\n---\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM (a graceful leave: drain, final commit, leave the group) and wait for the exit.
fn terminate(sink: &mut SinkProcess) {
    let pid = sink.child.id().to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(sent.success(), "SIGTERM to {pid}");
    let status = sink.child.wait().expect("wait");
    assert!(status.success(), "hub sink exited with {status}:\n{}", sink.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_joining_and_leaving_deliver_each_command_once() {
    const N: usize = 216;
    let erp = Partner::ok().await;
    // 300 ms per answer, two at a time: over 30 s of work for one instance.
    erp.delay_ms.store(300, Ordering::Relaxed);
    let shop = Partner::ok().await;
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 1000, burst = 100 }\nretry = { initial_backoff = \"50ms\", max_backoff = \"200ms\", max_attempts = 5 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let text = std::fs::read_to_string(&topology.path).expect("read").replace("concurrency = 64", "concurrency = 2");
    std::fs::write(&topology.path, text).expect("write");
    let prefix = unique_prefix("sink-rebalance");
    provision(&topology, &prefix);
    let args = ["--sink-session-timeout", "6s", "--sink-drain-timeout", "5s"];
    let mut first = SinkProcess::start_with(&topology, &prefix, &["erp-dispatch"], "a", &args);
    first.wait_ready(Duration::from_secs(60));
    let commands: Vec<_> = (0..N).map(|i| dispatch(&format!("order-{i}"), 0)).collect();
    produce(&format!("{prefix}orders.commands"), "dispatch_command", &commands, None).await;
    let expected: HashMap<String, String> = commands
        .iter()
        .map(|c| {
            (c["command_id"].as_str().expect("id").to_owned(), c["correlation_id"].as_str().expect("key").to_owned())
        })
        .collect();
    wait_for("the first deliveries", Duration::from_secs(60), &[&first], || erp.count() >= 10).await;

    for round in 0..2 {
        let mut second = SinkProcess::start_with(&topology, &prefix, &["erp-dispatch"], &format!("b{round}"), &args);
        second.wait_ready(Duration::from_secs(60));
        wait_for("the partitions to be split", Duration::from_secs(60), &[&first, &second], || {
            let (a, b) = (first.metric(ASSIGNED, &LABEL), second.metric(ASSIGNED, &LABEL));
            a > 0.0 && b > 0.0 && (a + b - PARTITIONS).abs() < f64::EPSILON
        })
        .await;
        let before = erp.keys().len();
        wait_for("progress with two instances", Duration::from_secs(60), &[&first, &second], || {
            erp.keys().len() >= before + 8
        })
        .await;
        terminate(&mut second);
        wait_for("the first instance to own every partition again", Duration::from_secs(60), &[&first], || {
            (first.metric(ASSIGNED, &LABEL) - PARTITIONS).abs() < f64::EPSILON
        })
        .await;
        let before = erp.keys().len();
        wait_for("progress with one instance", Duration::from_secs(60), &[&first], || erp.keys().len() >= before + 4)
            .await;
        let seen = erp.keys().len();
        eprintln!("round {round}: {seen} of {N} commands seen by the partner, {} calls", erp.count());
        assert!(seen < N, "the queue ran dry in round {round}: make it deeper or the partner slower");
    }
    wait_for("every command at the partner", Duration::from_secs(180), &[&first], || erp.keys().len() >= N).await;
    // What the first instance did with the work of the partitions it gave away (a figure: the
    // counter exists only where revocations are handled).
    let revoked =
        |outcome: &str| first.metric("hub_sink_revoked_jobs_total", &[LABEL[0], &format!("outcome=\"{outcome}\"")]);
    let (dropped, ended, cut) = (revoked("dropped"), revoked("ended"), revoked("cut_off"));
    for line in first.log_text().lines().filter(|l| l.contains("revoked") || l.contains("WARN")) {
        eprintln!("first instance: {line}");
    }
    // Stop the last instance: no call can arrive after it exited, so the counts below are final.
    terminate(&mut first);

    let calls = erp.calls();
    let bytes: usize = calls.iter().map(|c| c.body.len()).sum();
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for call in &calls {
        assert_eq!(call.json["command_id"].as_str(), Some(call.key.as_str()), "a call carries its command's key");
        *per_key.entry(call.key.as_str()).or_default() += 1;
    }
    let repeated: Vec<(&str, usize)> = per_key.iter().filter(|(_, n)| **n > 1).map(|(k, n)| (*k, *n)).collect();
    let unknown = per_key.keys().filter(|k| !expected.contains_key(**k)).count();
    // Results: one per command (a result is written once per delivery).
    let results = read_all(&format!("{prefix}orders.results"), "read_committed");
    let mut results_per_order: HashMap<String, usize> = HashMap::new();
    for r in &results {
        let correlation = r
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "correlation-id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        *results_per_order.entry(correlation).or_default() += 1;
    }
    let repeated_results = results_per_order.values().filter(|n| **n > 1).count();
    eprintln!(
        "{N} commands: {} calls ({bytes} bytes), {} distinct keys, {} keys called more than once, {} results ({repeated_results} orders reported more than once)",
        calls.len(),
        per_key.len(),
        repeated.len(),
        results.len(),
    );
    eprintln!(
        "first instance on revocations: {dropped} queued jobs dropped, {ended} in flight ended in time, {cut} cut off"
    );
    assert_eq!(unknown, 0, "calls with keys that were never produced");
    assert_eq!(per_key.len(), N, "every command delivered");
    assert!(repeated.is_empty(), "calls per Idempotency-Key must be exactly 1; repeated: {repeated:?}");
    assert_eq!(calls.len(), N, "one call per command");
    assert_eq!(results_per_order.len(), N, "one result per command: {} orders reported", results_per_order.len());
    assert_eq!(repeated_results, 0, "no command reported twice");
    assert!(expected.values().all(|order| results_per_order.get(order) == Some(&1)));
}

/// A partner slower than the wait a revocation allows (`--sink-drain-timeout`): the requests in
/// flight on the revoked partitions are cut off, not reported, and their commands delivered by
/// the next owner under the same Idempotency-Key; every command is still reported exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cut_off_by_a_revocation_repeat_under_their_key_and_report_once() {
    const N: usize = 48;
    let erp = Partner::ok().await;
    // The partner holds every call until released, far longer than the 1 s a revocation waits:
    // the requests in flight when the second instance joins are certain to be cut off (a fixed
    // delay let them all end in time whenever the revocation fell late in their wait).
    erp.delay_ms.store(600_000, Ordering::Relaxed);
    let shop = Partner::ok().await;
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 1000, burst = 100 }\nretry = { initial_backoff = \"50ms\", max_backoff = \"200ms\", max_attempts = 5 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    // Twelve at a time: ready jobs are taken in turn across the partitions, so every partition
    // has a request in flight.
    let text = std::fs::read_to_string(&topology.path).expect("read").replace("concurrency = 64", "concurrency = 12");
    std::fs::write(&topology.path, text).expect("write");
    let prefix = unique_prefix("sink-revoke-cut");
    provision(&topology, &prefix);
    let args = ["--sink-session-timeout", "6s", "--sink-drain-timeout", "1s"];
    let mut first = SinkProcess::start_with(&topology, &prefix, &["erp-dispatch"], "a", &args);
    first.wait_ready(Duration::from_secs(60));
    let commands: Vec<_> = (0..N).map(|i| dispatch(&format!("order-{i}"), 0)).collect();
    produce(&format!("{prefix}orders.commands"), "dispatch_command", &commands, None).await;
    wait_for("twelve requests in flight", Duration::from_secs(60), &[&first], || erp.count() >= 12).await;
    let mut second = SinkProcess::start_with(&topology, &prefix, &["erp-dispatch"], "b", &args);
    second.wait_ready(Duration::from_secs(60));
    // Cooperative rebalancing may call the second ready before the first has revoked anything:
    // hold the calls until the first reports its cut-offs (its revocation waited its 1 s).
    wait_for("the revocation cutting requests off", Duration::from_secs(60), &[&first, &second], || {
        first.metric("hub_sink_revoked_jobs_total", &[LABEL[0], "outcome=\"cut_off\""]) >= 1.0
    })
    .await;
    erp.delay_ms.store(0, Ordering::Relaxed);
    wait_for("every command at the partner", Duration::from_secs(120), &[&first, &second], || erp.keys().len() >= N)
        .await;
    let cut = first.metric("hub_sink_revoked_jobs_total", &[LABEL[0], "outcome=\"cut_off\""]);
    for line in first.log_text().lines().filter(|l| l.contains("revoked") || l.contains("WARN")) {
        eprintln!("first instance: {line}");
    }
    terminate(&mut second);
    terminate(&mut first);

    let calls = erp.calls();
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for call in &calls {
        assert_eq!(call.json["command_id"].as_str(), Some(call.key.as_str()), "a repeat carries the command's key");
        *per_key.entry(call.key.as_str()).or_default() += 1;
    }
    let results = read_all(&format!("{prefix}orders.results"), "read_committed");
    let mut results_per_order: HashMap<String, usize> = HashMap::new();
    for r in &results {
        let correlation = r
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "correlation-id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        *results_per_order.entry(correlation).or_default() += 1;
    }
    let repeats = calls.len() - per_key.len();
    eprintln!(
        "{N} commands: {} calls, {repeats} repeats (all under their key), {cut} requests cut off by the revocation, {} results",
        calls.len(),
        results.len()
    );
    assert_eq!(per_key.len(), N, "every command delivered");
    assert!(cut >= 1.0, "the revocation cut no request off: the scenario did not happen");
    assert!(per_key.values().all(|n| *n <= 2), "a command is repeated at most once, by the next owner");
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let cut = cut as usize;
    assert_eq!(repeats, cut, "only the requests cut off are repeated");
    assert_eq!(results.len(), N, "one result per command: a cut-off request is never reported");
    assert!(results_per_order.values().all(|n| *n == 1));
}
