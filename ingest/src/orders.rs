//! The order status API: `GET <route>/{id}` and `GET <route>/{id}/events`, read from the CQL read
//! model the projector keeps (never from Kafka), plus the edge's "accepted" marker in Redis that
//! tells "accepted, not yet projected" apart from "unknown".
//!
//! The id is the correlation id the edge answered with (202 `links.status`), or the id the
//! partner supplied as X-Correlation-Id, which resolves in the caller's own scope
//! ([`crate::identity::candidates`]). Rows are keyed by (partner, correlation id), so a partner
//! asking for another partner's order finds nothing and gets the same 404 as for an order that
//! does not exist. `GET <route>?order_id=` (the partner's own order id) is `order_lookup.rs`,
//! answering with [`order_response`]. The session and its queries are [`crate::read_model`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use interchange_core::readmodel::{Decimal, EventView, OrderView};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::admission;
use crate::identity;
use crate::metrics::QueryLabels;
use crate::problem::Problem;
use crate::read_model::ReadModel;
use crate::state::{Gate, Reads, RETRY_AFTER_UNAVAILABLE};

/// Most events in one page of the timeline.
pub(crate) const MAX_PAGE: i32 = 200;
/// Events in a page when `limit` is not given.
pub(crate) const DEFAULT_PAGE: i32 = 50;

/// A time of the read model (epoch milliseconds) as RFC 3339 text, or null.
pub(crate) fn rfc3339(t: Option<i64>) -> Value {
    t.and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// An amount of the read model as decimal text, or null.
fn decimal(d: Option<&Decimal>) -> Value {
    d.map_or(Value::Null, |d| Value::String(d.to_text()))
}

/// The read model, or `503` until the edge is connected to it.
pub(crate) fn model(reads: &Reads) -> Result<&ReadModel, Problem> {
    reads.read_model.get().ok_or_else(|| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "read-model-unavailable", "the order read model is not reachable")
            .retry_after(RETRY_AFTER_UNAVAILABLE)
    })
}

/// `503` for a query the read model did not answer.
pub(crate) fn unavailable(error: &str) -> Problem {
    tracing::warn!(%error, "read model query failed");
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "read-model-unavailable", "the order read model did not answer")
        .retry_after(RETRY_AFTER_UNAVAILABLE)
}

/// The order `id` names for `partner`: the first of its candidate ids with a row, and the row.
async fn resolve(model: &ReadModel, partner: &str, id: &str) -> Result<Option<(String, OrderView)>, Problem> {
    for candidate in identity::candidates(partner, id) {
        if let Some(row) = model.order(partner, &candidate).await.map_err(|e| unavailable(&e))? {
            return Ok(Some((candidate, row)));
        }
    }
    Ok(None)
}

/// 404 for an order this partner does not have: "not yet projected" when the edge accepted it.
async fn missing(reads: &Reads, partner: &str, id: &str) -> Problem {
    let mut accepted = false;
    for candidate in identity::candidates(partner, id) {
        if reads.accepted.seen(partner, &candidate).await {
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

/// Counts a read of the status API and its duration.
pub(crate) fn observe(reads: &Reads, outcome: &'static str, started: Instant) {
    reads.metrics.queries.get_or_create(&QueryLabels { outcome }).inc();
    reads.metrics.query_duration.observe(started.elapsed().as_secs_f64());
}

/// The metric's outcome of a refused read.
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
pub(crate) async fn status(
    State(gate): State<Arc<Gate>>,
    State(reads): State<Arc<Reads>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    base: Arc<str>,
) -> Response {
    let started = Instant::now();
    match status_inner(&gate, &reads, peer, &id, &headers, &base).await {
        Ok(response) => {
            observe(
                &reads,
                if response.status() == StatusCode::NOT_MODIFIED { "not_modified" } else { "found" },
                started,
            );
            response
        }
        Err(problem) => {
            observe(&reads, outcome_of(&problem), started);
            problem.into_response()
        }
    }
}

async fn status_inner(
    gate: &Gate,
    reads: &Reads,
    peer: SocketAddr,
    id: &str,
    headers: &HeaderMap,
    base: &str,
) -> Result<Response, Problem> {
    // The same IP limit, identity, partner limit and concurrency permit as posting.
    let caller = admission::admit_headers(gate, peer, headers, None).await?;
    let partner = caller.identity.partner.as_str();
    let model = model(reads)?;
    let Some((id, row)) = resolve(model, partner, id).await? else {
        return Err(missing(reads, partner, id).await);
    };
    Ok(order_response(&id, partner, row, headers, base))
}

/// The answer for one order row: `200` with the order (and its ETag), or `304` when
/// `If-None-Match` has its version. `id` is its correlation id, `base` the route's path.
pub(crate) fn order_response(id: &str, partner: &str, row: OrderView, headers: &HeaderMap, base: &str) -> Response {
    let tag = etag(row.version);
    let mut response = if matches(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let items: Value =
            row.items_json.as_deref().and_then(|i| serde_json::from_str(i).ok()).unwrap_or_else(|| json!([]));
        let body = json!({
            "id": id, "order_id": row.order_id, "partner": partner, "status": row.status, "version": row.version,
            "currency": row.currency, "subtotal": decimal(row.subtotal.as_ref()),
            "discount": decimal(row.discount.as_ref()), "total": decimal(row.total.as_ref()),
            "items": items, "partner_reference": row.partner_reference, "failure_reason": row.failure_reason,
            "deadline": rfc3339(row.deadline), "created_at": rfc3339(row.created_at),
            "updated_at": rfc3339(row.updated_at),
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
pub(crate) struct Page {
    limit: Option<i32>,
    cursor: Option<String>,
}

/// `GET <route>/{id}/events`: the order's transitions, newest first, a page at a time.
pub(crate) async fn events(
    State(gate): State<Arc<Gate>>,
    State(reads): State<Arc<Reads>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
    headers: HeaderMap,
    base: Arc<str>,
) -> Response {
    let started = Instant::now();
    match events_inner(&gate, &reads, peer, &id, &page, &headers, &base).await {
        Ok(response) => {
            observe(&reads, "found", started);
            response
        }
        Err(problem) => {
            observe(&reads, outcome_of(&problem), started);
            problem.into_response()
        }
    }
}

async fn events_inner(
    gate: &Gate,
    reads: &Reads,
    peer: SocketAddr,
    id: &str,
    page: &Page,
    headers: &HeaderMap,
    base: &str,
) -> Result<Response, Problem> {
    let caller = admission::admit_headers(gate, peer, headers, None).await?;
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
    let model = model(reads)?;
    let Some((id, _)) = resolve(model, partner, id).await? else {
        return Err(missing(reads, partner, id).await);
    };
    let id = id.as_str();
    let rows = model.events(partner, id, before, limit + 1).await.map_err(|e| unavailable(&e))?;
    if rows.is_empty() && page.cursor.is_none() {
        // No transitions: unknown, or not this partner's, or not projected yet.
        return Err(missing(reads, partner, id).await);
    }
    let more = rows.len() > usize::try_from(limit).unwrap_or(0);
    let rows: Vec<EventView> = rows.into_iter().take(usize::try_from(limit).unwrap_or(0)).collect();
    let next = if more { rows.last().map(|r| format!("v{}", r.version)) } else { None };
    let events: Vec<Value> = rows
        .into_iter()
        .map(|e| {
            json!({ "version": e.version, "at": rfc3339(e.at), "from": e.from_status, "to": e.to_status,
                    "event_id": e.event_id, "event_type": e.event_type, "detail": e.detail })
        })
        .collect();
    let next_link = next.as_ref().map(|c| format!("{base}/{id}/events?limit={limit}&cursor={c}"));
    let body = json!({ "id": id, "events": events, "next_cursor": next, "links": { "next": next_link, "order": format!("{base}/{id}") } });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}
