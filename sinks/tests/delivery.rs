//! A partner's delivery stack against a real HTTP partner on loopback that answers from a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use hmac::{Hmac, Mac};
use interchange_core::topology::{Partner, RateLimit, RetryPolicy, SecretRef};
use interchange_sinks::http::breaker::BreakerConfig;
use interchange_sinks::http::partner::{Outcome, PartnerClient, Request};
use tokio_util::sync::CancellationToken;

/// What the partner received: when, and its headers and body.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// One scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

/// Starts a partner that answers from `answers` in order, then 200 with an id.
async fn partner(answers: Vec<Answer>) -> (String, Script) {
    let script = Script { answers: Arc::new(Mutex::new(answers.into())), received: Arc::default() };
    let state = script.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
        let state = state.clone();
        async move {
            state.received.lock().expect("lock").push(Received { at: Instant::now(), headers, body: body.to_vec() });
            let next = state.answers.lock().expect("lock").pop_front();
            let (status, headers, body) = next.unwrap_or((200, vec![], r#"{"id": "ERP-1"}"#.to_owned()));
            let mut response = (StatusCode::from_u16(status).expect("status"), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().expect("header"));
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), script)
}

fn partner_config(base_url: &str, retry: RetryPolicy, signing: Option<&str>) -> Partner {
    let toml = format!(
        r#"base_url = "{base_url}"
path = "/orders"
timeout = "2s"
concurrency = 4
rate_limit = {{ per_second = 1000, burst = 100 }}
retry = {{ initial_backoff = "{}ms", max_backoff = "{}ms", max_attempts = {} }}
"#,
        retry.initial_backoff.as_millis(),
        retry.max_backoff.as_millis(),
        retry.max_attempts
    );
    let mut outbound: interchange_core::topology::Outbound = toml::from_str(&toml).expect("outbound");
    outbound.signing_secret = signing.map(|s| SecretRef::Env(s.to_owned()));
    outbound.rate_limit = RateLimit { per_second: 1000, burst: 100 };
    Partner { name: "erp".into(), doc: String::new(), inbound: None, outbound: Some(outbound) }
}

fn request(client: &PartnerClient, key: &str) -> Request {
    Request {
        method: "POST".to_owned(),
        deadline: None,
        url: client.url(),
        body: br#"{"order_id": "A-1"}"#.to_vec(),
        idempotency_key: key.to_owned(),
        webhook_id: None,
        traceparent: None,
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(800),
        max_attempts: 5,
    }
}

#[tokio::test]
async fn two_503s_then_200_is_one_delivery_after_three_attempts_with_one_key() {
    let (url, script) = partner(vec![(503, vec![], "busy".into()), (503, vec![], "busy".into())]).await;
    let client = PartnerClient::new(&partner_config(&url, fast(), None), BreakerConfig::default()).expect("client");
    let delivery = client.deliver(&request(&client, "cmd-1"), &CancellationToken::new()).await;
    assert_eq!(delivery.outcome, Outcome::Delivered);
    assert_eq!(delivery.attempts, 3);
    assert_eq!(delivery.partner_reference.as_deref(), Some("ERP-1"));
    let received = script.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.headers["idempotency-key"] == "cmd-1"), "one key on every attempt");
    // Full jitter: each gap is at most its (doubling) cap.
    let gaps: Vec<Duration> = received.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] <= Duration::from_millis(200 + 100) && gaps[1] <= Duration::from_millis(400 + 100), "{gaps:?}");
}

#[tokio::test]
async fn a_request_past_its_deadline_expires_without_a_call_and_one_before_it_is_delivered() {
    let (url, script) = partner(vec![(503, vec![], "busy".into())]).await;
    let client = PartnerClient::new(&partner_config(&url, fast(), None), BreakerConfig::default()).expect("client");
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis())
            .expect("ms");
    let mut late = request(&client, "cmd-late");
    late.deadline = Some(now - 1);
    let delivery = client.deliver(&late, &CancellationToken::new()).await;
    assert_eq!((delivery.outcome, delivery.attempts, delivery.status), (Outcome::Expired, 0, None));
    assert!(script.received.lock().expect("lock").is_empty(), "the partner never saw it");
    // Before its deadline: delivered, retried after a 503 under the same key (retries of a
    // started delivery go on past the deadline: tests/scenarios.rs, the ERP that never answers).
    let mut timely = request(&client, "cmd-timely");
    timely.deadline = Some(now + 600_000);
    let delivery = client.deliver(&timely, &CancellationToken::new()).await;
    assert_eq!((delivery.outcome, delivery.attempts), (Outcome::Delivered, 2));
    assert_eq!(script.received.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn a_429_retry_after_delays_the_next_attempt() {
    let (url, script) = partner(vec![(429, vec![("retry-after", "2".into())], "slow down".into())]).await;
    let client = PartnerClient::new(&partner_config(&url, fast(), None), BreakerConfig::default()).expect("client");
    let delivery = client.deliver(&request(&client, "cmd-2"), &CancellationToken::new()).await;
    assert_eq!((delivery.outcome, delivery.attempts), (Outcome::Delivered, 2));
    let received = script.received.lock().expect("lock").clone();
    assert!(received[1].at - received[0].at >= Duration::from_secs(2), "Retry-After honoured");
}

#[tokio::test]
async fn a_400_is_refused_without_a_retry() {
    let (url, script) = partner(vec![(400, vec![], r#"{"error": "sku unknown"}"#.into())]).await;
    let client = PartnerClient::new(&partner_config(&url, fast(), None), BreakerConfig::default()).expect("client");
    let delivery = client.deliver(&request(&client, "cmd-3"), &CancellationToken::new()).await;
    assert_eq!((delivery.outcome, delivery.attempts, delivery.status), (Outcome::Refused, 1, Some(400)));
    assert!(delivery.detail.as_deref().is_some_and(|d| d.contains("sku unknown")), "{:?}", delivery.detail);
    assert_eq!(script.received.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn retries_run_out_and_the_breaker_stops_calls_until_a_probe_succeeds() {
    let failures = (0..6).map(|_| (503, vec![], "down".to_owned())).collect();
    let (url, script) = partner(failures).await;
    let breaker = BreakerConfig { min_requests: 4, open_for: Duration::from_secs(1), ..BreakerConfig::default() };
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        max_attempts: 4,
    };
    let client = PartnerClient::new(&partner_config(&url, retry, None), breaker).expect("client");
    let first = client.deliver(&request(&client, "cmd-4"), &CancellationToken::new()).await;
    assert_eq!((first.outcome, first.attempts), (Outcome::Exhausted, 4));
    assert_eq!(client.breaker_state(), "open", "4 of 4 failed");
    let opened = Instant::now();
    let second = client.deliver(&request(&client, "cmd-5"), &CancellationToken::new()).await;
    let received = script.received.lock().expect("lock").clone();
    let during_open = received.iter().filter(|r| r.at > opened && r.at < opened + Duration::from_millis(900)).count();
    assert_eq!(during_open, 0, "no calls while open");
    // Half-open probes fail (503s left in the script) and reopen it, until the partner recovers.
    assert_eq!((second.outcome, second.attempts), (Outcome::Delivered, 3), "{second:?}");
    assert_eq!(client.breaker_state(), "closed");
}

#[tokio::test]
async fn notifications_are_signed_the_standard_webhooks_way() {
    let (url, script) = partner(vec![]).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    std::env::set_var("HUB_TEST_SINK_SIGNING_SECRET", secret);
    let client = PartnerClient::new(
        &partner_config(&url, fast(), Some("HUB_TEST_SINK_SIGNING_SECRET")),
        BreakerConfig::default(),
    )
    .expect("client");
    let mut req = request(&client, "cmd-6");
    req.webhook_id = Some("msg_cmd-6".into());
    let delivery = client.deliver(&req, &CancellationToken::new()).await;
    assert_eq!(delivery.outcome, Outcome::Delivered);
    let received = script.received.lock().expect("lock").clone();
    let h = &received[0].headers;
    let (id, ts, sig) = (
        h["webhook-id"].to_str().expect("id"),
        h["webhook-timestamp"].to_str().expect("ts"),
        h["webhook-signature"].to_str().expect("sig"),
    );
    // Verified independently of the signer: HMAC-SHA256 over "id.timestamp.body".
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).expect("key");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&received[0].body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(sig, expected);
    assert_eq!(id, "msg_cmd-6");
}
