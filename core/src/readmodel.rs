//! What the read model's writer (the projector) and its reader (the order status API) agree on.

/// The table that maps (partner, order id) to the correlation ids of the partner's orders.
pub const ORDER_ID_TABLE: &str = "orders_by_order_id";

/// Longest order id (UTF-8 bytes) the lookup table indexes. Cassandra refuses partition keys
/// over 64 KiB, and one refused write would stop the projector for good; real order ids are far
/// shorter. Longer (and empty) order ids are not indexed, and the API refuses to look them up.
pub const MAX_INDEXED_ORDER_ID_BYTES: usize = 512;

/// Whether an order with this order id gets a lookup row.
pub fn indexed_order_id(order_id: &str) -> bool {
    !order_id.is_empty() && order_id.len() <= MAX_INDEXED_ORDER_ID_BYTES
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
}
