//! The consume-transform-produce loop: batches of input records, their outputs, the state
//! updates and the consumed offsets commit in one Kafka transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interchange_core::clock::now_millis;
use interchange_core::headers::Received;
use interchange_core::topology::CommitPolicy;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::config::Mode;
use super::consumer::RebalanceContext;
use super::delivery::{self, DeliveryContext, InputKey, Origin, Poison, Quarantine, Written};
use super::error::{react, ProcessorError, Reaction};
use super::metrics::{MismatchLabels, OutcomeLabels};
use super::outputs::{self, Outputs, Record};
use super::shared::Shared;
use super::store::Store;
use crate::machine::{Input, Machine, Millis, Now, Step};

pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The open transaction's bookkeeping.
#[derive(Debug, Default)]
struct Batch {
    open: bool,
    started: Option<Instant>,
    records: u64,
    /// Last offset read per (topic, partition).
    offsets: HashMap<(String, i32), i64>,
    /// Trace contexts of (the first few) records in the batch: the commit span links to them.
    traces: Vec<String>,
    /// Something in the batch failed (a refused record, an abortable error): abort and redo it.
    redo: bool,
}

/// Most records a commit span links to.
const MAX_LINKS: usize = 32;

/// The loop's moving parts.
pub(crate) struct Loop<'a, M: Machine> {
    pub(super) shared: &'a Shared<M>,
    /// Which of the processor's loops this is (`--threads`).
    pub(super) lane: usize,
    pub(super) consumer: BaseConsumer<RebalanceContext>,
    producer: BaseProducer<DeliveryContext>,
    pub(super) store: Store<M::State>,
    pub(super) assigned: Vec<i32>,
    /// Committed offset of every owned input partition (as of the assignment, then of each
    /// commit): a transaction with no input of its own (timers, retirements) commits these with
    /// the group metadata, so a member the group has moved on from is fenced.
    pub(super) positions: HashMap<(String, i32), i64>,
    /// When remembered retirements were last expired.
    last_expiry: Instant,
    batch: Batch,
    /// Inputs whose outputs the broker refused, and what the redo does about them.
    pub(super) quarantine: Quarantine,
    /// What the records sent now are written for.
    current: Option<Origin>,
}

impl<'a, M: Machine> Loop<'a, M> {
    pub(super) fn new(
        shared: &'a Shared<M>,
        lane: usize,
        consumer: BaseConsumer<RebalanceContext>,
        producer: BaseProducer<DeliveryContext>,
    ) -> Self {
        Self {
            shared,
            lane,
            consumer,
            producer,
            store: Store::new(shared.retention_ms, shared.remember_ms),
            assigned: Vec::new(),
            positions: HashMap::new(),
            last_expiry: Instant::now(),
            batch: Batch::default(),
            quarantine: Quarantine::default(),
            current: None,
        }
    }

    pub(super) fn eos(&self) -> bool {
        self.shared.mode == Mode::ExactlyOnce
    }

    pub(super) fn labels(&self, outcome: &'static str) -> OutcomeLabels {
        OutcomeLabels { processor: self.shared.name.clone(), outcome }
    }

    /// Runs until `shutdown`; the open transaction is committed first.
    pub(super) fn run(&mut self, shutdown: &CancellationToken) -> Result<(), ProcessorError> {
        if self.eos() {
            self.retrying("init transactions", |l| l.producer.init_transactions(CALL_TIMEOUT))?;
        }
        let adaptive = self.shared.commit == CommitPolicy::Adaptive;
        while !shutdown.is_cancelled() {
            // With a transaction open, an adaptive loop only takes what is already waiting.
            let wait = if adaptive && self.batch.open { Duration::ZERO } else { Duration::from_millis(50) };
            let message = self.consumer.poll(wait).map(|r| r.map(|m| m.detach()));
            let idle = message.is_none();
            self.rebalanced()?;
            match message {
                Some(Ok(message)) => self.process(&message).map_err(|e| at_record(&message, e))?,
                Some(Err(error)) => tracing::warn!(%error, "consumer"),
                None => {}
            }
            if !self.batch.redo {
                self.timers()?;
            }
            if !self.batch.redo {
                self.retirements()?;
            }
            if self.batch.redo {
                self.redo()?;
                continue;
            }
            let due = self.batch.started.is_some_and(|s| s.elapsed() >= self.shared.commit_interval);
            if self.batch.open && (self.batch.records >= self.shared.max_batch || due || (adaptive && idle)) {
                self.commit()?;
            }
        }
        self.commit()?;
        Ok(())
    }

    /// Calls `f` until it succeeds or fails for good.
    pub(super) fn retrying(
        &mut self,
        operation: &'static str,
        mut f: impl FnMut(&mut Self) -> Result<(), KafkaError>,
    ) -> Result<(), ProcessorError> {
        let mut attempt = 0;
        loop {
            match f(self) {
                Ok(()) => return Ok(()),
                Err(source) if react(&source) == Reaction::Retry && attempt < 10 => {
                    attempt += 1;
                    tracing::warn!(%source, operation, attempt, "retrying");
                    std::thread::sleep(Duration::from_millis(200 * attempt));
                }
                Err(source) => return Err(ProcessorError::Kafka { operation, source }),
            }
        }
    }

    fn begin(&mut self) -> Result<(), ProcessorError> {
        if self.batch.open {
            return Ok(());
        }
        if self.eos() {
            self.retrying("begin transaction", |l| l.producer.begin_transaction())?;
        }
        self.batch.open = true;
        self.batch.started = Some(Instant::now());
        Ok(())
    }

    /// Produces one record into the open transaction, waiting while the local queue is full. A
    /// record refused here (over the client's `message.max.bytes`) or a transaction no longer
    /// usable marks the batch for a redo; only a fatal error (fenced) is returned.
    fn send(&mut self, out: Record, dead_letter: bool) -> Result<(), ProcessorError> {
        if self.batch.redo {
            return Ok(());
        }
        let Some(origin) = self.current.clone() else {
            return Err(ProcessorError::Config("a record written for no input".to_owned()));
        };
        let written = Arc::new(Written { origin, dead_letter });
        let topic = out.topic.as_str();
        let mut record = BaseRecord::with_opaque_to(topic, Arc::clone(&written)).key(&out.key).headers(out.headers);
        if let Some(payload) = &out.payload {
            record = record.payload(payload);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    serve_or_wait(&self.producer, Duration::from_millis(1));
                }
                Err((error, _)) if delivery::record_fault(&error) => {
                    tracing::warn!(topic, %error, origin = ?written.origin, "record refused; redoing the batch without its input");
                    self.quarantine.note(&[delivery::Refusal { written, error }], None)?;
                    self.batch.redo = true;
                    return Ok(());
                }
                Err((source, _)) if react(&source) == Reaction::Fatal => {
                    return Err(ProcessorError::Kafka { operation: "produce", source })
                }
                Err((source, _)) => {
                    tracing::warn!(topic, %source, "produce failed; redoing the batch");
                    self.batch.redo = true;
                    return Ok(());
                }
            }
        }
    }

    /// Handles delivery reports so far: refusals go to the quarantine and mark the batch for a
    /// redo. `alone` is the input whose records alone were in flight. True when all were delivered.
    fn check_deliveries(&mut self, alone: Option<&InputKey>) -> Result<bool, ProcessorError> {
        let refusals = self.producer.context().take();
        if refusals.is_empty() {
            return Ok(true);
        }
        let (faults, others): (Vec<_>, Vec<_>) = refusals.into_iter().partition(|r| delivery::record_fault(&r.error));
        for refusal in &others {
            tracing::warn!(error = %refusal.error, origin = ?refusal.written.origin, "a record was not delivered; redoing the batch");
        }
        for refusal in &faults {
            tracing::warn!(error = %refusal.error, origin = ?refusal.written.origin, "the broker refused a record");
        }
        self.quarantine.note(&faults, alone)?;
        self.batch.redo = true;
        Ok(false)
    }

    /// Waits for every record in flight and handles their delivery reports.
    fn settle(&mut self, alone: Option<&InputKey>) -> Result<bool, ProcessorError> {
        if let Err(error) = self.drain() {
            tracing::warn!(%error, "records not acknowledged in time; redoing the batch");
            self.batch.redo = true;
            return Ok(false);
        }
        self.check_deliveries(alone)
    }

    /// Aborts the batch and redoes it from the committed offsets; what the broker refused is
    /// dead-lettered by the redo.
    fn redo(&mut self) -> Result<(), ProcessorError> {
        let _ = self.drain();
        self.check_deliveries(None)?;
        self.shared.metrics.transactions.get_or_create(&self.labels("redone")).inc();
        self.abort_batch(true)
    }

    /// Processes one input record; an input whose outputs the broker refused before is
    /// dead-lettered instead, and a suspected one is processed alone to find out.
    fn process(&mut self, message: &OwnedMessage) -> Result<(), ProcessorError> {
        if !self.assigned.contains(&message.partition()) {
            return Ok(());
        }
        self.begin()?;
        self.batch.records += 1;
        self.batch.offsets.insert((message.topic().to_owned(), message.partition()), message.offset());
        let input: InputKey = (message.topic().to_owned(), message.partition(), message.offset());
        self.current = Some(Origin::Input(input.clone()));
        if let Some(poison) = self.quarantine.poisoned.get(&input).cloned() {
            return self.dead_letter_refused(message, &poison);
        }
        if !self.quarantine.suspects.contains_key(&input) {
            return self.process_record(message);
        }
        // Alone: nothing else in flight before or with its records.
        if !self.settle(None)? {
            return Ok(());
        }
        self.process_record(message)?;
        if !self.batch.redo && self.settle(Some(&input))? {
            self.quarantine.suspects.remove(&input);
        }
        Ok(())
    }

    /// Dead-letters an input whose outputs the broker refused; bare when even its full dead
    /// letter was refused.
    fn dead_letter_refused(&mut self, message: &OwnedMessage, poison: &Poison) -> Result<(), ProcessorError> {
        let reason = format!("its outputs cannot be written: {}", poison.cause);
        if poison.bare {
            let reason = format!("{reason} (value and headers left out: the whole dead letter was refused too)");
            return self.dead_letter(&outputs::bare(message), "PERMANENT", &reason);
        }
        self.dead_letter(message, "PERMANENT", &reason)
    }

    fn process_record(&mut self, message: &OwnedMessage) -> Result<(), ProcessorError> {
        let decoded = match message.payload() {
            None => Err("a record without a value".to_owned()),
            Some(payload) => match self.shared.codec.decode(payload) {
                Ok(decoded) => Ok(decoded),
                Err(super::codec::DecodeError::Unavailable(reason)) => {
                    // Not the record's fault: redo the batch once the registry answers.
                    tracing::warn!(reason, "schema registry unavailable; aborting the batch");
                    std::thread::sleep(Duration::from_secs(1));
                    return self.abort_batch(true);
                }
                Err(error) => Err(error.to_string()),
            },
        };
        let input = decoded.and_then(|(contract, json)| self.shared.machine.read(&contract, json));
        let Input { event, id: event_id, key: correlation_id } = match input {
            Ok(input) => input,
            Err(reason) => return self.dead_letter(message, "PERMANENT", &reason),
        };
        let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned());
        if key.as_deref() != Some(correlation_id.as_str()) {
            let reason = format!(
                "record key {key:?} is not the correlation id {correlation_id:?}, so it may sit on the wrong partition"
            );
            return self.dead_letter(message, "PERMANENT", &reason);
        }
        // Event time for the history; processing time (this clock) for deadlines.
        let processing = Millis(now_millis());
        let now = Now { event: message.timestamp().to_millis().map_or(processing, Millis), processing };
        let Received { traceparent: incoming, tracestate, .. } = Received::of(message);
        // The consumer span, child of the producer's; the records written carry its context.
        let span = tracing::info_span!(
            "process",
            otel.name = %format!("process {}", message.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.destination.name = %message.topic(),
            messaging.destination.partition.id = message.partition(),
            messaging.kafka.offset = message.offset(),
            messaging.consumer.group.name = %self.shared.group,
            correlation_id = %correlation_id,
            trace_id = incoming.as_deref().map_or("", interchange_core::telemetry::trace_id),
        );
        interchange_core::telemetry::parent(&span, incoming.as_deref(), tracestate.as_deref());
        let _entered = span.enter();
        let traceparent = interchange_core::telemetry::traceparent(&span).or(incoming);
        if let Some(tp) = &traceparent {
            if self.batch.traces.len() < MAX_LINKS {
                self.batch.traces.push(tp.clone());
            }
        }
        self.step(message.partition(), &correlation_id, &event, &event_id, now, traceparent, Some(message))
    }

    /// Applies one event to its order and writes what the transition asks for.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        partition: i32,
        key: &str,
        event: &M::Event,
        event_id: &str,
        now: Now,
        traceparent: Option<String>,
        source: Option<&OwnedMessage>,
    ) -> Result<(), ProcessorError> {
        let shared = self.shared;
        if self.store.retired(partition, key, now_millis()) {
            let reason = "its order was finished and retired after the state retention (its state deleted): \
                          a late repeat is not taken for a new order";
            return self.refuse(partition, key, source, reason);
        }
        let state = match self.store.get(partition, key, |bytes| decode_state(shared, bytes)) {
            Ok(state) => state,
            Err(error) => {
                return self.refuse(partition, key, source, &format!("its order's state cannot be read: {error}"))
            }
        };
        match shared.machine.apply(key, state, event, event_id, now, &shared.table) {
            Step::Changed { state, emits } => {
                let written =
                    outputs::transition(shared, event_id, key, &state, &emits, traceparent.as_deref(), now_millis());
                let encoded = match written {
                    Ok(outputs) => outputs,
                    Err(error) => {
                        return self.refuse(partition, key, source, &format!("its outputs cannot be encoded: {error}"))
                    }
                };
                let label = if source.is_some() { "changed" } else { "timer" };
                self.shared.metrics.records.get_or_create(&self.labels(label)).inc();
                self.write(partition, key, encoded, state)
            }
            Step::Unchanged { reason } => {
                tracing::debug!(key, reason, "event changed nothing");
                self.shared.metrics.records.get_or_create(&self.labels("unchanged")).inc();
                Ok(())
            }
            Step::Refused { reason, kind } => match source {
                Some(message) => {
                    if let Some(mismatch) = kind {
                        // Logged with topic, partition and offset by the dead letter.
                        let labels = MismatchLabels { processor: self.shared.name.clone(), mismatch };
                        self.shared.metrics.foreign_results.get_or_create(&labels).inc();
                    }
                    self.dead_letter(message, "PERMANENT", &reason)
                }
                None => {
                    tracing::warn!(key, reason, "timer refused");
                    Ok(())
                }
            },
        }
    }

    /// An event that cannot be carried out: its input is dead-lettered; a timer is dropped.
    fn refuse(
        &mut self,
        partition: i32,
        key: &str,
        source: Option<&OwnedMessage>,
        reason: &str,
    ) -> Result<(), ProcessorError> {
        match source {
            Some(message) => self.dead_letter(message, "PERMANENT", reason),
            None => {
                tracing::error!(state_topic = %self.shared.state_topic, partition, key, reason, "deadline timer dropped");
                self.quarantine.broken_timers.insert((partition, key.to_owned()));
                Ok(())
            }
        }
    }

    fn dead_letter(&mut self, message: &OwnedMessage, class: &'static str, reason: &str) -> Result<(), ProcessorError> {
        tracing::warn!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            reason,
            "dead-lettering a record"
        );
        self.shared.metrics.records.get_or_create(&self.labels("dead_letter")).inc();
        self.shared
            .metrics
            .dead_letters
            .get_or_create(&self.labels(if class == "PERMANENT" { "permanent" } else { "exhausted" }))
            .inc();
        let record = outputs::dead_letter(self.shared, message, class, reason)?;
        self.send(record, true)
    }

    /// Sends the records of `transition` into the open transaction and stages its state in the
    /// store. Stops at the first refused record: the loop then redoes the batch.
    fn write(&mut self, partition: i32, key: &str, outputs: Outputs, state: M::State) -> Result<(), ProcessorError> {
        for record in outputs.records {
            self.send(record, false)?;
            if self.batch.redo {
                return Ok(());
            }
        }
        tracing::debug!(processor = %self.shared.name, key, status = self.shared.machine.status(&state), "transition");
        self.store.put(partition, key.to_owned(), state, outputs.deadline, outputs.terminal_at);
        Ok(())
    }

    /// Writes the tombstone of a retired order's state into the open transaction and stages the
    /// retirement in the store.
    fn tombstone(&mut self, partition: i32, key: &str) -> Result<(), ProcessorError> {
        let shared = self.shared;
        self.send(outputs::tombstone(&shared.state_topic, shared.machine.state_contract(), key), false)?;
        if !self.batch.redo {
            self.store.retire(partition, key);
        }
        Ok(())
    }

    /// Fires due deadlines through the same transactional path.
    fn timers(&mut self) -> Result<(), ProcessorError> {
        let due = self.store.due(Millis(now_millis()), 200);
        for (partition, key, deadline) in due {
            if self.batch.redo {
                break;
            }
            if !self.assigned.contains(&partition) || self.quarantine.broken_timers.contains(&(partition, key.clone()))
            {
                continue;
            }
            self.current = Some(Origin::Timer(partition, key.clone()));
            let shared = self.shared;
            let state = self.store.get(partition, &key, |bytes| decode_state(shared, bytes)).ok().flatten();
            let Some((event, id)) = shared.machine.timer(&key, deadline, state) else { continue };
            self.begin()?;
            let now = Now::at(Millis(now_millis()));
            self.step(partition, &key, &event, &id, now, None, None)?;
        }
        Ok(())
    }

    /// Retires terminal states past the retention: a tombstone on the state topic, in the same
    /// kind of transaction as everything else (fenced by the owned partitions' offsets).
    fn retirements(&mut self) -> Result<(), ProcessorError> {
        let now = now_millis();
        for (partition, key) in self.store.retire_due(now, 500) {
            if self.batch.redo {
                break;
            }
            if !self.assigned.contains(&partition) || self.quarantine.broken_timers.contains(&(partition, key.clone()))
            {
                continue;
            }
            self.current = Some(Origin::Timer(partition, key.clone()));
            self.begin()?;
            self.tombstone(partition, &key)?;
            self.shared.metrics.records.get_or_create(&self.labels("retired")).inc();
        }
        if self.last_expiry.elapsed() > Duration::from_secs(60) {
            self.store.expire_retired(now);
            self.last_expiry = Instant::now();
        }
        Ok(())
    }

    /// Commits the open transaction: outputs, state and offsets together.
    fn commit(&mut self) -> Result<(), ProcessorError> {
        if !self.batch.open {
            return Ok(());
        }
        if self.batch.redo {
            return self.redo();
        }
        let started = Instant::now();
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.batch.offsets {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
                .map_err(|source| ProcessorError::Kafka { operation: "offsets", source })?;
        }
        if self.eos() && offsets.count() == 0 {
            // A transaction of timers or retirements only: the owned partitions' committed
            // offsets, unchanged, carry the group metadata that fences a zombie.
            for ((topic, partition), offset) in &self.positions {
                if self.assigned.contains(partition) {
                    offsets
                        .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                        .map_err(|source| ProcessorError::Kafka { operation: "offsets", source })?;
                }
            }
            if offsets.count() == 0 {
                tracing::warn!(processor = %self.shared.name, "no owned partition to fence this transaction with; aborting it");
                return self.abort_batch(true);
            }
        }
        let span = tracing::info_span!(
            "commit",
            otel.name = "commit transaction",
            messaging.system = "kafka",
            messaging.consumer.group.name = %self.shared.group,
            messaging.batch.message_count = self.batch.records,
        );
        for tp in &self.batch.traces {
            interchange_core::telemetry::link(&span, tp);
        }
        let _entered = span.enter();
        // Exactly-once: the offsets join the transaction while its records are still being
        // acknowledged (two round trips overlapping the produce's instead of following it); a
        // record refused meanwhile still aborts the whole transaction below.
        if self.eos() {
            if let Err(source) = self.send_offsets(&offsets) {
                return self.commit_failed(source);
            }
        }
        // Only what the broker acknowledged commits: a refused record redoes the batch.
        if !self.settle(None)? {
            return self.redo();
        }
        let result = if self.eos() { self.end_transaction() } else { self.commit_at_least_once(&offsets) };
        match result {
            Ok(()) => {
                tracing::debug!(
                    records = self.batch.records,
                    batch_ms = self.batch.started.map_or(0, |s| s.elapsed().as_millis()),
                    commit_ms = started.elapsed().as_millis(),
                    "committed"
                );
                self.store.commit(now_millis());
                for ((topic, partition), offset) in &self.batch.offsets {
                    self.quarantine.committed(topic, *partition, *offset);
                    self.positions.insert((topic.clone(), *partition), offset + 1);
                }
                self.shared.metrics.transactions.get_or_create(&self.labels("committed")).inc();
                self.shared.metrics.commit.observe(started.elapsed().as_secs_f64());
                #[allow(clippy::cast_precision_loss)]
                self.shared.metrics.batch.observe(self.batch.records as f64);
                self.shared.set_states(self.lane, self.store.len());
                self.batch = Batch::default();
                Ok(())
            }
            Err(source) => self.commit_failed(source),
        }
    }

    /// A commit that failed: fatal (fenced) ends the process, anything else redoes the batch.
    fn commit_failed(&mut self, source: KafkaError) -> Result<(), ProcessorError> {
        match react(&source) {
            Reaction::Fatal => Err(ProcessorError::Kafka { operation: "commit", source }),
            Reaction::Retry | Reaction::AbortAndRewind => {
                tracing::warn!(%source, "commit failed; aborting and redoing the batch");
                self.redo()
            }
        }
    }

    /// Waits until every produced record is acknowledged, serving reports every
    /// [`ACK_WAIT`]. rust-rdkafka's `BaseProducer::flush` (which `commit_transaction` calls)
    /// polls in 100 ms steps that do not return early, which made every commit take at least
    /// 100 ms; with nothing in flight its flush returns at once.
    fn drain(&self) -> Result<(), KafkaError> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() > deadline {
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            serve_or_wait(&self.producer, ACK_WAIT);
        }
        Ok(())
    }

    /// Adds the consumed offsets (with the group's metadata, which fences a zombie) to the open
    /// transaction.
    fn send_offsets(&mut self, offsets: &TopicPartitionList) -> Result<(), KafkaError> {
        if offsets.count() > 0 {
            let metadata = self.consumer.group_metadata().ok_or(KafkaError::Canceled)?;
            let mut attempt = 0;
            loop {
                match self.producer.send_offsets_to_transaction(offsets, &metadata, CALL_TIMEOUT) {
                    Err(e) if react(&e) == Reaction::Retry && attempt < 5 => attempt += 1,
                    other => break other?,
                }
            }
        }
        Ok(())
    }

    /// Commits the open transaction, its records acknowledged and its offsets sent.
    fn end_transaction(&mut self) -> Result<(), KafkaError> {
        self.drain()?;
        let mut attempt = 0;
        loop {
            match self.producer.commit_transaction(CALL_TIMEOUT) {
                Err(e) if react(&e) == Reaction::Retry && attempt < 5 => attempt += 1,
                other => return other,
            }
        }
    }

    fn commit_at_least_once(&mut self, offsets: &TopicPartitionList) -> Result<(), KafkaError> {
        self.drain()?;
        if offsets.count() > 0 {
            self.consumer.commit(offsets, rdkafka::consumer::CommitMode::Sync)?;
        }
        Ok(())
    }

    /// Aborts the open transaction, forgets its state changes and, when `rewind`, moves the
    /// consumer back to the committed offsets so the batch is redone.
    pub(super) fn abort_batch(&mut self, rewind: bool) -> Result<(), ProcessorError> {
        if self.batch.open {
            if self.eos() {
                self.abort_transaction()?;
            }
            self.shared.metrics.transactions.get_or_create(&self.labels("aborted")).inc();
        }
        // Reports of records purged by the abort (or still in flight in at-least-once mode)
        // belong to the batch thrown away.
        let _ = self.drain();
        let _ = self.producer.context().take();
        self.store.abort();
        self.batch = Batch::default();
        if rewind {
            self.rewind()?;
        }
        Ok(())
    }

    /// Aborts the open transaction, retrying what may pass; a transaction that cannot be aborted
    /// (fenced, or still open after `CALL_TIMEOUT` of tries) ends the process.
    ///
    /// librdkafka's abort purges the records still queued and waits until every outstanding
    /// record's delivery report is served, and this thread is the one that serves them: so the
    /// abort is called with a short timeout, the reports are served between calls, and a
    /// timed-out call is simply made again (librdkafka resumes it). A single long abort would
    /// time out with records "remaining" however often it is retried (seen after a SIGSTOP past
    /// the session timeout in the chaos test's long run).
    fn abort_transaction(&mut self) -> Result<(), ProcessorError> {
        let deadline = Instant::now() + CALL_TIMEOUT;
        let mut attempt: u32 = 0;
        loop {
            self.serve_reports();
            match self.producer.abort_transaction(Duration::from_millis(500)) {
                Ok(()) => return Ok(()),
                Err(source) => match react(&source) {
                    Reaction::Fatal => return Err(ProcessorError::Kafka { operation: "abort transaction", source }),
                    Reaction::Retry if Instant::now() < deadline => {
                        attempt += 1;
                        if attempt % 10 == 1 {
                            tracing::warn!(%source, attempt, "abort not finished; serving delivery reports and retrying");
                        }
                    }
                    Reaction::Retry => {
                        return Err(ProcessorError::Kafka { operation: "abort transaction", source });
                    }
                    // No transaction left to abort (the failed commit ended it).
                    Reaction::AbortAndRewind => {
                        tracing::warn!(%source, "abort failed");
                        return Ok(());
                    }
                },
            }
        }
    }

    /// Serves the delivery reports that are ready (at most ~50 ms), without waiting for records
    /// still in flight.
    fn serve_reports(&self) {
        for _ in 0..50 {
            if self.producer.in_flight_count() == 0 {
                return;
            }
            serve_or_wait(&self.producer, Duration::from_millis(1));
        }
    }

    /// Moves the consumer back to the committed offsets of its assignment.
    fn rewind(&mut self) -> Result<(), ProcessorError> {
        let mut committed = None;
        self.retrying("committed offsets", |l| {
            let assignment = l.consumer.assignment()?;
            committed = Some(l.consumer.committed_offsets(assignment, CALL_TIMEOUT)?);
            Ok(())
        })?;
        let mut target = TopicPartitionList::new();
        for ((topic, partition), offset) in committed.unwrap_or_default().to_topic_map() {
            let offset = if matches!(offset, Offset::Offset(_)) { offset } else { Offset::Beginning };
            target
                .add_partition_offset(&topic, partition, offset)
                .map_err(|source| ProcessorError::Kafka { operation: "rewind", source })?;
        }
        self.retrying("rewind", |l| l.consumer.seek_partitions(target.clone(), CALL_TIMEOUT).map(|_| ()))
    }
}

/// How long the loop sleeps between serving delivery reports while it waits for
/// acknowledgements (a broker on loopback acknowledges in a few milliseconds).
const ACK_WAIT: Duration = Duration::from_micros(200);

/// Serves every delivery report that is ready; if records are still in flight, sleeps `wait`.
///
/// Not `BaseProducer::poll(wait)`: rust-rdkafka's poll loops until `wait` has passed and hands
/// librdkafka the time left in whole milliseconds, so its last millisecond (all of a 1 ms
/// poll) is a busy loop of non-blocking polls, two clock reads each. Draining that way took 15%
/// of the processor thread's samples in clock reads alone (`docs/perf/`), on a CPU the broker
/// needs to send the acknowledgements waited for. A zero poll serves one event (one report per
/// partition's batch), so it is repeated while it makes progress.
fn serve_or_wait<C: rdkafka::producer::ProducerContext>(producer: &BaseProducer<C>, wait: Duration) {
    let mut left = producer.in_flight_count();
    while left > 0 {
        producer.poll(Duration::ZERO);
        let now = producer.in_flight_count();
        if now == left {
            std::thread::sleep(wait);
            return;
        }
        left = now;
    }
}

/// `error` with the input record it happened on (once).
fn at_record(message: &OwnedMessage, error: ProcessorError) -> ProcessorError {
    match error {
        ProcessorError::Record { .. } => error,
        source => ProcessorError::Record {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            source: Box::new(source),
        },
    }
}

/// Decodes a state record restored from the state topic.
fn decode_state<M: Machine>(shared: &Shared<M>, bytes: &[u8]) -> Result<M::State, ProcessorError> {
    let (_, json) = shared.codec.decode(bytes).map_err(|e| ProcessorError::Restore {
        topic: shared.state_topic.clone(),
        partition: -1,
        reason: e.to_string(),
    })?;
    shared.machine.read_state(json).map_err(|reason| ProcessorError::Restore {
        topic: shared.state_topic.clone(),
        partition: -1,
        reason,
    })
}
