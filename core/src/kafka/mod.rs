//! Kafka client settings shared by every role: bootstrap servers plus any librdkafka property.

pub mod admin;
pub mod lag;

use std::collections::BTreeMap;
use std::path::Path;

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
    fn override_without_equals_is_refused() {
        let err = KafkaSettings::new("b:9092", None, &["oops".to_owned()]).expect_err("no equals sign");
        assert!(err.to_string().contains("oops"), "{err}");
    }
}
