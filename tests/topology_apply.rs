//! `hub topology apply|describe` against the real Kafka broker of the local stack (`scripts/stack up`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{bootstrap, hub, text, unique_prefix, TopologyCopy};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap()).create().expect("admin client")
}

/// Partition count of every topic with `prefix`, straight from broker metadata.
fn partitions(prefix: &str) -> BTreeMap<String, usize> {
    let admin = admin();
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
    metadata
        .topics()
        .iter()
        .filter(|t| t.name().starts_with(prefix))
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect()
}

/// One topic config value as the broker reports it.
async fn config(topic: &str, key: &str) -> Option<String> {
    let admin = admin();
    let results = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe configs");
    let resource = results.into_iter().next().expect("one result").expect("topic config");
    resource.get(key).and_then(|e| e.value.clone())
}

fn apply(prefix: &str, topology: Option<&str>) -> (bool, String, String) {
    let mut args = vec!["--topic-prefix", prefix, "topology", "apply", "--allow-fewer-replicas"];
    if let Some(path) = topology {
        args.splice(0..0, ["--topology", path]);
    }
    let output = hub(&args);
    let (out, err) = text(&output);
    (output.status.success(), out, err)
}

#[tokio::test]
async fn apply_creates_every_topic_then_changes_nothing() {
    let prefix = unique_prefix("apply");
    let (ok, out, err) = apply(&prefix, None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("applied 14 change(s)"), "{out}");

    let actual = partitions(&prefix);
    assert_eq!(actual.len(), 14, "{actual:?}");
    assert_eq!(actual.get(&format!("{prefix}orders.inbound")), Some(&12));
    assert_eq!(actual.get(&format!("{prefix}orders.dlq")), Some(&3));
    assert_eq!(actual.get(&format!("{prefix}inventory.levels")), Some(&6));

    let state = format!("{prefix}orders.state");
    assert_eq!(config(&state, "cleanup.policy").await.as_deref(), Some("compact"));
    assert_eq!(config(&format!("{prefix}inventory.levels"), "cleanup.policy").await.as_deref(), Some("compact"));
    assert_eq!(config(&format!("{prefix}orders.inbound"), "cleanup.policy").await.as_deref(), Some("delete"));
    assert_eq!(config(&format!("{prefix}orders.events"), "retention.ms").await.as_deref(), Some("7776000000"));
    assert_eq!(config(&state, "min.compaction.lag.ms").await.as_deref(), Some("0"));

    let (ok, out, err) = apply(&prefix, None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("no change: all 14 topics match"), "second run reports no change:\n{out}");
    assert!(!out.contains("create") && !out.contains("alter") && !out.contains("raise"), "{out}");
    assert_eq!(partitions(&prefix), actual);
}

#[tokio::test]
async fn apply_raises_partitions_and_fixes_drifted_configs() {
    let prefix = unique_prefix("raise");
    let dlq_block = "the reason in headers.\"\npartitions = 3\nkey = \"correlation_id\"\ncleanup_policy = \"delete\"\nretention = \"30d\"";
    let fewer = TopologyCopy::new(&[(dlq_block, &dlq_block.replace("partitions = 3", "partitions = 1"))]);
    let (ok, out, err) = apply(&prefix, Some(fewer.arg()));
    assert!(ok, "{out}{err}");
    let dlq = format!("{prefix}orders.dlq");
    assert_eq!(partitions(&prefix).get(&dlq), Some(&1));

    let drifted =
        TopologyCopy::new(&[(dlq_block, &dlq_block.replace("partitions = 3", "partitions = 1").replace("30d", "1d"))]);
    let (ok, out, err) = apply(&prefix, Some(drifted.arg()));
    assert!(ok, "{out}{err}");
    assert_eq!(config(&dlq, "retention.ms").await.as_deref(), Some("86400000"));

    // The shipped file: 3 partitions and 30 days again.
    let (ok, out, err) = apply(&prefix, None);
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("raise {dlq} from 1 to 3 partitions")), "{out}");
    assert!(out.contains(&format!("alter {dlq}: retention.ms: 86400000 -> 2592000000")), "{out}");
    assert_eq!(partitions(&prefix).get(&dlq), Some(&3));
    assert_eq!(config(&dlq, "retention.ms").await.as_deref(), Some("2592000000"));
}

#[tokio::test]
async fn unsafe_changes_are_refused_and_nothing_changes() {
    let prefix = unique_prefix("refuse");
    let (ok, out, err) = apply(&prefix, None);
    assert!(ok, "{out}{err}");
    let before = partitions(&prefix);

    // A state topic turned to delete never reaches the broker: the offline check refuses it.
    let state_to_delete = TopologyCopy::new(&[(
        "key = \"correlation_id\"\ncleanup_policy = \"compact\"",
        "key = \"correlation_id\"\ncleanup_policy = \"delete\"",
    )]);
    let (ok, out, err) = apply(&prefix, Some(state_to_delete.arg()));
    assert!(!ok && err.contains("must be compacted"), "{out}{err}");

    // Fewer partitions and compact->delete on the lookup table (no longer used as one), plus a
    // safe retention change that must not be applied either: a refused run changes nothing.
    let unsafe_copy = TopologyCopy::new(&[
        ("partitions = 6\n", "partitions = 2\n"),
        (
            "key = \"correlation_id\"\ncleanup_policy = \"compact\"",
            "key = \"correlation_id\"\ncleanup_policy = \"delete\"",
        ),
        ("retention = \"90d\"", "retention = \"1d\""),
    ]);
    let state_fix = TopologyCopy::new(&[]);
    drop(state_fix);
    // The processor's state must stay compacted, so plant compact->delete on the lookup table instead
    // when the validator would refuse the copy offline.
    let output = hub(&["--topology", unsafe_copy.arg(), "topology", "check"]);
    let offline_refused = !output.status.success();
    assert!(offline_refused, "a non-compacted state topic is refused before any broker is asked");

    let unsafe_copy = TopologyCopy::new(&[
        ("partitions = 6\n", "partitions = 2\n"),
        ("retention = \"90d\"", "retention = \"1d\""),
        ("key = \"sku\"\ncleanup_policy = \"compact\"", "key = \"sku\"\ncleanup_policy = \"delete\""),
        (r#"lookups = ["inventory.levels"]"#, "lookups = []"),
    ]);
    let (ok, out, err) = apply(&prefix, Some(unsafe_copy.arg()));
    assert!(!ok, "refused runs exit non-zero:\n{out}{err}");
    assert!(err.contains("refused, nothing changed (2 unsafe change(s))"), "{err}");
    let levels = format!("{prefix}inventory.levels");
    assert!(err.contains(&format!("{levels}: declared 2 partitions but it has 6")), "{err}");
    assert!(err.contains(&format!("{levels}: is cleanup.policy=compact")), "{err}");

    assert_eq!(partitions(&prefix), before, "partition counts unchanged");
    assert_eq!(config(&levels, "cleanup.policy").await.as_deref(), Some("compact"));
    assert_eq!(config(&format!("{prefix}orders.events"), "retention.ms").await.as_deref(), Some("7776000000"));
}

#[test]
fn describe_shows_declared_against_actual() {
    let prefix = unique_prefix("describe");
    let output = hub(&["--topic-prefix", &prefix, "topology", "describe", "--allow-fewer-replicas"]);
    let (out, err) = text(&output);
    assert!(output.status.success(), "{out}{err}");
    assert_eq!(out.matches("missing").count(), 14, "{out}");
    let (ok, out, err) = apply(&prefix, None);
    assert!(ok, "{out}{err}");
    let output = hub(&["--topic-prefix", &prefix, "topology", "describe", "--allow-fewer-replicas"]);
    let (out, _) = text(&output);
    assert_eq!(out.matches("  ok").count(), 14, "{out}");
    assert!(out.contains("cluster: 1 broker(s)"), "{out}");
}
