//! Command-line surface of `hub`: global connection options and one subcommand per role or tool.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Interchange: a Kafka-native integration hub.
///
/// Every option can also be set through the environment variable shown; flags win.
#[derive(Debug, Parser)]
#[command(name = "hub", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

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
    pub fn registry(&self) -> interchange_core::registry::RegistrySettings {
        interchange_core::registry::RegistrySettings {
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
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Auto,
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process: the ingest edge, the processors and the HTTP sinks.
    Run(RunArgs),
    /// Run the HTTP ingest edge.
    ///
    /// Each partner is identified from the request's headers (API key or JWT, then its webhook
    /// signature) before its body is read. A correlation id a partner supplies is scoped to it
    /// (`<partner>:<id>`), so partners never collide. Beside each order route it serves the
    /// order status API, behind the same limits: `GET <route>/{id}`, `GET <route>/{id}/events`
    /// and `GET <route>?order_id=` (the partner's own order id; only ever the caller's orders).
    /// The routes are in /openapi.json.
    Ingest(IngestArgs),
    /// Run the stateful processors.
    Process(ProcessArgs),
    /// Run the HTTP sink connectors (deliveries to partners and client notifications).
    ///
    /// A sink serves the partners its topology entry lists (`partners = [...]`): each command goes
    /// to the partner it names, with that partner's endpoint, secret, rate limit and breaker; a
    /// command for a partner the sink does not serve is a dead letter, never another partner's.
    Sink(SinkArgs),
    /// Check, apply, describe or render the topics of the topology.
    #[command(subcommand)]
    Topology(TopologyCommand),
    /// Check or register the Avro contracts with the schema registry.
    #[command(subcommand)]
    Schemas(SchemasCommand),
    /// Create or update the CQL read model (keyspace and tables) the projector writes and the
    /// order status API reads.
    #[command(subcommand)]
    Readmodel(ReadModelCommand),
    /// List dead letters, or replay them to their source topics (filters: partner, correlation
    /// id, stage, time range).
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Load generators that measure the hub on the local stack against baselines.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Stand-in partners for a first run: publishes demo stock (SKU-1 to SKU-9), then serves an
    /// ERP and a client callback receiver that log what they receive and answer 201.
    Demo(DemoArgs),
    /// Exit 0 when a URL answers 2xx: the health check of the container image (no curl in it).
    Probe(ProbeArgs),
}

/// `hub probe` options.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The URL to GET, e.g. http://127.0.0.1:8080/readyz.
    pub url: String,
    /// Give up after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub timeout: std::time::Duration,
}

/// `hub demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where the demo ERP listens (the reference topology's acme-erp base URL).
    #[arg(long, default_value = "127.0.0.1:18082")]
    pub erp: std::net::SocketAddr,
    /// Where the demo client callback receiver listens (acme-shop's base URL).
    #[arg(long, default_value = "127.0.0.1:18081")]
    pub callback: std::net::SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum ReadModelCommand {
    /// Apply cql/readmodel.cql to the keyspace of every cql_projector sink (CREATE ... IF NOT
    /// EXISTS: idempotent).
    Migrate(MigrateArgs),
}

/// `hub readmodel migrate` options.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Copies of each row: the replication factor of a new keyspace.
    #[arg(long, env = "HUB_CQL_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: u32,
    /// Data center for NetworkTopologyStrategy (production); SimpleStrategy when not given (development).
    #[arg(long, env = "HUB_CQL_DATACENTER")]
    pub datacenter: Option<String>,
    /// Print the statements instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Drive the ingest edge with realistic orders; compare with the HTTP and Kafka ceilings.
    Ingest(crate::bench::IngestBenchArgs),
    /// Measure the order processor: exactly-once against at-least-once, and state restore.
    Process(crate::bench::process::ProcessBenchArgs),
    /// Measure the read-model projector: states projected per second and state-topic commit to
    /// readable row latency, against raw CQL inserts.
    Project(crate::bench::project::ProjectBenchArgs),
    /// Measure the HTTP sink: deliveries/s against bare reqwest, the rate limiter's accuracy, and
    /// a sink's memory with a million commands waiting.
    Sink(crate::bench::sink::SinkBenchArgs),
    /// The whole flow end to end (edge, processor, sinks, a test ERP and client) under open-loop load.
    Flow(crate::bench::flow::FlowBenchArgs),
}

/// `hub process` options.
#[derive(Debug, Clone, Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    pub processor: interchange_processors::ProcessorConfig,
}

/// `hub run` options: those of every role.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub edge: interchange_ingest::IngestConfig,
    #[command(flatten)]
    pub processor: interchange_processors::ProcessorConfig,
    #[command(flatten)]
    pub sink: interchange_sinks::SinkConfig,
}

/// `hub sink` options.
#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    #[command(flatten)]
    pub sink: interchange_sinks::SinkConfig,
}

/// `hub ingest` options.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub edge: interchange_ingest::IngestConfig,
}

#[derive(Debug, Subcommand)]
pub enum TopologyCommand {
    /// Validate the topology and its contracts offline; lists every error at once.
    Check,
    /// Create missing topics, raise partition counts and fix configs; refuses unsafe changes.
    Apply(ApplyArgs),
    /// Show declared against actual for every topic.
    Describe(ApplyArgs),
    /// Render the topics as resources for another tool (deterministic; never edit the output).
    Render(RenderArgs),
}

/// What `hub topology render` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderTarget {
    /// Strimzi `KafkaTopic` resources (kafka.strimzi.io/v1), one per topic.
    Strimzi,
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// The format to render.
    #[arg(value_enum)]
    pub target: RenderTarget,
    /// Name of the Strimzi `Kafka` cluster (the `strimzi.io/cluster` label).
    #[arg(long, default_value = "interchange")]
    pub cluster: String,
    /// Where to write: `-` for stdout, a directory (writes `topics.yaml` in it) or a file.
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// Lower replication factor and min.insync.replicas to the broker count (development clusters).
    #[arg(long, env = "HUB_ALLOW_FEWER_REPLICAS")]
    pub allow_fewer_replicas: bool,
    /// Print the plan without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Test every contract against the registry without registering.
    Check,
    /// Register every contract under its subject with BACKWARD compatibility.
    Register,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Show the dead letters that match (one line each, or JSON lines).
    List(DlqListArgs),
    /// Re-publish the matching dead letters' original records (same key, value, headers and event
    /// id, so partners' idempotency holds) to their source topics.
    Replay(DlqReplayArgs),
}

/// Which dead letters.
#[derive(Debug, Clone, Args)]
pub struct DlqFilterArgs {
    /// Dead-letter topic as declared in the topology (repeatable); default: every one in use.
    #[arg(long)]
    pub topic: Vec<String>,
    /// Only those a sink gave up on for this partner.
    #[arg(long)]
    pub partner: Option<String>,
    /// Only this order (the record key).
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Only from this stage, e.g. sink:erp-dispatch or processor:order-saga.
    #[arg(long)]
    pub stage: Option<String>,
    /// Dead-lettered at or after: an RFC 3339 time or a duration ago (2h, 30m).
    #[arg(long)]
    pub since: Option<String>,
    /// Dead-lettered before: an RFC 3339 time or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DlqListArgs {
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DlqReplayArgs {
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    /// Show what would be re-published and send nothing.
    #[arg(long)]
    pub dry_run: bool,
}
