//! JSON bodies to Avro values of a contract, with every violation named by its path.
//!
//! [`json_to_avro`] walks the contract and the body together and collects every
//! violation (RFC 6901 pointer, what the contract expects, what is wrong), so the
//! edge can answer one 422 problem+json listing them all. [`avro_to_json`] is the
//! inverse and produces the same JSON shape that [`json_to_avro`] accepts.

use apache_avro::schema::{
    DecimalSchema, EnumSchema, InnerDecimalSchema, Name, RecordField, RecordSchema,
    ResolvedSchema, UnionSchema,
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
    /// What is wrong, as a sentence fragment, e.g. "expected an integer, found a string".
    pub detail: String,
}

/// Converts a JSON body into an Avro value of `schema`, or lists every violation.
pub fn json_to_avro(
    schema: &Schema,
    json: &Json,
    unknown: UnknownFields,
) -> Result<Value, Vec<Violation>> {
    let names = named_schemas(schema);
    let converter = Converter { names: &names, unknown, avro_default: false };
    let mut violations = Vec::new();
    match converter.convert(schema, json, "", &mut violations) {
        Some(value) if violations.is_empty() => Ok(value),
        _ => Err(violations),
    }
}

/// The inverse, for reading records back: an Avro value to the JSON shape
/// [`json_to_avro`] accepts (decimals as strings with exactly `scale` fraction
/// digits, timestamps as RFC 3339 UTC strings, uuids as strings, enums as symbols,
/// unions as the plain inner value or null, maps as objects, bytes as base64).
pub fn avro_to_json(schema: &Schema, value: &Value) -> Json {
    let names = named_schemas(schema);
    Reader { names: &names }.to_json(Some(schema), value)
}

type Names<'s> = HashMap<Name, &'s Schema>;

/// Every named type (record, enum, fixed) of the schema by full name, so `Schema::Ref` resolves.
fn named_schemas(schema: &Schema) -> Names<'_> {
    ResolvedSchema::new(schema)
        .map(|resolved| resolved.get_names().clone())
        .unwrap_or_default()
}

fn resolve<'s>(names: &Names<'s>, schema: &'s Schema) -> Option<&'s Schema> {
    match schema {
        Schema::Ref { name } => names.get(name).copied(),
        other => Some(other),
    }
}

/// RFC 6901 pointer of `key` under `parent`.
fn child(parent: &str, key: &str) -> String {
    format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
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

/// Records a violation; always `None` so callers can `return fail(...)`.
fn fail<T>(out: &mut Vec<Violation>, at: &str, expected: impl Into<String>, detail: impl Into<String>) -> Option<T> {
    out.push(Violation { pointer: at.to_owned(), expected: expected.into(), detail: detail.into() });
    None
}

/// Nanoseconds per unit of an Avro time logical type.
const MILLIS: i128 = 1_000_000;
const MICROS: i128 = 1_000;
const NANOS: i128 = 1;
/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;
const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

struct Converter<'n, 's> {
    names: &'n Names<'s>,
    unknown: UnknownFields,
    /// Converting a field's Avro default: bytes are ISO-8859-1 strings (Avro spec), not base64.
    avro_default: bool,
}

impl<'s> Converter<'_, 's> {
    fn convert(&self, schema: &'s Schema, json: &'s Json, at: &str, out: &mut Vec<Violation>) -> Option<Value> {
        let Some(schema) = resolve(self.names, schema) else {
            return fail(out, at, "a known named type", "unsupported type: unresolved reference");
        };
        match schema {
            Schema::Record(record) => self.record(record, json, at, out),
            Schema::Array(array) => self.array(&array.items, json, at, out),
            Schema::Map(map) => self.map(&map.types, json, at, out),
            Schema::Union(union) => self.union(union, json, at, out),
            _ => self.scalar(schema, json, at, out),
        }
    }

    fn scalar(&self, schema: &Schema, json: &Json, at: &str, out: &mut Vec<Violation>) -> Option<Value> {
        let expected = self.expected(schema);
        let result = match schema {
            Schema::Null => json.is_null().then_some(Value::Null).ok_or_else(|| found("null", json)),
            Schema::Boolean => json.as_bool().map(Value::Boolean).ok_or_else(|| found("a boolean", json)),
            Schema::Int => integer(json).and_then(|i| narrow(i, "32-bit")).map(Value::Int),
            Schema::Long => integer(json).map(Value::Long),
            Schema::Float => float(json).map(Value::Float),
            Schema::Double => json.as_f64().map(Value::Double).ok_or_else(|| found("a number", json)),
            Schema::String => text(json).map(|s| Value::String(s.to_owned())),
            Schema::Bytes => self.bytes(json).map(Value::Bytes),
            Schema::Fixed(fixed) => self.fixed(fixed.size, json).map(|b| Value::Fixed(fixed.size, b)),
            Schema::Enum(enumeration) => symbol(enumeration, json),
            Schema::Decimal(decimal) => return self.decimal(decimal, json, at, out),
            Schema::Uuid(_) => text(json).and_then(|s| {
                Uuid::parse_str(s).map(Value::Uuid).map_err(|e| format!("{s:?} is not a UUID: {e}"))
            }),
            Schema::Date => date(json).map(Value::Date),
            Schema::TimeMillis => time_of_day(json, MILLIS).and_then(|t| narrow(t, "32-bit")).map(Value::TimeMillis),
            Schema::TimeMicros => time_of_day(json, MICROS).map(Value::TimeMicros),
            Schema::TimestampMillis => instant(json, MILLIS).map(Value::TimestampMillis),
            Schema::TimestampMicros => instant(json, MICROS).map(Value::TimestampMicros),
            Schema::TimestampNanos => instant(json, NANOS).map(Value::TimestampNanos),
            Schema::LocalTimestampMillis => integer(json).map(Value::LocalTimestampMillis),
            Schema::LocalTimestampMicros => integer(json).map(Value::LocalTimestampMicros),
            Schema::LocalTimestampNanos => integer(json).map(Value::LocalTimestampNanos),
            _ => Err(format!("unsupported type: {schema}")),
        };
        result.map_or_else(|detail| fail(out, at, expected, detail), Some)
    }

    fn record(&self, record: &'s RecordSchema, json: &'s Json, at: &str, out: &mut Vec<Violation>) -> Option<Value> {
        let Json::Object(object) = json else {
            return fail(out, at, self.expected_record(record), found("an object", json));
        };
        let before = out.len();
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let at = child(at, &field.name);
            if let Some(value) = self.field(field, object.get(&field.name), &at, out) {
                fields.push((field.name.clone(), value));
            }
        }
        if self.unknown == UnknownFields::Reject {
            self.unknown_fields(record, object, at, out);
        }
        (out.len() == before).then_some(Value::Record(fields))
    }

    fn field(&self, field: &'s RecordField, json: Option<&'s Json>, at: &str, out: &mut Vec<Violation>) -> Option<Value> {
        match (json, &field.default) {
            (Some(json), _) if !json.is_null() || self.accepts_null(&field.schema) => {
                self.convert(&field.schema, json, at, out)
            }
            (_, Some(default)) => {
                let defaults = Converter { names: self.names, unknown: UnknownFields::Ignore, avro_default: true };
                defaults.convert(&field.schema, default, at, out)
            }
            _ => fail(out, at, self.expected(&field.schema), "required field is missing"),
        }
    }

    fn unknown_fields(&self, record: &RecordSchema, object: &Map<String, Json>, at: &str, out: &mut Vec<Violation>) {
        for key in object.keys() {
            if !record.fields.iter().any(|field| &field.name == key) {
                let expected = format!("only the fields of record {}", record.name.name());
                out.push(Violation { pointer: child(at, key), expected, detail: "unknown field".to_owned() });
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

    fn array(&self, items: &'s Schema, json: &'s Json, at: &str, out: &mut Vec<Violation>) -> Option<Value> {
        let Json::Array(elements) = json else {
            return fail(out, at, "array", found("an array", json));
        };
        let converted: Vec<Option<Value>> = elements
            .iter()
            .enumerate()
            .map(|(index, element)| self.convert(items, element, &child(at, &index.to_string()), out))
            .collect();
        converted.into_iter().collect::<Option<Vec<_>>>().map(Value::Array)
    }

    fn map(&self, values: &'s Schema, json: &'s Json, at: &str, out: &mut Vec<Violation>) -> Option<Value> {
        let Json::Object(object) = json else {
            return fail(out, at, "object (map)", found("an object", json));
        };
        let converted: Vec<Option<(String, Value)>> = object
            .iter()
            .map(|(key, value)| self.convert(values, value, &child(at, key), out).map(|v| (key.clone(), v)))
            .collect();
        converted.into_iter().collect::<Option<HashMap<_, _>>>().map(Value::Map)
    }

    fn union(&self, union: &'s UnionSchema, json: &'s Json, at: &str, out: &mut Vec<Violation>) -> Option<Value> {
        let variants = union.variants();
        let is_null = |s: &Schema| matches!(s, Schema::Null);
        if json.is_null() {
            if let Some(index) = variants.iter().position(is_null) {
                return Some(Value::Union(u32::try_from(index).ok()?, Box::new(Value::Null)));
            }
        }
        let mut candidates = variants.iter().enumerate().filter(|(_, s)| !is_null(s));
        let only = match (candidates.next(), candidates.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        };
        if let Some((index, variant)) = only {
            // ["null", X]: X's own violations are the most precise answer.
            let mut inner = Vec::new();
            let value = self.convert(variant, json, at, &mut inner);
            if inner.is_empty() {
                return Some(Value::Union(u32::try_from(index).ok()?, Box::new(value?)));
            }
            let nullable = variants.len() > 1;
            out.extend(inner.into_iter().map(|mut v| {
                if nullable && v.pointer == at {
                    v.expected = format!("{} or null", v.expected);
                }
                v
            }));
            return None;
        }
        for (index, variant) in variants.iter().enumerate().filter(|(_, s)| !is_null(s)) {
            let mut scratch = Vec::new();
            if let Some(value) = self.convert(variant, json, at, &mut scratch) {
                if scratch.is_empty() {
                    return Some(Value::Union(u32::try_from(index).ok()?, Box::new(value)));
                }
            }
        }
        fail(out, at, self.expected_union(union), format!("no type of the union accepts {}", kind(json)))
    }

    fn bytes(&self, json: &Json) -> Result<Vec<u8>, String> {
        let s = text(json)?;
        if self.avro_default {
            // Avro's JSON encoding of bytes: each char is one byte (ISO-8859-1).
            return s.chars().map(|c| u8::try_from(u32::from(c)).map_err(|_| "byte out of range".to_owned())).collect();
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

    fn decimal(&self, schema: &DecimalSchema, json: &Json, at: &str, out: &mut Vec<Violation>) -> Option<Value> {
        if self.avro_default {
            return match self.bytes(json) {
                Ok(bytes) => Some(Value::Decimal(Decimal::from(bytes))),
                Err(detail) => fail(out, at, self.expected(&Schema::Bytes), detail),
            };
        }
        let literal = match json {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            other => return fail(out, at, decimal_expected(schema), found("a decimal string or number", other)),
        };
        let unscaled = match unscaled_decimal(&literal, schema) {
            Ok(unscaled) => unscaled,
            Err((expected, detail)) => return fail(out, at, expected, detail),
        };
        let length = match &schema.inner {
            InnerDecimalSchema::Bytes => bytes_needed(unscaled).max(bytes_for_precision(schema.precision)),
            InnerDecimalSchema::Fixed(fixed) => fixed.size,
        };
        match twos_complement(unscaled, length) {
            Some(bytes) => Some(Value::Decimal(Decimal::from(bytes))),
            None => fail(out, at, decimal_expected(schema), format!("{literal} does not fit in {length} bytes")),
        }
    }

    fn expected(&self, schema: &Schema) -> String {
        match resolve(self.names, schema) {
            Some(Schema::Record(record)) => self.expected_record(record),
            Some(Schema::Union(union)) => self.expected_union(union),
            Some(schema) => expected(schema),
            None => "a known named type".to_owned(),
        }
    }

    fn expected_record(&self, record: &RecordSchema) -> String {
        format!("object (record {})", record.name.name())
    }

    fn expected_union(&self, union: &UnionSchema) -> String {
        let names: Vec<String> = union.variants().iter().map(|s| type_name(resolve(self.names, s).unwrap_or(s))).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.concat(),
        }
    }
}

/// "expected a string, found a number".
fn found(wanted: &str, json: &Json) -> String {
    format!("expected {wanted}, found {}", kind(json))
}

fn text(json: &Json) -> Result<&str, String> {
    json.as_str().ok_or_else(|| found("a string", json))
}

fn integer(json: &Json) -> Result<i64, String> {
    match json {
        Json::Number(n) => n.as_i64().ok_or_else(|| {
            if n.is_u64() {
                format!("{n} is out of the 64-bit range")
            } else {
                format!("expected an integer, found {n}")
            }
        }),
        other => Err(found("an integer", other)),
    }
}

fn narrow(value: i64, range: &str) -> Result<i32, String> {
    i32::try_from(value).map_err(|_| format!("{value} is out of the {range} range"))
}

fn float(json: &Json) -> Result<f32, String> {
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
fn instant(json: &Json, unit: i128) -> Result<i64, String> {
    if let Json::String(s) = json {
        let parsed = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not an RFC 3339 timestamp: {e}"))?;
        let count = parsed.unix_timestamp_nanos().div_euclid(unit);
        return i64::try_from(count).map_err(|_| format!("{s:?} is out of range"));
    }
    integer(json).map_err(|_| found("a timestamp string or an integer", json))
}

/// "YYYY-MM-DD" or an integer count of days since 1970-01-01.
fn date(json: &Json) -> Result<i32, String> {
    if let Json::String(s) = json {
        let parsed = time::Date::parse(s, format_description!("[year]-[month]-[day]"))
            .map_err(|e| format!("{s:?} is not a YYYY-MM-DD date: {e}"))?;
        return Ok(parsed.to_julian_day() - UNIX_EPOCH_JULIAN_DAY);
    }
    integer(json).map_err(|_| found("a date string or an integer", json)).and_then(|d| narrow(d, "32-bit"))
}

/// "HH:MM:SS[.fraction]" or an integer count of `unit` nanoseconds after midnight.
fn time_of_day(json: &Json, unit: i128) -> Result<i64, String> {
    let count = if let Json::String(s) = json {
        let format = format_description!("[hour]:[minute]:[second][optional [.[subsecond]]]");
        let parsed = time::Time::parse(s, format).map_err(|e| format!("{s:?} is not a HH:MM:SS time: {e}"))?;
        let (h, m, sec, nano) = parsed.as_hms_nano();
        let seconds = i128::from(h) * 3600 + i128::from(m) * 60 + i128::from(sec);
        (seconds * 1_000_000_000 + i128::from(nano)) / unit
    } else {
        let count = integer(json).map_err(|_| found("a time string or an integer", json))?;
        if !(0..NANOS_PER_DAY / unit).contains(&i128::from(count)) {
            return Err(format!("{count} is not within one day"));
        }
        i128::from(count)
    };
    i64::try_from(count).map_err(|_| "time out of range".to_owned())
}

fn decimal_expected(schema: &DecimalSchema) -> String {
    format!("decimal with at most {} digits, {} after the point", schema.precision, schema.scale)
}

/// The unscaled value of a plain decimal literal ("-12.34"), refusing rounding and overflow.
fn unscaled_decimal(literal: &str, schema: &DecimalSchema) -> Result<i128, (String, String)> {
    let garbage = || {
        let detail = format!("{literal:?} is not a plain decimal number (digits, optional '-' and '.', no exponent)");
        (decimal_expected(schema), detail)
    };
    let (negative, unsigned) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || (unsigned.contains('.') && fraction.is_empty()) {
        return Err(garbage());
    }
    // Trailing zeros beyond the scale change nothing; other extra digits would need rounding.
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > schema.scale {
        let expected = format!("decimal with at most {} fraction digits", schema.scale);
        return Err((expected, format!("{literal} has {} fraction digits; amounts are not rounded", fraction.len())));
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

/// Fewest big-endian two's-complement bytes that hold `value`.
fn bytes_needed(value: i128) -> usize {
    (1..16).find(|&n| twos_complement(value, n).is_some()).unwrap_or(16)
}

/// Bytes apache-avro requires for `precision` digits when it resolves a decimal
/// (its `max_prec_for_len` check): shorter encodings fail reader-schema resolution.
fn bytes_for_precision(precision: usize) -> usize {
    (1..=16_i32)
        .find(|&n| (2.0_f64.powi(8 * n - 1) - 1.0).log10().floor() >= precision as f64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(16)
}

/// `value` as exactly `length` big-endian two's-complement bytes, if it fits.
fn twos_complement(value: i128, length: usize) -> Option<Vec<u8>> {
    let fill = if value < 0 { 0xFF } else { 0x00 };
    let full = value.to_be_bytes();
    if length >= full.len() {
        let mut bytes = vec![fill; length - full.len()];
        bytes.extend_from_slice(&full);
        return Some(bytes);
    }
    let (dropped, kept) = full.split_at(full.len() - length);
    let sign_kept = kept.first().map_or(value == 0, |b| (b & 0x80 != 0) == (value < 0));
    (dropped.iter().all(|&b| b == fill) && sign_kept).then(|| kept.to_vec())
}

/// The value of big-endian two's-complement bytes, if it fits in 128 bits.
fn from_twos_complement(bytes: &[u8]) -> Option<i128> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xFF } else { 0x00 };
    let start = bytes.len().saturating_sub(16);
    let (extra, tail) = bytes.split_at(start);
    if extra.iter().any(|&b| b != fill) || tail.first().is_some_and(|b| (b & 0x80 != 0) != negative) {
        return None;
    }
    let mut buffer = [fill; 16];
    buffer[16 - tail.len()..].copy_from_slice(tail);
    Some(i128::from_be_bytes(buffer))
}

/// What the contract expects for a non-composite schema, for violations.
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
        Schema::Array(_) => "array",
        Schema::Map(_) => "object (map)",
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
        Schema::LocalTimestampMillis => "local timestamp as milliseconds",
        Schema::LocalTimestampMicros => "local timestamp as microseconds",
        Schema::LocalTimestampNanos => "local timestamp as nanoseconds",
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
        Schema::Uuid(_) => "uuid".to_owned(),
        Schema::Date => "date".to_owned(),
        Schema::TimestampMillis => "timestamp-millis".to_owned(),
        Schema::TimestampMicros => "timestamp-micros".to_owned(),
        other => other.to_string().to_lowercase(),
    }
}

struct Reader<'n, 's> {
    names: &'n Names<'s>,
}

impl Reader<'_, '_> {
    fn to_json(&self, schema: Option<&Schema>, value: &Value) -> Json {
        let schema = schema.and_then(|s| match s {
            Schema::Ref { name } => self.names.get(name).copied(),
            other => Some(other),
        });
        match (value, schema) {
            (Value::Null, _) => Json::Null,
            (Value::Boolean(b), _) => Json::Bool(*b),
            (Value::Int(i), _) => Json::from(*i),
            (Value::Long(i), Some(Schema::TimestampMillis)) | (Value::TimestampMillis(i), _) => timestamp(*i, MILLIS),
            (Value::Long(i), Some(Schema::TimestampMicros)) | (Value::TimestampMicros(i), _) => timestamp(*i, MICROS),
            (Value::Long(i), Some(Schema::TimestampNanos)) | (Value::TimestampNanos(i), _) => timestamp(*i, NANOS),
            (Value::Long(i) | Value::TimeMicros(i), _) => Json::from(*i),
            (Value::LocalTimestampMillis(i) | Value::LocalTimestampMicros(i) | Value::LocalTimestampNanos(i), _) => {
                Json::from(*i)
            }
            (Value::Float(f), _) => serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
            (Value::Double(f), _) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            (Value::Bytes(b) | Value::Fixed(_, b), Some(Schema::Decimal(d))) => decimal_text(b, d.scale),
            (Value::Decimal(d), _) => decimal_text(&<Vec<u8>>::try_from(d).unwrap_or_default(), decimal_scale(schema)),
            (Value::BigDecimal(d), _) => Json::String(d.to_string()),
            (Value::Bytes(b) | Value::Fixed(_, b), _) => Json::String(BASE64.encode(b)),
            (Value::String(s) | Value::Enum(_, s), _) => Json::String(s.clone()),
            (Value::Uuid(u), _) => Json::String(u.hyphenated().to_string()),
            (Value::Date(d), _) => date_text(*d),
            (Value::TimeMillis(t), _) => Json::from(*t),
            (Value::Duration(d), _) => serde_json::json!({
                "months": u32::from(d.months()), "days": u32::from(d.days()), "millis": u32::from(d.millis())
            }),
            (Value::Union(index, inner), _) => {
                let variant = match schema {
                    Some(Schema::Union(u)) => usize::try_from(*index).ok().and_then(|i| u.variants().get(i)),
                    _ => None,
                };
                self.to_json(variant, inner)
            }
            (Value::Array(items), _) => {
                let item_schema = match schema {
                    Some(Schema::Array(a)) => Some(a.items.as_ref()),
                    _ => None,
                };
                Json::Array(items.iter().map(|v| self.to_json(item_schema, v)).collect())
            }
            (Value::Map(entries), _) => {
                let value_schema = match schema {
                    Some(Schema::Map(m)) => Some(m.types.as_ref()),
                    _ => None,
                };
                Json::Object(entries.iter().map(|(k, v)| (k.clone(), self.to_json(value_schema, v))).collect())
            }
            (Value::Record(fields), _) => {
                let field_schema = |name: &str| match schema {
                    Some(Schema::Record(r)) => r.fields.iter().find(|f| f.name == name).map(|f| &f.schema),
                    _ => None,
                };
                Json::Object(fields.iter().map(|(k, v)| (k.clone(), self.to_json(field_schema(k), v))).collect())
            }
        }
    }
}

fn decimal_scale(schema: Option<&Schema>) -> usize {
    match schema {
        Some(Schema::Decimal(d)) => d.scale,
        _ => 0,
    }
}

/// Unscaled two's-complement bytes as a decimal string with exactly `scale` fraction digits.
fn decimal_text(bytes: &[u8], scale: usize) -> Json {
    let Some(unscaled) = from_twos_complement(bytes) else {
        return Json::Null;
    };
    let digits = format!("{:0>width$}", unscaled.unsigned_abs(), width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        Json::String(format!("{sign}{whole}"))
    } else {
        Json::String(format!("{sign}{whole}.{fraction}"))
    }
}

/// RFC 3339 UTC text of `count` units of `unit` nanoseconds since the epoch; the number if out of range.
fn timestamp(count: i64, unit: i128) -> Json {
    let format = match unit {
        MILLIS => format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"),
        MICROS => format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"),
        _ => format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"),
    };
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(count) * unit)
        .ok()
        .and_then(|t| t.to_offset(UtcOffset::UTC).format(format).ok())
        .map_or_else(|| Json::from(count), Json::String)
}

fn date_text(days: i32) -> Json {
    days.checked_add(UNIX_EPOCH_JULIAN_DAY)
        .and_then(|julian| time::Date::from_julian_day(julian).ok())
        .and_then(|d| d.format(format_description!("[year]-[month]-[day]")).ok())
        .map_or_else(|| Json::from(days), Json::String)
}

#[cfg(test)]
#[path = "contract_tests.rs"]
mod tests;
