//! The interface between the exactly-once runtime and a state machine: the runtime reads records,
//! keeps states, fires timers and writes what a transition asks for; a [`Machine`] says what the
//! records mean and what an event does to a state. The runtime knows no particular machine.
//!
//! A machine is pure: no I/O and no clock (both clocks arrive in [`Now`]); what it emits is a
//! contract name and a JSON value the runtime encodes with that contract and writes to the output
//! topic carrying it, in the same transaction as the new state.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

/// Milliseconds since the Unix epoch; read from an integer or an RFC 3339 string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not an untagged enum: that buffered every value and built (and dropped) an
        // error for each RFC 3339 string before trying it as one.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Millis;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("milliseconds since the epoch, or an RFC 3339 time")
            }

            fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Millis, E> {
                Ok(Millis(ms))
            }

            fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Millis, E> {
                i64::try_from(ms).map(Millis).map_err(E::custom)
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Millis, E> {
                let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| E::custom(format!("{text:?}: {e}")))?;
                let ms = at.unix_timestamp_nanos() / 1_000_000;
                Ok(Millis(i64::try_from(ms).map_err(E::custom)?))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The two clocks an event is applied at. `event` is the input's own time (its record's
/// CreateTime; the wall clock for a timer): it goes in histories and `issued_at` fields.
/// `processing` is the processor's wall clock when it applies the event: deadlines are measured
/// on it, so a backlog or an upstream record with an old timestamp still gets a whole deadline
/// from the moment it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub event: Millis,
    pub processing: Millis,
}

impl Now {
    /// Both clocks at `at` (a timer, or a record applied as it is written).
    pub fn at(at: Millis) -> Self {
        Self { event: at, processing: at }
    }
}

/// An input record read as one of the machine's events.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Input<E> {
    pub(crate) event: E,
    /// The event's id: a machine recognises a repeat by it.
    pub(crate) id: String,
    /// The key of the state it applies to; the record's Kafka key must be this (or the record
    /// may sit on another partition than its state).
    pub(crate) key: String,
}

/// A record a transition asks for, besides the new state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Emit {
    /// The contract it is written as; the processor's output topic carrying it receives it.
    pub(crate) contract: String,
    /// Its `event-id` header (a command id, or an event id).
    pub(crate) id: String,
    pub(crate) value: serde_json::Value,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step<S> {
    /// A new state, and the records to write with it (in this order, the state last).
    Changed { state: S, emits: Vec<Emit> },
    /// Nothing to write: a repeat, a late answer, an event the state no longer waits for.
    Unchanged { reason: &'static str },
    /// The event is refused: its input record becomes a dead letter (a timer is dropped), the
    /// state is untouched. `kind` is a metric label for refusals worth counting apart.
    Refused { reason: String, kind: Option<String> },
}

/// A lookup table: a compacted topic read whole, its latest value per key.
pub(crate) trait Lookup {
    fn get(&self, key: &str) -> Option<Arc<serde_json::Value>>;
}

impl<S: std::hash::BuildHasher> Lookup for std::collections::HashMap<String, Arc<serde_json::Value>, S> {
    fn get(&self, key: &str) -> Option<Arc<serde_json::Value>> {
        std::collections::HashMap::get(self, key).cloned()
    }
}

/// A state machine the runtime drives: one state per key, on the processor's state topic.
pub(crate) trait Machine: Send + Sync + 'static {
    type State: Send + Sync + 'static;
    type Event: Send;

    /// The contract of its state records.
    fn state_contract(&self) -> &str;

    /// An input record (its contract and value) as an event; `Err` says why it is none of this
    /// machine's (the record becomes a dead letter).
    fn read(&self, contract: &str, value: serde_json::Value) -> Result<Input<Self::Event>, String>;

    /// A state record read back from the state topic.
    fn read_state(&self, value: serde_json::Value) -> Result<Self::State, String>;

    /// A state as the value of its state record.
    fn write_state<'s>(&self, state: &'s Self::State) -> Result<std::borrow::Cow<'s, serde_json::Value>, String>;

    /// Applies `event` (with id `event_id`) to the current `state` of `key`.
    fn apply(
        &self,
        key: &str,
        state: Option<&Self::State>,
        event: &Self::Event,
        event_id: &str,
        now: Now,
        lookup: &dyn Lookup,
    ) -> Step<Self::State>;

    /// When a timer of `state` fires, if it waits for one; the runtime keeps the index and fires
    /// [`Machine::timer`] once the processing clock passes it.
    fn deadline(&self, state: &Self::State) -> Option<Millis>;

    /// The event a timer of `key` due at `deadline` fires, with its id; `None` when `state`
    /// already applied it (nothing to do, no transaction opened).
    fn timer(&self, key: &str, deadline: Millis, state: Option<&Self::State>) -> Option<(Self::Event, String)>;

    /// Whether no event changes `state` any more: it is retired after the processor's retention.
    fn terminal(&self, state: &Self::State) -> bool;

    /// The state's status, for logs.
    fn status<'s>(&self, state: &'s Self::State) -> &'s str;
}

/// Namespace of the ids machines derive (deterministic, so a redone transaction writes the same ids).
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6a1f_0c3e_8d2b_4f57_9b1e_5c0a_d4e2_7f13);

/// An id derived from `base` (an event id, a command id, a key) and `tag`: identical on every redo.
pub(crate) fn derive_id(base: &str, tag: &str) -> String {
    uuid::Uuid::new_v5(&ID_NAMESPACE, format!("{base}/{tag}").as_bytes()).to_string()
}
