//! What the processor writes, as records (topic, key, payload, headers): a transition's emitted
//! records and new state, a dead letter, a retired order's tombstone. Pure functions of what they are
//! given (the clock is an argument): the transaction loop (`eos.rs`) sends what they return.
//!
//! Every record of a transition is encoded before the first is sent: a value the encoder refuses
//! leaves nothing of that input in the open transaction, and the input becomes a dead letter.

use interchange_core::headers::EventHeaders;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

use super::error::ProcessorError;
use super::shared::Shared;
use super::store::{DEADLINE_HEADER, TERMINAL_HEADER};
use crate::machine::{Emit, Machine, Millis};

/// The `producer-role` of every record the processor writes.
const ROLE: &str = "processor";

/// One record to write.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) topic: String,
    pub(crate) key: String,
    /// `None`: a tombstone.
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) headers: OwnedHeaders,
}

/// The records of one transition, in the order they are written (its new state last), the
/// deadline its state waits for and when it became terminal (if it did).
#[derive(Debug)]
pub(crate) struct Outputs {
    pub(crate) records: Vec<Record>,
    pub(crate) deadline: Option<Millis>,
    pub(crate) terminal_at: Option<i64>,
}

/// The envelope of a record the processor writes: the trace context it carries is the
/// traceparent alone (no tracestate).
fn envelope(correlation_id: &str, event_id: &str, event_type: &str, traceparent: Option<&str>) -> OwnedHeaders {
    EventHeaders::new(correlation_id, event_id, event_type, ROLE)
        .traced(traceparent.map(str::to_owned), None)
        .to_kafka()
}

/// The records `emits` and the new `state` of `key` (caused by event `event_id`) are written as,
/// encoded (the state last), or an error and nothing. All are keyed by `key`. A terminal state
/// carries the `hub-terminal-at` header (`now`, the processor's clock): its retention runs from
/// there; one waiting for a timer carries `hub-deadline`.
pub(crate) fn transition<M: Machine>(
    shared: &Shared<M>,
    event_id: &str,
    key: &str,
    state: &M::State,
    emits: &[Emit],
    traceparent: Option<&str>,
    now: i64,
) -> Result<Outputs, ProcessorError> {
    let mut records = Vec::with_capacity(emits.len() + 1);
    for emit in emits {
        let contract = emit.contract.as_str();
        let topic = shared.output_topics.get(contract).ok_or_else(|| ProcessorError::Encode {
            contract: contract.to_owned(),
            reason: "no output topic of the processor carries it".to_owned(),
        })?;
        let payload = shared.codec.encode(contract, topic, &emit.value)?;
        records.push(Record {
            topic: topic.clone(),
            key: key.to_owned(),
            payload: Some(payload),
            headers: envelope(key, &emit.id, contract, traceparent),
        });
    }
    let contract = shared.machine.state_contract();
    let value = shared
        .machine
        .write_state(state)
        .map_err(|reason| ProcessorError::Encode { contract: contract.to_owned(), reason })?;
    let payload = shared.codec.encode(contract, &shared.state_topic, &value)?;
    let mut headers = envelope(key, event_id, contract, traceparent);
    let deadline = shared.machine.deadline(state);
    if let Some(deadline) = deadline {
        let at = deadline.0.to_string();
        headers = headers.insert(Header { key: DEADLINE_HEADER, value: Some(at.as_str()) });
    }
    let terminal_at = shared.machine.terminal(state).then_some(now);
    if let Some(at) = terminal_at {
        let at = at.to_string();
        headers = headers.insert(Header { key: TERMINAL_HEADER, value: Some(at.as_str()) });
    }
    records.push(Record { topic: shared.state_topic.clone(), key: key.to_owned(), payload: Some(payload), headers });
    Ok(Outputs { records, deadline, terminal_at })
}

/// `message` as a dead letter, whole, with why in the value and in headers.
pub(crate) fn dead_letter<M>(
    shared: &Shared<M>,
    message: &OwnedMessage,
    class: &str,
    reason: &str,
) -> Result<Record, ProcessorError> {
    let stage = format!("processor:{}", shared.name);
    let letter = interchange_core::dead_letter::dead_letter(message, &stage, class, reason, &[]);
    let payload = shared.codec.encode("dead_letter", &shared.dead_letter_topic, &letter.value)?;
    Ok(Record {
        topic: shared.dead_letter_topic.clone(),
        key: letter.key,
        payload: Some(payload),
        headers: letter.headers,
    })
}

/// The tombstone of a retired state `key` on `state_topic`; its `event-type` is the state
/// contract's name with `_retired` for `_state` (`order_state`: `order_retired`).
pub(crate) fn tombstone(state_topic: &str, state_contract: &str, key: &str) -> Record {
    let kind = state_contract.strip_suffix("_state").unwrap_or(state_contract);
    let event_type = format!("{kind}_retired");
    let event_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("retired:{key}").as_bytes()).to_string();
    Record {
        topic: state_topic.to_owned(),
        key: key.to_owned(),
        payload: None,
        headers: envelope(key, &event_id, &event_type, None),
    }
}

/// `message` without its value and headers, for a dead letter too large to write whole.
pub(crate) fn bare(message: &OwnedMessage) -> OwnedMessage {
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

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    fn names_and_values(headers: &OwnedHeaders) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()))
            .collect()
    }

    #[test]
    fn the_envelope_is_the_one_the_processor_always_wrote() {
        let traced = envelope("c-1", "e-1", "order_state", Some("00-tp"));
        let expected = [
            ("correlation-id", "c-1"),
            ("event-id", "e-1"),
            ("event-type", "order_state"),
            ("producer-role", "processor"),
            ("traceparent", "00-tp"),
        ];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(names_and_values(&traced), expected);
        assert_eq!(names_and_values(&envelope("c-1", "e-1", "order_state", None)), expected[..4].to_vec());
    }

    #[test]
    fn a_tombstone_has_no_value_and_a_stable_event_id() {
        let record = tombstone("orders.state", "order_state", "c-9");
        assert_eq!(
            (record.topic.as_str(), record.key.as_str(), record.payload.as_deref()),
            ("orders.state", "c-9", None)
        );
        assert_eq!(
            names_and_values(&record.headers),
            names_and_values(&tombstone("orders.state", "order_state", "c-9").headers)
        );
        assert_eq!(record.headers.count(), 4, "no trace context on a tombstone");
        assert!(names_and_values(&record.headers).contains(&("event-type".to_owned(), "order_retired".to_owned())));
    }
}
