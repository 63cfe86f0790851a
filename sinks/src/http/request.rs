//! Request building: a command and its partner's settings become the URL, body and keys of the
//! HTTP request (the same on every attempt). Pure: no I/O.

use interchange_core::topology::Outbound;
use serde_json::Value;

use super::partner::Request;

/// Whether `url` may be called for a partner whose base URL is `partner_url`: only its own host
/// and port (a callback URL in an order must not turn the hub into a proxy to anywhere).
pub(crate) fn allowed(partner_url: &str, url: &str) -> bool {
    match (reqwest::Url::parse(partner_url), reqwest::Url::parse(url)) {
        (Ok(a), Ok(b)) => {
            matches!(b.scheme(), "http" | "https")
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// `path` with every `{field}` replaced by the command's field, URL-encoded as one segment.
pub(crate) fn expand_path(path: &str, command: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| format!("path {path:?}: unclosed {{"))? + open;
        let field = &rest[open + 1..close];
        let value = match &command[field] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(format!("path {path:?}: the command has no field {field:?}")),
        };
        out.extend(url_segment(&value));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn url_segment(value: &str) -> impl Iterator<Item = String> + '_ {
    value.bytes().map(|b| {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            char::from(b).to_string()
        } else {
            format!("%{b:02X}")
        }
    })
}

/// Milliseconds since the epoch of a timestamp as the reader renders it (RFC 3339) or as a number.
pub(crate) fn epoch_ms(value: &Value) -> Option<i64> {
    if let Some(ms) = value.as_i64() {
        return Some(ms);
    }
    let at = time::OffsetDateTime::parse(value.as_str()?, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The body: the command whole, or the fields `mapping` picks (output name → JSON pointer).
pub(crate) fn body(
    mapping: Option<&std::collections::BTreeMap<String, String>>,
    command: &Value,
) -> Result<Vec<u8>, String> {
    let Some(mapping) = mapping else { return Ok(command.to_string().into_bytes()) };
    let mut out = serde_json::Map::new();
    for (name, pointer) in mapping {
        let value = command.pointer(pointer).ok_or_else(|| format!("body field {name:?}: nothing at {pointer:?}"))?;
        out.insert(name.clone(), value.clone());
    }
    Ok(Value::Object(out).to_string().into_bytes())
}

/// The request for `command` (of contract `contract`) to a partner with `outbound` settings:
/// the contract's own `[partner.outbound.requests.<contract>]` when it has one (method, path,
/// body), the outbound `method`, `path` and `body` otherwise. A notification (a command carrying
/// its webhook body as text in `payload_json`: `notification_command`, or a declared flow's own)
/// goes to the `callback_url` it names when that is on the partner's host, its body is that
/// payload, and it is signed with `msg_<command id>` as id. A command with a `deadline`
/// (milliseconds since the epoch) is not to be started after it.
pub(crate) fn build(outbound: &Outbound, contract: &str, command: &Value) -> Result<Request, String> {
    let id = command["command_id"].as_str().ok_or("the command has no command_id")?.to_owned();
    let base = outbound.base_url.trim_end_matches('/');
    let deadline = match &command["deadline"] {
        Value::Null => None,
        value => Some(epoch_ms(value).ok_or_else(|| format!("the command's deadline {value} is not a timestamp"))?),
    };
    if let Some(payload) = command.get("payload_json").and_then(Value::as_str) {
        let configured = format!("{base}{}", expand_path(&outbound.path, command)?);
        let url = command["callback_url"].as_str().map_or(configured, str::to_owned);
        if !allowed(base, &url) {
            return Err(format!("callback URL {url} is not on the partner's host"));
        }
        let body = payload.as_bytes().to_vec();
        return Ok(Request {
            method: outbound.method.clone(),
            url,
            body,
            idempotency_key: id.clone(),
            webhook_id: Some(format!("msg_{id}")),
            traceparent: None,
            deadline,
        });
    }
    let (method, path, mapping) = match outbound.requests.get(contract) {
        Some(r) => (&r.method, &r.path, r.body.as_ref()),
        None => (&outbound.method, &outbound.path, outbound.body.as_ref()),
    };
    Ok(Request {
        method: method.clone(),
        url: format!("{base}{}", expand_path(path, command)?),
        body: body(mapping, command)?,
        idempotency_key: id,
        webhook_id: None,
        traceparent: None,
        deadline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outbound(extra: &str) -> Outbound {
        toml::from_str(&format!(
            "base_url = \"http://erp.test:8080/\"\nrate_limit = {{ per_second = 1, burst = 1 }}\n{extra}"
        ))
        .expect("outbound")
    }

    fn command() -> Value {
        json!({ "command_id": "c-1", "order_id": "A 1/2", "total": "10.00", "items": [{ "sku": "S" }], "callback_url": null })
    }

    #[test]
    fn path_templates_take_url_encoded_fields() {
        let r = build(&outbound("path = \"/orders/{order_id}/dispatch\""), "dispatch_command", &command()).expect("ok");
        assert_eq!(r.url, "http://erp.test:8080/orders/A%201%2F2/dispatch");
        assert_eq!(r.idempotency_key, "c-1");
        assert!(build(&outbound("path = \"/orders/{nope}\""), "dispatch_command", &command()).is_err());
    }

    #[test]
    fn body_mapping_picks_fields_by_pointer() {
        let o = outbound("[body]\norderId = \"/order_id\"\namount = \"/total\"\nfirstSku = \"/items/0/sku\"");
        let r = build(&o, "dispatch_command", &command()).expect("ok");
        let body: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body, json!({ "orderId": "A 1/2", "amount": "10.00", "firstSku": "S" }));
        let missing = outbound("[body]\nx = \"/missing\"");
        assert!(build(&missing, "dispatch_command", &command()).is_err());
        let whole = build(&outbound(""), "dispatch_command", &command()).expect("ok");
        assert_eq!(serde_json::from_slice::<Value>(&whole.body).expect("json"), command());
    }

    #[test]
    fn a_command_with_its_own_request_mapping_uses_it() {
        let o = outbound(
            "path = \"/orders\"\n[requests.cancel_command]\nmethod = \"DELETE\"\npath = \"/orders/{order_id}\"\n[requests.cancel_command.body]\nref = \"/partner_reference\"",
        );
        let mut cancel = command();
        cancel["partner_reference"] = json!("ERP-9");
        let r = build(&o, "cancel_command", &cancel).expect("ok");
        assert_eq!((r.method.as_str(), r.url.as_str()), ("DELETE", "http://erp.test:8080/orders/A%201%2F2"));
        assert_eq!(serde_json::from_slice::<Value>(&r.body).expect("json"), json!({ "ref": "ERP-9" }));
        assert_eq!(r.idempotency_key, "c-1");
        let d = build(&o, "dispatch_command", &command()).expect("ok");
        assert_eq!((d.method.as_str(), d.url.as_str()), ("POST", "http://erp.test:8080/orders"));
        assert_eq!(d.deadline, None);
        let mut timed = command();
        timed["deadline"] = json!(1_700_000_000_000_i64);
        assert_eq!(build(&o, "dispatch_command", &timed).expect("ok").deadline, Some(1_700_000_000_000));
        timed["deadline"] = json!("2023-11-14T22:13:20.250Z");
        assert_eq!(build(&o, "dispatch_command", &timed).expect("ok").deadline, Some(1_700_000_000_250));
        timed["deadline"] = json!("soon");
        assert!(build(&o, "dispatch_command", &timed).is_err(), "an unreadable deadline is refused, not ignored");
    }

    #[test]
    fn callbacks_stay_on_the_partners_host() {
        let o = outbound("path = \"/hooks\"");
        let mut c = command();
        c["payload_json"] = json!("{\"a\":1}");
        let r = build(&o, "notification_command", &c).expect("ok");
        assert_eq!((r.url.as_str(), r.body.as_slice()), ("http://erp.test:8080/hooks", b"{\"a\":1}".as_slice()));
        assert_eq!(r.webhook_id.as_deref(), Some("msg_c-1"));
        c["callback_url"] = json!("http://erp.test:8080/cb/9");
        assert_eq!(build(&o, "notification_command", &c).expect("ok").url, "http://erp.test:8080/cb/9");
        for bad in ["http://evil.test/cb", "http://erp.test:9999/cb", "file:///etc/passwd"] {
            c["callback_url"] = json!(bad);
            assert!(build(&o, "notification_command", &c).is_err(), "{bad}");
        }
        c["callback_url"] = Value::Null;
        let other = build(&o, "return_notification", &c).expect("a declared flow's notification");
        assert_eq!((other.webhook_id.as_deref(), other.body.as_slice()), (Some("msg_c-1"), b"{\"a\":1}".as_slice()));
        assert_eq!(
            build(&o, "dispatch_command", &command()).expect("ok").webhook_id,
            None,
            "no payload_json: no webhook"
        );
    }
}
