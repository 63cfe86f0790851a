//! Dead letters: the topology's dead-letter topics, from the console's index of them
//! ([`crate::letters`]), filtered by topic, partner, stage, reason, correlation id and time; and
//! one letter's page: its cause, where it came from, its original record's headers and its value
//! decoded to JSON through the registry.

use std::sync::Arc;

use apache_avro::Schema;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use interchange_core::clock::now_millis;
use interchange_core::Services;
use interchange_sinks::replay::{letter_id, Filter, Letter};
use serde::Deserialize;

use crate::html::{alert, escape, page, time, url_component, Section};
use crate::operators::{Operator, Permission};
use crate::Console;

/// Where the dead letters are and how to read them.
#[derive(Debug, Clone)]
pub struct DeadLetterSettings {
    pub services: Services,
    /// The topology's dead-letter topics (prefixed), every processor's and sink's.
    pub topics: Vec<String>,
    /// The `dead_letter` contract.
    pub schema: Schema,
    /// Every contract of the topology, to decode the original records.
    pub contracts: Vec<(String, Schema)>,
}

/// The list's filters; any may be empty.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LetterQuery {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    partner: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    correlation_id: String,
    /// The reason: an error class.
    #[serde(default)]
    class: String,
    /// How far back: `1h`, `24h`, `7d`, or empty for all.
    #[serde(default)]
    since: String,
}

/// Most letters one page lists (the newest).
const LIST_LIMIT: usize = 500;

const WINDOWS: [(&str, &str, i64); 4] = [
    ("", "All time", 0),
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 86_400_000),
    ("7d", "Last 7 days", 604_800_000),
];

fn some(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn letter_link(l: &Letter) -> String {
    format!("/dead-letters/{}/{}/{}", url_component(&l.topic), l.partition, l.offset)
}

fn failure(operator: &Operator, title: &str, status: StatusCode, text: &str) -> Response {
    (status, Html(page(title, Section::DeadLetters, Some(operator), &alert(text)))).into_response()
}

fn filter_form(settings: &DeadLetterSettings, console: &Console, classes: Vec<String>, q: &LetterQuery) -> String {
    let select = |name: &str, label: &str, options: &[(String, String)], current: &str| {
        let options: String = options
            .iter()
            .map(|(value, text)| {
                let selected = if value == current { " selected" } else { "" };
                format!("<option value=\"{}\"{selected}>{}</option>", escape(value), escape(text))
            })
            .collect();
        format!("<label for=\"{name}\">{label}<select id=\"{name}\" name=\"{name}\">{options}</select></label>")
    };
    let all = || (String::new(), "All".to_owned());
    let topics: Vec<(String, String)> =
        std::iter::once(all()).chain(settings.topics.iter().map(|t| (t.clone(), t.clone()))).collect();
    let partners: Vec<(String, String)> = std::iter::once(all())
        .chain(console.topology.partners.iter().map(|p| (p.name.clone(), p.name.clone())))
        .collect();
    let classes: Vec<(String, String)> =
        std::iter::once(all()).chain(classes.into_iter().map(|c| (c.clone(), c))).collect();
    let windows: Vec<(String, String)> = WINDOWS.iter().map(|(v, t, _)| ((*v).to_owned(), (*t).to_owned())).collect();
    format!(
        "<form class=\"search\" method=\"get\" action=\"/dead-letters\" role=\"search\">{}{}\
         <label for=\"stage\">Stage<input id=\"stage\" name=\"stage\" value=\"{}\" placeholder=\"sink:erp-dispatch\"></label>\
         <label for=\"correlation_id\">Correlation id<input id=\"correlation_id\" name=\"correlation_id\" value=\"{}\"></label>\
         {}{}<button type=\"submit\">Filter</button></form>",
        select("topic", "Topic", &topics, &q.topic),
        select("partner", "Partner", &partners, &q.partner),
        escape(&q.stage),
        escape(&q.correlation_id),
        select("class", "Reason", &classes, &q.class),
        select("since", "Time", &windows, &q.since),
    )
}

fn table(letters: &[Arc<Letter>], may_replay: bool) -> String {
    if letters.is_empty() {
        return "<p role=\"status\">No dead letter matches.</p>".to_owned();
    }
    let shown = &letters[letters.len().saturating_sub(LIST_LIMIT)..];
    let rows: String = shown
        .iter()
        .rev()
        .map(|l| {
            let error: String = l.error.chars().take(160).collect();
            let id = letter_id(l);
            let select = if may_replay && l.replayable() {
                format!(
                    "<td><input type=\"checkbox\" name=\"letter\" value=\"{0}\" aria-label=\"Select {0}\" form=\"replay\"></td>",
                    escape(&id)
                )
            } else if may_replay {
                "<td>not replayable</td>".to_owned()
            } else {
                String::new()
            };
            format!(
                "<tr>{select}<td><a href=\"{}\">{}/{}@{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&letter_link(l)),
                escape(&l.topic),
                l.partition,
                l.offset,
                time(Some(l.failed_at)),
                escape(&l.stage),
                escape(l.partner.as_deref().unwrap_or("")),
                escape(&l.error_class),
                escape(&l.correlation_id),
                escape(&error)
            )
        })
        .collect();
    // Replaying: the ticked letters, or every letter listed; either way a dry run comes first.
    let (select_head, actions) = if may_replay {
        let replayable: Vec<&Arc<Letter>> = shown.iter().filter(|l| l.replayable()).collect();
        let all: String = replayable
            .iter()
            .map(|l| format!("<input type=\"hidden\" name=\"letter\" value=\"{}\">", escape(&letter_id(l))))
            .collect();
        (
            "<th scope=\"col\">Select</th>",
            format!(
                "<div class=\"search\"><form id=\"replay\" method=\"post\" action=\"/dead-letters/replay\">\
                 <input type=\"hidden\" name=\"action\" value=\"dry-run\"><button type=\"submit\">Replay selected (dry run)</button></form>\
                 <form method=\"post\" action=\"/dead-letters/replay\">{all}<input type=\"hidden\" name=\"action\" value=\"dry-run\">\
                 <button type=\"submit\">Replay all {} replayable listed (dry run)</button></form></div>",
                replayable.len()
            ),
        )
    } else {
        ("", String::new())
    };
    format!(
        "<p role=\"status\">{} dead letter(s){}</p>{actions}<div class=\"table\"><table><caption class=\"note\">Newest first</caption>\
         <thead><tr>{select_head}<th scope=\"col\">Letter</th><th scope=\"col\">Failed at</th><th scope=\"col\">Stage</th>\
         <th scope=\"col\">Partner</th><th scope=\"col\">Class</th><th scope=\"col\">Correlation id</th>\
         <th scope=\"col\">Cause</th></tr></thead><tbody>{rows}</tbody></table></div>",
        letters.len(),
        if letters.len() > shown.len() { format!(", the newest {} shown", shown.len()) } else { String::new() }
    )
}

/// `GET /dead-letters`: the filters, and the letters that match, newest first.
pub(crate) async fn list(
    State(console): State<Arc<Console>>,
    operator: Operator,
    Query(q): Query<LetterQuery>,
) -> Response {
    const TITLE: &str = "Dead letters";
    let (Some(settings), Some(index)) = (&console.dead_letters, &console.letters) else {
        return failure(&operator, TITLE, StatusCode::NOT_FOUND, "The topology declares no dead-letter topic.");
    };
    let topics: Vec<String> = match some(&q.topic) {
        Some(topic) if settings.topics.contains(&topic) => vec![topic],
        Some(topic) => {
            let text = format!("{topic} is not a dead-letter topic of the topology.");
            return failure(&operator, TITLE, StatusCode::BAD_REQUEST, &text);
        }
        None => settings.topics.clone(),
    };
    let since_ms = WINDOWS.iter().find(|(v, _, _)| *v == q.since.trim()).map(|(_, _, ms)| *ms).filter(|ms| *ms > 0);
    let filter = Filter {
        partner: some(&q.partner),
        correlation_id: some(&q.correlation_id),
        stage: some(&q.stage),
        since_ms: since_ms.map(|ms| now_millis() - ms),
        until_ms: None,
        error_class: some(&q.class),
    };
    let letters = index.select(&topics, &filter);
    let may_replay = operator.may(Permission::Replay) && console.audit.is_some();
    let notice = index.notice().map(|n| alert(&n)).unwrap_or_default();
    let body =
        format!("{}{notice}{}", filter_form(settings, &console, index.classes(), &q), table(&letters, may_replay));
    Html(page(TITLE, Section::DeadLetters, Some(&operator), &body)).into_response()
}

/// `GET /dead-letters/{topic}/{partition}/{offset}`: one letter, its original record decoded.
pub(crate) async fn letter(
    State(console): State<Arc<Console>>,
    operator: Operator,
    Path((topic, partition, offset)): Path<(String, i32, i64)>,
) -> Response {
    let title = format!("Dead letter {topic}/{partition}@{offset}");
    let (Some(settings), Some(index)) = (&console.dead_letters, &console.letters) else {
        return failure(&operator, &title, StatusCode::NOT_FOUND, "The topology declares no dead-letter topic.");
    };
    if !settings.topics.contains(&topic) {
        return failure(&operator, &title, StatusCode::NOT_FOUND, "Not a dead-letter topic of the topology.");
    }
    let Some(letter) = index.get(&topic, partition, offset) else {
        let text = index.notice().unwrap_or_else(|| "No such dead letter.".to_owned());
        return failure(&operator, &title, StatusCode::NOT_FOUND, &text);
    };
    let decoded = match (&letter.original_value, &console.reader) {
        (None, _) if !letter.replayable() => "(the dead letter itself does not decode: see its cause)".to_owned(),
        (None, _) => "(no value: a tombstone)".to_owned(),
        (Some(value), Some(reader)) => match reader.decode_json(value).await {
            Ok((name, json)) => format!(
                "{name}\n{}",
                serde_json::to_string_pretty(&json).unwrap_or_else(|e| format!("(not printable: {e})"))
            ),
            Err(e) => format!("(not decodable: {e}; {} bytes)", value.len()),
        },
        (Some(_), None) => "(no registry client)".to_owned(),
    };
    let headers: String = letter
        .original_headers
        .iter()
        .map(|(k, v)| format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(&String::from_utf8_lossy(v))))
        .collect();
    let fields = [
        ("Failed at", time(Some(letter.failed_at))),
        ("Stage", escape(&letter.stage)),
        ("Partner", escape(letter.partner.as_deref().unwrap_or(""))),
        ("Class", escape(&letter.error_class)),
        ("Cause", format!("<span class=\"bad\">{}</span>", escape(&letter.error))),
        ("Correlation id", escape(&letter.correlation_id)),
        ("Source", escape(&format!("{}/{}@{}", letter.source_topic, letter.source_partition, letter.source_offset))),
        ("Event type", escape(letter.event_type.as_deref().unwrap_or(""))),
        ("Event id", escape(letter.event_id.as_deref().unwrap_or(""))),
    ];
    let fields: String = fields.iter().map(|(k, v)| format!("<dt>{k}</dt><dd>{v}</dd>")).collect();
    let body = format!(
        "<section aria-labelledby=\"why\"><h2 id=\"why\">Why</h2><dl>{fields}</dl></section>\
         <section aria-labelledby=\"headers\"><h2 id=\"headers\">Original headers</h2><dl>{headers}</dl></section>\
         <section aria-labelledby=\"value\"><h2 id=\"value\">Original value</h2><pre tabindex=\"0\">{}</pre></section>{}",
        escape(&decoded),
        if operator.may(Permission::Replay) && console.audit.is_some() && letter.replayable() {
            format!(
                "<form method=\"post\" action=\"/dead-letters/replay\"><input type=\"hidden\" name=\"letter\" value=\"{}\">\
                 <input type=\"hidden\" name=\"action\" value=\"dry-run\"><p><button type=\"submit\">Replay this letter (dry run)</button></p></form>",
                escape(&letter_id(&letter))
            )
        } else {
            String::new()
        }
    );
    Html(page(&title, Section::DeadLetters, Some(&operator), &body)).into_response()
}
