//! The statements of the read model, built from one list of columns each: the projector's
//! inserts (every column of a table, bound in the order of the list, then the row's TTL and
//! write timestamp) and the status API's selects (decoded in the order of the list). The tests
//! check every list against the tables of [`super::schema::SCHEMA`].

use super::{EVENTS_TABLE, MINUTE_TABLE, ORDERS_TABLE, ORDER_ID_TABLE};

/// The columns of an `orders` row the projector writes ([`super::OrderRow`]), in bind order.
pub const ORDER_COLUMNS: [&str; 16] = [
    "partner",
    "correlation_id",
    "order_id",
    "status",
    "version",
    "currency",
    "subtotal",
    "discount",
    "total",
    "items_json",
    "partner_reference",
    "dispatch_command_id",
    "failure_reason",
    "deadline",
    "created_at",
    "updated_at",
];

/// The columns of an `order_events` row the projector writes ([`super::EventRow`]), in bind order.
pub const EVENT_COLUMNS: [&str; 9] =
    ["partner", "correlation_id", "version", "at", "from_status", "to_status", "event_id", "event_type", "detail"];

/// The columns of an order-id lookup row the projector writes ([`super::LookupRow`]), in bind order.
pub const LOOKUP_COLUMNS: [&str; 6] = ["partner", "order_id", "correlation_id", "status", "version", "created_at"];

/// The columns of a by-minute row the projector writes ([`super::MinuteRow`]), in bind order.
pub const MINUTE_COLUMNS: [&str; 7] =
    ["partner", "minute", "created_at", "correlation_id", "status", "version", "order_id"];

/// The columns of a by-minute row the console reads ([`super::LookupView`]), in order.
pub const MINUTE_VIEW_COLUMNS: [&str; 4] = ["correlation_id", "status", "version", "created_at"];

/// The columns of an order the status API reads ([`super::OrderView`]), in order.
pub const ORDER_VIEW_COLUMNS: [&str; 13] = [
    "order_id",
    "status",
    "version",
    "currency",
    "subtotal",
    "discount",
    "total",
    "items_json",
    "partner_reference",
    "failure_reason",
    "deadline",
    "created_at",
    "updated_at",
];

/// The columns of a transition the status API reads ([`super::EventView`]), in order.
pub const EVENT_VIEW_COLUMNS: [&str; 7] =
    ["version", "at", "from_status", "to_status", "event_id", "event_type", "detail"];

/// The columns of an order-id lookup row the status API reads ([`super::LookupView`]), in order.
pub const LOOKUP_VIEW_COLUMNS: [&str; 4] = ["correlation_id", "status", "version", "created_at"];

fn insert(keyspace: &str, table: &str, columns: &[&str]) -> String {
    let marks = vec!["?"; columns.len()].join(", ");
    format!("INSERT INTO {keyspace}.{table} ({}) VALUES ({marks}) USING TTL ? AND TIMESTAMP ?", columns.join(", "))
}

fn select(keyspace: &str, table: &str, columns: &[&str], rest: &str) -> String {
    format!("SELECT {} FROM {keyspace}.{table} WHERE {rest}", columns.join(", "))
}

/// Upserts an order's latest state: [`ORDER_COLUMNS`], then the TTL (seconds) and the write
/// timestamp (the state version).
pub fn insert_order(keyspace: &str) -> String {
    insert(keyspace, ORDERS_TABLE, &ORDER_COLUMNS)
}

/// Inserts a transition: [`EVENT_COLUMNS`], then the TTL and the write timestamp.
pub fn insert_event(keyspace: &str) -> String {
    insert(keyspace, EVENTS_TABLE, &EVENT_COLUMNS)
}

/// Inserts an order's lookup row: [`LOOKUP_COLUMNS`], then the TTL and the write timestamp.
pub fn insert_lookup(keyspace: &str) -> String {
    insert(keyspace, ORDER_ID_TABLE, &LOOKUP_COLUMNS)
}

/// Inserts an order's by-minute row: [`MINUTE_COLUMNS`], then the TTL and the write timestamp.
pub fn insert_by_minute(keyspace: &str) -> String {
    insert(keyspace, MINUTE_TABLE, &MINUTE_COLUMNS)
}

/// A partner's orders created in one minute, newest first, by (partner, minute, created at or
/// after, created before, limit): [`MINUTE_VIEW_COLUMNS`].
pub fn select_by_minute(keyspace: &str) -> String {
    select(
        keyspace,
        MINUTE_TABLE,
        &MINUTE_VIEW_COLUMNS,
        "partner = ? AND minute = ? AND created_at >= ? AND created_at < ? LIMIT ?",
    )
}

/// An order by (partner, correlation id): [`ORDER_VIEW_COLUMNS`].
pub fn select_order(keyspace: &str) -> String {
    select(keyspace, ORDERS_TABLE, &ORDER_VIEW_COLUMNS, "partner = ? AND correlation_id = ?")
}

/// A page of an order's transitions, newest first, by (partner, correlation id, versions below,
/// limit): [`EVENT_VIEW_COLUMNS`].
pub fn select_events(keyspace: &str) -> String {
    select(keyspace, EVENTS_TABLE, &EVENT_VIEW_COLUMNS, "partner = ? AND correlation_id = ? AND version < ? LIMIT ?")
}

/// The orders of a partner carrying an order id, by (partner, order id, limit):
/// [`LOOKUP_VIEW_COLUMNS`].
pub fn select_by_order_id(keyspace: &str) -> String {
    select(keyspace, ORDER_ID_TABLE, &LOOKUP_VIEW_COLUMNS, "partner = ? AND order_id = ? LIMIT ?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readmodel::schema::columns;

    #[test]
    fn the_projector_writes_every_column_of_each_table_in_the_schemas_order() {
        assert_eq!(columns(ORDERS_TABLE), ORDER_COLUMNS);
        assert_eq!(columns(EVENTS_TABLE), EVENT_COLUMNS);
        assert_eq!(columns(ORDER_ID_TABLE), LOOKUP_COLUMNS);
        assert_eq!(columns(MINUTE_TABLE), MINUTE_COLUMNS);
    }

    #[test]
    fn the_status_api_reads_columns_its_tables_have() {
        for (table, read) in [
            (ORDERS_TABLE, &ORDER_VIEW_COLUMNS[..]),
            (EVENTS_TABLE, &EVENT_VIEW_COLUMNS[..]),
            (ORDER_ID_TABLE, &LOOKUP_VIEW_COLUMNS[..]),
            (MINUTE_TABLE, &MINUTE_VIEW_COLUMNS[..]),
        ] {
            let have = columns(table);
            for column in read {
                assert!(have.iter().any(|c| c == column), "{table} has no column {column}");
            }
        }
    }

    #[test]
    fn the_statements_are_the_ones_the_projector_and_the_edge_always_ran() {
        assert_eq!(
            insert_order("ks"),
            "INSERT INTO ks.orders (partner, correlation_id, order_id, status, version, currency, subtotal, \
             discount, total, items_json, partner_reference, dispatch_command_id, failure_reason, deadline, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             USING TTL ? AND TIMESTAMP ?"
        );
        assert_eq!(
            insert_event("ks"),
            "INSERT INTO ks.order_events (partner, correlation_id, version, at, from_status, to_status, \
             event_id, event_type, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
        );
        assert_eq!(
            insert_lookup("ks"),
            "INSERT INTO ks.orders_by_order_id (partner, order_id, correlation_id, status, version, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
        );
        assert_eq!(
            select_order("ks"),
            "SELECT order_id, status, version, currency, subtotal, discount, total, items_json, \
             partner_reference, failure_reason, deadline, created_at, updated_at FROM ks.orders \
             WHERE partner = ? AND correlation_id = ?"
        );
        assert_eq!(
            select_events("ks"),
            "SELECT version, at, from_status, to_status, event_id, event_type, detail FROM ks.order_events \
             WHERE partner = ? AND correlation_id = ? AND version < ? LIMIT ?"
        );
        assert_eq!(
            select_by_order_id("ks"),
            "SELECT correlation_id, status, version, created_at FROM ks.orders_by_order_id WHERE partner = ? \
             AND order_id = ? LIMIT ?"
        );
    }
}
