//! Orders: a search by partner and order id, correlation id, or status and creation time (the
//! by-minute index walked back from the window's end), and an order's page: its state
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
    /// The latest status, or empty for any.
    #[serde(default)]
    status: String,
    /// Created within the last: `15m`, `1h`, `24h`, `7d`; ignored when `from` is given.
    #[serde(default)]
    within: String,
    /// Created at or after (UTC, `YYYY-MM-DDTHH:MM`, as a datetime-local field sends it).
    #[serde(default)]
    from: String,
    /// Created before (UTC, same form); empty for now.
    #[serde(default)]
    to: String,
}

/// The search's time windows.
const WITHIN: [(&str, &str, i64); 4] = [
    ("15m", "Last 15 minutes", 900_000),
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 86_400_000),
    ("7d", "Last 7 days", 604_800_000),
];

/// Longest span a search by time walks (a week of minutes).
const MAX_SPAN_MS: i64 = 604_800_000;

/// Most index rows one search by time reads before it stops, says so and offers to go on
/// (a page stays well under 200 ms).
const SCAN_BUDGET: usize = 40_000;

/// Minutes of the index read at once.
const IN_FLIGHT: usize = 4;

/// Most index rows read of one minute.
const PER_MINUTE: usize = SCAN_BUDGET / IN_FLIGHT;

/// `YYYY-MM-DDTHH:MM[:SS]` (UTC) or RFC 3339, as epoch ms.
fn instant(text: &str) -> Option<Result<i64, String>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let rfc3339 = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
    let local = || {
        let format = if text.len() > 16 {
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        } else {
            "[year]-[month]-[day]T[hour]:[minute]"
        };
        let description = time::format_description::parse_borrowed::<2>(format).map_err(|e| e.to_string())?;
        time::PrimitiveDateTime::parse(text, &description).map(|t| t.assume_utc()).map_err(|e| e.to_string())
    };
    let parsed = rfc3339.map_err(|e| e.to_string()).or_else(|_| local());
    Some(
        parsed
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
            .map_err(|e| format!("{text:?} is not a time (YYYY-MM-DDTHH:MM, UTC): {e}")),
    )
}

/// The statuses an order can have, from the `order_state` contract.
fn statuses(console: &Console) -> Vec<String> {
    let Some(contract) = console.topology.contracts.get("order_state") else { return Vec::new() };
    let json: serde_json::Value = serde_json::from_str(&contract.text).unwrap_or_default();
    json["fields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["name"] == "status"))
        .and_then(|f| f["type"]["symbols"].as_array())
        .map(|symbols| symbols.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
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
    let option = |value: &str, text: &str, current: &str| {
        let selected = if value == current { " selected" } else { "" };
        format!("<option value=\"{}\"{selected}>{}</option>", escape(value), escape(text))
    };
    let partners: String =
        console.topology.partners.iter().map(|p| option(&p.name, &p.name, &search.partner)).collect();
    let statuses: String = std::iter::once(option("", "Any", &search.status))
        .chain(statuses(console).iter().map(|s| option(s, s, &search.status)))
        .collect();
    let within: String = std::iter::once(option("", "Any time", &search.within))
        .chain(WITHIN.iter().map(|(v, t, _)| option(v, t, &search.within)))
        .collect();
    format!(
        "<form class=\"search\" method=\"get\" action=\"/orders\" role=\"search\">\
         <label for=\"partner\">Partner<select id=\"partner\" name=\"partner\">{partners}</select></label>\
         <label for=\"order_id\">Order id<input id=\"order_id\" name=\"order_id\" value=\"{}\"></label>\
         <label for=\"correlation_id\">Correlation id<input id=\"correlation_id\" name=\"correlation_id\" value=\"{}\"></label>\
         <label for=\"status\">Status<select id=\"status\" name=\"status\">{statuses}</select></label>\
         <label for=\"within\">Created<select id=\"within\" name=\"within\">{within}</select></label>\
         <label for=\"from\">From (UTC)<input id=\"from\" name=\"from\" type=\"datetime-local\" value=\"{}\"></label>\
         <label for=\"to\">To (UTC)<input id=\"to\" name=\"to\" type=\"datetime-local\" value=\"{}\"></label>\
         <button type=\"submit\">Search</button></form>",
        escape(&search.order_id),
        escape(&search.correlation_id),
        escape(&search.from),
        escape(&search.to)
    )
}

/// What a search by creation time found, and how far it read.
struct TimeSearch {
    found: Vec<LookupView>,
    minutes: usize,
    rows: usize,
    /// Stopped at the scan budget before the window's start: where a further search goes on
    /// from (its end; the boundary's rows may show again).
    resume_before: Option<i64>,
}

/// The partner's orders created in [`from`, `until`), newest first, with `status` if given: the
/// by-minute index walked back from `until`, [`IN_FLIGHT`] minutes at once, until
/// [`SEARCH_LIMIT`] orders match, the window is read or [`SCAN_BUDGET`] rows are.
async fn by_time(
    model: &interchange_ingest::read_model::ReadModel,
    partner: &str,
    status: Option<&str>,
    from: i64,
    until: i64,
) -> Result<TimeSearch, String> {
    use futures::StreamExt;
    let limit = usize::try_from(SEARCH_LIMIT).unwrap_or(50);
    let last = interchange_core::readmodel::minute_of(until.saturating_sub(1));
    let first = interchange_core::readmodel::minute_of(from);
    let minutes = std::iter::successors(Some(last), |m| Some(m - 60_000)).take_while(move |m| *m >= first);
    let mut pages = futures::stream::iter(minutes)
        .map(|minute| async move { model.by_minute(partner, minute, from, until, status, limit, PER_MINUTE).await })
        .buffered(IN_FLIGHT);
    let mut search = TimeSearch { found: Vec::new(), minutes: 0, rows: 0, resume_before: None };
    while let Some(page) = pages.next().await {
        let (found, read, oldest) = page?;
        search.minutes += 1;
        search.rows += read;
        search.found.extend(found);
        if search.found.len() >= limit {
            search.found.truncate(limit);
            break;
        }
        // A minute read to its budget may hold more: stop there rather than skip past them.
        if search.rows >= SCAN_BUDGET || read >= PER_MINUTE {
            search.resume_before = oldest.map(|t| t + 1);
            break;
        }
    }
    Ok(search)
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
        search.partner = console.topology.partners.first().map(|p| p.name.clone()).unwrap_or_default();
    }
    let form = search_form(&console, &search);
    let (order_id, correlation_id) = (search.order_id.trim(), search.correlation_id.trim());
    let by_time_asked = !search.status.is_empty() || !search.within.is_empty() || !search.from.trim().is_empty();
    if order_id.is_empty() && correlation_id.is_empty() && !by_time_asked {
        let body = format!("{form}<p class=\"note\">Give an order id or a correlation id, or a status or a time.</p>");
        return Html(page(TITLE, Section::Orders, Some(&operator), &body)).into_response();
    }
    let Some(model) = console.read_model.get() else { return not_connected(&operator, TITLE) };
    let partner = search.partner.as_str();
    if order_id.is_empty() && correlation_id.is_empty() {
        let bad = |text: String| {
            let body = format!("{form}{}", alert(&text));
            (StatusCode::BAD_REQUEST, Html(page(TITLE, Section::Orders, Some(&operator), &body))).into_response()
        };
        let now = interchange_core::clock::now_millis();
        let until = match instant(&search.to) {
            Some(Ok(t)) => t,
            Some(Err(e)) => return bad(e),
            None => now + 1,
        };
        let window = WITHIN.iter().find(|(v, _, _)| *v == search.within).map_or(MAX_SPAN_MS, |(_, _, ms)| *ms);
        let from = match instant(&search.from) {
            Some(Ok(t)) => t,
            Some(Err(e)) => return bad(e),
            None => until - window,
        };
        if from >= until {
            return bad("The search's start is not before its end.".to_owned());
        }
        let from = from.max(until - MAX_SPAN_MS);
        let status = Some(search.status.trim()).filter(|s| !s.is_empty());
        return match by_time(model, partner, status, from, until).await {
            Ok(found) => {
                let further = match found.resume_before {
                    Some(before) => format!(
                        " It stopped there: <a href=\"/orders?partner={}&amp;status={}&amp;from={}&amp;to={}\">search further back</a>.",
                        url_component(partner),
                        url_component(status.unwrap_or("")),
                        url_component(&time(Some(from))),
                        url_component(&time(Some(before)))
                    ),
                    None => String::new(),
                };
                let note = format!(
                    "<p class=\"note\">Created from {} to {}: read {} order(s) in {} minute(s) of the index.{further}</p>",
                    time(Some(from)),
                    time(Some(until)),
                    found.rows,
                    found.minutes,
                );
                let body = format!("{form}{}{note}", results_table(partner, &found.found));
                Html(page(TITLE, Section::Orders, Some(&operator), &body)).into_response()
            }
            Err(e) => unavailable(&operator, TITLE, &e),
        };
    }
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

#[cfg(test)]
mod tests {
    use super::instant;

    #[test]
    fn a_search_time_is_a_datetime_local_value_in_utc_or_rfc_3339() {
        assert_eq!(instant("2023-11-14T22:13"), Some(Ok(1_699_999_980_000)));
        assert_eq!(instant("2023-11-14T22:13:20"), Some(Ok(1_700_000_000_000)));
        assert_eq!(instant("2023-11-14T22:13:20.123Z"), Some(Ok(1_700_000_000_123)));
        assert_eq!(instant(" "), None);
        assert!(instant("yesterday").is_some_and(|r| r.is_err()));
    }
}
