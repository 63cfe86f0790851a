//! The topology: topics, contracts, routes, processors, sinks and partners, read from `topology.toml`.

mod error;
pub mod machine;
mod model;
mod raw;
pub mod render;
mod validate;

use std::path::Path;

pub use error::{TopologyError, TopologyErrors};
pub use model::*;
pub use raw::{CommitPolicy, RawDefaults, RawTopology};
pub use validate::ValidateOptions;

impl Topology {
    /// Reads and validates `path`, with `topic_prefix` before every topic name.
    pub fn load(path: &Path, topic_prefix: &str) -> Result<Topology, TopologyErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            TopologyErrors(vec![TopologyError::Read { path: path.to_path_buf(), reason: e.to_string() }])
        })?;
        let raw: RawTopology = toml::from_str(&text).map_err(|e| {
            TopologyErrors(vec![TopologyError::Parse { path: path.to_path_buf(), reason: e.to_string() }])
        })?;
        raw.validate(&ValidateOptions { source: path, topic_prefix }).map_err(TopologyErrors)
    }
}

#[cfg(test)]
mod tests;
