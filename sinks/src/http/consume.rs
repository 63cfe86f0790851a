//! The HTTP sink's consumer: reads commands (read_committed), hands them to delivery tasks one
//! at a time per correlation id, stores an offset once everything before it is finished, and
//! holds under rebalances: a revoked partition's jobs are dropped inside the callback, its
//! deliveries in flight end (at the next safe point) before the callback returns, and what they
//! finished is committed there, so the next owner starts right after and nothing is delivered by
//! two owners.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use interchange_core::headers::Received;
use interchange_core::kafka::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::deliver::{Context, Job};
use super::route::{self, Route};
use crate::config::SinkConfig;
use crate::error::SinkError;
use crate::metrics::{lag_gauge, LagGauge, SinkMetrics};
use crate::ordering::{Entry, Flow, Ticket};

/// Most records read but not finished before the sink stops reading.
const MAX_IN_FLIGHT: usize = 10_000;

/// The `partner` label of dead letters for partners no sink serves (a command may name anything:
/// labels stay bounded).
const UNSERVED: &str = "(unserved)";

/// The consumer group a sink runs in and how it stops.
pub(super) struct Group {
    pub(super) name: String,
    pub(super) partitions: i32,
    pub(super) config: SinkConfig,
    /// Stop reading and drain.
    pub(super) stop: CancellationToken,
}

/// How the tasks of one partition stop when it is revoked.
#[derive(Clone)]
struct PartitionStop {
    /// At the next safe point: before an attempt, in a backoff, a breaker or a rate-limit wait,
    /// never in the middle of a request (a child of the sink's drain deadline).
    soft: CancellationToken,
    /// At once, dropping a request in flight: only when the wait for them ran out or the
    /// partitions were lost (another member may own them already).
    hard: CancellationToken,
}

/// The consumer's view of the group, shared by the consumer loop, the delivery tasks and the
/// rebalance callbacks (which run inside `recv`, on the loop's task).
struct GroupContext {
    ctx: Arc<Context>,
    topic: String,
    partitions: i32,
    /// How long a revocation waits for the revoked partitions' deliveries in flight.
    revoke_wait: Duration,
    joined: AtomicBool,
    flow: Mutex<Flow<Job>>,
    /// Signalled whenever a task ends (the revocation waits on it).
    ended: Condvar,
    /// Wakes the consumer loop when a task ends.
    wake: tokio::sync::Notify,
    stops: Mutex<HashMap<i32, PartitionStop>>,
    /// This sink's rows of the lag gauge.
    lag: LagGauge,
    /// Per partition, the end of the log when this instance was assigned it: records from
    /// there on were never read by an earlier owner (`Job::fresh`).
    fresh_from: Mutex<HashMap<i32, i64>>,
}

impl GroupContext {
    fn with_flow<R>(&self, f: impl FnOnce(&mut Flow<Job>) -> R) -> Option<R> {
        self.flow.lock().ok().map(|mut flow| f(&mut flow))
    }

    fn in_flight(&self) -> usize {
        self.with_flow(|f| f.in_flight()).unwrap_or(0)
    }

    fn stop_for(&self, partition: i32) -> PartitionStop {
        let fresh = || PartitionStop { soft: self.ctx.shutdown.child_token(), hard: CancellationToken::new() };
        match self.stops.lock() {
            Ok(mut stops) => stops.entry(partition).or_insert_with(fresh).clone(),
            Err(_) => fresh(),
        }
    }

    /// A task ended: finish it in the flow and wake whoever waits.
    fn ended(&self, ticket: Ticket, key: Option<&str>, finished: bool) {
        self.with_flow(|f| f.complete(ticket, key, finished));
        self.ended.notify_all();
        self.wake.notify_one();
    }

    /// Waits (blocking: this runs in the rebalance callback) until none of `ids` runs or `limit`
    /// passed; returns how many still run.
    fn wait_for(&self, ids: &[u64], limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let wait = || {
            let Ok(mut flow) = self.flow.lock() else { return 0 };
            loop {
                let left = flow.still_running(ids);
                let now = Instant::now();
                if left == 0 || now >= deadline {
                    return left;
                }
                match self.ended.wait_timeout(flow, deadline - now) {
                    Ok((f, _)) => flow = f,
                    Err(_) => return 0,
                }
            }
        };
        // Let the runtime move this worker's other tasks (the deliveries awaited) elsewhere.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    fn owned(&self, consumer: &BaseConsumer<Self>, except: &[i32]) -> usize {
        consumer.assignment().map_or(0, |a| {
            a.elements().iter().filter(|e| e.topic() == self.topic && !except.contains(&e.partition())).count()
        })
    }

    fn set_share(&self, owned: usize) {
        self.ctx.set_share(owned, usize::try_from(self.partitions).unwrap_or(1));
    }

    /// Partitions leave this member (all of them, or some with cooperative rebalancing).
    fn revoke(&self, consumer: &BaseConsumer<Self>, revoked: &TopicPartitionList) {
        let partitions: Vec<i32> =
            revoked.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect();
        if partitions.is_empty() {
            return;
        }
        // No more tokens for what leaves: the rate share follows the assignment at once.
        self.set_share(self.owned(consumer, &partitions));
        let lost = consumer.assignment_lost();
        let revocation = self.with_flow(|f| f.revoke(&partitions)).unwrap_or_default();
        let stops: Vec<PartitionStop> =
            self.stops.lock().map(|mut s| partitions.iter().filter_map(|p| s.remove(p)).collect()).unwrap_or_default();
        for stop in &stops {
            stop.soft.cancel();
        }
        let limit = if lost { Duration::ZERO } else { self.revoke_wait };
        let cut = self.wait_for(&revocation.running, limit);
        if cut > 0 {
            for stop in &stops {
                stop.hard.cancel();
            }
        }
        let ended = revocation.running.len() - cut;
        let positions = self.with_flow(|f| f.forget(&partitions)).unwrap_or_default();
        let label = SinkMetrics::so(&self.ctx.sink.name, "dropped");
        let revoked_jobs = &self.ctx.metrics.revoked_jobs;
        revoked_jobs.get_or_create(&label).inc_by(u64::try_from(revocation.dropped).unwrap_or(0));
        revoked_jobs
            .get_or_create(&SinkMetrics::so(&self.ctx.sink.name, "ended"))
            .inc_by(u64::try_from(ended).unwrap_or(0));
        revoked_jobs
            .get_or_create(&SinkMetrics::so(&self.ctx.sink.name, "cut_off"))
            .inc_by(u64::try_from(cut).unwrap_or(0));
        // Commit what was finished, so the next owner starts right after it (not when lost:
        // the group moved on, and the commit would be refused).
        if !lost && !positions.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (partition, offset) in &positions {
                let _ = tpl.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset));
            }
            // Stored too: librdkafka commits the stored offsets of partitions it unassigns
            // (auto-commit), which would otherwise take an older one back.
            if let Err(error) = consumer.store_offsets(&tpl) {
                tracing::warn!(%error, sink = %self.ctx.sink.name, "storing revoked partitions' offsets");
            }
            if let Err(error) = consumer.commit(&tpl, CommitMode::Sync) {
                tracing::warn!(%error, sink = %self.ctx.sink.name, "committing revoked partitions");
            }
        }
        tracing::info!(
            sink = %self.ctx.sink.name, ?partitions, lost, dropped = revocation.dropped, ended, cut_off = cut,
            "partitions revoked: their queued jobs dropped, deliveries in flight ended, offsets committed"
        );
    }
}

impl rdkafka::ClientContext for GroupContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.lag.update(statistics);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.revoke(consumer, partitions);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            for element in list.elements() {
                // Unknown end: every record counts as possibly attempted (never skipped).
                let end = consumer
                    .fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(5))
                    .map_or(i64::MAX, |(_, high)| high);
                if let Ok(mut fresh) = self.fresh_from.lock() {
                    fresh.insert(element.partition(), end);
                }
            }
        }
        if matches!(rebalance, Rebalance::Assign(_)) {
            // After the (incremental) assign: the whole assignment, whatever the protocol.
            self.set_share(self.owned(consumer, &[]));
            self.joined.store(true, Ordering::Release);
        }
    }
}

/// Starts the delivery of `entry` in its own task.
fn spawn_delivery(ctx: &Arc<Context>, group: &Arc<GroupContext>, entry: Entry<Job>) {
    let stop = group.stop_for(entry.ticket.partition);
    let (ctx, group) = (Arc::clone(ctx), Arc::clone(group));
    tokio::spawn(async move {
        let finished = tokio::select! {
            () = stop.hard.cancelled() => false,
            finished = ctx.run_job(&entry.item, &stop.soft) => finished,
        };
        group.ended(entry.ticket, Some(&entry.key), finished);
    });
}

/// Dead-letters a record that cannot be delivered (not a readable command, or for a partner no
/// sink serves), naming `partner` (empty when unknown), in its own task.
fn spawn_dead_letter(
    ctx: &Arc<Context>,
    group: &Arc<GroupContext>,
    ticket: Ticket,
    job: Job,
    partner: String,
    reason: String,
) {
    group.with_flow(|f| f.run_unkeyed(ticket));
    let stop = group.stop_for(ticket.partition);
    let (ctx, group) = (Arc::clone(ctx), Arc::clone(group));
    tokio::spawn(async move {
        let ok = tokio::select! {
            () = stop.hard.cancelled() => false,
            result = ctx.dead_letter(&job, &partner, "PERMANENT", &reason) => result.is_ok(),
        };
        group.ended(ticket, None, ok);
    });
}

pub(super) async fn consume(ctx: Arc<Context>, kafka: KafkaSettings, group: Group) -> Result<(), SinkError> {
    let partitions = group.partitions;
    let session = group.config.sink_session_timeout.as_millis();
    // read_committed, offsets stored by hand once everything before them is finished, and
    // committed (what was stored) every second.
    let config = kafka
        .read_committed("hub-sink", &group.name)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("session.timeout.ms", session.to_string())
        .set("heartbeat.interval.ms", (session / 5).max(100).to_string())
        // Incremental rebalancing: a member joining or leaving moves only the partitions that
        // change owner; the others keep flowing (all members must use it: see the README).
        .set("partition.assignment.strategy", "cooperative-sticky")
        // Deliveries run at HTTP speed: prefetching librdkafka's defaults (100,000 records per
        // partition, 64 MiB) buys nothing and held 0.5 GiB with a backlog of a million.
        .set("queued.min.messages", "1000")
        .set("queued.max.messages.kbytes", "16384")
        .set("statistics.interval.ms", "5000")
        // A read_committed fetch otherwise waits up to 500 ms when nothing committed is there.
        .set("fetch.wait.max.ms", "10");
    let context = GroupContext {
        ctx: Arc::clone(&ctx),
        topic: ctx.sink.input.clone(),
        partitions,
        revoke_wait: group.config.sink_drain_timeout,
        joined: AtomicBool::new(false),
        flow: Mutex::new(Flow::default()),
        ended: Condvar::new(),
        wake: tokio::sync::Notify::new(),
        stops: Mutex::new(HashMap::new()),
        lag: lag_gauge(ctx.metrics.lag.clone(), &ctx.sink.name),
        fresh_from: Mutex::new(HashMap::new()),
    };
    let consumer: StreamConsumer<GroupContext> =
        config.create_with_context(context).map_err(|source| SinkError::Kafka { operation: "consumer", source })?;
    consumer
        .subscribe(&[ctx.sink.input.as_str()])
        .map_err(|source| SinkError::Kafka { operation: "subscribe", source })?;
    let shared = Arc::clone(consumer.context());
    let mut share_check = tokio::time::interval(Duration::from_secs(1));
    let mut last_owned = usize::MAX;
    // Jobs whose turn has come wait in the flow until their partner's concurrency has room (each
    // partner is a lane with its own limit): a task per waiting job would hold a whole delivery's
    // state (kilobytes) for each of thousands.
    let served: Vec<&str> = ctx.partners.iter().map(|p| p.name.as_str()).collect();
    let mut draining = false;
    loop {
        let stores = shared.with_flow(Flow::take_stores).unwrap_or_default();
        if !stores.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (partition, offset) in stores {
                let _ = tpl.add_partition_offset(&ctx.sink.input, partition, Offset::Offset(offset));
            }
            let _ = consumer.store_offsets(&tpl);
        }
        if !draining {
            while let Some(entry) = shared.with_flow(|f| f.next_ready_in(|lane| ctx.concurrency(lane))).flatten() {
                spawn_delivery(&ctx, &shared, entry);
            }
        }
        if draining && shared.with_flow(|f| f.running()).unwrap_or(0) == 0 {
            break;
        }
        tokio::select! {
            () = group.stop.cancelled(), if !draining => {
                // Unready first (the health endpoint sees the token), then let deliveries in
                // flight finish until the drain deadline; queued ones wait for the next owner.
                draining = true;
                let running = shared.with_flow(|f| f.running()).unwrap_or(0);
                tracing::info!(sink = %ctx.sink.name, running, "draining deliveries in flight");
                let (hard, wait) = (ctx.shutdown.clone(), group.config.sink_drain_timeout);
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    hard.cancel();
                });
            }
            _ = share_check.tick() => {
                let owned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
                if owned != last_owned {
                    tracing::info!(sink = %ctx.sink.name, owned, partitions, "partner rate share follows the assignment");
                    last_owned = owned;
                }
                ctx.set_share(owned, usize::try_from(partitions).unwrap_or(1));
                let label = SinkMetrics::s(&ctx.sink.name);
                ctx.metrics.assigned.get_or_create(&label).set(i64::try_from(owned).unwrap_or(0));
                ctx.metrics.in_flight.get_or_create(&label).set(i64::try_from(shared.in_flight()).unwrap_or(0));
                // A member of a group with more members than partitions owns none and is still ready.
                let joined = shared.joined.load(Ordering::Acquire);
                ctx.health.set(&ctx.sink.name, if joined { Ok(()) } else { Err("waiting for the group's assignment".to_owned()) });
            }
            () = shared.wake.notified() => {}
            message = consumer.recv(), if !draining && shared.in_flight() < MAX_IN_FLIGHT => {
                let message = match message {
                    Ok(m) => m.detach(),
                    Err(error) => {
                        tracing::warn!(%error, "sink consumer");
                        continue;
                    }
                };
                let (partition, offset) = (message.partition(), message.offset());
                let Some(ticket) = shared.with_flow(|f| f.read(partition, offset)) else { continue };
                let kind = Received::of(&message).event_type.unwrap_or_default();
                let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                if !ctx.commands.contains(&kind) {
                    // Not for this sink: finished, and it never held its key.
                    shared.with_flow(|f| f.skip(ticket));
                    continue;
                }
                let decoded = match message.payload() {
                    Some(payload) => loop {
                        match ctx.reader.decode_json(payload).await {
                            Ok((contract, json)) if contract == kind => break Ok(json),
                            Ok((contract, _)) => break Err(format!("event-type {kind:?} but the record is a {contract}")),
                            // The registry is unreachable: wait for it rather than dead-letter.
                            Err(error) if error.is_transient() && !group.stop.is_cancelled() => {
                                tracing::warn!(%error, sink = %ctx.sink.name, "schema registry; retrying");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            Err(error) => break Err(error.to_string()),
                        }
                    },
                    None => Err("a record without a value".to_owned()),
                };
                let fresh = shared.fresh_from.lock().ok().and_then(|f| f.get(&partition).copied()).is_some_and(|end| offset >= end);
                let job = Job { partition, offset, key: key.clone(), message, contract: kind, command: Value::Null, lane: 0, fresh };
                match decoded {
                    Ok(command) => {
                        let partner = command["partner"].as_str().unwrap_or_default().to_owned();
                        let at = (ctx.sink.input.as_str(), partition, offset);
                        match route::route(&served, &ctx.elsewhere, &job.contract, &partner, at) {
                            Route::Deliver(lane) => {
                                shared.with_flow(|f| f.push_in(ticket, &key, lane, Job { command, lane, ..job }));
                            }
                            // Another sink delivers it: finished here, and it never held its key.
                            Route::Elsewhere => {
                                shared.with_flow(|f| f.skip(ticket));
                            }
                            Route::Unserved(reason) => {
                                tracing::warn!(sink = %ctx.sink.name, %reason, "a command for a partner no sink serves: dead-lettered");
                                ctx.metrics.dead_letters.get_or_create(&SinkMetrics::po(UNSERVED, "PERMANENT")).inc();
                                spawn_dead_letter(&ctx, &shared, ticket, Job { command, ..job }, partner, reason);
                            }
                        }
                    }
                    Err(reason) => {
                        let reason = format!("not a readable command: {reason}");
                        spawn_dead_letter(&ctx, &shared, ticket, job, String::new(), reason);
                    }
                }
            }
        }
    }
    // Commit what was stored before leaving the group, so the next owner starts right after it.
    if let Err(error) = tokio::task::block_in_place(|| consumer.commit_consumer_state(CommitMode::Sync)) {
        tracing::debug!(%error, sink = %ctx.sink.name, "final commit (nothing stored is fine)");
    }
    tracing::info!(sink = %ctx.sink.name, "sink stopped");
    Ok(())
}
