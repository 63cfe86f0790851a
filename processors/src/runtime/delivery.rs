//! Delivery reports of the processor's producer and the quarantine they feed: every record
//! written carries the input it was written for, so a record the broker refuses (over its
//! `message.max.bytes`, an invalid record) is traced back to one input, which the redone batch
//! dead-letters instead of processing again. A batch commits only what the broker acknowledged.
//!
//! Records of several inputs can share one produce batch, and a batch over the size limit fails
//! whole; when refusals name more than one input, each of them is only *suspected*: on the redo
//! it is processed alone (the queue drained before and after it), and only one whose own records
//! are refused again is dead-lettered.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::error::ProcessorError;

/// An input record: (topic, partition, offset).
pub(crate) type InputKey = (String, i32, i64);

/// What a written record was written for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Origin {
    /// The outputs (or, with `dead_letter`, the dead letter) of an input record.
    Input(InputKey),
    /// The outputs of an order's deadline timer: (partition, key).
    Timer(i32, String),
}

/// The delivery opaque of one written record.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) origin: Origin,
    pub(crate) dead_letter: bool,
}

/// A record the broker (or the client) did not take.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) written: Arc<Written>,
    pub(crate) error: KafkaError,
}

/// Collects failed delivery reports for the loop to act on; served by `producer.poll`.
#[derive(Debug, Default, Clone)]
pub(crate) struct DeliveryContext {
    failed: Arc<Mutex<Vec<Refusal>>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<Written>;

    fn delivery(&self, result: &DeliveryResult<'_>, written: Arc<Written>) {
        if let Err((error, _)) = result {
            if let Ok(mut failed) = self.failed.lock() {
                failed.push(Refusal { written, error: error.clone() });
            }
        }
    }
}

impl DeliveryContext {
    /// The failures reported since the last call.
    pub(crate) fn take(&self) -> Vec<Refusal> {
        self.failed.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default()
    }
}

/// Whether `error` is the record's own fault, so writing it again can never succeed.
pub(crate) fn record_fault(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidRecord | C::InvalidMessageSize)
    )
}

/// How the redo handles an input whose outputs were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Poison {
    /// Why its outputs could not be written.
    pub(crate) cause: String,
    /// The dead letter itself was refused too: write it without the original value and headers.
    pub(crate) bare: bool,
}

/// Inputs and timers whose records the broker refused.
#[derive(Debug, Default)]
pub(crate) struct Quarantine {
    /// Refused in a shared batch: processed alone on the redo to find out.
    pub(crate) suspects: HashMap<InputKey, String>,
    /// Refused on their own: dead-lettered on the redo.
    pub(crate) poisoned: HashMap<InputKey, Poison>,
    /// Timers whose outputs were refused: not fired again by this instance.
    pub(crate) broken_timers: HashSet<(i32, String)>,
}

impl Quarantine {
    /// Takes `refusals` (record faults only) into account; `alone` is the input processed alone
    /// when they happened, if one was. An error when not even a bare dead letter can be written.
    pub(crate) fn note(&mut self, refusals: &[Refusal], alone: Option<&InputKey>) -> Result<(), ProcessorError> {
        let inputs: HashSet<&InputKey> = refusals
            .iter()
            .filter(|r| !r.written.dead_letter)
            .filter_map(|r| match &r.written.origin {
                Origin::Input(key) => Some(key),
                Origin::Timer(..) => None,
            })
            .collect();
        for refusal in refusals {
            let cause = format!("the broker refused an output record: {}", refusal.error);
            match (&refusal.written.origin, refusal.written.dead_letter) {
                (Origin::Timer(partition, key), _) => {
                    tracing::error!(partition, key, %cause, "outputs of a deadline timer refused; the timer is dropped");
                    self.broken_timers.insert((*partition, key.clone()));
                }
                (Origin::Input(input), true) => {
                    let (topic, partition, offset) = input;
                    match self.poisoned.get_mut(input) {
                        Some(poison) if !poison.bare => poison.bare = true,
                        _ => {
                            return Err(ProcessorError::Record {
                                topic: topic.clone(),
                                partition: *partition,
                                offset: *offset,
                                source: Box::new(ProcessorError::Config(format!(
                                    "not even a bare dead letter could be written: {cause}"
                                ))),
                            })
                        }
                    }
                }
                (Origin::Input(input), false) => {
                    if inputs.len() == 1 || alone == Some(input) {
                        self.suspects.remove(input);
                        self.poisoned.entry(input.clone()).or_insert(Poison { cause, bare: false });
                    } else if !self.poisoned.contains_key(input) {
                        self.suspects.insert(input.clone(), cause);
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets inputs at or before the committed `offset` of (topic, partition).
    pub(crate) fn committed(&mut self, topic: &str, partition: i32, offset: i64) {
        let settled = |(t, p, o): &InputKey| t == topic && *p == partition && *o <= offset;
        self.suspects.retain(|k, _| !settled(k));
        self.poisoned.retain(|k, _| !settled(k));
    }

    /// Forgets everything (partitions revoked: their new owner finds out for itself).
    pub(crate) fn clear(&mut self) {
        self.suspects.clear();
        self.poisoned.clear();
        self.broken_timers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(offset: i64, dead_letter: bool) -> Refusal {
        Refusal {
            written: Arc::new(Written { origin: Origin::Input(("in".into(), 0, offset)), dead_letter }),
            error: KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        }
    }

    #[test]
    fn one_input_refused_alone_is_poisoned_then_bare_then_fatal() {
        let mut q = Quarantine::default();
        q.note(&[refusal(7, false), refusal(7, false)], None).expect("noted");
        assert_eq!(q.poisoned.get(&("in".into(), 0, 7)).map(|p| p.bare), Some(false));
        q.note(&[refusal(7, true)], None).expect("noted");
        assert_eq!(q.poisoned.get(&("in".into(), 0, 7)).map(|p| p.bare), Some(true));
        assert!(q.note(&[refusal(7, true)], None).is_err(), "a refused bare dead letter stops the process");
        q.committed("in", 0, 7);
        assert!(q.poisoned.is_empty());
    }

    #[test]
    fn a_shared_batch_makes_suspects_until_one_is_refused_alone() {
        let mut q = Quarantine::default();
        q.note(&[refusal(1, false), refusal(2, false)], None).expect("noted");
        assert_eq!(q.suspects.len(), 2);
        assert!(q.poisoned.is_empty());
        q.note(&[refusal(2, false)], Some(&("in".into(), 0, 2))).expect("noted");
        assert!(q.poisoned.contains_key(&("in".into(), 0, 2)));
        assert!(!q.suspects.contains_key(&("in".into(), 0, 2)));
    }

    #[test]
    fn only_size_and_invalid_records_are_the_records_fault() {
        assert!(record_fault(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(!record_fault(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)));
        assert!(!record_fault(&KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced)));
    }
}
