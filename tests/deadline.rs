//! Honest deadlines on the real stack: a processor held back past the dispatch deadline while
//! the edge accepts orders. Each order's deadline runs from when the processor writes its
//! dispatch; a dispatch the ERP accepts after its order was compensated is withdrawn with a
//! cancel the ERP receives; the client hears once per order.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use common::orders::{counts, wait_terminal};
use common::pipeline::{notifications, partner, wait_calls, Behaviour, Calls, Options, Pipeline};
use common::unique_prefix;

/// Stock for the reference order (SKU-00100..SKU-00105).
const STOCK: &[(&str, i64)] = &[
    ("SKU-00100", 1_000_000),
    ("SKU-00101", 1_000_000),
    ("SKU-00102", 1_000_000),
    ("SKU-00103", 1_000_000),
    ("SKU-00104", 1_000_000),
    ("SKU-00105", 1_000_000),
];

/// What the ERP received for one order: dispatch calls per Idempotency-Key with their 2xx
/// answers, and the dispatch ids of the cancels it answered 2xx.
#[derive(Debug, Default)]
struct ErpSide {
    dispatches: HashMap<String, (usize, usize)>,
    cancelled: HashSet<String>,
}

fn erp_side(calls: &Calls) -> HashMap<String, ErpSide> {
    let mut out: HashMap<String, ErpSide> = HashMap::new();
    for call in calls.lock().expect("lock").iter() {
        let body: serde_json::Value = serde_json::from_slice(&call.body).expect("JSON");
        let id = body["correlation_id"].as_str().expect("correlation_id").to_owned();
        let key = call.headers["idempotency-key"].to_str().expect("key").to_owned();
        let ok = (200..300).contains(&call.status);
        let side = out.entry(id).or_default();
        if call.path.ends_with("/cancel") {
            if ok {
                side.cancelled.insert(body["dispatch_command_id"].as_str().unwrap_or_default().to_owned());
            }
        } else {
            let entry = side.dispatches.entry(key).or_default();
            entry.0 += 1;
            entry.1 += usize::from(ok);
        }
    }
    out
}

/// Orders the ERP accepted (2xx) whose final state is COMPENSATED and to which no cancel of that
/// dispatch was accepted: the silent disagreement this test exists for.
fn disagreements(states: &HashMap<String, serde_json::Value>, erp: &Calls) -> Vec<String> {
    let side = erp_side(erp);
    states
        .iter()
        .filter(|(_, s)| s["status"] == "COMPENSATED")
        .filter_map(|(id, s)| {
            let erp = side.get(id)?;
            let accepted: Vec<&String> = erp.dispatches.iter().filter(|(_, (_, ok))| *ok > 0).map(|(k, _)| k).collect();
            let silent = accepted.iter().any(|k| !erp.cancelled.contains(*k) || s["cancel_command_id"].is_null());
            silent.then(|| format!("{id}: ERP accepted {accepted:?}, cancels {:?}, state {s}", erp.cancelled))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processor_held_back_past_the_deadline_never_leaves_the_erp_and_the_client_in_disagreement() {
    let (erp_url, erp) = partner(Behaviour::Answer).await;
    let (shop_url, shop) = partner(Behaviour::Answer).await;
    let prefix = unique_prefix("held-back");
    let mut options = Options::new(&erp_url, &shop_url);
    options.deadline = "4s";
    options.separate = true;
    options.processor_later = true;
    let mut pipeline = Pipeline::start(&prefix, &options, STOCK).await;
    let accepted = pipeline.post_orders("HELD", 20).await;
    // Twice the deadline with no processor: every record is older than its deadline.
    tokio::time::sleep(Duration::from_secs(8)).await;
    pipeline.start_processor().await;

    let states = wait_terminal(&pipeline.topic("orders.state"), &accepted, Duration::from_secs(150)).await;
    assert_eq!(
        states.keys().collect::<BTreeSet<_>>(),
        accepted.iter().collect(),
        "orders in the state topic = orders accepted"
    );
    wait_calls(&shop, accepted.len(), Duration::from_secs(60)).await;
    // A dispatch accepted after compensation needs its result, the saga and the sink to bring
    // the cancel: wait for it (or for nothing more to come), then count.
    let until = Instant::now() + Duration::from_secs(30);
    let mut states = states;
    while !disagreements(&states, &erp).is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        states = common::orders::latest_states(&pipeline.topic("orders.state")).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let states = common::orders::latest_states(&pipeline.topic("orders.state")).await;
    let silent = disagreements(&states, &erp);
    assert!(
        silent.is_empty(),
        "{} orders accepted by the ERP and compensated without a cancel: {silent:#?}",
        silent.len()
    );

    let side = erp_side(&erp);
    let commands = counts(&pipeline.topic("orders.commands"), "read_committed");
    let notes = notifications(&shop);
    for id in &accepted {
        let state = &states[id];
        let status = state["status"].as_str().unwrap_or_default();
        assert!(matches!(status, "COMPLETED" | "COMPENSATED"), "{id}: {state}");
        // Each dispatch at most once per Idempotency-Key, one key per order.
        let erp = side.get(id.as_str());
        let keys = erp.map_or(0, |e| e.dispatches.len());
        assert!(keys <= 1, "{id}: dispatched under {keys} keys");
        for (key, (calls, _)) in erp.map(|e| &e.dispatches).into_iter().flatten() {
            assert_eq!(*calls, 1, "{id}: dispatch {key} reached the ERP {calls} times");
        }
        let n = |kind: &str| commands.get(&(id.clone(), kind.to_owned())).copied().unwrap_or(0);
        assert_eq!(n("dispatch_command"), 1, "{id}");
        assert_eq!(n("notification_command"), 1, "{id}");
        assert!(n("cancel_command") <= 1, "{id}: {} cancels", n("cancel_command"));
        if status == "COMPLETED" {
            assert_eq!(
                erp.map_or(0, |e| e.dispatches.values().map(|(_, ok)| ok).sum()),
                1,
                "{id}: completed, accepted once"
            );
            assert_eq!(n("cancel_command"), 0, "{id}: a completed order is never cancelled");
        }
        // Exactly one notification per order, saying what its state says.
        let (deliveries, ids, types) = notes.get(id).cloned().unwrap_or_default();
        let expected = if status == "COMPLETED" { "order.completed" } else { "order.failed" };
        assert_eq!((deliveries, ids, types), (1, 1, vec![expected.to_owned()]), "{id}");
    }
    let others: Vec<&String> = notes.keys().filter(|k| !accepted.contains(k)).collect();
    assert!(others.is_empty(), "notifications for orders never accepted: {others:?}");
}
