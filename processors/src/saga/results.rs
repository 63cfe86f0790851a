//! Which command of the order a delivery result answers: a result counts only when its command
//! id, its command type AND its partner are those of a command the saga sent this order.
//!
//! Any sink (or any producer with write access) can write to the shared results topic, so the
//! command id alone proves nothing: a result naming the order's dispatch from another partner,
//! or as another command type, is refused ([`Rejection::ForeignResult`]) and never moves the
//! order. Results of commands the saga does not wait for (a notification's) change nothing.

use super::model::*;
use super::outcome::{Mismatch, Rejection};
use super::params::Params;

/// The command types the saga sends to a partner and waits for.
const DISPATCH: &str = "dispatch_command";
const CANCEL: &str = "cancel_command";

/// Which of the order's commands a result answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    Dispatch,
    Cancel,
    /// A result of a command the saga does not wait for (a notification's).
    NotOurs,
}

/// The partner the order's dispatch (and so its cancel) was sent to. States written before it
/// was recorded were dispatched to the default ERP.
pub(crate) fn dispatch_partner<'a>(state: &'a OrderState, params: &'a Params) -> &'a str {
    state.dispatch_partner.as_deref().unwrap_or(&params.erp_partner)
}

/// Matches `result` to the command of `state` it answers, or refuses it.
pub(super) fn identify(state: &OrderState, result: &DeliveryResult, params: &Params) -> Result<Answer, Rejection> {
    let sent_to = dispatch_partner(state, params);
    let ours = [
        (DISPATCH, "dispatch", state.dispatch_command_id.as_deref(), Answer::Dispatch),
        (CANCEL, "cancel", state.cancel_command_id.as_deref(), Answer::Cancel),
    ];
    let refuse = |mismatch: Mismatch, what: String| Rejection::ForeignResult {
        mismatch,
        detail: format!(
            "{what} (command {}, correlation id {}): not counted, the order is unchanged",
            result.command_id, state.correlation_id
        ),
    };
    for (kind, noun, id, answer) in ours {
        if id != Some(result.command_id.as_str()) {
            continue;
        }
        if result.command_type != kind {
            return Err(refuse(
                Mismatch::CommandType,
                format!("a {} result names the order's {kind} (from partner {})", result.command_type, result.partner),
            ));
        }
        if result.partner != sent_to {
            return Err(refuse(
                Mismatch::Partner,
                format!("result from partner {} for a {noun} sent to {sent_to}", result.partner),
            ));
        }
        return Ok(answer);
    }
    if ours.iter().any(|(kind, ..)| result.command_type == *kind) {
        let sent = |id: Option<&str>| id.map_or_else(|| "none".to_owned(), str::to_owned);
        return Err(refuse(
            Mismatch::UnknownCommand,
            format!(
                "a {} result from partner {} for a command this order never sent (its dispatch: {}, its cancel: {})",
                result.command_type,
                result.partner,
                sent(state.dispatch_command_id.as_deref()),
                sent(state.cancel_command_id.as_deref()),
            ),
        ));
    }
    Ok(Answer::NotOurs)
}
