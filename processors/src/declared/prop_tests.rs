//! Random event sequences against the returns machine: whatever arrives, in whatever order and
//! however often, each transition counts the version by one, no terminal state moves, a return
//! is refunded at most once and told how it ended exactly once, and only a key with no state
//! refuses an event.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::tests::machine;
use super::DeclaredEvent;
use crate::machine::{Machine, Millis, Now, Step as Applied};

#[derive(Debug, Clone)]
enum Event {
    Requested { id: u8, amount: u8 },
    Inspected { id: u8, verdict: u8, ours: bool },
    Result { id: u8, outcome: u8, ours: bool },
    Timer { late: bool },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0..3_u8, 0..3_u8).prop_map(|(id, amount)| Event::Requested { id, amount }),
        (0..4_u8, 0..3_u8, any::<bool>()).prop_map(|(id, verdict, ours)| Event::Inspected { id, verdict, ours }),
        (0..4_u8, 0..4_u8, any::<bool>()).prop_map(|(id, outcome, ours)| Event::Result { id, outcome, ours }),
        any::<bool>().prop_map(|late| Event::Timer { late }),
    ]
}

proptest! {
    #[test]
    fn invariants_hold_for_any_sequence(events in proptest::collection::vec(event(), 1..24)) {
        let m = machine(4);
        let table: HashMap<String, Arc<Value>> = HashMap::new();
        let mut state: Option<Value> = None;
        let (mut refunds, mut notices, mut clock) = (0, 0, 1_000_i64);
        for e in events {
            clock += 1_000;
            let (event, id) = match e {
                Event::Requested { id, amount } => {
                    let amount = ["0.00", "9.99", "40.00"][usize::from(amount)];
                    (super::DeclaredEvent::Input { contract: "return_requested".into(), value: json!({
                        "event_id": format!("r{id}"), "correlation_id": "k", "partner": "acme-shop", "return_id": "R",
                        "order_id": "O", "amount": amount, "currency": "EUR", "reason": "", "callback_url": null,
                        "received_at": 0}) }, format!("r{id}"))
                }
                Event::Inspected { id, verdict, ours } => {
                    let verdict = ["APPROVED", "DECLINED", "UNKNOWN"][usize::from(verdict)];
                    (DeclaredEvent::Input { contract: "inspection_result".into(), value: json!({
                        "event_id": format!("i{id}"), "correlation_id": "k", "return_id": if ours { "R" } else { "X" },
                        "verdict": verdict, "note": null, "inspected_at": 0}) }, format!("i{id}"))
                }
                Event::Result { id, outcome, ours } => {
                    let command = state.as_ref().and_then(|s| s["refund_command_id"].as_str()).filter(|_| ours).unwrap_or("other");
                    let outcome = ["DELIVERED", "REFUSED", "EXHAUSTED", "EXPIRED"][usize::from(outcome)];
                    (DeclaredEvent::Input { contract: "delivery_result".into(), value: json!({
                        "event_id": format!("d{id}"), "command_id": command, "correlation_id": "k", "partner": "payflow",
                        "command_type": "refund_command", "outcome": outcome, "http_status": null,
                        "partner_reference": null, "attempts": 1, "detail": null, "completed_at": 0}) }, format!("d{id}"))
                }
                Event::Timer { late } => {
                    let Some(deadline) = state.as_ref().and_then(|s| m.deadline(s)) else { continue };
                    if late { clock = clock.max(deadline.0) }
                    match m.timer("k", deadline, state.as_ref()) {
                        Some(fired) => fired,
                        None => continue,
                    }
                }
            };
            let before = state.clone();
            match m.apply("k", before.as_ref(), &event, &id, Now::at(Millis(clock)), &table) {
                Applied::Changed { state: next, emits } => {
                    let was = before.as_ref().map(|s| s["version"].as_i64().unwrap_or(0)).unwrap_or(0);
                    prop_assert_eq!(next["version"].as_i64(), Some(was + 1));
                    prop_assert!(!before.as_ref().is_some_and(|s| m.terminal(s)), "a terminal state moved: {:?}", before);
                    prop_assert!(next["applied_event_ids"].as_array().is_some_and(|ids| ids.len() <= 4));
                    refunds += emits.iter().filter(|e| e.contract == "refund_command").count();
                    let told = emits.iter().filter(|e| e.contract == "return_notification").count();
                    prop_assert_eq!(told, usize::from(m.terminal(&next)), "one notice, on the way into a terminal state");
                    notices += told;
                    state = Some(next);
                }
                Applied::Unchanged { .. } => {}
                Applied::Refused { reason, .. } => prop_assert!(before.is_none(), "refused with a state: {}", reason),
            }
        }
        prop_assert!(refunds <= 1, "{} refunds", refunds);
        prop_assert!(notices <= 1, "{} notices", notices);
        let finished = state.as_ref().is_some_and(|s| m.terminal(s));
        prop_assert_eq!(notices, usize::from(finished));
    }
}
