//! The order saga as a [`Machine`] the runtime drives: its records read from and written as
//! JSON shaped like their contracts, its stock levels read from the processor's lookup table.

use crate::machine::{Emit, Input, Lookup, Machine, Millis, Now, Step};

use super::history::deadline_event_id;
use super::machine::apply;
use super::model::{Event, OrderState, Status};
use super::outcome::{Action, Outcome, Rejection, Transition};
use super::params::{Inventory, Params};

/// The reference order saga with its tunables.
#[derive(Debug, Clone)]
pub struct OrderSaga {
    params: Params,
}

impl OrderSaga {
    pub fn new(params: Params) -> Self {
        Self { params }
    }
}

/// Stock levels: the `available` field of the lookup table's `inventory_level` per SKU.
struct Stock<'a>(&'a dyn Lookup);

impl Inventory for Stock<'_> {
    fn available(&self, sku: &str) -> Option<i64> {
        self.0.get(sku)?.get("available")?.as_i64()
    }
}

fn to_json<T: serde::Serialize>(contract: &str, value: &T) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| format!("{contract}: {e}"))
}

/// The records an action is written as: contract, id, value.
fn emit(action: &Action) -> Result<Emit, String> {
    let (contract, value, id) = match action {
        Action::Dispatch(c) => ("dispatch_command", to_json("dispatch_command", c)?, &c.command_id),
        Action::Cancel(c) => ("cancel_command", to_json("cancel_command", c)?, &c.command_id),
        Action::Notify(c) => ("notification_command", to_json("notification_command", c)?, &c.command_id),
        Action::ReleaseStock(c) => ("stock_release_command", to_json("stock_release_command", c)?, &c.command_id),
        Action::Validated(e) => ("order_validated", to_json("order_validated", e)?, &e.event_id),
        Action::Rejected(e) => ("order_rejected", to_json("order_rejected", e)?, &e.event_id),
    };
    Ok(Emit { contract: contract.to_owned(), id: id.clone(), value })
}

impl Machine for OrderSaga {
    type State = OrderState;
    type Event = Event;

    fn state_contract(&self) -> &str {
        "order_state"
    }

    fn read(&self, contract: &str, value: serde_json::Value) -> Result<Input<Event>, String> {
        let event = match contract {
            "order_received" => serde_json::from_value(value).map(Event::Received),
            "delivery_result" => serde_json::from_value(value).map(Event::Delivered),
            other => return Err(format!("record type {other} is not an input of this processor")),
        };
        let event = event.map_err(|e| format!("does not fit the saga: {e}"))?;
        let (id, key) = match &event {
            Event::Received(r) => (r.event_id.clone(), r.correlation_id.clone()),
            Event::Delivered(d) => (d.event_id.clone(), d.correlation_id.clone()),
            Event::DeadlineExpired { .. } => (String::new(), String::new()),
        };
        Ok(Input { event, id, key })
    }

    fn read_state(&self, value: serde_json::Value) -> Result<OrderState, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    fn write_state<'s>(&self, state: &'s OrderState) -> Result<std::borrow::Cow<'s, serde_json::Value>, String> {
        to_json("order_state", state).map(std::borrow::Cow::Owned)
    }

    fn apply(
        &self,
        _key: &str,
        state: Option<&OrderState>,
        event: &Event,
        event_id: &str,
        now: Now,
        lookup: &dyn Lookup,
    ) -> Step<OrderState> {
        match apply(state, event, event_id, now, &self.params, &Stock(lookup)) {
            Ok(Outcome::Changed(transition)) => {
                let Transition { state, actions } = *transition;
                match actions.iter().map(emit).collect() {
                    Ok(emits) => Step::Changed { state, emits },
                    Err(reason) => {
                        Step::Refused { reason: format!("its outputs cannot be encoded: {reason}"), kind: None }
                    }
                }
            }
            Ok(Outcome::Unchanged { reason }) => Step::Unchanged { reason },
            Err(rejection) => {
                let kind = match &rejection {
                    Rejection::ForeignResult { mismatch, .. } => Some(mismatch.label().to_owned()),
                    _ => None,
                };
                Step::Refused { reason: rejection.to_string(), kind }
            }
        }
    }

    /// The dispatch deadline of an order waiting for its result.
    fn deadline(&self, state: &OrderState) -> Option<Millis> {
        if state.status == Status::Validated {
            state.deadline
        } else {
            None
        }
    }

    fn timer(&self, key: &str, deadline: Millis, state: Option<&OrderState>) -> Option<(Event, String)> {
        let id = deadline_event_id(key, deadline);
        if state.is_some_and(|s| s.applied_event_ids.contains(&id)) {
            return None;
        }
        Some((Event::DeadlineExpired { deadline }, id))
    }

    fn terminal(&self, state: &OrderState) -> bool {
        state.status.is_terminal()
    }

    fn status<'s>(&self, state: &'s OrderState) -> &'s str {
        state.status.as_str()
    }
}
