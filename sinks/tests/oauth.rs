//! OAuth 2.0 client credentials against a real token endpoint and API on loopback: one token for
//! many deliveries, refreshed before it expires, and fetched anew when the partner answers 401.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use interchange_core::topology::{Outbound, OutboundAuth, Partner, SecretRef};
use interchange_sinks::http::breaker::BreakerConfig;
use interchange_sinks::http::partner::{Outcome, PartnerClient, Request};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Server {
    issued: AtomicUsize,
    /// The token the API accepts now.
    valid: Mutex<String>,
    token_calls: Mutex<Vec<(String, String)>>,
    api_tokens: Mutex<Vec<String>>,
}

async fn start(expires_in: u64) -> (String, Arc<Server>) {
    let server = Arc::new(Server::default());
    let (s1, s2) = (Arc::clone(&server), Arc::clone(&server));
    let app = axum::Router::new()
        .route(
            "/token",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let s = Arc::clone(&s1);
                async move {
                    let auth =
                        headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    s.token_calls.lock().expect("lock").push((auth, body));
                    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
                    let token = format!("token-{n}");
                    *s.valid.lock().expect("lock") = token.clone();
                    axum::Json(
                        serde_json::json!({ "access_token": token, "token_type": "Bearer", "expires_in": expires_in }),
                    )
                }
            }),
        )
        .route(
            "/orders",
            axum::routing::post(move |headers: HeaderMap| {
                let s = Arc::clone(&s2);
                async move {
                    let bearer = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or_default()
                        .to_owned();
                    s.api_tokens.lock().expect("lock").push(bearer.clone());
                    if bearer == *s.valid.lock().expect("lock") {
                        (StatusCode::CREATED, "{\"id\":\"ERP-1\"}").into_response()
                    } else {
                        (StatusCode::UNAUTHORIZED, "bad token").into_response()
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), server)
}

fn partner(base: &str) -> Partner {
    let mut outbound: Outbound = toml::from_str(&format!(
        "base_url = \"{base}\"\npath = \"/orders\"\nrate_limit = {{ per_second = 1000, burst = 100 }}\nretry = {{ initial_backoff = \"10ms\", max_backoff = \"50ms\", max_attempts = 3 }}\n"
    ))
    .expect("outbound");
    std::env::set_var("HUB_TEST_OAUTH_SECRET", "s3cret");
    outbound.auth = Some(OutboundAuth::OauthClientCredentials {
        token_url: format!("{base}/token"),
        client_id: "hub".into(),
        client_secret: SecretRef::Env("HUB_TEST_OAUTH_SECRET".into()),
        scope: Some("orders:write".into()),
    });
    Partner { name: "erp".into(), doc: String::new(), inbound: None, outbound: Some(outbound) }
}

fn request(client: &PartnerClient, key: &str) -> Request {
    Request {
        method: "POST".to_owned(),
        deadline: None,
        url: client.url(),
        body: b"{}".to_vec(),
        idempotency_key: key.into(),
        webhook_id: None,
        traceparent: None,
    }
}

#[tokio::test]
async fn one_token_serves_many_deliveries_and_is_refreshed() {
    let (base, server) = start(3600).await;
    let client = PartnerClient::new(&partner(&base), BreakerConfig::default()).expect("client");
    let stop = CancellationToken::new();
    for i in 0..5 {
        let d = client.deliver(&request(&client, &format!("k{i}")), &stop).await;
        assert_eq!(d.outcome, Outcome::Delivered, "{d:?}");
    }
    assert_eq!(server.issued.load(Ordering::SeqCst), 1, "the token is cached");
    let (auth, body) = server.token_calls.lock().expect("lock")[0].clone();
    // RFC 6749 §2.3.1: client id and secret in HTTP Basic; grant type and scope in the form.
    assert_eq!(auth, "Basic aHViOnMzY3JldA==");
    assert!(body.contains("grant_type=client_credentials") && body.contains("scope=orders%3Awrite"), "{body}");

    // The partner revokes the token: the next delivery gets a 401, fetches a new one, succeeds.
    *server.valid.lock().expect("lock") = "revoked".into();
    let d = client.deliver(&request(&client, "after-revoke"), &stop).await;
    assert_eq!((d.outcome, d.attempts), (Outcome::Delivered, 2), "{d:?}");
    assert_eq!(server.issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_short_lived_token_is_refreshed_before_it_expires() {
    let (base, server) = start(1).await;
    let client = PartnerClient::new(&partner(&base), BreakerConfig::default()).expect("client");
    let stop = CancellationToken::new();
    assert_eq!(client.deliver(&request(&client, "a"), &stop).await.outcome, Outcome::Delivered);
    // Refreshed at half its one-second life, without a 401 first.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let d = client.deliver(&request(&client, "b"), &stop).await;
    assert_eq!((d.outcome, d.attempts), (Outcome::Delivered, 1), "{d:?}");
    assert_eq!(server.issued.load(Ordering::SeqCst), 2);
    assert_eq!(*server.api_tokens.lock().expect("lock"), ["token-1", "token-2"]);
}
