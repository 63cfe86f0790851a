//! Avro binary straight to the hub's JSON shape, for a record written with the contract's own
//! schema: what reading it, resolving it and [`crate::contract::avro_to_json`] give, without
//! the intermediate values. Anything unexpected (a truncated body, a decimal wider than the
//! contract, an unknown symbol) is declined with `None`: the general path then names it.

use apache_avro::Uuid;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value as Json};

use super::{Node, Plan, UuidForm};
use crate::avro::decimal::{bytes_for_precision, bytes_needed, from_twos_complement, twos_complement};
use crate::contract as c;

impl Plan {
    /// The JSON of an Avro body written with this plan's schema, or `None` to take the general path.
    pub(crate) fn decode(&self, body: &[u8]) -> Option<Json> {
        let mut input = body;
        read(&self.nodes, 0, &mut input)
    }
}

fn read(nodes: &[Node], index: usize, input: &mut &[u8]) -> Option<Json> {
    Some(match nodes.get(index)? {
        Node::Null => Json::Null,
        Node::Boolean => match take(input, 1)? {
            [0] => Json::Bool(false),
            [1] => Json::Bool(true),
            _ => return None,
        },
        Node::Int | Node::TimeMillis => Json::from(int(input)?),
        Node::Long | Node::TimeMicros => Json::from(long(input)?),
        Node::Date => c::date_text(int(input)?),
        Node::TimestampMillis => c::timestamp(long(input)?, c::MILLIS),
        Node::TimestampMicros => c::timestamp(long(input)?, c::MICROS),
        Node::TimestampNanos => c::timestamp(long(input)?, c::NANOS),
        Node::Float => {
            let value = f32::from_le_bytes(take(input, 4)?.try_into().ok()?);
            serde_json::Number::from_f64(f64::from(value)).map_or(Json::Null, Json::Number)
        }
        Node::Double => {
            let value = f64::from_le_bytes(take(input, 8)?.try_into().ok()?);
            serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number)
        }
        Node::String => Json::String(std::str::from_utf8(bytes(input)?).ok()?.to_owned()),
        Node::Bytes => Json::String(BASE64.encode(bytes(input)?)),
        Node::Fixed(size) => Json::String(BASE64.encode(take(input, *size)?)),
        Node::Enum(symbols) => Json::String(symbols.get(usize::try_from(int(input)?).ok()?)?.clone()),
        Node::Uuid(form) => {
            let uuid = match form {
                UuidForm::String => Uuid::parse_str(std::str::from_utf8(bytes(input)?).ok()?).ok()?,
                UuidForm::Bytes => Uuid::from_slice(bytes(input)?).ok()?,
                UuidForm::Fixed => Uuid::from_slice(take(input, 16)?).ok()?,
            };
            Json::String(uuid.hyphenated().to_string())
        }
        Node::Decimal(schema) => {
            let raw = match &schema.inner {
                apache_avro::schema::InnerDecimalSchema::Bytes => bytes(input)?,
                apache_avro::schema::InnerDecimalSchema::Fixed(fixed) => take(input, fixed.size)?,
            };
            let unscaled = from_twos_complement(raw)?;
            let digits = unscaled.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1);
            let length = match &schema.inner {
                apache_avro::schema::InnerDecimalSchema::Bytes => {
                    bytes_needed(unscaled).max(bytes_for_precision(schema.precision))
                }
                apache_avro::schema::InnerDecimalSchema::Fixed(fixed) => fixed.size,
            };
            // The general path refuses an empty decimal too ("more than 128 bits").
            let odd = raw.is_empty() || raw.len() > 16;
            if odd || digits > schema.precision || twos_complement(unscaled, length).is_none() {
                return None;
            }
            c::decimal_string(unscaled, schema.scale)
        }
        Node::Array(items) => {
            let mut out = Vec::new();
            blocks(input, |input| {
                out.push(read(nodes, *items, input)?);
                Some(())
            })?;
            Json::Array(out)
        }
        Node::Map(values) => {
            let mut out = Map::new();
            blocks(input, |input| {
                let key = std::str::from_utf8(bytes(input)?).ok()?.to_owned();
                out.insert(key, read(nodes, *values, input)?);
                Some(())
            })?;
            Json::Object(out)
        }
        Node::Nullable { null, other } => {
            let branch = long(input)?;
            match (null, other) {
                (Some(null), _) if *null == branch => Json::Null,
                (_, Some((position, node))) if *position == branch => read(nodes, *node, input)?,
                _ => return None,
            }
        }
        Node::Record(fields) => {
            let mut out = Map::new();
            for field in fields {
                out.insert(field.name.clone(), read(nodes, field.node, input)?);
            }
            Json::Object(out)
        }
        Node::Unsupported => return None,
    })
}

/// The items of an array or map: blocks of a count (negative: followed by the block's size in
/// bytes), ending with a zero count. A count larger than the bytes left is declined, so a
/// corrupt count cannot make a long loop.
fn blocks(input: &mut &[u8], mut item: impl FnMut(&mut &[u8]) -> Option<()>) -> Option<()> {
    loop {
        let mut count = long(input)?;
        if count == 0 {
            return Some(());
        }
        if count < 0 {
            count = count.checked_neg()?;
            long(input)?;
        }
        if usize::try_from(count).ok()? > input.len() {
            return None;
        }
        for _ in 0..count {
            item(input)?;
        }
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Some(head)
}

/// Length-prefixed bytes.
fn bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = usize::try_from(long(input)?).ok()?;
    take(input, length)
}

fn int(input: &mut &[u8]) -> Option<i32> {
    i32::try_from(long(input)?).ok()
}

/// Avro's zig-zag variable-length long (at most ten bytes).
fn long(input: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            #[allow(clippy::cast_possible_wrap)]
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}
