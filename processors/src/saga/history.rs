//! How a transition is recorded in the state (its history, the event ids applied) and the ids
//! the saga derives from the events that cause its records.

use super::model::*;
use super::params::Params;

pub(crate) use crate::machine::derive_id;

/// The event id of a deadline timer; stable across restarts.
pub(crate) fn deadline_event_id(correlation_id: &str, deadline: Millis) -> String {
    derive_id(correlation_id, &format!("deadline/{}", deadline.0))
}

/// Moves `state` to `to`, recording the step.
pub(super) fn step(
    state: &mut OrderState,
    to: Status,
    event: &Event,
    event_id: &str,
    now: Millis,
    detail: Option<String>,
    params: &Params,
) {
    state.history.push(TransitionRecord {
        from: state.status.as_str().to_owned(),
        to: to.as_str().to_owned(),
        event_id: event_id.to_owned(),
        event_type: event.kind().to_owned(),
        at: now,
        detail,
    });
    if state.history.len() > params.history_limit {
        let excess = state.history.len() - params.history_limit;
        state.history.drain(..excess);
    }
    state.status = to;
    state.version += 1;
    state.updated_at = now;
}

pub(super) fn remember(state: &mut OrderState, event_id: &str, params: &Params) {
    state.applied_event_ids.push(event_id.to_owned());
    if state.applied_event_ids.len() > params.applied_limit {
        let excess = state.applied_event_ids.len() - params.applied_limit;
        state.applied_event_ids.drain(..excess);
    }
}
