//! The order processor end to end on the real broker and registry: every path of the saga,
//! poison records, upstream producers, and the state topic as a data team reads it.

mod common;

use std::time::Duration;

use common::edge::{provision, test_topology};
use common::orders::{counts, try_wait_terminal};
use common::process::{produce_orders, publish_inventory, upstream_order, FakeErp, Processor};
use common::{kafka, unique_prefix, TopologyCopy};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn topology_with_deadline(deadline: &str) -> TopologyCopy {
    let copy = test_topology();
    let text = std::fs::read_to_string(&copy.path)
        .expect("read")
        .replace("dispatch_deadline = \"5m\"", &format!("dispatch_deadline = \"{deadline}\""));
    std::fs::write(&copy.path, text).expect("write");
    copy
}

fn answer(order_id: &str) -> Option<&'static str> {
    if order_id.starts_with("REFUSE") {
        Some("REFUSED")
    } else if order_id.starts_with("SILENT") {
        None
    } else {
        Some("DELIVERED")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_order_reaches_its_terminal_state_exactly_once() {
    let topology = topology_with_deadline("3s");
    let prefix = unique_prefix("saga");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 10_000), ("SKU-B", 10_000), ("SKU-LOW", 1)]).await;
    let erp = FakeErp::start(&t("orders.commands"), &t("orders.results"), answer);
    let processor = Processor::start(&topology, &prefix, "p1", &[]);

    let mut orders = Vec::new();
    for (kind, n, sku, qty) in
        [("OK", 20, "SKU-A", 2), ("LOW", 3, "SKU-LOW", 5), ("REFUSE", 3, "SKU-A", 1), ("SILENT", 3, "SKU-A", 1)]
    {
        for i in 0..n {
            let id = format!("{prefix}{kind}-{i}");
            orders.push((id.clone(), upstream_order(&id, &format!("{kind}-{i}"), sku, qty)));
        }
    }
    // A poison record (not Avro) ahead of a valid order on the same partition.
    let poison_key = format!("{prefix}OK-0");
    let plain: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let poison = plain
        .send(
            FutureRecord::to(&t("orders.inbound")).key(&poison_key).payload("{\"not\": \"avro\"}"),
            Duration::from_secs(10),
        )
        .await
        .expect("poison produced");
    produce_orders(&t("orders.inbound"), &orders).await;

    let ids: Vec<String> = orders.iter().map(|(id, _)| id.clone()).collect();
    let states = try_wait_terminal(&t("orders.state"), &ids, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e}\nprocessor log:\n{}", processor.log_text()));
    for (id, state) in &states {
        let expected = match id.trim_start_matches(&prefix).split('-').next() {
            Some("OK") => "COMPLETED",
            Some("LOW") => "REJECTED",
            _ => "COMPENSATED",
        };
        assert_eq!(state["status"], expected, "{id}: {state}");
    }
    let silent = &states[&format!("{prefix}SILENT-0")];
    assert!(silent["failure_reason"].as_str().is_some_and(|r| r.contains("no delivery result")), "{silent}");
    let ok = &states[&format!("{prefix}OK-1")];
    assert_eq!(ok["partner_reference"], "ERP-OK-1");
    assert_eq!(ok["subtotal"], "519.90");
    assert_eq!(ok["discount"], "26.00", "5% from 500.00 up");
    assert_eq!(ok["total"], "493.90");
    let steps: Vec<&str> = ok["history"].as_array().expect("history").iter().filter_map(|h| h["to"].as_str()).collect();
    assert_eq!(steps, ["RECEIVED", "VALIDATED", "SENT_TO_PARTNER", "COMPLETED"]);

    erp.stop().await;
    let commands = counts(&t("orders.commands"), "read_committed");
    for id in &ids {
        let n = |kind: &str| commands.get(&(id.clone(), kind.to_owned())).copied().unwrap_or(0);
        let low = id.contains("LOW-");
        assert_eq!(n("dispatch_command"), usize::from(!low), "{id} dispatches");
        assert_eq!(n("notification_command"), 1, "{id} notifications");
        let compensated = id.contains("REFUSE-") || id.contains("SILENT-");
        assert_eq!(n("stock_release_command"), usize::from(compensated), "{id} stock releases");
    }

    let dead = kafka::read_all(&t("orders.dlq"), "read_committed");
    assert_eq!(dead.len(), 1, "the poison record, and only it");
    let header = |name: &str| {
        dead[0].headers().and_then(|h| {
            h.iter().find(|x| x.key == name).and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned())
        })
    };
    assert_eq!(header("hub-error-class").as_deref(), Some("PERMANENT"));
    assert_eq!(header("hub-source-offset"), Some(poison.offset.to_string()));
    assert_eq!(header("hub-source-topic"), Some(t("orders.inbound")));
    assert!(header("hub-error-message").is_some_and(|m| m.contains("Avro")), "{:?}", header("hub-error-message"));
    assert_eq!(dead[0].key(), Some(poison_key.as_bytes()));
    drop(processor);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_topic_that_is_not_compacted_on_the_broker_stops_the_processor() {
    let topology = test_topology();
    let prefix = unique_prefix("notcompact");
    provision(&topology, &prefix);
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", common::bootstrap()).create().expect("admin");
    let state = format!("{prefix}orders.state");
    let alter = rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(&state))
        .set("cleanup.policy", "delete")
        .set("min.insync.replicas", "1");
    let options = rdkafka::admin::AdminOptions::new();
    let altered = admin.alter_configs(&[alter], &options).await.expect("altered");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    // The processor starts only once the broker reports the change (a fixed sleep was too
    // short for a loaded broker: the processor then started normally and the test waited
    // forever).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let described = admin
            .describe_configs(&[rdkafka::admin::ResourceSpecifier::Topic(&state)], &options)
            .await
            .expect("describe configs");
        let policy = described
            .into_iter()
            .next()
            .and_then(Result::ok)
            .and_then(|resource| resource.get("cleanup.policy").and_then(|e| e.value.clone()));
        if policy.as_deref() == Some("delete") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the broker still reports cleanup.policy={policy:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut processor = Processor::spawn(&topology, &prefix, "p1", &[]);
    let status = tokio::task::spawn_blocking(move || {
        // Bounded: a processor that does not stop fails the test instead of hanging the suite
        // (dropped, it is killed).
        let exited = processor.wait_exit(Duration::from_secs(120));
        let status = exited.then(|| processor.child.wait().expect("exit status"));
        (status, processor.log_text())
    })
    .await
    .expect("join");
    let exited = status.0.unwrap_or_else(|| panic!("the processor did not stop within 120 s:\n{}", status.1));
    assert!(!exited.success(), "exits non-zero");
    assert!(status.1.contains("must be compacted"), "{}", status.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_deadline_fires_once_after_a_restart() {
    let topology = topology_with_deadline("4s");
    let prefix = unique_prefix("deadline");
    provision(&topology, &prefix);
    let t = |name: &str| format!("{prefix}{name}");
    publish_inventory(&t("inventory.levels"), &[("SKU-A", 100), ("SKU-B", 100)]).await;
    let mut processor = Processor::start(&topology, &prefix, "d1", &[]);
    let orders: Vec<(String, serde_json::Value)> = (0..5)
        .map(|i| format!("{prefix}SILENT-{i}"))
        .map(|id| (id.clone(), upstream_order(&id, "SILENT", "SKU-A", 1)))
        .collect();
    produce_orders(&t("orders.inbound"), &orders).await;
    // Wait until all are validated (dispatched, waiting), then kill the processor before the deadline.
    let ids: Vec<String> = orders.iter().map(|(id, _)| id.clone()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let states = common::orders::latest_states(&t("orders.state")).await;
        if ids.iter().all(|id| states.get(id).is_some_and(|s| s["status"] == "VALIDATED")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not validated: {states:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    processor.kill();
    let restarted = Processor::start(&topology, &prefix, "d1", &[]);
    let states = try_wait_terminal(&t("orders.state"), &ids, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\nprocessor log:\n{}", restarted.log_text()));
    for id in &ids {
        assert_eq!(states[id]["status"], "COMPENSATED", "{id}");
    }
    let commands = counts(&t("orders.commands"), "read_committed");
    for id in &ids {
        assert_eq!(commands.get(&(id.clone(), "stock_release_command".to_owned())), Some(&1), "{id}: released once");
        assert_eq!(commands.get(&(id.clone(), "notification_command".to_owned())), Some(&1), "{id}: notified once");
    }
    drop(restarted);
}

/// A restore reads to the end as of its start, including a transaction then in flight: the
/// previous owner's last commit, whose markers a busy broker writes hundreds of milliseconds
/// after the commit returned. The restore waits for it and keeps the states it commits (it used
/// to stop at the last stable offset, and a loop joining under load lost those states).
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_waits_for_a_transaction_in_flight_and_keeps_what_it_commits() {
    use interchange_processors::runtime::{restore::restore, store::Store};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let topic = format!("{}state", unique_prefix("restore-inflight"));
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", common::bootstrap()).create().expect("admin");
    let new = rdkafka::admin::NewTopic::new(&topic, 1, rdkafka::admin::TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
    let created = admin.create_topics(&[new], &rdkafka::admin::AdminOptions::new()).await.expect("create");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("transactional.id", &topic)
        .create()
        .expect("producer");
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).expect("init");
    producer.begin_transaction().expect("begin");
    for key in ["order-1", "order-2"] {
        producer.send(BaseRecord::to(&topic).key(key).payload("state")).expect("send");
    }
    producer.flush(timeout).expect("records on the broker, transaction open");
    let settings = interchange_core::kafka::KafkaSettings::new(&common::bootstrap(), None, &[]).expect("settings");
    let restoring = tokio::task::spawn_blocking({
        let topic = topic.clone();
        move || {
            let mut store: Store<serde_json::Value> = Store::new(None, 0);
            let read = restore(&settings, &topic, &[0], &mut store).expect("restore");
            (read, store.len())
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!restoring.is_finished(), "the restore ended with a transaction in flight below its end");
    producer.commit_transaction(timeout).expect("commit");
    let (read, states) =
        tokio::time::timeout(Duration::from_secs(60), restoring).await.expect("restore ended").expect("join");
    assert_eq!((read, states), (2, 2), "both committed states restored");
}
