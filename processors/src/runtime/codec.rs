//! Records in and out: decoding any registered writer schema into our contracts, encoding ours.

use std::collections::HashMap;

use apache_avro::Schema;
use interchange_core::contract::{avro_to_json, json_to_avro, UnknownFields};
use interchange_core::topology::Topology;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;

use super::error::ProcessorError;

/// A contract the processor writes, with its registered id per topic.
#[derive(Debug)]
struct Output {
    schema: Schema,
    /// Encoder (with the registered id) by full topic name.
    encoders: HashMap<String, interchange_core::avro::Encoder>,
}

/// Decodes inputs through the registry (any version a producer registered) and encodes outputs
/// with the exact contracts of the topology.
pub struct Codec {
    /// The async decoder, driven from the processor's blocking threads through `runtime`.
    decoder: AvroDecoder,
    runtime: tokio::runtime::Handle,
    /// Our contracts by record full name, to read into.
    readers: HashMap<String, (String, Schema)>,
    outputs: HashMap<String, Output>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").field("readers", &self.readers.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not Confluent Avro: {0}")]
    NotAvro(String),
    /// The registry could not be asked: not the record's fault, retry.
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    #[error("record type {0} is not one this processor reads")]
    UnknownType(String),
    #[error("does not fit the contract: {0}")]
    Contract(String),
}

impl Codec {
    /// Resolves the ids of every contract on `topics` (they must be registered).
    pub async fn new(
        topology: &Topology,
        registry_url: &str,
        registry: &interchange_core::registry::Registry,
        topics: &[String],
    ) -> Result<Self, ProcessorError> {
        let mut outputs: HashMap<String, Output> = HashMap::new();
        let mut readers = HashMap::new();
        for topic in topology.topics.iter().filter(|t| topics.contains(&t.name)) {
            for name in &topic.schemas {
                let contract = topology
                    .contracts
                    .get(name)
                    .ok_or_else(|| ProcessorError::Config(format!("topic {}: no contract {name}", topic.name)))?;
                let id = registry.registered_id(&topic.subject(contract), &contract.text).await?;
                let encoder = interchange_core::avro::Encoder::new(contract.schema.clone(), id)
                    .map_err(|reason| ProcessorError::Encode { contract: name.clone(), reason })?;
                outputs
                    .entry(name.clone())
                    .or_insert_with(|| Output { schema: contract.schema.clone(), encoders: HashMap::new() })
                    .encoders
                    .insert(topic.name.clone(), encoder);
                readers.insert(contract.full_name.clone(), (name.clone(), contract.schema.clone()));
            }
        }
        let settings = SrSettings::new(registry_url.to_owned());
        Ok(Self { decoder: AvroDecoder::new(settings), runtime: tokio::runtime::Handle::current(), readers, outputs })
    }

    /// The contract name and JSON of a record, converted from its writer schema to ours.
    /// Call from a blocking thread (schemas are fetched once per id, then cached).
    pub fn decode(&self, payload: &[u8]) -> Result<(String, serde_json::Value), DecodeError> {
        let decoded = self
            .runtime
            .block_on(self.decoder.decode_with_schema(Some(payload)))
            .map_err(|e| {
                if e.retriable {
                    DecodeError::Unavailable(e.error.clone())
                } else {
                    DecodeError::NotAvro(e.error.clone())
                }
            })?
            .ok_or_else(|| DecodeError::NotAvro("empty payload".to_owned()))?;
        let full_name = decoded.name.as_ref().map(|n| n.fullname(None)).unwrap_or_default();
        let (contract, reader) =
            self.readers.get(&full_name).ok_or_else(|| DecodeError::UnknownType(full_name.clone()))?;
        let value = decoded.value.resolve(reader).map_err(|e| DecodeError::Contract(e.to_string()))?;
        Ok((contract.clone(), avro_to_json(reader, &value)))
    }

    /// Encodes `json` as contract `contract` for `topic`.
    pub fn encode(&self, contract: &str, topic: &str, json: &serde_json::Value) -> Result<Vec<u8>, ProcessorError> {
        let output = self.outputs.get(contract).ok_or_else(|| ProcessorError::Encode {
            contract: contract.to_owned(),
            reason: "not a known contract".to_owned(),
        })?;
        let encoder = output.encoders.get(topic).ok_or_else(|| ProcessorError::Encode {
            contract: contract.to_owned(),
            reason: format!("not carried by topic {topic}"),
        })?;
        let value =
            json_to_avro(&output.schema, json, UnknownFields::Ignore).map_err(|violations| ProcessorError::Encode {
                contract: contract.to_owned(),
                reason: violations
                    .iter()
                    .map(|v| format!("{}: {}", v.pointer, v.detail))
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
        encoder.encode(value).map_err(|reason| ProcessorError::Encode { contract: contract.to_owned(), reason })
    }
}
