//! Reads a machine file and checks it against the processor's topics and contracts, reporting
//! every problem at once: unknown or unreachable states, transitions out of terminal states,
//! dead ends, timers that never fire or have no expiry transition, guards and mappings naming
//! fields the contracts lack, emitted records missing a required field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use apache_avro::schema::{Name, ResolvedSchema, Schema};

mod expressions;

use super::types::{self, Kind, Typed};
use super::{
    EmitSpec, InputSpec, MachineSpec, ParamValue, RawEmit, RawMachine, RawRefuse, RawTransition, RefuseSpec, Source,
    TransitionSpec, Value, HISTORY_FIELD, MANAGED_FIELDS, NEW, TIMER,
};
use crate::topology::error::TopologyError;
use crate::topology::model::Contract;

/// What a machine is checked against: its processor's name and the contracts its topics carry.
#[derive(Debug)]
pub struct Surroundings<'a> {
    pub processor: &'a str,
    pub contracts: &'a BTreeMap<String, Contract>,
    /// Contracts carried by the processor's input topics.
    pub inputs: BTreeSet<String>,
    /// Contracts carried by its output topics.
    pub outputs: BTreeSet<String>,
    /// Contracts carried by its state topic.
    pub state: BTreeSet<String>,
    /// The contract of its (first) lookup topic, if it has one.
    pub lookup: Option<String>,
    /// Its `params.values`: what `param.<name>` reads.
    pub params: &'a BTreeMap<String, ParamValue>,
}

/// Reads the machine at `path` and checks it; every problem is one error naming the processor,
/// the file and the place in it.
pub fn load(path: &Path, around: &Surroundings<'_>) -> Result<MachineSpec, Vec<TopologyError>> {
    let error = |at: &str, reason: String| TopologyError::Machine {
        processor: around.processor.to_owned(),
        path: path.to_path_buf(),
        at: at.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| vec![error("file", format!("cannot read: {e}"))])?;
    let raw: RawMachine = toml::from_str(&text).map_err(|e| vec![error("file", e.to_string())])?;
    let mut checker = Checker {
        around,
        problems: Vec::new(),
        names: BTreeMap::new(),
        used: BTreeSet::new(),
        defines: raw.define.clone(),
        defines_used: BTreeSet::new(),
        vars: Vec::new(),
    };
    let spec = checker.machine(path, raw);
    let unused: Vec<&String> = around.params.keys().filter(|n| !checker.used.contains(*n)).collect();
    for name in unused {
        checker.problem("params", format!("the processor's params.values sets {name:?} but no expression reads it"));
    }
    let unused: Vec<String> = checker.defines.keys().filter(|n| !checker.defines_used.contains(*n)).cloned().collect();
    for name in unused {
        checker.problem(format!("define.{name}"), "defined but no expression reads def.".to_owned() + &name);
    }
    if checker.problems.is_empty() {
        Ok(spec)
    } else {
        Err(checker.problems.into_iter().map(|(at, reason)| error(&at, reason)).collect())
    }
}

struct Checker<'a> {
    around: &'a Surroundings<'a>,
    problems: Vec<(String, String)>,
    /// Named types of each contract, for paths through nested records.
    names: BTreeMap<String, std::collections::HashMap<Name, Schema>>,
    /// The `param.<name>`s read.
    used: BTreeSet<String>,
    /// The machine's `[define]`: name → text.
    defines: BTreeMap<String, String>,
    /// The definitions read.
    defines_used: BTreeSet<String>,
    /// The elements bound by the list forms being checked: name, and the contract and schema of
    /// an element when known.
    vars: Vec<(String, Option<(String, Schema)>)>,
}

/// A record's fields: name, schema, whether it has a default.
fn fields(schema: &Schema) -> Vec<(&str, &Schema, bool)> {
    match schema {
        Schema::Record(record) => {
            record.fields.iter().map(|f| (f.name.as_str(), &f.schema, f.default.is_some())).collect()
        }
        _ => Vec::new(),
    }
}

impl Checker<'_> {
    /// Records a problem once (a definition's are found at each use).
    fn problem(&mut self, at: impl Into<String>, reason: impl Into<String>) {
        let problem = (at.into(), reason.into());
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    fn contract(&mut self, name: &str) -> Option<&Contract> {
        let contract = self.around.contracts.get(name)?;
        if !self.names.contains_key(name) {
            let names = ResolvedSchema::try_from(&contract.schema)
                .map(|r| r.get_names().iter().map(|(n, s)| (n.clone(), (*s).clone())).collect())
                .unwrap_or_default();
            self.names.insert(name.to_owned(), names);
        }
        Some(contract)
    }

    fn machine(&mut self, path: &Path, raw: RawMachine) -> MachineSpec {
        let (history, initial) = self.state_contract(&raw.state);
        let states: BTreeSet<&str> = raw.states.iter().map(String::as_str).collect();
        if states.len() != raw.states.len() {
            self.problem("states", "a state is listed twice");
        }
        if states.contains(NEW) {
            self.problem("states", format!("{NEW} is where every key starts, not a state to list"));
        }
        self.status_symbols(&raw);
        for t in raw.terminal.iter().filter(|t| !states.contains(t.as_str())) {
            self.problem("terminal", format!("{t:?} is not one of the states"));
        }
        let inputs = self.inputs(&raw);
        let refusals = raw.refusals.iter().enumerate().filter_map(|(i, r)| self.refusal(i, r, &raw, &states)).collect();
        let transitions: Vec<TransitionSpec> =
            raw.transitions.iter().enumerate().filter_map(|(i, t)| self.transition(i, t, &raw, &states)).collect();
        self.graph(&raw);
        MachineSpec {
            path: path.to_path_buf(),
            doc: raw.doc.clone(),
            state: raw.state.clone(),
            states: raw.states.clone(),
            terminal: raw.terminal.iter().cloned().collect(),
            inputs,
            refusals,
            transitions,
            history,
            initial,
        }
    }

    fn refusal(
        &mut self,
        index: usize,
        raw_r: &RawRefuse,
        raw: &RawMachine,
        states: &BTreeSet<&str>,
    ) -> Option<RefuseSpec> {
        let at = format!("refuse {} (on {})", index + 1, raw_r.on);
        let before = self.problems.len();
        if !raw.inputs.iter().any(|i| i.contract == raw_r.on) {
            self.problem(&at, format!("on {:?} is not an [[input]] contract (a timer is never refused)", raw_r.on));
        }
        for from in raw_r.from.iter().filter(|f| !states.contains(f.as_str()) && *f != NEW) {
            self.problem(&at, format!("from {from:?} is not one of the states (or {NEW})"));
        }
        if let Some(kind) = &raw_r.kind {
            if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                self.problem(&at, format!("kind {kind:?} is a metric label: lower-case letters and _"));
            }
        }
        // A refusal that may apply to a key with no state reads no state.
        let stateless = raw_r.from.iter().any(|f| f == NEW);
        let state = self.around.state.contains(&raw.state).then_some(raw.state.as_str()).filter(|_| !stateless);
        let event = Some(raw_r.on.as_str()).filter(|on| raw.inputs.iter().any(|i| i.contract == *on));
        let when = raw_r.when.as_ref().and_then(|w| self.expression(&format!("{at}: when"), w, event, state));
        if let Some(w) = &when {
            self.conditions(&format!("{at}: when"), &w.text, &w.expr, event, state);
        }
        let reason = self.expression(&format!("{at}: reason"), &raw_r.reason, event, state);
        let reason = reason.filter(|_| self.problems.len() == before)?;
        Some(RefuseSpec {
            on: raw_r.on.clone(),
            from: raw_r.from.clone(),
            when,
            reason,
            kind: raw_r.kind.clone(),
            doc: raw_r.doc.clone(),
        })
    }

    /// Checks the state contract carries the managed fields; says whether it has a history and
    /// the status the history records before the first step.
    fn state_contract(&mut self, name: &str) -> (bool, String) {
        if !self.around.state.contains(name) {
            self.problem(
                "state",
                format!("the state topic does not carry {name:?} (it carries {:?})", self.around.state),
            );
            return (false, NEW.to_owned());
        }
        let Some(contract) = self.contract(name) else { return (false, NEW.to_owned()) };
        let schema = contract.schema.clone();
        let have: Vec<String> = fields(&schema).into_iter().map(|(n, _, _)| n.to_owned()).collect();
        let initial = fields(&schema)
            .into_iter()
            .find_map(|(n, s, _)| match s {
                Schema::Enum(e) if n == "status" => e.default.clone(),
                _ => None,
            })
            .unwrap_or_else(|| NEW.to_owned());
        let history = have.iter().any(|h| h == HISTORY_FIELD);
        for managed in MANAGED_FIELDS.iter().filter(|m| !have.iter().any(|h| h == *m)) {
            self.problem(
                "state",
                format!(
                    "{name} lacks the field {managed:?}: a declared machine's state carries {} (kept by the processor)",
                    MANAGED_FIELDS.join(", ")
                ),
            );
        }
        (history, initial)
    }

    /// A `status` enum of the state contract has a symbol for every state.
    fn status_symbols(&mut self, raw: &RawMachine) {
        let Some(contract) = self.contract(&raw.state) else { return };
        let status = fields(&contract.schema).into_iter().find(|(n, _, _)| *n == "status").map(|(_, s, _)| s.clone());
        if let Some(Schema::Enum(e)) = status {
            let missing: Vec<&str> = raw.states.iter().filter(|s| !e.symbols.contains(s)).map(String::as_str).collect();
            if !missing.is_empty() {
                let reason = format!("{}'s status enum has no symbol {}", raw.state, missing.join(", "));
                self.problem("states", reason);
            }
        }
    }

    fn inputs(&mut self, raw: &RawMachine) -> Vec<InputSpec> {
        let mut out = Vec::new();
        for (i, input) in raw.inputs.iter().enumerate() {
            let at = format!("input {} ({})", i + 1, input.contract);
            if !self.around.inputs.contains(&input.contract) {
                self.problem(&at, format!("no input topic of the processor carries it ({:?})", self.around.inputs));
                continue;
            }
            for field in [&input.key, &input.id] {
                if let Err(reason) = self.has_path(&input.contract, std::slice::from_ref(field)) {
                    self.problem(&at, reason);
                }
            }
            if !raw.transitions.iter().any(|t| t.on == input.contract) {
                self.problem(&at, "no transition is on it");
            }
            out.push(InputSpec { contract: input.contract.clone(), key: input.key.clone(), id: input.id.clone() });
        }
        for carried in &self.around.inputs {
            if !raw.inputs.iter().any(|i| &i.contract == carried) {
                self.problem("input", format!("the input topics carry {carried} but no [[input]] reads it"));
            }
        }
        out
    }

    fn transition(
        &mut self,
        index: usize,
        raw_t: &RawTransition,
        raw: &RawMachine,
        states: &BTreeSet<&str>,
    ) -> Option<TransitionSpec> {
        let at = format!("transition {} ({} --{}--> {})", index + 1, raw_t.from, raw_t.on, raw_t.to);
        let before = self.problems.len();
        if raw_t.from != NEW && !states.contains(raw_t.from.as_str()) {
            self.problem(&at, format!("from {:?} is not one of the states (or {NEW})", raw_t.from));
        }
        if !states.contains(raw_t.to.as_str()) {
            self.problem(&at, format!("to {:?} is not one of the states", raw_t.to));
        }
        if raw.terminal.contains(&raw_t.from) && (raw_t.to != raw_t.from || !raw_t.via.is_empty()) {
            self.problem(&at, format!("{} is terminal: no transition leaves it (it may only stay)", raw_t.from));
        }
        for via in &raw_t.via {
            if !states.contains(via.as_str()) {
                self.problem(&at, format!("via {via:?} is not one of the states"));
            } else if raw.terminal.contains(via) {
                self.problem(&at, format!("via {via:?} is terminal: a transition cannot pass through it"));
            }
        }
        let timer = raw_t.timer.as_deref().and_then(|t| self.timer(&at, t));
        let event = if raw_t.on == TIMER {
            if raw_t.from == NEW {
                self.problem(&at, format!("a key with no state has no timer: {NEW} is left by an input only"));
            }
            None
        } else if raw.inputs.iter().any(|i| i.contract == raw_t.on) {
            Some(raw_t.on.as_str())
        } else {
            self.problem(&at, format!("on {:?} is neither an [[input]] contract nor {TIMER:?}", raw_t.on));
            None
        };
        if timer.is_some_and(|d| d.is_zero()) {
            self.problem(&at, "timer must be longer than 0s");
        }
        if raw_t.timer.is_some() && raw.terminal.contains(&raw_t.to) {
            self.problem(&at, format!("{} is terminal: a timer there never fires", raw_t.to));
        }
        let state = self.around.state.contains(&raw.state).then_some(raw.state.as_str());
        let current = if raw_t.from == NEW { None } else { state };
        let when = raw_t.when.as_ref().and_then(|w| self.expression(&format!("{at}: when"), w, event, current));
        if let Some(w) = &when {
            self.conditions(&format!("{at}: when"), &w.text, &w.expr, event, current);
        }
        let mut set = Vec::new();
        for (field, text) in &raw_t.set {
            let field_at = format!("{at}: set.{field}");
            if MANAGED_FIELDS.contains(&field.as_str()) || field == HISTORY_FIELD {
                self.problem(&field_at, "kept by the processor, not set by a transition");
            } else if let Some(s) = state {
                if let Err(reason) = self.has_path(s, std::slice::from_ref(field)) {
                    self.problem(&field_at, reason);
                }
            }
            if let Some(source) = self.expression(&field_at, text, event, state) {
                if let Some(s) = state {
                    self.assign(&field_at, s, field, &source, (event, state));
                }
                set.push((field.clone(), source));
            }
        }
        if raw_t.from == NEW {
            if let Some(contract) = state.and_then(|s| self.contract(s)) {
                let missing: Vec<String> = fields(&contract.schema)
                    .into_iter()
                    .filter(|(n, _, default)| {
                        !default && !MANAGED_FIELDS.contains(n) && *n != HISTORY_FIELD && !raw_t.set.contains_key(*n)
                    })
                    .map(|(n, _, _)| n.to_owned())
                    .collect();
                if !missing.is_empty() {
                    self.problem(
                        &at,
                        format!("a new state needs {} set (no default in {})", missing.join(", "), raw.state),
                    );
                }
            }
        }
        let mut history = Vec::new();
        for (into, text) in &raw_t.history {
            let history_at = format!("{at}: history.{into}");
            if !raw_t.via.contains(into) && into != &raw_t.to {
                self.problem(&history_at, "the transition does not step into it (its via or its to)");
            }
            if state.is_some_and(|s| !self.has_history(s)) {
                self.problem(&history_at, format!("{} has no {HISTORY_FIELD} field to record it in", raw.state));
            }
            if let Some(source) = self.expression(&history_at, text, event, state) {
                history.push((into.clone(), source));
            }
        }
        let emits = raw_t.emits.iter().filter_map(|e| self.emit(&at, e, event, state)).collect();
        (self.problems.len() == before).then(|| TransitionSpec {
            from: raw_t.from.clone(),
            on: raw_t.on.clone(),
            to: raw_t.to.clone(),
            when,
            doc: raw_t.doc.clone(),
            set,
            timer,
            via: raw_t.via.clone(),
            history,
            emits,
        })
    }

    fn has_history(&mut self, state: &str) -> bool {
        self.contract(state).is_some_and(|c| fields(&c.schema).iter().any(|(n, _, _)| *n == HISTORY_FIELD))
    }

    /// A timer's duration: written (`14d`), or a text of the processor's params (`param.deadline`).
    fn timer(&mut self, at: &str, text: &str) -> Option<std::time::Duration> {
        let (written, from) = match text.strip_prefix("param.") {
            Some(name) => {
                self.used.insert(name.to_owned());
                match self.around.params.get(name).and_then(ParamValue::text) {
                    Some(value) => (value.to_owned(), format!(" (param.{name})")),
                    None => {
                        self.problem(
                            at,
                            format!("timer {text:?}: the processor's params.values sets no text {name:?}"),
                        );
                        return None;
                    }
                }
            }
            None => (text.to_owned(), String::new()),
        };
        match humantime::parse_duration(&written) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(at, format!("timer {written:?}{from} is not a duration (as 14d or 5m): {e}"));
                None
            }
        }
    }

    fn emit(&mut self, at: &str, raw: &RawEmit, event: Option<&str>, state: Option<&str>) -> Option<EmitSpec> {
        let at = format!("{at}: emit {}", raw.contract);
        if !self.around.outputs.contains(&raw.contract) {
            self.problem(&at, format!("no output topic of the processor carries it ({:?})", self.around.outputs));
            return None;
        }
        let schema = self.contract(&raw.contract)?.schema.clone();
        let declared: Vec<(String, bool)> =
            fields(&schema).into_iter().map(|(n, _, default)| (n.to_owned(), default)).collect();
        let mapped: BTreeSet<&String> = raw.fields.keys().chain(raw.json.keys()).collect();
        let missing: Vec<&str> =
            declared.iter().filter(|(n, default)| !default && !mapped.contains(n)).map(|(n, _)| n.as_str()).collect();
        if !missing.is_empty() {
            self.problem(&at, format!("{} has no default, so it must be mapped: {}", raw.contract, missing.join(", ")));
        }
        for name in mapped.iter().filter(|m| !declared.iter().any(|(n, _)| n == **m)) {
            self.problem(&at, format!("{} has no field {name:?}", raw.contract));
        }
        let mut out = Vec::new();
        for (name, text) in &raw.fields {
            if raw.json.contains_key(name) {
                self.problem(&at, format!("{name} is mapped twice (fields and json)"));
            }
            if let Some(source) = self.expression(&format!("{at}: {name}"), text, event, state) {
                self.assign(&format!("{at}: {name}"), &raw.contract, name, &source, (event, state));
                out.push((name.clone(), Value::Expr(source)));
            }
        }
        for (name, members) in &raw.json {
            let text = Typed { literal: None, ..Typed::of(Kind::Text) };
            if let Ok(Some(target)) = self.resolve(&raw.contract, std::slice::from_ref(name)) {
                if let Err(reason) = types::assignable(&types::of_schema(&target), &text) {
                    self.problem(format!("{at}: {name}"), format!("a JSON document is a text: {reason}"));
                }
            }
            let members: Vec<(String, Source)> = members
                .iter()
                .filter_map(|(m, text)| {
                    self.expression(&format!("{at}: {name}.{m}"), text, event, state).map(|s| (m.clone(), s))
                })
                .collect();
            out.push((name.clone(), Value::Json(members)));
        }
        Some(EmitSpec { contract: raw.contract.clone(), fields: out })
    }

    /// Reachability from NEW, dead ends, and timers against their expiry transitions.
    fn graph(&mut self, raw: &RawMachine) {
        let mut reached: BTreeSet<&str> = BTreeSet::from([NEW]);
        let mut frontier = vec![NEW];
        while let Some(from) = frontier.pop() {
            for t in raw.transitions.iter().filter(|t| t.from == from) {
                for via in &t.via {
                    reached.insert(via.as_str());
                }
                if reached.insert(t.to.as_str()) {
                    frontier.push(t.to.as_str());
                }
            }
        }
        for state in &raw.states {
            if !reached.contains(state.as_str()) {
                self.problem(
                    format!("state {state}"),
                    format!("unreachable: no chain of transitions leads from {NEW} to it"),
                );
            }
            let leaves = raw.transitions.iter().any(|t| &t.from == state || t.via.contains(state));
            if !leaves && !raw.terminal.contains(state) {
                self.problem(
                    format!("state {state}"),
                    "no transition leaves it and it is not terminal: a key would stay there for ever",
                );
            }
            let timed = raw.transitions.iter().any(|t| &t.to == state && t.timer.is_some());
            let expiry = raw.transitions.iter().any(|t| &t.from == state && t.on == TIMER);
            if timed && !expiry {
                self.problem(
                    format!("state {state}"),
                    format!("a transition sets a timer into it but none is on {TIMER:?} from it"),
                );
            }
            if expiry && !timed {
                self.problem(
                    format!("state {state}"),
                    format!("a transition is on {TIMER:?} from it but none into it sets a timer"),
                );
            }
        }
    }
}
