//! After compensation: a dispatch the partner accepted late is withdrawn with a cancel command.
//!
//! The client was told the order failed, so a `DELIVERED` result for its dispatch must not leave
//! the partner believing otherwise. The order stays `COMPENSATED` (its one terminal state); the
//! step is recorded in its history, `cancel_command_id` names the cancel, and `cancel_outcome`
//! records how the cancel's own delivery ended.

use super::history::{derive_id, remember, step};
use super::model::*;
use super::outcome::{Action, Outcome, Transition};
use super::params::Params;
use super::results::{dispatch_partner, Answer};

/// Applies a delivery result to a compensated order; `answer` says which of its commands the
/// result answers (its command id, type and partner already checked: a forged result never
/// gets here, so it can neither request a cancel nor record one).
pub(super) fn after_compensation(
    state: &OrderState,
    result: &DeliveryResult,
    answer: Answer,
    event_id: &str,
    now: Millis,
    params: &Params,
) -> Outcome {
    let is_dispatch = answer == Answer::Dispatch;
    let is_cancel = answer == Answer::Cancel;
    if is_dispatch && result.outcome == "DELIVERED" && state.cancel_command_id.is_none() {
        return Outcome::Changed(Box::new(request_cancel(state, result, event_id, now, params)));
    }
    let settled = state.cancel_outcome.as_deref().is_some_and(|o| o == "DELIVERED" || o == result.outcome);
    if is_cancel && !settled {
        let mut next = state.clone();
        remember(&mut next, event_id, params);
        next.cancel_outcome = Some(result.outcome.clone());
        let detail = if result.outcome == "DELIVERED" {
            format!("{} took the cancel", result.partner)
        } else {
            format!(
                "{} did not take the cancel ({} after {} attempt(s){}): it is in the dead-letter topic for `hub dlq replay`",
                result.partner,
                result.outcome,
                result.attempts,
                result.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
            )
        };
        step(&mut next, Status::Compensated, &Event::Delivered(result.clone()), event_id, now, Some(detail), params);
        return Outcome::Changed(Box::new(Transition { state: next, actions: Vec::new() }));
    }
    Outcome::Unchanged { reason: "order already finished" }
}

/// COMPENSATED to COMPENSATED: the partner accepted the dispatch late; one cancel goes out. Its
/// id derives from the dispatch's, so every redo and every repeated result names the same one.
fn request_cancel(
    state: &OrderState,
    result: &DeliveryResult,
    event_id: &str,
    now: Millis,
    params: &Params,
) -> Transition {
    let command_id = derive_id(&result.command_id, "cancel");
    let mut next = state.clone();
    remember(&mut next, event_id, params);
    next.partner_reference.clone_from(&result.partner_reference);
    next.cancel_command_id = Some(command_id.clone());
    let detail = format!(
        "{} accepted the dispatch after the order was compensated{}: cancel requested",
        result.partner,
        result.partner_reference.as_deref().map(|r| format!(" (reference {r})")).unwrap_or_default(),
    );
    step(&mut next, Status::Compensated, &Event::Delivered(result.clone()), event_id, now, Some(detail), params);
    let reason = format!(
        "the order was compensated before the dispatch was accepted: {}",
        state.failure_reason.as_deref().unwrap_or("no reason recorded")
    );
    let cancel = Action::Cancel(CancelCommand {
        command_id,
        correlation_id: next.correlation_id.clone(),
        order_id: next.order_id.clone(),
        // The partner that accepted the dispatch: the one it was sent to.
        partner: dispatch_partner(state, params).to_owned(),
        dispatch_command_id: result.command_id.clone(),
        partner_reference: result.partner_reference.clone(),
        reason,
        issued_at: now,
    });
    Transition { state: next, actions: vec![cancel] }
}
