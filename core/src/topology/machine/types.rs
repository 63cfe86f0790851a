//! What kind of value an expression of a declared machine gives, from the contracts, so that
//! `hub topology check` refuses what could only fail at run time: a guard that is not a yes or
//! no, a comparison that can never hold (a text against a number, an enum against a symbol it
//! does not have: `event.verdict == 'APROVED'`), a field given a value its contract cannot carry.

use apache_avro::schema::Schema;

use super::expr::Op;

/// The kinds of value the checks tell apart.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Text,
    /// An exact amount (a decimal, as text).
    Decimal,
    /// Integers, floating point numbers and timestamps.
    Number,
    Boolean,
    Enum(Vec<String>),
    Record,
    List,
    Null,
    /// Not known here (past an array or a map, a name not resolved).
    Any,
}

impl Kind {
    pub(super) fn name(&self) -> String {
        match self {
            Kind::Text => "a text".into(),
            Kind::Decimal => "a decimal".into(),
            Kind::Number => "a number".into(),
            Kind::Boolean => "a boolean".into(),
            Kind::Enum(symbols) => format!("an enum ({})", symbols.join(", ")),
            Kind::Record => "a record".into(),
            Kind::List => "a list".into(),
            Kind::Null => "null".into(),
            Kind::Any => "anything".into(),
        }
    }
}

/// A value's kind, whether it may be null, and the text of a text literal.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Typed {
    pub(super) kind: Kind,
    pub(super) nullable: bool,
    pub(super) literal: Option<String>,
}

impl Typed {
    pub(super) fn of(kind: Kind) -> Self {
        Self { kind, nullable: false, literal: None }
    }
}

/// The kind of values of `schema` (a nullable union counts as its other branch, nullable).
pub(super) fn of_schema(schema: &Schema) -> Typed {
    let kind = match schema {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Boolean,
        Schema::Int
        | Schema::Long
        | Schema::Float
        | Schema::Double
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Kind::Number,
        Schema::String | Schema::Uuid(_) => Kind::Text,
        Schema::Decimal(_) | Schema::BigDecimal => Kind::Decimal,
        Schema::Enum(e) => Kind::Enum(e.symbols.clone()),
        Schema::Record(_) | Schema::Map(_) => Kind::Record,
        Schema::Array(_) => Kind::List,
        Schema::Union(union) => {
            let others: Vec<&Schema> = union.variants().iter().filter(|v| !matches!(v, Schema::Null)).collect();
            let nullable = others.len() < union.variants().len();
            return match others.as_slice() {
                [one] => Typed { nullable, ..of_schema(one) },
                _ => Typed { kind: Kind::Any, nullable, literal: None },
            };
        }
        _ => Kind::Any,
    };
    Typed::of(kind)
}

/// Why `value` cannot be written to a field of kind `target`, if it cannot.
pub(super) fn assignable(target: &Typed, value: &Typed) -> Result<(), String> {
    let literal = value.literal.as_deref();
    let fits = match (&target.kind, &value.kind) {
        (_, Kind::Any) | (Kind::Any, _) => true,
        (_, Kind::Null) => target.nullable || target.kind == Kind::Null,
        (Kind::Enum(symbols), Kind::Text) => literal.is_none_or(|l| symbols.iter().any(|s| s == l)),
        (Kind::Enum(symbols), Kind::Enum(theirs)) => theirs.iter().all(|s| symbols.contains(s)),
        (Kind::Text, Kind::Text | Kind::Enum(_) | Kind::Decimal) => true,
        (Kind::Decimal, Kind::Decimal | Kind::Number) => true,
        (Kind::Decimal, Kind::Text) => literal.is_some_and(|l| crate::money::Cents::parse(l).is_some()),
        (a, b) => a == b,
    };
    if fits {
        return Ok(());
    }
    let what = literal.map_or_else(|| value.kind.name(), |l| format!("{l:?}"));
    Err(format!("{what} cannot be written to a field of {}", target.kind.name()))
}

/// Why `a op b` can never hold, if it cannot.
pub(super) fn comparable(a: &Typed, op: Op, b: &Typed) -> Result<(), String> {
    let enum_literal = |symbols: &[String], other: &Typed| match other.literal.as_deref() {
        Some(l) if !symbols.iter().any(|s| s == l) => {
            Err(format!("{l:?} is not one of the enum's symbols ({})", symbols.join(", ")))
        }
        _ => Ok(()),
    };
    match (&a.kind, &b.kind) {
        (Kind::Enum(symbols), Kind::Text) => return enum_literal(symbols, b),
        (Kind::Text, Kind::Enum(symbols)) => return enum_literal(symbols, a),
        _ => {}
    }
    let ordered = !matches!(op, Op::Eq | Op::Ne);
    let numeric = |t: &Typed| {
        matches!(t.kind, Kind::Number | Kind::Decimal | Kind::Any)
            || t.literal.as_deref().is_some_and(|l| crate::money::Cents::parse(l).is_some())
    };
    let fits = match (&a.kind, &b.kind) {
        (Kind::Any, _) | (_, Kind::Any) => true,
        (Kind::Null, _) | (_, Kind::Null) => !ordered,
        _ if numeric(a) && numeric(b) => true,
        (Kind::Text, Kind::Text) | (Kind::Enum(_), Kind::Enum(_)) | (Kind::Boolean, Kind::Boolean) => {
            !ordered || a.kind == Kind::Text
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(format!("compares {} with {}: it never holds", a.kind.name(), b.kind.name()))
    }
}

/// What `a + b` (or `-`, `*`) gives, or why it cannot be computed: integers give an integer,
/// anything with a decimal amount (or a text that is one) an exact decimal.
pub(super) fn arithmetic(a: &Typed, b: &Typed) -> Result<Typed, String> {
    let decimal_text = |t: &Typed| t.literal.as_deref().is_some_and(|l| crate::money::Cents::parse(l).is_some());
    let mut kinds = Vec::new();
    for t in [a, b] {
        let kind = match &t.kind {
            Kind::Text if decimal_text(t) => Kind::Decimal,
            Kind::Number | Kind::Decimal | Kind::Any => t.kind.clone(),
            other => return Err(format!("computes with {}: arithmetic takes numbers and amounts", other.name())),
        };
        kinds.push(kind);
    }
    let kind = if kinds.contains(&Kind::Decimal) {
        Kind::Decimal
    } else if kinds.contains(&Kind::Any) {
        Kind::Any
    } else {
        Kind::Number
    };
    Ok(Typed { kind, nullable: a.nullable || b.nullable, literal: None })
}

/// The kind of a value that is `a` or `b` (the branches of an `if`).
pub(super) fn either(a: &Typed, b: &Typed) -> Typed {
    let nullable = a.nullable || b.nullable || a.kind == Kind::Null || b.kind == Kind::Null;
    let kind = match (&a.kind, &b.kind) {
        (Kind::Null, other) | (other, Kind::Null) => other.clone(),
        (x, y) if x == y => x.clone(),
        (Kind::Decimal, Kind::Number) | (Kind::Number, Kind::Decimal) => Kind::Decimal,
        (Kind::Decimal, Kind::Text)
            if b.literal.as_deref().is_some_and(|l| crate::money::Cents::parse(l).is_some()) =>
        {
            Kind::Decimal
        }
        (Kind::Text, Kind::Decimal)
            if a.literal.as_deref().is_some_and(|l| crate::money::Cents::parse(l).is_some()) =>
        {
            Kind::Decimal
        }
        _ => Kind::Any,
    };
    let literal = if a.literal == b.literal { a.literal.clone() } else { None };
    Typed { kind, nullable, literal }
}
