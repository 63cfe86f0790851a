//! The HTTP sink runtime: consume commands (read_committed), deliver each through the stack of
//! the partner its `partner` field names (one sink serves many partners: tenancy), in order per
//! correlation id, write a delivery result (and a dead letter when it fails), and store an offset
//! only when everything before it in the partition is finished.
//!
//! Files: `deliver.rs` one command's delivery and report; `consume.rs` the consumer loop and its
//! rebalance callbacks; `route.rs` which served partner a command goes to; `partner.rs` the
//! per-partner stack (`request.rs`, `retry.rs`, `bucket.rs`, `breaker.rs`, `oauth.rs` its parts).
//! Public: the partner stack (`partner`, `breaker::BreakerConfig`) for the sink bench and tests.

pub mod breaker;
mod bucket;
mod consume;
mod deliver;
mod oauth;
pub mod partner;
mod request;
mod retry;
mod route;

use std::sync::Arc;

use interchange_core::topology::Sink;

use self::deliver::Context;
use crate::env::Env;
use crate::error::SinkError;

/// Starts one HTTP sink serving `partners`: it runs until `env.shutdown`.
pub(crate) async fn start(
    env: &Env<'_>,
    sink: &Sink,
    partners: &[String],
    commands: &[String],
) -> Result<tokio::task::JoinHandle<Result<(), SinkError>>, SinkError> {
    let topology = env.topology;
    let group = topology.consumer_group(&sink.name);
    let context = Context::build(env, sink, partners, commands, group.clone()).await?;
    let partitions = topology.topics.iter().find(|t| t.name == sink.input).map_or(1, |t| t.partitions);
    let group = consume::Group { name: group, partitions, config: env.config.clone(), stop: env.shutdown.clone() };
    Ok(tokio::spawn(consume::consume(Arc::new(context), env.services.kafka.clone(), group)))
}
