//! The interpreter of declared machines (`kind = "declared"`): a [`Machine`] whose states,
//! transitions, guards, emitted records and timers come from a file the topology names
//! (`core::topology::machine`), over JSON states shaped like the state contract.
//!
//! The state's `status`, `version`, `deadline` and `applied_event_ids` are kept here: a
//! transition sets the status to its `to`, counts the version (one per step: its `via` states,
//! then `to`), starts (or clears) the timer and remembers the event id, so a repeated event
//! changes nothing. When the state contract has a `history`, each step is recorded there
//! (bounded). `[[refuse]]`s are tried first: a refused event is dead-lettered, the state untouched.

mod eval;

use std::collections::BTreeMap;
use std::sync::Arc;

use interchange_core::clock::duration_millis;
use interchange_core::topology::machine::{
    MachineSpec, ParamValue, TransitionSpec, Value as Mapped, NEW, TIMER, TIMER_EVENT_TYPE,
};
use serde_json::{Map, Value};

use crate::machine::{Emit, Input, Lookup, Machine, Millis, Now, Step};
use eval::{derive_id, eval, holds, stateless_definitions, Memo, Scope};

/// An event of a declared machine: an input record, or its timer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DeclaredEvent {
    Input { contract: String, value: Value },
    Timer { deadline: Millis },
}

/// How many event ids and history steps a state keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) applied: usize,
    pub(crate) history: usize,
}

/// A declared machine, its parameters and its limits.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    spec: Arc<MachineSpec>,
    /// The processor's `params.values`, read as `param.<name>`.
    params: BTreeMap<String, ParamValue>,
    limits: Limits,
    /// The definitions whose value reads no state: evaluated once per event.
    stateless: std::collections::HashSet<String>,
}

impl Declared {
    pub(crate) fn new(spec: Arc<MachineSpec>, params: BTreeMap<String, ParamValue>, limits: Limits) -> Self {
        let limits = Limits { applied: limits.applied.max(1), history: limits.history };
        let stateless = stateless_definitions(spec.expressions());
        Self { spec, params, limits, stateless }
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
        let steps = self.steps(current, t, scope, &state);
        let Some(object) = state.as_object_mut() else { return state };
        let version = object.get("version").and_then(Value::as_i64).unwrap_or(0);
        let counted = i64::try_from(t.via.len()).unwrap_or(i64::MAX).saturating_add(1);
        object.insert("status".to_owned(), Value::String(t.to.clone()));
        object.insert("version".to_owned(), Value::from(version.saturating_add(counted)));
        if let Some(steps) = steps {
            let mut history = match object.remove("history") {
                Some(Value::Array(history)) => history,
                _ => Vec::new(),
            };
            history.extend(steps);
            let excess = history.len().saturating_sub(self.limits.history);
            history.drain(..excess);
            object.insert("history".to_owned(), Value::Array(history));
        }
        let deadline = t.timer.map(|d| Value::from(now.processing.0.saturating_add(duration_millis(d))));
        object.insert("deadline".to_owned(), deadline.unwrap_or(Value::Null));
        let mut ids = match object.remove("applied_event_ids") {
            Some(Value::Array(ids)) => ids,
            _ => Vec::new(),
        };
        ids.push(Value::String(scope.event_id.to_owned()));
        let excess = ids.len().saturating_sub(self.limits.applied);
        ids.drain(..excess);
        object.insert("applied_event_ids".to_owned(), Value::Array(ids));
        state
    }

    /// The history's records of `t`'s steps (none when the state has no history): each step's
    /// detail is evaluated on the new state with the transition's sets applied.
    fn steps(
        &self,
        current: Option<&Value>,
        t: &TransitionSpec,
        scope: &Scope<'_>,
        next: &Value,
    ) -> Option<Vec<Value>> {
        if !self.spec.history {
            return None;
        }
        let mut from = current.map_or(self.spec.initial.as_str(), Self::status).to_owned();
        let event_type = match scope.event {
            None => TIMER_EVENT_TYPE,
            Some(_) => t.on.as_str(),
        };
        let detail_scope = Scope { state: Some(next), ..*scope };
        let mut out = Vec::with_capacity(t.via.len() + 1);
        for to in t.via.iter().chain(std::iter::once(&t.to)) {
            let detail =
                t.history.iter().find(|(s, _)| s == to).map_or(Value::Null, |(_, d)| eval(&d.expr, &detail_scope));
            let mut step = Map::new();
            step.insert("from".to_owned(), Value::String(from));
            step.insert("to".to_owned(), Value::String(to.clone()));
            step.insert("event_id".to_owned(), Value::String(scope.event_id.to_owned()));
            step.insert("event_type".to_owned(), Value::String(event_type.to_owned()));
            step.insert("at".to_owned(), Value::from(scope.now));
            step.insert("detail".to_owned(), detail);
            out.push(Value::Object(step));
            from = to.clone();
        }
        Some(out)
    }

    /// The first `[[refuse]]` that matches, as a refusal.
    fn refused(&self, from: &str, on: &str, scope: &Scope<'_>) -> Option<Step<Value>> {
        let r = self.spec.refusals.iter().find(|r| {
            r.on == on
                && (if r.from.is_empty() { from != NEW } else { r.from.iter().any(|f| f == from) })
                && r.when.as_ref().is_none_or(|w| holds(&w.expr, scope))
        })?;
        let reason = match eval(&r.reason.expr, scope) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        Some(Step::Refused { reason, kind: r.kind.clone() })
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

    /// A state as read back from the state topic; its deadline (a `timestamp-millis`, which
    /// the topic gives back as an RFC 3339 text) becomes epoch milliseconds again, as written.
    fn read_state(&self, mut value: Value) -> Result<Value, String> {
        let Some(object) = value.as_object_mut() else {
            return Err(format!("a state of {} is not a record", self.spec.state));
        };
        if let Some(deadline) = millis(object.get("deadline")) {
            object.insert("deadline".to_owned(), Value::from(deadline));
        }
        Ok(value)
    }

    /// The state as it is: it is already shaped like its contract.
    fn write_state<'s>(&self, state: &'s Value) -> Result<std::borrow::Cow<'s, Value>, String> {
        Ok(std::borrow::Cow::Borrowed(state))
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
        let memo = Memo::new(&self.stateless);
        let scope = Scope {
            event: payload,
            state,
            key,
            event_id,
            now: now.event.0,
            lookup,
            params: &self.params,
            memo: Some(&memo),
        };
        if let Some(refusal) = self.refused(from, on, &scope) {
            return refusal;
        }
        let terminal = state.is_some() && self.spec.terminal.contains(from);
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
            if terminal {
                return Step::Unchanged { reason: "already in a terminal state" };
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
mod same_as_coded;
#[cfg(test)]
mod tests;
