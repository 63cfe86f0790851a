//! Reading topics back in integration tests: record counts and single records.
#![allow(dead_code)]

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::bootstrap;

fn consumer(isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("it-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer")
}

/// Partition count of `topic`.
pub fn partitions(topic: &str) -> i32 {
    let c = consumer("read_committed");
    let metadata = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    metadata.topics().first().map_or(0, |t| t.partitions().len() as i32)
}

/// Records on a non-transactional topic: the sum over partitions of high minus low watermark.
/// Retries for 60 s while the broker answers with an error (right after a broker restart,
/// leadership is still moving: `NotLeaderForPartition`).
pub fn count(topic: &str) -> i64 {
    let c = consumer("read_committed");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    (0..partitions(topic))
        .map(|p| loop {
            match c.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                Ok((low, high)) => break high - low,
                Err(error) if std::time::Instant::now() < deadline => {
                    eprintln!("watermarks of {topic}/{p}: {error}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(error) => panic!("watermarks of {topic}/{p}: {error}"),
            }
        })
        .sum()
}

/// The record at `partition`/`offset`.
pub fn read(topic: &str, partition: i32, offset: i64) -> OwnedMessage {
    let c = consumer("read_committed");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(offset)).expect("offset");
    c.assign(&assignment).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Some(result) = c.poll(Duration::from_millis(500)) {
            let message = result.expect("record");
            if message.offset() == offset {
                return message.detach();
            }
        }
    }
    panic!("no record at {topic}/{partition}@{offset}");
}

/// Every record of `topic`, all partitions, from the start to the current end.
pub fn read_all(topic: &str, isolation: &str) -> Vec<OwnedMessage> {
    let c = consumer(isolation);
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions(topic) {
        let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks");
        if high > low {
            assignment.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
            ends.push((p, high));
        }
    }
    if ends.is_empty() {
        return Vec::new();
    }
    c.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    let mut done = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while done.len() < ends.len() && std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let p = message.partition();
                let end = ends.iter().find(|(q, _)| *q == p).map_or(0, |(_, h)| *h);
                if message.offset() + 1 >= end {
                    done.insert(p);
                }
                out.push(message.detach());
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {
                // read_committed may stop short of the high watermark (control records, aborts).
                for (p, end) in &ends {
                    if let Ok(position) = c.position() {
                        if let Some(elem) = position.find_partition(topic, *p) {
                            if let Offset::Offset(o) = elem.offset() {
                                if o >= *end {
                                    done.insert(*p);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Writes one record of raw bytes (not through any contract: what a careless producer writes),
/// acknowledged by every in-sync replica.
pub fn produce_raw(topic: &str, key: &str, value: &[u8]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap()).set("acks", "all").create().expect("producer");
    producer.send(BaseRecord::to(topic).key(key).payload(value)).map_err(|(e, _)| e).expect("send");
    producer.flush(Duration::from_secs(30)).expect("flush");
}
