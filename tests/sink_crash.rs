//! The sink SIGKILLed mid-delivery, several times: every command still reaches the partner, any
//! repeat carries the same Idempotency-Key, and after de-duplication by key each arrived once.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::edge::provision;
use common::sinks::{dispatch, produce, topology, Partner, SinkProcess};
use common::unique_prefix;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_redelivers_and_never_skips() {
    const N: usize = 300;
    let erp = Partner::ok().await;
    // 100 ms per answer, four at a time: about 8 s of work to interrupt.
    erp.delay_ms.store(100, Ordering::Relaxed);
    let shop = Partner::ok().await;
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 1000, burst = 100 }\nretry = { initial_backoff = \"50ms\", max_backoff = \"200ms\", max_attempts = 5 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let text = std::fs::read_to_string(&topology.path).expect("read").replace("concurrency = 64", "concurrency = 4");
    std::fs::write(&topology.path, text).expect("write");
    let prefix = unique_prefix("sink-crash");
    provision(&topology, &prefix);
    let commands: Vec<_> = (0..N).map(|i| dispatch(&format!("order-{i}"), 0)).collect();
    produce(&format!("{prefix}orders.commands"), "dispatch_command", &commands, None).await;
    let expected: HashSet<String> = commands.iter().map(|c| c["command_id"].as_str().expect("id").to_owned()).collect();

    let args = ["--sink-session-timeout", "6s", "--sink-drain-timeout", "2s"];
    let mut kills = 0;
    for round in 0..3 {
        let mut sink = SinkProcess::start_with(&topology, &prefix, &["erp-dispatch"], &format!("r{round}"), &args);
        sink.wait_ready(Duration::from_secs(60));
        let before = erp.keys().len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while erp.keys().len() < before + 20 {
            assert!(Instant::now() < deadline, "no progress in round {round}:\n{}", sink.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seen = erp.keys().len();
        assert!(seen < N, "all delivered before the kill in round {round}: make the partner slower");
        sink.kill(); // SIGKILL: no drain, no final commit.
        kills += 1;
    }
    let sink = SinkProcess::start_with(&topology, &prefix, &["erp-dispatch"], "last", &args);
    sink.wait_ready(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(120);
    while erp.keys() != expected {
        assert!(
            Instant::now() < deadline,
            "{} of {N} commands reached the partner:\n{}",
            erp.keys().len(),
            sink.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let calls = erp.calls();
    for call in &calls {
        assert_eq!(
            call.json["command_id"].as_str(),
            Some(call.key.as_str()),
            "a repeat must carry the command's own key"
        );
    }
    let distinct: HashSet<&str> = calls.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(distinct.len(), N, "after de-duplication by Idempotency-Key, each command exactly once");
    eprintln!(
        "{kills} SIGKILLs: {} calls for {N} commands ({} repeats, all with the same key)",
        calls.len(),
        calls.len() - N
    );
}
