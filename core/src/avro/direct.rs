//! JSON straight to Avro binary along a contract compiled once: no intermediate Avro `Value`, no
//! second validation pass, no names resolved per record.
//!
//! It takes exactly what [`crate::contract::json_to_avro`] takes, through the same conversion
//! functions, and writes what apache-avro writes for the value that function builds. Whatever it
//! is not sure of (a body with violations, a field left to a default it cannot write, a union of
//! two non-null types, a type it does not know) it declines with `None`, and the caller takes
//! the general path, which also names every violation.

use std::collections::HashMap;

use apache_avro::schema::{DecimalSchema, InnerDecimalSchema, Name, ResolvedSchema, UuidSchema};
use apache_avro::{Schema, Uuid};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value as Json;

use super::decimal::{bytes_for_precision, bytes_needed, twos_complement};
use crate::contract::{self as c, UnknownFields};

/// One node of a compiled contract; children are indexes into [`Plan::nodes`].
#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    String,
    Bytes,
    Fixed(usize),
    Enum(Vec<String>),
    Uuid(UuidForm),
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    Decimal(DecimalSchema),
    Array(usize),
    Map(usize),
    /// A union with at most one type besides null: the branch indexes.
    Nullable {
        null: Option<i64>,
        other: Option<(i64, usize)>,
    },
    Record(Vec<Field>),
    /// Left to the general path.
    Unsupported,
}

#[derive(Debug, Clone, Copy)]
enum UuidForm {
    String,
    Bytes,
    Fixed,
}

#[derive(Debug)]
struct Field {
    name: String,
    node: usize,
    /// The JSON null is this field's value (its type is null or a union with null), not absence.
    takes_null: bool,
    /// The default's encoding, when a missing field takes one this path can write.
    default: Option<Vec<u8>>,
}

/// A contract compiled for [`Plan::encode`].
#[derive(Debug)]
pub(crate) struct Plan {
    nodes: Vec<Node>,
}

impl Plan {
    /// Compiles `schema`; parts it does not handle are left to the general path at run time.
    pub(crate) fn new(schema: &Schema) -> Self {
        let names: HashMap<Name, &Schema> =
            ResolvedSchema::new(schema).map(|resolved| resolved.get_names().clone()).unwrap_or_default();
        let mut compiler = Compiler { names: &names, nodes: Vec::new(), named: HashMap::new() };
        compiler.compile(schema);
        Self { nodes: compiler.nodes }
    }

    /// Appends the Avro binary of `json` to `out`, or declines (`out` is then left as it was).
    pub(crate) fn encode(&self, json: &Json, unknown: UnknownFields, out: &mut Vec<u8>) -> Option<()> {
        let start = out.len();
        let walk = Walk { nodes: &self.nodes, unknown, default: false };
        let written = walk.node(0, json, out);
        if written.is_none() {
            out.truncate(start);
        }
        written
    }
}

struct Compiler<'n, 's> {
    names: &'n HashMap<Name, &'s Schema>,
    nodes: Vec<Node>,
    /// Named records already compiled (so references, and recursion, reuse them).
    named: HashMap<Name, usize>,
}

impl<'s> Compiler<'_, 's> {
    fn compile(&mut self, schema: &'s Schema) -> usize {
        let schema = match schema {
            Schema::Ref { name } => match self.named.get(name) {
                Some(&index) => return index,
                None => match self.names.get(name) {
                    Some(named) => *named,
                    None => return self.push(Node::Unsupported),
                },
            },
            other => other,
        };
        let node = match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int => Node::Int,
            Schema::Long => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::String => Node::String,
            Schema::Bytes => Node::Bytes,
            Schema::Fixed(fixed) => Node::Fixed(fixed.size),
            Schema::Enum(e) => Node::Enum(e.symbols.clone()),
            Schema::Uuid(UuidSchema::String) => Node::Uuid(UuidForm::String),
            Schema::Uuid(UuidSchema::Bytes) => Node::Uuid(UuidForm::Bytes),
            Schema::Uuid(UuidSchema::Fixed(f)) if f.size == 16 => Node::Uuid(UuidForm::Fixed),
            Schema::Date => Node::Date,
            Schema::TimeMillis => Node::TimeMillis,
            Schema::TimeMicros => Node::TimeMicros,
            Schema::TimestampMillis => Node::TimestampMillis,
            Schema::TimestampMicros => Node::TimestampMicros,
            Schema::TimestampNanos => Node::TimestampNanos,
            Schema::Decimal(d) => Node::Decimal(d.clone()),
            Schema::Array(array) => {
                let index = self.push(Node::Unsupported);
                let items = self.compile(&array.items);
                self.nodes[index] = Node::Array(items);
                return index;
            }
            Schema::Map(map) => {
                let index = self.push(Node::Unsupported);
                let values = self.compile(&map.types);
                self.nodes[index] = Node::Map(values);
                return index;
            }
            Schema::Union(union) => return self.union(union.variants()),
            Schema::Record(record) => {
                let index = self.push(Node::Unsupported);
                self.named.insert(record.name.clone(), index);
                let fields = record
                    .fields
                    .iter()
                    .map(|field| {
                        let node = self.compile(&field.schema);
                        // Avro's JSON encoding of a default: bytes-like values are ISO-8859-1
                        // text there, not base64, so those are left to the general path.
                        let walk = Walk { nodes: &self.nodes, unknown: UnknownFields::Ignore, default: true };
                        let mut encoded = Vec::new();
                        let default =
                            field.default.as_ref().and_then(|d| walk.node(node, d, &mut encoded)).map(|()| encoded);
                        Field { name: field.name.clone(), node, takes_null: self.takes_null(&field.schema), default }
                    })
                    .collect();
                self.nodes[index] = Node::Record(fields);
                return index;
            }
            _ => Node::Unsupported,
        };
        self.push(node)
    }

    fn union(&mut self, variants: &'s [Schema]) -> usize {
        let index = self.push(Node::Unsupported);
        let mut null = None;
        let mut others = Vec::new();
        for (position, variant) in variants.iter().enumerate() {
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            if matches!(variant, Schema::Null) {
                null = Some(position);
            } else {
                others.push((position, variant));
            }
        }
        if let [] | [_] = others.as_slice() {
            let other = others.first().map(|&(position, variant)| (position, self.compile(variant)));
            self.nodes[index] = Node::Nullable { null, other };
        }
        index
    }

    fn takes_null(&self, schema: &Schema) -> bool {
        let schema = match schema {
            Schema::Ref { name } => self.names.get(name).copied(),
            other => Some(other),
        };
        match schema {
            Some(Schema::Null) => true,
            Some(Schema::Union(union)) => union.variants().iter().any(|s| matches!(s, Schema::Null)),
            _ => false,
        }
    }

    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }
}

/// One encoding walk.
struct Walk<'p> {
    nodes: &'p [Node],
    unknown: UnknownFields,
    /// Writing a field's default (Avro's JSON encoding): bytes-like values are declined.
    default: bool,
}

impl Walk<'_> {
    fn node(&self, index: usize, json: &Json, out: &mut Vec<u8>) -> Option<()> {
        match self.nodes.get(index)? {
            Node::Null => json.is_null().then_some(()),
            Node::Boolean => {
                out.push(u8::from(json.as_bool()?));
                Some(())
            }
            Node::Int => int_of(out, c::integer(json).and_then(c::narrow)),
            Node::Date => int_of(out, c::date(json)),
            Node::TimeMillis => int_of(out, c::time_of_day(json, c::MILLIS).and_then(c::narrow)),
            Node::Long => long_of(out, c::integer(json)),
            Node::TimeMicros => long_of(out, c::time_of_day(json, c::MICROS)),
            Node::TimestampMillis => long_of(out, c::instant(json, c::MILLIS)),
            Node::TimestampMicros => long_of(out, c::instant(json, c::MICROS)),
            Node::TimestampNanos => long_of(out, c::instant(json, c::NANOS)),
            Node::Float => {
                out.extend_from_slice(&c::float(json).ok()?.to_le_bytes());
                Some(())
            }
            Node::Double => {
                out.extend_from_slice(&json.as_f64()?.to_le_bytes());
                Some(())
            }
            Node::String => {
                bytes(out, json.as_str()?.as_bytes());
                Some(())
            }
            Node::Bytes if !self.default => {
                bytes(out, &BASE64.decode(json.as_str()?).ok()?);
                Some(())
            }
            Node::Fixed(size) if !self.default => {
                let decoded = BASE64.decode(json.as_str()?).ok()?;
                (decoded.len() == *size).then(|| out.extend_from_slice(&decoded))
            }
            Node::Enum(symbols) => {
                let text = json.as_str()?;
                long(out, i64::try_from(symbols.iter().position(|s| s == text)?).ok()?);
                Some(())
            }
            Node::Uuid(form) => {
                let uuid = Uuid::parse_str(json.as_str()?).ok()?;
                match form {
                    UuidForm::String => bytes(out, uuid.to_string().as_bytes()),
                    UuidForm::Bytes => bytes(out, uuid.as_bytes()),
                    UuidForm::Fixed => out.extend_from_slice(uuid.as_bytes()),
                }
                Some(())
            }
            Node::Decimal(schema) if !self.default => decimal(schema, json, out),
            Node::Array(items) => {
                let elements = json.as_array()?;
                if !elements.is_empty() {
                    long(out, i64::try_from(elements.len()).ok()?);
                    for element in elements {
                        self.node(*items, element, out)?;
                    }
                }
                out.push(0);
                Some(())
            }
            Node::Map(values) => {
                let object = json.as_object()?;
                if !object.is_empty() {
                    long(out, i64::try_from(object.len()).ok()?);
                    for (key, value) in object {
                        bytes(out, key.as_bytes());
                        self.node(*values, value, out)?;
                    }
                }
                out.push(0);
                Some(())
            }
            Node::Nullable { null, other } => match (json, null, other) {
                (Json::Null, Some(null), _) => {
                    long(out, *null);
                    Some(())
                }
                (_, _, Some((position, node))) => {
                    long(out, *position);
                    self.node(*node, json, out)
                }
                _ => None,
            },
            Node::Record(fields) => self.record(fields, json, out),
            Node::Bytes | Node::Fixed(_) | Node::Decimal(_) | Node::Unsupported => None,
        }
    }

    fn record(&self, fields: &[Field], json: &Json, out: &mut Vec<u8>) -> Option<()> {
        let object = json.as_object()?;
        let mut present = 0;
        for field in fields {
            let value = object.get(&field.name);
            present += usize::from(value.is_some());
            match value {
                Some(value) if !value.is_null() || field.takes_null => self.node(field.node, value, out)?,
                _ => out.extend_from_slice(field.default.as_deref()?),
            }
        }
        // An unknown field is a violation the general path names.
        (self.unknown == UnknownFields::Ignore || present == object.len()).then_some(())
    }
}

/// A decimal as the general path writes it: the unscaled value in the contract's length.
fn decimal(schema: &DecimalSchema, json: &Json, out: &mut Vec<u8>) -> Option<()> {
    let unscaled = match json {
        Json::String(s) => c::unscaled_decimal(s, schema).ok()?,
        Json::Number(n) if n.is_i64() || n.is_u64() => c::unscaled_decimal(&n.to_string(), schema).ok()?,
        _ => return None,
    };
    match &schema.inner {
        InnerDecimalSchema::Bytes => {
            let length = bytes_needed(unscaled).max(bytes_for_precision(schema.precision));
            bytes(out, &twos_complement(unscaled, length)?);
        }
        InnerDecimalSchema::Fixed(fixed) => out.extend_from_slice(&twos_complement(unscaled, fixed.size)?),
    }
    Some(())
}

fn int_of<E>(out: &mut Vec<u8>, value: Result<i32, E>) -> Option<()> {
    long(out, i64::from(value.ok()?));
    Some(())
}

fn long_of<E>(out: &mut Vec<u8>, value: Result<i64, E>) -> Option<()> {
    long(out, value.ok()?);
    Some(())
}

/// Avro's zig-zag variable-length long.
fn long(out: &mut Vec<u8>, value: i64) {
    #[allow(clippy::cast_sign_loss)]
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        #[allow(clippy::cast_possible_truncation)]
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(n as u8);
}

/// Length-prefixed bytes (Avro `bytes` and `string`).
fn bytes(out: &mut Vec<u8>, data: &[u8]) {
    long(out, i64::try_from(data.len()).unwrap_or(i64::MAX));
    out.extend_from_slice(data);
}

#[path = "direct_read.rs"]
mod read;

#[cfg(test)]
#[path = "direct_tests.rs"]
mod tests;
