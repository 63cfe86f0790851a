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
    #[serde(rename = "transition")]
    transitions: Vec<RawTransition>,
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
    #[serde(default, with = "humantime_serde")]
    timer: Option<Duration>,
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
    /// In file order: the first whose `from`, `on` and guard match is taken.
    pub transitions: Vec<TransitionSpec>,
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
    /// The input spec of contract `contract`.
    pub fn input(&self, contract: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|i| i.contract == contract)
    }
}
