//! Confluent wire format: magic byte 0, the schema id big-endian, the Avro body.

use apache_avro::types::Value;
use apache_avro::Schema;

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

/// The schema id of a wire-format payload, if it is one.
pub fn schema_id(payload: &[u8]) -> Option<u32> {
    match payload {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}
