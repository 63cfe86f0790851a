//! The planner, on hand-made cluster states.

use std::path::Path;

use super::*;

fn topology() -> Topology {
    Topology::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../topology.toml"), "").expect("valid")
}

/// The cluster that an apply with `allow_fewer_replicas` on one broker leaves behind.
fn applied_on_one_broker(topology: &Topology) -> ClusterState {
    let empty = ClusterState { brokers: 1, topics: BTreeMap::new() };
    let plan = plan(topology, &empty, PlanOptions { allow_fewer_replicas: true });
    let mut state = ClusterState { brokers: 1, topics: BTreeMap::new() };
    for change in plan.changes {
        let Change::Create { topic, partitions, replication_factor, configs } = change else { panic!("only creates") };
        state.topics.insert(topic, ActualTopic { partitions, replication_factor, dynamic: configs.clone(), configs });
    }
    state
}

#[test]
fn an_empty_cluster_gets_every_topic_with_its_configs() {
    let topology = topology();
    let plan = plan(&topology, &ClusterState { brokers: 3, topics: BTreeMap::new() }, PlanOptions::default());
    assert!(plan.refusals.is_empty());
    assert_eq!(plan.changes.len(), topology.topics.len());
    let state = plan
        .changes
        .iter()
        .find_map(|c| match c {
            Change::Create { topic, configs, replication_factor, .. } if topic == "orders.state" => {
                Some((configs.clone(), *replication_factor))
            }
            _ => None,
        })
        .expect("state topic created");
    assert_eq!(state.0.get("cleanup.policy").map(String::as_str), Some("compact"));
    assert_eq!(state.0.get("min.insync.replicas").map(String::as_str), Some("2"));
    assert_eq!(state.1, 3);
}

#[test]
fn one_broker_needs_the_explicit_flag() {
    let topology = topology();
    let empty = ClusterState { brokers: 1, topics: BTreeMap::new() };
    let refused = plan(&topology, &empty, PlanOptions::default());
    assert_eq!(refused.refusals.len(), topology.topics.len());
    assert!(refused.changes.is_empty());
    let allowed = plan(&topology, &empty, PlanOptions { allow_fewer_replicas: true });
    assert!(allowed.refusals.is_empty());
    assert_eq!(allowed.notes.len(), topology.topics.len());
    assert!(allowed.changes.iter().all(|c| matches!(c, Change::Create { replication_factor: 1, configs, .. }
        if configs.get("min.insync.replicas").map(String::as_str) == Some("1"))));
}

#[test]
fn a_matching_cluster_needs_no_change() {
    let topology = topology();
    let state = applied_on_one_broker(&topology);
    let plan = plan(&topology, &state, PlanOptions { allow_fewer_replicas: true });
    assert_eq!(plan.changes, vec![]);
    assert_eq!(plan.refusals, vec![]);
}

#[test]
fn fewer_partitions_and_compact_to_delete_are_refused() {
    let topology = topology();
    let mut state = applied_on_one_broker(&topology);
    state.topics.get_mut("orders.inbound").expect("inbound").partitions = 24;
    let events = state.topics.get_mut("orders.events").expect("events");
    events.configs.insert("cleanup.policy".into(), "compact".into());
    let plan = plan(&topology, &state, PlanOptions { allow_fewer_replicas: true });
    assert_eq!(plan.refusals.len(), 2, "{:?}", plan.refusals);
    assert!(plan.refusals.contains(&Refusal::FewerPartitions {
        topic: "orders.inbound".into(),
        declared: 12,
        actual: 24
    }));
    assert!(plan
        .refusals
        .contains(&Refusal::CompactedToDelete { topic: "orders.events".into(), actual: "compact".into() }));
}

#[test]
fn missing_partitions_are_added_and_drifted_configs_fixed_keeping_foreign_ones() {
    let topology = topology();
    let mut state = applied_on_one_broker(&topology);
    state.topics.get_mut("orders.results").expect("results").partitions = 4;
    let dlq = state.topics.get_mut("orders.dlq").expect("dlq");
    dlq.configs.insert("retention.ms".into(), "1000".into());
    dlq.dynamic.insert("retention.ms".into(), "1000".into());
    dlq.dynamic.insert("max.message.bytes".into(), "2000000".into());
    let plan = plan(&topology, &state, PlanOptions { allow_fewer_replicas: true });
    assert!(plan.refusals.is_empty());
    assert!(plan.changes.contains(&Change::AddPartitions { topic: "orders.results".into(), from: 4, to: 12 }));
    let alter = plan.changes.iter().find_map(|c| match c {
        Change::AlterConfigs { topic, set, full } if topic == "orders.dlq" => Some((set.clone(), full.clone())),
        _ => None,
    });
    let (set, full) = alter.expect("dlq altered");
    assert_eq!(set, vec![("retention.ms".to_owned(), Some("1000".to_owned()), "2592000000".to_owned())]);
    assert_eq!(full.get("max.message.bytes").map(String::as_str), Some("2000000"), "foreign config kept");
}
