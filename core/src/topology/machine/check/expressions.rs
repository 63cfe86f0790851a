//! The expressions of a machine, checked: the fields, params and definitions they read, the
//! kind of value each gives, and the operations that could never work on those kinds.

use apache_avro::schema::Schema;

use super::super::expr::{self, Each, Expr, Fold, Func, Root};
use super::super::types::{self, Kind, Typed};
use super::super::{ParamValue, Source, TIMER};
use super::{fields, Checker};

/// An element of `group(...)`: a key and the sum of its group.
const GROUP_ELEMENT: &str = r#"{"type": "record", "name": "Group", "fields": [
    {"name": "key", "type": "string"}, {"name": "sum", "type": "double"}]}"#;

impl Checker<'_> {
    /// Whether `path` names a field of `contract`'s records (through nested records and
    /// nullable unions; past an array or a map anything goes).
    pub(super) fn has_path(&mut self, contract: &str, path: &[String]) -> Result<(), String> {
        self.resolve(contract, path).map(|_| ())
    }

    /// The schema of the field `path` names in `contract` (`None`: past an array or a map, or a
    /// name not resolved, where anything goes).
    pub(super) fn resolve(&mut self, contract: &str, path: &[String]) -> Result<Option<Schema>, String> {
        let Some(schema) = self.contract(contract).map(|c| c.schema.clone()) else {
            return Err(format!("no contract {contract}"));
        };
        self.resolve_from(contract, schema, path, contract)
    }

    /// `schema` with references and nullable unions resolved (`None`: a name not resolved).
    fn concrete(&self, contract: &str, mut schema: Schema) -> Result<Option<Schema>, String> {
        let names = self.names.get(contract);
        loop {
            schema = match schema {
                Schema::Ref { name } => match names.and_then(|n| n.get(&name)) {
                    Some(s) => s.clone(),
                    None => return Ok(None),
                },
                Schema::Union(union) => match union.variants().iter().find(|v| !matches!(v, Schema::Null)) {
                    Some(s) => s.clone(),
                    None => return Err("it is always null".to_owned()),
                },
                other => return Ok(Some(other)),
            };
        }
    }

    /// The schema of the field `path` names, from `start` (a schema of `contract`, named `label`
    /// in errors).
    fn resolve_from(
        &mut self,
        contract: &str,
        start: Schema,
        path: &[String],
        label: &str,
    ) -> Result<Option<Schema>, String> {
        let mut current = start;
        for (depth, field) in path.iter().enumerate() {
            let here = || if depth == 0 { label.to_owned() } else { path[..depth].join(".") };
            current = match self.concrete(contract, current) {
                Ok(Some(s)) => s,
                Ok(None) => return Ok(None),
                Err(reason) => return Err(format!("{}: {reason}", here())),
            };
            match &current {
                Schema::Record(_) => {}
                Schema::Array(_) | Schema::Map(_) => return Ok(None),
                _ => return Err(format!("{} is not a record: it has no field {field:?}", here())),
            }
            let next = fields(&current).into_iter().find(|(n, _, _)| n == field).map(|(_, s, _)| s.clone());
            match next {
                Some(s) => current = s,
                None => {
                    let known: Vec<&str> = fields(&current).into_iter().map(|(n, _, _)| n).collect();
                    return Err(format!("{} has no field {field:?} (it has {})", here(), known.join(", ")));
                }
            }
        }
        Ok(Some(current))
    }

    /// The contract and schema an expression's value has, when it is a path the contracts say.
    fn schema_of(&mut self, expr: &Expr, event: Option<&str>, state: Option<&str>) -> Option<(String, Schema)> {
        let Expr::Path(root, path) = expr else { return None };
        let (contract, start, label) = match root {
            Root::Event => (event?.to_owned(), None, "event".to_owned()),
            Root::State => (state?.to_owned(), None, "state".to_owned()),
            Root::Lookup(_) => (self.around.lookup.clone()?, None, "the lookup value".to_owned()),
            Root::Var(name) => {
                let (_, bound) = self.vars.iter().rev().find(|(n, _)| n == name)?;
                let (contract, schema) = bound.clone()?;
                (contract, Some(schema), name.clone())
            }
        };
        let start = match start {
            Some(s) => s,
            None => self.contract(&contract)?.schema.clone(),
        };
        let schema = self.resolve_from(&contract, start, path, &label).ok().flatten()?;
        Some((contract, schema))
    }

    /// The contract and schema of an element of the list `expr` gives, when known.
    fn element_of(&mut self, expr: &Expr, event: Option<&str>, state: Option<&str>) -> Option<(String, Schema)> {
        if matches!(expr, Expr::Each(each) if each.fold == Fold::Group) {
            return Schema::parse_str(GROUP_ELEMENT).ok().map(|s| ("group".to_owned(), s));
        }
        let (contract, schema) = self.schema_of(expr, event, state)?;
        match self.concrete(&contract, schema).ok().flatten()? {
            Schema::Array(array) => {
                let item = self.concrete(&contract, (*array.items).clone()).ok().flatten()?;
                Some((contract, item))
            }
            _ => None,
        }
    }

    /// What kind of value `expr` gives (its paths already checked).
    fn typed(&mut self, expr: &Expr, event: Option<&str>, state: Option<&str>) -> Typed {
        match expr {
            Expr::Literal(serde_json::Value::String(s)) => Typed { literal: Some(s.clone()), ..Typed::of(Kind::Text) },
            Expr::Literal(serde_json::Value::Number(_)) | Expr::Now => Typed::of(Kind::Number),
            Expr::Literal(serde_json::Value::Bool(_)) => Typed::of(Kind::Boolean),
            Expr::Literal(serde_json::Value::Null) => Typed::of(Kind::Null),
            Expr::Literal(_) | Expr::Def(_) => Typed::of(Kind::Any),
            Expr::Defined(_, inner) => self.typed(inner, event, state),
            Expr::Path(root, _) => {
                let typed =
                    self.schema_of(expr, event, state).map_or(Typed::of(Kind::Any), |(_, s)| types::of_schema(&s));
                // A lookup table may lack the key: its values may be null.
                Typed { nullable: typed.nullable || matches!(root, Root::Lookup(_)), ..typed }
            }
            Expr::Param(name) => Typed {
                literal: self.around.params.get(name).and_then(ParamValue::text).map(str::to_owned),
                ..Typed::of(Kind::Text)
            },
            Expr::ParamEntry(..) => Typed { nullable: true, ..Typed::of(Kind::Text) },
            Expr::Key | Expr::EventId | Expr::Derive(..) | Expr::Concat(_) => Typed::of(Kind::Text),
            Expr::Compare(..) | Expr::And(..) | Expr::Or(..) | Expr::Not(..) | Expr::Matches(..) => {
                Typed::of(Kind::Boolean)
            }
            Expr::Arith(a, _, b) => {
                let (a, b) = (self.typed(a, event, state), self.typed(b, event, state));
                types::arithmetic(&a, &b).unwrap_or(Typed::of(Kind::Any))
            }
            Expr::Call(Func::If, args) => {
                let (a, b) = (self.typed(&args[1], event, state), self.typed(&args[2], event, state));
                types::either(&a, &b)
            }
            Expr::Call(Func::Coalesce, args) => {
                let all: Vec<Typed> = args.iter().map(|a| self.typed(a, event, state)).collect();
                let nullable = all.iter().all(|t| t.nullable || t.kind == Kind::Null);
                let kind = all.iter().find(|t| t.kind != Kind::Null).map_or(Kind::Null, |t| t.kind.clone());
                let literal = all.first().and_then(|t| t.literal.clone()).filter(|_| all.len() == 1);
                Typed { kind, nullable, literal }
            }
            Expr::Call(Func::Percent, _) => Typed::of(Kind::Decimal),
            Expr::Call(Func::Len, _) => Typed::of(Kind::Number),
            Expr::Each(each) => match each.fold {
                Fold::Any | Fold::All => Typed::of(Kind::Boolean),
                Fold::Count => Typed::of(Kind::Number),
                Fold::Join => Typed::of(Kind::Text),
                Fold::Group => Typed::of(Kind::List),
                Fold::Sum | Fold::First => {
                    let bound = self.element_of(&each.list, event, state);
                    self.vars.push((each.var.clone(), bound));
                    let body = each.body.as_ref().map_or(Typed::of(Kind::Any), |b| self.typed(b, event, state));
                    self.vars.pop();
                    if each.fold == Fold::First {
                        Typed { nullable: true, literal: None, ..body }
                    } else {
                        Typed { nullable: false, literal: None, ..body }
                    }
                }
            },
        }
    }

    /// Every operand of `expr`'s `and`, `or` and `not` that is not a yes or no.
    pub(super) fn conditions(&mut self, at: &str, text: &str, expr: &Expr, event: Option<&str>, state: Option<&str>) {
        match expr {
            Expr::And(a, b) | Expr::Or(a, b) => {
                self.conditions(at, text, a, event, state);
                self.conditions(at, text, b, event, state);
            }
            Expr::Not(a) | Expr::Defined(_, a) => self.conditions(at, text, a, event, state),
            Expr::Compare(..) => {}
            other => {
                if !matches!(self.typed(other, event, state).kind, Kind::Boolean | Kind::Any) {
                    self.problem(at, format!("{text:?} is not a condition: a guard compares, or is a boolean"));
                }
            }
        }
    }

    /// Every part of `expr` that can never work: comparisons that never hold, arithmetic on what
    /// is not a number, list forms over what is not a list, conditions that are not.
    fn operations(&mut self, at: &str, text: &str, expr: &Expr, event: Option<&str>, state: Option<&str>) {
        match expr {
            Expr::Compare(a, op, b) => {
                let (left, right) = (self.typed(a, event, state), self.typed(b, event, state));
                if let Err(reason) = types::comparable(&left, *op, &right) {
                    self.problem(at, format!("{text:?} {reason}"));
                }
            }
            Expr::Arith(a, _, b) => {
                let (left, right) = (self.typed(a, event, state), self.typed(b, event, state));
                if let Err(reason) = types::arithmetic(&left, &right) {
                    self.problem(at, format!("{text:?} {reason}"));
                }
            }
            Expr::Call(Func::If, args) => self.conditions(at, text, &args[0], event, state),
            Expr::Each(each) => {
                self.each(at, text, each, event, state);
                return;
            }
            Expr::Defined(name, inner) => {
                let (def_at, def_text) = self.def_context(name, event);
                self.operations(&def_at, &def_text, inner, event, state);
                return;
            }
            _ => {}
        }
        for child in expr.children() {
            self.operations(at, text, child, event, state);
        }
    }

    fn each(&mut self, at: &str, text: &str, each: &Each, event: Option<&str>, state: Option<&str>) {
        self.operations(at, text, &each.list, event, state);
        let list = self.typed(&each.list, event, state);
        if !matches!(list.kind, Kind::List | Kind::Any) {
            self.problem(at, format!("{text:?} goes through {} as a list, but it is {}", each.var, list.kind.name()));
        }
        let bound = self.element_of(&each.list, event, state);
        self.vars.push((each.var.clone(), bound));
        let inside = [each.filter.as_ref(), each.key.as_ref(), each.body.as_ref()];
        for (root, path) in inside.into_iter().flatten().flat_map(Expr::paths) {
            if let Root::Var(name) = root {
                self.var_path(at, text, name, path);
            }
        }
        if let Some(filter) = &each.filter {
            self.conditions(at, text, filter, event, state);
            self.operations(at, text, filter, event, state);
        }
        if let Some(key) = &each.key {
            self.operations(at, text, key, event, state);
        }
        if let Some(body) = &each.body {
            if matches!(each.fold, Fold::Any | Fold::All) {
                self.conditions(at, text, body, event, state);
            }
            self.operations(at, text, body, event, state);
        }
        self.vars.pop();
    }

    /// A path through a bound element, checked against the element's schema.
    fn var_path(&mut self, at: &str, text: &str, name: &str, path: &[String]) {
        let Some((_, Some((contract, schema)))) = self.vars.iter().rev().find(|(n, _)| n == name).cloned() else {
            return;
        };
        if let Err(reason) = self.resolve_from(&contract, schema, path, name) {
            self.problem(at, format!("{text:?} names an unknown field: {reason}"));
        }
    }

    /// `source` as the value of field `field` of `contract`.
    pub(super) fn assign(
        &mut self,
        at: &str,
        contract: &str,
        field: &str,
        source: &Source,
        scope: (Option<&str>, Option<&str>),
    ) {
        let Ok(Some(target)) = self.resolve(contract, &[field.to_owned()]) else { return };
        let value = self.typed(&source.expr, scope.0, scope.1);
        if let Err(reason) = types::assignable(&types::of_schema(&target), &value) {
            self.problem(at, format!("{:?}: {reason} ({contract}.{field})", source.text));
        }
    }

    /// Where and as what a problem inside definition `name` is reported (once, however many
    /// expressions use it: problems are deduplicated).
    fn def_context(&self, name: &str, event: Option<&str>) -> (String, String) {
        let text = self.defines.get(name).cloned().unwrap_or_default();
        (format!("define.{name} (on {})", event.unwrap_or(TIMER)), text)
    }

    /// The params, fields and lookups `expr` reads, checked: `event.` against `event` (none for
    /// a timer), `state.` against the state contract (unless `state` is `None`: no state yet),
    /// `lookup(…).` against the lookup contract; a definition's in its own name.
    fn references(&mut self, at: &str, text: &str, expr: &Expr, event: Option<&str>, state: Option<&str>) {
        let read = match expr {
            Expr::Param(name) => Some((name, false)),
            Expr::ParamEntry(name, _) => Some((name, true)),
            _ => None,
        };
        if let Some((name, table)) = read {
            self.used.insert(name.to_owned());
            let problem = match self.around.params.get(name) {
                None => Some("which the processor's params.values does not set"),
                Some(ParamValue::Table(_)) if !table => Some("a table: read an entry, as param.name[key]"),
                Some(ParamValue::Text(_)) if table => Some("a text, not a table"),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                let set: Vec<&String> = self.around.params.keys().collect();
                self.problem(at, format!("{text:?} reads param.{name}, {problem} ({set:?})"));
            }
        }
        if let Expr::Path(root, path) = expr {
            let (contract, what) = match root {
                Root::Event => (event, "no event: a timer has none"),
                Root::State => (state, "no state yet: a key has none before its first transition"),
                Root::Lookup(_) => (self.around.lookup.as_deref(), "no lookup table: the processor has no lookups"),
                Root::Var(_) => (None, ""),
            };
            match contract {
                _ if matches!(root, Root::Var(_)) => {}
                None => self.problem(at, format!("{text:?} reads {} but there is {what}", path.join("."))),
                Some(contract) => {
                    if let Err(reason) = self.has_path(contract, path) {
                        self.problem(at, format!("{text:?} names an unknown field: {reason}"));
                    }
                }
            }
        }
        if let Expr::Defined(name, inner) = expr {
            let (def_at, def_text) = self.def_context(name, event);
            return self.references(&def_at, &def_text, inner, event, state);
        }
        for child in expr.children() {
            self.references(at, text, child, event, state);
        }
    }

    /// `expr` with each `def.<name>` replaced by its definition, itself expanded.
    fn expand(&mut self, expr: Expr, stack: &mut Vec<String>) -> Result<Expr, String> {
        expr.rewrite(&mut |e| match e {
            Expr::Def(name) => {
                self.defines_used.insert(name.clone());
                let Some(text) = self.defines.get(&name).cloned() else {
                    let known: Vec<&String> = self.defines.keys().collect();
                    return Err(format!("def.{name} is not defined ([define] has {known:?})"));
                };
                if stack.contains(&name) {
                    return Err(format!("def.{name} is defined through itself ({} -> {name})", stack.join(" -> ")));
                }
                let parsed = expr::parse(&text).map_err(|e| format!("def.{name} ({text:?}) does not parse: {e}"))?;
                stack.push(name.clone());
                let expanded = self.expand(parsed, stack);
                stack.pop();
                Ok(Expr::Defined(name, Box::new(expanded?)))
            }
            other => Ok(other),
        })
    }

    /// Parses `text`, then checks its paths: `event.` against `event` (none for a timer),
    /// `state.` against the state contract (unless `state` is `None`: no state yet), `lookup(…).`
    /// against the lookup contract.
    pub(super) fn expression(
        &mut self,
        at: &str,
        text: &str,
        event: Option<&str>,
        state: Option<&str>,
    ) -> Option<Source> {
        let parsed = match expr::parse(text) {
            Ok(expr) => expr,
            Err(e) => {
                self.problem(at, format!("{text:?} does not parse: {e}"));
                return None;
            }
        };
        let expr = match self.expand(parsed, &mut Vec::new()) {
            Ok(expr) => expr,
            Err(reason) => {
                self.problem(at, format!("{text:?}: {reason}"));
                return None;
            }
        };
        let before = self.problems.len();
        self.references(at, text, &expr, event, state);
        let mut ok = self.problems.len() == before;
        if ok {
            let before = self.problems.len();
            self.operations(at, text, &expr, event, state);
            ok = self.problems.len() == before;
        }
        ok.then(|| Source { text: text.to_owned(), expr })
    }
}
