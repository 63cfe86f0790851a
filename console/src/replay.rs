//! Replaying dead letters from the console: a dry run first (what would be sent, and which were
//! replayed before, by whom and when), then an explicit confirmation. Only operators with the
//! `replay` permission. Each replay writes the original records back to their source topics and
//! one audit record per letter (`operator_action`, on the audit topic) in one Kafka transaction,
//! so the trail can never disagree with what was sent; a letter the trail says was replayed is
//! refused unless the operator forces it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use interchange_core::avro::{Encoder, Reader};
use interchange_core::clock::now_millis;
use interchange_core::contract::{json_to_avro, UnknownFields};
use interchange_sinks::replay::{self, letter_id, Beside, Letter};

use crate::html::{alert, escape, page, time, Section};
use crate::operators::{Operator, Permission};
use crate::Console;

/// Where the console writes what operators did.
#[derive(Debug)]
pub struct AuditSettings {
    /// The audit topic (prefixed).
    pub topic: String,
    /// The `operator_action` contract, with its registered id.
    pub encoder: Encoder,
    /// The transactional id of this console's replays.
    pub transactional_id: String,
}

/// One earlier replay of a letter, from the audit topic.
#[derive(Debug, Clone)]
struct Earlier {
    operator: String,
    at: String,
}

/// The form: letters (`topic/partition@offset`, repeated), the action and `force`.
#[derive(Debug, Default)]
struct Request {
    letters: Vec<String>,
    confirmed: bool,
    force: bool,
}

fn parse(body: &[u8]) -> Request {
    let mut request = Request::default();
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "letter" if !request.letters.contains(&value.to_string()) => request.letters.push(value.into_owned()),
            "action" => request.confirmed = value == "replay",
            "force" => request.force = value == "on",
            _ => {}
        }
    }
    request
}

/// `topic/partition@offset` as its parts.
fn parse_id(id: &str) -> Option<(&str, i32, i64)> {
    let (topic, rest) = id.rsplit_once('/')?;
    let (partition, offset) = rest.split_once('@')?;
    Some((topic, partition.parse().ok()?, offset.parse().ok()?))
}

fn answer(operator: &Operator, status: StatusCode, body: &str) -> Response {
    (status, Html(page("Replay dead letters", Section::DeadLetters, Some(operator), body))).into_response()
}

/// Every replay the audit topic records, by letter.
async fn earlier_replays(console: &Console, audit: &AuditSettings) -> Result<BTreeMap<String, Vec<Earlier>>, String> {
    let Some(letters) = &console.dead_letters else { return Ok(BTreeMap::new()) };
    let messages =
        replay::read_topic(&letters.services.kafka, &audit.topic).await.map_err(|e| format!("audit topic: {e}"))?;
    let registry = letters.services.registry.client().map_err(|e| e.to_string())?;
    let reader = Reader::new(registry, [("operator_action".to_owned(), audit.encoder.schema().clone())]);
    let mut out: BTreeMap<String, Vec<Earlier>> = BTreeMap::new();
    for message in messages {
        let Some(payload) = rdkafka::Message::payload(&message) else { continue };
        let (_, json) = reader.decode_json(payload).await.map_err(|e| format!("audit record: {e}"))?;
        if json["action"] == "replay" {
            let text = |k: &str| json[k].as_str().unwrap_or_default().to_owned();
            out.entry(text("target")).or_default().push(Earlier { operator: text("operator"), at: text("at") });
        }
    }
    Ok(out)
}

fn earlier_text(earlier: Option<&Vec<Earlier>>) -> String {
    match earlier {
        None => "never".to_owned(),
        Some(list) => list.iter().map(|e| format!("by {} at {}", e.operator, e.at)).collect::<Vec<_>>().join("; "),
    }
}

fn letters_table(letters: &[&Letter], earlier: &BTreeMap<String, Vec<Earlier>>) -> String {
    let rows: String = letters
        .iter()
        .map(|l| {
            let id = letter_id(l);
            let before = earlier.get(&id);
            let class = if before.is_some() { " class=\"bad\"" } else { "" };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{class}>{}</td></tr>",
                escape(&id),
                escape(&l.source_topic),
                escape(&l.correlation_id),
                time(Some(l.failed_at)),
                escape(&earlier_text(before))
            )
        })
        .collect();
    format!(
        "<div class=\"table\"><table><caption class=\"note\">The letters and where their records go back to</caption>\
         <thead><tr><th scope=\"col\">Letter</th><th scope=\"col\">Back to</th><th scope=\"col\">Correlation id</th>\
         <th scope=\"col\">Failed at</th><th scope=\"col\">Replayed before</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

fn hidden_letters(letters: &[&Letter]) -> String {
    letters
        .iter()
        .map(|l| format!("<input type=\"hidden\" name=\"letter\" value=\"{}\">", escape(&letter_id(l))))
        .collect()
}

/// The audit record of `operator` replaying `letter`.
fn audit_record(audit: &AuditSettings, operator: &Operator, letter: &Letter, forced: bool) -> Result<Beside, String> {
    let at = time(Some(now_millis()));
    let json = serde_json::json!({
        "action": "replay",
        "operator": operator.name,
        "at": at,
        "target": letter_id(letter),
        "written_to": letter.source_topic,
        "correlation_id": letter.correlation_id,
        "forced": forced,
    });
    let value = json_to_avro(audit.encoder.schema(), &json, UnknownFields::Reject).map_err(|e| format!("{e:?}"))?;
    let payload = audit.encoder.encode(value)?;
    Ok(Beside { topic: audit.topic.clone(), key: letter.correlation_id.clone(), payload })
}

/// `POST /dead-letters/replay`: the dry run, or, confirmed, the replay.
pub(crate) async fn replay(State(console): State<Arc<Console>>, operator: Operator, body: Bytes) -> Response {
    if !operator.may(Permission::Replay) {
        let text = format!("{} may read dead letters but not replay them (no replay permission).", operator.name);
        return answer(&operator, StatusCode::FORBIDDEN, &alert(&text));
    }
    let (Some(letters_settings), Some(audit)) = (&console.dead_letters, &console.audit) else {
        return answer(&operator, StatusCode::NOT_FOUND, &alert("This console has no dead letters or no audit topic."));
    };
    let request = parse(&body);
    if request.letters.is_empty() {
        return answer(&operator, StatusCode::BAD_REQUEST, &alert("No dead letter was selected."));
    }
    let Some(index) = &console.letters else {
        return answer(&operator, StatusCode::NOT_FOUND, &alert("This console has no dead letters."));
    };
    let mut chosen: Vec<Arc<Letter>> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for id in &request.letters {
        match parse_id(id).and_then(|(topic, partition, offset)| index.get(topic, partition, offset)) {
            Some(letter) if letter.replayable() => chosen.push(letter),
            Some(letter) => problems.push(format!("{id} cannot be replayed ({})", letter.error)),
            None => problems.push(format!("no such dead letter: {id}")),
        }
    }
    if !problems.is_empty() {
        return answer(&operator, StatusCode::NOT_FOUND, &alert(&format!("{}.", problems.join("; "))));
    }
    let chosen: Vec<&Letter> = chosen.iter().map(|l| l.as_ref()).collect();
    // A replay reads the trail and writes under the lock, so two operators of this console
    // confirming the same letter at once replay it once.
    let mut producer = if request.confirmed { Some(console.replayer.lock().await) } else { None };
    let earlier = match earlier_replays(&console, audit).await {
        Ok(earlier) => earlier,
        Err(e) => return answer(&operator, StatusCode::SERVICE_UNAVAILABLE, &alert(&e)),
    };
    let Some(producer) = producer.as_mut() else { return dry_run(&operator, &chosen, &earlier) };
    let (send, refused): (Vec<&Letter>, Vec<&Letter>) =
        chosen.iter().partition(|l| request.force || !earlier.contains_key(&letter_id(l)));
    let mut body = String::new();
    if !send.is_empty() {
        let mut beside = Vec::new();
        for letter in &send {
            match audit_record(audit, &operator, letter, earlier.contains_key(&letter_id(letter))) {
                Ok(record) => beside.push(record),
                Err(e) => return answer(&operator, StatusCode::INTERNAL_SERVER_ERROR, &alert(&e)),
            }
        }
        let letters: Vec<Letter> = send.iter().map(|l| (*l).clone()).collect();
        if producer.is_none() {
            match replay::transactional_producer(&letters_settings.services.kafka, &audit.transactional_id).await {
                Ok(p) => **producer = Some(p),
                Err(e) => return answer(&operator, StatusCode::SERVICE_UNAVAILABLE, &alert(&format!("Kafka: {e}"))),
            }
        }
        let Some(p) = producer.as_ref() else { return answer(&operator, StatusCode::SERVICE_UNAVAILABLE, "") };
        if let Err(e) = replay::replay_in_transaction(p, &letters, &beside).await {
            // A failed transaction may leave the producer fenced or in error: start afresh next time.
            **producer = None;
            return answer(&operator, StatusCode::SERVICE_UNAVAILABLE, &alert(&format!("Nothing was replayed: {e}")));
        }
        for letter in &send {
            tracing::info!(operator = %operator.name, letter = %letter_id(letter), to = %letter.source_topic, "dead letter replayed");
        }
        body.push_str(&format!(
            "<p role=\"status\" class=\"ok\">Replayed {} letter(s) to their source topics, recorded on {}.</p>{}",
            send.len(),
            escape(&audit.topic),
            letters_table(&send, &earlier)
        ));
    }
    if !refused.is_empty() {
        body.push_str(&format!(
            "{}{}",
            alert(&format!("Refused {} letter(s) already replayed; a dry run can force them.", refused.len())),
            letters_table(&refused, &earlier)
        ));
    }
    let status = if send.is_empty() { StatusCode::CONFLICT } else { StatusCode::OK };
    answer(&operator, status, &body)
}

fn dry_run(operator: &Operator, letters: &[&Letter], earlier: &BTreeMap<String, Vec<Earlier>>) -> Response {
    let replayed = letters.iter().filter(|l| earlier.contains_key(&letter_id(l))).count();
    let force = if replayed > 0 {
        format!(
            "<p><label for=\"force\" class=\"inline\"><input type=\"checkbox\" id=\"force\" name=\"force\"> \
             Replay the {replayed} letter(s) already replayed too</label></p>"
        )
    } else {
        String::new()
    };
    let body = format!(
        "<p role=\"status\">Dry run: nothing has been sent. Replaying writes each letter's original record \
         (key, value, headers) back to its source topic, and records it on the audit topic.</p>{}\
         <form method=\"post\" action=\"/dead-letters/replay\">{}<input type=\"hidden\" name=\"action\" value=\"replay\">{force}\
         <p><button type=\"submit\">Replay {} letter(s)</button></p></form>",
        letters_table(letters, earlier),
        hidden_letters(letters),
        letters.len()
    );
    answer(operator, StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_names_each_letter_once_and_is_a_dry_run_unless_confirmed() {
        let r = parse(b"letter=a.dlq%2F0%400&letter=a.dlq%2F1%407&letter=a.dlq%2F0%400");
        assert_eq!(r.letters, vec!["a.dlq/0@0", "a.dlq/1@7"]);
        assert!(!r.confirmed && !r.force);
        let r = parse(b"letter=x&action=replay&force=on");
        assert!(r.confirmed && r.force);
        assert!(!parse(b"letter=x&action=dry-run").confirmed);
    }

    #[test]
    fn a_letter_id_is_topic_partition_and_offset() {
        assert_eq!(parse_id("t.orders.dlq/3@17"), Some(("t.orders.dlq", 3, 17)));
        assert_eq!(parse_id("a/b.dlq/0@1"), Some(("a/b.dlq", 0, 1)));
        assert_eq!(parse_id("t.orders.dlq/x@1"), None);
        assert_eq!(parse_id("nothing"), None);
    }
}
