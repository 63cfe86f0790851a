//! Avro in tests through a Confluent-compatible library (schema_registry_converter), not the hub's
//! own codec: what an upstream producer or a data team's consumer would use.
#![allow(dead_code)]

use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;

use super::{registry_url, repo};

/// A contract from schemas/, parsed once per test binary (decoding thousands of records must
/// not parse the schema file each time).
pub fn contract(name: &str) -> apache_avro::Schema {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, apache_avro::Schema>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().expect("contract cache");
    cache
        .entry(name.to_owned())
        .or_insert_with(|| {
            let text = std::fs::read_to_string(repo().join(format!("schemas/{name}.avsc"))).expect("contract");
            apache_avro::Schema::parse_str(&text).expect("parses")
        })
        .clone()
}

/// Encodes `json` (the contract's JSON shape) for `topic` under TopicNameStrategy
/// (`record` None) or TopicRecordNameStrategy (`record` Some(full name)).
pub async fn encode(contract_name: &str, topic: &str, record: Option<&str>, json: &serde_json::Value) -> Vec<u8> {
    encode_with(&encoder(), contract_name, topic, record, json).await
}

/// A Confluent encoder: it caches what the registry answered, so one kept for a batch asks the
/// registry once per subject, not once per record.
pub fn encoder() -> AvroEncoder {
    AvroEncoder::new(SrSettings::new(registry_url()))
}

/// [`encode`] with `encoder` (and its cache).
pub async fn encode_with(
    encoder: &AvroEncoder,
    contract_name: &str,
    topic: &str,
    record: Option<&str>,
    json: &serde_json::Value,
) -> Vec<u8> {
    let schema = contract(contract_name);
    let value =
        interchange_core::contract::json_to_avro(&schema, json, interchange_core::contract::UnknownFields::Reject)
            .unwrap_or_else(|v| panic!("{contract_name}: {v:?}"));
    let apache_avro::types::Value::Record(fields) = value else { panic!("a record") };
    let fields: Vec<(&str, apache_avro::types::Value)> = fields.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let strategy = match record {
        None => SubjectNameStrategy::TopicNameStrategy(topic.to_owned(), false),
        Some(name) => SubjectNameStrategy::TopicRecordNameStrategy(topic.to_owned(), name.to_owned()),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match tokio::time::timeout(std::time::Duration::from_secs(10), encoder.encode(fields.clone(), strategy.clone()))
            .await
        {
            Ok(result) => break result.expect("encodes with the registry's schema"),
            Err(_) if attempt < 5 => eprintln!("registry did not answer within 10 s; asking again"),
            Err(_) => panic!("registry did not answer five times"),
        }
    }
}

/// Decodes a record with the registry's schema; returns the record's full name and its JSON in
/// the shape of our contract `reader` (schema resolution from the writer's version).
pub async fn decode(decoder: &AvroDecoder, payload: &[u8], reader: &str) -> (String, serde_json::Value) {
    // A registry call can stall (seen once with Apicurio under load): bound it and ask again.
    let mut attempt = 0;
    let decoded = loop {
        attempt += 1;
        match tokio::time::timeout(std::time::Duration::from_secs(10), decoder.decode(Some(payload))).await {
            Ok(result) => break result.expect("decodes"),
            Err(_) if attempt < 5 => eprintln!("registry did not answer within 10 s; asking again"),
            Err(_) => panic!("registry did not answer five times"),
        }
    };
    let name = decoded.name.map(|n| n.fullname(None)).unwrap_or_default();
    let schema = contract(reader);
    let value = decoded.value.resolve(&schema).expect("resolves to our contract");
    (name, interchange_core::contract::avro_to_json(&schema, &value))
}

/// A decoder on the stack's registry.
pub fn decoder() -> AvroDecoder {
    AvroDecoder::new(SrSettings::new(registry_url()))
}
