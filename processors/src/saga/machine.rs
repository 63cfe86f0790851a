//! The order saga as a pure function: `apply(state, event, now) -> Outcome`. No I/O, no clock:
//! the runtime passes both the event's time and its own processing time ([`Now`]).

use std::collections::BTreeMap;

use interchange_core::money::Cents;
use serde_json::json;

use super::history::{derive_id, remember, step};
use super::model::*;
use super::outcome::{Action, Outcome, Rejection, TakenId, Transition};
use super::params::{Inventory, Params};
use super::results::{identify, Answer};

/// Applies `event` (with id `event_id`) to the order's current `state`. `now.event` is recorded
/// (history, `issued_at`); deadlines are set and checked on `now.processing`.
pub fn apply(
    state: Option<&OrderState>,
    event: &Event,
    event_id: &str,
    now: Now,
    params: &Params,
    inventory: &dyn Inventory,
) -> Result<Outcome, Rejection> {
    if state.is_some_and(|s| s.applied_event_ids.iter().any(|id| id == event_id)) {
        return Ok(Outcome::Unchanged { reason: "event already applied" });
    }
    match (state, event) {
        (None, Event::Received(order)) => {
            Ok(Outcome::Changed(Box::new(receive(order, event_id, now, params, inventory))))
        }
        (Some(s), Event::Received(order)) => Err(second_order(s, order, event_id)),
        (None, other) => Err(Rejection::NoSuchOrder { event_type: other.kind() }),
        (Some(s), Event::Delivered(result)) => match identify(s, result, params)? {
            Answer::NotOurs => Ok(Outcome::Unchanged { reason: "result of a command the saga does not wait for" }),
            answer if s.status == Status::Compensated => {
                Ok(super::cancel::after_compensation(s, result, answer, event_id, now.event, params))
            }
            _ if s.status.is_terminal() => Ok(Outcome::Unchanged { reason: "order already finished" }),
            Answer::Dispatch => Ok(delivered(s, result, event_id, now.event, params)),
            Answer::Cancel => Ok(Outcome::Unchanged { reason: "result of a cancel the saga is not waiting for" }),
        },
        (Some(s), _) if s.status.is_terminal() => Ok(Outcome::Unchanged { reason: "order already finished" }),
        (Some(s), Event::DeadlineExpired { deadline }) => {
            if s.status == Status::Validated && s.deadline == Some(*deadline) && now.processing >= *deadline {
                let detail = format!("no delivery result by {}", deadline.0);
                let t = compensate(s, event, event_id, now.event, params, "DEADLINE_EXPIRED", &detail);
                Ok(Outcome::Changed(Box::new(t)))
            } else {
                Ok(Outcome::Unchanged { reason: "deadline no longer pending" })
            }
        }
    }
}

/// An `order_received` for a correlation id that already holds an order (with another event id).
fn second_order(state: &OrderState, order: &OrderReceived, event_id: &str) -> Rejection {
    if state.partner == order.partner {
        return Rejection::AlreadyExists {
            correlation_id: state.correlation_id.clone(),
            partner: state.partner.clone(),
            order_id: state.order_id.clone(),
            second_order_id: order.order_id.clone(),
            event_id: event_id.to_owned(),
        };
    }
    Rejection::CorrelationIdTaken(Box::new(TakenId {
        correlation_id: state.correlation_id.clone(),
        owner: state.partner.clone(),
        order_id: state.order_id.clone(),
        claimant: order.partner.clone(),
        claimed_order_id: order.order_id.clone(),
        event_id: event_id.to_owned(),
    }))
}

fn notify(state: &OrderState, event_id: &str, event_type: &str, now: Millis, reason: Option<&str>) -> Action {
    let payload = json!({
        "type": event_type,
        "order_id": state.order_id,
        "correlation_id": state.correlation_id,
        "status": state.status.as_str(),
        "total": state.total.to_string(),
        "currency": state.currency,
        "partner_reference": state.partner_reference,
        "reason": reason,
    });
    Action::Notify(NotificationCommand {
        command_id: derive_id(event_id, event_type),
        correlation_id: state.correlation_id.clone(),
        order_id: state.order_id.clone(),
        partner: state.partner.clone(),
        callback_url: state.callback_url.clone(),
        event_type: event_type.to_owned(),
        status: state.status,
        payload_json: payload.to_string(),
        issued_at: now,
    })
}

fn rejected(state: &OrderState, event_id: &str, reason: &str, detail: &str, now: Millis) -> Action {
    Action::Rejected(OrderRejected {
        event_id: derive_id(event_id, "rejected"),
        correlation_id: state.correlation_id.clone(),
        order_id: state.order_id.clone(),
        reason: reason.to_owned(),
        detail: detail.to_owned(),
        rejected_at: now,
    })
}

/// Why an order cannot be taken as it is, if it cannot.
fn invalid(order: &OrderReceived) -> Option<String> {
    if order.items.is_empty() {
        return Some("an order needs at least one line".to_owned());
    }
    if let Some(line) = order.items.iter().find(|l| l.quantity < 1) {
        return Some(format!("line {} has quantity {}", line.sku, line.quantity));
    }
    if let Some(line) = order.items.iter().find(|l| l.unit_price.0 < 0) {
        return Some(format!("line {} has a negative price", line.sku));
    }
    if order.currency.len() != 3 || !order.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Some(format!("currency {:?} is not an ISO 4217 code", order.currency));
    }
    None
}

/// SKUs whose published level is below what the order needs.
fn short_of_stock(order: &OrderReceived, inventory: &dyn Inventory) -> Vec<String> {
    let mut needed: BTreeMap<&str, i64> = BTreeMap::new();
    for line in &order.items {
        let qty = needed.entry(&line.sku).or_default();
        *qty = qty.saturating_add(i64::from(line.quantity));
    }
    needed
        .into_iter()
        .filter(|(sku, qty)| inventory.available(sku).unwrap_or(0) < *qty)
        .map(|(sku, _)| sku.to_owned())
        .collect()
}

/// Subtotal, discount and total of `order`, computed exactly (i128 cents); `Err` names the
/// first amount the contracts (`decimal(18,2)`) cannot carry. Upstream producers can send lines
/// whose product or sum is past that range: such an order is rejected, never an error.
fn totals(order: &OrderReceived, params: &Params) -> Result<(Money, Money, Money), String> {
    let too_large = |field: &str| format!("{field} is too large to compute");
    let mut subtotal = Cents::default();
    for line in &order.items {
        let line_total =
            line.unit_price.cents().checked_times(i64::from(line.quantity)).ok_or_else(|| too_large("subtotal"))?;
        subtotal = subtotal.checked_add(line_total).ok_or_else(|| too_large("subtotal"))?;
    }
    let discount = if subtotal >= params.discount_min_total.cents() {
        subtotal.checked_percent(u32::from(params.discount_percent)).ok_or_else(|| too_large("discount"))?
    } else {
        Cents::default()
    };
    let total = subtotal.checked_sub(discount).ok_or_else(|| too_large("total"))?;
    let carried = |field: &str, amount: Cents| {
        Money::carried(amount).ok_or_else(|| amount.refusal(field).unwrap_or_else(|| too_large(field)))
    };
    Ok((carried("subtotal", subtotal)?, carried("discount", discount)?, carried("total", total)?))
}

fn receive(
    order: &OrderReceived,
    event_id: &str,
    clocks: Now,
    params: &Params,
    inventory: &dyn Inventory,
) -> Transition {
    let now = clocks.event;
    let amounts = totals(order, params);
    let (subtotal, discount, total) =
        amounts.as_ref().map_or((Money::default(), Money::default(), Money::default()), |a| *a);
    let event = Event::Received(order.clone());
    let mut state = OrderState {
        correlation_id: order.correlation_id.clone(),
        order_id: order.order_id.clone(),
        partner: order.partner.clone(),
        status: Status::Unknown,
        version: 0,
        items: order.items.clone(),
        currency: order.currency.clone(),
        subtotal,
        discount,
        total,
        dispatch_command_id: None,
        dispatch_partner: None,
        partner_reference: None,
        failure_reason: None,
        deadline: None,
        cancel_command_id: None,
        cancel_outcome: None,
        callback_url: order.callback_url.clone(),
        applied_event_ids: Vec::new(),
        history: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    remember(&mut state, event_id, params);
    step(&mut state, Status::Received, &event, event_id, now, None, params);
    let refusal = match (invalid(order), amounts) {
        (Some(why), _) | (None, Err(why)) => Some(("INVALID", why)),
        (None, Ok(_)) => {
            let short = short_of_stock(order, inventory);
            (!short.is_empty()).then(|| ("OUT_OF_STOCK", format!("not enough stock of {}", short.join(", "))))
        }
    };
    if let Some((reason, detail)) = refusal {
        state.failure_reason = Some(detail.clone());
        step(&mut state, Status::Rejected, &event, event_id, now, Some(detail.clone()), params);
        let actions = vec![
            rejected(&state, event_id, reason, &detail, now),
            notify(&state, event_id, "order.rejected", now, Some(&detail)),
        ];
        return Transition { state, actions };
    }
    let command_id = derive_id(event_id, "dispatch");
    // Measured from now, on the processor's clock: never from the record's own timestamp.
    let deadline = Millis(clocks.processing.0.saturating_add(params.dispatch_deadline_ms));
    let erp = params.erp_for(&order.partner).to_owned();
    state.dispatch_command_id = Some(command_id.clone());
    state.dispatch_partner = Some(erp.clone());
    state.deadline = Some(deadline);
    step(&mut state, Status::Validated, &event, event_id, now, None, params);
    let actions = vec![
        Action::Validated(OrderValidated {
            event_id: derive_id(event_id, "validated"),
            correlation_id: state.correlation_id.clone(),
            order_id: state.order_id.clone(),
            subtotal: state.subtotal,
            discount: state.discount,
            total: state.total,
            currency: state.currency.clone(),
            validated_at: now,
        }),
        Action::Dispatch(DispatchCommand {
            command_id,
            correlation_id: state.correlation_id.clone(),
            order_id: state.order_id.clone(),
            partner: erp,
            items: state.items.clone(),
            total: state.total,
            currency: state.currency.clone(),
            deadline,
            issued_at: now,
        }),
    ];
    Transition { state, actions }
}

/// The result of the order's dispatch, from the partner it was sent to ([`identify`] checked).
fn delivered(state: &OrderState, result: &DeliveryResult, event_id: &str, now: Millis, params: &Params) -> Outcome {
    if state.status != Status::Validated {
        return Outcome::Unchanged { reason: "result of a dispatch the saga is not waiting for" };
    }
    let event = Event::Delivered(result.clone());
    if result.outcome == "DELIVERED" {
        let mut next = state.clone();
        remember(&mut next, event_id, params);
        next.partner_reference.clone_from(&result.partner_reference);
        next.deadline = None;
        step(&mut next, Status::SentToPartner, &event, event_id, now, None, params);
        step(&mut next, Status::Completed, &event, event_id, now, None, params);
        let actions = vec![notify(&next, event_id, "order.completed", now, None)];
        return Outcome::Changed(Box::new(Transition { state: next, actions }));
    }
    if result.outcome == "EXPIRED" {
        let detail = format!(
            "the dispatch expired before {} saw it (deadline {})",
            result.partner,
            state.deadline.map_or_else(|| "unknown".to_owned(), |d| d.0.to_string())
        );
        return Outcome::Changed(Box::new(compensate(
            state,
            &event,
            event_id,
            now,
            params,
            "DEADLINE_EXPIRED",
            &detail,
        )));
    }
    let detail = format!(
        "{} refused the dispatch ({} after {} attempt(s){}{})",
        result.partner,
        result.outcome,
        result.attempts,
        result.http_status.map(|s| format!(", HTTP {s}")).unwrap_or_default(),
        result.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
    );
    Outcome::Changed(Box::new(compensate(state, &event, event_id, now, params, "PARTNER_REFUSED", &detail)))
}

/// Releases the stock and tells the client: COMPENSATING, then COMPENSATED.
fn compensate(
    state: &OrderState,
    event: &Event,
    event_id: &str,
    now: Millis,
    params: &Params,
    reason: &str,
    detail: &str,
) -> Transition {
    let mut next = state.clone();
    remember(&mut next, event_id, params);
    next.deadline = None;
    next.failure_reason = Some(detail.to_owned());
    step(&mut next, Status::Compensating, event, event_id, now, Some(detail.to_owned()), params);
    let release = Action::ReleaseStock(StockReleaseCommand {
        command_id: derive_id(event_id, "release"),
        correlation_id: next.correlation_id.clone(),
        order_id: next.order_id.clone(),
        items: next.items.iter().map(|l| StockLine { sku: l.sku.clone(), quantity: l.quantity }).collect(),
        reason: reason.to_owned(),
        issued_at: now,
    });
    step(&mut next, Status::Compensated, event, event_id, now, None, params);
    let actions = vec![
        release,
        rejected(&next, event_id, reason, detail, now),
        notify(&next, event_id, "order.failed", now, Some(detail)),
    ];
    Transition { state: next, actions }
}
