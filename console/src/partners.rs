//! Partners: each outbound partner's limits as the topology declares them (rate, burst,
//! concurrency, timeout, retries, breaker), what its sink reports now (breaker state, attempts,
//! rate use, attempt latency percentiles), its breaker's history (transitions since the sink
//! started, and the changes this console saw) and its recent failures (its dead letters).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use interchange_core::topology::{Outbound, Partner};
use interchange_sinks::replay::{letter_id, Filter};

use crate::html::{alert, escape, page, time, url_component, Section};
use crate::live::{breaker_word, PartnerLive};
use crate::operators::Operator;
use crate::overview::{millis, per_second};
use crate::Console;

/// Most recent failures a partner's page lists.
const RECENT: usize = 20;

fn duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

fn limits(outbound: &Outbound) -> String {
    let b = &outbound.breaker;
    let fields = [
        ("Endpoint", escape(&format!("{} {}{}", outbound.method, outbound.base_url, outbound.path))),
        ("Rate limit", format!("{}/s, burst {}", outbound.rate_limit.per_second, outbound.rate_limit.burst)),
        ("Concurrency", outbound.concurrency.to_string()),
        ("Timeout", duration(outbound.timeout)),
        (
            "Retries",
            format!(
                "{} attempts, backoff {} to {}",
                outbound.retry.max_attempts,
                duration(outbound.retry.initial_backoff),
                duration(outbound.retry.max_backoff)
            ),
        ),
        (
            "Breaker",
            format!(
                "opens at {:.0}% failed of at least {} calls in {}; open for {}, then {} probe(s)",
                b.failure_ratio * 100.0,
                b.min_requests,
                duration(b.window),
                duration(b.open_for),
                b.half_open_probes
            ),
        ),
        ("Signed webhooks", if outbound.signing_secret.is_some() { "yes" } else { "no" }.to_owned()),
    ];
    fields.iter().map(|(k, v)| format!("<dt>{k}</dt><dd>{v}</dd>")).collect()
}

fn now_fields(outbound: &Outbound, now: &PartnerLive) -> String {
    let limit = f64::from(outbound.rate_limit.per_second.max(1));
    let used = now.attempts_per_second.map(|a| format!("({:.0}% of the limit)", 100.0 * a / limit)).unwrap_or_default();
    let fields = [
        ("Breaker", format!("<span class=\"status\" id=\"breaker\">{}</span>", breaker_word(now.breaker))),
        ("Attempts/s", format!("{} {used}", per_second(now.attempts_per_second))),
        ("Delivered/s", per_second(now.delivered_per_second)),
        ("Failed attempts/s", per_second(now.failed_per_second)),
        ("Attempt latency, last interval", format!("p50 {}, p99 {}", millis(now.p50), millis(now.p99))),
        (
            "Attempt latency, since the sink started",
            format!("p50 {}, p99 {}", millis(now.p50_total), millis(now.p99_total)),
        ),
    ];
    fields.iter().map(|(k, v)| format!("<dt>{k}</dt><dd>{v}</dd>")).collect()
}

fn counts(map: &std::collections::BTreeMap<String, f64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter().map(|(k, n)| format!("{} {n:.0}", escape(k))).collect::<Vec<_>>().join(", ")
}

/// `GET /partners`: every partner the hub delivers to, its limits and its state now.
pub(crate) async fn list(State(console): State<Arc<Console>>, operator: Operator) -> Response {
    let live = console.live.latest();
    let rows: String = outbound_partners(&console)
        .map(|(p, outbound)| {
            let now = live.partners.get(&p.name).cloned().unwrap_or_default();
            format!(
                "<tr><td><a href=\"/partners/{}\">{}</a></td><td>{}</td><td class=\"num\">{}/s</td><td class=\"num\">{}</td>\
                 <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                url_component(&p.name),
                escape(&p.name),
                escape(&p.doc),
                outbound.rate_limit.per_second,
                outbound.concurrency,
                breaker_word(now.breaker),
                per_second(now.attempts_per_second),
                millis(now.p99)
            )
        })
        .collect();
    let body = format!(
        "<div class=\"table\"><table><caption class=\"note\">Partners the hub delivers to</caption><thead><tr>\
         <th scope=\"col\">Partner</th><th scope=\"col\">What</th><th scope=\"col\" class=\"num\">Rate limit</th>\
         <th scope=\"col\" class=\"num\">Concurrency</th><th scope=\"col\">Breaker</th><th scope=\"col\" class=\"num\">Attempts/s</th>\
         <th scope=\"col\" class=\"num\">p99 attempt</th></tr></thead><tbody>{rows}</tbody></table></div>"
    );
    Html(page("Partners", Section::Partners, Some(&operator), &body)).into_response()
}

fn outbound_partners(console: &Console) -> impl Iterator<Item = (&Partner, &Outbound)> {
    console.topology.partners.iter().filter_map(|p| Some((p, p.outbound.as_ref()?)))
}

/// `GET /partners/{name}`: one partner.
pub(crate) async fn partner(
    State(console): State<Arc<Console>>,
    operator: Operator,
    Path(name): Path<String>,
) -> Response {
    let title = format!("Partner {name}");
    let Some((partner, outbound)) = outbound_partners(&console).find(|(p, _)| p.name == name) else {
        let body = alert("No partner of that name receives deliveries from the hub.");
        return (StatusCode::NOT_FOUND, Html(page(&title, Section::Partners, Some(&operator), &body))).into_response();
    };
    let live = console.live.latest();
    let now = live.partners.get(&partner.name).cloned().unwrap_or_default();
    let seen: String = live
        .breaker_history
        .iter()
        .rev()
        .filter(|c| c.partner == partner.name)
        .map(|c| format!("<li>{}: {} → {}</li>", time(Some(c.at_ms)), c.from, c.to))
        .collect();
    let seen =
        if seen.is_empty() { "<p>None seen by this console.</p>".to_owned() } else { format!("<ul>{seen}</ul>") };
    let failures = match &console.letters {
        Some(index) => {
            let filter = Filter { partner: Some(partner.name.clone()), ..Filter::default() };
            let topics = console.dead_letters.as_ref().map(|d| d.topics.clone()).unwrap_or_default();
            let letters = index.select(&topics, &filter);
            let rows: String = letters
                .iter()
                .rev()
                .take(RECENT)
                .map(|l| {
                    let error: String = l.error.chars().take(160).collect();
                    format!(
                        "<tr><td><a href=\"/dead-letters/{}/{}/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        url_component(&l.topic),
                        l.partition,
                        l.offset,
                        escape(&letter_id(l)),
                        time(Some(l.failed_at)),
                        escape(&l.error_class),
                        escape(&error)
                    )
                })
                .collect();
            if letters.is_empty() {
                "<p>No dead letter names this partner.</p>".to_owned()
            } else {
                format!(
                    "<p>{} dead letter(s); <a href=\"/dead-letters?partner={}\">all of them</a>.</p><div class=\"table\"><table>\
                     <caption class=\"note\">The newest {RECENT} at most</caption><thead><tr><th scope=\"col\">Letter</th>\
                     <th scope=\"col\">Failed at</th><th scope=\"col\">Class</th><th scope=\"col\">Cause</th></tr></thead>\
                     <tbody>{rows}</tbody></table></div>",
                    letters.len(),
                    url_component(&partner.name)
                )
            }
        }
        None => "<p>The topology declares no dead-letter topic.</p>".to_owned(),
    };
    let body = format!(
        "<p>{}</p><div class=\"grid\"><section aria-labelledby=\"limits\"><h2 id=\"limits\">Limits</h2><dl>{}</dl></section>\
         <section aria-labelledby=\"now\"><h2 id=\"now\">Now</h2><p class=\"note\">Sampled {}</p><dl>{}</dl></section></div>\
         <section aria-labelledby=\"history\"><h2 id=\"history\">Breaker history</h2>\
         <p>Transitions since its sink started: {}. Attempts since then by outcome: {}.</p>{seen}</section>\
         <section aria-labelledby=\"failures\"><h2 id=\"failures\">Recent failures</h2>{failures}</section>",
        escape(&partner.doc),
        limits(outbound),
        time(Some(live.at_ms)),
        now_fields(outbound, &now),
        counts(&now.transitions_total),
        counts(&now.attempts_total),
    );
    Html(page(&title, Section::Partners, Some(&operator), &body)).into_response()
}
