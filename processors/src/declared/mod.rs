//! The interpreter of declared machines (`kind = "declared"`): a [`Machine`] whose states,
//! transitions, guards, emitted records and timers come from a file the topology names
//! (`core::topology::machine`), over JSON states shaped like the state contract.
//!
//! The state's `status`, `version`, `deadline` and `applied_event_ids` are kept here: a
//! transition sets the status to its `to`, counts the version, starts (or clears) the timer and
//! remembers the event id, so a repeated event changes nothing.

mod eval;

use std::collections::BTreeMap;
use std::sync::Arc;

use interchange_core::clock::duration_millis;
use interchange_core::topology::machine::{MachineSpec, TransitionSpec, Value as Mapped, NEW, TIMER};
use serde_json::{Map, Value};

use crate::machine::{Emit, Input, Lookup, Machine, Millis, Now, Step};
use eval::{derive_id, eval, holds, Scope};

/// An event of a declared machine: an input record, or its timer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DeclaredEvent {
    Input { contract: String, value: Value },
    Timer { deadline: Millis },
}

/// A declared machine and how many event ids a state remembers.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    spec: Arc<MachineSpec>,
    /// The processor's `params.values`, read as `param.<name>`.
    params: BTreeMap<String, String>,
    applied_limit: usize,
}

impl Declared {
    pub(crate) fn new(spec: Arc<MachineSpec>, params: BTreeMap<String, String>, applied_limit: usize) -> Self {
        Self { spec, params, applied_limit: applied_limit.max(1) }
    }

    fn status(state: &Value) -> &str {
        state.get("status").and_then(Value::as_str).unwrap_or("")
    }

    fn applied(state: &Value, event_id: &str) -> bool {
        state
            .get("applied_event_ids")
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(event_id)))
    }

    /// The new state: `current` (or an empty one) with `t.set` applied in order, then the
    /// managed fields.
    fn next(&self, current: Option<&Value>, t: &TransitionSpec, scope: &Scope<'_>, now: Now) -> Value {
        let mut state = current.cloned().unwrap_or_else(|| Value::Object(Map::new()));
        for (field, source) in &t.set {
            let value = eval(&source.expr, &Scope { state: Some(&state), ..*scope });
            if let Some(object) = state.as_object_mut() {
                object.insert(field.clone(), value);
            }
        }
        let Some(object) = state.as_object_mut() else { return state };
        let version = object.get("version").and_then(Value::as_i64).unwrap_or(0);
        object.insert("status".to_owned(), Value::String(t.to.clone()));
        object.insert("version".to_owned(), Value::from(version.saturating_add(1)));
        let deadline = t.timer.map(|d| Value::from(now.processing.0.saturating_add(duration_millis(d))));
        object.insert("deadline".to_owned(), deadline.unwrap_or(Value::Null));
        let mut ids: Vec<Value> =
            object.get("applied_event_ids").and_then(Value::as_array).cloned().unwrap_or_default();
        ids.push(Value::String(scope.event_id.to_owned()));
        let excess = ids.len().saturating_sub(self.applied_limit);
        ids.drain(..excess);
        object.insert("applied_event_ids".to_owned(), Value::Array(ids));
        state
    }

    /// The records `t` emits, made from the new state.
    fn emits(t: &TransitionSpec, scope: &Scope<'_>) -> Vec<Emit> {
        t.emits
            .iter()
            .map(|emit| {
                let mut record = Map::new();
                for (field, mapped) in &emit.fields {
                    let value = match mapped {
                        Mapped::Expr(source) => eval(&source.expr, scope),
                        Mapped::Json(members) => {
                            let doc: Map<String, Value> =
                                members.iter().map(|(m, s)| (m.clone(), eval(&s.expr, scope))).collect();
                            Value::String(Value::Object(doc).to_string())
                        }
                    };
                    record.insert(field.clone(), value);
                }
                let id = ["command_id", "event_id"]
                    .iter()
                    .find_map(|f| record.get(*f).and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| derive_id(scope.event_id, &emit.contract));
                Emit { contract: emit.contract.clone(), id, value: Value::Object(record) }
            })
            .collect()
    }
}

/// A time field as epoch milliseconds: the processor writes numbers, and states read back from
/// the state topic hold `timestamp-millis` as RFC 3339 texts.
fn millis(value: Option<&Value>) -> Option<i64> {
    let value = value.filter(|v| !v.is_null())?;
    serde_json::from_value::<Millis>(value.clone()).ok().map(|m| m.0)
}

fn field<'v>(value: &'v Value, name: &str, contract: &str) -> Result<&'v str, String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{contract} has no {name} to key or identify it by"))
}

impl Machine for Declared {
    type State = Value;
    type Event = DeclaredEvent;

    fn state_contract(&self) -> &str {
        &self.spec.state
    }

    fn read(&self, contract: &str, value: Value) -> Result<Input<DeclaredEvent>, String> {
        let Some(input) = self.spec.input(contract) else {
            return Err(format!("record type {contract} is not an input of this machine"));
        };
        let key = field(&value, &input.key, contract)?.to_owned();
        let id = field(&value, &input.id, contract)?.to_owned();
        Ok(Input { event: DeclaredEvent::Input { contract: contract.to_owned(), value }, id, key })
    }

    fn read_state(&self, value: Value) -> Result<Value, String> {
        if value.is_object() {
            Ok(value)
        } else {
            Err(format!("a state of {} is not a record", self.spec.state))
        }
    }

    fn write_state(&self, state: &Value) -> Result<Value, String> {
        Ok(state.clone())
    }

    fn apply(
        &self,
        key: &str,
        state: Option<&Value>,
        event: &DeclaredEvent,
        event_id: &str,
        now: Now,
        lookup: &dyn Lookup,
    ) -> Step<Value> {
        if state.is_some_and(|s| Self::applied(s, event_id)) {
            return Step::Unchanged { reason: "event already applied" };
        }
        let from = state.map_or(NEW, Self::status);
        if state.is_some() && self.spec.terminal.contains(from) {
            return Step::Unchanged { reason: "already in a terminal state" };
        }
        let (on, payload) = match event {
            DeclaredEvent::Input { contract, value } => (contract.as_str(), Some(value)),
            DeclaredEvent::Timer { deadline } => {
                let pending = millis(state.and_then(|s| s.get("deadline")));
                if pending != Some(deadline.0) || now.processing < *deadline {
                    return Step::Unchanged { reason: "timer no longer pending" };
                }
                (TIMER, None)
            }
        };
        let scope = Scope { event: payload, state, key, event_id, now: now.event.0, lookup, params: &self.params };
        let mut candidates = self.spec.transitions.iter().filter(|t| t.from == from && t.on == on).peekable();
        if candidates.peek().is_none() && state.is_none() {
            return Step::Refused { reason: format!("{on} for a key this processor has never seen"), kind: None };
        }
        let Some(t) = candidates.find(|t| t.when.as_ref().is_none_or(|w| holds(&w.expr, &scope))) else {
            if state.is_none() {
                return Step::Refused {
                    reason: format!("{on} starts nothing: no transition from {NEW} on it has a guard that holds"),
                    kind: None,
                };
            }
            return Step::Unchanged {
                reason: "no transition from the state on this event (or none whose guard holds)",
            };
        };
        let next = self.next(state, t, &scope, now);
        let emits = Self::emits(t, &Scope { state: Some(&next), ..scope });
        Step::Changed { state: next, emits }
    }

    fn deadline(&self, state: &Value) -> Option<Millis> {
        if self.spec.terminal.contains(Self::status(state)) {
            return None;
        }
        millis(state.get("deadline")).map(Millis)
    }

    fn timer(&self, key: &str, deadline: Millis, state: Option<&Value>) -> Option<(DeclaredEvent, String)> {
        let id = derive_id(key, &format!("deadline/{}", deadline.0));
        if state.is_some_and(|s| Self::applied(s, &id)) {
            return None;
        }
        Some((DeclaredEvent::Timer { deadline }, id))
    }

    fn terminal(&self, state: &Value) -> bool {
        self.spec.terminal.contains(Self::status(state))
    }

    fn status<'s>(&self, state: &'s Value) -> &'s str {
        Self::status(state)
    }
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
