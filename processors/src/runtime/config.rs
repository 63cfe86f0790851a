//! `hub process` options that are not in topology.toml.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// Delivery guarantee of the processor's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Outputs, state and consumed offsets commit in one Kafka transaction.
    ExactlyOnce,
    /// Outputs are flushed, then offsets committed: a crash may repeat outputs (for comparison).
    AtLeastOnce,
}

/// `hub process` options; each has an environment variable.
#[derive(Debug, Clone, Args)]
pub struct ProcessorConfig {
    /// Stable id of this instance: part of its transactional.id, so a restarted instance fences
    /// its zombie. Give every replica its own (a StatefulSet ordinal, for example).
    #[arg(long, env = "HUB_INSTANCE_ID", default_value = "hub-0")]
    pub instance_id: String,
    /// Health and metrics address of the processor role.
    #[arg(long = "processor-listen", env = "HUB_PROCESSOR_LISTEN", default_value = "127.0.0.1:9091")]
    pub processor_listen: SocketAddr,
    /// Delivery guarantee.
    #[arg(long, env = "HUB_PROCESSOR_MODE", value_enum, default_value_t = Mode::ExactlyOnce)]
    pub mode: Mode,
    /// Kafka transaction.timeout.ms: how long a dead instance's open transaction blocks readers.
    #[arg(long, env = "HUB_PROCESSOR_TRANSACTION_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub transaction_timeout: Duration,
    /// Consumer session timeout: how fast a dead instance's partitions move.
    #[arg(long, env = "HUB_PROCESSOR_SESSION_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub session_timeout: Duration,
    /// Transitions kept in each order's history.
    #[arg(long, env = "HUB_PROCESSOR_HISTORY", default_value_t = 32)]
    pub history_limit: usize,
    /// Transaction loops of this instance per processor, like Kafka Streams'
    /// `num.stream.threads`: each is a member of the processor's consumer group with its own
    /// transactional producer (`<group>-<instance id>` for the first, `-thread-<n>` appended for
    /// the others) and the state of the partitions it is assigned, so their transactions overlap
    /// instead of each waiting alone for the broker's acknowledgements.
    #[arg(long, env = "HUB_PROCESSOR_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Event ids kept per order for duplicate detection.
    #[arg(long, env = "HUB_PROCESSOR_APPLIED_IDS", default_value_t = 64)]
    pub applied_limit: usize,
}
