//! The reference order saga: received, validated, sent to partner, completed; compensated on a
//! refused dispatch or an expired deadline; a dispatch the partner accepts after compensation is
//! withdrawn with a cancel command.

mod cancel;
mod machine;
mod model;
mod results;

pub use machine::{apply, deadline_event_id, derive_id, Action, Inventory, Outcome, Params, Rejection, Transition};
pub use model::*;
pub use results::{dispatch_partner, Mismatch};

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
