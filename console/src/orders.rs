//! Orders: a search by partner and order id or correlation id, and an order's page: its state
//! and its timeline (newest first) from the CQL read model the projector keeps, and its commands
//! and deliveries (attempts, the partner's answer, the trace) from Kafka ([`crate::traffic`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use interchange_core::readmodel::{EventView, LookupView, OrderView};
use serde::Deserialize;

use crate::html::{alert, escape, page, time, url_component, Section};
use crate::operators::Operator;
use crate::traffic::{self, OrderRecord, OrderTraffic, BUDGET};
use crate::Console;

/// Most orders one search lists.
const SEARCH_LIMIT: i32 = 50;

/// How long before an order's creation its page reads its records from.
const LOOK_BEFORE_MS: i64 = 5_000;

/// How long after an order's last change its page still reads its records (retries included).
const LOOK_AFTER_MS: i64 = 15 * 60_000;

/// Most transitions an order's page shows.
const TIMELINE_LIMIT: i32 = 200;

/// The search form's fields; any may be empty.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Search {
    #[serde(default)]
    partner: String,
    #[serde(default)]
    order_id: String,
    #[serde(default)]
    correlation_id: String,
}

fn not_connected(operator: &Operator, title: &str) -> Response {
    let body = "<p class=\"bad\" role=\"alert\">The read model is not reachable yet; this page \
                answers once the console has connected to CQL.</p>";
    (StatusCode::SERVICE_UNAVAILABLE, Html(page(title, Section::Orders, Some(operator), body))).into_response()
}

fn unavailable(operator: &Operator, title: &str, error: &str) -> Response {
    tracing::warn!(%error, "read model query failed");
    let body = alert(&format!("The read model did not answer: {error}"));
    (StatusCode::SERVICE_UNAVAILABLE, Html(page(title, Section::Orders, Some(operator), &body))).into_response()
}

fn order_link(partner: &str, correlation_id: &str) -> String {
    format!("/orders/{}/{}", url_component(partner), url_component(correlation_id))
}

fn search_form(console: &Console, search: &Search) -> String {
    let options: String = console
        .partners
        .iter()
        .map(|p| {
            let selected = if *p == search.partner { " selected" } else { "" };
            format!("<option value=\"{0}\"{selected}>{0}</option>", escape(p))
        })
        .collect();
    format!(
        "<form class=\"search\" method=\"get\" action=\"/orders\" role=\"search\">\
         <label for=\"partner\">Partner<select id=\"partner\" name=\"partner\">{options}</select></label>\
         <label for=\"order_id\">Order id<input id=\"order_id\" name=\"order_id\" value=\"{}\"></label>\
         <label for=\"correlation_id\">Correlation id<input id=\"correlation_id\" name=\"correlation_id\" value=\"{}\"></label>\
         <button type=\"submit\">Search</button></form>",
        escape(&search.order_id),
        escape(&search.correlation_id)
    )
}

fn results_table(partner: &str, found: &[LookupView]) -> String {
    if found.is_empty() {
        return "<p role=\"status\">No order matches.</p>".to_owned();
    }
    let rows: String = found
        .iter()
        .map(|o| {
            format!(
                "<tr><td><a href=\"{}\">{}</a></td><td class=\"status\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&order_link(partner, &o.correlation_id)),
                escape(&o.correlation_id),
                escape(o.status.as_deref().unwrap_or("")),
                o.version.map(|v| v.to_string()).unwrap_or_default(),
                time(o.created_at)
            )
        })
        .collect();
    format!(
        "<p role=\"status\">{} order(s)</p><div class=\"table\"><table><caption class=\"note\">Orders of {}</caption>\
         <thead><tr><th scope=\"col\">Correlation id</th><th scope=\"col\">Status</th><th scope=\"col\">Version</th>\
         <th scope=\"col\">Created</th></tr></thead><tbody>{rows}</tbody></table></div>",
        found.len(),
        escape(partner)
    )
}

/// `GET /orders`: the form, and what it found.
pub(crate) async fn search(
    State(console): State<Arc<Console>>,
    operator: Operator,
    Query(mut search): Query<Search>,
) -> Response {
    const TITLE: &str = "Orders";
    if search.partner.is_empty() {
        search.partner = console.partners.first().cloned().unwrap_or_default();
    }
    let form = search_form(&console, &search);
    let (order_id, correlation_id) = (search.order_id.trim(), search.correlation_id.trim());
    if order_id.is_empty() && correlation_id.is_empty() {
        let body = format!("{form}<p class=\"note\">Give an order id or a correlation id.</p>");
        return Html(page(TITLE, Section::Orders, Some(&operator), &body)).into_response();
    }
    let Some(model) = console.read_model.get() else { return not_connected(&operator, TITLE) };
    let partner = search.partner.as_str();
    let found = if correlation_id.is_empty() {
        model.by_order_id(partner, order_id, SEARCH_LIMIT).await
    } else {
        // As the partner sent it, or already scoped to the partner (`partner:id`).
        let mut found = Vec::new();
        let scoped = format!("{partner}:{correlation_id}");
        for id in [correlation_id, scoped.as_str()] {
            match model.order(partner, id).await {
                Ok(Some(o)) => found.push(LookupView {
                    correlation_id: id.to_owned(),
                    status: Some(o.status),
                    version: Some(o.version),
                    created_at: o.created_at,
                }),
                Ok(None) => {}
                Err(e) => return unavailable(&operator, TITLE, &e),
            }
        }
        Ok(found)
    };
    match found {
        Ok(found) => {
            let body = format!("{form}{}", results_table(partner, &found));
            Html(page(TITLE, Section::Orders, Some(&operator), &body)).into_response()
        }
        Err(e) => unavailable(&operator, TITLE, &e),
    }
}

fn amount(order: &OrderView, value: Option<&interchange_core::readmodel::Decimal>) -> String {
    value.map(|d| format!("{} {}", d.to_text(), order.currency)).unwrap_or_default()
}

fn state_list(partner: &str, id: &str, order: &OrderView) -> String {
    let status_class = match order.status.as_str() {
        "COMPLETED" => "status ok",
        "REJECTED" | "FAILED" | "COMPENSATED" | "CANCELLED" => "status bad",
        _ => "status",
    };
    let mut rows = vec![
        ("Status", format!("<span class=\"{status_class}\">{}</span>", escape(&order.status))),
        ("Partner", escape(partner)),
        ("Order id", escape(&order.order_id)),
        ("Correlation id", escape(id)),
        ("Version", order.version.to_string()),
        ("Subtotal", escape(&amount(order, order.subtotal.as_ref()))),
        ("Discount", escape(&amount(order, order.discount.as_ref()))),
        ("Total", escape(&amount(order, order.total.as_ref()))),
        ("Created", time(order.created_at)),
        ("Updated", time(order.updated_at)),
    ];
    if let Some(reference) = &order.partner_reference {
        rows.push(("Partner reference", escape(reference)));
    }
    if let Some(reason) = &order.failure_reason {
        rows.push(("Failure", format!("<span class=\"bad\">{}</span>", escape(reason))));
    }
    if order.deadline.is_some() {
        rows.push(("Deadline", time(order.deadline)));
    }
    let items: String = rows.iter().map(|(k, v)| format!("<dt>{k}</dt><dd>{v}</dd>")).collect();
    format!("<section aria-labelledby=\"state\"><h2 id=\"state\">State</h2><dl>{items}</dl></section>")
}

fn timeline(events: &[EventView]) -> String {
    let rows: String = events
        .iter()
        .map(|e| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
                e.version,
                time(e.at),
                escape(e.from_status.as_deref().unwrap_or("")),
                escape(e.to_status.as_deref().unwrap_or("")),
                escape(e.event_type.as_deref().unwrap_or("")),
                escape(e.detail.as_deref().unwrap_or(""))
            )
        })
        .collect();
    format!(
        "<section aria-labelledby=\"timeline\"><h2 id=\"timeline\">Timeline</h2><div class=\"table\"><table>\
         <caption class=\"note\">Every transition, newest first</caption><thead><tr><th scope=\"col\">Version</th>\
         <th scope=\"col\">At</th><th scope=\"col\">Transition</th><th scope=\"col\">Event</th>\
         <th scope=\"col\">Detail</th></tr></thead><tbody>{rows}</tbody></table></div></section>"
    )
}

/// What one command or delivery result says, in a line.
fn summary(record: &OrderRecord) -> String {
    let text = |k: &str| record.json[k].as_str().map(str::to_owned);
    if record.contract == "delivery_result" {
        let mut parts = vec![format!(
            "{} after {} attempt(s)",
            text("outcome").unwrap_or_default(),
            record.json["attempts"].as_i64().unwrap_or(0)
        )];
        if let Some(status) = record.json["http_status"].as_i64() {
            parts.push(format!("HTTP {status}"));
        }
        if let Some(reference) = text("partner_reference") {
            parts.push(format!("reference {reference}"));
        }
        if let Some(detail) = text("detail") {
            parts.push(detail);
        }
        return format!("{}: {}", text("command_type").unwrap_or_default(), parts.join(", "));
    }
    let mut parts = Vec::new();
    if let Some(id) = text("command_id") {
        parts.push(format!("command {id}"));
    }
    if let Some(event) = text("event_type") {
        parts.push(event);
    }
    parts.join(", ")
}

/// The order's commands and their deliveries, oldest first.
fn traffic_section(console: &Console, traffic: Result<OrderTraffic, String>) -> String {
    let traffic = match traffic {
        Ok(traffic) => traffic,
        Err(e) => {
            return format!(
            "<section aria-labelledby=\"deliveries\"><h2 id=\"deliveries\">Commands and deliveries</h2>{}</section>",
            alert(&format!("Kafka did not answer: {e}"))
        )
        }
    };
    let trace = |id: &Option<String>| match (id, &console.jaeger) {
        (Some(id), Some(jaeger)) => {
            format!(
                "<a href=\"{}/trace/{}\">{}</a>",
                escape(jaeger.trim_end_matches('/')),
                url_component(id),
                escape(id)
            )
        }
        (Some(id), None) => escape(id),
        (None, _) => String::new(),
    };
    let rows: String = traffic
        .records
        .iter()
        .map(|r| {
            format!(
                "<tr><td>{}</td><td>{}<br><span class=\"note\">{}/{}@{}</span></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time(Some(r.at_ms)),
                escape(&r.contract),
                escape(&r.topic),
                r.partition,
                r.offset,
                escape(r.json["partner"].as_str().unwrap_or("")),
                escape(&summary(r)),
                trace(&r.trace_id)
            )
        })
        .collect();
    let cut = if traffic.cut_short.is_empty() {
        String::new()
    } else {
        alert(&format!(
            "Read the first {BUDGET} records of the order's partition on {} only; later records are not shown.",
            traffic.cut_short.join(", ")
        ))
    };
    let table = if traffic.records.is_empty() {
        "<p>No command or delivery of this order is on the topics (yet, or any more).</p>".to_owned()
    } else {
        format!(
            "<div class=\"table\"><table><caption class=\"note\">Read from Kafka, oldest first</caption><thead><tr>\
             <th scope=\"col\">At</th><th scope=\"col\">Record</th><th scope=\"col\">Partner</th><th scope=\"col\">What</th>\
             <th scope=\"col\">Trace</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    format!("<section aria-labelledby=\"deliveries\"><h2 id=\"deliveries\">Commands and deliveries</h2>{cut}{table}</section>")
}

/// `GET /orders/{partner}/{correlation_id}`: the order's state and timeline.
pub(crate) async fn order(
    State(console): State<Arc<Console>>,
    operator: Operator,
    Path((partner, id)): Path<(String, String)>,
) -> Response {
    let title = format!("Order {id}");
    let Some(model) = console.read_model.get() else { return not_connected(&operator, &title) };
    let order = match model.order(&partner, &id).await {
        Ok(Some(order)) => order,
        Ok(None) => {
            let body = format!(
                "<p role=\"alert\">No order {} of {} in the read model.</p><p><a href=\"/orders\">Search orders</a></p>",
                escape(&id),
                escape(&partner)
            );
            return (StatusCode::NOT_FOUND, Html(page(&title, Section::Orders, Some(&operator), &body)))
                .into_response();
        }
        Err(e) => return unavailable(&operator, &title, &e),
    };
    let events = match model.events(&partner, &id, i64::MAX, TIMELINE_LIMIT).await {
        Ok(events) => events,
        Err(e) => return unavailable(&operator, &title, &e),
    };
    let deliveries = match (&console.traffic, &console.reader) {
        (Some(traffic), Some(reader)) => {
            // From just before the order was created (the processor stamps the state, the
            // producers their records) to well after its last change (a notification's
            // delivery, with its retries, ends after the state it announces).
            let from = order.created_at.unwrap_or(0).saturating_sub(LOOK_BEFORE_MS).max(0);
            let until = order.updated_at.unwrap_or(i64::MAX - LOOK_AFTER_MS).saturating_add(LOOK_AFTER_MS);
            let topics = traffic::topics(&console.topology);
            traffic_section(&console, traffic.read(reader, &topics, &id, from, until).await)
        }
        _ => String::new(),
    };
    let body = format!("{}{deliveries}{}", state_list(&partner, &id, &order), timeline(&events));
    Html(page(&title, Section::Orders, Some(&operator), &body)).into_response()
}
