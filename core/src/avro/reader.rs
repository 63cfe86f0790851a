//! The one way the hub reads a Confluent Avro record: the writer's schema from the registry by
//! the record's id, resolved to the hub's contract.
//!
//! A record written with any registered schema that is compatible with the contract (an older or
//! newer version, a new optional field, a new enum symbol where the contract has a default) is
//! read; decimals are accepted in every length the Avro specification allows. What cannot be read
//! says why and names the schema id, so a dead letter points at the writer.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::Schema;
use serde_json::Value as Json;

use super::decimal;
use super::direct::Plan;
use crate::contract::avro_to_json;
use crate::registry::{Registry, SchemaById};

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No magic byte and schema id in front.
    #[error("not Confluent Avro: {0}")]
    NotAvro(String),
    /// The registry could not be asked: not the record's fault, retry.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    /// The id is not in the registry, or names a schema that is not usable Avro.
    #[error("schema id {id} {reason}")]
    UnknownSchema { id: u32, reason: String },
    /// The writer's record type is none of the contracts this reader reads.
    #[error("schema id {id}: record type {name} is not one this reader reads")]
    UnknownType { id: u32, name: String },
    /// The body does not decode with its own writer schema.
    #[error("schema id {id}: the body does not match its writer schema: {reason}")]
    Corrupt { id: u32, reason: String },
    /// The writer schema does not resolve to the contract, or a value breaks it.
    #[error("schema id {id} does not fit the contract {contract}: {reason}")]
    Contract { id: u32, contract: String, reason: String },
}

impl DecodeError {
    /// True when retrying the same record later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A record read into one of the reader's contracts.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The contract's name (`order_received`).
    pub contract: String,
    /// The writer's schema id.
    pub schema_id: u32,
    /// The value, shaped by the contract's schema.
    pub value: Value,
}

/// A contract this reader reads into.
#[derive(Debug)]
pub(super) struct Contract {
    name: String,
    schema: Schema,
    /// Named types of the schema, so references resolve while checking values.
    names: HashMap<Name, Schema>,
    /// The contract compiled for records written with its own schema.
    direct: Plan,
}

impl Contract {
    /// Contract `name` and its record's full name; `None` when the schema is not a record.
    pub(super) fn new(name: String, schema: Schema) -> Option<(String, Self)> {
        let full_name = full_name(&schema)?;
        let names = ResolvedSchema::new(&schema)
            .map(|r| r.get_names().iter().map(|(n, s)| (n.clone(), (*s).clone())).collect())
            .unwrap_or_default();
        let direct = Plan::new(&schema);
        Some((full_name, Self { name, schema, names, direct }))
    }
}

/// A writer schema fetched once per id: the schema is leaked to give its datum reader a
/// `'static` borrow; there is one per schema id the registry holds and a record named.
pub(super) struct Writer {
    full_name: Option<String>,
    reader: GenericDatumReader<'static>,
    /// The writer's schema is its contract's, exactly: its records can be read directly.
    pub(super) same_as_contract: bool,
}

impl Writer {
    /// A reader of records written with `schema`, which `contracts` may hold exactly.
    pub(super) fn new(schema: Schema, contracts: &HashMap<String, Contract>) -> Result<Self, String> {
        let full_name = full_name(&schema);
        let contract = full_name.as_ref().and_then(|name| contracts.get(name));
        let same_as_contract = contract.is_some_and(|c| same_schema(&c.schema, &schema));
        let schema: &'static Schema = Box::leak(Box::new(schema));
        let reader = GenericDatumReader::builder(schema).build().map_err(|e| e.to_string())?;
        Ok(Self { full_name, reader, same_as_contract })
    }
}

/// The same schema in every attribute apache-avro keeps (names, types, logical types,
/// defaults, order, aliases), not only the parsing canonical form.
fn same_schema(a: &Schema, b: &Schema) -> bool {
    matches!((serde_json::to_value(a), serde_json::to_value(b)), (Ok(a), Ok(b)) if a == b)
}

/// Reads `body` written by `writer` into `contract`: the general path.
pub(super) fn read_value(writer: &Writer, contract: &Contract, id: u32, mut body: &[u8]) -> Result<Value, DecodeError> {
    let written =
        writer.reader.read_value(&mut body).map_err(|e| DecodeError::Corrupt { id, reason: e.to_string() })?;
    let broken = |reason: String| DecodeError::Contract { id, contract: contract.name.clone(), reason };
    let widened = widen_decimals(written).map_err(broken)?;
    // With the contract's names resolved once: `resolve` alone rebuilt them for every record.
    let resolved = widened.resolve_with_names(&contract.schema, &contract.names).map_err(|e| broken(e.to_string()))?;
    check_decimals(resolved, &contract.schema, &contract.names).map_err(broken)
}

/// The JSON of `body` written by `writer` in `contract`'s shape: straight from the bytes when
/// the writer's schema is the contract's, through [`read_value`] otherwise (or when the direct
/// read declines: it then names what is wrong).
pub(super) fn read_json(writer: &Writer, contract: &Contract, id: u32, body: &[u8]) -> Result<Json, DecodeError> {
    if writer.same_as_contract {
        if let Some(json) = contract.direct.decode(body) {
            return Ok(json);
        }
    }
    let value = read_value(writer, contract, id, body)?;
    Ok(avro_to_json(&contract.schema, &value))
}

/// Reads records into the hub's contracts; writer schemas are fetched once per id.
pub struct Reader {
    registry: Registry,
    /// Contracts by record full name.
    contracts: HashMap<String, Contract>,
    writers: RwLock<HashMap<u32, Arc<Writer>>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let contracts: Vec<&String> = self.contracts.values().map(|c| &c.name).collect();
        f.debug_struct("Reader").field("contracts", &contracts).finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader of `contracts` (name and schema) through `registry`.
    pub fn new(registry: Registry, contracts: impl IntoIterator<Item = (String, Schema)>) -> Self {
        let contracts = contracts.into_iter().filter_map(|(name, schema)| Contract::new(name, schema)).collect();
        Self { registry, contracts, writers: RwLock::new(HashMap::new()) }
    }

    /// The schema of contract `name`, if this reader reads it.
    pub fn schema(&self, name: &str) -> Option<&Schema> {
        self.contracts.values().find(|c| c.name == name).map(|c| &c.schema)
    }

    /// Reads `payload` (Confluent wire format) into the contract its writer's record type names.
    pub async fn decode(&self, payload: &[u8]) -> Result<Decoded, DecodeError> {
        let (id, writer, contract, body) = self.locate(payload).await?;
        let value = read_value(&writer, contract, id, body)?;
        Ok(Decoded { contract: contract.name.clone(), schema_id: id, value })
    }

    /// Reads `payload` and turns it into the JSON shape the hub's contracts take
    /// ([`crate::contract::avro_to_json`]): the contract's name and the JSON.
    pub async fn decode_json(&self, payload: &[u8]) -> Result<(String, Json), DecodeError> {
        let (id, writer, contract, body) = self.locate(payload).await?;
        let json = read_json(&writer, contract, id, body)?;
        Ok((contract.name.clone(), json))
    }

    /// The schema id, writer, contract and Avro body of `payload`.
    async fn locate<'p>(&self, payload: &'p [u8]) -> Result<(u32, Arc<Writer>, &Contract, &'p [u8]), DecodeError> {
        let (id, body) = match payload {
            [0, a, b, c, d, rest @ ..] => (u32::from_be_bytes([*a, *b, *c, *d]), rest),
            [] => return Err(DecodeError::NotAvro("an empty value".to_owned())),
            _ => return Err(DecodeError::NotAvro("no magic byte 0 and 4-byte schema id in front".to_owned())),
        };
        let writer = self.writer(id).await?;
        let name = writer.full_name.clone().unwrap_or_else(|| "(not a record)".to_owned());
        let contract = self.contracts.get(&name).ok_or(DecodeError::UnknownType { id, name })?;
        Ok((id, writer, contract, body))
    }

    /// `decoded` as JSON (decimals as strings with the contract's scale, timestamps RFC 3339).
    pub fn to_json(&self, decoded: &Decoded) -> Json {
        match self.schema(&decoded.contract) {
            Some(schema) => avro_to_json(schema, &decoded.value),
            None => Json::Null,
        }
    }

    async fn writer(&self, id: u32) -> Result<Arc<Writer>, DecodeError> {
        if let Some(writer) = self.writers.read().ok().and_then(|w| w.get(&id).cloned()) {
            return Ok(writer);
        }
        let unknown = |reason: String| DecodeError::UnknownSchema { id, reason };
        let text = match self.registry.schema_by_id(id).await {
            Ok(SchemaById::Avro(text)) => text,
            Ok(SchemaById::NotAvro(kind)) => return Err(unknown(format!("is a {kind} schema, not Avro"))),
            Ok(SchemaById::Missing) => return Err(unknown("is not in the schema registry".to_owned())),
            Err(error) => return Err(DecodeError::Unavailable(error.to_string())),
        };
        let schema = Schema::parse_str(&text).map_err(|e| unknown(format!("does not parse as Avro: {e}")))?;
        let writer = Writer::new(schema, &self.contracts).map_err(|e| unknown(format!("cannot be read: {e}")))?;
        let writer = Arc::new(writer);
        if let Ok(mut writers) = self.writers.write() {
            writers.entry(id).or_insert_with(|| Arc::clone(&writer));
        }
        Ok(writer)
    }
}

fn full_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(record) => Some(record.name.fullname(None)),
        _ => None,
    }
}

/// Every decimal of a decoded value in 16 bytes, so resolution's length check passes whatever
/// length the writer chose.
fn widen_decimals(value: Value) -> Result<Value, String> {
    Ok(match value {
        Value::Decimal(d) => Value::Decimal(decimal::widen(&d).ok_or("a decimal of more than 128 bits")?),
        Value::Union(index, inner) => Value::Union(index, Box::new(widen_decimals(*inner)?)),
        Value::Array(items) => Value::Array(items.into_iter().map(widen_decimals).collect::<Result<_, _>>()?),
        Value::Map(entries) => {
            Value::Map(entries.into_iter().map(|(k, v)| Ok((k, widen_decimals(v)?))).collect::<Result<_, String>>()?)
        }
        Value::Record(fields) => {
            Value::Record(fields.into_iter().map(|(k, v)| Ok((k, widen_decimals(v)?))).collect::<Result<_, String>>()?)
        }
        other => other,
    })
}

/// Checks every decimal of a resolved value against the contract's precision and writes it in
/// the length the hub's encoder uses; the error names the field by JSON pointer (built on the
/// way out of a failure only, not for every field of every record).
fn check_decimals(value: Value, schema: &Schema, names: &HashMap<Name, Schema>) -> Result<Value, String> {
    let schema = match schema {
        Schema::Ref { name } => names.get(name).ok_or_else(|| format!(": unresolved type {name}"))?,
        other => other,
    };
    Ok(match (value, schema) {
        (Value::Decimal(d), Schema::Decimal(decimal)) => {
            Value::Decimal(decimal::fits(&d, decimal).map_err(|reason| format!(": {reason}"))?)
        }
        (Value::Union(index, inner), Schema::Union(union)) => {
            let variant = usize::try_from(index).ok().and_then(|i| union.variants().get(i));
            match variant {
                Some(variant) => Value::Union(index, Box::new(check_decimals(*inner, variant, names)?)),
                None => Value::Union(index, inner),
            }
        }
        (Value::Array(items), Schema::Array(array)) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| check_decimals(v, &array.items, names).map_err(|e| format!("/{i}{e}")))
                .collect::<Result<_, _>>()?,
        ),
        (Value::Map(entries), Schema::Map(map)) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let checked = check_decimals(v, &map.types, names).map_err(|e| format!("/{k}{e}"))?;
                    Ok((k, checked))
                })
                .collect::<Result<_, String>>()?,
        ),
        (Value::Record(fields), Schema::Record(record)) => Value::Record(
            fields
                .into_iter()
                .map(|(k, v)| {
                    let checked = match record.fields.iter().find(|f| f.name == k) {
                        Some(field) => check_decimals(v, &field.schema, names).map_err(|e| format!("/{k}{e}"))?,
                        None => v,
                    };
                    Ok((k, checked))
                })
                .collect::<Result<_, String>>()?,
        ),
        (other, _) => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(schema: &Schema) -> HashMap<Name, Schema> {
        let resolved = ResolvedSchema::new(schema).expect("names");
        resolved.get_names().iter().map(|(n, s)| (n.clone(), (*s).clone())).collect()
    }

    #[test]
    fn a_decimal_too_wide_is_named_by_its_pointer_and_a_fitting_one_passes() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "Order", "fields": [{"name": "items", "type": {"type": "array", "items":
                {"type": "record", "name": "Line", "fields": [{"name": "price", "type":
                  {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}}]}}},
               {"name": "extra", "type": ["null", "Line"]}]}"#,
        )
        .expect("schema");
        let line = |unscaled: i128| {
            let bytes = decimal::twos_complement(unscaled, 16).expect("bytes");
            Value::Record(vec![("price".to_owned(), Value::Decimal(bytes.into()))])
        };
        let order = |second: i128, extra: i128| {
            Value::Record(vec![
                ("items".to_owned(), Value::Array(vec![line(1), line(second)])),
                ("extra".to_owned(), Value::Union(1, Box::new(line(extra)))),
            ])
        };
        let names = names(&schema);
        assert!(check_decimals(order(9_999, 5), &schema, &names).is_ok());
        let error = check_decimals(order(12_345, 5), &schema, &names).expect_err("5 digits in decimal(4, 2)");
        assert_eq!(error, "/items/1/price: 5 digits, more than decimal(4, 2) holds");
        let error = check_decimals(order(1, -99_999), &schema, &names).expect_err("through the union");
        assert_eq!(error, "/extra/price: 5 digits, more than decimal(4, 2) holds");
    }
}
