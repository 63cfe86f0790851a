//! From an order state (the JSON form of `order_state.avsc`) to the read model's rows
//! ([`interchange_core::readmodel::rows`]): pure, no I/O.
//!
//! A state carries its version (one more per transition) and its latest transitions (bounded,
//! oldest first), so the last transition of the history produced `version`, the one before it
//! `version - 1`, and so on. Every row is written with the version as its CQL write timestamp.

use std::collections::BTreeMap;
use std::time::Duration;

use interchange_core::readmodel::{Decimal, EventRow, OrderRow};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Everything one state writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    pub order: OrderRow,
    pub events: Vec<EventRow>,
}

impl Projection {
    /// The key of the rows' partition: (partner, correlation id).
    pub fn key(&self) -> (&str, &str) {
        (&self.order.partner, &self.order.correlation_id)
    }
}

fn text(state: &Value, field: &str) -> Result<String, String> {
    state[field].as_str().map(str::to_owned).ok_or_else(|| format!("{field}: missing or not a string"))
}

fn optional(state: &Value, field: &str) -> Option<String> {
    state[field].as_str().map(str::to_owned)
}

/// Epoch milliseconds of a timestamp given as RFC 3339 text or as a number.
pub fn millis(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()),
        _ => None,
    }
}

fn timestamp(state: &Value, field: &str) -> Result<i64, String> {
    millis(&state[field]).ok_or_else(|| format!("{field}: not a timestamp"))
}

/// The rows of one decoded state.
pub fn project(state: &Value) -> Result<Projection, String> {
    let partner = text(state, "partner")?;
    let correlation_id = text(state, "correlation_id")?;
    let version = state["version"].as_i64().ok_or("version: missing")?;
    let amount = |field: &str| text(state, field).and_then(|t| Decimal::parse(&t));
    let order = OrderRow {
        partner: partner.clone(),
        correlation_id: correlation_id.clone(),
        order_id: text(state, "order_id")?,
        status: text(state, "status")?,
        version,
        currency: text(state, "currency")?,
        subtotal: amount("subtotal")?,
        discount: amount("discount")?,
        total: amount("total")?,
        items_json: state["items"].to_string(),
        partner_reference: optional(state, "partner_reference"),
        dispatch_command_id: optional(state, "dispatch_command_id"),
        failure_reason: optional(state, "failure_reason"),
        deadline: millis(&state["deadline"]),
        created_at: timestamp(state, "created_at")?,
        updated_at: timestamp(state, "updated_at")?,
    };
    let history = state["history"].as_array().map(Vec::as_slice).unwrap_or_default();
    let count = i64::try_from(history.len()).unwrap_or(i64::MAX);
    let mut events = Vec::with_capacity(history.len());
    for (i, step) in (0_i64..).zip(history) {
        let produced = version - (count - 1 - i);
        if produced < 1 {
            return Err(format!("history has more transitions ({count}) than the version ({version})"));
        }
        events.push(EventRow {
            partner: partner.clone(),
            correlation_id: correlation_id.clone(),
            version: produced,
            at: timestamp(step, "at")?,
            from_status: text(step, "from")?,
            to_status: text(step, "to")?,
            event_id: text(step, "event_id")?,
            event_type: text(step, "event_type")?,
            detail: optional(step, "detail"),
        });
    }
    Ok(Projection { order, events })
}

/// Folds the projections of a batch of records into one per order: the newest state's order row
/// and every transition seen (each version once). Writing the result is the same as writing each
/// projection in turn, since rows carry their version as write timestamp.
pub fn merge(projections: Vec<Projection>) -> Vec<Projection> {
    let mut by_key: BTreeMap<(String, String), (OrderRow, BTreeMap<i64, EventRow>)> = BTreeMap::new();
    for p in projections {
        let key = (p.order.partner.clone(), p.order.correlation_id.clone());
        let entry = by_key.entry(key).or_insert_with(|| (p.order.clone(), BTreeMap::new()));
        if p.order.version > entry.0.version {
            entry.0 = p.order;
        }
        for event in p.events {
            entry.1.entry(event.version).or_insert(event);
        }
    }
    by_key.into_values().map(|(order, events)| Projection { order, events: events.into_values().collect() }).collect()
}

/// Seconds a row whose time is `at_ms` still has to live when rows live `ttl` after their time;
/// `None` when it has already expired (not written at all). Computed from the row's own time,
/// so a replay gives a row the same expiry as the first write.
pub fn ttl_seconds(at_ms: i64, now_ms: i64, ttl: Duration) -> Option<i32> {
    let ttl_ms = interchange_core::clock::duration_millis(ttl);
    let left_ms = at_ms.saturating_add(ttl_ms).saturating_sub(now_ms);
    if left_ms <= 0 {
        return None;
    }
    // CQL's TTL is at most 20 years.
    Some(i32::try_from((left_ms + 999) / 1000).unwrap_or(630_720_000).min(630_720_000))
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
