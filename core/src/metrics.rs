//! Every metric name of the hub, in one place: `hub_<component>_<name>_<unit>`. Labels are
//! bounded (route, partner, topic, outcome, status class); never a correlation id.

/// Edge requests by route, partner, status class (`2xx`, `4xx`, `5xx`).
pub const INGEST_REQUESTS: &str = "hub_ingest_requests";
/// Edge request duration by route and status class, seconds.
pub const INGEST_REQUEST_DURATION: &str = "hub_ingest_request_duration_seconds";
/// Time from handing a record to the producer to the broker's acknowledgement, seconds.
pub const INGEST_PRODUCE_DURATION: &str = "hub_ingest_produce_duration_seconds";
/// Idempotency-Key outcomes by partner: `new`, `replayed`, `conflict`, `mismatch`, `released`.
pub const INGEST_IDEMPOTENCY: &str = "hub_ingest_idempotency";
/// Requests refused by a rate limit, by scope (`partner`, `ip`) and where (`local`, `shared`).
pub const INGEST_RATE_LIMITED: &str = "hub_ingest_rate_limited";
/// Shared-store (Redis) failures by operation, while the edge falls back or refuses.
pub const INGEST_REDIS_ERRORS: &str = "hub_ingest_redis_errors";
/// Requests refused because the edge was at its concurrency limit.
pub const INGEST_SHED: &str = "hub_ingest_shed";
/// Requests whose body did not arrive within `--body-timeout` (answered 408).
pub const INGEST_BODY_TIMEOUTS: &str = "hub_ingest_body_timeouts";
/// Requests refused as a `webhook-id` replay (answered 409).
pub const INGEST_WEBHOOK_REPLAYS: &str = "hub_ingest_webhook_replays";

/// Records a processor handled, by processor and outcome (`changed`, `unchanged`, `dead_letter`,
/// `timer`, `retired`: a terminal state tombstoned after the retention).
pub const PROCESSOR_RECORDS: &str = "hub_processor_records";
/// Transactions by processor and outcome (`committed`, `aborted`).
pub const PROCESSOR_TRANSACTIONS: &str = "hub_processor_transactions";
/// Time to commit one transaction, seconds.
pub const PROCESSOR_COMMIT_DURATION: &str = "hub_processor_commit_duration_seconds";
/// Input records per transaction.
pub const PROCESSOR_TRANSACTION_RECORDS: &str = "hub_processor_transaction_records";
/// Time to restore a partition's state, seconds.
pub const PROCESSOR_RESTORE_DURATION: &str = "hub_processor_restore_duration_seconds";
/// States held in memory, by processor.
pub const PROCESSOR_STATES: &str = "hub_processor_states";
/// Records sent to the dead-letter topic, by processor and error class.
pub const PROCESSOR_DEAD_LETTERS: &str = "hub_processor_dead_letters";
/// Delivery results the saga refused (dead-lettered) because they do not answer a command it sent
/// the order, by processor and mismatch (`partner`: from a partner the command was not sent to;
/// `command_type`: the order's command id under another command type; `unknown_command`: a
/// dispatch or cancel result for a command the order never sent).
pub const PROCESSOR_FOREIGN_RESULTS: &str = "hub_processor_foreign_results";
/// Rebalances a processor went through, by outcome (`revoked`, `lost`: the group moved on
/// without it, `assigned`).
pub const PROCESSOR_REBALANCES: &str = "hub_processor_rebalances";
/// Consumer lag per input partition (processor, topic, partition), records.
pub const PROCESSOR_LAG: &str = "hub_processor_lag_records";

/// Deliveries finished, by partner and outcome (`delivered`, `refused`, `exhausted`, `invalid`).
pub const SINK_DELIVERIES: &str = "hub_sink_deliveries";
/// HTTP attempts by partner and outcome (`2xx`, `3xx`, `4xx`, `5xx`, `error`, `timeout`).
pub const SINK_ATTEMPTS: &str = "hub_sink_attempts";
/// Duration of one HTTP attempt by partner, seconds.
pub const SINK_ATTEMPT_DURATION: &str = "hub_sink_attempt_duration_seconds";
/// Attempts after the first, by partner.
pub const SINK_RETRIES: &str = "hub_sink_retries";
/// Time an attempt waited for a rate-limit token, by partner, seconds.
pub const SINK_RATE_LIMIT_WAIT: &str = "hub_sink_rate_limit_wait_seconds";
/// Circuit breaker state by partner: 0 closed, 1 half-open, 2 open.
pub const SINK_BREAKER_STATE: &str = "hub_sink_breaker_state";
/// Circuit breaker transitions by partner and the state entered.
pub const SINK_BREAKER_TRANSITIONS: &str = "hub_sink_breaker_transitions";
/// Commands sent to the dead-letter topic, by partner and error class.
pub const SINK_DEAD_LETTERS: &str = "hub_sink_dead_letters";
/// Records read and not yet finished (delivered and reported), by sink.
pub const SINK_IN_FLIGHT: &str = "hub_sink_in_flight_records";
/// Partitions of its input a sink owns now, by sink.
pub const SINK_ASSIGNED_PARTITIONS: &str = "hub_sink_assigned_partitions";
/// Consumer lag per input partition (sink, topic, partition), records: the backlog not yet read.
pub const SINK_LAG: &str = "hub_sink_lag_records";

/// State records the read-model projector handled, by sink and outcome (`projected`, `tombstone`, `invalid`).
pub const PROJECTOR_RECORDS: &str = "hub_projector_records";
/// CQL writes (one unlogged batch per order and read batch), by sink and outcome (`ok`, `error`).
pub const PROJECTOR_WRITES: &str = "hub_projector_writes";
/// Duration of one CQL write of an order's rows, seconds.
pub const PROJECTOR_WRITE_DURATION: &str = "hub_projector_write_duration_seconds";
/// Time from a state record's timestamp (its append to the state topic) to its rows being written, seconds.
pub const PROJECTOR_LAG: &str = "hub_projector_lag_seconds";
/// 1 while the projector cannot write to CQL (it waits and retries without moving its offsets), by sink.
pub const PROJECTOR_CQL_DOWN: &str = "hub_projector_cql_down";

/// Order status API reads by outcome (`found`, `not_modified`, `not_found`, `not_projected`, `unavailable`).
pub const QUERY_REQUESTS: &str = "hub_query_requests";
/// Duration of one read-model query at the edge, seconds.
pub const QUERY_DURATION: &str = "hub_query_duration_seconds";
/// Jobs of revoked partitions by sink and outcome (`dropped` before they started, `ended` in
/// flight before the rebalance callback returned, `cut_off` when its wait ran out).
pub const SINK_REVOKED_JOBS: &str = "hub_sink_revoked_jobs";
