//! Order totals the contracts can carry. The processor computes each `order_received`'s line
//! totals and subtotal into `decimal(18,2)` fields; an order whose totals cannot be carried is
//! refused here with `422`, pointing at the field, rather than accepted and rejected later.
//!
//! Only the `order_received` contract has totals the hub computes; every other contract passes.

use interchange_core::contract::Violation;
use interchange_core::money::{Cents, PRECISION, SCALE};
use serde_json::Value;

// The contract whose lines (`items[].unit_price × items[].quantity`) the processor sums.
use crate::state::ORDER_CONTRACT;

/// Violations of the totals of `body` (already valid against `contract`).
pub(crate) fn violations(contract: &str, body: &Value) -> Vec<Violation> {
    if contract != ORDER_CONTRACT {
        return Vec::new();
    }
    let Some(items) = body.get("items").and_then(Value::as_array) else { return Vec::new() };
    let expected = format!("totals of at most {PRECISION} digits (decimal({PRECISION},{SCALE}))");
    let mut out = Vec::new();
    let mut subtotal = Some(Cents::default());
    for (i, line) in items.iter().enumerate() {
        let price = line.get("unit_price").and_then(Value::as_str).and_then(Cents::parse);
        let quantity = line.get("quantity").and_then(Value::as_i64);
        let total = price.zip(quantity).and_then(|(p, q)| p.checked_times(q));
        if let Some(refusal) = total.and_then(|t| t.refusal("the line total (unit_price × quantity)")) {
            out.push(Violation {
                pointer: format!("/items/{i}/unit_price"),
                expected: expected.clone(),
                detail: refusal,
            });
        }
        subtotal = subtotal.zip(total).and_then(|(s, t)| s.checked_add(t));
    }
    if out.is_empty() {
        if let Some(refusal) = subtotal.and_then(|s| s.refusal("the order subtotal (sum of the line totals)")) {
            out.push(Violation { pointer: "/items".to_owned(), expected, detail: refusal });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_total_past_decimal_18_2_points_at_its_price() {
        let body = json!({"items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "9999999999999999.99"}]});
        let v = violations(ORDER_CONTRACT, &body);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].pointer, "/items/0/unit_price");
        assert!(v[0].detail.contains("19999999999999999.98 has 19 digits"), "{}", v[0].detail);
    }

    #[test]
    fn a_subtotal_past_decimal_18_2_points_at_the_items() {
        let line = json!({"sku": "SKU-1", "quantity": 1, "unit_price": "9999999999999999.99"});
        let v = violations(ORDER_CONTRACT, &json!({"items": [line.clone(), line]}));
        assert_eq!(v.iter().map(|v| v.pointer.as_str()).collect::<Vec<_>>(), ["/items"]);
        assert!(v[0].detail.contains("subtotal"));
    }

    #[test]
    fn carried_totals_and_other_contracts_pass() {
        let line = json!({"sku": "SKU-1", "quantity": 1, "unit_price": "9999999999999998.99"});
        let ok = json!({"items": [line, {"sku": "SKU-2", "quantity": 1, "unit_price": "1.00"}]});
        assert!(violations(ORDER_CONTRACT, &ok).is_empty());
        let big = json!({"items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "9999999999999999.99"}]});
        assert!(violations("delivery_result", &big).is_empty());
    }
}
