//! Evaluates a declared machine's expressions over JSON: the event, the state, the lookup table.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};

use interchange_core::money::Cents;
use interchange_core::topology::machine::expr::{Arith, Each, Fold, Func};
use interchange_core::topology::machine::{Expr, Op, ParamValue, Root};
use serde_json::Value;

pub(crate) use crate::machine::derive_id;
use crate::machine::Lookup;

/// What an expression sees.
#[derive(Clone, Copy)]
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
    pub(crate) params: &'a std::collections::BTreeMap<String, ParamValue>,
    /// Definitions already evaluated in this event's application (`None`: evaluate each use).
    pub(crate) memo: Option<&'a Memo<'a>>,
}

/// The values of the definitions that read no state, computed once per event: the event, the
/// params, the lookup table and the clock do not change while an event is applied, the state
/// does (a transition's `set` sees its earlier fields).
pub(crate) struct Memo<'a> {
    stateless: &'a HashSet<String>,
    values: RefCell<HashMap<String, Value>>,
}

impl<'a> Memo<'a> {
    pub(crate) fn new(stateless: &'a HashSet<String>) -> Self {
        Self { stateless, values: RefCell::new(HashMap::new()) }
    }
}

/// The definitions among `exprs` whose value reads no `state.`.
pub(crate) fn stateless_definitions<'e>(exprs: impl Iterator<Item = &'e Expr>) -> HashSet<String> {
    fn reads_state(expr: &Expr) -> bool {
        matches!(expr, Expr::Path(Root::State, _)) || expr.children().into_iter().any(reads_state)
    }
    fn collect(expr: &Expr, out: &mut HashSet<String>) {
        if let Expr::Defined(name, inner) = expr {
            if !reads_state(inner) {
                out.insert(name.clone());
            }
        }
        for child in expr.children() {
            collect(child, out);
        }
    }
    let mut out = HashSet::new();
    for expr in exprs {
        collect(expr, &mut out);
    }
    out
}

/// The elements bound by the enclosing list forms, innermost first.
#[derive(Clone, Copy)]
struct Bound<'b> {
    name: &'b str,
    value: &'b Value,
    up: Option<&'b Bound<'b>>,
}

fn bound<'b>(mut at: Option<&'b Bound<'b>>, name: &str) -> Option<&'b Value> {
    while let Some(b) = at {
        if b.name == name {
            return Some(b.value);
        }
        at = b.up;
    }
    None
}

/// The value at `path` of `value` (null when a field is missing).
fn walk(value: &Value, path: &[String]) -> Value {
    walk_ref(value, path).cloned().unwrap_or(Value::Null)
}

/// The text of a value as `concat` and lookup keys use it: strings as they are, null as nothing.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An exact amount: a decimal text, or a number with at most two decimals.
fn cents(value: &Value) -> Option<Cents> {
    match value {
        Value::String(s) => Cents::parse(s),
        Value::Number(n) => Cents::parse(&n.to_string()),
        _ => None,
    }
}

/// Numbers compare as numbers, decimal texts (`"129.90"`) as exact amounts, other texts as text.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => match (Cents::parse(x), Cents::parse(y)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => Some(x.cmp(y)),
        },
        (Value::String(_), Value::Number(_)) | (Value::Number(_), Value::String(_)) => Some(cents(a)?.cmp(&cents(b)?)),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Number(_)) => order(a, b) == Some(Ordering::Equal),
        _ => a == b,
    }
}

/// `a op b`, exactly: integers stay integers, anything else with an amount is an amount
/// (a text with two decimals). Null when an operand is not a number or the result overflows.
fn arithmetic(a: &Value, op: Arith, b: &Value) -> Value {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let result = match op {
            Arith::Add => x.checked_add(y),
            Arith::Sub => x.checked_sub(y),
            Arith::Mul => x.checked_mul(y),
        };
        return result.map_or(Value::Null, Value::from);
    }
    let (Some(x), Some(y)) = (cents(a), cents(b)) else { return Value::Null };
    let result = match op {
        Arith::Add => x.checked_add(y),
        Arith::Sub => x.checked_sub(y),
        // An integer factor keeps the cents exact; two amounts round half away from zero.
        Arith::Mul => match (a.as_i64(), b.as_i64()) {
            (_, Some(n)) => x.checked_times(n),
            (Some(n), _) => y.checked_times(n),
            _ => {
                x.0.checked_mul(y.0).and_then(|p| p.checked_add(if p >= 0 { 50 } else { -50 })).map(|p| Cents(p / 100))
            }
        },
    };
    result.map_or(Value::Null, |c| Value::String(c.to_string()))
}

/// Whether a guard holds: only `true` does.
pub(crate) fn holds(expr: &Expr, scope: &Scope<'_>) -> bool {
    eval(expr, scope) == Value::Bool(true)
}

/// The value of `expr`; a missing field is `null`.
pub(crate) fn eval(expr: &Expr, scope: &Scope<'_>) -> Value {
    value(expr, scope, None)
}

fn is(expr: &Expr, scope: &Scope<'_>, env: Option<&Bound<'_>>) -> bool {
    value(expr, scope, env) == Value::Bool(true)
}

fn value(expr: &Expr, scope: &Scope<'_>, env: Option<&Bound<'_>>) -> Value {
    match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Path(Root::Event, path) => scope.event.map_or(Value::Null, |e| walk(e, path)),
        Expr::Path(Root::State, path) => scope.state.map_or(Value::Null, |s| walk(s, path)),
        Expr::Path(Root::Lookup(key), path) => {
            let key = text(&value(key, scope, env));
            scope.lookup.get(&key).map_or(Value::Null, |v| walk(&v, path))
        }
        Expr::Path(Root::Var(name), path) => bound(env, name).map_or(Value::Null, |v| walk(v, path)),
        Expr::Key => Value::String(scope.key.to_owned()),
        Expr::EventId => Value::String(scope.event_id.to_owned()),
        Expr::Now => Value::from(scope.now),
        Expr::Param(name) => match scope.params.get(name) {
            Some(ParamValue::Text(v)) => Value::String(v.clone()),
            _ => Value::Null,
        },
        Expr::ParamEntry(name, key) => match scope.params.get(name) {
            Some(ParamValue::Table(table)) => {
                table.get(&text(&value(key, scope, env))).map_or(Value::Null, |v| Value::String(v.clone()))
            }
            _ => Value::Null,
        },
        Expr::Defined(name, inner) => match scope.memo.filter(|m| m.stateless.contains(name)) {
            Some(memo) => {
                if let Some(known) = memo.values.borrow().get(name) {
                    return known.clone();
                }
                let computed = value(inner, scope, env);
                memo.values.borrow_mut().insert(name.clone(), computed.clone());
                computed
            }
            None => value(inner, scope, env),
        },
        // Replaced by `Defined` when the machine is read.
        Expr::Def(_) => Value::Null,
        Expr::Derive(tag, None) => Value::String(derive_id(scope.event_id, tag)),
        Expr::Derive(tag, Some(base)) => Value::String(derive_id(&text(&value(base, scope, env)), tag)),
        Expr::Concat(parts) => Value::String(parts.iter().map(|p| text(&value(p, scope, env))).collect()),
        Expr::Call(Func::If, args) => {
            let branch = if is(&args[0], scope, env) { &args[1] } else { &args[2] };
            value(branch, scope, env)
        }
        Expr::Call(Func::Coalesce, args) => {
            args.iter().map(|a| value(a, scope, env)).find(|v| !v.is_null()).unwrap_or(Value::Null)
        }
        Expr::Call(Func::Percent, args) => {
            let amount = cents(&value(&args[0], scope, env));
            let percent = text(&value(&args[1], scope, env)).parse::<u32>().ok();
            match (amount, percent) {
                (Some(a), Some(p)) => a.checked_percent(p).map_or(Value::Null, |c| Value::String(c.to_string())),
                _ => Value::Null,
            }
        }
        Expr::Call(Func::Len, args) => match value(&args[0], scope, env) {
            Value::String(s) => Value::from(s.chars().count()),
            Value::Array(a) => Value::from(a.len()),
            Value::Object(o) => Value::from(o.len()),
            _ => Value::from(0),
        },
        Expr::Matches(a, pattern) => match value(a, scope, env) {
            Value::String(s) => Value::Bool(pattern.0.is_match(&s)),
            _ => Value::Bool(false),
        },
        Expr::Arith(a, op, b) => arithmetic(&value(a, scope, env), *op, &value(b, scope, env)),
        Expr::Each(each) => fold(each, scope, env),
        Expr::Compare(a, op, b) => {
            let (a, b) = (value(a, scope, env), value(b, scope, env));
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
        Expr::And(a, b) => Value::Bool(is(a, scope, env) && is(b, scope, env)),
        Expr::Or(a, b) => Value::Bool(is(a, scope, env) || is(b, scope, env)),
        Expr::Not(a) => Value::Bool(!is(a, scope, env)),
    }
}

/// The value at `path` of `value`, borrowed.
fn walk_ref<'v>(mut value: &'v Value, path: &[String]) -> Option<&'v Value> {
    for field in path {
        value = value.get(field)?;
    }
    Some(value)
}

/// A list form over the elements of its list (none when the list is null or not a list).
fn fold(each: &Each, scope: &Scope<'_>, env: Option<&Bound<'_>>) -> Value {
    // The list is read in place when it is a path: no copy per evaluation.
    let borrowed = match &each.list {
        Expr::Path(Root::Event, path) => scope.event.and_then(|e| walk_ref(e, path)),
        Expr::Path(Root::State, path) => scope.state.and_then(|s| walk_ref(s, path)),
        Expr::Path(Root::Var(name), path) => bound(env, name).and_then(|v| walk_ref(v, path)),
        _ => None,
    };
    let owned;
    let list = match borrowed {
        Some(list) => list,
        None => {
            owned = value(&each.list, scope, env);
            &owned
        }
    };
    let elements = list.as_array().map_or(&[][..], Vec::as_slice);
    let mut total = Value::from(0);
    let mut count = 0_u64;
    let mut texts = BTreeSet::new();
    let mut groups: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    for element in elements {
        let here = Bound { name: &each.var, value: element, up: env };
        let here = Some(&here);
        if each.filter.as_ref().is_some_and(|f| !is(f, scope, here)) {
            continue;
        }
        let body = each.body.as_ref();
        match each.fold {
            Fold::Any if body.is_some_and(|b| is(b, scope, here)) => return Value::Bool(true),
            Fold::All if !body.is_some_and(|b| is(b, scope, here)) => return Value::Bool(false),
            Fold::Any | Fold::All => {}
            Fold::Sum => {
                let part = body.map_or(Value::Null, |b| value(b, scope, here));
                total = arithmetic(&total, Arith::Add, &part);
                if total.is_null() {
                    return Value::Null;
                }
            }
            Fold::Count => count += 1,
            Fold::First => return body.map_or(Value::Null, |b| value(b, scope, here)),
            Fold::Join => {
                texts.insert(body.map_or_else(String::new, |b| text(&value(b, scope, here))));
            }
            Fold::Group => {
                let key = each.key.as_ref().map_or_else(String::new, |k| text(&value(k, scope, here)));
                let part = body.map_or(Value::Null, |b| value(b, scope, here));
                let sum = groups.entry(key).or_insert_with(|| Value::from(0));
                *sum = arithmetic(sum, Arith::Add, &part);
            }
        }
    }
    match each.fold {
        Fold::Any => Value::Bool(false),
        Fold::All => Value::Bool(true),
        Fold::Sum => total,
        Fold::Count => Value::from(count),
        Fold::First => Value::Null,
        Fold::Join => Value::String(texts.into_iter().collect::<Vec<_>>().join(&each.separator)),
        Fold::Group => {
            let groups = groups.into_iter().map(|(key, sum)| serde_json::json!({"key": key, "sum": sum}));
            Value::Array(groups.collect())
        }
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
        let params = std::collections::BTreeMap::from([
            ("payer".to_owned(), ParamValue::Text("payflow".to_owned())),
            ("erp".to_owned(), ParamValue::Table([("shop".to_owned(), "erp-s".to_owned())].into())),
        ]);
        let scope = Scope {
            event: Some(event),
            state,
            key: "k-1",
            event_id: "e-1",
            now: 1_000,
            lookup: &table,
            params: &params,
            memo: None,
        };
        eval(&parse(text).expect("parses"), &scope)
    }

    #[test]
    fn exact_arithmetic_and_list_forms() {
        let event = json!({"items": [
            {"sku": "B", "quantity": 2, "unit_price": "0.10"},
            {"sku": "A", "quantity": 3, "unit_price": "19.99"},
            {"sku": "B", "quantity": 1, "unit_price": "0.10"},
        ], "partner": "shop", "currency": "EUR", "nothing": null});
        let v = |t: &str| value(t, &event, None);
        assert_eq!(v("sum(l in event.items, l.unit_price * l.quantity)"), json!("60.27"), "exact, not 60.27000000001");
        assert_eq!(v("sum(l in event.items, l.quantity)"), json!(6), "integers stay integers");
        assert_eq!(v("sum(l in event.items where l.sku == 'B', l.quantity)"), json!(3));
        assert_eq!(v("'0.10' + '0.20' - 1"), json!("-0.70"));
        assert_eq!(v("'1.05' * '1.05'"), json!("1.10"), "two amounts: rounded half away from zero");
        assert_eq!(v("9223372036854775807 + 1"), Value::Null, "overflow is null, never a wrapped number");
        assert_eq!(v("percent('60.27', 5)"), json!("3.01"));
        assert_eq!(v("percent('0.10', 5)"), json!("0.01"), "0.005 rounds up");
        assert_eq!(v("count(l in event.items where l.sku == 'B')"), json!(2));
        assert_eq!(v("any(l in event.items, l.quantity > 2)"), json!(true));
        assert_eq!(v("all(l in event.items, l.quantity > 1)"), json!(false));
        assert_eq!(v("all(l in event.nothing, false)"), json!(true), "over nothing");
        assert_eq!(v("first(l in event.items where l.quantity > 1, concat(l.sku, l.quantity))"), json!("B2"));
        assert_eq!(v("first(l in event.items where l.quantity > 9, l.sku)"), Value::Null);
        assert_eq!(v("join(l in event.items, l.sku, ', ')"), json!("A, B"), "distinct, sorted");
        let nested = "join(a in event.items where count(b in event.items where b.sku == a.sku) > 1, a.sku, '')";
        assert_eq!(v(nested), json!("B"), "an inner name sees the outer one");
        assert_eq!(
            v("group(l in event.items, l.sku, l.quantity)"),
            json!([{"key": "A", "sum": 3}, {"key": "B", "sum": 3}])
        );
        assert_eq!(
            v("join(g in group(l in event.items, l.sku, l.quantity) where g.sum > 2, g.key, '+')"),
            json!("A+B")
        );
        assert_eq!(v("if(event.partner == 'shop', 'yes', 'no')"), json!("yes"));
        assert_eq!(v("coalesce(event.nothing, event.missing, 'third')"), json!("third"));
        assert_eq!(
            (v("len(event.items)"), v("len(event.currency)"), v("len(event.nothing)")),
            (json!(3), json!(3), json!(0))
        );
        assert_eq!(v("matches(event.currency, '^[A-Z]{3}$')"), json!(true));
        assert_eq!(v("matches(event.nothing, '.*')"), json!(false));
        assert_eq!(v("param.erp[event.partner]"), json!("erp-s"));
        assert_eq!(v("param.erp['other']"), Value::Null);
        assert_eq!(v("derive('cancel', 'c-9')"), json!(derive_id("c-9", "cancel")));
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
            memo: None,
        };
        assert!(!holds(&parse("event.verdict").expect("parses"), &scope), "only true holds");
    }
}
