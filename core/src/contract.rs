//! JSON bodies to Avro values of a contract, with every violation named by its path.
//!
//! [`json_to_avro`] walks the contract and the body together and collects every
//! violation (RFC 6901 pointer, what the contract expects, what is wrong), so the
//! edge can answer one 422 problem+json listing them all. [`avro_to_json`] is the
//! inverse and produces the same JSON shape that [`json_to_avro`] accepts.

use apache_avro::schema::{
    DecimalSchema, EnumSchema, InnerDecimalSchema, Name, RecordField, RecordSchema, ResolvedSchema, UnionSchema,
};
use apache_avro::types::Value;
use apache_avro::{Decimal, Schema, Uuid};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::avro::decimal::{bytes_for_precision, bytes_needed, from_twos_complement, twos_complement};

/// What to do with JSON fields the contract does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// Each unknown field is a violation.
    #[default]
    Reject,
    /// Unknown fields are dropped.
    Ignore,
}

/// One way the body breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// RFC 6901 JSON pointer of the offending value, e.g. "/items/0/quantity"; "" for the root.
    pub pointer: String,
    /// What the contract expects there, e.g. "int (32-bit)".
    pub expected: String,
    /// What is wrong, e.g. "expected an integer, found a string".
    pub detail: String,
}

/// Converts a JSON body into an Avro value of `schema`, or lists every violation.
pub fn json_to_avro(schema: &Schema, json: &Json, unknown: UnknownFields) -> Result<Value, Vec<Violation>> {
    let names = named_schemas(schema);
    let mut converter = Converter { names: &names, unknown, avro_default: false, out: Vec::new() };
    match converter.convert(schema, json, "") {
        Some(value) if converter.out.is_empty() => Ok(value),
        _ => Err(converter.out),
    }
}

/// The inverse, for reading records back: an Avro value to the JSON shape
/// [`json_to_avro`] accepts (decimals as strings with exactly `scale` fraction
/// digits, timestamps as RFC 3339 UTC strings, uuids as strings, enums as symbols,
/// unions as the plain inner value or null, maps as objects, bytes as base64).
pub fn avro_to_json(schema: &Schema, value: &Value) -> Json {
    to_json(&named_schemas(schema), Some(schema), value)
}

type Names<'s> = HashMap<Name, &'s Schema>;

/// Every named type (record, enum, fixed) of the schema by full name, so `Schema::Ref` resolves.
fn named_schemas(schema: &Schema) -> Names<'_> {
    ResolvedSchema::new(schema).map(|resolved| resolved.get_names().clone()).unwrap_or_default()
}

fn resolve<'s>(names: &Names<'s>, schema: &'s Schema) -> Option<&'s Schema> {
    match schema {
        Schema::Ref { name } => names.get(name).copied(),
        other => Some(other),
    }
}

/// RFC 6901 pointer of `key` under `parent`.
fn child(parent: &str, key: &str) -> String {
    let mut out = String::with_capacity(parent.len() + key.len() + 1);
    out.push_str(parent);
    out.push('/');
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// "a string", "an object"...: what a JSON value is, for details.
fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// "expected a string, found a number".
fn found(wanted: &str, json: &Json) -> String {
    format!("expected {wanted}, found {}", kind(json))
}

/// Nanoseconds per unit of an Avro time logical type.
pub(crate) const MILLIS: i128 = 1_000_000;
pub(crate) const MICROS: i128 = 1_000;
pub(crate) const NANOS: i128 = 1;
/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;
const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

/// One walk of a body along a contract; `out` collects the violations.
struct Converter<'n, 's> {
    names: &'n Names<'s>,
    unknown: UnknownFields,
    /// Converting a field's Avro default: bytes are ISO-8859-1 strings (Avro spec), not base64.
    avro_default: bool,
    out: Vec<Violation>,
}

impl<'s> Converter<'_, 's> {
    /// Records a violation; always `None` so callers can `return self.fail(...)`.
    fn fail<T>(&mut self, at: &str, expected: impl Into<String>, detail: String) -> Option<T> {
        let (pointer, expected) = (at.to_owned(), expected.into());
        self.out.push(Violation { pointer, expected, detail });
        None
    }

    fn convert(&mut self, schema: &'s Schema, json: &Json, at: &str) -> Option<Value> {
        let Some(schema) = resolve(self.names, schema) else {
            let detail = format!("unsupported type: unresolved reference {schema}");
            return self.fail(at, "a known named type", detail);
        };
        match schema {
            Schema::Record(record) => self.record(record, json, at),
            Schema::Array(array) => self.array(&array.items, json, at),
            Schema::Map(map) => self.map(&map.types, json, at),
            Schema::Union(union) => self.union(union, json, at),
            Schema::Decimal(decimal) => self.decimal(decimal, json, at),
            _ => match self.scalar(schema, json) {
                Ok(value) => Some(value),
                Err(detail) => self.fail(at, self.expected(schema), detail),
            },
        }
    }

    fn scalar(&self, schema: &Schema, json: &Json) -> Result<Value, String> {
        match schema {
            Schema::Null => json.is_null().then_some(Value::Null).ok_or_else(|| found("null", json)),
            Schema::Boolean => json.as_bool().map(Value::Boolean).ok_or_else(|| found("a boolean", json)),
            Schema::Int => integer(json).and_then(narrow).map(Value::Int),
            Schema::Long => integer(json).map(Value::Long),
            Schema::Float => float(json).map(Value::Float),
            Schema::Double => json.as_f64().map(Value::Double).ok_or_else(|| found("a number", json)),
            Schema::String => text(json).map(|s| Value::String(s.to_owned())),
            Schema::Bytes => self.bytes(json).map(Value::Bytes),
            Schema::Fixed(fixed) => self.fixed(fixed.size, json).map(|b| Value::Fixed(fixed.size, b)),
            Schema::Enum(enumeration) => symbol(enumeration, json),
            Schema::Uuid(_) => text(json)
                .and_then(|s| Uuid::parse_str(s).map(Value::Uuid).map_err(|e| format!("{s:?} is not a UUID: {e}"))),
            Schema::Date => date(json).map(Value::Date),
            Schema::TimeMillis => time_of_day(json, MILLIS).and_then(narrow).map(Value::TimeMillis),
            Schema::TimeMicros => time_of_day(json, MICROS).map(Value::TimeMicros),
            Schema::TimestampMillis => instant(json, MILLIS).map(Value::TimestampMillis),
            Schema::TimestampMicros => instant(json, MICROS).map(Value::TimestampMicros),
            Schema::TimestampNanos => instant(json, NANOS).map(Value::TimestampNanos),
            _ => Err(format!("unsupported type: {schema}")),
        }
    }

    fn record(&mut self, record: &'s RecordSchema, json: &Json, at: &str) -> Option<Value> {
        let Json::Object(object) = json else {
            return self.fail(at, expected_record(record), found("an object", json));
        };
        let before = self.out.len();
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let at = child(at, &field.name);
            if let Some(value) = self.field(field, object.get(&field.name), &at) {
                fields.push((field.name.clone(), value));
            }
        }
        if self.unknown == UnknownFields::Reject {
            self.unknown_fields(record, object, at);
        }
        (self.out.len() == before).then_some(Value::Record(fields))
    }

    /// A present value converts; a missing one (or null where null is not allowed) takes the default.
    fn field(&mut self, field: &'s RecordField, json: Option<&Json>, at: &str) -> Option<Value> {
        match (json, &field.default) {
            (Some(json), _) if !json.is_null() || self.accepts_null(&field.schema) => {
                self.convert(&field.schema, json, at)
            }
            (_, Some(default)) => {
                let (unknown, avro_default) = (UnknownFields::Ignore, true);
                let mut defaults = Converter { names: self.names, unknown, avro_default, out: vec![] };
                let value = defaults.convert(&field.schema, default, at);
                self.out.append(&mut defaults.out);
                value
            }
            _ => self.fail(at, self.expected(&field.schema), "required field is missing".into()),
        }
    }

    fn unknown_fields(&mut self, record: &RecordSchema, object: &Map<String, Json>, at: &str) {
        for key in object.keys() {
            if !record.fields.iter().any(|field| &field.name == key) {
                let expected = format!("only the fields of record {}", record.name.name());
                self.fail::<()>(&child(at, key), expected, "unknown field".into());
            }
        }
    }

    fn accepts_null(&self, schema: &Schema) -> bool {
        match resolve(self.names, schema) {
            Some(Schema::Null) => true,
            Some(Schema::Union(union)) => union.variants().iter().any(|s| matches!(s, Schema::Null)),
            _ => false,
        }
    }

    fn array(&mut self, items: &'s Schema, json: &Json, at: &str) -> Option<Value> {
        let Json::Array(elements) = json else {
            return self.fail(at, "array", found("an array", json));
        };
        let converted: Vec<Option<Value>> = elements
            .iter()
            .enumerate()
            .map(|(index, element)| self.convert(items, element, &child(at, &index.to_string())))
            .collect();
        converted.into_iter().collect::<Option<Vec<_>>>().map(Value::Array)
    }

    fn map(&mut self, values: &'s Schema, json: &Json, at: &str) -> Option<Value> {
        let Json::Object(object) = json else {
            return self.fail(at, "object (map)", found("an object", json));
        };
        let converted: Vec<Option<(String, Value)>> = object
            .iter()
            .map(|(key, value)| Some((key.clone(), self.convert(values, value, &child(at, key))?)))
            .collect();
        converted.into_iter().collect::<Option<HashMap<_, _>>>().map(Value::Map)
    }

    /// Null takes the null branch; otherwise the first branch that converts cleanly wins.
    fn union(&mut self, union: &'s UnionSchema, json: &Json, at: &str) -> Option<Value> {
        let branch = |index: usize, value: Value| Some(Value::Union(u32::try_from(index).ok()?, Box::new(value)));
        let variants = union.variants();
        let null_index = variants.iter().position(|s| matches!(s, Schema::Null));
        if let (Json::Null, Some(index)) = (json, null_index) {
            return branch(index, Value::Null);
        }
        let others: Vec<(usize, &'s Schema)> =
            variants.iter().enumerate().filter(|(i, _)| Some(*i) != null_index).collect();
        for &(index, variant) in &others {
            let outer = std::mem::take(&mut self.out);
            let value = self.convert(variant, json, at);
            let inner = std::mem::replace(&mut self.out, outer);
            match value {
                Some(value) if inner.is_empty() => return branch(index, value),
                // ["null", X] or [X]: X's own violations are the most precise answer.
                _ if others.len() == 1 => {
                    let nullable = null_index.is_some();
                    self.out.extend(inner.into_iter().map(|mut v| {
                        if nullable && v.pointer == at {
                            v.expected = format!("{} or null", v.expected);
                        }
                        v
                    }));
                    return None;
                }
                _ => {}
            }
        }
        let detail = format!("no type of the union accepts {}", kind(json));
        self.fail(at, self.expected_union(union), detail)
    }

    fn bytes(&self, json: &Json) -> Result<Vec<u8>, String> {
        let s = text(json)?;
        if self.avro_default {
            // Avro's JSON encoding of bytes: each char is one byte (ISO-8859-1).
            let byte = |c: char| u8::try_from(u32::from(c)).map_err(|_| format!("{c:?} is not a byte"));
            return s.chars().map(byte).collect();
        }
        BASE64.decode(s).map_err(|e| format!("not valid base64: {e}"))
    }

    fn fixed(&self, size: usize, json: &Json) -> Result<Vec<u8>, String> {
        let bytes = self.bytes(json)?;
        if bytes.len() == size {
            Ok(bytes)
        } else {
            Err(format!("decodes to {} bytes, not {size}", bytes.len()))
        }
    }

    fn decimal(&mut self, schema: &DecimalSchema, json: &Json, at: &str) -> Option<Value> {
        let unscaled = match self.unscaled(schema, json) {
            Ok(unscaled) => unscaled,
            Err((expected, detail)) => return self.fail(at, expected, detail),
        };
        let length = match &schema.inner {
            InnerDecimalSchema::Bytes => bytes_needed(unscaled).max(bytes_for_precision(schema.precision)),
            InnerDecimalSchema::Fixed(fixed) => fixed.size,
        };
        match twos_complement(unscaled, length) {
            Some(bytes) => Some(Value::Decimal(Decimal::from(bytes))),
            None => self.fail(at, decimal_expected(schema), format!("{json} does not fit in {length} bytes")),
        }
    }

    /// The unscaled value: from a decimal literal, or from a default's two's-complement bytes.
    fn unscaled(&self, schema: &DecimalSchema, json: &Json) -> Result<i128, (String, String)> {
        let wrong = |detail| (decimal_expected(schema), detail);
        match json {
            _ if self.avro_default => {
                let bytes = self.bytes(json).map_err(wrong)?;
                from_twos_complement(&bytes).ok_or_else(|| wrong("more than 128 bits".to_owned()))
            }
            Json::String(s) => unscaled_decimal(s, schema),
            // An integer is held exactly; a number with a fraction has gone through binary
            // floating point (1234567890123456.78 reads as ...456.8), so it is refused, not rounded.
            Json::Number(n) if n.is_i64() || n.is_u64() => unscaled_decimal(&n.to_string(), schema),
            Json::Number(n) => Err(wrong(format!(
                "{n} is a JSON number with a fraction, which loses digits; send the amount as a string (\"{}\")",
                example_amount(schema.scale)
            ))),
            other => Err(wrong(found("a decimal string", other))),
        }
    }

    fn expected(&self, schema: &Schema) -> String {
        match resolve(self.names, schema) {
            Some(Schema::Record(record)) => expected_record(record),
            Some(Schema::Union(union)) => self.expected_union(union),
            Some(schema) => expected(schema),
            None => "a known named type".to_owned(),
        }
    }

    /// "null, int or string".
    fn expected_union(&self, union: &UnionSchema) -> String {
        let names: Vec<String> =
            union.variants().iter().map(|s| type_name(resolve(self.names, s).unwrap_or(s))).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.concat(),
        }
    }
}

fn text(json: &Json) -> Result<&str, String> {
    json.as_str().ok_or_else(|| found("a string", json))
}

pub(crate) fn integer(json: &Json) -> Result<i64, String> {
    match json {
        Json::Number(n) if n.is_u64() => n.as_i64().ok_or_else(|| format!("{n} is out of the 64-bit range")),
        Json::Number(n) => n.as_i64().ok_or_else(|| format!("expected an integer, found {n}")),
        other => Err(found("an integer", other)),
    }
}

pub(crate) fn narrow(value: i64) -> Result<i32, String> {
    i32::try_from(value).map_err(|_| format!("{value} is out of the 32-bit range"))
}

pub(crate) fn float(json: &Json) -> Result<f32, String> {
    let wide = json.as_f64().ok_or_else(|| found("a number", json))?;
    #[allow(clippy::cast_possible_truncation)]
    let narrow = wide as f32;
    if narrow.is_finite() {
        Ok(narrow)
    } else {
        Err(format!("{wide} is out of the float range"))
    }
}

fn symbol(schema: &EnumSchema, json: &Json) -> Result<Value, String> {
    let s = text(json)?;
    let index = schema.symbols.iter().position(|symbol| symbol == s).ok_or_else(|| format!("unknown symbol {s:?}"))?;
    let index = u32::try_from(index).map_err(|_| "too many symbols".to_owned())?;
    Ok(Value::Enum(index, s.to_owned()))
}

/// An RFC 3339 string (any offset) or an integer count of `unit` nanoseconds since the epoch.
/// Finer digits than the unit are truncated (toward the past).
pub(crate) fn instant(json: &Json, unit: i128) -> Result<i64, String> {
    let Json::String(s) = json else {
        return integer(json).map_err(|_| found("a timestamp string or an integer", json));
    };
    let parsed = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not an RFC 3339 timestamp: {e}"))?;
    let count = parsed.unix_timestamp_nanos().div_euclid(unit);
    i64::try_from(count).map_err(|_| format!("{s:?} is out of range"))
}

/// "YYYY-MM-DD" or an integer count of days since 1970-01-01.
pub(crate) fn date(json: &Json) -> Result<i32, String> {
    let Json::String(s) = json else {
        return integer(json).map_err(|_| found("a date string or an integer", json)).and_then(narrow);
    };
    let parsed = time::Date::parse(s, format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("{s:?} is not a YYYY-MM-DD date: {e}"))?;
    Ok(parsed.to_julian_day() - UNIX_EPOCH_JULIAN_DAY)
}

/// "HH:MM:SS[.fraction]" or an integer count of `unit` nanoseconds after midnight.
pub(crate) fn time_of_day(json: &Json, unit: i128) -> Result<i64, String> {
    let nanos = if let Json::String(s) = json {
        let format = format_description!("[hour]:[minute]:[second][optional [.[subsecond]]]");
        let parsed = time::Time::parse(s, format).map_err(|e| format!("{s:?} is not a HH:MM:SS time: {e}"))?;
        let (h, m, sec, nano) = parsed.as_hms_nano();
        let seconds = i128::from(h) * 3600 + i128::from(m) * 60 + i128::from(sec);
        seconds * 1_000_000_000 + i128::from(nano)
    } else {
        let count = integer(json).map_err(|_| found("a time string or an integer", json))?;
        i128::from(count) * unit
    };
    if !(0..NANOS_PER_DAY).contains(&nanos) {
        return Err(format!("{json} is not within one day"));
    }
    i64::try_from(nanos / unit).map_err(|_| "time out of range".to_owned())
}

fn decimal_expected(schema: &DecimalSchema) -> String {
    let (precision, scale) = (schema.precision, schema.scale);
    format!("decimal with at most {precision} digits, {scale} after the point")
}

/// "129.90" for scale 2, for messages.
fn example_amount(scale: usize) -> String {
    if scale == 0 {
        "129".to_owned()
    } else {
        format!("129.{:0<scale$}", "9")
    }
}

/// The unscaled value of a plain decimal literal ("-12.34"), refusing rounding and overflow.
pub(crate) fn unscaled_decimal(literal: &str, schema: &DecimalSchema) -> Result<i128, (String, String)> {
    let (negative, unsigned) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let dangling_point = unsigned.contains('.') && fraction.is_empty();
    if whole.is_empty() || dangling_point || !digits_only(whole) || !digits_only(fraction) {
        let detail = format!("{literal:?} is not a plain decimal number (digits, optional '-' and '.', no exponent)");
        return Err((decimal_expected(schema), detail));
    }
    // Trailing zeros beyond the scale change nothing; other extra digits would need rounding.
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > schema.scale {
        let expected = format!("decimal with at most {} fraction digits", schema.scale);
        let detail = format!("{literal} has {} fraction digits; amounts are not rounded", fraction.len());
        return Err((expected, detail));
    }
    let digits = format!("{whole}{fraction:0<width$}", width = schema.scale);
    let digits = digits.trim_start_matches('0');
    if digits.len() > schema.precision {
        let expected = format!("decimal with at most {} digits", schema.precision);
        return Err((expected, format!("{literal} has {} digits", digits.len())));
    }
    let magnitude: i128 = if digits.is_empty() { Ok(0) } else { digits.parse() }
        .map_err(|_| (decimal_expected(schema), "unsupported: more than 38 digits".to_owned()))?;
    Ok(if negative { -magnitude } else { magnitude })
}

fn expected_record(record: &RecordSchema) -> String {
    format!("object (record {})", record.name.name())
}

/// What the contract expects for a schema that is not a record or union, for violations.
fn expected(schema: &Schema) -> String {
    let text = match schema {
        Schema::Null => "null",
        Schema::Boolean => "boolean",
        Schema::Int => "int (32-bit)",
        Schema::Long => "long (64-bit)",
        Schema::Float => "float",
        Schema::Double => "double",
        Schema::Bytes => "bytes (base64 string)",
        Schema::String => "string",
        Schema::Enum(e) => return format!("one of {}", e.symbols.join(", ")),
        Schema::Fixed(f) => return format!("{} bytes (base64 string)", f.size),
        Schema::Decimal(d) => return decimal_expected(d),
        Schema::Uuid(_) => "UUID string",
        Schema::Date => "date (YYYY-MM-DD) or days since 1970-01-01",
        Schema::TimeMillis => "time of day (HH:MM:SS.sss) or milliseconds after midnight",
        Schema::TimeMicros => "time of day (HH:MM:SS.ssssss) or microseconds after midnight",
        Schema::TimestampMillis => "RFC 3339 timestamp or epoch milliseconds",
        Schema::TimestampMicros => "RFC 3339 timestamp or epoch microseconds",
        Schema::TimestampNanos => "RFC 3339 timestamp or epoch nanoseconds",
        other => return type_name(other),
    };
    text.to_owned()
}

/// Short name of a type, for listing union branches.
fn type_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.name()),
        Schema::Enum(e) => format!("enum {}", e.name.name()),
        Schema::Fixed(f) => format!("fixed {}", f.name.name()),
        Schema::Ref { name } => name.name().to_owned(),
        Schema::Decimal(d) => format!("decimal({}, {})", d.precision, d.scale),
        Schema::Map(_) => "object (map)".to_owned(),
        Schema::TimestampMillis => "timestamp-millis".to_owned(),
        Schema::TimestampMicros => "timestamp-micros".to_owned(),
        other => other.to_string().to_lowercase(),
    }
}

/// `value` as JSON; `schema` (when known) gives decimal scales and union branches.
fn to_json(names: &Names, schema: Option<&Schema>, value: &Value) -> Json {
    let schema = schema.and_then(|s| resolve(names, s));
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) | Value::TimeMillis(i) => Json::from(*i),
        Value::Date(days) => date_text(*days),
        Value::Long(i) | Value::TimeMicros(i) => Json::from(*i),
        Value::LocalTimestampMillis(i) | Value::LocalTimestampMicros(i) => Json::from(*i),
        Value::LocalTimestampNanos(i) => Json::from(*i),
        Value::TimestampMillis(i) => timestamp(*i, MILLIS),
        Value::TimestampMicros(i) => timestamp(*i, MICROS),
        Value::TimestampNanos(i) => timestamp(*i, NANOS),
        Value::Float(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Value::Double(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Bytes(b) | Value::Fixed(_, b) => match schema {
            Some(Schema::Decimal(d)) => decimal_text(b, d.scale),
            _ => Json::String(BASE64.encode(b)),
        },
        Value::Decimal(d) => {
            let scale = if let Some(Schema::Decimal(d)) = schema { d.scale } else { 0 };
            decimal_text(&<Vec<u8>>::try_from(d).unwrap_or_default(), scale)
        }
        Value::BigDecimal(d) => Json::String(d.to_string()),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Uuid(u) => Json::String(u.hyphenated().to_string()),
        Value::Duration(_) => Json::Null,
        Value::Union(index, inner) => {
            let variant = match schema {
                Some(Schema::Union(u)) => usize::try_from(*index).ok().and_then(|i| u.variants().get(i)),
                _ => None,
            };
            to_json(names, variant, inner)
        }
        Value::Array(items) => {
            let items_schema = if let Some(Schema::Array(a)) = schema { Some(&*a.items) } else { None };
            Json::Array(items.iter().map(|v| to_json(names, items_schema, v)).collect())
        }
        Value::Map(entries) => {
            let values_schema = if let Some(Schema::Map(m)) = schema { Some(&*m.types) } else { None };
            let entry = |(k, v): (&String, &Value)| (k.clone(), to_json(names, values_schema, v));
            Json::Object(entries.iter().map(entry).collect())
        }
        Value::Record(fields) => {
            let field_schema = |name: &str| match schema {
                Some(Schema::Record(r)) => r.fields.iter().find(|f| f.name == name).map(|f| &f.schema),
                _ => None,
            };
            let entry = |(k, v): &(String, Value)| (k.clone(), to_json(names, field_schema(k), v));
            Json::Object(fields.iter().map(entry).collect())
        }
    }
}

/// Unscaled two's-complement bytes as a decimal string with exactly `scale` fraction digits.
fn decimal_text(bytes: &[u8], scale: usize) -> Json {
    from_twos_complement(bytes).map_or(Json::Null, |unscaled| decimal_string(unscaled, scale))
}

/// An unscaled value as a decimal string with exactly `scale` fraction digits.
pub(crate) fn decimal_string(unscaled: i128, scale: usize) -> Json {
    let digits = format!("{:0>width$}", unscaled.unsigned_abs(), width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    let point = if scale == 0 { "" } else { "." };
    Json::String(format!("{sign}{whole}{point}{fraction}"))
}

/// RFC 3339 UTC text of `count` units (of `unit` nanoseconds) since the epoch, with the unit's
/// digits ("2024-01-01T00:00:00.000Z" for milliseconds); the plain number if out of range.
pub(crate) fn timestamp(count: i64, unit: i128) -> Json {
    let digits = match unit {
        MILLIS => 3,
        MICROS => 6,
        _ => 9,
    };
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let instant =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(count) * unit).map(|t| t.to_offset(UtcOffset::UTC));
    match instant.map(|t| (t.format(format), i128::from(t.nanosecond()) / unit)) {
        Ok((Ok(head), fraction)) => Json::String(format!("{head}.{fraction:0digits$}Z")),
        _ => Json::from(count),
    }
}

pub(crate) fn date_text(days: i32) -> Json {
    days.checked_add(UNIX_EPOCH_JULIAN_DAY)
        .and_then(|julian| time::Date::from_julian_day(julian).ok())
        .and_then(|d| d.format(format_description!("[year]-[month]-[day]")).ok())
        .map_or_else(|| Json::from(days), Json::String)
}

#[cfg(test)]
#[path = "contract_tests.rs"]
mod tests;
