//! The dead-letter record every role writes: the original record whole (key, value, headers) and
//! why, both in the `dead_letter` value and in `hub-error-*` headers.

use base64::Engine;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::Message;
use serde_json::json;

/// A dead letter ready to encode (`value` has the `dead_letter` contract's JSON shape) and send.
#[derive(Debug)]
pub struct DeadLetter {
    pub key: String,
    pub value: serde_json::Value,
    pub headers: OwnedHeaders,
}

/// The dead letter of `message`, given up by `stage` (`processor:order-saga`, `sink:erp-dispatch`)
/// for `reason`; `class` is `PERMANENT` or `EXHAUSTED`. `extra` headers are added after the
/// standard ones.
pub fn dead_letter(
    message: &OwnedMessage,
    stage: &str,
    class: &str,
    reason: &str,
    extra: &[(&str, &str)],
) -> DeadLetter {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut original = serde_json::Map::new();
    let mut headers = OwnedHeaders::new();
    if let Some(h) = message.headers() {
        for header in h.iter() {
            original.insert(header.key.to_owned(), json!(b64(header.value.unwrap_or_default())));
            headers = headers.insert(Header { key: header.key, value: header.value });
        }
    }
    let failed_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let value = json!({
        "source_topic": message.topic(),
        "source_partition": message.partition(),
        "source_offset": message.offset(),
        "key": message.key().map(b64),
        "value": message.payload().map(b64),
        "headers": original,
        "stage": stage,
        "error_class": class,
        "error": reason,
        "failed_at": u64::try_from(failed_at).unwrap_or(u64::MAX),
    });
    let (partition, offset) = (message.partition().to_string(), message.offset().to_string());
    let standard = [
        ("hub-error-class", class),
        ("hub-error-message", reason),
        ("hub-error-stage", stage),
        ("hub-source-topic", message.topic()),
        ("hub-source-partition", partition.as_str()),
        ("hub-source-offset", offset.as_str()),
    ];
    for (key, value) in standard.iter().chain(extra) {
        headers = headers.insert(Header { key, value: Some(*value) });
    }
    let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
    DeadLetter { key, value, headers }
}
