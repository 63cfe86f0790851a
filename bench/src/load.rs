//! HTTP load: a closed loop (N keep-alive connections, each sending its next request as soon as
//! the previous answer is read) and an open loop (a constant-rate schedule whose latencies are
//! measured from each request's scheduled time, so a slow server cannot hide them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::requests::Prepared;
use super::stats::{OpenLoopInfo, Outcome, Recorder};

/// Longest a single request may take before it counts as a `timeout` error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP/1.1 keep-alive client for loopback: no proxy, a pool of `connections` per host.
pub fn client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(connections)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// Where to send, and what: the prepared requests are used in turn.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    client: reqwest::Client,
    url: Arc<str>,
    pool: Arc<[Prepared]>,
    /// With `--idempotency`: the run's key prefix; each request gets `<prefix>-<sequence>`.
    idempotency: Option<Arc<str>>,
    /// Sequence of every request sent to this target (unique keys across phases).
    sequence: Arc<AtomicU64>,
}

impl HttpTarget {
    pub fn new(client: reqwest::Client, url: String, pool: Vec<Prepared>, idempotency: Option<String>) -> Self {
        Self {
            client,
            url: url.into(),
            pool: pool.into(),
            idempotency: idempotency.map(Into::into),
            sequence: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The same target with a freshly signed pool (signatures expire), same sequence.
    pub fn with_pool(&self, pool: Vec<Prepared>) -> Self {
        Self { pool: pool.into(), ..self.clone() }
    }

    /// Sends the next request and reads the whole answer (so the connection is reused).
    async fn send_next(&self) -> Outcome {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let index = usize::try_from(sequence % self.pool.len().max(1) as u64).unwrap_or(0);
        let Some(prepared) = self.pool.get(index) else { return Outcome::Failed("no prepared request".to_owned()) };
        let mut request = self.client.post(&*self.url).headers(prepared.headers.clone()).body(prepared.body.clone());
        if let Some(prefix) = &self.idempotency {
            request = request.header("idempotency-key", format!("{prefix}-{sequence}"));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Outcome::Failed(transport(&error)),
        };
        let status = response.status();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return Outcome::Failed(format!("reading the answer: {}", transport(&error))),
        };
        match (status, replayed) {
            (StatusCode::ACCEPTED, false) => Outcome::Accepted,
            (StatusCode::ACCEPTED, true) => Outcome::Replayed,
            _ => Outcome::Failed(problem(status, &body)),
        }
    }
}

/// `HTTP 503 overloaded`: the status and the last segment of the problem's `type`, if any.
pub fn problem(status: StatusCode, body: &[u8]) -> String {
    let kind = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(|t| t.rsplit('/').next().unwrap_or(t).to_owned()));
    match kind {
        Some(kind) => format!("HTTP {} {kind}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

fn transport(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".to_owned()
    } else if error.is_connect() {
        "connect error".to_owned()
    } else {
        "transport error".to_owned()
    }
}

/// `connections` workers each send-and-wait until `duration` is over. Returns the merged
/// counts and the wall time until the last answer.
pub async fn closed_loop(
    target: &HttpTarget,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<(Recorder, Duration)> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        let target = target.clone();
        workers.spawn(async move {
            let mut recorder = Recorder::new()?;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = target.send_next().await;
                recorder.record(outcome, sent.elapsed());
            }
            anyhow::Ok(recorder)
        });
    }
    let mut total = Recorder::new()?;
    while let Some(result) = workers.join_next().await {
        total.merge(&result??)?;
    }
    Ok((total, start.elapsed()))
}

/// Launches requests at `rate` per second for `duration`, each at its scheduled time whatever
/// became of earlier ones; at most `cap` in flight (beyond it a request is counted as missed,
/// not sent). Latency runs from the scheduled time.
pub async fn open_loop(
    target: &HttpTarget,
    rate: f64,
    duration: Duration,
    cap: usize,
) -> anyhow::Result<(Recorder, Duration, OpenLoopInfo)> {
    anyhow::ensure!(rate > 0.0, "the open-loop rate must be above zero");
    let scheduled_total = (rate * duration.as_secs_f64()).round() as u64;
    let mut info = OpenLoopInfo {
        target_rate: rate,
        scheduled: scheduled_total,
        missed: 0,
        in_flight_cap: cap,
        max_launch_lag: Duration::ZERO,
    };
    let mut recorder = Recorder::new()?;
    let mut in_flight: JoinSet<(Outcome, Duration)> = JoinSet::new();
    let start = Instant::now();
    for n in 0..scheduled_total {
        let scheduled = start + Duration::from_secs_f64(n as f64 / rate);
        let now = Instant::now();
        if scheduled > now {
            tokio::time::sleep_until(scheduled).await;
        } else {
            info.max_launch_lag = info.max_launch_lag.max(now - scheduled);
            if n % 64 == 0 {
                // Behind schedule: let the request tasks run too.
                tokio::task::yield_now().await;
            }
        }
        while let Some(done) = in_flight.try_join_next() {
            let (outcome, latency) = done?;
            recorder.record(outcome, latency);
        }
        if in_flight.len() >= cap {
            info.missed += 1;
            continue;
        }
        let target = target.clone();
        in_flight.spawn(async move {
            let outcome = target.send_next().await;
            (outcome, scheduled.elapsed())
        });
    }
    while let Some(done) = in_flight.join_next().await {
        let (outcome, latency) = done?;
        recorder.record(outcome, latency);
    }
    Ok((recorder, start.elapsed(), info))
}
