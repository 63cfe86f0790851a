//! Records in and out: decoding any registered writer schema into our contracts, encoding ours.

use std::collections::HashMap;

use interchange_core::avro::Reader;
use interchange_core::contract::UnknownFields;
use interchange_core::topology::Topology;

pub(crate) use interchange_core::avro::DecodeError;

use super::error::ProcessorError;

/// A contract's encoders (each with its registered id) by full topic name.
type Output = HashMap<String, interchange_core::avro::Encoder>;

/// Decodes inputs through the registry (any compatible version a producer registered, read by
/// core's one [`Reader`]) and encodes outputs with the exact contracts of the topology.
#[derive(Debug)]
pub struct Codec {
    reader: Reader,
    /// Drives the async reader from the processor's blocking threads.
    runtime: tokio::runtime::Handle,
    outputs: HashMap<String, Output>,
}

impl Codec {
    /// Resolves the ids of every contract on `topics` (they must be registered).
    pub async fn new(
        topology: &Topology,
        registry: &interchange_core::registry::Registry,
        topics: &[String],
    ) -> Result<Self, ProcessorError> {
        let mut outputs: HashMap<String, Output> = HashMap::new();
        let mut readers = Vec::new();
        for topic in topology.topics.iter().filter(|t| topics.contains(&t.name)) {
            for name in &topic.schemas {
                let contract = topology
                    .contracts
                    .get(name)
                    .ok_or_else(|| ProcessorError::Config(format!("topic {}: no contract {name}", topic.name)))?;
                let id = registry.registered_id(&topic.subject(contract), &contract.text).await?;
                let encoder = interchange_core::avro::Encoder::new(contract.schema.clone(), id)
                    .map_err(|reason| ProcessorError::Encode { contract: name.clone(), reason })?;
                outputs.entry(name.clone()).or_default().insert(topic.name.clone(), encoder);
                readers.push((name.clone(), contract.schema.clone()));
            }
        }
        let reader = Reader::new(registry.clone(), readers);
        Ok(Self { reader, runtime: tokio::runtime::Handle::current(), outputs })
    }

    /// The contract name and JSON of a record, converted from its writer schema to ours.
    /// Call from a blocking thread (schemas are fetched once per id, then cached).
    pub fn decode(&self, payload: &[u8]) -> Result<(String, serde_json::Value), DecodeError> {
        self.runtime.block_on(self.reader.decode_json(payload))
    }

    /// Encodes `json` as contract `contract` for `topic`.
    pub(crate) fn encode(
        &self,
        contract: &str,
        topic: &str,
        json: &serde_json::Value,
    ) -> Result<Vec<u8>, ProcessorError> {
        let output = self.outputs.get(contract).ok_or_else(|| ProcessorError::Encode {
            contract: contract.to_owned(),
            reason: "not a known contract".to_owned(),
        })?;
        let encoder = output.get(topic).ok_or_else(|| ProcessorError::Encode {
            contract: contract.to_owned(),
            reason: format!("not carried by topic {topic}"),
        })?;
        encoder
            .encode_json(json, UnknownFields::Ignore)
            .map_err(|error| ProcessorError::Encode { contract: contract.to_owned(), reason: error.to_string() })
    }
}
