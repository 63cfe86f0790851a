//! Declared state machines: a processor of kind `declared` names a file whose states, inputs and
//! transitions (guards, state updates, emitted records, timers) replace code. Read and checked
//! with the topology (every error at once, [`check`]); drawn as text by `hub topology describe`
//! ([`draw`]); run by the processors crate's interpreter.

mod check;
pub mod draw;
pub mod expr;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub(crate) use check::{load, Surroundings};
pub use expr::{Expr, Op, Root};

/// `from` of a transition that creates the state: the key has none yet.
pub const NEW: &str = "NEW";
/// `on` of a transition fired by the state's timer.
pub const TIMER: &str = "timer";
/// State fields the interpreter keeps itself; the state contract must have them.
pub const MANAGED_FIELDS: [&str; 4] = ["status", "version", "deadline", "applied_event_ids"];
/// A state field the interpreter keeps when the state contract has it: the latest steps.
pub const HISTORY_FIELD: &str = "history";
/// The event type a step caused by the timer records in the history.
pub const TIMER_EVENT_TYPE: &str = "deadline_expired";

/// The shipped order saga's machine file (README, "The order saga, declared").
pub const ORDER_SAGA_MACHINE: &str = "machines/order_saga.toml";

/// Topology text with its one coded order saga run from [`ORDER_SAGA_MACHINE`] instead (the
/// README's one-line switch); `None` unless the text has exactly one coded order saga.
pub fn order_saga_declared(topology: &str) -> Option<String> {
    let coded = "\nkind = \"order_saga\"\n";
    (topology.matches(coded).count() == 1)
        .then(|| topology.replacen(coded, &format!("{coded}machine = \"{ORDER_SAGA_MACHINE}\"\n"), 1))
}

/// A value of a declared processor's `params.values`: a text (numbers and booleans are read
/// as their text), or a table of texts read as `param.name[key]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Text(String),
    Table(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Integer(i64),
            Float(f64),
            Boolean(bool),
            Table(BTreeMap<String, String>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(s) => ParamValue::Text(s),
            Raw::Integer(i) => ParamValue::Text(i.to_string()),
            Raw::Float(f) => ParamValue::Text(f.to_string()),
            Raw::Boolean(b) => ParamValue::Text(b.to_string()),
            Raw::Table(t) => ParamValue::Table(t),
        })
    }
}

impl ParamValue {
    /// The text of a plain value.
    pub fn text(&self) -> Option<&str> {
        match self {
            ParamValue::Text(s) => Some(s),
            ParamValue::Table(_) => None,
        }
    }
}

/// A machine file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    #[serde(default)]
    doc: String,
    /// The state contract.
    state: String,
    states: Vec<String>,
    terminal: Vec<String>,
    #[serde(rename = "input")]
    inputs: Vec<RawInput>,
    /// Named expressions, read as `def.<name>` (and replaced by their text when checked).
    #[serde(default)]
    define: BTreeMap<String, String>,
    /// Events refused (dead-lettered, the state untouched) before any transition is tried.
    #[serde(default, rename = "refuse")]
    refusals: Vec<RawRefuse>,
    #[serde(rename = "transition")]
    transitions: Vec<RawTransition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRefuse {
    on: String,
    /// The states it applies in (every state but NEW when absent; NEW: a key with no state).
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    when: Option<String>,
    /// Why: the dead letter's cause.
    reason: String,
    /// A label counting these refusals apart (`hub_processor_foreign_results_total`).
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    doc: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    contract: String,
    /// The field holding the key of the state the event applies to.
    key: String,
    /// The field holding the event's id (a repeat is recognised by it).
    id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransition {
    from: String,
    on: String,
    to: String,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    doc: String,
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// A duration (`14d`) or a duration the processor's params give (`param.dispatch_deadline`).
    #[serde(default)]
    timer: Option<String>,
    /// States passed through on the way to `to`, recorded in the history.
    #[serde(default)]
    via: Vec<String>,
    /// The history's detail of the step into a state (of `via` or `to`): state → expression.
    #[serde(default)]
    history: BTreeMap<String, String>,
    #[serde(default, rename = "emit")]
    emits: Vec<RawEmit>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmit {
    contract: String,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    /// Fields holding a JSON document (a webhook's `payload_json`): member name → expression.
    #[serde(default)]
    json: BTreeMap<String, BTreeMap<String, String>>,
}

/// An expression with the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub text: String,
    pub expr: Expr,
}

/// A declared machine, checked against the topology's contracts.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineSpec {
    /// The file it was read from.
    pub path: PathBuf,
    pub doc: String,
    /// The state contract.
    pub state: String,
    pub states: Vec<String>,
    pub terminal: BTreeSet<String>,
    pub inputs: Vec<InputSpec>,
    /// In file order, tried before the transitions: the first that matches refuses the event.
    pub refusals: Vec<RefuseSpec>,
    /// In file order: the first whose `from`, `on` and guard match is taken.
    pub transitions: Vec<TransitionSpec>,
    /// Whether the state contract has a history the interpreter keeps.
    pub history: bool,
    /// The status the history records before the first step: the status enum's default, or NEW.
    pub initial: String,
}

/// A refusal: in these states, on this event, when the guard holds, the event is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct RefuseSpec {
    pub on: String,
    /// Empty: every state but NEW (a key with no state is refused only when NEW is listed).
    pub from: Vec<String>,
    pub when: Option<Source>,
    pub reason: Source,
    pub kind: Option<String>,
    pub doc: String,
}

/// An input contract, with the fields holding its key and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub contract: String,
    pub key: String,
    pub id: String,
}

/// One transition.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionSpec {
    pub from: String,
    /// An input contract, or [`TIMER`].
    pub on: String,
    pub to: String,
    pub when: Option<Source>,
    pub doc: String,
    /// State fields set, in order (later ones see earlier ones through `state.`).
    pub set: Vec<(String, Source)>,
    /// The timer the new state waits for, from the processing clock.
    pub timer: Option<Duration>,
    /// States passed through before `to`.
    pub via: Vec<String>,
    /// The history's detail of the step into a state.
    pub history: Vec<(String, Source)>,
    pub emits: Vec<EmitSpec>,
}

/// A record a transition writes.
#[derive(Debug, Clone, PartialEq)]
pub struct EmitSpec {
    pub contract: String,
    pub fields: Vec<(String, Value)>,
}

/// How an emitted field is made.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Expr(Source),
    /// A JSON document, as text, of these members.
    Json(Vec<(String, Source)>),
}

impl MachineSpec {
    /// Every expression of the machine: refusals', then transitions' (guards, sets, history
    /// details, emitted fields and JSON members).
    pub fn expressions(&self) -> impl Iterator<Item = &Expr> {
        let refusals = self.refusals.iter().flat_map(|r| r.when.iter().chain(std::iter::once(&r.reason)));
        let transitions = self.transitions.iter().flat_map(|t| {
            let emitted = t.emits.iter().flat_map(|e| e.fields.iter()).flat_map(|(_, v)| match v {
                Value::Expr(source) => vec![source],
                Value::Json(members) => members.iter().map(|(_, s)| s).collect(),
            });
            t.when.iter().chain(t.set.iter().map(|(_, s)| s)).chain(t.history.iter().map(|(_, s)| s)).chain(emitted)
        });
        refusals.chain(transitions).map(|source| &source.expr)
    }

    /// The input spec of contract `contract`.
    pub fn input(&self, contract: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|i| i.contract == contract)
    }
}
