//! Kafka client settings shared by every role: bootstrap servers plus any librdkafka property.

pub mod admin;
pub mod lag;

use std::collections::BTreeMap;
use std::path::Path;

use rdkafka::client::ClientContext;
use rdkafka::config::{FromClientConfig, FromClientConfigAndContext};
use rdkafka::error::KafkaResult;
use rdkafka::ClientConfig;

use crate::error::CoreError;

/// Where the cluster is and how to talk to it (security.protocol, SASL, TLS files, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    /// librdkafka properties, applied to every client after the hub's defaults.
    pub properties: BTreeMap<String, String>,
}

impl KafkaSettings {
    /// Settings from the bootstrap list, an optional Java-style `.properties` file and
    /// `key=value` overrides (later wins).
    pub fn new(bootstrap_servers: &str, file: Option<&Path>, overrides: &[String]) -> Result<Self, CoreError> {
        let mut properties = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CoreError::Config { path: path.to_path_buf(), reason: e.to_string() })?;
            properties.extend(parse_properties(&text));
        }
        for item in overrides {
            let (key, value) = item.split_once('=').ok_or_else(|| CoreError::KafkaProperty {
                property: item.clone(),
                reason: "expected key=value".to_owned(),
            })?;
            properties.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        if properties.contains_key("bootstrap.servers") {
            return Err(CoreError::KafkaProperty {
                property: "bootstrap.servers".to_owned(),
                reason: "set it with --bootstrap-servers / HUB_BOOTSTRAP_SERVERS".to_owned(),
            });
        }
        Ok(Self { bootstrap_servers: bootstrap_servers.to_owned(), properties })
    }

    /// A client config with the bootstrap servers and every pass-through property.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers).set("client.id", client_id);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// A producer that only reports success once every in-sync replica has the record, never
    /// duplicates on retry, and partitions keys exactly as the Java client does.
    pub fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", client_id)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // Java's default partitioner for keyed records: murmur2 of the key bytes.
            .set("partitioner", "murmur2_random")
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// The one builder of the hub's consumers: every consumer reads `read_committed` (a record of an
/// aborted or open transaction is never seen), commits nothing on its own and, with no committed
/// offset, starts at the earliest record. The caller adds what its role needs; the operator's
/// pass-through properties are applied last, when the consumer is created, so they win.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    config: ClientConfig,
    properties: BTreeMap<String, String>,
}

impl KafkaSettings {
    /// A `read_committed` consumer of group `group_id`, identified as `client_id`.
    pub fn read_committed(&self, client_id: &str, group_id: &str) -> ConsumerConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", client_id)
            .set("group.id", group_id)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        ConsumerConfig { config, properties: self.properties.clone() }
    }
}

impl ConsumerConfig {
    /// Sets one librdkafka property (the operator's pass-through properties still win).
    #[must_use]
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.config.set(key, value);
        self
    }

    /// The final client config: the hub's settings, then the operator's properties.
    pub fn into_config(self) -> ClientConfig {
        let mut config = self.config;
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// Creates the consumer.
    pub fn create<T: FromClientConfig>(self) -> KafkaResult<T> {
        self.into_config().create()
    }

    /// Creates the consumer with `context`.
    pub fn create_with_context<C: ClientContext, T: FromClientConfigAndContext<C>>(self, context: C) -> KafkaResult<T> {
        self.into_config().create_with_context(context)
    }
}

/// Parses Java `.properties` text: `key=value` or `key: value`, `#` and `!` comments.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| {
            let at = line.find(['=', ':'])?;
            Some((line[..at].trim().to_owned(), line[at + 1..].trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_file_then_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("client.properties");
        std::fs::write(&file, "# secured\nsecurity.protocol=SASL_SSL\nsasl.mechanism: SCRAM-SHA-512\n").expect("write");
        let settings =
            KafkaSettings::new("b:9092", Some(&file), &["sasl.mechanism=PLAIN".to_owned()]).expect("settings");
        assert_eq!(settings.properties.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
        assert_eq!(settings.properties.get("sasl.mechanism").map(String::as_str), Some("PLAIN"));
        let config = settings.producer_config("t");
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
    }

    #[test]
    fn consumers_read_committed_and_the_operator_wins() {
        let settings = KafkaSettings::new("b:9092", None, &["fetch.wait.max.ms=50".to_owned()]).expect("settings");
        let config = settings.read_committed("t", "g").set("fetch.wait.max.ms", "10").into_config();
        assert_eq!(config.get("isolation.level"), Some("read_committed"));
        assert_eq!(config.get("group.id"), Some("g"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("fetch.wait.max.ms"), Some("50"), "pass-through properties are applied last");
    }

    #[test]
    fn override_without_equals_is_refused() {
        let err = KafkaSettings::new("b:9092", None, &["oops".to_owned()]).expect_err("no equals sign");
        assert!(err.to_string().contains("oops"), "{err}");
    }
}
