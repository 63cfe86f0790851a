//! Everything that can be wrong with a topology, each naming the offending entry.

use std::fmt;
use std::path::PathBuf;

/// One problem found in `topology.toml` or the contracts it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: not a valid topology: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{kind} {name:?} is declared more than once")]
    Duplicate { kind: &'static str, name: String },
    #[error("{owner}: {field} = {value:?}: {reason}")]
    Invalid { owner: String, field: &'static str, value: String, reason: String },
    #[error("{owner}: {field} names unknown topic {topic:?}")]
    UnknownTopic { owner: String, field: &'static str, topic: String },
    #[error("{owner}: {field} names unknown partner {partner:?}")]
    UnknownPartner { owner: String, field: &'static str, partner: String },
    #[error("{owner}: partner {partner:?} has no [partner.outbound] section, so the hub cannot call it")]
    PartnerNotCallable { owner: String, partner: String },
    #[error("{owner}: topic {topic:?} does not carry schema {schema:?} (it carries {carried:?})")]
    SchemaNotOnTopic { owner: String, topic: String, schema: String, carried: Vec<String> },
    #[error("topic {topic:?}: schema {schema:?} has no file {path}")]
    SchemaMissing { topic: String, schema: String, path: PathBuf },
    #[error("schema {schema:?} ({path}): does not parse as Avro: {reason}")]
    SchemaInvalid { schema: String, path: PathBuf, reason: String },
    #[error("processor {processor:?}: inputs and state are not co-partitioned: {}", fmt_pairs(partitions))]
    NotCoPartitioned { processor: String, partitions: Vec<(String, i32)> },
    #[error("processor {processor:?}: inputs and state are not keyed alike: {}", fmt_pairs(keys))]
    KeyMismatch { processor: String, keys: Vec<(String, String)> },
    #[error("sinks {first:?} and {second:?} both deliver {contract} from topic {topic:?} to {partners:?}: a command must have one sink (make their partner sets disjoint)")]
    SinksOverlap { first: String, second: String, topic: String, contract: String, partners: Vec<String> },
    #[error("processor {processor:?}: machine {}: {at}: {reason}", path.display())]
    Machine { processor: String, path: PathBuf, at: String, reason: String },
    #[error("{owner}: {field} topic {topic:?} must be compacted (cleanup_policy = \"compact\")")]
    NotCompacted { owner: String, field: &'static str, topic: String },
}

fn fmt_pairs<V: fmt::Display>(pairs: &[(String, V)]) -> String {
    pairs.iter().map(|(topic, v)| format!("{topic}={v}")).collect::<Vec<_>>().join(", ")
}

/// Every error found in one validation, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyErrors(pub Vec<TopologyError>);

impl fmt::Display for TopologyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} error{} in the topology:", if n == 1 { "" } else { "s" })?;
        for error in &self.0 {
            writeln!(f, "  - {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TopologyErrors {}
