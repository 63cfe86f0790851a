//! The HTTP sinks against the real broker and registry, with partners that are real HTTP servers:
//! rate limits that hold per partner and across instances, the circuit breaker, dead letters
//! with failed results, ordering without head-of-line blocking, and replay from the dead letters.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::edge::provision;
use common::kafka::read_all;
use common::sinks::{cancel, dispatch, notification, produce, topology, Partner, SinkProcess};
use common::unique_prefix;
use rdkafka::message::Headers;
use rdkafka::Message;

/// Calls in `[from, from + window)`.
fn calls_between(partner: &Partner, from: Instant, window: Duration) -> usize {
    partner.calls().iter().filter(|c| c.at >= from && c.at < from + window).count()
}

/// The most calls in any one-second window starting at a call.
fn max_per_second(partner: &Partner, from: Instant, to: Instant) -> usize {
    let times: Vec<Instant> = partner.calls().iter().map(|c| c.at).filter(|t| *t >= from && *t < to).collect();
    times
        .iter()
        .map(|start| times.iter().filter(|t| **t >= *start && **t < *start + Duration::from_secs(1)).count())
        .max()
        .unwrap_or(0)
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_per_partner_and_across_instances() {
    const R: usize = 50;
    const BURST: usize = 5;
    const SHOP_R: usize = 100;
    let (erp, shop) = (Partner::ok().await, Partner::ok().await);
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 50, burst = 5 }\nretry = { initial_backoff = \"100ms\", max_backoff = \"1s\", max_attempts = 5 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let prefix = unique_prefix("sink-rate");
    provision(&topology, &prefix);
    let commands = format!("{prefix}orders.commands");
    let dispatches: Vec<_> = (0..2_000).map(|i| dispatch(&format!("order-{i}"), 0)).collect();
    let notes: Vec<_> = (0..2_000).map(|i| notification(&format!("order-{i}"))).collect();
    produce(&commands, "dispatch_command", &dispatches, None).await;
    produce(&commands, "notification_command", &notes, None).await;

    let first = SinkProcess::start(&topology, &prefix, &["erp-dispatch", "client-notify"], "a");
    first.wait_ready(Duration::from_secs(60));
    wait_for("the first deliveries", Duration::from_secs(60), || erp.count() >= R && shop.count() >= SHOP_R).await;
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (one, shop_one) =
        (calls_between(&erp, start, Duration::from_secs(10)), calls_between(&shop, start, Duration::from_secs(10)));
    let peak = max_per_second(&erp, start, start + Duration::from_secs(10));
    eprintln!("one instance: acme-erp {one} in 10 s (limit {R}/s), peak {peak} in 1 s; acme-shop {shop_one} (limit {SHOP_R}/s)");
    assert!((R * 95 / 10..=R * 105 / 10).contains(&one), "acme-erp got {one} calls in 10 s at {R}/s");
    assert!(peak <= R + BURST, "acme-erp got {peak} calls within one second (limit {R}, burst {BURST})");
    assert!(
        (SHOP_R * 95 / 10..=SHOP_R * 105 / 10).contains(&shop_one),
        "acme-shop got {shop_one} in 10 s at {SHOP_R}/s"
    );

    // A second instance joins the ERP sink's group: each enforces the share of the partitions it owns.
    let second = SinkProcess::start(&topology, &prefix, &["erp-dispatch"], "b");
    second.wait_ready(Duration::from_secs(60));
    let label = ["sink=\"erp-dispatch\""];
    wait_for("the partitions to be split between the two instances", Duration::from_secs(60), || {
        let (a, b) = (
            first.metric("hub_sink_assigned_partitions", &label),
            second.metric("hub_sink_assigned_partitions", &label),
        );
        a > 0.0 && b > 0.0 && (a + b - 12.0).abs() < f64::EPSILON
    })
    .await;
    // The share follows within the next check (one second); then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let two = calls_between(&erp, start, Duration::from_secs(10));
    let backlog = 2_000 - erp.keys().len();
    eprintln!("two instances: acme-erp {two} in 10 s (limit {R}/s), {backlog} commands still waiting");
    assert!(backlog > 0, "the backlog ran out: the measurement is not at the limit");
    assert!((R * 95 / 10..=R * 105 / 10).contains(&two), "two instances together sent {two} calls in 10 s at {R}/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_probes_and_recovers_while_another_partner_flows() {
    const SHOP_R: usize = 100;
    let (erp, shop) = (Partner::ok().await, Partner::ok().await);
    erp.status_override.store(503, Ordering::Relaxed);
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 1000, burst = 100 }\nretry = { initial_backoff = \"100ms\", max_backoff = \"300ms\", max_attempts = 200 }\nbreaker = { window = \"2s\", failure_ratio = 0.5, min_requests = 5, open_for = \"1500ms\" }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let prefix = unique_prefix("sink-breaker");
    provision(&topology, &prefix);
    let commands = format!("{prefix}orders.commands");
    let dispatches: Vec<_> = (0..30).map(|i| dispatch(&format!("order-{i}"), 0)).collect();
    let notes: Vec<_> = (0..1_500).map(|i| notification(&format!("order-{i}"))).collect();
    produce(&commands, "dispatch_command", &dispatches, None).await;
    produce(&commands, "notification_command", &notes, None).await;
    let sink = SinkProcess::start(&topology, &prefix, &["erp-dispatch", "client-notify"], "breaker");
    sink.wait_ready(Duration::from_secs(60));

    let open = ["partner=\"acme-erp\"", "outcome=\"open\""];
    wait_for("the breaker to open", Duration::from_secs(60), || {
        sink.metric("hub_sink_breaker_transitions_total", &open) >= 1.0
    })
    .await;
    // The ERP stays down for 6 s: the breaker cycles open → half-open (a probe fails) → open.
    let down_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let down_calls = calls_between(&erp, down_from, Duration::from_secs(6));
    let shop_calls = calls_between(&shop, down_from, Duration::from_secs(6));
    let state = sink.metrics();
    let reopened = common::sinks::metric_value(&state, "hub_sink_breaker_transitions_total", &open);
    let probes = common::sinks::metric_value(
        &state,
        "hub_sink_breaker_transitions_total",
        &["partner=\"acme-erp\"", "outcome=\"half_open\""],
    );
    eprintln!("ERP down 6 s: {down_calls} calls reached it (30 commands retrying every ≤300 ms would make ~600); opened {reopened}x, half-open {probes}x; acme-shop got {shop_calls} in those 6 s");
    assert!(probes >= 2.0 && reopened >= 3.0, "breaker should cycle: open {reopened}, half-open {probes}");
    // Open 1.5 s of every ~1.5 s + probe: at most a probe per cycle plus the calls in flight as it opened.
    assert!(down_calls <= 30, "{down_calls} calls reached a partner whose breaker was open");
    let mut gaps: Vec<Duration> = erp.calls().windows(2).map(|w| w[1].at - w[0].at).collect();
    gaps.retain(|g| *g >= Duration::from_millis(1_200));
    assert!(gaps.len() >= 2, "while open the partner sees no calls: expected pauses of ~1.5 s, got {gaps:?}");
    assert!(shop_calls >= SHOP_R * 6 * 95 / 100, "acme-shop slowed to {shop_calls} in 6 s while acme-erp was down");

    erp.status_override.store(0, Ordering::Relaxed);
    let up = Instant::now();
    wait_for("every dispatch to be delivered after recovery", Duration::from_secs(60), || {
        let delivered: std::collections::HashSet<String> =
            erp.calls().into_iter().filter(|c| c.at >= up).map(|c| c.key).collect();
        dispatches.iter().all(|d| delivered.contains(d["command_id"].as_str().unwrap_or_default()))
    })
    .await;
    wait_for("the breaker to close", Duration::from_secs(10), || {
        sink.metric("hub_sink_breaker_state", &["partner=\"acme-erp\""]) == 0.0
            && sink.metric("hub_sink_deliveries_total", &["partner=\"acme-erp\"", "outcome=\"delivered\""]) >= 30.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_command_is_dead_lettered_and_reported_failed() {
    let erp = Partner::start(Arc::new(|call: &common::sinks::Call, _| {
        if call.json["correlation_id"].as_str().unwrap_or_default().starts_with("bad-") {
            (400, vec![])
        } else {
            (201, vec![])
        }
    }))
    .await;
    let shop = Partner::ok().await;
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 1000, burst = 100 }\nretry = { initial_backoff = \"50ms\", max_backoff = \"100ms\", max_attempts = 5 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let prefix = unique_prefix("sink-refused");
    provision(&topology, &prefix);
    let commands: Vec<_> = ["good-1", "bad-1", "good-2", "bad-2", "good-3"].iter().map(|k| dispatch(k, 0)).collect();
    produce(&format!("{prefix}orders.commands"), "dispatch_command", &commands, None).await;
    let sink = SinkProcess::start(&topology, &prefix, &["erp-dispatch"], "refused");
    sink.wait_ready(Duration::from_secs(60));
    let results_topic = format!("{prefix}orders.results");
    wait_for("five delivery results", Duration::from_secs(60), || common::kafka::count(&results_topic) >= 5).await;
    let decoder = common::avro::decoder();
    let mut outcomes = HashMap::new();
    for message in read_all(&results_topic, "read_committed") {
        let (_, result) = common::avro::decode(&decoder, message.payload().expect("value"), "delivery_result").await;
        outcomes.insert(result["correlation_id"].as_str().unwrap_or_default().to_owned(), result);
    }
    assert_eq!(outcomes.len(), 5, "one result per command: {outcomes:?}");
    for key in ["bad-1", "bad-2"] {
        let r = &outcomes[key];
        assert_eq!(
            (r["outcome"].as_str(), r["http_status"].as_i64(), r["attempts"].as_i64()),
            (Some("REFUSED"), Some(400), Some(1)),
            "{r}"
        );
    }
    for key in ["good-1", "good-2", "good-3"] {
        assert_eq!(outcomes[key]["outcome"], "DELIVERED", "{}", outcomes[key]);
        assert_eq!(outcomes[key]["partner_reference"].as_str().map(|r| r.starts_with("REF-")), Some(true));
    }
    let per_key = erp.per_key();
    for c in commands.iter().filter(|c| c["correlation_id"].as_str().unwrap_or_default().starts_with("bad-")) {
        assert_eq!(per_key.get(c["command_id"].as_str().unwrap_or_default()), Some(&1), "a 400 is never retried");
    }
    let letters = read_all(&format!("{prefix}orders.dlq"), "read_committed");
    assert_eq!(letters.len(), 2, "one dead letter per refused command");
    for letter in &letters {
        let headers = letter.headers().expect("headers");
        let h = |name: &str| {
            headers
                .iter()
                .find(|x| x.key == name)
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(h("hub-error-class").as_deref(), Some("PERMANENT"));
        assert_eq!(h("hub-partner").as_deref(), Some("acme-erp"));
        assert_eq!(h("hub-error-stage").as_deref(), Some("sink:erp-dispatch"));
        let reason = h("hub-error-message").unwrap_or_default();
        assert!(reason.contains("HTTP 400") && reason.contains("1 attempt"), "reason: {reason}");
    }
    assert_eq!(sink.metric("hub_sink_dead_letters_total", &["partner=\"acme-erp\"", "outcome=\"PERMANENT\""]), 2.0);
    assert_eq!(sink.metric("hub_sink_deliveries_total", &["partner=\"acme-erp\"", "outcome=\"delivered\""]), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_waiting_for_a_retry_does_not_hold_up_the_others() {
    // The first command of order A is refused with 503 and Retry-After: 1 twice.
    let erp = Partner::start(Arc::new(|call: &common::sinks::Call, attempt| {
        if call.json["order_id"] == "order-A/1" && attempt <= 2 {
            (503, vec![("retry-after", "1".to_owned())])
        } else {
            (201, vec![])
        }
    }))
    .await;
    let shop = Partner::ok().await;
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 1000, burst = 100 }\nretry = { initial_backoff = \"50ms\", max_backoff = \"2s\", max_attempts = 5 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let prefix = unique_prefix("sink-order");
    provision(&topology, &prefix);
    // Everything on one partition: A's three commands first, then ten other orders.
    let mut commands: Vec<_> = (1..=3).map(|seq| dispatch("order-A", seq)).collect();
    commands.extend((0..10).map(|i| dispatch(&format!("order-{i}"), 1)));
    produce(&format!("{prefix}orders.commands"), "dispatch_command", &commands, Some(0)).await;
    let sink = SinkProcess::start(&topology, &prefix, &["erp-dispatch"], "order");
    sink.wait_ready(Duration::from_secs(60));
    wait_for("all thirteen commands", Duration::from_secs(60), || erp.keys().len() == 13).await;
    let calls = erp.calls();
    let a: Vec<_> = calls.iter().filter(|c| c.json["correlation_id"] == "order-A").collect();
    let order: Vec<&str> = a.iter().map(|c| c.json["order_id"].as_str().unwrap_or_default()).collect();
    assert_eq!(
        order,
        ["order-A/1", "order-A/1", "order-A/1", "order-A/2", "order-A/3"],
        "order A in order, after its retries"
    );
    let keys: std::collections::HashSet<_> = a[..3].iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys.len(), 1, "the same Idempotency-Key on every attempt");
    assert!(a[1].at - a[0].at >= Duration::from_secs(1), "Retry-After: 1 is honoured");
    let a1_delivered = a[2].at;
    let others_before = calls.iter().filter(|c| c.json["correlation_id"] != "order-A" && c.at < a1_delivered).count();
    assert_eq!(others_before, 10, "the other orders were delivered while order A waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_replay_after_an_outage_with_their_keys() {
    let erp = Partner::ok().await;
    erp.status_override.store(503, Ordering::Relaxed);
    let shop = Partner::ok().await;
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 1000, burst = 100 }\nretry = { initial_backoff = \"20ms\", max_backoff = \"50ms\", max_attempts = 2 }\nbreaker = { min_requests = 1000 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let prefix = unique_prefix("sink-replay");
    provision(&topology, &prefix);
    let commands: Vec<_> = (0..8).map(|i| dispatch(&format!("order-{i}"), 0)).collect();
    let notes: Vec<_> = (0..3).map(|i| notification(&format!("order-{i}"))).collect();
    let commands_topic = format!("{prefix}orders.commands");
    produce(&commands_topic, "dispatch_command", &commands, None).await;
    produce(&commands_topic, "notification_command", &notes, None).await;
    let sink = SinkProcess::start(&topology, &prefix, &["erp-dispatch", "client-notify"], "replay");
    sink.wait_ready(Duration::from_secs(60));
    let dlq = format!("{prefix}orders.dlq");
    wait_for("eight dead letters", Duration::from_secs(60), || common::kafka::count(&dlq) >= 8).await;
    let outage_keys = erp.keys();
    assert_eq!(outage_keys.len(), 8);

    // A careless producer's record on the dead-letter topic: listed as undecodable (naming where
    // it is and why), never blocking the list, never replayed.
    common::kafka::produce_raw(&dlq, "garbage", b"not a dead letter");
    let hub = |args: &[&str]| common::edge::hub_ok(&topology, &prefix, args);
    let everything = hub(&["dlq", "list", "--json"]);
    let all: Vec<serde_json::Value> = everything.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(all.len(), 9, "{everything}");
    let garbage: Vec<_> = all.iter().filter(|l| l["correlation_id"] == "garbage").collect();
    assert_eq!(garbage.len(), 1, "{everything}");
    assert_eq!(garbage[0]["error_class"], "UNDECODABLE", "{everything}");
    assert!(garbage[0]["error"].as_str().is_some_and(|e| e.contains("does not decode")), "{everything}");
    let listed = hub(&["dlq", "list", "--partner", "acme-erp", "--json"]);
    let letters: Vec<serde_json::Value> = listed.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(letters.len(), 8, "{listed}");
    assert!(letters.iter().all(|l| l["error_class"] == "EXHAUSTED" && l["stage"] == "sink:erp-dispatch"));
    assert_eq!(hub(&["dlq", "list", "--partner", "acme-shop", "--json"]).lines().count(), 0);
    let one = hub(&["dlq", "list", "--correlation-id", "order-3", "--json"]);
    assert_eq!(one.lines().count(), 1, "{one}");
    // When each letter failed: within the last hour, so --since 1h keeps all eight and --until 1h
    // (before an hour ago) none.
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis()).expect("ms");
    for letter in &letters {
        let at = letter["failed_at"].as_i64().expect("failed_at");
        assert!((now_ms - 3_600_000..=now_ms).contains(&at), "failed_at {at} is not in the last hour: {letter}");
    }
    let recent = hub(&["dlq", "list", "--partner", "acme-erp", "--since", "1h", "--json"]);
    assert_eq!(recent.lines().count(), 8, "{recent}");
    assert_eq!(hub(&["dlq", "list", "--partner", "acme-erp", "--until", "1h", "--json"]).lines().count(), 0);

    erp.status_override.store(0, Ordering::Relaxed);
    let before = common::kafka::count(&commands_topic);
    let dry = common::hub(&[
        "--topology",
        topology.arg(),
        "--topic-prefix",
        &prefix,
        "dlq",
        "replay",
        "--partner",
        "acme-erp",
        "--dry-run",
    ]);
    let (_, err) = common::text(&dry);
    assert!(dry.status.success() && err.contains("would re-publish 8"), "{err}");
    assert_eq!(common::kafka::count(&commands_topic), before, "a dry run sends nothing");

    let up = Instant::now();
    // Every letter: the eight are re-published, the undecodable one is skipped and said so.
    let replay = common::hub(&["--topology", topology.arg(), "--topic-prefix", &prefix, "dlq", "replay"]);
    let (_, err) = common::text(&replay);
    assert!(replay.status.success(), "{err}");
    assert!(err.contains("re-published 8") && err.contains("skipped 1 undecodable"), "{err}");
    assert_eq!(common::kafka::count(&commands_topic), before + 8);
    wait_for("the replayed commands to be delivered", Duration::from_secs(60), || {
        erp.calls().iter().filter(|c| c.at >= up).map(|c| c.key.clone()).collect::<std::collections::HashSet<_>>().len()
            == 8
    })
    .await;
    let replayed: std::collections::HashSet<String> =
        erp.calls().into_iter().filter(|c| c.at >= up).map(|c| c.key).collect();
    assert_eq!(replayed, outage_keys, "replays carry the original Idempotency-Keys");
    for call in erp.calls().iter().filter(|c| c.at >= up) {
        assert_eq!(call.json["command_id"].as_str(), Some(call.key.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_verify_with_the_python_standard_webhooks_library() {
    let shop = Partner::ok().await;
    let erp = Partner::ok().await;
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 1000, burst = 100 }\nretry = { initial_backoff = \"50ms\", max_backoff = \"100ms\", max_attempts = 3 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let prefix = unique_prefix("sink-signed");
    provision(&topology, &prefix);
    let notes: Vec<_> = (0..3).map(|i| notification(&format!("order-{i}"))).collect();
    produce(&format!("{prefix}orders.commands"), "notification_command", &notes, None).await;
    let sink = SinkProcess::start(&topology, &prefix, &["client-notify"], "signed");
    sink.wait_ready(Duration::from_secs(60));
    wait_for("three notifications", Duration::from_secs(60), || shop.count() >= 3).await;
    for call in shop.calls() {
        let verified = common::python::verify_webhook(common::sinks::SIGNING_SECRET, &call.body, &call.headers)
            .unwrap_or_else(|why| panic!("standardwebhooks (PyPI) refused the signature: {why}"));
        assert_eq!(verified, serde_json::from_slice::<serde_json::Value>(&call.body).expect("json"));
    }
    // A tampered body must fail the same check (the verifier is not a rubber stamp).
    let call = &shop.calls()[0];
    let tampered = common::python::verify_webhook(common::sinks::SIGNING_SECRET, b"{\"tampered\":true}", &call.headers);
    assert!(tampered.is_err(), "a tampered body verified: {tampered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_past_its_deadline_is_reported_expired_and_never_reaches_the_partner_and_a_cancel_has_its_own_request(
) {
    let erp = Partner::ok().await;
    let shop = Partner::ok().await;
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 1000, burst = 100 }\nretry = { initial_backoff = \"50ms\", max_backoff = \"100ms\", max_attempts = 3 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let prefix = unique_prefix("sink-expired");
    provision(&topology, &prefix);
    let mut commands: Vec<_> = ["late-1", "fresh-1", "late-2"].iter().map(|k| dispatch(k, 0)).collect();
    for c in commands.iter_mut().filter(|c| c["correlation_id"].as_str().unwrap_or_default().starts_with("late-")) {
        c["deadline"] = serde_json::json!(c["issued_at"].as_i64().expect("issued_at") - 1_000);
    }
    // The sink owns its partitions first: commands written after that were never read by an
    // earlier owner, so only they may be skipped as expired (a backlog one is delivered again
    // under its key, since an earlier owner may have delivered it and died before reporting).
    let sink = SinkProcess::start(&topology, &prefix, &["erp-dispatch"], "expired");
    sink.wait_ready(Duration::from_secs(60));
    let commands_topic = format!("{prefix}orders.commands");
    produce(&commands_topic, "dispatch_command", &commands, None).await;
    let withdraw = cancel("fresh-1", commands[1]["command_id"].as_str().expect("id"));
    produce(&commands_topic, "cancel_command", std::slice::from_ref(&withdraw), None).await;
    let results_topic = format!("{prefix}orders.results");
    wait_for("four delivery results", Duration::from_secs(60), || common::kafka::count(&results_topic) >= 4).await;
    let decoder = common::avro::decoder();
    let mut outcomes = HashMap::new();
    for message in read_all(&results_topic, "read_committed") {
        let (_, result) = common::avro::decode(&decoder, message.payload().expect("value"), "delivery_result").await;
        outcomes.insert(result["command_id"].as_str().unwrap_or_default().to_owned(), result);
    }
    assert_eq!(outcomes.len(), 4, "one result per command: {outcomes:?}");
    let outcome = |c: &serde_json::Value| {
        let r = &outcomes[c["command_id"].as_str().unwrap_or_default()];
        (
            r["command_type"].as_str().map(str::to_owned),
            r["outcome"].as_str().map(str::to_owned),
            r["attempts"].as_i64(),
        )
    };
    for late in [&commands[0], &commands[2]] {
        assert_eq!(outcome(late), (Some("dispatch_command".into()), Some("EXPIRED".into()), Some(0)), "{late}");
    }
    assert_eq!(outcome(&commands[1]), (Some("dispatch_command".into()), Some("DELIVERED".into()), Some(1)));
    assert_eq!(outcome(&withdraw), (Some("cancel_command".into()), Some("DELIVERED".into()), Some(1)));
    // What the partner received: the fresh dispatch and the cancel, each once, nothing expired.
    let calls: Vec<(String, String, String)> = erp.calls().into_iter().map(|c| (c.key, c.method, c.path)).collect();
    let fresh = commands[1]["command_id"].as_str().expect("id").to_owned();
    let cancel_key = withdraw["command_id"].as_str().expect("id").to_owned();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.contains(&(fresh, "POST".into(), "/orders".into())), "{calls:?}");
    assert!(calls.contains(&(cancel_key, "POST".into(), "/orders/fresh-1%2F0/cancel".into())), "{calls:?}");
    let cancel_call = erp.calls().into_iter().find(|c| c.path.ends_with("/cancel")).expect("cancel call");
    assert_eq!(cancel_call.json["dispatch_command_id"], commands[1]["command_id"]);
    assert_eq!(cancel_call.headers["authorization"], format!("Bearer {}", common::sinks::ERP_TOKEN).as_str());
    assert_eq!(read_all(&format!("{prefix}orders.dlq"), "read_committed").len(), 0, "expiry is no dead letter");
    assert_eq!(sink.metric("hub_sink_deliveries_total", &["partner=\"acme-erp\"", "outcome=\"expired\""]), 2.0);
}
