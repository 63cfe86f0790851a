//! The order status API: `GET <route>/{id}` and `GET <route>/{id}/events`, read from the CQL read
//! model the projector keeps (never from Kafka), plus the edge's "accepted" marker in Redis that
//! tells "accepted, not yet projected" apart from "unknown".
//!
//! The id is the correlation id the edge answered with (202 `links.status`), or the id the
//! partner supplied as X-Correlation-Id, which resolves in the caller's own scope
//! ([`crate::identity::candidates`]). Rows are keyed by (partner, correlation id), so a partner
//! asking for another partner's order finds nothing and gets the same 404 as for an order that
//! does not exist. `GET <route>?order_id=` (the partner's own order id) is `order_lookup.rs`,
//! answering with [`order_response`].

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlDecimal, CqlTimestamp};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::admission;
use crate::app::AppState;
use crate::metrics::QueryLabels;
use crate::problem::Problem;

/// Most events in one page of the timeline.
pub const MAX_PAGE: i32 = 200;
/// Events in a page when `limit` is not given.
pub const DEFAULT_PAGE: i32 = 50;

/// Where the read model is and how to reach it.
#[derive(Debug, Clone)]
pub struct ReadModelConfig {
    pub nodes: Vec<String>,
    pub keyspace: String,
}

/// The edge's CQL session and prepared reads, once connected.
pub struct ReadModel {
    session: Session,
    order: PreparedStatement,
    events: PreparedStatement,
    by_order_id: PreparedStatement,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel").finish_non_exhaustive()
    }
}

pub(crate) type OrderRow = (
    String,
    String,
    i64,
    String,
    Option<CqlDecimal>,
    Option<CqlDecimal>,
    Option<CqlDecimal>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
);

/// A row of the order-id lookup: correlation id, status, version, created at.
pub(crate) type LookupRow = (String, Option<String>, Option<i64>, Option<CqlTimestamp>);

type EventRow =
    (i64, Option<CqlTimestamp>, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);

impl ReadModel {
    async fn connect(config: &ReadModelConfig) -> Result<Self, String> {
        let session = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(Duration::from_secs(3))
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let ks = &config.keyspace;
        let mut order = session
            .prepare(format!(
                "SELECT order_id, status, version, currency, subtotal, discount, total, items_json, \
                 partner_reference, failure_reason, deadline, created_at, updated_at FROM {ks}.orders \
                 WHERE partner = ? AND correlation_id = ?"
            ))
            .await
            .map_err(|e| e.to_string())?;
        order.set_is_idempotent(true);
        let mut events = session
            .prepare(format!(
                "SELECT version, at, from_status, to_status, event_id, event_type, detail FROM {ks}.order_events \
                 WHERE partner = ? AND correlation_id = ? AND version < ? LIMIT ?"
            ))
            .await
            .map_err(|e| e.to_string())?;
        events.set_is_idempotent(true);
        let mut by_order_id = session
            .prepare(format!(
                "SELECT correlation_id, status, version, created_at FROM {ks}.{} WHERE partner = ? AND order_id = ? \
                 LIMIT ?",
                interchange_core::readmodel::ORDER_ID_TABLE
            ))
            .await
            .map_err(|e| e.to_string())?;
        by_order_id.set_is_idempotent(true);
        Ok(Self { session, order, events, by_order_id })
    }

    /// The orders of `partner` whose order id is `order_id` (at most `limit`).
    pub(crate) async fn by_order_id(
        &self,
        partner: &str,
        order_id: &str,
        limit: i32,
    ) -> Result<Vec<LookupRow>, String> {
        let result = self
            .session
            .execute_unpaged(&self.by_order_id, (partner, order_id, limit))
            .await
            .map_err(|e| e.to_string())?;
        let rows = result.into_rows_result().map_err(|e| e.to_string())?;
        let iter = rows.rows::<LookupRow>().map_err(|e| e.to_string())?;
        iter.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }

    pub(crate) async fn order(&self, partner: &str, id: &str) -> Result<Option<OrderRow>, String> {
        let result = self.session.execute_unpaged(&self.order, (partner, id)).await.map_err(|e| e.to_string())?;
        let rows = result.into_rows_result().map_err(|e| e.to_string())?;
        rows.maybe_first_row::<OrderRow>().map_err(|e| e.to_string())
    }

    async fn events(&self, partner: &str, id: &str, before: i64, limit: i32) -> Result<Vec<EventRow>, String> {
        let result = self
            .session
            .execute_unpaged(&self.events, (partner, id, before, limit))
            .await
            .map_err(|e| e.to_string())?;
        let rows = result.into_rows_result().map_err(|e| e.to_string())?;
        let iter = rows.rows::<EventRow>().map_err(|e| e.to_string())?;
        iter.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }
}

/// Connects in the background, retrying, so the edge starts (and ingests) without CQL.
pub fn connect_in_background(config: ReadModelConfig, slot: Arc<OnceLock<ReadModel>>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(500);
        loop {
            match ReadModel::connect(&config).await {
                Ok(model) => {
                    let _ = slot.set(model);
                    tracing::info!(keyspace = %config.keyspace, "order status API connected to the read model");
                    return;
                }
                Err(error) => tracing::warn!(%error, "read model not reachable; the order status API answers 503"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    });
}

pub(crate) fn rfc3339(t: Option<CqlTimestamp>) -> Value {
    t.and_then(|CqlTimestamp(ms)| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn decimal(d: Option<CqlDecimal>) -> Value {
    let Some(d) = d else { return Value::Null };
    let (bytes, scale) = d.as_signed_be_bytes_slice_and_exponent();
    let mut buf = if bytes.first().is_some_and(|b| b & 0x80 != 0) { [0xff_u8; 16] } else { [0_u8; 16] };
    let take = bytes.len().min(16);
    buf[16 - take..].copy_from_slice(&bytes[bytes.len() - take..]);
    let value = i128::from_be_bytes(buf);
    let scale = usize::try_from(scale).unwrap_or(0);
    if scale == 0 {
        return json!(value.to_string());
    }
    let digits = format!("{:0width$}", value.unsigned_abs(), width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    json!(format!("{}{int}.{frac}", if value < 0 { "-" } else { "" }))
}

fn accepted_key(prefix: &str, partner: &str, id: &str) -> String {
    format!("hub:accepted:{prefix}{partner}:{id}")
}

/// Notes in Redis (one pipelined round trip for a whole batch) that these orders were accepted,
/// for `ttl`, so the status API can say "accepted, not yet projected". Best effort: a failure is
/// counted and logged, never turns an acceptance into an error.
pub async fn mark_accepted(app: &AppState, accepted: &[(String, String)]) {
    if accepted.is_empty() {
        return;
    }
    let ttl = u64::try_from(app.accepted_ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut pipe = redis::pipe();
    for (partner, id) in accepted {
        pipe.cmd("SET").arg(accepted_key(&app.topic_prefix, partner, id)).arg(1).arg("PX").arg(ttl).ignore();
    }
    let mut conn = app.shared.conn();
    if let Err(error) = app.shared.call("accepted_mark", async move { pipe.query_async::<()>(&mut conn).await }).await {
        app.metrics.redis_errors.get_or_create(&crate::metrics::OperationLabels { operation: "accepted_mark" }).inc();
        tracing::debug!(%error, "could not note accepted orders");
    }
}

async fn was_accepted(app: &AppState, partner: &str, id: &str) -> bool {
    let mut conn = app.shared.conn();
    let key = accepted_key(&app.topic_prefix, partner, id);
    app.shared
        .call("accepted_check", async move { redis::cmd("EXISTS").arg(key).query_async::<i64>(&mut conn).await })
        .await
        .is_ok_and(|n| n > 0)
}

pub(crate) fn model(app: &AppState) -> Result<&ReadModel, Problem> {
    app.read_model.get().ok_or_else(|| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "read-model-unavailable", "the order read model is not reachable")
            .retry_after(app.retry_after_unavailable)
    })
}

pub(crate) fn unavailable(app: &AppState, error: &str) -> Problem {
    tracing::warn!(%error, "read model query failed");
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "read-model-unavailable", "the order read model did not answer")
        .retry_after(app.retry_after_unavailable)
}

/// The order `id` names for `partner`: the first of its candidate ids with a row, and the row.
async fn resolve(
    app: &AppState,
    model: &ReadModel,
    partner: &str,
    id: &str,
) -> Result<Option<(String, OrderRow)>, Problem> {
    for candidate in crate::identity::candidates(partner, id) {
        if let Some(row) = model.order(partner, &candidate).await.map_err(|e| unavailable(app, &e))? {
            return Ok(Some((candidate, row)));
        }
    }
    Ok(None)
}

/// 404 for an order this partner does not have: "not yet projected" when the edge accepted it.
async fn missing(app: &AppState, partner: &str, id: &str) -> Problem {
    let mut accepted = false;
    for candidate in crate::identity::candidates(partner, id) {
        if was_accepted(app, partner, &candidate).await {
            accepted = true;
            break;
        }
    }
    if accepted {
        Problem::new(
            StatusCode::NOT_FOUND,
            "accepted-not-yet-projected",
            "the order was accepted but is not in the read model yet; poll again shortly",
        )
        .retry_after(1)
        .correlated(id)
    } else {
        Problem::new(StatusCode::NOT_FOUND, "order-not-found", "no such order").correlated(id)
    }
}

pub(crate) fn observe(app: &AppState, outcome: &'static str, started: Instant) {
    app.metrics.queries.get_or_create(&QueryLabels { outcome }).inc();
    app.metrics.query_duration.observe(started.elapsed().as_secs_f64());
}

pub(crate) fn outcome_of(problem: &Problem) -> &'static str {
    match problem.slug() {
        "accepted-not-yet-projected" => "not_projected",
        "order-not-found" => "not_found",
        "read-model-unavailable" => "unavailable",
        _ => "refused",
    }
}

fn etag(version: i64) -> String {
    format!("\"v{version}\"")
}

fn matches(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t == tag || t.strip_prefix("W/") == Some(tag))
}

/// `GET <route>/{id}`: the order's current state, with an ETag of its version.
pub async fn status(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    base: Arc<str>,
) -> Response {
    let started = Instant::now();
    match status_inner(&app, peer, &id, &headers, &base).await {
        Ok(response) => {
            observe(
                &app,
                if response.status() == StatusCode::NOT_MODIFIED { "not_modified" } else { "found" },
                started,
            );
            response
        }
        Err(problem) => {
            observe(&app, outcome_of(&problem), started);
            problem.into_response()
        }
    }
}

async fn status_inner(
    app: &AppState,
    peer: SocketAddr,
    id: &str,
    headers: &HeaderMap,
    base: &str,
) -> Result<Response, Problem> {
    // The same IP limit, identity, partner limit and concurrency permit as posting.
    let caller = admission::admit_headers(app, peer, headers, None).await?;
    let partner = caller.identity.partner.as_str();
    let model = model(app)?;
    let Some((id, row)) = resolve(app, model, partner, id).await? else {
        return Err(missing(app, partner, id).await);
    };
    Ok(order_response(&id, partner, row, headers, base))
}

/// The answer for one order row: `200` with the order (and its ETag), or `304` when
/// `If-None-Match` has its version. `id` is its correlation id, `base` the route's path.
pub(crate) fn order_response(id: &str, partner: &str, row: OrderRow, headers: &HeaderMap, base: &str) -> Response {
    let (
        order_id,
        status,
        version,
        currency,
        subtotal,
        discount,
        total,
        items,
        reference,
        failure,
        deadline,
        created,
        updated,
    ) = row;
    let tag = etag(version);
    let mut response = if matches(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let items: Value = items.as_deref().and_then(|i| serde_json::from_str(i).ok()).unwrap_or_else(|| json!([]));
        let body = json!({
            "id": id, "order_id": order_id, "partner": partner, "status": status, "version": version,
            "currency": currency, "subtotal": decimal(subtotal), "discount": decimal(discount), "total": decimal(total),
            "items": items, "partner_reference": reference, "failure_reason": failure,
            "deadline": rfc3339(deadline), "created_at": rfc3339(created), "updated_at": rfc3339(updated),
            "links": { "self": format!("{base}/{id}"), "events": format!("{base}/{id}/events") },
        });
        (StatusCode::OK, axum::Json(body)).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `?limit=&cursor=` of the timeline.
#[derive(Debug, Deserialize)]
pub struct Page {
    limit: Option<i32>,
    cursor: Option<String>,
}

/// `GET <route>/{id}/events`: the order's transitions, newest first, a page at a time.
pub async fn events(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
    headers: HeaderMap,
    base: Arc<str>,
) -> Response {
    let started = Instant::now();
    match events_inner(&app, peer, &id, &page, &headers, &base).await {
        Ok(response) => {
            observe(&app, "found", started);
            response
        }
        Err(problem) => {
            observe(&app, outcome_of(&problem), started);
            problem.into_response()
        }
    }
}

async fn events_inner(
    app: &AppState,
    peer: SocketAddr,
    id: &str,
    page: &Page,
    headers: &HeaderMap,
    base: &str,
) -> Result<Response, Problem> {
    let caller = admission::admit_headers(app, peer, headers, None).await?;
    let partner = caller.identity.partner.as_str();
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "invalid-page", format!("limit must be 1 to {MAX_PAGE}")));
    }
    let before = match page.cursor.as_deref() {
        None => i64::MAX,
        Some(c) => c.strip_prefix('v').and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "invalid-cursor", "cursor is not one this API gave")
        })?,
    };
    let model = model(app)?;
    let Some((id, _)) = resolve(app, model, partner, id).await? else {
        return Err(missing(app, partner, id).await);
    };
    let id = id.as_str();
    let rows = model.events(partner, id, before, limit + 1).await.map_err(|e| unavailable(app, &e))?;
    if rows.is_empty() && page.cursor.is_none() {
        // No transitions: unknown, or not this partner's, or not projected yet.
        return Err(missing(app, partner, id).await);
    }
    let more = rows.len() > usize::try_from(limit).unwrap_or(0);
    let rows: Vec<EventRow> = rows.into_iter().take(usize::try_from(limit).unwrap_or(0)).collect();
    let next = if more { rows.last().map(|r| format!("v{}", r.0)) } else { None };
    let events: Vec<Value> = rows
        .into_iter()
        .map(|(version, at, from, to, event_id, event_type, detail)| {
            json!({ "version": version, "at": rfc3339(at), "from": from, "to": to, "event_id": event_id,
                    "event_type": event_type, "detail": detail })
        })
        .collect();
    let next_link = next.as_ref().map(|c| format!("{base}/{id}/events?limit={limit}&cursor={c}"));
    let body = json!({ "id": id, "events": events, "next_cursor": next, "links": { "next": next_link, "order": format!("{base}/{id}") } });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}
