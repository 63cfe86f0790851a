//! Settings of the sink role that are not in topology.toml.

use std::net::SocketAddr;

use clap::Args;

/// `hub sink` options.
#[derive(Debug, Clone, Args)]
pub struct SinkConfig {
    /// Run only this sink of the topology (repeatable); all of them when not given. Lets the HTTP
    /// sinks and the read-model projector run as separate deployments.
    #[arg(long = "sink", env = "HUB_SINKS", value_delimiter = ',')]
    pub sinks: Vec<String>,
    /// Address of the sink role's /healthz, /readyz and /metrics.
    #[arg(
        id = "sink_listen",
        value_name = "ADDR",
        long = "sink-listen",
        env = "HUB_SINK_LISTEN",
        default_value = "127.0.0.1:9095"
    )]
    pub listen: SocketAddr,
}
