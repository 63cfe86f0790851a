//! OAuth 2.0 client credentials (RFC 6749 §4.4) for partners that want a bearer token: the token
//! is fetched once, shared by every delivery to the partner, refreshed shortly before it expires,
//! and dropped when the partner answers 401 so the next attempt fetches a new one.
//!
//! Written here rather than with the `oauth2` crate: that crate's reqwest integration pins
//! reqwest 0.12 (the hub uses 0.13, so a second HTTP stack), and this grant is one form POST.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

/// Refresh this long before the token's stated expiry.
const EARLY: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A cached token and when to stop using it.
#[derive(Debug, Clone)]
struct Cached {
    token: String,
    refresh_at: Instant,
}

/// One partner's token source.
pub(crate) struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    cached: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("token_url", &self.token_url).field("client_id", &self.client_id).finish()
    }
}

impl TokenSource {
    pub(crate) fn new(
        http: reqwest::Client,
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    ) -> Self {
        Self { http, token_url, client_id, client_secret, scope, cached: Mutex::new(None) }
    }

    /// A valid access token: the cached one, or a new one from the token endpoint. Concurrent
    /// callers wait for one fetch instead of each fetching.
    pub(crate) async fn token(&self) -> Result<String, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.as_str()));
        }
        let response = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body: String = response.text().await.unwrap_or_default().chars().take(200).collect();
            return Err(format!("token endpoint answered HTTP {}: {body}", status.as_u16()));
        }
        let parsed: TokenResponse = response.json().await.map_err(|e| format!("token endpoint: bad answer: {e}"))?;
        if parsed.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(format!("token endpoint: unsupported token type {:?}", parsed.token_type));
        }
        // No expiry stated: reuse for a minute. Short lifetimes: refresh at half-life.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60));
        let refresh_in = if lifetime > EARLY * 2 { lifetime - EARLY } else { lifetime / 2 };
        *cached = Some(Cached { token: parsed.access_token.clone(), refresh_at: Instant::now() + refresh_in });
        Ok(parsed.access_token)
    }

    /// Forget `token` (the partner refused it); a newer token fetched meanwhile is kept.
    pub(crate) async fn invalidate(&self, token: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| c.token == token) {
            *cached = None;
        }
    }
}
