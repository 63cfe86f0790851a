//! Stage two of the topology: the validated model every role builds from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use super::raw::{
    BreakerSettings, CleanupPolicy, OutboundAuth, ProcessorParams, RateLimit, RawInbound as Inbound,
    RawOutbound as Outbound, RequestMapping, RetryPolicy, SecretRef, SinkParams,
};

/// A checked topology: every reference resolves, co-partitioning holds, contracts parse.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The file it was read from.
    pub source: PathBuf,
    /// Prefix put before every topic name (`--topic-prefix`), for isolated environments.
    pub topic_prefix: String,
    pub topics: Vec<Topic>,
    /// Contracts by schema name (file stem).
    pub contracts: BTreeMap<String, Contract>,
    pub routes: Vec<Route>,
    pub processors: Vec<Processor>,
    pub sinks: Vec<Sink>,
    pub partners: Vec<Partner>,
}

impl Topology {
    /// The topic declared as `declared` (without the prefix).
    pub fn topic(&self, declared: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.declared_name == declared)
    }

    /// The topic `name` names: as declared, or with its prefix.
    pub fn topic_named(&self, name: &str) -> Option<&Topic> {
        self.topic(name).or_else(|| self.topics.iter().find(|t| t.name == name))
    }

    /// Every dead-letter topic in use (each processor's and sink's), once each, in declaration order.
    pub fn dead_letter_topics(&self) -> Vec<&Topic> {
        let mut out: Vec<&Topic> = Vec::new();
        let names = self.processors.iter().map(|p| &p.dead_letter).chain(self.sinks.iter().map(|s| &s.dead_letter));
        for topic in names.filter_map(|name| self.topic_named(name)) {
            if !out.iter().any(|t| t.name == topic.name) {
                out.push(topic);
            }
        }
        out
    }

    /// The consumer group processor or sink `component` runs in: the topic prefix, then its name.
    pub fn consumer_group(&self, component: &str) -> String {
        format!("{}{}", self.topic_prefix, component)
    }

    /// Every processor's and sink's consumer group with the topics (prefixed) it reads.
    pub fn consumer_groups(&self) -> Vec<(String, Vec<String>)> {
        let topics = |names: &[String]| -> Vec<String> {
            names.iter().filter_map(|n| self.topic_named(n)).map(|t| t.name.clone()).collect()
        };
        let processors = self.processors.iter().map(|p| (self.consumer_group(&p.name), topics(&p.inputs)));
        let sinks = self.sinks.iter().map(|s| (self.consumer_group(&s.name), topics(std::slice::from_ref(&s.input))));
        processors.chain(sinks).collect()
    }

    /// The partner called `name`.
    pub fn partner(&self, name: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.name == name)
    }

    /// Every (subject, contract) the registry must hold, in declaration order.
    pub fn subjects(&self) -> Vec<(String, &Contract)> {
        let mut out = Vec::new();
        for topic in &self.topics {
            for schema in &topic.schemas {
                if let Some(contract) = self.contracts.get(schema) {
                    out.push((topic.subject(contract), contract));
                }
            }
        }
        out
    }
}

/// A Kafka topic as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// Full name on the broker (prefix included).
    pub name: String,
    /// Name as written in the topology.
    pub declared_name: String,
    pub doc: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub min_insync_replicas: i32,
    pub key: String,
    pub cleanup_policy: CleanupPolicy,
    pub retention: Option<Duration>,
    pub schemas: Vec<String>,
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    /// Topic-level Kafka configs the hub manages for this topic.
    pub fn kafka_configs(&self) -> BTreeMap<String, String> {
        let mut configs = self.configs.clone();
        configs.insert("cleanup.policy".to_owned(), self.cleanup_policy.as_kafka().to_owned());
        configs.insert("min.insync.replicas".to_owned(), self.min_insync_replicas.to_string());
        if let Some(retention) = self.retention {
            configs.insert("retention.ms".to_owned(), retention.as_millis().to_string());
        }
        configs
    }

    /// Schema-registry subject of `contract` on this topic.
    ///
    /// A topic that carries one record type uses Confluent's TopicNameStrategy
    /// (`<topic>-value`), so stock deserializers find it with default settings; a topic that
    /// carries several uses TopicRecordNameStrategy (`<topic>-<record full name>`), so each
    /// type evolves under its own compatibility check.
    pub fn subject(&self, contract: &Contract) -> String {
        if self.schemas.len() == 1 {
            format!("{}-value", self.name)
        } else {
            format!("{}-{}", self.name, contract.full_name)
        }
    }
}

/// An Avro contract loaded from `schemas/<name>.avsc`.
#[derive(Debug, Clone)]
pub struct Contract {
    /// File stem, used in the topology.
    pub name: String,
    pub path: PathBuf,
    /// Record full name (`namespace.Name`).
    pub full_name: String,
    pub schema: apache_avro::Schema,
    /// The schema's JSON (compact, every attribute kept), as registered.
    pub text: String,
}

/// An ingest route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    /// Full topic name.
    pub topic: String,
    pub schema: String,
    pub partners: Vec<String>,
}

/// A stateful processor.
#[derive(Debug, Clone)]
pub struct Processor {
    pub name: String,
    pub doc: String,
    /// Full topic names, co-partitioned with `state`.
    pub inputs: Vec<String>,
    pub state: String,
    pub lookups: Vec<String>,
    pub outputs: Vec<String>,
    pub dead_letter: String,
    pub commit: super::raw::CommitPolicy,
    pub commit_interval: Duration,
    pub max_batch: usize,
    pub params: ProcessorParams,
    /// The machine of a `declared` processor, read and checked.
    pub machine: Option<std::sync::Arc<super::machine::MachineSpec>>,
}

/// A sink connector.
#[derive(Debug, Clone)]
pub struct Sink {
    pub name: String,
    pub input: String,
    pub results: Option<String>,
    pub dead_letter: String,
    pub params: SinkParams,
}

/// A third party the hub talks to.
#[derive(Debug, Clone)]
pub struct Partner {
    pub name: String,
    pub doc: String,
    pub inbound: Option<Inbound>,
    pub outbound: Option<Outbound>,
}
