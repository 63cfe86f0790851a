//! `GET <route>?order_id=<id>`: an order found by the partner's own order id, answered with the
//! same body (and ETag) as `GET <route>/{correlation id}`, plus `Content-Location` naming that URL.
//!
//! A filter on the order collection rather than a path of its own: an order id is the partner's
//! free text (slashes, spaces, anything), which a query parameter carries without path escaping,
//! and it cannot collide with a correlation id under `<route>/{id}`. The lookup is scoped to the
//! authenticated partner (the projector's `orders_by_order_id` table is keyed by (partner, order
//! id)), so another partner's order id is a 404 like an unknown one. An order id the partner used
//! for several orders is answered `409 order-id-ambiguous` listing them (newest first): picking
//! one would show the state of an order the caller may not mean, and a reused id is usually a
//! duplicate the partner wants to know about; each entry links to its status by correlation id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use interchange_core::readmodel::{indexed_order_id, LookupView, MAX_INDEXED_ORDER_ID_BYTES};
use serde_json::{json, Value};

use crate::admission;
use crate::orders;
use crate::problem::Problem;
use crate::state::{Gate, Reads};

/// Most orders a `409 order-id-ambiguous` lists.
pub(crate) const MAX_LISTED: usize = 20;

/// What a lookup ended with, besides its response: the metric's outcome.
type Answer = (Response, &'static str);

/// `GET <route>?order_id=`.
pub(crate) async fn lookup(
    State(gate): State<Arc<Gate>>,
    State(reads): State<Arc<Reads>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
    base: Arc<str>,
) -> Response {
    let started = Instant::now();
    match lookup_inner(&gate, &reads, peer, query, &headers, &base).await {
        Ok((response, outcome)) => {
            orders::observe(&reads, outcome, started);
            response
        }
        Err(problem) => {
            orders::observe(&reads, orders::outcome_of(&problem), started);
            problem.into_response()
        }
    }
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-query", detail)
}

/// The one `order_id` of the query string.
fn order_id(query: Result<Query<Vec<(String, String)>>, QueryRejection>) -> Result<String, Problem> {
    let Query(pairs) = query.map_err(|e| invalid(format!("the query string does not parse: {e}")))?;
    let mut found = None;
    for (name, value) in pairs {
        match name.as_str() {
            "order_id" if found.is_none() => found = Some(value),
            "order_id" => return Err(invalid("order_id is given more than once")),
            other => {
                return Err(invalid(format!("unknown query parameter {other:?}: this lookup takes only order_id")))
            }
        }
    }
    let order_id = found.ok_or_else(|| {
        invalid("order_id is required: this finds one order by the partner's own order id (orders are not listed)")
    })?;
    if !indexed_order_id(&order_id) {
        return Err(invalid(format!("order_id must be 1 to {MAX_INDEXED_ORDER_ID_BYTES} bytes of UTF-8")));
    }
    Ok(order_id)
}

async fn lookup_inner(
    gate: &Gate,
    reads: &Reads,
    peer: SocketAddr,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: &HeaderMap,
    base: &str,
) -> Result<Answer, Problem> {
    // The same IP limit, identity, partner limit and concurrency permit as posting and reading
    // by correlation id (`caller` holds the permit until the answer is made).
    let caller = admission::admit_headers(gate, peer, headers, None).await?;
    let partner = caller.identity.partner.as_str();
    let order_id = order_id(query)?;
    let model = orders::model(reads)?;
    let limit = i32::try_from(MAX_LISTED + 1).unwrap_or(i32::MAX);
    let mut found = model.by_order_id(partner, &order_id, limit).await.map_err(|e| orders::unavailable(&e))?;
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "order-not-found",
            "no order of this partner has this order_id in the read model (an accepted order appears once \
             projected: its correlation id's status URL says whether it was accepted)",
        )
    };
    match found.len() {
        0 => Err(not_found()),
        1 => {
            let id = found.remove(0).correlation_id;
            // The lookup row is written after the order's row and expires with it; a row that
            // is gone now (its TTL ran out between the two reads) is a 404 like any other.
            let Some(row) = model.order(partner, &id).await.map_err(|e| orders::unavailable(&e))? else {
                return Err(not_found());
            };
            let mut response = orders::order_response(&id, partner, row, headers, base);
            if let Ok(location) = HeaderValue::from_str(&format!("{base}/{id}")) {
                response.headers_mut().insert(header::CONTENT_LOCATION, location);
            }
            let outcome = if response.status() == StatusCode::NOT_MODIFIED { "not_modified" } else { "found" };
            Ok((response, outcome))
        }
        _ => Ok((ambiguous(&order_id, found, base), "ambiguous")),
    }
}

/// `409 order-id-ambiguous`: the orders that carry the order id, newest first.
fn ambiguous(order_id: &str, rows: Vec<LookupView>, base: &str) -> Response {
    let body = ambiguous_body(order_id, rows, base);
    let mut response = (StatusCode::CONFLICT, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

/// The problem of [`ambiguous`], with `orders` (at most [`MAX_LISTED`]) and `truncated`.
fn ambiguous_body(order_id: &str, mut rows: Vec<LookupView>, base: &str) -> Value {
    let truncated = rows.len() > MAX_LISTED;
    rows.truncate(MAX_LISTED);
    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.correlation_id.cmp(&b.correlation_id)));
    let orders: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let id = row.correlation_id;
            json!({ "id": id, "status": row.status, "version": row.version, "created_at": orders::rfc3339(row.created_at),
                    "links": { "self": format!("{base}/{id}"), "events": format!("{base}/{id}/events") } })
        })
        .collect();
    let n = orders.len();
    let problem = Problem::new(
        StatusCode::CONFLICT,
        "order-id-ambiguous",
        format!(
            "this partner used order_id {order_id:?} for {}{n} orders; read the one you mean by its correlation id \
             (orders[].links.self)",
            if truncated { "more than " } else { "" }
        ),
    );
    let mut body = serde_json::to_value(&problem).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut body {
        map.insert("orders".to_owned(), Value::Array(orders));
        map.insert("truncated".to_owned(), Value::Bool(truncated));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Result<Query<Vec<(String, String)>>, QueryRejection> {
        let uri: axum::http::Uri = format!("/api/v1/orders?{text}").parse().expect("uri");
        Query::try_from_uri(&uri)
    }

    #[test]
    fn the_query_takes_exactly_one_order_id_within_the_indexed_length() {
        assert_eq!(order_id(query("order_id=A%2F1%20x")).expect("valid"), "A/1 x");
        for (text, says) in [
            ("", "order_id is required"),
            ("order_id=", "1 to 512 bytes"),
            ("order_id=a&order_id=b", "more than once"),
            ("order_id=a&status=COMPLETED", "unknown query parameter \"status\""),
        ] {
            let problem = order_id(query(text)).expect_err(text);
            assert_eq!(problem.status, 400, "{text}");
            assert_eq!(problem.slug(), "invalid-query");
            assert!(problem.detail.contains(says), "{text}: {}", problem.detail);
        }
        let long = format!("order_id={}", "x".repeat(MAX_INDEXED_ORDER_ID_BYTES + 1));
        assert!(order_id(query(&long)).is_err());
    }

    #[test]
    fn an_ambiguous_order_id_lists_its_orders_newest_first() {
        let row = |id: &str, status: &str, version, created| LookupView {
            correlation_id: id.to_owned(),
            status: Some(status.to_owned()),
            version: Some(version),
            created_at: Some(created),
        };
        let rows = vec![row("c-old", "COMPLETED", 5, 1_000), row("c-new", "RECEIVED", 1, 2_000)];
        let body = ambiguous_body("A-1", rows.clone(), "/api/v1/orders");
        assert_eq!(body["type"], "https://interchange.dev/problems/order-id-ambiguous");
        assert_eq!(body["status"], 409);
        assert_eq!(body["truncated"], false);
        let ids: Vec<&str> =
            body["orders"].as_array().expect("orders").iter().filter_map(|o| o["id"].as_str()).collect();
        assert_eq!(ids, ["c-new", "c-old"]);
        assert_eq!(body["orders"][0]["links"]["self"], "/api/v1/orders/c-new");
        assert_eq!(body["orders"][1]["status"], "COMPLETED");
        let many: Vec<LookupView> = (0..=MAX_LISTED)
            .map(|i| LookupView { correlation_id: format!("c-{i:02}"), status: None, version: None, created_at: None })
            .collect();
        let body = ambiguous_body("A-1", many, "/api/v1/orders");
        assert_eq!(body["orders"].as_array().map(Vec::len), Some(MAX_LISTED));
        assert_eq!(body["truncated"], true);
        let response = ambiguous("A-1", rows, "/api/v1/orders");
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
