//! The overview: who is signed in, and what the hub is doing now ([`crate::live`]): throughput
//! per stage, error rates, every consumer group's lag, each partner's breaker and rate use, and
//! the dead letters of the last hour. The live part is its own fragment (`/overview/live`), which
//! the console's script swaps in place every few seconds; without script a reload refreshes it.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use interchange_core::clock::now_millis;

use crate::html::{alert, escape, page as layout, time, url_component, Section};
use crate::live::{breaker_word, Live, SAMPLE_EVERY};
use crate::operators::{Operator, Permission};
use crate::Console;

/// A rate for a table cell: none (not reported) as a dash.
pub(crate) fn per_second(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// Seconds as milliseconds for a table cell (a histogram bound: "≤").
pub(crate) fn millis(seconds: Option<f64>) -> String {
    match seconds {
        None => "–".to_owned(),
        Some(s) if s.is_infinite() => "> 16 s".to_owned(),
        Some(s) => format!("≤ {:.0} ms", s * 1000.0),
    }
}

/// `GET /`: the page, its live section rendered now.
pub(crate) async fn page(State(console): State<Arc<Console>>, operator: Operator) -> Response {
    let read_model = if console.read_model.get().is_some() { "connected" } else { "not connected yet" };
    let may_replay = if operator.may(Permission::Replay) { "read and replay" } else { "read only" };
    let body = format!(
        "<dl><dt>Signed in as</dt><dd>{}</dd><dt>Permissions</dt><dd>{may_replay}</dd>\
         <dt>Read model</dt><dd>{read_model}</dd></dl>\
         <section id=\"live\" aria-labelledby=\"now\" data-refresh=\"/overview/live\" data-every=\"{}\">{}</section>\
         <script src=\"/console.js\" defer></script>",
        escape(&operator.name),
        SAMPLE_EVERY.as_millis(),
        live_html(&console, &console.live.latest())
    );
    Html(layout("Overview", Section::Overview, Some(&operator), &body)).into_response()
}

/// `GET /overview/live`: the live section alone, for the script to swap in.
pub(crate) async fn fragment(State(console): State<Arc<Console>>, _operator: Operator) -> Response {
    Html(live_html(&console, &console.live.latest())).into_response()
}

fn table(caption: &str, heads: &[&str], rows: &str) -> String {
    let heads: String = heads
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let class = if i == 0 { "" } else { " class=\"num\"" };
            format!("<th scope=\"col\"{class}>{h}</th>")
        })
        .collect();
    format!(
        "<div class=\"table\"><table><caption>{caption}</caption><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

/// The live figures.
fn live_html(console: &Console, live: &Live) -> String {
    if live.at_ms == 0 {
        return "<h2 id=\"now\">Now</h2><p class=\"updated\" data-at=\"0\">Sampling the hub's metrics and Kafka…</p>"
            .to_owned();
    }
    let unreachable = if live.unreachable.is_empty() {
        String::new()
    } else {
        alert(&format!("Not answering, so not counted: {}.", live.unreachable.join("; ")))
    };
    let stages: String = live
        .stages
        .iter()
        .map(|s| {
            format!(
                "<tr><td>{} <span class=\"note\">({})</span></td><td class=\"num\">{}</td></tr>",
                s.name,
                s.what,
                per_second(s.per_second)
            )
        })
        .collect();
    let hour = console.letters.as_ref().map(|index| index.count_since(now_millis() - 3_600_000));
    let letters_row = match hour {
        Some(n) => format!(
            "<tr><td><a href=\"/dead-letters?since=1h\">Dead letters in the last hour</a></td><td class=\"num\" id=\"letters-hour\">{n}</td></tr>"
        ),
        None => String::new(),
    };
    let errors: String = live
        .errors
        .iter()
        .map(|e| format!("<tr><td>{}</td><td class=\"num\">{}</td></tr>", e.name, per_second(e.per_second)))
        .collect();
    let lag: String = if live.lag.is_empty() {
        "<tr><td colspan=\"3\">No consumer group has committed offsets yet.</td></tr>".to_owned()
    } else {
        live.lag
            .iter()
            .map(|g| {
                format!(
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    escape(&g.group),
                    g.partitions,
                    g.lag
                )
            })
            .collect()
    };
    let lag_problem =
        live.lag_problem.as_deref().map(|p| alert(&format!("Consumer lag not read: {p}"))).unwrap_or_default();
    let partners: String = console
        .topology
        .partners
        .iter()
        .filter_map(|p| Some((p, p.outbound.as_ref()?)))
        .map(|(p, outbound)| {
            let now = live.partners.get(&p.name).cloned().unwrap_or_default();
            let word = breaker_word(now.breaker);
            let class = if word == "closed" { "ok" } else if word == "not reported" { "note" } else { "bad" };
            let limit = f64::from(outbound.rate_limit.per_second.max(1));
            let used = now.attempts_per_second.map(|a| format!("{:.0}%", 100.0 * a / limit)).unwrap_or_else(|| "–".to_owned());
            format!(
                "<tr><td><a href=\"/partners/{}\">{}</a></td><td class=\"num {class}\">{word}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{used} of {}/s</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                url_component(&p.name),
                escape(&p.name),
                per_second(now.attempts_per_second),
                outbound.rate_limit.per_second,
                per_second(now.failed_per_second),
                millis(now.p99)
            )
        })
        .collect();
    format!(
        "<h2 id=\"now\">Now</h2><p class=\"updated\" data-at=\"{}\">Updated {} (every {} s)</p>{unreachable}<div class=\"grid\">{}{}</div>{lag_problem}{}{}",
        live.at_ms,
        time(Some(live.at_ms)),
        SAMPLE_EVERY.as_secs(),
        table("Throughput per stage", &["Stage", "Per second"], &stages),
        table("Errors", &["What", "Per second"], &format!("{errors}{letters_row}")),
        table(
            "Consumer lag: end offset minus committed offset, as kafka-consumer-groups counts it (on a topic \
             written in transactions, a caught-up group may show 1 per partition: the commit marker)",
            &["Group", "Partitions", "Records behind"],
            &lag
        ),
        table("Partners", &["Partner", "Breaker", "Attempts/s", "Rate limit used", "Failed/s", "p99 attempt"], &partners),
    )
}
