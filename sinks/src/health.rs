//! The sink role's readiness, served (with `/healthz` and `/metrics`) by core's one health server.
//!
//! Ready means: every sink started has its partitions assigned (or the group gave it none because
//! other instances own them all) and no sink reports its store down; shutting down makes the role
//! unready first (core's server puts "shutting down" before every other problem).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use interchange_core::health::{self, Readiness};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Readiness of each sink by name: `Ok` or why not.
#[derive(Debug, Default)]
pub(crate) struct Health {
    sinks: Mutex<BTreeMap<String, Result<(), String>>>,
}

impl Health {
    /// Records `sink`'s readiness.
    pub(crate) fn set(&self, sink: &str, state: Result<(), String>) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.insert(sink.to_owned(), state);
        }
    }

    /// Every reason not to be ready; empty when ready.
    fn problems(&self) -> Vec<String> {
        self.sinks.lock().map_or_else(
            |_| vec!["health lock poisoned".to_owned()],
            |sinks| {
                if sinks.is_empty() {
                    return vec!["starting".to_owned()];
                }
                sinks.iter().filter_map(|(name, s)| s.as_ref().err().map(|e| format!("{name}: {e}"))).collect()
            },
        )
    }
}

/// Serves `/healthz`, `/readyz` (from `health`) and `/metrics` (of `registry`) on `listen` until
/// `shutdown`; a failed bind is logged and the sinks run on without it.
pub(crate) async fn serve(listen: SocketAddr, health: Arc<Health>, registry: Registry, shutdown: CancellationToken) {
    let readiness: Readiness = Arc::new(move || health.problems());
    let app = health::router(readiness, Arc::new(Mutex::new(registry)), shutdown.clone());
    health::bind_and_serve(listen, app, "sink", shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_sink_is_and_each_problem_named() {
        let health = Health::default();
        assert_eq!(health.problems(), vec!["starting".to_owned()]);
        health.set("erp-dispatch", Err("waiting for the group's assignment".to_owned()));
        health.set("order-projector", Ok(()));
        assert_eq!(health.problems(), vec!["erp-dispatch: waiting for the group's assignment".to_owned()]);
        health.set("erp-dispatch", Ok(()));
        assert!(health.problems().is_empty());
    }
}
