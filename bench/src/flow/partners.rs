//! The flow bench's partners on loopback: a test ERP that records every dispatch (arrival time,
//! Idempotency-Key) and answers `201 {"id": ...}`, and the client's callback receiver that checks
//! each notification's Standard Webhooks signature and records it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ledger::{Ledger, COMPLETED, FAILED_NOTICE, REJECTED};

/// Where the ERP takes dispatches and the client takes notifications.
pub const ERP_PATH: &str = "/orders";
pub const CALLBACK_PATH: &str = "/webhooks/interchange";

/// A server on a free loopback port, stopped through its token.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(router: Router) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a bench partner")?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move { axum::serve(listener, router).with_graceful_shutdown(signal).await });
        Ok(Self { addr, stop, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
        }
    }
}

#[derive(Deserialize)]
struct Dispatch {
    correlation_id: String,
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "type")]
    kind: String,
    correlation_id: String,
}

/// The test ERP: records, then answers 201 with a reference.
pub async fn erp(ledger: Arc<Ledger>) -> anyhow::Result<Server> {
    let router = Router::new().route(
        ERP_PATH,
        post(move |headers: HeaderMap, body: Bytes| {
            let ledger = Arc::clone(&ledger);
            async move {
                let at = ledger.now();
                let Ok(dispatch) = serde_json::from_slice::<Dispatch>(&body) else {
                    return StatusCode::BAD_REQUEST.into_response();
                };
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
                ledger.erp_call(&dispatch.correlation_id, key, at);
                let reference = format!("{{\"id\":\"ERP-{}\"}}", dispatch.correlation_id);
                (StatusCode::CREATED, [("content-type", "application/json")], reference).into_response()
            }
        }),
    );
    Server::start(router).await
}

/// The client's callback receiver; notifications must carry a valid signature made with
/// `signing_secret` (`whsec_<base64>`).
pub async fn callback(ledger: Arc<Ledger>, signing_secret: &str) -> anyhow::Result<Server> {
    let encoded = signing_secret.strip_prefix("whsec_").context("signing secret does not start with whsec_")?;
    let key: Arc<[u8]> = STANDARD.decode(encoded).context("signing secret is not base64")?.into();
    let router = Router::new().route(
        CALLBACK_PATH,
        post(move |headers: HeaderMap, body: Bytes| {
            let (ledger, key) = (Arc::clone(&ledger), Arc::clone(&key));
            async move { receive(&ledger, &key, &headers, &body) }
        }),
    );
    Server::start(router).await
}

fn receive(ledger: &Ledger, key: &[u8], headers: &HeaderMap, body: &[u8]) -> Response {
    let at = ledger.now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (id, timestamp, signatures) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    if !verify(key, id, timestamp, signatures, body) {
        ledger.bad_signatures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(notification) = serde_json::from_slice::<Notification>(body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let kind = match notification.kind.as_str() {
        "order.completed" => COMPLETED,
        "order.failed" => FAILED_NOTICE,
        _ => REJECTED,
    };
    ledger.notification(&notification.correlation_id, id, kind, at);
    StatusCode::NO_CONTENT.into_response()
}

/// Standard Webhooks: one of the space-separated `v1,<base64>` signatures is the HMAC-SHA256 of
/// `id.timestamp.body`.
fn verify(key: &[u8], id: &str, timestamp: &str, signatures: &str, body: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return false };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    signatures
        .split_ascii_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|given| given.as_slice() == &expected[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_example_verifies() {
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_or_default();
        let body = br#"{"test": 2432232314}"#;
        let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", signature, body));
        assert!(!verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", signature, body));
    }
}
