//! One partner's delivery stack, outermost first: concurrency limit, retry policy, rate limit
//! (every attempt takes a token), circuit breaker, timeout, HTTP client.
//!
//! The partner's rate holds in total across sink instances: each instance enforces the share of
//! it proportional to the partitions it owns (`set_share`, called in the rebalance callbacks and
//! every second), so no shared store sits on the delivery path and a partner's budget follows its
//! backlog. An instance that owns nothing has no share; a share that changes keeps the tokens
//! already spent (`Bucket::rescale`), so a rebalance never adds a burst.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use interchange_core::clock::now_millis;
use interchange_core::topology::{OutboundAuth, Partner};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::breaker::{Breaker, BreakerConfig, Change};
use super::bucket::Bucket;
use super::oauth::TokenSource;
use super::retry::{classify, next, retry_after, Attempt, Next};
use crate::error::SinkError;
use crate::metrics::SinkMetrics;

/// Longest sleep before looking at the rate limiter again.
const MAX_TOKEN_WAIT: Duration = Duration::from_millis(50);

/// The most of a partner's response body the sink reads: enough for the reference in a success
/// (JSON `id`/`reference`) and the excerpt of a failure. The rest is never read: the connection
/// is dropped (closed, not returned to the pool), so a partner answering with gigabytes, or
/// without end, costs at most this much memory per delivery.
pub(crate) const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// One request to deliver (the same on every attempt).
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method (the outbound's, or the command's own request mapping's).
    pub method: String,
    /// Full URL; the partner's base URL and path unless a command overrides it (callbacks).
    pub url: String,
    pub body: Vec<u8>,
    /// Stable across retries, restarts and replays: the command's id.
    pub idempotency_key: String,
    /// Sign as a Standard Webhook with this message id (notifications).
    pub webhook_id: Option<String>,
    /// The trace context to pass on when spans are not exported (each attempt's own otherwise).
    pub traceparent: Option<String>,
    /// Milliseconds since the epoch after which the first attempt is not made (the command's
    /// `deadline`): the saga compensates then, so the partner must not see it.
    pub deadline: Option<i64>,
}

/// How a delivery ended after its last attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// A permanent refusal (4xx other than 408/429).
    Refused,
    /// Retries ran out on transient failures.
    Exhausted,
    /// The command's deadline passed before the first attempt: the partner never saw it.
    Expired,
    /// Shutdown came first: not finished, redelivered after restart.
    Interrupted,
}

/// The result of delivering one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub outcome: Outcome,
    pub attempts: u32,
    pub status: Option<u16>,
    /// The partner's id for what it received (JSON `id`/`reference`, or `Location`).
    pub partner_reference: Option<String>,
    /// The last failure, with a bounded excerpt of the response.
    pub detail: Option<String>,
}

/// A partner's delivery stack.
pub struct PartnerClient {
    pub(crate) name: String,
    partner: Partner,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    /// The partner's rate limit, scaled to `share`.
    limiter: Mutex<Limiter>,
    breaker: Mutex<Breaker>,
    auth: Option<(String, String)>,
    signer: Option<standardwebhooks::Webhook>,
    oauth: Option<TokenSource>,
    metrics: SinkMetrics,
}

impl std::fmt::Debug for PartnerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerClient").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The bucket and the share of the partner's rate it enforces.
#[derive(Debug)]
struct Limiter {
    share: f64,
    bucket: Bucket,
}

/// `per_second` and `burst` scaled to `share`: none for no share, else a burst of at least one
/// call (a bucket smaller than one token would never let a call through).
fn scaled(per_second: u32, burst: u32, share: f64) -> (f64, f64) {
    if share <= 0.0 {
        return (0.0, 0.0);
    }
    (f64::from(per_second) * share, (f64::from(burst) * share).max(1.0))
}

impl PartnerClient {
    /// The stack of `partner` (it must have an `[partner.outbound]` section); secrets resolved now.
    pub fn new(partner: &Partner, breaker: BreakerConfig) -> Result<Self, SinkError> {
        let err = |reason: String| SinkError::Partner { partner: partner.name.clone(), reason };
        let outbound = partner.outbound.as_ref().ok_or_else(|| err("no [partner.outbound] section".to_owned()))?;
        let http = reqwest::Client::builder()
            .timeout(outbound.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| err(e.to_string()))?;
        let auth = match &outbound.auth {
            None => None,
            Some(OutboundAuth::Bearer { token }) => {
                Some(("authorization".to_owned(), format!("Bearer {}", token.resolve().map_err(err)?)))
            }
            Some(OutboundAuth::ApiKey { header, key }) => Some((header.to_lowercase(), key.resolve().map_err(err)?)),
            Some(OutboundAuth::OauthClientCredentials { .. }) => None,
        };
        let oauth = match &outbound.auth {
            Some(OutboundAuth::OauthClientCredentials { token_url, client_id, client_secret, scope }) => {
                Some(TokenSource::new(
                    http.clone(),
                    token_url.clone(),
                    client_id.clone(),
                    client_secret.resolve().map_err(err)?,
                    scope.clone(),
                ))
            }
            _ => None,
        };
        let signer = match &outbound.signing_secret {
            None => None,
            Some(secret) => {
                Some(standardwebhooks::Webhook::new(&secret.resolve().map_err(err)?).map_err(|e| err(e.to_string()))?)
            }
        };
        let (rate, burst) = scaled(outbound.rate_limit.per_second, outbound.rate_limit.burst, 1.0);
        let limiter = Limiter { share: 1.0, bucket: Bucket::new(rate, burst, Instant::now()) };
        Ok(Self {
            name: partner.name.clone(),
            partner: partner.clone(),
            http,
            permits: Arc::new(Semaphore::new(usize::try_from(outbound.concurrency).unwrap_or(1).max(1))),
            limiter: Mutex::new(limiter),
            breaker: Mutex::new(Breaker::new(breaker)),
            auth,
            signer,
            oauth,
            metrics: SinkMetrics::default(),
        })
    }

    /// Records this partner's attempts, waits and breaker states in `metrics`.
    #[must_use]
    pub(crate) fn with_metrics(mut self, metrics: SinkMetrics) -> Self {
        metrics.breaker_state.get_or_create(&SinkMetrics::p(&self.name)).set(0);
        self.metrics = metrics;
        self
    }

    fn breaker_changed(&self, change: &Change) {
        tracing::warn!(partner = %self.name, from = change.from, to = change.to, "circuit breaker");
        let value = match change.to {
            "open" => 2,
            "half_open" => 1,
            _ => 0,
        };
        self.metrics.breaker_state.get_or_create(&SinkMetrics::p(&self.name)).set(value);
        self.metrics.breaker_transitions.get_or_create(&SinkMetrics::po(&self.name, change.to)).inc();
    }

    /// Deliveries to this partner at once.
    pub(crate) fn concurrency(&self) -> usize {
        self.partner.outbound.as_ref().map_or(1, |o| usize::try_from(o.concurrency).unwrap_or(1).max(1))
    }

    /// The partner's outbound settings.
    pub(crate) fn outbound(&self) -> Option<&interchange_core::topology::Outbound> {
        self.partner.outbound.as_ref()
    }

    /// The partner's URL for commands that do not name one.
    pub fn url(&self) -> String {
        let outbound = self.partner.outbound.as_ref();
        let base = outbound.map_or("", |o| o.base_url.trim_end_matches('/'));
        format!("{base}{}", outbound.map_or("/", |o| o.path.as_str()))
    }

    /// Enforce `owned / total` of the partner's rate here (the rest belongs to other instances);
    /// owning nothing, nothing. Tokens already spent stay spent: a rebalance adds no burst.
    pub(crate) fn set_share(&self, owned: usize, total: usize) {
        let Some(outbound) = &self.partner.outbound else { return };
        #[allow(clippy::cast_precision_loss)]
        let share = if total == 0 { 0.0 } else { (owned as f64 / total as f64).min(1.0) };
        let Ok(mut limiter) = self.limiter.lock() else { return };
        if (limiter.share - share).abs() < f64::EPSILON {
            return;
        }
        limiter.share = share;
        let (rate, burst) = scaled(outbound.rate_limit.per_second, outbound.rate_limit.burst, share);
        limiter.bucket.rescale(rate, burst, Instant::now());
    }

    /// The breaker's state name (`closed`, `open`, `half_open`).
    pub fn breaker_state(&self) -> &'static str {
        self.breaker.lock().map_or("unknown", |b| b.state().name())
    }

    /// Delivers `request`, retrying per the partner's policy, until it is delivered, refused,
    /// exhausted, or `shutdown`.
    pub async fn deliver(&self, request: &Request, shutdown: &CancellationToken) -> Delivery {
        let permit = tokio::select! {
            () = shutdown.cancelled() => None,
            permit = self.permits.acquire() => permit.ok(),
        };
        let Some(_permit) = permit else {
            return Delivery {
                outcome: Outcome::Interrupted,
                attempts: 0,
                status: None,
                partner_reference: None,
                detail: None,
            };
        };
        let policy = self.partner.outbound.as_ref().map(|o| o.retry).unwrap_or_default();
        let mut attempt = 0;
        let (mut status, mut detail) = (None, None);
        loop {
            // The breaker pauses this partner's work; other partners are not affected.
            loop {
                let (verdict, change) = match self.breaker.lock() {
                    Ok(mut b) => b.try_acquire(Instant::now()),
                    Err(_) => (Ok(()), None),
                };
                if let Some(change) = change {
                    self.breaker_changed(&change);
                }
                match verdict {
                    Ok(()) => break,
                    Err(wait) => {
                        tokio::select! {
                            () = shutdown.cancelled() => return Delivery { outcome: Outcome::Interrupted, attempts: attempt, status, partner_reference: None, detail },
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
            // Every attempt takes a token. The share may change while this waits (a rebalance).
            let mut waited: Option<Instant> = None;
            loop {
                let wait = match self.limiter.lock() {
                    Ok(mut limiter) => match limiter.bucket.take(Instant::now()) {
                        Ok(()) => break,
                        Err(wait) => wait,
                    },
                    Err(_) => break,
                };
                waited.get_or_insert_with(Instant::now);
                tokio::select! {
                    () = shutdown.cancelled() => return Delivery { outcome: Outcome::Interrupted, attempts: attempt, status, partner_reference: None, detail },
                    () = tokio::time::sleep(wait.min(MAX_TOKEN_WAIT)) => {}
                }
            }
            if let Some(waited) = waited {
                self.metrics
                    .rate_limit_wait
                    .get_or_create(&SinkMetrics::p(&self.name))
                    .observe(waited.elapsed().as_secs_f64());
            }
            // Past its deadline a command is not started: the saga compensates it, and the partner
            // must not accept what the client is told failed. Once an attempt may have reached the
            // partner, retries go on under the same Idempotency-Key to learn what it did (a late
            // success is withdrawn by the saga with a cancel command).
            if attempt == 0 && request.deadline.is_some_and(|d| now_millis() >= d) {
                return Delivery {
                    outcome: Outcome::Expired,
                    attempts: 0,
                    status: None,
                    partner_reference: None,
                    detail: Some(format!("deadline {} passed before the first attempt", request.deadline.unwrap_or(0))),
                };
            }
            attempt += 1;
            if attempt > 1 {
                self.metrics.retries.get_or_create(&SinkMetrics::p(&self.name)).inc();
            }
            let started = Instant::now();
            let (outcome, wait_floor, reference) = self.attempt(request, &mut status, &mut detail).await;
            self.metrics
                .attempt_duration
                .get_or_create(&SinkMetrics::p(&self.name))
                .observe(started.elapsed().as_secs_f64());
            let class = match status {
                Some(200..=299) => "2xx",
                Some(300..=399) => "3xx",
                Some(400..=499) => "4xx",
                Some(_) => "5xx",
                None if detail.as_deref() == Some("timed out") => "timeout",
                None => "error",
            };
            self.metrics.attempts.get_or_create(&SinkMetrics::po(&self.name, class)).inc();
            let failed = outcome == Attempt::Transient;
            if let Ok(mut b) = self.breaker.lock() {
                if let Some(change) = b.record(Instant::now(), failed) {
                    drop(b);
                    self.breaker_changed(&change);
                }
            }
            if outcome == Attempt::Delivered {
                // `detail` is the delivering attempt's own: a note that its body was cut, or none.
                return Delivery {
                    outcome: Outcome::Delivered,
                    attempts: attempt,
                    status,
                    partner_reference: reference,
                    detail,
                };
            }
            match next(&policy, attempt, outcome, wait_floor, rand::random::<f64>()) {
                Next::GiveUp => {
                    let outcome = if outcome == Attempt::Permanent { Outcome::Refused } else { Outcome::Exhausted };
                    return Delivery { outcome, attempts: attempt, status, partner_reference: None, detail };
                }
                Next::RetryAfter(wait) => {
                    tokio::select! {
                        () = shutdown.cancelled() => return Delivery { outcome: Outcome::Interrupted, attempts: attempt, status, partner_reference: None, detail },
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// One HTTP attempt: its class, a Retry-After floor, and the partner's reference.
    async fn attempt(
        &self,
        request: &Request,
        status: &mut Option<u16>,
        detail: &mut Option<String>,
    ) -> (Attempt, Option<Duration>, Option<String>) {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        // The HTTP client span (OpenTelemetry semantic conventions); the partner gets its context.
        let url = reqwest::Url::parse(&request.url).ok();
        let span = tracing::info_span!(
            "attempt",
            otel.name = %method,
            otel.kind = "client",
            http.request.method = %method,
            url.full = %request.url,
            server.address = url.as_ref().and_then(|u| u.host_str()).unwrap_or(""),
            server.port = url.as_ref().and_then(reqwest::Url::port_or_known_default).unwrap_or(0),
            partner = %self.name,
            http.response.status_code = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
        );
        let result =
            tracing::Instrument::instrument(self.call(method, request, url, status, detail, &span), span.clone()).await;
        match *status {
            Some(code) => span.record("http.response.status_code", code),
            None => {
                span.record("error.type", if detail.as_deref() == Some("timed out") { "timeout" } else { "connect" })
            }
        };
        result
    }

    async fn call(
        &self,
        method: reqwest::Method,
        request: &Request,
        url: Option<reqwest::Url>,
        status: &mut Option<u16>,
        detail: &mut Option<String>,
        span: &tracing::Span,
    ) -> (Attempt, Option<Duration>, Option<String>) {
        // The URL parsed once for the span and the request (reqwest reports one that does not
        // parse, as before).
        let builder = match url {
            Some(url) => self.http.request(method, url),
            None => self.http.request(method, &request.url),
        };
        let mut builder = builder
            .header("content-type", "application/json")
            .header("idempotency-key", &request.idempotency_key)
            .body(request.body.clone());
        if let Some(tp) = interchange_core::telemetry::traceparent(span).or_else(|| request.traceparent.clone()) {
            builder = builder.header("traceparent", tp);
        }
        if let Some(outbound) = &self.partner.outbound {
            for (name, value) in &outbound.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        if let Some((name, value)) = &self.auth {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut bearer = None;
        if let Some(oauth) = &self.oauth {
            match oauth.token().await {
                Ok(token) => {
                    builder = builder.bearer_auth(&token);
                    bearer = Some(token);
                }
                Err(e) => {
                    *status = None;
                    *detail = Some(e);
                    return (Attempt::Transient, None, None);
                }
            }
        }
        if let (Some(signer), Some(id)) = (&self.signer, &request.webhook_id) {
            // Whole seconds since the epoch, as the Standard Webhooks timestamp is.
            let timestamp = now_millis() / 1000;
            match signer.sign(id, timestamp, &request.body) {
                Ok(signature) => {
                    builder = builder
                        .header("webhook-id", id)
                        .header("webhook-timestamp", timestamp.to_string())
                        .header("webhook-signature", signature);
                }
                Err(e) => {
                    *detail = Some(format!("cannot sign: {e}"));
                    return (Attempt::Permanent, None, None);
                }
            }
        }
        match builder.send().await {
            Err(e) => {
                *status = None;
                *detail = Some(if e.is_timeout() { "timed out".to_owned() } else { format!("request failed: {e}") });
                (Attempt::Transient, None, None)
            }
            Ok(response) => {
                let code = response.status().as_u16();
                *status = Some(code);
                let floor = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, SystemTime::now()));
                let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let capped = read_capped(response, MAX_RESPONSE_BODY).await;
                if capped.truncated {
                    tracing::warn!(partner = %self.name, status = code, cap = MAX_RESPONSE_BODY, "response body over the cap: the rest was not read");
                }
                let body = String::from_utf8_lossy(&capped.bytes);
                let outcome = classify(code);
                if outcome == Attempt::Delivered {
                    // The partner said yes: a body cut at the cap, or one that broke off, does not
                    // change that; the delivery's detail says so.
                    *detail = capped.note();
                    let json: Option<serde_json::Value> = serde_json::from_str(&body).ok();
                    let field = |k: &str| {
                        json.as_ref()
                            .and_then(|j| j.get(k))
                            .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_i64().map(|n| n.to_string())))
                    };
                    return (outcome, None, field("id").or_else(|| field("reference")).or(location));
                }
                let excerpt: String = body.chars().take(256).collect();
                *detail = Some(format!("HTTP {code}: {excerpt}"));
                if let (Some(oauth), Some(token), 401) = (&self.oauth, &bearer, code) {
                    // The token was revoked or expired early: fetch a new one and try again.
                    oauth.invalidate(token).await;
                    return (Attempt::Transient, floor, None);
                }
                (outcome, floor, None)
            }
        }
    }
}

/// A response body read up to a cap.
#[derive(Debug, Default, PartialEq, Eq)]
struct Capped {
    /// At most the cap's bytes, from the start of the body.
    bytes: Vec<u8>,
    cap: usize,
    /// The body went on past the cap (the rest was not read).
    truncated: bool,
    /// Reading broke off before the end (timeout, reset), after `bytes`.
    error: Option<String>,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Self { cap, ..Self::default() }
    }

    /// Keeps what of `chunk` fits under the cap; false once the cap is reached (stop reading).
    fn push(&mut self, chunk: &[u8]) -> bool {
        let room = self.cap.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.bytes.extend_from_slice(&chunk[..room]);
            self.truncated = true;
            return false;
        }
        self.bytes.extend_from_slice(chunk);
        true
    }

    /// What a delivered result says of its body: cut at the cap, or broken off; none when whole.
    fn note(&self) -> Option<String> {
        match (&self.error, self.truncated) {
            (Some(e), _) => Some(format!("response body unreadable after {} bytes: {e}", self.bytes.len())),
            (None, true) => Some(format!("response body truncated at {} bytes (the rest was not read)", self.cap)),
            (None, false) => None,
        }
    }
}

/// Reads `response`'s body chunk by chunk up to `cap` bytes, then drops the response, which
/// closes the connection instead of draining what is left.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Capped {
    let mut capped = Capped::new(cap);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if !capped.push(&chunk) {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                capped.error = Some(if e.is_timeout() { "timed out".to_owned() } else { e.to_string() });
                break;
            }
        }
    }
    drop(response);
    capped
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn capped_keeps_at_most_the_cap_and_says_so() {
        let mut body = Capped::new(10);
        assert!(body.push(b"0123"));
        assert!(body.push(b"4567"));
        assert!(!body.push(b"89abcdef"), "the cap is reached: stop reading");
        assert_eq!(body.bytes, b"0123456789");
        assert!(body.truncated);
        assert_eq!(body.note().as_deref(), Some("response body truncated at 10 bytes (the rest was not read)"));
    }

    #[test]
    fn capped_body_exactly_at_the_cap_is_whole() {
        let mut body = Capped::new(4);
        assert!(body.push(b"abcd"));
        assert!(body.push(b""));
        assert_eq!((body.bytes.as_slice(), body.truncated, body.note()), (&b"abcd"[..], false, None));
    }

    #[test]
    fn broken_off_body_is_named_with_what_was_read() {
        let mut body = Capped::new(100);
        body.push(b"{\"id\":");
        body.error = Some("timed out".to_owned());
        assert_eq!(body.note().as_deref(), Some("response body unreadable after 6 bytes: timed out"));
    }

    /// A server on loopback that answers `200` with an endless chunked body; it counts the bytes
    /// the socket took and sets `closed` when a write fails (the client went away).
    async fn endless_server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let (written, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (w, c) = (Arc::clone(&written), Arc::clone(&closed));
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
            loop {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    c.store(1, Ordering::SeqCst);
                    return;
                }
                w.fetch_add(16 * 1024, Ordering::SeqCst);
            }
        });
        (url, written, closed)
    }

    #[tokio::test]
    async fn an_endless_body_is_read_to_the_cap_and_the_connection_closed() {
        let (url, written, closed) = endless_server().await;
        let response = reqwest::Client::new().get(&url).send().await.expect("response");
        assert_eq!(response.status().as_u16(), 200);
        let capped = read_capped(response, MAX_RESPONSE_BODY).await;
        assert_eq!(capped.bytes.len(), MAX_RESPONSE_BODY);
        assert!(capped.truncated);
        assert_eq!(capped.error, None);
        let deadline = Instant::now() + Duration::from_secs(10);
        while closed.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the server never saw the connection closed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // What the server got rid of is the cap plus what the loopback socket buffers held.
        let sent = written.load(Ordering::SeqCst);
        assert!(sent < 64 * 1024 * 1024, "the server wrote {sent} bytes before the close");
    }
}
