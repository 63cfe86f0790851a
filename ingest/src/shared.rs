//! The Redis connection the edge shares across instances: rate-limit buckets and idempotency keys.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::IngestError;

/// A lazily connected, auto-reconnecting Redis handle with short timeouts: a slow or dead Redis
/// turns into an error within `timeout`, never a hung request.
#[derive(Clone)]
pub(crate) struct Shared {
    conn: ConnectionManager,
    timeout: Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl Shared {
    /// Connects on first use to `url`.
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, IngestError> {
        let client = redis::Client::open(url).map_err(|e| IngestError::Redis { operation: "open", source: e })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(|e| IngestError::Redis { operation: "connect", source: e })?;
        Ok(Self { conn, timeout })
    }

    /// A connection handle (cheap clone of a multiplexed connection).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs `f` with a deadline of the configured timeout.
    pub(crate) async fn call<T, F>(&self, operation: &'static str, f: F) -> Result<T, IngestError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(IngestError::Redis { operation, source }),
            Err(_) => Err(IngestError::RedisTimeout { operation, timeout: self.timeout }),
        }
    }

    /// PING, for readiness.
    pub(crate) async fn ping(&self) -> Result<(), IngestError> {
        let mut conn = self.conn();
        self.call("ping", async move { redis::cmd("PING").query_async::<String>(&mut conn).await }).await.map(|_| ())
    }
}
