//! Turning a transition's actions into records, and dead letters.

use rdkafka::message::{Header, OwnedMessage};

use super::eos::{headers, Loop};
use super::error::ProcessorError;
use crate::saga::{Action, Transition};

fn to_json<T: serde::Serialize>(contract: &str, value: &T) -> Result<serde_json::Value, ProcessorError> {
    serde_json::to_value(value)
        .map_err(|e| ProcessorError::Encode { contract: contract.to_owned(), reason: e.to_string() })
}

/// Writes the new state and every action of `transition` into the open transaction, and stages
/// the state in the store.
pub fn write(
    l: &mut Loop<'_>,
    partition: i32,
    event_id: &str,
    transition: Transition,
    traceparent: Option<String>,
) -> Result<(), ProcessorError> {
    let shared = l.shared;
    let key = transition.state.correlation_id.clone();
    let tp = traceparent.as_deref();
    for action in &transition.actions {
        let (contract, json, id) = match action {
            Action::Dispatch(c) => ("dispatch_command", to_json("dispatch_command", c)?, c.command_id.as_str()),
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
        l.send(topic, &key, Some(&payload), headers(&key, id, contract, tp))?;
    }
    let state = to_json("order_state", &transition.state)?;
    let payload = shared.codec.encode("order_state", &shared.state_topic, &state)?;
    let mut state_headers = headers(&key, event_id, "order_state", tp);
    if let Some(deadline) = super::store::pending_deadline(&transition.state) {
        let at = deadline.0.to_string();
        state_headers = state_headers.insert(Header { key: super::store::DEADLINE_HEADER, value: Some(at.as_str()) });
    }
    l.send(&shared.state_topic, &key, Some(&payload), state_headers)?;
    tracing::debug!(correlation_id = %key, order_id = %transition.state.order_id, status = transition.state.status.as_str(),
        version = transition.state.version, "order transition");
    l.store.put(partition, transition.state);
    Ok(())
}

/// Writes `message` to the dead-letter topic, whole, with why in the value and in headers.
pub fn dead_letter(l: &mut Loop<'_>, message: &OwnedMessage, class: &str, reason: &str) -> Result<(), ProcessorError> {
    let shared = l.shared;
    let stage = format!("processor:{}", shared.name);
    let letter = interchange_core::dead_letter::dead_letter(message, &stage, class, reason, &[]);
    let payload = shared.codec.encode("dead_letter", &shared.dead_letter_topic, &letter.value)?;
    let topic = shared.dead_letter_topic.clone();
    l.send(&topic, &letter.key, Some(&payload), letter.headers)
}
