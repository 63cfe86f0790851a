//! The read model's rows: what the projector writes ([`OrderRow`], [`EventRow`], [`LookupRow`],
//! fields in the order of their table's columns) and what the status API reads ([`OrderView`],
//! [`EventView`], [`LookupView`], fields in the order of its select; a column may be null).
//! Times are epoch milliseconds, amounts [`Decimal`]s.

use super::indexed_order_id;

/// A decimal as CQL stores it: big-endian two's complement unscaled value and scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    pub unscaled: Vec<u8>,
    pub scale: i32,
}

impl Decimal {
    /// Parses `-123.45` into its unscaled big-endian bytes and scale.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = format!("{int}{frac}");
        let unscaled: i128 = digits.parse().map_err(|e| format!("decimal {text:?}: {e}"))?;
        let bytes = unscaled.to_be_bytes();
        // Drop leading bytes that only repeat the sign.
        let mut start = 0;
        while start + 1 < bytes.len() {
            let (b, next) = (bytes[start], bytes[start + 1]);
            if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        let scale = i32::try_from(frac.len()).map_err(|_| format!("decimal {text:?}: scale too large"))?;
        Ok(Self { unscaled: bytes[start..].to_vec(), scale })
    }

    /// The decimal as text (`-123.45`).
    pub fn to_text(&self) -> String {
        let unscaled = &self.unscaled;
        let mut buf = if unscaled.first().is_some_and(|b| b & 0x80 != 0) { [0xff_u8; 16] } else { [0_u8; 16] };
        let take = unscaled.len().min(16);
        buf[16 - take..].copy_from_slice(&unscaled[unscaled.len() - take..]);
        let value = i128::from_be_bytes(buf);
        let scale = usize::try_from(self.scale).unwrap_or(0);
        if scale == 0 {
            return value.to_string();
        }
        let digits = format!("{:0width$}", value.unsigned_abs(), width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        format!("{}{int}.{frac}", if value < 0 { "-" } else { "" })
    }
}

/// The `orders` row: the latest state of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub partner: String,
    pub correlation_id: String,
    pub order_id: String,
    pub status: String,
    pub version: i64,
    pub currency: String,
    pub subtotal: Decimal,
    pub discount: Decimal,
    pub total: Decimal,
    pub items_json: String,
    pub partner_reference: Option<String>,
    pub dispatch_command_id: Option<String>,
    pub failure_reason: Option<String>,
    /// Epoch milliseconds.
    pub deadline: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One `order_events` row: a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub partner: String,
    pub correlation_id: String,
    /// The state version this transition produced.
    pub version: i64,
    /// Event time, epoch milliseconds.
    pub at: i64,
    pub from_status: String,
    pub to_status: String,
    pub event_id: String,
    pub event_type: String,
    pub detail: Option<String>,
}

/// One `orders_by_order_id` row: an order found by the partner's own order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRow {
    pub partner: String,
    pub order_id: String,
    pub correlation_id: String,
    pub status: String,
    pub version: i64,
    pub created_at: i64,
}

impl LookupRow {
    /// The lookup row of `order`, written with its `orders` row (same TTL and timestamp, so both
    /// live and change together); `None` for an order id the lookup does not index.
    pub fn of(order: &OrderRow) -> Option<Self> {
        indexed_order_id(&order.order_id).then(|| Self {
            partner: order.partner.clone(),
            order_id: order.order_id.clone(),
            correlation_id: order.correlation_id.clone(),
            status: order.status.clone(),
            version: order.version,
            created_at: order.created_at,
        })
    }
}

/// An order's row in the by-minute index (the console's search), written with its `orders` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteRow {
    pub partner: String,
    pub minute: i64,
    pub created_at: i64,
    pub correlation_id: String,
    pub status: String,
    pub version: i64,
    pub order_id: String,
}

impl MinuteRow {
    /// The by-minute row of `order`; `None` without a creation time.
    pub fn of(order: &OrderRow) -> Option<Self> {
        (order.created_at > 0).then(|| Self {
            partner: order.partner.clone(),
            minute: super::minute_of(order.created_at),
            created_at: order.created_at,
            correlation_id: order.correlation_id.clone(),
            status: order.status.clone(),
            version: order.version,
            order_id: order.order_id.clone(),
        })
    }
}

/// An order as the status API reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub order_id: String,
    pub status: String,
    pub version: i64,
    pub currency: String,
    pub subtotal: Option<Decimal>,
    pub discount: Option<Decimal>,
    pub total: Option<Decimal>,
    pub items_json: Option<String>,
    pub partner_reference: Option<String>,
    pub failure_reason: Option<String>,
    pub deadline: Option<i64>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// A transition as the status API reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    pub version: i64,
    pub at: Option<i64>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub detail: Option<String>,
}

/// A lookup row as the status API reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupView {
    pub correlation_id: String,
    pub status: Option<String>,
    pub version: Option<i64>,
    pub created_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_through_the_cql_form() {
        for text in ["0.00", "19.50", "-0.01", "-128.00", "127.99", "12345678901234567.89", "7"] {
            let d = Decimal::parse(text).expect("parses");
            assert_eq!(d.to_text(), text);
        }
        assert_eq!(Decimal::parse("1.27").expect("d").unscaled, vec![127]);
        assert_eq!(Decimal::parse("1.28").expect("d").unscaled, vec![0, 128]);
        assert_eq!(Decimal::parse("-1.28").expect("d").unscaled, vec![128]);
        assert!(Decimal::parse("abc").is_err());
    }

    #[test]
    fn an_order_gets_a_lookup_row_only_for_an_indexed_order_id() {
        let order = |order_id: &str| OrderRow {
            partner: "acme-shop".into(),
            correlation_id: "c-1".into(),
            order_id: order_id.into(),
            status: "RECEIVED".into(),
            version: 2,
            currency: "EUR".into(),
            subtotal: Decimal::parse("1.00").expect("d"),
            discount: Decimal::parse("0.00").expect("d"),
            total: Decimal::parse("1.00").expect("d"),
            items_json: "[]".into(),
            partner_reference: None,
            dispatch_command_id: None,
            failure_reason: None,
            deadline: None,
            created_at: 7,
            updated_at: 9,
        };
        let row = LookupRow::of(&order("A-1")).expect("indexed");
        assert_eq!((row.order_id.as_str(), row.version, row.created_at), ("A-1", 2, 7));
        assert_eq!(LookupRow::of(&order("")), None);
    }
}
