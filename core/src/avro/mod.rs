//! Confluent wire format: magic byte 0, the schema id big-endian, the Avro body; the hub's one
//! encoder per contract and its one reader of records ([`Reader`]).

pub(crate) mod decimal;
mod direct;
mod reader;

pub use reader::{DecodeError, Decoded, Reader};

use apache_avro::types::Value;
use apache_avro::Schema;
use serde_json::Value as Json;

use crate::contract::{json_to_avro, UnknownFields, Violation};

/// Encodes `value` (already valid for `schema`) with `schema_id` in front.
pub fn wire_format(schema: &Schema, schema_id: u32, value: Value) -> Result<Vec<u8>, String> {
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema).build().map_err(|e| e.to_string())?;
    let body = writer.write_value_to_vec(value).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// A contract's encoder, built once at start-up: the schema's names are resolved once instead of
/// on every record. The schema is leaked to give the writer a `'static` borrow; there is one per
/// contract and route, for the life of the process.
pub struct Encoder {
    schema: &'static Schema,
    schema_id: u32,
    writer: apache_avro::writer::datum::GenericDatumWriter<'static>,
    /// The contract compiled for JSON straight to Avro binary.
    direct: direct::Plan,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("schema_id", &self.schema_id).finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder of `schema` under `schema_id`.
    pub fn new(schema: Schema, schema_id: u32) -> Result<Self, String> {
        let schema: &'static Schema = Box::leak(Box::new(schema));
        let writer =
            apache_avro::writer::datum::GenericDatumWriter::builder(schema).build().map_err(|e| e.to_string())?;
        let direct = direct::Plan::new(schema);
        Ok(Self { schema, schema_id, writer, direct })
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        self.schema
    }

    /// Confluent wire format of `value` (validated against the schema).
    pub fn encode(&self, value: Value) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(256);
        out.push(0);
        out.extend_from_slice(&self.schema_id.to_be_bytes());
        self.writer.write_value(&mut out, value).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Confluent wire format of a JSON body of this contract: what
    /// [`json_to_avro`] then [`Encoder::encode`] would write, straight from the JSON when the
    /// body is plainly valid, through them (naming every violation) otherwise.
    pub fn encode_json(&self, json: &Json, unknown: UnknownFields) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(256);
        out.push(0);
        out.extend_from_slice(&self.schema_id.to_be_bytes());
        if self.direct.encode(json, unknown, &mut out).is_some() {
            return Ok(out);
        }
        let value = json_to_avro(self.schema, json, unknown).map_err(EncodeError::Contract)?;
        self.encode(value).map_err(EncodeError::Write)
    }
}

/// Why [`Encoder::encode_json`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The body breaks the contract: every violation.
    #[error("{}", describe(.0))]
    Contract(Vec<Violation>),
    /// The Avro writer refused the value.
    #[error("{0}")]
    Write(String),
}

/// "/items/0/quantity: expected an integer, found a string; ...".
fn describe(violations: &[Violation]) -> String {
    let parts: Vec<String> = violations.iter().map(|v| format!("{}: {}", v.pointer, v.detail)).collect();
    parts.join("; ")
}

/// The schema id of a wire-format payload, if it is one.
pub fn schema_id(payload: &[u8]) -> Option<u32> {
    match payload {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}
