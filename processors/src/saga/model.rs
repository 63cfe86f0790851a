//! The order saga's records, shaped like their Avro contracts (as JSON: decimals as strings).

use std::collections::BTreeMap;
use std::fmt;

use interchange_core::money::Cents;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::machine::{Millis, Now};

/// An amount the contracts carry (`decimal(18,2)`), held as cents so arithmetic is exact. Only
/// amounts within [`MAX_CENTS`](interchange_core::money::MAX_CENTS) are built by [`Money::parse`] and [`Money::carried`]; sums and
/// products are computed in [`Cents`] (i128) and checked back into range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    /// Parses "129.90", "5", "-0.01" (at most two decimals, at most 18 digits).
    pub(crate) fn parse(text: &str) -> Option<Money> {
        Cents::parse(text).and_then(Money::carried)
    }

    /// `cents` if a contract can carry it.
    pub(crate) fn carried(cents: Cents) -> Option<Money> {
        cents.carried().map(Money)
    }

    /// The exact, wide form for arithmetic.
    pub(crate) fn cents(self) -> Cents {
        Cents(i128::from(self.0))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:02}", self.0.unsigned_abs() / 100, self.0.unsigned_abs() % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Money::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("not an amount with two decimals and at most 18 digits: {text:?}"))
        })
    }
}

/// One ordered SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub quantity: i32,
    pub unit_price: Money,
}

/// `order_received`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReceived {
    pub event_id: String,
    pub correlation_id: String,
    pub order_id: String,
    pub partner: String,
    pub customer_id: String,
    pub items: Vec<Line>,
    pub currency: String,
    #[serde(default = "unknown")]
    pub channel: String,
    #[serde(default)]
    pub callback_url: Option<String>,
    pub received_at: Millis,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

fn unknown() -> String {
    "UNKNOWN".to_owned()
}

/// `delivery_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryResult {
    pub event_id: String,
    pub command_id: String,
    pub correlation_id: String,
    pub partner: String,
    pub command_type: String,
    /// DELIVERED, REFUSED, EXHAUSTED, EXPIRED (UNKNOWN for symbols this version does not know).
    pub outcome: String,
    #[serde(default)]
    pub http_status: Option<i32>,
    #[serde(default)]
    pub partner_reference: Option<String>,
    pub attempts: i32,
    #[serde(default)]
    pub detail: Option<String>,
    pub completed_at: Millis,
}

/// What can happen to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Received(OrderReceived),
    Delivered(DeliveryResult),
    /// The dispatch deadline passed without a result (fired by the runtime from the state).
    DeadlineExpired {
        deadline: Millis,
    },
}

impl Event {
    /// The contract name (`event-type` header) of the event.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Received(_) => "order_received",
            Self::Delivered(_) => "delivery_result",
            Self::DeadlineExpired { .. } => "deadline_expired",
        }
    }
}

/// Where the saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Unknown,
    Received,
    Validated,
    SentToPartner,
    Completed,
    Rejected,
    Compensating,
    Compensated,
}

impl Status {
    /// No event moves an order out of a terminal status.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Rejected | Self::Compensated)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::Received => "RECEIVED",
            Self::Validated => "VALIDATED",
            Self::SentToPartner => "SENT_TO_PARTNER",
            Self::Completed => "COMPLETED",
            Self::Rejected => "REJECTED",
            Self::Compensating => "COMPENSATING",
            Self::Compensated => "COMPENSATED",
        }
    }
}

/// One step in the order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    pub from: String,
    pub to: String,
    pub event_id: String,
    pub event_type: String,
    pub at: Millis,
    #[serde(default)]
    pub detail: Option<String>,
}

/// `order_state`: the compacted record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub correlation_id: String,
    pub order_id: String,
    pub partner: String,
    pub status: Status,
    pub version: i64,
    pub items: Vec<Line>,
    pub currency: String,
    pub subtotal: Money,
    pub discount: Money,
    pub total: Money,
    #[serde(default)]
    pub dispatch_command_id: Option<String>,
    /// The partner the dispatch was sent to; only its results count. `None` in states written
    /// before it was recorded (those were dispatched to the default `erp_partner`).
    #[serde(default)]
    pub dispatch_partner: Option<String>,
    #[serde(default)]
    pub partner_reference: Option<String>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub deadline: Option<Millis>,
    /// The cancel sent because the partner accepted the dispatch after the order was compensated.
    #[serde(default)]
    pub cancel_command_id: Option<String>,
    /// How that cancel's delivery ended, once known.
    #[serde(default)]
    pub cancel_outcome: Option<String>,
    #[serde(default)]
    pub callback_url: Option<String>,
    #[serde(default)]
    pub applied_event_ids: Vec<String>,
    #[serde(default)]
    pub history: Vec<TransitionRecord>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// `dispatch_command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchCommand {
    pub command_id: String,
    pub correlation_id: String,
    pub order_id: String,
    pub partner: String,
    pub items: Vec<Line>,
    pub total: Money,
    pub currency: String,
    pub deadline: Millis,
    pub issued_at: Millis,
}

/// `cancel_command`: withdraws a dispatch the partner accepted after the order was compensated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelCommand {
    pub command_id: String,
    pub correlation_id: String,
    pub order_id: String,
    pub partner: String,
    pub dispatch_command_id: String,
    pub partner_reference: Option<String>,
    pub reason: String,
    pub issued_at: Millis,
}

/// `notification_command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationCommand {
    pub command_id: String,
    pub correlation_id: String,
    pub order_id: String,
    pub partner: String,
    pub callback_url: Option<String>,
    pub event_type: String,
    pub status: Status,
    pub payload_json: String,
    pub issued_at: Millis,
}

/// One SKU to release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    pub sku: String,
    pub quantity: i32,
}

/// `stock_release_command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReleaseCommand {
    pub command_id: String,
    pub correlation_id: String,
    pub order_id: String,
    pub items: Vec<StockLine>,
    pub reason: String,
    pub issued_at: Millis,
}

/// `order_validated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderValidated {
    pub event_id: String,
    pub correlation_id: String,
    pub order_id: String,
    pub subtotal: Money,
    pub discount: Money,
    pub total: Money,
    pub currency: String,
    pub validated_at: Millis,
}

/// `order_rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRejected {
    pub event_id: String,
    pub correlation_id: String,
    pub order_id: String,
    /// OUT_OF_STOCK, INVALID, PARTNER_REFUSED, DEADLINE_EXPIRED.
    pub reason: String,
    pub detail: String,
    pub rejected_at: Millis,
}
