//! The edge's "accepted" marker in Redis: posting notes each accepted order, the order status
//! API asks for it to tell "accepted, not yet projected" apart from "unknown".

use std::time::Duration;

use crate::metrics::{IngestMetrics, OperationLabels};
use crate::shared::Shared;

/// Where accepted orders are noted, and for how long.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    shared: Shared,
    prefix: String,
    ttl: Duration,
}

impl Accepted {
    /// Markers under the topology's `prefix`, kept `ttl` (as long as an Idempotency-Key's answer).
    pub(crate) fn new(shared: Shared, prefix: &str, ttl: Duration) -> Self {
        Self { shared, prefix: prefix.to_owned(), ttl }
    }

    fn key(&self, partner: &str, id: &str) -> String {
        format!("hub:accepted:{}{partner}:{id}", self.prefix)
    }

    /// Notes (one pipelined round trip for a whole batch) that these (partner, correlation id)
    /// orders were accepted. Best effort: a failure is counted and logged, never turns an
    /// acceptance into an error.
    pub(crate) async fn mark(&self, metrics: &IngestMetrics, accepted: &[(String, String)]) {
        if accepted.is_empty() {
            return;
        }
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        for (partner, id) in accepted {
            pipe.cmd("SET").arg(self.key(partner, id)).arg(1).arg("PX").arg(ttl).ignore();
        }
        let mut conn = self.shared.conn();
        if let Err(error) =
            self.shared.call("accepted_mark", async move { pipe.query_async::<()>(&mut conn).await }).await
        {
            metrics.redis_errors.get_or_create(&OperationLabels { operation: "accepted_mark" }).inc();
            tracing::debug!(%error, "could not note accepted orders");
        }
    }

    /// Whether the edge accepted order `id` of `partner` (within the marker's lifetime); `false`
    /// when Redis does not answer.
    pub(crate) async fn seen(&self, partner: &str, id: &str) -> bool {
        let mut conn = self.shared.conn();
        let key = self.key(partner, id);
        self.shared
            .call("accepted_check", async move { redis::cmd("EXISTS").arg(key).query_async::<i64>(&mut conn).await })
            .await
            .is_ok_and(|n| n > 0)
    }
}
