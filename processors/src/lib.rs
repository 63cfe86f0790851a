//! Interchange's stateful processors: the order saga, a pure state machine, driven by a Kafka
//! exactly-once runtime.
//!
//! Offers [`run`] (the topology's processor until shutdown, on core's
//! [`Services`](interchange_core::Services)), its options [`ProcessorConfig`] and [`Mode`], its
//! error [`ProcessorError`], and [`saga`] (`apply` and the records it works on). For the benches
//! and tests that measure or scrape it: [`runtime::restore`], [`runtime::store::Store`],
//! [`runtime::codec::Codec`] and [`runtime::metrics::ProcessorMetrics`].
//!
//! Keeps to itself the transaction loop, rebalances, delivery reports and their quarantine, the
//! records it writes (outputs, dead letters, tombstones), the lookup table and the Kafka clients'
//! set-up.
#![warn(unreachable_pub)]

pub mod declared;
mod kinds;
pub mod machine;
pub mod runtime;
pub mod saga;

pub use runtime::{run, Mode, ProcessorConfig, ProcessorError};
