//! Interchange's stateful processors: state machines (the coded order saga, and machines
//! declared in files) driven by a Kafka exactly-once runtime that knows no particular one.
//!
//! Offers [`run`] (every processor of the topology until shutdown, on core's
//! [`Services`](interchange_core::Services)), its options [`ProcessorConfig`] and [`Mode`], its
//! error [`ProcessorError`], and [`saga`] (`apply` and the records it works on). For the benches
//! and tests that measure or scrape it: [`runtime::restore`], [`runtime::store::Store`],
//! [`runtime::codec::Codec`] and [`runtime::metrics::ProcessorMetrics`].
//!
//! Keeps to itself the machine interface (`machine.rs`), the registry of processor kinds
//! (`kinds.rs`), the interpreter of declared machines (`declared/`), the transaction loop,
//! rebalances, delivery reports and their quarantine, the records it writes (outputs, dead
//! letters, tombstones), the lookup table and the Kafka clients' set-up.
#![warn(unreachable_pub)]

mod declared;
mod kinds;
mod machine;
pub mod runtime;
pub mod saga;

pub use runtime::{run, Mode, ProcessorConfig, ProcessorError};
