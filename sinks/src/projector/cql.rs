//! The projector's CQL side: the session (token-aware), the prepared statements, one order's rows
//! as an unlogged single-partition batch (then its row of the order-id lookup, another
//! partition), and running the schema migration (`hub readmodel migrate`). The tables, rows and
//! statements themselves are [`interchange_core::readmodel`]'s.
//!
//! Every row is written `USING TIMESTAMP <state version>`: Cassandra keeps, cell by cell, the
//! write with the highest timestamp, so an older state arriving late loses to a newer one, and
//! writing the same state again (a replay) changes nothing. This costs nothing beyond a normal
//! write; a lightweight transaction (`IF version < ?`) would cost four Paxos round trips per
//! write and serialise writers. The price: only the projector may write these tables (a write
//! with a wall-clock timestamp would win over every version).

use std::sync::Arc;
use std::time::{Duration, Instant};

use interchange_core::readmodel::{schema, statements, Decimal, EventRow, LookupRow, MinuteRow, OrderRow};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::value::{CqlDecimal, CqlTimestamp};

use super::rows::{ttl_seconds, Projection};
use crate::SinkError;

fn cql_error(operation: &'static str) -> impl Fn(String) -> SinkError {
    move |reason| SinkError::Cql { operation, reason }
}

/// A session to `nodes` with token-aware routing (each write goes to a replica of its
/// partition) and LOCAL_QUORUM.
pub async fn connect(nodes: &[String], timeout: Duration) -> Result<Session, SinkError> {
    if nodes.is_empty() {
        return Err(SinkError::Config("no CQL nodes (HUB_CQL_NODES)".to_owned()));
    }
    let policy = DefaultPolicy::builder().token_aware(true).build();
    let profile =
        ExecutionProfile::builder().load_balancing_policy(policy).consistency(Consistency::LocalQuorum).build();
    SessionBuilder::new()
        .known_nodes(nodes)
        .connection_timeout(timeout)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|e| SinkError::Cql { operation: "connect", reason: e.to_string() })
}

/// Applies the schema ([`schema::migration`]: every statement is `IF NOT EXISTS` or sets a value,
/// so it can run any number of times) and waits for the nodes to agree on it. Returns the number
/// of statements run.
pub async fn migrate(session: &Session, keyspace: &str, replication: &str, ttl: Duration) -> Result<usize, SinkError> {
    let all = schema::migration(keyspace, replication, ttl);
    for statement in &all {
        session
            .query_unpaged(statement.as_str(), ())
            .await
            .map_err(|e| SinkError::Cql { operation: "migrate", reason: format!("{e}: {statement}") })?;
    }
    session.await_schema_agreement().await.map_err(|e| cql_error("schema agreement")(e.to_string()))?;
    Ok(all.len())
}

/// Values of the order upsert, in bind order ([`statements::insert_order`]).
#[derive(scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct OrderValues {
    partner: String,
    correlation_id: String,
    order_id: String,
    status: String,
    version: i64,
    currency: String,
    subtotal: CqlDecimal,
    discount: CqlDecimal,
    total: CqlDecimal,
    items_json: String,
    partner_reference: Option<String>,
    dispatch_command_id: Option<String>,
    failure_reason: Option<String>,
    deadline: Option<CqlTimestamp>,
    created_at: CqlTimestamp,
    updated_at: CqlTimestamp,
    ttl: i32,
    timestamp: i64,
}

/// Values of the timeline insert, in bind order ([`statements::insert_event`]).
#[derive(scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct EventValues {
    partner: String,
    correlation_id: String,
    version: i64,
    at: CqlTimestamp,
    from_status: String,
    to_status: String,
    event_id: String,
    event_type: String,
    detail: Option<String>,
    ttl: i32,
    timestamp: i64,
}

/// Values of the order-id lookup insert, in bind order ([`statements::insert_lookup`]).
#[derive(scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct LookupValues {
    partner: String,
    order_id: String,
    correlation_id: String,
    status: String,
    version: i64,
    created_at: CqlTimestamp,
    ttl: i32,
    timestamp: i64,
}

/// Values of the by-minute insert, in bind order ([`statements::insert_by_minute`]).
#[derive(scylla::SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct MinuteValues {
    partner: String,
    minute: CqlTimestamp,
    created_at: CqlTimestamp,
    correlation_id: String,
    status: String,
    version: i64,
    order_id: String,
    ttl: i32,
    timestamp: i64,
}

fn minute_values(m: MinuteRow, ttl: i32) -> MinuteValues {
    MinuteValues {
        partner: m.partner,
        minute: CqlTimestamp(m.minute),
        created_at: CqlTimestamp(m.created_at),
        correlation_id: m.correlation_id,
        status: m.status,
        version: m.version,
        order_id: m.order_id,
        ttl,
        timestamp: m.version,
    }
}

fn dec(d: &Decimal) -> CqlDecimal {
    CqlDecimal::from_signed_be_bytes_slice_and_exponent(&d.unscaled, d.scale)
}

fn order_values(o: &OrderRow, ttl: i32) -> OrderValues {
    OrderValues {
        partner: o.partner.clone(),
        correlation_id: o.correlation_id.clone(),
        order_id: o.order_id.clone(),
        status: o.status.clone(),
        version: o.version,
        currency: o.currency.clone(),
        subtotal: dec(&o.subtotal),
        discount: dec(&o.discount),
        total: dec(&o.total),
        items_json: o.items_json.clone(),
        partner_reference: o.partner_reference.clone(),
        dispatch_command_id: o.dispatch_command_id.clone(),
        failure_reason: o.failure_reason.clone(),
        deadline: o.deadline.map(CqlTimestamp),
        created_at: CqlTimestamp(o.created_at),
        updated_at: CqlTimestamp(o.updated_at),
        ttl,
        timestamp: o.version,
    }
}

fn lookup_values(l: LookupRow, ttl: i32) -> LookupValues {
    LookupValues {
        partner: l.partner,
        order_id: l.order_id,
        correlation_id: l.correlation_id,
        status: l.status,
        version: l.version,
        created_at: CqlTimestamp(l.created_at),
        ttl,
        timestamp: l.version,
    }
}

fn event_values(e: &EventRow, ttl: i32) -> EventValues {
    EventValues {
        partner: e.partner.clone(),
        correlation_id: e.correlation_id.clone(),
        version: e.version,
        at: CqlTimestamp(e.at),
        from_status: e.from_status.clone(),
        to_status: e.to_status.clone(),
        event_id: e.event_id.clone(),
        event_type: e.event_type.clone(),
        detail: e.detail.clone(),
        ttl,
        timestamp: e.version,
    }
}

type BoxedRow = Box<dyn SerializeRow + Send + Sync>;

/// The prepared writes of one keyspace.
#[derive(Clone)]
pub struct Writer {
    session: Arc<Session>,
    upsert_order: PreparedStatement,
    insert_event: PreparedStatement,
    insert_lookup: PreparedStatement,
    insert_by_minute: PreparedStatement,
    ttl: Duration,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Writer {
    /// Prepares the statements on `session` for `keyspace`; rows live `ttl` after their time.
    pub async fn prepare(session: Arc<Session>, keyspace: &str, ttl: Duration) -> Result<Self, SinkError> {
        let prepare = |text: String| {
            let session = Arc::clone(&session);
            async move {
                let mut statement = session.prepare(text).await.map_err(|e| cql_error("prepare")(e.to_string()))?;
                statement.set_is_idempotent(true);
                Ok::<_, SinkError>(statement)
            }
        };
        let upsert_order = prepare(statements::insert_order(keyspace)).await?;
        let insert_event = prepare(statements::insert_event(keyspace)).await?;
        let insert_lookup = prepare(statements::insert_lookup(keyspace)).await?;
        let insert_by_minute = prepare(statements::insert_by_minute(keyspace)).await?;
        Ok(Self { session, upsert_order, insert_event, insert_lookup, insert_by_minute, ttl })
    }

    /// Writes one order's rows in one unlogged batch (all in one partition, so one replica set
    /// applies it atomically), then its order-id lookup row (another partition: written after,
    /// so a lookup row always finds its order; a failure between the two is retried like any
    /// failed write, and rewriting is harmless); rows already past their TTL are left out.
    /// Returns the time taken.
    pub async fn write(&self, projection: &Projection, now_ms: i64) -> Result<Duration, SinkError> {
        let mut batch = Batch::new(BatchType::Unlogged);
        batch.set_is_idempotent(true);
        let mut values: Vec<BoxedRow> = Vec::with_capacity(1 + projection.events.len());
        let order_ttl = ttl_seconds(projection.order.updated_at, now_ms, self.ttl);
        if let Some(ttl) = order_ttl {
            batch.append_statement(self.upsert_order.clone());
            values.push(Box::new(order_values(&projection.order, ttl)));
        }
        for event in &projection.events {
            if let Some(ttl) = ttl_seconds(event.at, now_ms, self.ttl) {
                batch.append_statement(self.insert_event.clone());
                values.push(Box::new(event_values(event, ttl)));
            }
        }
        let started = Instant::now();
        if values.is_empty() {
            return Ok(started.elapsed());
        }
        self.session.batch(&batch, values).await.map_err(|e| cql_error("write")(e.to_string()))?;
        // The indexes: same TTL and timestamp as the order's row, so they live and change
        // together with it; both at once.
        if let Some(ttl) = order_ttl {
            let lookup = async {
                match LookupRow::of(&projection.order) {
                    Some(lookup) => self
                        .session
                        .execute_unpaged(&self.insert_lookup, lookup_values(lookup, ttl))
                        .await
                        .map(|_| ())
                        .map_err(|e| cql_error("write lookup")(e.to_string())),
                    None => Ok(()),
                }
            };
            let by_minute = async {
                match MinuteRow::of(&projection.order) {
                    Some(row) => self
                        .session
                        .execute_unpaged(&self.insert_by_minute, minute_values(row, ttl))
                        .await
                        .map(|_| ())
                        .map_err(|e| cql_error("write by-minute row")(e.to_string())),
                    None => Ok(()),
                }
            };
            let (lookup, by_minute) = tokio::join!(lookup, by_minute);
            lookup?;
            by_minute?;
        }
        Ok(started.elapsed())
    }
}
