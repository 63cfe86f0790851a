//! The interpreter on the shipped returns machine (`machines/return_saga.toml`), as the topology
//! reads and checks it: transitions, guards, emitted records, timers, repeats and refusals.

use std::collections::HashMap;
use std::sync::Arc;

use interchange_core::topology::{ProcessorParams, Topology};
use serde_json::{json, Value};

use super::{Declared, DeclaredEvent};
use crate::machine::{Machine, Millis, Now, Step};

const DAY: i64 = 86_400_000;

pub(super) fn machine(applied_limit: usize) -> Declared {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../topology.toml");
    let topology = Topology::load(&path, "").expect("the shipped topology");
    let processor = topology.processors.iter().find(|p| p.machine.is_some()).expect("a declared processor");
    let ProcessorParams::Declared { values, .. } = &processor.params else { panic!("declared") };
    let limits = super::Limits { applied: applied_limit, history: 64 };
    Declared::new(processor.machine.clone().expect("read"), values.clone(), limits)
}

fn input(contract: &str, value: Value) -> DeclaredEvent {
    DeclaredEvent::Input { contract: contract.to_owned(), value }
}

fn requested(amount: &str) -> DeclaredEvent {
    input(
        "return_requested",
        json!({"event_id": "e-1", "correlation_id": "k", "partner": "acme-shop", "return_id": "R-1", "order_id": "O-1",
               "amount": amount, "currency": "EUR", "reason": "broken", "callback_url": null, "received_at": 5}),
    )
}

fn inspected(verdict: &str, return_id: &str) -> DeclaredEvent {
    input(
        "inspection_result",
        json!({"event_id": "e-2", "correlation_id": "k", "return_id": return_id, "verdict": verdict, "note": "ok",
               "inspected_at": 7}),
    )
}

fn result(command_id: &str, outcome: &str) -> DeclaredEvent {
    input(
        "delivery_result",
        json!({"event_id": "e-3", "command_id": command_id, "correlation_id": "k", "partner": "payflow",
               "command_type": "refund_command", "outcome": outcome, "http_status": 201, "partner_reference": "PAY-9",
               "attempts": 1, "detail": null, "completed_at": 9}),
    )
}

fn step(m: &Declared, state: Option<&Value>, event: &DeclaredEvent, id: &str, at: i64) -> Step<Value> {
    let table: HashMap<String, Arc<Value>> = HashMap::new();
    m.apply("k", state, event, id, Now { event: Millis(at), processing: Millis(at + 1) }, &table)
}

fn changed(s: Step<Value>) -> (Value, Vec<crate::machine::Emit>) {
    match s {
        Step::Changed { state, emits } => (state, emits),
        other => panic!("expected a transition, got {other:?}"),
    }
}

#[test]
fn an_approved_return_is_refunded_once_and_the_shop_told() {
    let m = machine(10);
    let (state, emits) = changed(step(&m, None, &requested("40.00"), "e-1", 1_000));
    assert!(emits.is_empty());
    assert_eq!((state["status"].as_str(), state["version"].as_i64()), (Some("INSPECTING"), Some(1)));
    assert_eq!((state["shop"].as_str(), state["amount"].as_str()), (Some("acme-shop"), Some("40.00")));
    assert_eq!(m.deadline(&state), Some(Millis(1_001 + 14 * DAY)), "the timer runs on the processing clock");
    assert_eq!(
        step(&m, Some(&state), &requested("40.00"), "e-1", 2_000),
        Step::Unchanged { reason: "event already applied" }
    );
    let other = step(&m, Some(&state), &inspected("APPROVED", "R-OTHER"), "e-2", 2_000);
    assert!(matches!(other, Step::Unchanged { .. }), "no guard holds for another return's verdict: {other:?}");

    let (state, emits) = changed(step(&m, Some(&state), &inspected("APPROVED", "R-1"), "e-2", 3_000));
    assert_eq!((state["status"].as_str(), state["deadline"].clone()), (Some("REFUNDING"), Value::Null));
    assert_eq!(emits.len(), 1);
    let refund = &emits[0];
    let command_id = state["refund_command_id"].as_str().expect("refund id");
    assert_eq!((refund.contract.as_str(), refund.id.as_str()), ("refund_command", command_id));
    assert_eq!(
        refund.value,
        json!({"command_id": command_id, "correlation_id": "k", "partner": "payflow", "return_id": "R-1",
               "order_id": "O-1", "shop": "acme-shop", "amount": "40.00", "currency": "EUR", "issued_at": 3_000})
    );

    let foreign = step(&m, Some(&state), &result("another-command", "DELIVERED"), "e-3", 4_000);
    assert!(matches!(foreign, Step::Unchanged { .. }), "{foreign:?}");
    let (state, emits) = changed(step(&m, Some(&state), &result(command_id, "DELIVERED"), "e-3", 4_000));
    assert_eq!((state["status"].as_str(), state["version"].as_i64()), (Some("REFUNDED"), Some(3)));
    assert!(m.terminal(&state) && m.deadline(&state).is_none());
    assert_eq!(emits[0].contract, "return_notification");
    let payload: Value = serde_json::from_str(emits[0].value["payload_json"].as_str().expect("text")).expect("JSON");
    assert_eq!(
        payload,
        json!({"type": "return.refunded", "return_id": "R-1", "order_id": "O-1", "status": "REFUNDED",
               "amount": "40.00", "currency": "EUR", "refund_reference": "PAY-9"})
    );
    assert_eq!(emits[0].value["partner"], "acme-shop");
    let late = step(&m, Some(&state), &result(command_id, "REFUSED"), "e-4", 5_000);
    assert_eq!(late, Step::Unchanged { reason: "already in a terminal state" });
}

#[test]
fn nothing_to_refund_is_declined_and_a_stranger_refused() {
    let m = machine(10);
    let (state, emits) = changed(step(&m, None, &requested("0.00"), "e-1", 1_000));
    assert_eq!(state["status"], "DECLINED");
    assert_eq!((emits.len(), emits[0].value["event_type"].as_str()), (1, Some("return.declined")));
    match step(&m, None, &inspected("APPROVED", "R-1"), "e-2", 1_000) {
        Step::Refused { reason, kind: None } => assert!(reason.contains("never seen"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let unknown = m.read("order_received", json!({}));
    assert!(unknown.is_err_and(|e| e.contains("not an input")));
    let keyless = m.read("inspection_result", json!({"event_id": "e"}));
    assert!(keyless.is_err_and(|e| e.contains("correlation_id")));
}

#[test]
fn the_timer_fires_once_from_a_state_read_back_and_ids_stay_bounded() {
    let m = machine(2);
    let (mut state, _) = changed(step(&m, None, &requested("9.99"), "e-1", 1_000));
    let deadline = m.deadline(&state).expect("a timer");
    // Read back from the state topic, timestamp-millis is an RFC 3339 text.
    state["deadline"] = json!("1970-01-15T00:00:01.001Z");
    assert_eq!(m.deadline(&state), Some(deadline));
    let (event, id) = m.timer("k", deadline, Some(&state)).expect("pending");
    let early =
        m.apply("k", Some(&state), &event, &id, Now::at(Millis(deadline.0 - 1)), &HashMap::<String, Arc<Value>>::new());
    assert_eq!(early, Step::Unchanged { reason: "timer no longer pending" });
    let (stale, stale_id) = m.timer("k", Millis(deadline.0 - 5), Some(&state)).expect("an older timer");
    let stale = m.apply("k", Some(&state), &stale, &stale_id, Now::at(deadline), &HashMap::<String, Arc<Value>>::new());
    assert_eq!(stale, Step::Unchanged { reason: "timer no longer pending" });
    let fired = m.apply("k", Some(&state), &event, &id, Now::at(deadline), &HashMap::<String, Arc<Value>>::new());
    let (expired, emits) = changed(fired);
    assert_eq!(
        (expired["status"].as_str(), emits[0].value["event_type"].as_str()),
        (Some("EXPIRED"), Some("return.expired"))
    );
    assert_eq!(expired["applied_event_ids"], json!(["e-1", id]));
    assert!(m.timer("k", deadline, Some(&expired)).is_none(), "applied: not fired again");
    let (refunding, _) = changed(step(&m, Some(&state), &inspected("APPROVED", "R-1"), "e-2", 2_000));
    let (refunded, _) = changed(step(
        &m,
        Some(&refunding),
        &result(refunding["refund_command_id"].as_str().expect("id"), "EXHAUSTED"),
        "e-3",
        3_000,
    ));
    assert_eq!(refunded["status"], "REFUND_FAILED");
    assert_eq!(refunded["applied_event_ids"], json!(["e-2", "e-3"]), "the last two only");
    assert!(refunded["failure"].as_str().is_some_and(|f| f.contains("EXHAUSTED")), "{refunded}");
}
