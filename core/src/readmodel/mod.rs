//! The order read model, in one place: what its writer (the projector, `interchange-sinks`) and
//! its reader (the order status API, `interchange-ingest`) agree on. Strings and plain structs
//! only; each side binds and decodes them with the CQL driver itself.
//!
//! - [`schema`]: the tables (`cql/readmodel.cql`, included as it is) and the migration
//!   `hub readmodel migrate` runs;
//! - [`statements`]: the column lists and the statements built from them (the projector's
//!   inserts, the status API's selects), checked against the schema;
//! - [`rows`]: the rows the projector writes and the views the status API reads;
//! - here: the table names, which order ids are indexed, and which keyspaces a topology's
//!   projector sinks keep ([`Topology::read_models`], [`Topology::read_model_keyspace`]).

use std::time::Duration;

use crate::topology::{SinkParams, Topology};

pub mod rows;
pub mod schema;
pub mod statements;

pub use rows::{Decimal, EventRow, EventView, LookupRow, LookupView, MinuteRow, OrderRow, OrderView};

/// The latest state of each order, keyed by (partner, correlation id).
pub const ORDERS_TABLE: &str = "orders";

/// One row per transition of an order, newest first.
pub const EVENTS_TABLE: &str = "order_events";

/// The table that maps (partner, order id) to the correlation ids of the partner's orders.
pub const ORDER_ID_TABLE: &str = "orders_by_order_id";

/// A partner's orders by the minute they were created, newest first (the console's search).
pub const MINUTE_TABLE: &str = "orders_by_minute";

/// The start of the minute `millis` falls in (epoch ms).
pub fn minute_of(millis: i64) -> i64 {
    millis - millis.rem_euclid(60_000)
}

/// Longest order id (UTF-8 bytes) the lookup table indexes. Cassandra refuses partition keys
/// over 64 KiB, and one refused write would stop the projector for good; real order ids are far
/// shorter. Longer (and empty) order ids are not indexed, and the API refuses to look them up.
pub const MAX_INDEXED_ORDER_ID_BYTES: usize = 512;

/// Whether an order with this order id gets a lookup row.
pub fn indexed_order_id(order_id: &str) -> bool {
    !order_id.is_empty() && order_id.len() <= MAX_INDEXED_ORDER_ID_BYTES
}

impl Topology {
    /// The read models the topology's `cql_projector` sinks keep: (keyspace, how long rows live
    /// after their event time), in the order of the sinks.
    pub fn read_models(&self) -> Vec<(&str, Duration)> {
        self.sinks
            .iter()
            .filter_map(|s| match &s.params {
                SinkParams::CqlProjector { keyspace, timeline_ttl } => Some((keyspace.as_str(), *timeline_ttl)),
                SinkParams::Http { .. } => None,
            })
            .collect()
    }

    /// The keyspace the order status API reads: the first `cql_projector` sink's, if any.
    pub fn read_model_keyspace(&self) -> Option<&str> {
        self.read_models().first().map(|(keyspace, _)| *keyspace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_empty_order_ids_within_the_limit_are_indexed() {
        assert!(indexed_order_id("A-1"));
        assert!(indexed_order_id(&"é".repeat(MAX_INDEXED_ORDER_ID_BYTES / 2)));
        assert!(!indexed_order_id(&"é".repeat(MAX_INDEXED_ORDER_ID_BYTES / 2 + 1)), "bytes, not characters");
        assert!(!indexed_order_id(""));
    }

    #[test]
    fn the_reference_topology_keeps_one_read_model_which_the_status_api_reads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../topology.toml");
        let topology = Topology::load(&path, "").expect("the reference topology loads");
        assert_eq!(topology.read_models(), vec![("interchange", Duration::from_secs(90 * 86_400))]);
        assert_eq!(topology.read_model_keyspace(), Some("interchange"));
    }
}
