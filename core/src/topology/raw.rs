//! Stage one of the topology: the serde shape of `topology.toml`, unchecked.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// `topology.toml` as written. [`RawTopology::validate`](super::validate) turns it into a
/// [`Topology`](super::Topology) or the complete list of what is wrong with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopology {
    /// Folder of the `.avsc` contracts, relative to the topology file.
    #[serde(default = "default_schemas_dir")]
    pub schemas_dir: String,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default, rename = "topic")]
    pub topics: Vec<RawTopic>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
    #[serde(default, rename = "processor")]
    pub processors: Vec<RawProcessor>,
    #[serde(default, rename = "sink")]
    pub sinks: Vec<RawSink>,
    #[serde(default, rename = "partner")]
    pub partners: Vec<RawPartner>,
}

fn default_schemas_dir() -> String {
    "schemas".to_owned()
}

/// Values a topic takes when it does not set them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    #[serde(default = "default_min_isr")]
    pub min_insync_replicas: i32,
}

impl Default for RawDefaults {
    fn default() -> Self {
        Self { replication_factor: default_replication_factor(), min_insync_replicas: default_min_isr() }
    }
}

fn default_replication_factor() -> i32 {
    3
}

fn default_min_isr() -> i32 {
    2
}

/// Kafka's `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupPolicy {
    Delete,
    Compact,
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

impl CleanupPolicy {
    /// The value of Kafka's `cleanup.policy` topic config.
    pub fn as_kafka(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Compact => "compact",
            Self::CompactDelete => "compact,delete",
        }
    }

    /// Parses Kafka's `cleanup.policy` value (order and spaces ignored).
    pub fn from_kafka(value: &str) -> Option<Self> {
        let mut parts: Vec<&str> = value.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        parts.sort_unstable();
        match parts.as_slice() {
            ["delete"] => Some(Self::Delete),
            ["compact"] => Some(Self::Compact),
            ["compact", "delete"] => Some(Self::CompactDelete),
            _ => None,
        }
    }

    /// Whether the log keeps the latest record per key.
    pub fn is_compacted(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }
}

/// One `[[topic]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopic {
    pub name: String,
    #[serde(default)]
    pub doc: String,
    pub partitions: i32,
    pub replication_factor: Option<i32>,
    pub min_insync_replicas: Option<i32>,
    /// Name of the field records are keyed by; topics read together must share it.
    pub key: String,
    pub cleanup_policy: CleanupPolicy,
    /// `retention.ms`; absent means the broker default (infinite for compacted topics).
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// Schema names (file stems under `schemas_dir`) of the values this topic carries.
    pub schemas: Vec<String>,
    /// Any other topic-level Kafka config, passed through as is.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// One `[[route]]` of the ingest edge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: String,
    pub topic: String,
    pub schema: String,
    /// Partners allowed to call this route.
    pub partners: Vec<String>,
}

/// One `[[processor]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcessor {
    pub name: String,
    #[serde(default)]
    pub doc: String,
    /// Topics consumed and co-partitioned with `state`.
    pub inputs: Vec<String>,
    /// Compacted topic holding the processor's state, keyed like the inputs.
    pub state: String,
    /// Compacted topics read whole by every instance (lookup tables); not co-partitioned.
    #[serde(default)]
    pub lookups: Vec<String>,
    pub outputs: Vec<String>,
    pub dead_letter: String,
    /// When a transaction commits: `interval` (every `commit_interval`, the default) or
    /// `adaptive` (as soon as no input is waiting, at most `commit_interval` after it opened).
    #[serde(default)]
    pub commit: CommitPolicy,
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    pub params: ProcessorParams,
}

/// When a processor commits its open transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CommitPolicy {
    /// As soon as the input waiting has been read (the last commit is done, as the loop is
    /// synchronous): a quiet processor commits each record at once, a busy one commits the
    /// larger batches that arrived during the previous commit; `commit_interval` and `max_batch`
    /// still bound a transaction. Lower latency at low load, more transactions: each costs the
    /// broker a commit marker per partition written.
    Adaptive,
    /// When the transaction is `commit_interval` old or holds `max_batch` records (Kafka
    /// Streams' `commit.interval.ms`). The default.
    #[default]
    Interval,
}

fn default_commit_interval() -> Duration {
    Duration::from_millis(100)
}

fn default_max_batch() -> usize {
    500
}

impl ProcessorParams {
    /// The machine file a processor interprets, and what it reads as `param.<name>`: a declared
    /// processor's `values`; an order saga run from a file, its tunables.
    pub fn machine(&self) -> Option<(&std::path::Path, BTreeMap<String, super::machine::ParamValue>)> {
        use super::machine::ParamValue::{Table, Text};
        match self {
            ProcessorParams::Declared { machine, values, .. } => Some((machine, values.clone())),
            ProcessorParams::OrderSaga {
                machine: Some(machine),
                erp_partner,
                erp_partner_by_shop,
                discount_percent,
                discount_min_total,
                dispatch_deadline,
                ..
            } => {
                let values = [
                    ("erp_partner", Text(erp_partner.clone())),
                    ("erp_partner_by_shop", Table(erp_partner_by_shop.clone())),
                    ("discount_percent", Text(discount_percent.to_string())),
                    ("discount_min_total", Text(discount_min_total.clone())),
                    ("dispatch_deadline", Text(humantime::format_duration(*dispatch_deadline).to_string())),
                ];
                Some((machine, values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
            }
            ProcessorParams::OrderSaga { machine: None, .. } => None,
        }
    }
}

/// The closed set of processor kinds; one `match` builds each runtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProcessorParams {
    /// The reference order saga.
    OrderSaga {
        /// Partner that receives dispatches: the default ERP, for shops not in `erp_partner_by_shop`.
        erp_partner: String,
        /// The ERP of each shop (the order's `partner`), e.g. `globex-shop = "globex-erp"`.
        #[serde(default)]
        erp_partner_by_shop: BTreeMap<String, String>,
        #[serde(default)]
        discount_percent: u8,
        /// Order total (decimal string) from which the discount applies.
        #[serde(default = "default_discount_min_total")]
        discount_min_total: String,
        /// How long a dispatched order may wait for its result before it is compensated.
        #[serde(with = "humantime_serde")]
        dispatch_deadline: Duration,
        /// How long an order in a terminal state (COMPLETED, REJECTED, COMPENSATED) stays in the
        /// store before a tombstone on the state topic deletes it.
        #[serde(with = "humantime_serde", default = "default_terminal_retention")]
        terminal_retention: Duration,
        /// Runs the saga declared in this file (`machines/order_saga.toml`, relative to the
        /// topology), these tunables its `params.values`, instead of the coded one.
        #[serde(default)]
        machine: Option<std::path::PathBuf>,
    },
    /// A state machine declared in a file (states, inputs, transitions): no code.
    Declared {
        /// The machine file, relative to the topology file.
        machine: std::path::PathBuf,
        /// Values the machine's expressions read as `param.<name>` (the partner a flow pays
        /// through, say), so one machine file serves several processors.
        #[serde(default)]
        values: BTreeMap<String, super::machine::ParamValue>,
        /// How long a state in a terminal status stays before a tombstone deletes it.
        #[serde(with = "humantime_serde", default = "default_terminal_retention")]
        terminal_retention: Duration,
    },
}

fn default_terminal_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_discount_min_total() -> String {
    "0".to_owned()
}

/// One `[[sink]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub name: String,
    pub input: String,
    /// Topic that delivery results are written to, if the kind reports any.
    pub results: Option<String>,
    pub dead_letter: String,
    pub params: SinkParams,
}

/// The closed set of sink kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkParams {
    /// Delivers commands to partners' HTTP APIs, each command to the partner its `partner` field
    /// names (one sink, many partners: each with its own endpoint, secrets, limits and breaker).
    Http {
        /// The one-partner form (`partner = "a"`); set exactly one of it and `partners`. After
        /// validation it is folded into `partners` and is `None`.
        #[serde(default)]
        partner: Option<String>,
        /// The partners this sink serves (`partners = ["a", "b"]`); after validation, all of
        /// them, whichever form the file used.
        #[serde(default)]
        partners: Vec<String>,
        /// Schema names of the commands on `input` this sink delivers.
        commands: Vec<String>,
    },
    /// Projects the state topic into the CQL read model.
    CqlProjector {
        keyspace: String,
        #[serde(with = "humantime_serde")]
        timeline_ttl: Duration,
    },
}

impl SinkParams {
    /// The partners an HTTP sink serves, in either form (`partner` first, then `partners`);
    /// none for other kinds.
    pub fn http_partners(&self) -> Vec<&str> {
        match self {
            Self::Http { partner, partners, .. } => partner.iter().chain(partners.iter()).map(String::as_str).collect(),
            Self::CqlProjector { .. } => Vec::new(),
        }
    }
}

/// Where a secret comes from; never written inline in the topology.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file whose contents (trimmed) are the secret; mounted Kubernetes secrets.
    File(String),
}

/// One `[[partner]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartner {
    pub name: String,
    #[serde(default)]
    pub doc: String,
    pub inbound: Option<RawInbound>,
    pub outbound: Option<RawOutbound>,
}

/// How a partner authenticates when calling the ingest edge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInbound {
    /// Comma-separated API keys (several for rotation).
    pub api_keys: Option<SecretRef>,
    pub jwt: Option<RawJwt>,
    /// Standard Webhooks secrets (`whsec_...`, comma-separated for rotation).
    pub webhook_secrets: Option<SecretRef>,
    #[serde(default = "default_tolerance", with = "humantime_serde")]
    pub webhook_tolerance: Duration,
    pub rate_limit: Option<RateLimit>,
}

fn default_tolerance() -> Duration {
    Duration::from_secs(300)
}

/// JWT bearer tokens accepted from a partner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    pub issuer: String,
    pub audience: String,
    /// HS256 shared secret.
    pub hs256_secret: Option<SecretRef>,
    /// RS256 public key (PEM).
    pub rs256_public_key: Option<SecretRef>,
}

/// A sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// How the hub calls a partner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
    pub base_url: String,
    /// Path after `base_url`; `{field}` is replaced by the command's field (URL-encoded), as in
    /// `/orders/{order_id}`.
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    pub rate_limit: RateLimit,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub breaker: BreakerSettings,
    pub auth: Option<OutboundAuth>,
    /// Secret that signs webhooks to this partner (Standard Webhooks).
    pub signing_secret: Option<SecretRef>,
    /// Fixed headers sent on every request (not secrets: use `auth` for those).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body: output field → JSON pointer into the command (`"orderId" = "/order_id"`).
    /// Without it the command's JSON is sent whole.
    pub body: Option<BTreeMap<String, String>>,
    /// Requests of other commands than the default one, by contract name
    /// (`[partner.outbound.requests.cancel_command]`): each replaces the method, path and body
    /// above for that command; auth, headers, limits and retries stay shared.
    #[serde(default)]
    pub requests: BTreeMap<String, RequestMapping>,
}

/// How one command becomes a request to a partner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMapping {
    #[serde(default = "default_method")]
    pub method: String,
    /// Path after `base_url`, `{field}` placeholders as in the outbound `path`.
    pub path: String,
    /// Output field → JSON pointer into the command; the command whole without it.
    pub body: Option<BTreeMap<String, String>>,
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_concurrency() -> u32 {
    16
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(16), max_attempts: 5 }
    }
}

/// When a partner's circuit breaker opens: the failed share of calls over a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Sliding window the failure ratio is measured over.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Failed share of calls (0 to 1] that opens the breaker.
    pub failure_ratio: f64,
    /// Calls in the window below which it never opens.
    pub min_requests: u32,
    /// How long it stays open before half-open probes.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// Calls let through while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            failure_ratio: 0.5,
            min_requests: 10,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

/// Credentials the hub presents to a partner.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutboundAuth {
    Bearer { token: SecretRef },
    ApiKey { header: String, key: SecretRef },
    OauthClientCredentials { token_url: String, client_id: String, client_secret: SecretRef, scope: Option<String> },
}

impl SecretRef {
    /// Reads the secret: the variable's value, or the file's contents trimmed. The error names
    /// where it looked, never the value.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Self::Env(name) => std::env::var(name).map_err(|_| format!("environment variable {name} is not set")),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("cannot read secret file {path}: {e}")),
        }
    }

    /// Reads a comma-separated list of secrets (several keys for rotation), empty items dropped.
    pub fn resolve_list(&self) -> Result<Vec<String>, String> {
        Ok(self.resolve()?.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
}
