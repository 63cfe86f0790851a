//! The envelope: the headers every Kafka record of the hub carries, written and read only here.
//!
//! Producers build an [`EventHeaders`] and write [`EventHeaders::to_kafka`]; consumers read a
//! record's envelope with [`Received::of`], which never fails (records from upstream producers
//! and tools may lack any header).

use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::Message;

/// The value of header `name` of `message`, as text (lossy), if present; the last value wins
/// when a name repeats.
pub fn value<M: Message>(message: &M, name: &str) -> Option<String> {
    message.headers().and_then(|h| {
        h.iter()
            .filter(|x| x.key == name)
            .filter_map(|x| x.value)
            .last()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

/// Correlation id: the order (saga) the record belongs to; also the record key.
pub const CORRELATION_ID: &str = "correlation-id";
/// Unique id of this event, stable across retries of the same send.
pub const EVENT_ID: &str = "event-id";
/// Schema name of the value, e.g. `order_received`.
pub const EVENT_TYPE: &str = "event-type";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace state, when there is one.
pub const TRACESTATE: &str = "tracestate";
/// Role that produced the record: ingest, processor, sink or an upstream system's name.
pub const PRODUCER_ROLE: &str = "producer-role";

/// The hub's envelope headers of one record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventHeaders {
    pub correlation_id: String,
    pub event_id: String,
    pub event_type: String,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub producer_role: String,
}

/// A required header is absent or not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record header {name:?} is {problem}")]
pub struct HeaderError {
    pub name: &'static str,
    pub problem: &'static str,
}

/// The envelope as a consumer finds it on a record: every header is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    pub correlation_id: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub producer_role: Option<String>,
}

impl Received {
    /// The envelope headers of `message` (text, lossy; the last value wins when a name repeats).
    pub fn of<M: Message>(message: &M) -> Self {
        Self {
            correlation_id: value(message, CORRELATION_ID),
            event_id: value(message, EVENT_ID),
            event_type: value(message, EVENT_TYPE),
            traceparent: value(message, TRACEPARENT),
            tracestate: value(message, TRACESTATE),
            producer_role: value(message, PRODUCER_ROLE),
        }
    }
}

impl EventHeaders {
    /// The envelope of an event `event_type` with id `event_id` of saga `correlation_id`,
    /// written by `producer_role`, without trace context.
    pub fn new(correlation_id: &str, event_id: &str, event_type: &str, producer_role: &str) -> Self {
        Self {
            correlation_id: correlation_id.to_owned(),
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            traceparent: None,
            tracestate: None,
            producer_role: producer_role.to_owned(),
        }
    }

    /// The same with W3C trace context.
    #[must_use]
    pub fn traced(mut self, traceparent: Option<String>, tracestate: Option<String>) -> Self {
        self.traceparent = traceparent;
        self.tracestate = tracestate;
        self
    }

    /// The headers as Kafka record headers.
    pub fn to_kafka(&self) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new_with_capacity(6)
            .insert(Header { key: CORRELATION_ID, value: Some(self.correlation_id.as_bytes()) })
            .insert(Header { key: EVENT_ID, value: Some(self.event_id.as_bytes()) })
            .insert(Header { key: EVENT_TYPE, value: Some(self.event_type.as_bytes()) })
            .insert(Header { key: PRODUCER_ROLE, value: Some(self.producer_role.as_bytes()) });
        if let Some(tp) = &self.traceparent {
            headers = headers.insert(Header { key: TRACEPARENT, value: Some(tp.as_bytes()) });
        }
        if let Some(ts) = &self.tracestate {
            headers = headers.insert(Header { key: TRACESTATE, value: Some(ts.as_bytes()) });
        }
        headers
    }

    /// Reads the envelope from a record's headers; the last value wins when a name repeats.
    pub fn from_kafka<H: Headers>(headers: &H) -> Result<EventHeaders, HeaderError> {
        let find = |name: &'static str| -> Result<Option<String>, HeaderError> {
            let mut found = None;
            for header in headers.iter().filter(|h| h.key == name) {
                let value = header.value.ok_or(HeaderError { name, problem: "null" })?;
                let text = std::str::from_utf8(value).map_err(|_| HeaderError { name, problem: "not UTF-8" })?;
                found = Some(text.to_owned());
            }
            Ok(found)
        };
        let required = |name: &'static str| find(name)?.ok_or(HeaderError { name, problem: "missing" });
        Ok(EventHeaders {
            correlation_id: required(CORRELATION_ID)?,
            event_id: required(EVENT_ID)?,
            event_type: required(EVENT_TYPE)?,
            traceparent: find(TRACEPARENT)?,
            tracestate: find(TRACESTATE)?,
            producer_role: find(PRODUCER_ROLE)?.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_kafka_headers() {
        let headers = EventHeaders {
            correlation_id: "c-1".into(),
            event_id: "e-1".into(),
            event_type: "order_received".into(),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tracestate: None,
            producer_role: "ingest".into(),
        };
        let kafka = headers.to_kafka();
        assert_eq!(kafka.count(), 5);
        assert_eq!(EventHeaders::from_kafka(&kafka), Ok(headers));
    }

    #[test]
    fn a_consumer_reads_what_a_producer_wrote_and_tolerates_what_is_missing() {
        use rdkafka::message::OwnedMessage;
        use rdkafka::Timestamp;
        let written = EventHeaders::new("c-1", "e-1", "delivery_result", "sink").traced(Some("00-tp".into()), None);
        let message = |headers: Option<OwnedHeaders>| {
            OwnedMessage::new(None, None, "t".into(), Timestamp::NotAvailable, 0, 0, headers)
        };
        let received = Received::of(&message(Some(written.to_kafka())));
        assert_eq!(received.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(received.event_type.as_deref(), Some("delivery_result"));
        assert_eq!(received.producer_role.as_deref(), Some("sink"));
        assert_eq!(received.traceparent.as_deref(), Some("00-tp"));
        assert_eq!(received.tracestate, None);
        assert_eq!(Received::of(&message(None)), Received::default());
    }

    #[test]
    fn a_missing_required_header_is_named() {
        let kafka = OwnedHeaders::new().insert(Header { key: EVENT_ID, value: Some("e") });
        let err = EventHeaders::from_kafka(&kafka).expect_err("missing header");
        assert_eq!(err, HeaderError { name: CORRELATION_ID, problem: "missing" });
    }
}
