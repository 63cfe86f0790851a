//! The bench's traffic: realistic ~1 KB orders, signed the Standard Webhooks way ahead of time,
//! and the same order as the Avro record the edge would produce (for the Kafka baseline).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use interchange_core::contract::{json_to_avro, UnknownFields};
use interchange_core::topology::Contract;
use interchange_ingest::produce::wire_format;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::{json, Value};
use sha2::Sha256;

/// The credentials the bench gives the partner it posts as.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub api_key: String,
    /// `whsec_<base64>`.
    pub webhook_secret: String,
}

impl Credentials {
    /// A fresh random API key and 32-byte webhook secret.
    pub fn random() -> Self {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            api_key: format!("bench-{}", uuid::Uuid::new_v4().simple()),
            webhook_secret: format!("whsec_{}", STANDARD.encode(key)),
        }
    }
}

/// One request, ready to send: body and headers (signature included).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub body: Bytes,
    pub headers: HeaderMap,
}

/// Lines per order: the shape of the integration tests' order, with enough lines to weigh ~1 KB.
const ORDER_LINES: usize = 13;

/// A realistic order of about 1 KB, the shape partners send to the orders route.
pub fn order(order_id: &str) -> Value {
    let items: Vec<Value> = (0..ORDER_LINES)
        .map(|i| {
            json!({
                "sku": format!("SKU-{:05}", 100 + i),
                "quantity": i + 1,
                "unit_price": format!("{}.{:02}", 10 + i * 7, i * 13 % 100),
            })
        })
        .collect();
    json!({
        "order_id": order_id,
        "customer_id": "cust-000042",
        "items": items,
        "currency": "BRL",
        "channel": "WEB",
        "callback_url": "https://shop.example/webhooks/orders",
        "attributes": { "campaign": "black-friday", "notes": "leave at the door, ring twice, the dog is friendly" },
    })
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>` with the key after `whsec_`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> anyhow::Result<String> {
    let encoded = secret.strip_prefix("whsec_").context("webhook secret does not start with whsec_")?;
    let key = STANDARD.decode(encoded).context("webhook secret is not base64")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).context("webhook secret as HMAC key")?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

fn header(value: &str) -> anyhow::Result<HeaderValue> {
    HeaderValue::from_str(value).context("header value")
}

/// `count` signed requests with unique order ids `BENCH-<run>-<n>`, timestamped now (valid for
/// the partner's signature tolerance, five minutes by default).
pub fn pool(run: &str, count: usize, credentials: &Credentials) -> anyhow::Result<Vec<Prepared>> {
    pool_with(run, count, credentials, |_| {})
}

/// [`pool`] with each order changed by `edit` before it is signed.
pub fn pool_with(
    run: &str,
    count: usize,
    credentials: &Credentials,
    edit: impl Fn(&mut Value),
) -> anyhow::Result<Vec<Prepared>> {
    let timestamp = now_unix();
    let api_key = header(&credentials.api_key)?;
    let json_type = HeaderValue::from_static("application/json");
    let mut out = Vec::with_capacity(count);
    for n in 0..count {
        let mut order = order(&format!("BENCH-{run}-{n:07}"));
        edit(&mut order);
        let body = serde_json::to_vec(&order)?;
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let signature = sign(&credentials.webhook_secret, &id, timestamp, &body)?;
        let mut headers = HeaderMap::with_capacity(5);
        headers.insert(CONTENT_TYPE, json_type.clone());
        headers.insert(HeaderName::from_static("x-api-key"), api_key.clone());
        headers.insert(HeaderName::from_static("webhook-id"), header(&id)?);
        headers.insert(HeaderName::from_static("webhook-timestamp"), header(&timestamp.to_string())?);
        headers.insert(HeaderName::from_static("webhook-signature"), header(&signature)?);
        out.push(Prepared { body: Bytes::from(body), headers });
    }
    Ok(out)
}

/// One order as the edge writes it: the envelope fields filled in, converted along the
/// contract, in Confluent wire format with `schema_id`.
pub fn avro_payload(contract: &Contract, schema_id: u32, partner: &str) -> anyhow::Result<Vec<u8>> {
    let mut value = order("BENCH-KAFKA-0000001");
    if let Value::Object(object) = &mut value {
        object.insert("event_id".to_owned(), json!(uuid::Uuid::new_v4().to_string()));
        object.insert("correlation_id".to_owned(), json!(uuid::Uuid::now_v7().to_string()));
        object.insert("partner".to_owned(), json!(partner));
        object.insert("received_at".to_owned(), json!(interchange_core::clock::now_millis()));
    }
    let record = json_to_avro(&contract.schema, &value, UnknownFields::Reject).map_err(|violations| {
        let list: Vec<String> = violations.iter().map(|v| format!("{}: {}", v.pointer, v.detail)).collect();
        anyhow::anyhow!("the bench order breaks contract {}: {}", contract.name, list.join("; "))
    })?;
    wire_format(&contract.schema, schema_id, record).map_err(|e| anyhow::anyhow!("encoding the bench order: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_about_one_kilobyte() {
        let size = serde_json::to_vec(&order("BENCH-0000000-0000001")).map(|b| b.len()).unwrap_or(0);
        assert!((900..1200).contains(&size), "order is {size} bytes");
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).ok();
        assert_eq!(signature.as_deref(), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }
}
