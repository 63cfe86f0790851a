//! The projector while CQL is down: it reports itself unready, keeps its place, and catches up
//! after CQL returns, nothing missing.
//!
//! This file stops and restarts Cassandra of the local stack, so it is its own test binary
//! (cargo runs test binaries one after another) with one test. A guard starts Cassandra again
//! even when an assertion fails.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::edge::provision;
use common::readmodel::*;
use common::{repo, unique_prefix};

fn stack(args: &[&str]) {
    let output = Command::new(repo().join("scripts/stack")).args(args).output().expect("scripts/stack");
    assert!(
        output.status.success(),
        "scripts/stack {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts Cassandra on drop (when the test fails while it is down).
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/stack")).args(["up", "cassandra"]).output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_projector_waits_for_cql_and_catches_up_with_nothing_missing() {
    let prefix = unique_prefix("cqlout");
    let keyspace = unique_keyspace("outage");
    let topology = topology_with_keyspace(&keyspace);
    provision(&topology, &prefix);
    migrate(&topology, &prefix);
    let topic = format!("{prefix}orders.state");
    let projector = Projector::start(&topology, &prefix, "order-projector");
    let before: Vec<serde_json::Value> = (0..20).map(|i| state(&format!("{prefix}before-{i}"), 2)).collect();
    produce_states(&topic, &before).await;
    projector.wait_projected(20, Duration::from_secs(90)).await;
    assert_eq!(projector.status("/readyz"), Some(200));

    let guard = Restart;
    stack(&["down", "cassandra"]);
    let during: Vec<serde_json::Value> = (0..50)
        .map(|i| state(&format!("{prefix}during-{i}"), 1 + i % 4))
        .chain((0..20).map(|i| state(&format!("{prefix}before-{i}"), 4)))
        .collect();
    produce_states(&topic, &during).await;
    // Unready while its writes fail.
    let deadline = Instant::now() + Duration::from_secs(60);
    while projector.status("/readyz") != Some(503) {
        assert!(Instant::now() < deadline, "the projector stayed ready without CQL:\n{}", projector.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(projector.projected().await, 20, "nothing counted as projected while CQL is down");
    stack(&["up", "cassandra"]);
    drop(guard);

    projector.wait_projected(90, Duration::from_secs(180)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while projector.status("/readyz") != Some(200) {
        assert!(Instant::now() < deadline, "the projector did not become ready again:\n{}", projector.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let session = session().await;
    for i in 0..50 {
        let id = format!("{prefix}during-{i}");
        let version = 1 + i64::from(i % 4);
        assert_eq!(order_row(&session, &keyspace, &id).await.map(|r| r.1), Some(version), "{id}");
        assert_eq!(timeline(&session, &keyspace, &id).await, (1..=version).rev().collect::<Vec<_>>(), "{id}");
    }
    for i in 0..20 {
        let id = format!("{prefix}before-{i}");
        assert_eq!(order_row(&session, &keyspace, &id).await, Some(("COMPLETED".to_owned(), 4)), "{id}");
    }
    drop(projector);
    drop_keyspace(&session, &keyspace).await;
}
