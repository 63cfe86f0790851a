//! Request building: a command and its partner's settings become the URL, body and keys of the
//! HTTP request (the same on every attempt). Pure: no I/O.

use interchange_core::topology::Outbound;
use serde_json::Value;

use super::partner::Request;

/// Whether `url` may be called for a partner whose base URL is `partner_url`: only its own host
/// and port (a callback URL in an order must not turn the hub into a proxy to anywhere).
pub fn allowed(partner_url: &str, url: &str) -> bool {
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
pub fn expand_path(path: &str, command: &Value) -> Result<String, String> {
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

/// The body: the command whole, or the fields `mapping` picks (output name → JSON pointer).
pub fn body(mapping: Option<&std::collections::BTreeMap<String, String>>, command: &Value) -> Result<Vec<u8>, String> {
    let Some(mapping) = mapping else { return Ok(command.to_string().into_bytes()) };
    let mut out = serde_json::Map::new();
    for (name, pointer) in mapping {
        let value = command.pointer(pointer).ok_or_else(|| format!("body field {name:?}: nothing at {pointer:?}"))?;
        out.insert(name.clone(), value.clone());
    }
    Ok(Value::Object(out).to_string().into_bytes())
}

/// The request for `command` (of contract `contract`) to a partner with `outbound` settings.
/// Notifications go to the order's callback URL when it names one on the partner's host, their
/// body is the notification's payload, and they are signed with `msg_<command id>` as id.
pub fn build(outbound: &Outbound, contract: &str, command: &Value) -> Result<Request, String> {
    let id = command["command_id"].as_str().ok_or("the command has no command_id")?.to_owned();
    let base = outbound.base_url.trim_end_matches('/');
    if contract == "notification_command" {
        let configured = format!("{base}{}", expand_path(&outbound.path, command)?);
        let url = command["callback_url"].as_str().map_or(configured, str::to_owned);
        if !allowed(base, &url) {
            return Err(format!("callback URL {url} is not on the partner's host"));
        }
        let body = command["payload_json"].as_str().unwrap_or("{}").as_bytes().to_vec();
        return Ok(Request {
            url,
            body,
            idempotency_key: id.clone(),
            webhook_id: Some(format!("msg_{id}")),
            traceparent: None,
        });
    }
    Ok(Request {
        url: format!("{base}{}", expand_path(&outbound.path, command)?),
        body: body(outbound.body.as_ref(), command)?,
        idempotency_key: id,
        webhook_id: None,
        traceparent: None,
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
    }
}
