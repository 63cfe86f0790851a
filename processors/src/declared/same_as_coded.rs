//! The declared order saga (`machines/order_saga.toml`) against the coded one, event by event:
//! for any sequence of orders, results (right, foreign, repeated, late) and timers, both take
//! the same step, refuse with the same reason and metric kind, and write the same bytes: the
//! state and every emitted record are encoded with their contracts and compared as Avro values.
//! States are read back through their contract now and then, as after a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apache_avro::schema::Schema;
use interchange_core::contract::{avro_to_json, json_to_avro, UnknownFields};
use interchange_core::topology::Topology;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::{Declared, Limits};
use crate::machine::{Machine, Millis, Now, Step};
use crate::saga::{self, OrderSaga};

/// The shipped topology with its order saga run from its file (the README's one-line switch),
/// and its contracts.
fn declared() -> (Declared, BTreeMap<String, Schema>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("topology.toml")).expect("the shipped topology");
    let text = interchange_core::topology::machine::order_saga_declared(&text)
        .expect("one coded order saga")
        .replace("schemas_dir = \"schemas\"", &format!("schemas_dir = \"{}\"", root.join("schemas").display()))
        .replace("machine = \"machines/", &format!("machine = \"{}/machines/", root.display()));
    let dir = std::env::temp_dir().join(format!("interchange-declared-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let path = dir.join("topology.toml");
    std::fs::write(&path, text).expect("written");
    let topology = Topology::load(&path, "").unwrap_or_else(|e| panic!("the declared order saga is checked: {e}"));
    let processor = topology.processors.iter().find(|p| p.name == "order-saga").expect("order-saga");
    let (_, values) = processor.params.machine().expect("run from its file");
    let machine = Declared::new(processor.machine.clone().expect("read"), values, LIMITS);
    let schemas = topology.contracts.iter().map(|(n, c)| (n.clone(), c.schema.clone())).collect();
    (machine, schemas)
}

const LIMITS: Limits = Limits { applied: 8, history: 6 };

fn coded() -> OrderSaga {
    OrderSaga::new(saga::Params {
        erp_partner: "acme-erp".into(),
        erp_partner_by_shop: [("globex-shop".to_owned(), "globex-erp".to_owned())].into(),
        discount_percent: 5,
        discount_min_total: saga::Money(50_000),
        dispatch_deadline_ms: 300_000,
        history_limit: LIMITS.history,
        applied_limit: LIMITS.applied,
    })
}

/// A line: SKU, quantity, price.
type Line = (u8, i32, u8);

#[derive(Debug, Clone)]
enum Input {
    Order {
        id: u8,
        shop: u8,
        lines: Vec<Line>,
        currency: u8,
    },
    /// `command`: 0 the order's dispatch, 1 its cancel, 2 another; `kind`: dispatch, cancel,
    /// notification; `from`: the partner the dispatch went to, acme-erp, globex-erp, the shop.
    Result {
        id: u8,
        command: u8,
        kind: u8,
        from: u8,
        outcome: u8,
        extras: bool,
    },
    Timer {
        late: bool,
    },
    /// Both states read back through the state contract, as after a restart.
    Restart,
}

/// An order, mostly one the saga takes: lines of A, B or C (C has no stock level), prices
/// of 7.00, 250.00, 0.00 and now and then -1.00 or the largest amount a contract carries.
fn an_order() -> impl Strategy<Value = Input> {
    let quantity = prop_oneof![8 => 1..4_i32, 1 => -1..1_i32];
    let price = prop_oneof![8 => 0..3_u8, 1 => 3..5_u8];
    let sku = prop_oneof![4 => Just(0_u8), 4 => Just(1_u8), 1 => Just(2_u8)];
    let line = (sku, quantity, price);
    let lines = prop_oneof![12 => proptest::collection::vec(line, 1..4), 1 => Just(Vec::new())];
    let currency = prop_oneof![8 => Just(0_u8), 1 => 1..4_u8];
    (0..3_u8, 0..3_u8, lines, currency).prop_map(|(id, shop, lines, currency)| Input::Order {
        id,
        shop,
        lines,
        currency,
    })
}

/// A result, mostly for the order's dispatch (or cancel), as it was sent, from where it went.
fn a_result() -> impl Strategy<Value = Input> {
    let command = prop_oneof![6 => Just(0_u8), 3 => Just(1_u8), 1 => Just(2_u8)];
    let kind = prop_oneof![6 => Just(None), 1 => (0..3_u8).prop_map(Some)];
    let from = prop_oneof![8 => Just(0_u8), 1 => 1..4_u8];
    (0..4_u8, command, kind, from, 0..4_u8, any::<bool>()).prop_map(|(id, command, kind, from, outcome, extras)| {
        let kind = kind.unwrap_or(command.min(1));
        Input::Result { id, command, kind, from, outcome, extras }
    })
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => an_order(),
        5 => a_result(),
        2 => any::<bool>().prop_map(|late| Input::Timer { late }),
        1 => Just(Input::Restart),
    ]
}

fn order(id: u8, shop: u8, lines: &[Line], currency: u8, at: i64) -> Value {
    let prices = ["7.00", "250.00", "0.00", "-1.00", "9999999999999999.99"];
    let items: Vec<Value> = lines
        .iter()
        .map(|(sku, qty, price)| {
            let (sku, price) = (["A", "B", "C"][usize::from(*sku)], prices[usize::from(*price)]);
            json!({"sku": sku, "quantity": qty, "unit_price": price})
        })
        .collect();
    let partner = ["acme-shop", "globex-shop", "initech-shop"][usize::from(shop)];
    let currency = ["EUR", "BRL", "eur", "EURO"][usize::from(currency)];
    json!({
        "event_id": format!("order-{id}"), "correlation_id": "c-1", "order_id": format!("O-{id}"),
        "partner": partner, "customer_id": "cu-1",
        "items": items, "currency": currency, "channel": "WEB",
        "callback_url": if shop == 1 { json!("https://shop.example/cb") } else { Value::Null },
        "received_at": at, "attributes": {},
    })
}

/// Encodes `json` with `contract`, as the runtime writes it.
fn encoded(schemas: &BTreeMap<String, Schema>, contract: &str, json: &Value) -> apache_avro::types::Value {
    let schema = schemas.get(contract).unwrap_or_else(|| panic!("no contract {contract}"));
    json_to_avro(schema, json, UnknownFields::Ignore)
        .unwrap_or_else(|v| panic!("{contract} cannot carry {json}: {v:?}"))
}

/// What a step did, comparable across the two machines.
#[derive(Debug, PartialEq)]
enum Seen {
    Changed { state: apache_avro::types::Value, emits: Vec<(String, String, apache_avro::types::Value)> },
    Unchanged,
    Refused { reason: String, kind: Option<String> },
}

fn seen<S>(step: Step<S>, schemas: &BTreeMap<String, Schema>, write: impl Fn(&S) -> Value) -> (Seen, Option<S>) {
    match step {
        Step::Changed { state, emits } => {
            let emits =
                emits.iter().map(|e| (e.contract.clone(), e.id.clone(), encoded(schemas, &e.contract, &e.value)));
            let seen = Seen::Changed { state: encoded(schemas, "order_state", &write(&state)), emits: emits.collect() };
            (seen, Some(state))
        }
        Step::Unchanged { .. } => (Seen::Unchanged, None),
        Step::Refused { reason, kind } => (Seen::Refused { reason, kind }, None),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn the_declared_order_saga_writes_what_the_coded_one_writes(
        first in an_order(),
        inputs in proptest::collection::vec(input(), 0..20),
        stock in (0..6_i64, 0..6_i64),
    ) {
        let (declared, schemas) = declared();
        let coded = coded();
        let table: HashMap<String, Arc<Value>> =
            [("A", stock.0), ("B", stock.1)].into_iter().map(|(s, n)| (s.to_owned(), Arc::new(json!({"sku": s, "available": n})))).collect();
        let mut ours: Option<Value> = None;
        let mut theirs: Option<saga::OrderState> = None;
        let mut now = 1_000_000_i64;
        for input in std::iter::once(first).chain(inputs) {
            now += 1_000;
            let (contract, value, id) = match input {
                Input::Order { id, shop, lines, currency } => {
                    ("order_received", order(id, shop, &lines, currency, now), format!("order-{id}"))
                }
                Input::Result { id, command, kind, from, outcome, extras } => {
                    let command_id = match (&theirs, command) {
                        (Some(s), 0) => s.dispatch_command_id.clone(),
                        (Some(s), 1) => s.cancel_command_id.clone(),
                        _ => None,
                    }.unwrap_or_else(|| "0f6e4a62-7f6b-4f0c-9c8e-2a4d7e1b3c5d".to_owned());
                    let sent_to = theirs.as_ref().and_then(|s| s.dispatch_partner.clone()).unwrap_or_else(|| "acme-erp".into());
                    let shop = theirs.as_ref().map_or_else(|| "acme-shop".to_owned(), |s| s.partner.clone());
                    let partner = [sent_to, "acme-erp".into(), "globex-erp".into(), shop][usize::from(from)].clone();
                    let command_type = ["dispatch_command", "cancel_command", "notification_command"][usize::from(kind)];
                    let outcome = ["DELIVERED", "REFUSED", "EXHAUSTED", "EXPIRED"][usize::from(outcome)];
                    let value = json!({
                        "event_id": format!("result-{id}"), "command_id": command_id, "correlation_id": "c-1",
                        "partner": partner,
                        "command_type": command_type,
                        "outcome": outcome,
                        "http_status": if extras { json!(422) } else { Value::Null },
                        "partner_reference": if extras { json!("ERP-7") } else { Value::Null },
                        "attempts": if extras { 3 } else { 1 },
                        "detail": if extras { json!("no such SKU") } else { Value::Null },
                        "completed_at": now,
                    });
                    ("delivery_result", value, format!("result-{id}"))
                }
                Input::Timer { late } => {
                    let pending = (declared.deadline_of(ours.as_ref()), theirs.as_ref().and_then(|s| coded.deadline(s)));
                    prop_assert_eq!(pending.0, pending.1, "the same timer is pending");
                    let Some(deadline) = pending.1 else { continue };
                    let at = Now { event: Millis(now), processing: Millis(if late { deadline.0 } else { deadline.0 - 1 }) };
                    let timers = (declared.timer("c-1", deadline, ours.as_ref()), coded.timer("c-1", deadline, theirs.as_ref()));
                    let (Some((ours_timer, ours_id)), Some((theirs_timer, theirs_id))) = timers else {
                        prop_assert!(timers.0.is_none() && timers.1.is_none(), "both fire or neither");
                        continue;
                    };
                    prop_assert_eq!(&ours_id, &theirs_id, "the timer's event id");
                    let a = declared.apply("c-1", ours.as_ref(), &ours_timer, &ours_id, at, &table);
                    let b = coded.apply("c-1", theirs.as_ref(), &theirs_timer, &theirs_id, at, &table);
                    let (a, next_ours) = seen(a, &schemas, Clone::clone);
                    let (b, next_theirs) = seen(b, &schemas, |s| coded.write_state(s).expect("writes").into_owned());
                    prop_assert_eq!(&a, &b, "on the timer at {:?}", at);
                    if next_ours.is_some() { ours = next_ours; theirs = next_theirs; }
                    continue;
                }
                Input::Restart => {
                    let schema = &schemas["order_state"];
                    if let (Some(a), Some(b)) = (&ours, &theirs) {
                        let a = avro_to_json(schema, &encoded(&schemas, "order_state", a));
                        let b = avro_to_json(schema, &encoded(&schemas, "order_state", &coded.write_state(b).expect("writes")));
                        ours = Some(declared.read_state(a).expect("reads"));
                        theirs = Some(coded.read_state(b).expect("reads"));
                    }
                    continue;
                }
            };
            let at = Now { event: Millis(now - 500), processing: Millis(now) };
            let ours_input = declared.read(contract, value.clone()).expect("the declared machine reads it");
            let theirs_input = coded.read(contract, value).expect("the coded saga reads it");
            prop_assert_eq!(&ours_input.id, &theirs_input.id);
            let a = declared.apply("c-1", ours.as_ref(), &ours_input.event, &id, at, &table);
            let b = coded.apply("c-1", theirs.as_ref(), &theirs_input.event, &id, at, &table);
            let (a, next_ours) = seen(a, &schemas, Clone::clone);
            let (b, next_theirs) = seen(b, &schemas, |s| coded.write_state(s).expect("writes").into_owned());
            prop_assert_eq!(&a, &b, "on {} {}", contract, id);
            if next_ours.is_some() {
                ours = next_ours;
                theirs = next_theirs;
            }
        }
    }
}

impl Declared {
    fn deadline_of(&self, state: Option<&Value>) -> Option<Millis> {
        state.and_then(|s| self.deadline(s))
    }
}

#[test]
fn the_declared_order_saga_takes_each_path() {
    // A guard against a differential test that compares nothing: the generator reaches every
    // kind of step on both machines, checked on fixed sequences.
    let (declared, _) = declared();
    let table: HashMap<String, Arc<Value>> = [("A".to_owned(), Arc::new(json!({"available": 5})))].into();
    let at = Now { event: Millis(10), processing: Millis(10) };
    let step = |state: Option<&Value>, contract: &str, value: Value, id: &str| {
        let input = declared.read(contract, value).expect("reads");
        declared.apply("c-1", state, &input.event, id, at, &table)
    };
    let Step::Changed { state, emits } = step(None, "order_received", order(1, 1, &[(0, 2, 1)], 0, 10), "order-1")
    else {
        panic!("validated")
    };
    assert_eq!(state["status"], "VALIDATED");
    assert_eq!(
        (&state["subtotal"], &state["discount"], &state["total"]),
        (&json!("500.00"), &json!("25.00"), &json!("475.00"))
    );
    let contracts: Vec<&str> = emits.iter().map(|e| e.contract.as_str()).collect();
    assert_eq!(contracts, ["order_validated", "dispatch_command"]);
    assert_eq!(emits[1].value["partner"], "globex-erp");
}
