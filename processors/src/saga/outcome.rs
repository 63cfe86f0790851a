//! What applying an event yields: the new state and the records to write, nothing to do, or
//! why the event is refused.

use super::model::*;

/// A record the runtime must write because of a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Dispatch(DispatchCommand),
    Cancel(CancelCommand),
    Notify(NotificationCommand),
    ReleaseStock(StockReleaseCommand),
    Validated(OrderValidated),
    Rejected(OrderRejected),
}

/// The new state and what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: OrderState,
    pub actions: Vec<Action>,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Changed(Box<Transition>),
    /// Nothing to write: a repeat, a late result, a result of a command the saga does not wait
    /// for (a notification's).
    Unchanged {
        reason: &'static str,
    },
}

/// Events the saga refuses; the runtime dead-letters them. The order's state is never touched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{event_type} for an order this processor has never seen")]
    NoSuchOrder { event_type: &'static str },
    /// The same partner sent a second order under a correlation id it already used.
    #[error(
        "correlation id {correlation_id} already holds order {order_id} of partner {partner}: a second \
         order_received (event {event_id}, order {second_order_id}) is refused, the first order is unchanged"
    )]
    AlreadyExists {
        correlation_id: String,
        partner: String,
        order_id: String,
        second_order_id: String,
        event_id: String,
    },
    /// Another partner's order holds the correlation id (an upstream producer reusing a key).
    #[error(
        "correlation id {} belongs to order {} of partner {}: an order_received of partner {} (order {}, event {}) \
         with it is refused, {}'s order is unchanged",
        .0.correlation_id, .0.order_id, .0.owner, .0.claimant, .0.claimed_order_id, .0.event_id, .0.owner
    )]
    CorrelationIdTaken(Box<TakenId>),
    /// A delivery result that does not answer a command the saga sent the order: its partner or
    /// command type is not the command's, or the order never sent its command.
    #[error("{detail}")]
    ForeignResult { mismatch: Mismatch, detail: String },
}

/// Whose order holds a correlation id another partner's order claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenId {
    pub correlation_id: String,
    pub owner: String,
    pub order_id: String,
    pub claimant: String,
    pub claimed_order_id: String,
    pub event_id: String,
}

/// How a result fails to answer what the saga sent; the label of
/// `hub_processor_foreign_results_total` (a bounded set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mismatch {
    /// The order's command id and type, from a partner the command was not sent to.
    Partner,
    /// The order's command id under another command type.
    CommandType,
    /// A dispatch or cancel result for a command id this order never sent.
    UnknownCommand,
}

impl Mismatch {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Partner => "partner",
            Self::CommandType => "command_type",
            Self::UnknownCommand => "unknown_command",
        }
    }
}
