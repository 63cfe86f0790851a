//! Avro in tests through a Confluent-compatible library (schema_registry_converter), not the hub's
//! own codec: what an upstream producer or a data team's consumer would use.
#![allow(dead_code)]

use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;

use super::{registry_url, repo};

/// A contract from schemas/.
pub fn contract(name: &str) -> apache_avro::Schema {
    let text = std::fs::read_to_string(repo().join(format!("schemas/{name}.avsc"))).expect("contract");
    apache_avro::Schema::parse_str(&text).expect("parses")
}

/// Encodes `json` (the contract's JSON shape) for `topic` under TopicNameStrategy
/// (`record` None) or TopicRecordNameStrategy (`record` Some(full name)).
pub async fn encode(contract_name: &str, topic: &str, record: Option<&str>, json: &serde_json::Value) -> Vec<u8> {
    let schema = contract(contract_name);
    let value = interchange_core::contract::json_to_avro(&schema, json, interchange_core::contract::UnknownFields::Reject)
        .unwrap_or_else(|v| panic!("{contract_name}: {v:?}"));
    let apache_avro::types::Value::Record(fields) = value else { panic!("a record") };
    let fields: Vec<(&str, apache_avro::types::Value)> = fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let encoder = AvroEncoder::new(SrSettings::new(registry_url()));
    let strategy = match record {
        None => SubjectNameStrategy::TopicNameStrategy(topic.to_owned(), false),
        Some(name) => SubjectNameStrategy::TopicRecordNameStrategy(topic.to_owned(), name.to_owned()),
    };
    encoder.encode(fields, strategy).await.expect("encodes with the registry's schema")
}

/// Decodes a record with the registry's schema; returns the record's full name and its JSON in
/// the shape of our contract `reader` (schema resolution from the writer's version).
pub async fn decode(decoder: &AvroDecoder, payload: &[u8], reader: &str) -> (String, serde_json::Value) {
    let decoded = decoder.decode(Some(payload)).await.expect("decodes");
    let name = decoded.name.map(|n| n.fullname(None)).unwrap_or_default();
    let schema = contract(reader);
    let value = decoded.value.resolve(&schema).expect("resolves to our contract");
    (name, interchange_core::contract::avro_to_json(&schema, &value))
}

/// A decoder on the stack's registry.
pub fn decoder() -> AvroDecoder {
    AvroDecoder::new(SrSettings::new(registry_url()))
}
