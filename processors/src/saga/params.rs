//! The saga's tunables (the processor's `params` in topology.toml) and the stock levels it reads.

use std::collections::BTreeMap;

use super::model::Money;

/// Tunables of the saga, from the processor's `params` in topology.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The default ERP: dispatches of shops not in `erp_partner_by_shop` go to it.
    pub erp_partner: String,
    /// The ERP of each shop (the order's `partner`).
    pub erp_partner_by_shop: BTreeMap<String, String>,
    pub discount_percent: u8,
    pub discount_min_total: Money,
    pub dispatch_deadline_ms: i64,
    /// Transitions kept in the state's history.
    pub history_limit: usize,
    /// Event ids kept for duplicate detection.
    pub applied_limit: usize,
}

impl Params {
    /// The ERP that receives the dispatches of `shop`'s orders.
    pub(crate) fn erp_for(&self, shop: &str) -> &str {
        self.erp_partner_by_shop.get(shop).map_or(self.erp_partner.as_str(), String::as_str)
    }
}

/// Stock levels, as the inventory lookup table has them.
pub trait Inventory {
    fn available(&self, sku: &str) -> Option<i64>;
}

impl<S: std::hash::BuildHasher> Inventory for std::collections::HashMap<String, i64, S> {
    fn available(&self, sku: &str) -> Option<i64> {
        self.get(sku).copied()
    }
}
