//! Open-loop load for the flow bench: request `n` of a phase is launched at `start + n / rate`
//! whatever became of earlier ones, with its own correlation id (`<run>-<sequence>`) and
//! Idempotency-Key, and every time is taken from its scheduled time (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::super::requests::Prepared;
use super::ledger::{Ledger, ACCEPTED, FAILED, MISSED, REPLAYED};

/// Where to send, and what.
#[derive(Debug, Clone)]
pub struct Driver {
    pub client: reqwest::Client,
    pub url: Arc<str>,
    pub pool: Arc<[Prepared]>,
    pub idempotency: bool,
    pub ledger: Arc<Ledger>,
    /// Failed requests by kind (`HTTP 503`, `timeout`, ...).
    pub errors: Arc<Mutex<BTreeMap<String, u64>>>,
}

/// What the schedule itself saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadInfo {
    pub scheduled: usize,
    pub missed: usize,
    /// Largest delay between a request's scheduled time and its launch.
    pub max_launch_lag: Duration,
}

impl Driver {
    async fn send(&self, sequence: usize) {
        let Some(slot) = self.ledger.slots.get(sequence) else { return };
        let index = sequence % self.pool.len().max(1);
        let Some(prepared) = self.pool.get(index) else { return };
        let correlation_id = self.ledger.correlation_id(sequence);
        let mut request = self
            .client
            .post(&*self.url)
            .headers(prepared.headers.clone())
            .header("x-correlation-id", &correlation_id)
            .body(prepared.body.clone());
        if self.idempotency {
            request = request.header("idempotency-key", &correlation_id);
        }
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let replayed = response.headers().contains_key("idempotent-replayed");
                let read = response.bytes().await;
                match (status, replayed, read) {
                    (StatusCode::ACCEPTED, false, Ok(_)) => Ok(ACCEPTED),
                    (StatusCode::ACCEPTED, true, Ok(_)) => Ok(REPLAYED),
                    (_, _, Err(_)) => Err("reading the answer".to_owned()),
                    (status, _, Ok(body)) => Err(super::super::load::problem(status, &body)),
                }
            }
            Err(error) if error.is_timeout() => Err("timeout".to_owned()),
            Err(error) if error.is_connect() => Err("connect error".to_owned()),
            Err(_) => Err("transport error".to_owned()),
        };
        slot.answered.store(self.ledger.now(), Ordering::Relaxed);
        match outcome {
            Ok(kind) => slot.outcome.store(kind, Ordering::Relaxed),
            Err(kind) => {
                slot.outcome.store(FAILED, Ordering::Relaxed);
                if let Ok(mut errors) = self.errors.lock() {
                    *errors.entry(kind).or_insert(0) += 1;
                }
            }
        }
    }

    /// Sends requests `first..first + rate × duration` on schedule from `start`; at most `cap`
    /// in flight (beyond it a request is marked missed, not sent). Returns when every answer is in.
    pub async fn open_loop(
        &self,
        first: usize,
        rate: f64,
        duration: Duration,
        start: Instant,
        cap: usize,
    ) -> anyhow::Result<LoadInfo> {
        anyhow::ensure!(rate > 0.0, "the rate must be above zero");
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let total = (rate * duration.as_secs_f64()).round() as usize;
        anyhow::ensure!(first + total <= self.ledger.slots.len(), "the ledger is too small for this phase");
        let mut info = LoadInfo { scheduled: total, ..LoadInfo::default() };
        let mut in_flight = JoinSet::new();
        for n in 0..total {
            #[allow(clippy::cast_precision_loss)]
            let scheduled = start + Duration::from_secs_f64(n as f64 / rate);
            let now = Instant::now();
            if scheduled > now {
                tokio::time::sleep_until(scheduled).await;
            } else {
                info.max_launch_lag = info.max_launch_lag.max(now - scheduled);
                if n % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            while let Some(done) = in_flight.try_join_next() {
                done?;
            }
            let sequence = first + n;
            let Some(slot) = self.ledger.slots.get(sequence) else { break };
            slot.scheduled.store(self.ledger.stamp(scheduled), Ordering::Relaxed);
            if in_flight.len() >= cap {
                slot.outcome.store(MISSED, Ordering::Relaxed);
                info.missed += 1;
                continue;
            }
            let driver = self.clone();
            in_flight.spawn(async move { driver.send(sequence).await });
        }
        while let Some(done) = in_flight.join_next().await {
            done?;
        }
        Ok(info)
    }
}
