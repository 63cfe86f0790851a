//! Correlation id and W3C trace context of a request: accepted when valid, started otherwise.

use axum::http::HeaderMap;
use rand::Rng;

/// Request header carrying the correlation id.
pub(crate) const CORRELATION_HEADER: &str = "x-correlation-id";

/// Why a correlation id was refused.
pub(crate) const CORRELATION_RULE: &str =
    "1 to 128 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit \
     (or an id the edge answered with: <partner>:<such an id>)";

/// A correlation id header that breaks [`CORRELATION_RULE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidCorrelationId;

/// The correlation id `partner` supplied, `None` when absent, or `Err` when present but invalid.
/// The order is keyed by it scoped to the partner ([`crate::identity::scope`]).
pub(crate) fn supplied_correlation_id(
    headers: &HeaderMap,
    partner: &str,
) -> Result<Option<String>, InvalidCorrelationId> {
    match headers.get(CORRELATION_HEADER) {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| InvalidCorrelationId)?;
            if valid_supplied(partner, text) {
                Ok(Some(text.to_owned()))
            } else {
                Err(InvalidCorrelationId)
            }
        }
    }
}

/// Whether `partner` may supply `text` as a correlation id: a usable id, or one already in the
/// partner's scope (`<partner>:<usable id>`, the form the edge answers with; longer by the scope).
pub(crate) fn valid_supplied(partner: &str, text: &str) -> bool {
    valid_correlation_id(text) || crate::identity::unscoped(partner, text).is_some_and(valid_correlation_id)
}

/// Whether `text` is a usable correlation id.
pub(crate) fn valid_correlation_id(text: &str) -> bool {
    let mut chars = text.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok
        && text.len() <= 128
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// A W3C trace context for the records this request produces: the caller's trace with a new
/// span id of the edge, or a new trace when there is no valid `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceContext {
    pub(crate) traceparent: String,
    pub(crate) tracestate: Option<String>,
}

impl TraceContext {
    /// From the request headers.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let incoming = headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(parse_traceparent);
        let mut rng = rand::rng();
        let span_id = format!("{:016x}", rng.random::<u64>().max(1));
        match incoming {
            Some((trace_id, flags)) => Self {
                traceparent: format!("00-{trace_id}-{span_id}-{flags}"),
                tracestate: headers.get("tracestate").and_then(|v| v.to_str().ok()).map(str::to_owned),
            },
            None => {
                let trace_id = format!("{:032x}", rng.random::<u128>().max(1));
                Self { traceparent: format!("00-{trace_id}-{span_id}-01"), tracestate: None }
            }
        }
    }

    /// The context of the current span (the request's server span) when spans are exported,
    /// else [`Self::from_headers`].
    pub(crate) fn for_request(headers: &HeaderMap) -> Self {
        match interchange_core::telemetry::traceparent(&tracing::Span::current()) {
            Some(traceparent) => Self {
                traceparent,
                tracestate: headers.get("tracestate").and_then(|v| v.to_str().ok()).map(str::to_owned),
            },
            None => Self::from_headers(headers),
        }
    }

    /// The trace id (for logs).
    pub(crate) fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or("")
    }
}

/// Trace id and flags of a valid version-00 traceparent.
fn parse_traceparent(text: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [version, trace_id, parent_id, flags] = parts.as_slice() else { return None };
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    let ok = *version == "00"
        && hex(trace_id, 32)
        && hex(parent_id, 16)
        && hex(flags, 2)
        && trace_id.chars().any(|c| c != '0')
        && parent_id.chars().any(|c| c != '0');
    ok.then(|| ((*trace_id).to_owned(), (*flags).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supplied_correlation_ids_are_validated() {
        let mut headers = HeaderMap::new();
        assert_eq!(supplied_correlation_id(&headers, "acme-shop"), Ok(None));
        headers.insert(CORRELATION_HEADER, "order-42:eu.1".parse().expect("header"));
        assert_eq!(supplied_correlation_id(&headers, "acme-shop"), Ok(Some("order-42:eu.1".to_owned())));
        headers.insert(CORRELATION_HEADER, "bad id/with spaces".parse().expect("header"));
        assert_eq!(supplied_correlation_id(&headers, "acme-shop"), Err(InvalidCorrelationId));
        assert!(!valid_correlation_id(&"a".repeat(129)));
        assert!(!valid_correlation_id("-leading"));
        // The scoped form the edge answers with may be longer by the scope, for that partner only.
        let long = "a".repeat(128);
        assert!(valid_supplied("acme-shop", &format!("acme-shop:{long}")));
        assert!(!valid_supplied("beta-shop", &format!("acme-shop:{long}")));
        assert!(!valid_supplied("acme-shop", &format!("acme-shop:{long}a")));
        assert!(!valid_supplied("acme-shop", "-leading"));
    }

    #[test]
    fn a_valid_traceparent_continues_the_trace_with_a_new_span() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().expect("h"));
        let ctx = TraceContext::from_headers(&headers);
        assert_eq!(ctx.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert!(!ctx.traceparent.contains("b7ad6b7169203331"));
        assert!(ctx.traceparent.ends_with("-01"));
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "00-00000000000000000000000000000000-b7ad6b7169203331-01".parse().expect("h"));
        let ctx = TraceContext::from_headers(&headers);
        assert_eq!(ctx.traceparent.len(), 55);
        assert_ne!(ctx.trace_id(), "00000000000000000000000000000000");
    }
}
