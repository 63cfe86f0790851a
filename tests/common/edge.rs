//! Starts real `hub ingest` processes on loopback for integration tests, with test partners.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{bootstrap, registry_url, repo, service, TopologyCopy};

pub const SHOP_KEY: &str = "shop-key-1";
pub const SHOP_KEY_ROTATED: &str = "shop-key-2";
/// Standard Webhooks secret of acme-shop (32 bytes of 0x2a, base64).
pub const SHOP_WEBHOOK_SECRET: &str = "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
pub const BETA_ISSUER: &str = "https://idp.beta.test";
pub const BETA_AUDIENCE: &str = "interchange";
pub const BETA_JWT_SECRET: &str = "beta-hs256-secret-for-tests-only-0123456789";

/// globex-shop, the second shop of the shipped topology: API key, Standard Webhooks secret (32
/// bytes of 0x47, base64) and the secret its notifications are signed with (32 bytes of 0x67).
pub const GLOBEX_KEY: &str = "globex-key-1";
pub const GLOBEX_WEBHOOK_SECRET: &str = "whsec_R0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0c=";
pub const GLOBEX_SIGNING_SECRET: &str = "whsec_Z2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2dnZ2c=";
/// globex-erp's bearer token.
pub const GLOBEX_ERP_TOKEN: &str = "globex-erp-token";

/// The shipped topology plus `beta-shop`, a JWT partner limited to 5 requests/s (burst 5).
pub fn test_topology() -> TopologyCopy {
    let copy = TopologyCopy::new(&[(
        "schema = \"order_received\"\npartners = [\"acme-shop\", \"globex-shop\"]",
        "schema = \"order_received\"\npartners = [\"acme-shop\", \"globex-shop\", \"beta-shop\"]",
    )]);
    let mut text = std::fs::read_to_string(&copy.path).expect("read copy");
    text.push_str(&format!(
        r#"
[[partner]]
name = "beta-shop"
doc = "Test partner: JWT HS256, rate limited."

[partner.inbound]
jwt = {{ issuer = "{BETA_ISSUER}", audience = "{BETA_AUDIENCE}", hs256_secret = {{ env = "HUB_TEST_BETA_JWT_SECRET" }} }}
rate_limit = {{ per_second = 5, burst = 5 }}
"#
    ));
    std::fs::write(&copy.path, text).expect("write copy");
    copy
}

/// `hub` run against the test topology with `prefix`; panics with the output on failure.
pub fn hub_ok(topology: &TopologyCopy, prefix: &str, args: &[&str]) -> String {
    let mut all = vec!["--topology", topology.arg(), "--topic-prefix", prefix];
    all.extend_from_slice(args);
    let output = super::hub(&all);
    let (out, err) = super::text(&output);
    assert!(output.status.success(), "hub {args:?} failed:\n{out}{err}");
    out
}

/// Creates the topics and registers the contracts for `prefix`.
pub fn provision(topology: &TopologyCopy, prefix: &str) {
    hub_ok(topology, prefix, &["topology", "apply", "--allow-fewer-replicas"]);
    hub_ok(topology, prefix, &["schemas", "register"]);
}

/// A running `hub ingest`, killed on drop.
pub struct Edge {
    pub child: Child,
    pub base: String,
    pub log: std::path::PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Edge {
    /// Starts an edge for `prefix` with extra `args`, and waits until /readyz says ready.
    pub fn start(topology: &TopologyCopy, prefix: &str, args: &[&str]) -> Edge {
        let edge = Self::spawn(topology, prefix, args, "http");
        edge.wait_ready(Duration::from_secs(60));
        edge
    }

    /// Starts an edge without waiting; `scheme` is the base URL's (`https` with TLS args).
    pub fn spawn(topology: &TopologyCopy, prefix: &str, args: &[&str], scheme: &str) -> Edge {
        let port = super::free_port();
        let log = topology.dir.path().join(format!("edge-{port}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .args([
                "--topology",
                topology.arg(),
                "--topic-prefix",
                prefix,
                "ingest",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(args)
            .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
            .env("HUB_REGISTRY_URL", registry_url())
            .env("HUB_REDIS_URL", service("HUB_REDIS_URL", "redis://127.0.0.1:6379"))
            .env("HUB_PARTNER_ACME_SHOP_API_KEYS", format!("{SHOP_KEY},{SHOP_KEY_ROTATED}"))
            .env("HUB_PARTNER_ACME_SHOP_WEBHOOK_SECRETS", SHOP_WEBHOOK_SECRET)
            .env("HUB_TEST_BETA_JWT_SECRET", BETA_JWT_SECRET)
            .envs(super::GLOBEX_ENV)
            .env("HUB_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn hub ingest");
        Edge { child, base: format!("{scheme}://127.0.0.1:{port}"), log }
    }

    /// Polls /readyz until 200, or panics with the edge's log. Plain std I/O: callable from
    /// sync and async tests alike.
    pub fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.status("/readyz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("edge not ready:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }

    /// Status code of `GET path`, or None when the edge does not answer.
    pub fn status(&self, path: &str) -> Option<u16> {
        super::http_status(self.base.split("://").nth(1).unwrap_or(&self.base), path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Standard Webhooks headers for `body`, signed at `timestamp` with the acme-shop secret,
/// computed independently of the hub (HMAC-SHA256 over "id.timestamp.body").
pub fn signature_headers(body: &[u8], timestamp: i64) -> Vec<(&'static str, String)> {
    signature_headers_with(SHOP_WEBHOOK_SECRET, body, timestamp)
}

/// As [`signature_headers`], with the Standard Webhooks `secret` given (another partner's).
pub fn signature_headers_with(secret: &str, body: &[u8], timestamp: i64) -> Vec<(&'static str, String)> {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).expect("secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", format!("v1,{signature}")),
    ]
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// An HS256 token for beta-shop expiring `expires_in` seconds from now (negative: expired).
pub fn beta_token(expires_in: i64) -> String {
    let claims = serde_json::json!({
        "iss": BETA_ISSUER, "aud": BETA_AUDIENCE, "sub": "beta-integration",
        "iat": now_unix(), "exp": now_unix() + expires_in,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(BETA_JWT_SECRET.as_bytes()),
    )
    .expect("token")
}

/// A realistic order of about 1 KB.
pub fn order(order_id: &str) -> serde_json::Value {
    let items: Vec<serde_json::Value> = (0..6)
        .map(|i| serde_json::json!({ "sku": format!("SKU-{:05}", 100 + i), "quantity": i + 1, "unit_price": format!("{}.{:02}", 10 + i * 7, i * 13 % 100) }))
        .collect();
    serde_json::json!({
        "order_id": order_id,
        "customer_id": "cust-000042",
        "items": items,
        "currency": "BRL",
        "channel": "WEB",
        "callback_url": "https://shop.example/webhooks/orders",
        "attributes": { "campaign": "black-friday", "notes": "leave at the door, ring twice, the dog is friendly" },
    })
}
