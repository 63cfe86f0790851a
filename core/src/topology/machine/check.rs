//! Reads a machine file and checks it against the processor's topics and contracts, reporting
//! every problem at once: unknown or unreachable states, transitions out of terminal states,
//! dead ends, timers that never fire or have no expiry transition, guards and mappings naming
//! fields the contracts lack, emitted records missing a required field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use apache_avro::schema::{Name, ResolvedSchema, Schema};

use super::expr::{self, Expr, Root};
use super::types::{self, Kind, Typed};
use super::{
    EmitSpec, InputSpec, MachineSpec, RawEmit, RawMachine, RawTransition, Source, TransitionSpec, Value,
    MANAGED_FIELDS, NEW, TIMER,
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
    pub params: &'a BTreeMap<String, String>,
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
    let mut checker = Checker { around, problems: Vec::new(), names: BTreeMap::new(), used: BTreeSet::new() };
    let spec = checker.machine(path, raw);
    let unused: Vec<&String> = around.params.keys().filter(|n| !checker.used.contains(*n)).collect();
    for name in unused {
        checker.problem("params", format!("the processor's params.values sets {name:?} but no expression reads it"));
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
    fn problem(&mut self, at: impl Into<String>, reason: impl Into<String>) {
        self.problems.push((at.into(), reason.into()));
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

    /// Whether `path` names a field of `contract`'s records (through nested records and
    /// nullable unions; past an array or a map anything goes).
    fn has_path(&mut self, contract: &str, path: &[String]) -> Result<(), String> {
        self.resolve(contract, path).map(|_| ())
    }

    /// The schema of the field `path` names in `contract` (`None`: past an array or a map, or a
    /// name not resolved, where anything goes).
    fn resolve(&mut self, contract: &str, path: &[String]) -> Result<Option<Schema>, String> {
        let Some(schema) = self.contract(contract).map(|c| c.schema.clone()) else {
            return Err(format!("no contract {contract}"));
        };
        let names = self.names.get(contract).cloned().unwrap_or_default();
        let mut current = schema;
        for (depth, field) in path.iter().enumerate() {
            loop {
                current = match current {
                    Schema::Ref { name } => match names.get(&name) {
                        Some(s) => s.clone(),
                        None => return Ok(None),
                    },
                    Schema::Union(union) => match union.variants().iter().find(|v| !matches!(v, Schema::Null)) {
                        Some(s) => s.clone(),
                        None => return Err(format!("{} is always null", path[..depth].join("."))),
                    },
                    other => break current = other,
                };
            }
            match &current {
                Schema::Record(_) => {}
                Schema::Array(_) | Schema::Map(_) => return Ok(None),
                _ => {
                    return Err(format!("{} is not a record: it has no field {field:?}", path[..depth].join(".")));
                }
            }
            let next = fields(&current).into_iter().find(|(n, _, _)| n == field).map(|(_, s, _)| s.clone());
            match next {
                Some(s) => current = s,
                None => {
                    let known: Vec<&str> = fields(&current).into_iter().map(|(n, _, _)| n).collect();
                    let at = if depth == 0 { contract.to_owned() } else { path[..depth].join(".") };
                    return Err(format!("{at} has no field {field:?} (it has {})", known.join(", ")));
                }
            }
        }
        Ok(Some(current))
    }

    /// What kind of value `expr` gives (its paths already checked).
    fn typed(&mut self, expr: &Expr, event: Option<&str>, state: Option<&str>) -> Typed {
        match expr {
            Expr::Literal(serde_json::Value::String(s)) => Typed { literal: Some(s.clone()), ..Typed::of(Kind::Text) },
            Expr::Literal(serde_json::Value::Number(_)) | Expr::Now => Typed::of(Kind::Number),
            Expr::Literal(serde_json::Value::Bool(_)) => Typed::of(Kind::Boolean),
            Expr::Literal(serde_json::Value::Null) => Typed::of(Kind::Null),
            Expr::Literal(_) => Typed::of(Kind::Any),
            Expr::Path(root, path) => {
                let contract = match root {
                    Root::Event => event.map(str::to_owned),
                    Root::State => state.map(str::to_owned),
                    Root::Lookup(_) => self.around.lookup.clone(),
                };
                let schema = contract.and_then(|c| self.resolve(&c, path).ok().flatten());
                let typed = schema.as_ref().map_or(Typed::of(Kind::Any), types::of_schema);
                // A lookup table may lack the key: its values may be null.
                Typed { nullable: typed.nullable || matches!(root, Root::Lookup(_)), ..typed }
            }
            Expr::Param(name) => Typed { literal: self.around.params.get(name).cloned(), ..Typed::of(Kind::Text) },
            Expr::Key | Expr::EventId | Expr::Derive(_) | Expr::Concat(_) => Typed::of(Kind::Text),
            Expr::Compare(..) | Expr::And(..) | Expr::Or(..) | Expr::Not(..) => Typed::of(Kind::Boolean),
        }
    }

    /// Every operand of `expr`'s `and`, `or` and `not` that is not a yes or no.
    fn conditions(&mut self, at: &str, text: &str, expr: &Expr, event: Option<&str>, state: Option<&str>) {
        match expr {
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.conditions(at, text, a, event, state);
                self.conditions(at, text, b, event, state);
            }
            Expr::Not(a) => self.conditions(at, text, a, event, state),
            Expr::Compare(..) => {}
            other => {
                if !matches!(self.typed(other, event, state).kind, Kind::Boolean | Kind::Any) {
                    self.problem(at, format!("{text:?} is not a condition: a guard compares, or is a boolean"));
                }
            }
        }
    }

    /// Every comparison of `expr` that can never hold.
    fn comparisons(&mut self, at: &str, text: &str, expr: &Expr, event: Option<&str>, state: Option<&str>) {
        match expr {
            Expr::Compare(a, op, b) => {
                let (left, right) = (self.typed(a, event, state), self.typed(b, event, state));
                if let Err(reason) = types::comparable(&left, *op, &right) {
                    self.problem(at, format!("{text:?} {reason}"));
                }
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.comparisons(at, text, a, event, state);
                self.comparisons(at, text, b, event, state);
            }
            Expr::Not(a) => self.comparisons(at, text, a, event, state),
            Expr::Concat(parts) => parts.iter().for_each(|p| self.comparisons(at, text, p, event, state)),
            _ => {}
        }
    }

    /// `source` as the value of field `field` of `contract`.
    fn assign(&mut self, at: &str, contract: &str, field: &str, source: &Source, scope: (Option<&str>, Option<&str>)) {
        let Ok(Some(target)) = self.resolve(contract, &[field.to_owned()]) else { return };
        let value = self.typed(&source.expr, scope.0, scope.1);
        if let Err(reason) = types::assignable(&types::of_schema(&target), &value) {
            self.problem(at, format!("{:?}: {reason} ({contract}.{field})", source.text));
        }
    }

    /// Parses `text`, then checks its paths: `event.` against `event` (none for a timer),
    /// `state.` against the state contract (unless `state` is `None`: no state yet), `lookup(…).`
    /// against the lookup contract.
    fn expression(&mut self, at: &str, text: &str, event: Option<&str>, state: Option<&str>) -> Option<Source> {
        let expr = match expr::parse(text) {
            Ok(expr) => expr,
            Err(e) => {
                self.problem(at, format!("{text:?} does not parse: {e}"));
                return None;
            }
        };
        let mut ok = true;
        for name in expr.params() {
            self.used.insert(name.to_owned());
            if !self.around.params.contains_key(name) {
                let set: Vec<&String> = self.around.params.keys().collect();
                self.problem(
                    at,
                    format!("{text:?} reads param.{name}, which the processor's params.values does not set ({set:?})"),
                );
                ok = false;
            }
        }
        for (root, path) in expr.paths() {
            let (contract, what) = match root {
                Root::Event => (event, "no event: a timer has none"),
                Root::State => (state, "no state yet: a key has none before its first transition"),
                Root::Lookup(_) => (self.around.lookup.as_deref(), "no lookup table: the processor has no lookups"),
            };
            let Some(contract) = contract else {
                self.problem(at, format!("{text:?} reads {} but there is {what}", path.join(".")));
                ok = false;
                continue;
            };
            if let Err(reason) = self.has_path(contract, path) {
                self.problem(at, format!("{text:?} names an unknown field: {reason}"));
                ok = false;
            }
        }
        if ok {
            self.comparisons(at, text, &expr, event, state);
        }
        ok.then(|| Source { text: text.to_owned(), expr })
    }

    fn machine(&mut self, path: &Path, raw: RawMachine) -> MachineSpec {
        self.state_contract(&raw.state);
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
            transitions,
        }
    }

    fn state_contract(&mut self, name: &str) {
        if !self.around.state.contains(name) {
            self.problem(
                "state",
                format!("the state topic does not carry {name:?} (it carries {:?})", self.around.state),
            );
            return;
        }
        let Some(contract) = self.contract(name) else { return };
        let have: Vec<String> = fields(&contract.schema).into_iter().map(|(n, _, _)| n.to_owned()).collect();
        for managed in MANAGED_FIELDS.iter().filter(|m| !have.iter().any(|h| h == *m)) {
            self.problem(
                "state",
                format!(
                    "{name} lacks the field {managed:?}: a declared machine's state carries {} (kept by the processor)",
                    MANAGED_FIELDS.join(", ")
                ),
            );
        }
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
        if raw.terminal.contains(&raw_t.from) {
            self.problem(&at, format!("{} is terminal: no transition leaves it", raw_t.from));
        }
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
        if raw_t.timer.is_some_and(|d| d.is_zero()) {
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
            if MANAGED_FIELDS.contains(&field.as_str()) {
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
                    .filter(|(n, _, default)| !default && !MANAGED_FIELDS.contains(n) && !raw_t.set.contains_key(*n))
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
        let emits = raw_t.emits.iter().filter_map(|e| self.emit(&at, e, event, state)).collect();
        (self.problems.len() == before).then(|| TransitionSpec {
            from: raw_t.from.clone(),
            on: raw_t.on.clone(),
            to: raw_t.to.clone(),
            when,
            doc: raw_t.doc.clone(),
            set,
            timer: raw_t.timer,
            emits,
        })
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
            let leaves = raw.transitions.iter().any(|t| &t.from == state);
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
