//! The command-line options every Interchange binary shares (`hub` and `hub-bench`): where the
//! topology and the services are, and how to log.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::kafka::KafkaSettings;
use crate::registry::RegistrySettings;
use crate::telemetry::LogFormat;
use crate::CoreError;

/// Options every subcommand shares: where the topology and the services are.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The topology file.
    #[arg(long, env = "HUB_TOPOLOGY", default_value = "topology.toml", global = true)]
    pub topology: PathBuf,
    /// Put before every topic name (and so every subject): isolates environments sharing a cluster.
    #[arg(long, env = "HUB_TOPIC_PREFIX", default_value = "", global = true)]
    pub topic_prefix: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "HUB_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092", global = true)]
    pub bootstrap_servers: String,
    /// A Java-style .properties file of librdkafka settings (security.protocol, sasl.*, ssl.*).
    #[arg(long, env = "HUB_KAFKA_CONFIG", global = true)]
    pub kafka_config: Option<PathBuf>,
    /// One librdkafka property, key=value (as kcat's -X); repeatable, applied after --kafka-config.
    #[arg(short = 'X', long = "kafka-property", global = true)]
    pub kafka_properties: Vec<String>,
    /// Confluent-compatible schema registry base URL (Apicurio: .../apis/ccompat/v7).
    #[arg(long, env = "HUB_REGISTRY_URL", default_value = "http://127.0.0.1:8081/apis/ccompat/v7", global = true)]
    pub registry_url: String,
    /// Registry basic auth as user:password, sent on every registry request of every role and tool.
    #[arg(long, env = "HUB_REGISTRY_BASIC_AUTH", hide_env_values = true, global = true)]
    pub registry_basic_auth: Option<String>,
    /// Limit on one registry request, connecting included (connecting alone: at most 10s).
    #[arg(long, env = "HUB_REGISTRY_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s", global = true)]
    pub registry_timeout: std::time::Duration,
    /// PEM file of CA certificates to trust for an https registry, besides the system's.
    #[arg(long, env = "HUB_REGISTRY_CA_FILE", global = true)]
    pub registry_ca_file: Option<PathBuf>,
    /// Redis URL (idempotency keys, shared rate limits).
    #[arg(long, env = "HUB_REDIS_URL", default_value = "redis://127.0.0.1:6379", global = true)]
    pub redis_url: String,
    /// CQL contact points, comma-separated host:port.
    #[arg(long, env = "HUB_CQL_NODES", default_value = "127.0.0.1:9042", global = true)]
    pub cql_nodes: String,
    /// Log format: auto (JSON unless stderr is a terminal), json or text.
    #[arg(long, env = "HUB_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Auto, global = true)]
    pub log_format: LogFormatArg,
    /// Log filter, RUST_LOG syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,
}

impl Global {
    /// The registry settings every registry client of this process is built from.
    pub fn registry(&self) -> RegistrySettings {
        RegistrySettings {
            url: self.registry_url.clone(),
            basic_auth: self.registry_basic_auth.clone(),
            timeout: self.registry_timeout,
            ca_file: self.registry_ca_file.clone(),
        }
    }

    /// Passes the registry settings to a child `hub` (the benches' sub-processes) through its
    /// environment, so it reaches the registry exactly as this process does.
    pub fn registry_env(&self, command: &mut std::process::Command) {
        command.env("HUB_REGISTRY_URL", &self.registry_url);
        command.env("HUB_REGISTRY_TIMEOUT", humantime::format_duration(self.registry_timeout).to_string());
        match &self.registry_basic_auth {
            Some(auth) => command.env("HUB_REGISTRY_BASIC_AUTH", auth),
            None => command.env_remove("HUB_REGISTRY_BASIC_AUTH"),
        };
        match &self.registry_ca_file {
            Some(path) => command.env("HUB_REGISTRY_CA_FILE", path),
            None => command.env_remove("HUB_REGISTRY_CA_FILE"),
        };
    }

    /// Kafka settings from the bootstrap servers, the properties file and the `-X` properties.
    pub fn kafka(&self) -> Result<KafkaSettings, CoreError> {
        KafkaSettings::new(&self.bootstrap_servers, self.kafka_config.as_deref(), &self.kafka_properties)
    }

    /// Every service address of this process, with the Kafka settings already read by
    /// [`Global::kafka`] (each role reads what it needs).
    pub fn services(&self, kafka: KafkaSettings) -> crate::Services {
        crate::Services {
            kafka,
            registry: self.registry(),
            redis_url: Some(self.redis_url.clone()),
            cql_nodes: self.cql_nodes(),
        }
    }

    /// The CQL contact points.
    pub fn cql_nodes(&self) -> Vec<String> {
        self.cql_nodes.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
    }

    /// The log format to initialise telemetry with.
    pub fn log_format(&self) -> LogFormat {
        match self.log_format {
            LogFormatArg::Auto => LogFormat::Auto,
            LogFormatArg::Json => LogFormat::Json,
            LogFormatArg::Text => LogFormat::Text,
        }
    }
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Auto,
    Json,
    Text,
}
