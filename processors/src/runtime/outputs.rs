//! Turning a transition's actions into records, and dead letters.
//!
//! Every record of a transition is encoded before the first is sent: a value the encoder refuses
//! leaves nothing of that input in the open transaction, and the input becomes a dead letter.

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

use super::eos::{headers, Loop};
use super::error::ProcessorError;
use super::Shared;
use crate::saga::{Action, Transition};

fn to_json<T: serde::Serialize>(contract: &str, value: &T) -> Result<serde_json::Value, ProcessorError> {
    serde_json::to_value(value)
        .map_err(|e| ProcessorError::Encode { contract: contract.to_owned(), reason: e.to_string() })
}

/// One encoded record, ready to send.
pub struct Record {
    pub topic: String,
    pub payload: Vec<u8>,
    pub headers: OwnedHeaders,
}

/// The encoded records of one transition, and when its state became terminal (if it did).
pub struct Encoded {
    pub records: Vec<Record>,
    pub terminal_at: Option<i64>,
}

/// Encodes every action of `transition` and its new state (last), or fails without side effects.
/// A terminal state carries the `hub-terminal-at` header (the processor's clock): its retention
/// runs from there.
pub fn encode(
    shared: &Shared,
    event_id: &str,
    transition: &Transition,
    traceparent: Option<&str>,
) -> Result<Encoded, ProcessorError> {
    let key = transition.state.correlation_id.as_str();
    let mut records = Vec::with_capacity(transition.actions.len() + 1);
    for action in &transition.actions {
        let (contract, json, id) = match action {
            Action::Dispatch(c) => ("dispatch_command", to_json("dispatch_command", c)?, c.command_id.as_str()),
            Action::Cancel(c) => ("cancel_command", to_json("cancel_command", c)?, c.command_id.as_str()),
            Action::Notify(c) => ("notification_command", to_json("notification_command", c)?, c.command_id.as_str()),
            Action::ReleaseStock(c) => {
                ("stock_release_command", to_json("stock_release_command", c)?, c.command_id.as_str())
            }
            Action::Validated(e) => ("order_validated", to_json("order_validated", e)?, e.event_id.as_str()),
            Action::Rejected(e) => ("order_rejected", to_json("order_rejected", e)?, e.event_id.as_str()),
        };
        let topic = shared.output_topics.get(contract).ok_or_else(|| ProcessorError::Encode {
            contract: contract.to_owned(),
            reason: "no output topic of the processor carries it".to_owned(),
        })?;
        let payload = shared.codec.encode(contract, topic, &json)?;
        records.push(Record { topic: topic.clone(), payload, headers: headers(key, id, contract, traceparent) });
    }
    let state = to_json("order_state", &transition.state)?;
    let payload = shared.codec.encode("order_state", &shared.state_topic, &state)?;
    let mut state_headers = headers(key, event_id, "order_state", traceparent);
    if let Some(deadline) = super::store::pending_deadline(&transition.state) {
        let at = deadline.0.to_string();
        state_headers = state_headers.insert(Header { key: super::store::DEADLINE_HEADER, value: Some(at.as_str()) });
    }
    let terminal_at = transition.state.status.is_terminal().then(super::eos::now_millis);
    if let Some(at) = terminal_at {
        let at = at.to_string();
        state_headers = state_headers.insert(Header { key: super::store::TERMINAL_HEADER, value: Some(at.as_str()) });
    }
    records.push(Record { topic: shared.state_topic.clone(), payload, headers: state_headers });
    Ok(Encoded { records, terminal_at })
}

/// Sends the encoded `records` of `transition` into the open transaction and stages the state in
/// the store. Stops at the first refused record: the loop then redoes the batch.
pub fn send(l: &mut Loop<'_>, partition: i32, encoded: Encoded, transition: Transition) -> Result<(), ProcessorError> {
    let key = transition.state.correlation_id.clone();
    for record in encoded.records {
        l.send(&record.topic, &key, Some(&record.payload), record.headers, false)?;
        if l.redoing() {
            return Ok(());
        }
    }
    tracing::debug!(correlation_id = %key, order_id = %transition.state.order_id, status = transition.state.status.as_str(),
        version = transition.state.version, "order transition");
    l.store.put(partition, transition.state, encoded.terminal_at);
    Ok(())
}

/// Writes `message` to the dead-letter topic, whole, with why in the value and in headers.
pub fn dead_letter(l: &mut Loop<'_>, message: &OwnedMessage, class: &str, reason: &str) -> Result<(), ProcessorError> {
    let shared = l.shared;
    let stage = format!("processor:{}", shared.name);
    let letter = interchange_core::dead_letter::dead_letter(message, &stage, class, reason, &[]);
    let payload = shared.codec.encode("dead_letter", &shared.dead_letter_topic, &letter.value)?;
    let topic = shared.dead_letter_topic.clone();
    l.send(&topic, &letter.key, Some(&payload), letter.headers, true)
}

/// Writes the tombstone of a retired order's state into the open transaction and stages the
/// retirement in the store.
pub fn tombstone(l: &mut Loop<'_>, partition: i32, key: &str) -> Result<(), ProcessorError> {
    let event_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("retired:{key}").as_bytes()).to_string();
    let headers = headers(key, &event_id, "order_retired", None);
    let topic = l.shared.state_topic.clone();
    l.send(&topic, key, None, headers, false)?;
    if !l.redoing() {
        l.store.retire(partition, key);
    }
    Ok(())
}

/// `message` without its value and headers, for a dead letter too large to write whole.
pub fn bare(message: &OwnedMessage) -> OwnedMessage {
    use rdkafka::Message;
    OwnedMessage::new(
        None,
        message.key().map(<[u8]>::to_vec),
        message.topic().to_owned(),
        message.timestamp(),
        message.partition(),
        message.offset(),
        None,
    )
}
