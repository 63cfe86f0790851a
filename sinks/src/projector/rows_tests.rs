//! Tests of the state → rows mapping.

use std::time::Duration;

use serde_json::json;

use super::*;

fn state(version: i64, statuses: &[&str]) -> Value {
    let history: Vec<Value> = statuses
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            json!({ "from": w[0], "to": w[1], "event_id": format!("e{i}"), "event_type": "t",
                    "at": format!("2026-11-29T06:00:0{i}.250Z"), "detail": null })
        })
        .collect();
    json!({
        "correlation_id": "c-1", "order_id": "o-1", "partner": "acme-shop", "status": statuses.last(),
        "version": version, "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "10.00"}],
        "currency": "EUR", "subtotal": "20.00", "discount": "0.50", "total": "19.50",
        "dispatch_command_id": null, "partner_reference": "ERP-9", "failure_reason": null,
        "deadline": null, "callback_url": null, "applied_event_ids": [], "history": history,
        "created_at": "2026-11-29T06:00:00.250Z", "updated_at": 1_795_932_001_000_i64,
    })
}

#[test]
fn a_state_maps_to_its_order_row_and_one_event_row_per_transition() {
    let p = project(&state(3, &["UNKNOWN", "RECEIVED", "VALIDATED", "SENT_TO_PARTNER"])).expect("projects");
    assert_eq!(p.key(), ("acme-shop", "c-1"));
    assert_eq!(p.order.status, "SENT_TO_PARTNER");
    assert_eq!(p.order.version, 3);
    assert_eq!(p.order.partner_reference.as_deref(), Some("ERP-9"));
    assert_eq!(p.order.created_at, 1_795_932_000_250);
    assert_eq!(p.order.updated_at, 1_795_932_001_000);
    assert_eq!(p.order.total.to_text(), "19.50");
    let versions: Vec<i64> = p.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert_eq!(p.events[2].from_status, "VALIDATED");
    assert_eq!(p.events[2].to_status, "SENT_TO_PARTNER");
    assert_eq!(p.events[0].at, 1_795_932_000_250);
}

#[test]
fn a_bounded_history_numbers_its_transitions_from_the_version() {
    // Only the last two of five transitions are kept: they produced versions 4 and 5.
    let p = project(&state(5, &["VALIDATED", "SENT_TO_PARTNER", "COMPLETED"])).expect("projects");
    let versions: Vec<i64> = p.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![4, 5]);
}

#[test]
fn a_history_longer_than_the_version_is_refused() {
    assert!(project(&state(1, &["UNKNOWN", "RECEIVED", "VALIDATED"])).is_err());
}

#[test]
fn merging_keeps_the_newest_order_row_and_every_transition_once() {
    let v2 = project(&state(2, &["UNKNOWN", "RECEIVED", "VALIDATED"])).expect("v2");
    let v3 = project(&state(3, &["UNKNOWN", "RECEIVED", "VALIDATED", "SENT_TO_PARTNER"])).expect("v3");
    let merged = merge(vec![v3.clone(), v2.clone()]);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].order, v3.order);
    assert_eq!(merged[0].events.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(merge(vec![v2, v3.clone()])[0].order, v3.order, "order of arrival does not matter");
}

#[test]
fn ttl_counts_from_the_rows_own_time() {
    let day = Duration::from_secs(86_400);
    assert_eq!(ttl_seconds(0, 0, day), Some(86_400));
    assert_eq!(ttl_seconds(0, 3_600_000, day), Some(82_800));
    assert_eq!(ttl_seconds(0, 86_400_000, day), None);
    assert_eq!(ttl_seconds(0, 1, day), Some(86_400), "rounded up");
}

#[test]
fn missing_fields_are_reported_by_name() {
    let mut s = state(1, &["UNKNOWN", "RECEIVED"]);
    s["partner"] = Value::Null;
    assert!(project(&s).expect_err("refused").contains("partner"));
}
