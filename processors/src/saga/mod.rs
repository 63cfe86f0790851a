//! The reference order saga: received, validated, sent to partner, completed; compensated on a
//! refused dispatch or an expired deadline; a dispatch the partner accepts after compensation is
//! withdrawn with a cancel command.
//!
//! Offers [`apply`], a pure function of the order's state and one event, and the records and
//! types it works on; keeps to itself how the history is kept, which ids it derives and how a
//! delivery result is matched to the command it answers.

mod as_machine;
mod cancel;
mod history;
mod machine;
mod model;
mod outcome;
mod params;
mod results;

pub use as_machine::OrderSaga;
#[cfg(test)]
use history::deadline_event_id;
pub use machine::apply;
pub use model::*;
pub use outcome::{Action, Mismatch, Outcome, Rejection, TakenId, Transition};
pub use params::{Inventory, Params};

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
