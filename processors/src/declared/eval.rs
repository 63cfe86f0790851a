//! Evaluates a declared machine's expressions over JSON: the event, the state, the lookup table.

use std::cmp::Ordering;

use interchange_core::money::Cents;
use interchange_core::topology::machine::{Expr, Op, Root};
use serde_json::Value;

use crate::machine::Lookup;

/// What an expression sees.
pub(crate) struct Scope<'a> {
    /// `None` for a timer.
    pub(crate) event: Option<&'a Value>,
    /// `None` before the first transition.
    pub(crate) state: Option<&'a Value>,
    pub(crate) key: &'a str,
    pub(crate) event_id: &'a str,
    /// The event's time (epoch milliseconds).
    pub(crate) now: i64,
    pub(crate) lookup: &'a dyn Lookup,
    /// The processor's `params.values`.
    pub(crate) params: &'a std::collections::BTreeMap<String, String>,
}

/// An id derived from `base` (an event id, or a key) and `tag`: stable across restarts and redos.
pub(crate) fn derive_id(base: &str, tag: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{base}/{tag}").as_bytes()).to_string()
}

fn walk(mut value: &Value, path: &[String]) -> Value {
    for field in path {
        match value.get(field) {
            Some(next) => value = next,
            None => return Value::Null,
        }
    }
    value.clone()
}

/// The text of a value as `concat` and lookup keys use it: strings as they are, null as nothing.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Numbers compare as numbers, decimal texts (`"129.90"`) as exact amounts, other texts as text.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => match (Cents::parse(x), Cents::parse(y)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => Some(x.cmp(y)),
        },
        (Value::String(x), Value::Number(_)) => Cents::parse(x)?.cmp(&Cents::parse(&b.to_string())?).into(),
        (Value::Number(_), Value::String(y)) => Cents::parse(&a.to_string())?.cmp(&Cents::parse(y)?).into(),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Number(_)) => order(a, b) == Some(Ordering::Equal),
        _ => a == b,
    }
}

/// Whether a guard holds: only `true` does.
pub(crate) fn holds(expr: &Expr, scope: &Scope<'_>) -> bool {
    eval(expr, scope) == Value::Bool(true)
}

/// The value of `expr`; a missing field is `null`.
pub(crate) fn eval(expr: &Expr, scope: &Scope<'_>) -> Value {
    match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Path(Root::Event, path) => scope.event.map_or(Value::Null, |e| walk(e, path)),
        Expr::Path(Root::State, path) => scope.state.map_or(Value::Null, |s| walk(s, path)),
        Expr::Path(Root::Lookup(key), path) => {
            let key = text(&eval(key, scope));
            scope.lookup.get(&key).map_or(Value::Null, |v| walk(&v, path))
        }
        Expr::Key => Value::String(scope.key.to_owned()),
        Expr::EventId => Value::String(scope.event_id.to_owned()),
        Expr::Now => Value::from(scope.now),
        Expr::Param(name) => scope.params.get(name).map_or(Value::Null, |v| Value::String(v.clone())),
        Expr::Derive(tag) => Value::String(derive_id(scope.event_id, tag)),
        Expr::Concat(parts) => Value::String(parts.iter().map(|p| text(&eval(p, scope))).collect()),
        Expr::Compare(a, op, b) => {
            let (a, b) = (eval(a, scope), eval(b, scope));
            let result = match op {
                Op::Eq => equal(&a, &b),
                Op::Ne => !equal(&a, &b),
                Op::Lt => order(&a, &b) == Some(Ordering::Less),
                Op::Le => matches!(order(&a, &b), Some(Ordering::Less | Ordering::Equal)),
                Op::Gt => order(&a, &b) == Some(Ordering::Greater),
                Op::Ge => matches!(order(&a, &b), Some(Ordering::Greater | Ordering::Equal)),
            };
            Value::Bool(result)
        }
        Expr::And(a, b) => Value::Bool(holds(a, scope) && holds(b, scope)),
        Expr::Or(a, b) => Value::Bool(holds(a, scope) || holds(b, scope)),
        Expr::Not(a) => Value::Bool(!holds(a, scope)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use interchange_core::topology::machine::expr::parse;
    use serde_json::json;

    use super::*;

    fn value(text: &str, event: &Value, state: Option<&Value>) -> Value {
        let table: HashMap<String, Arc<Value>> =
            HashMap::from([("SKU-1".to_owned(), Arc::new(json!({"available": 3})))]);
        let params = std::collections::BTreeMap::from([("payer".to_owned(), "payflow".to_owned())]);
        let scope = Scope {
            event: Some(event),
            state,
            key: "k-1",
            event_id: "e-1",
            now: 1_000,
            lookup: &table,
            params: &params,
        };
        eval(&parse(text).expect("parses"), &scope)
    }

    #[test]
    fn paths_comparisons_and_calls() {
        let event = json!({"verdict": "APPROVED", "amount": "129.90", "sku": "SKU-1", "n": 2, "nested": {"a": 1}});
        let state = json!({"status": "INSPECTING", "limit": "1000.00"});
        let yes = |t: &str| assert_eq!(value(t, &event, Some(&state)), Value::Bool(true), "{t}");
        let no = |t: &str| assert_eq!(value(t, &event, Some(&state)), Value::Bool(false), "{t}");
        yes("event.verdict == 'APPROVED'");
        yes("event.amount < state.limit");
        no("event.amount > '1000'");
        yes("event.amount > 99");
        yes("event.n == 2.0");
        yes("lookup(event.sku).available >= event.n");
        no("lookup('SKU-9').available >= 0");
        yes("event.missing == null and not event.nested.a != 1");
        yes("state.status == 'INSPECTING' or 1 > 'x'");
        assert_eq!(value("concat('r-', key, '/', now, event.missing)", &event, None), json!("r-k-1/1000"));
        assert_eq!(value("derive('refund')", &event, None), json!(derive_id("e-1", "refund")));
        assert_eq!(value("concat(param.payer, param.missing)", &event, None), json!("payflow"));
        assert_ne!(derive_id("e-1", "refund"), derive_id("e-2", "refund"));
        assert_eq!(value("state.status", &event, None), Value::Null);
        let table: HashMap<String, Arc<Value>> = HashMap::new();
        let params = std::collections::BTreeMap::new();
        let scope = Scope {
            event: Some(&event),
            state: None,
            key: "k",
            event_id: "e",
            now: 0,
            lookup: &table,
            params: &params,
        };
        assert!(!holds(&parse("event.verdict").expect("parses"), &scope), "only true holds");
    }
}
