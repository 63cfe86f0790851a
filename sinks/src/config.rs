//! Settings of the sink role that are not in topology.toml.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// `hub sink` options.
#[derive(Debug, Clone, Args)]
pub struct SinkConfig {
    /// Run only this sink of the topology (repeatable); all of them when not given. Lets the HTTP
    /// sinks and the read-model projector run as separate deployments.
    #[arg(long = "sink", env = "HUB_SINKS", value_delimiter = ',')]
    pub sinks: Vec<String>,
    /// Address of the sink role's /healthz, /readyz and /metrics.
    #[arg(long = "sink-listen", env = "HUB_SINK_LISTEN", default_value = "127.0.0.1:9095")]
    pub sink_listen: SocketAddr,
    /// Consumer session timeout: how fast a dead instance's partitions move to the others.
    #[arg(long = "sink-session-timeout", env = "HUB_SINK_SESSION_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub sink_session_timeout: Duration,
    /// On SIGTERM, how long deliveries in flight may finish before they are cut off (and
    /// redelivered after restart); keep it below the session timeout and the pod's grace period.
    #[arg(long = "sink-drain-timeout", env = "HUB_SINK_DRAIN_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub sink_drain_timeout: Duration,
}
