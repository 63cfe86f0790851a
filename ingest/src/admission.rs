//! Admission of a request, cheapest and most telling check first, so that nobody the edge does
//! not know can hold what partners need:
//!
//! 1. per-IP limit (client IP from [`crate::client_ip`]): `429`;
//! 2. identity from the headers alone (API key or JWT), before a byte of body is read: `401`;
//! 3. the route allows the partner: `403`;
//! 4. per-partner limit: `429`;
//! 5. a concurrency permit, taken only now, by an identified partner within its rate: `503`;
//! 6. the body, bounded in size (`413`) and in time (`--body-timeout`, `408`);
//! 7. the Standard Webhooks signature over that body, when the partner signs: `401`;
//! 8. the `webhook-id` not replayed within the signature window ([`crate::replay`]): `409`.
//!
//! Unauthenticated requests are answered at step 2 without reading their body (the server
//! then closes the connection), so they never take a permit; connections that never finish
//! their headers are closed by the server's header read timeout (`--header-timeout`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use interchange_core::clock::now_millis;
use tokio::sync::SemaphorePermit;

use crate::auth::{AuthError, Identity};
use crate::error::IngestError;
use crate::limits::{retry_after_secs, Verdict};
use crate::metrics::{LimitLabels, OperationLabels};
use crate::problem::Problem;
use crate::replay::Seen;
use crate::state::{Gate, RouteSpec};

/// An identified partner within its limits, holding one of the edge's concurrency permits.
pub(crate) struct Caller<'a> {
    pub(crate) identity: Identity,
    _permit: SemaphorePermit<'a>,
}

/// Seconds since the Unix epoch, as the signature and token checks count them.
fn now_unix() -> i64 {
    now_millis() / 1000
}

fn unauthorized(error: &AuthError) -> Problem {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut problem = Problem::new(status, error.problem_type(), error.to_string());
    problem.title = "Unauthorized".to_owned();
    problem
}

/// A limit's verdict as a `429`, counting a Redis error behind it.
fn limited(gate: &Gate, scope: &'static str, verdict: Verdict, error: Option<IngestError>) -> Result<(), Problem> {
    if let Some(error) = error {
        gate.metrics.redis_errors.get_or_create(&OperationLabels { operation: "rate_limit" }).inc();
        tracing::debug!(%error, "shared rate limit unavailable; local limit applies");
    }
    match verdict {
        Verdict::Allowed => Ok(()),
        Verdict::Limited { retry_after, shared } => {
            let decided_by = if shared { "shared" } else { "local" };
            gate.metrics.rate_limited.get_or_create(&LimitLabels { scope, decided_by }).inc();
            Err(Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", format!("{scope} rate limit exceeded"))
                .retry_after(retry_after_secs(retry_after)))
        }
    }
}

/// Steps 1 to 5, from the headers only. `route` is the ingest route posted to (`None` for the
/// order status API, which every identified partner may read, each only its own orders).
pub(crate) async fn admit_headers<'a>(
    gate: &'a Gate,
    peer: SocketAddr,
    headers: &HeaderMap,
    route: Option<&RouteSpec>,
) -> Result<Caller<'a>, Problem> {
    let (verdict, error) = gate.limits.check_ip(gate.trusted_proxies.client_ip(peer, headers)).await;
    limited(gate, "ip", verdict, error)?;
    let identity = gate.auth.identify(headers, now_unix()).map_err(|e| unauthorized(&e))?;
    if let Some(route) = route {
        if !route.partners.iter().any(|p| p == &identity.partner) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "route-not-allowed",
                format!("partner {:?} may not post to {}", identity.partner, route.path),
            ));
        }
    }
    let (verdict, error) = gate.limits.check_partner(&identity.partner).await;
    limited(gate, "partner", verdict, error)?;
    let Ok(permit) = gate.permits.try_acquire() else {
        gate.metrics.shed.inc();
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the edge is at its concurrency limit",
        )
        .retry_after(1));
    };
    Ok(Caller { identity, _permit: permit })
}

/// Step 6: the whole body, at most `--body-limit` bytes, within `--body-timeout`.
pub(crate) async fn read_body(gate: &Gate, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the body is larger than {} bytes", gate.body_limit),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > gate.body_limit) {
        return Err(too_large());
    }
    match tokio::time::timeout(gate.body_timeout, axum::body::to_bytes(body, gate.body_limit)).await {
        Ok(Ok(bytes)) => Ok(bytes.to_vec()),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => {
            gate.metrics.body_timeouts.inc();
            Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                format!("the body did not arrive within {:?}", gate.body_timeout),
            ))
        }
    }
}

/// Steps 7 and 8. `retry_safe`: the request carries Idempotency-Keys, so a repeat of the same
/// signed message is answered by the idempotency step without a second record. On success,
/// the replay key to release if the request is not accepted.
pub(crate) async fn verify_body(
    gate: &Gate,
    caller: &Caller<'_>,
    headers: &HeaderMap,
    body: &[u8],
    retry_safe: bool,
) -> Result<Option<String>, Problem> {
    let now = now_unix();
    let Some(message) =
        gate.auth.verify_signature(&caller.identity, headers, body, now).map_err(|e| unauthorized(&e))?
    else {
        return Ok(None);
    };
    let window = Duration::from_secs(u64::try_from(message.acceptable_until.saturating_sub(now)).unwrap_or(0));
    match gate.replays.check(&caller.identity.partner, &message.id, body, window).await {
        Ok(Seen::First { key }) => Ok(Some(key)),
        Ok(Seen::SameBody) if retry_safe => Ok(None),
        Ok(seen) => {
            gate.metrics.webhook_replays.inc();
            let detail = if seen == Seen::OtherBody {
                "this webhook-id was already used with another body"
            } else {
                "this webhook-id was already accepted; a retry must carry the same Idempotency-Key"
            };
            Err(Problem::new(StatusCode::CONFLICT, "webhook-replayed", detail))
        }
        Err(error) => {
            gate.metrics.redis_errors.get_or_create(&OperationLabels { operation: "webhook_replay" }).inc();
            tracing::warn!(%error, "webhook-id replay check unavailable; accepted on the signature window alone");
            Ok(None)
        }
    }
}

/// Forgets the `webhook-id` of a request that was not accepted, so the partner's retry passes.
pub(crate) async fn release_replay(gate: &Gate, key: Option<String>) {
    let Some(key) = key else { return };
    if let Err(error) = gate.replays.release(key).await {
        gate.metrics.redis_errors.get_or_create(&OperationLabels { operation: "webhook_replay" }).inc();
        tracing::debug!(%error, "could not forget the webhook-id of a refused request");
    }
}
