//! The read model's tables: `cql/readmodel.cql` as it is, and the migration built from it
//! (`hub readmodel migrate` runs it through the projector's session).

use std::time::Duration;

/// The schema, with `${keyspace}`, `${replication}` and `${ttl}` placeholders.
pub const SCHEMA: &str = include_str!("../../../cql/readmodel.cql");

/// Longest time to live CQL accepts (20 years), seconds.
const MAX_TTL_SECS: u64 = 630_720_000;

/// The replication clause: SimpleStrategy with `factor` copies, or NetworkTopologyStrategy with
/// `factor` copies in `datacenter`.
pub fn replication(factor: u32, datacenter: Option<&str>) -> String {
    match datacenter {
        Some(dc) => format!("{{'class': 'NetworkTopologyStrategy', '{dc}': {factor}}}"),
        None => format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}"),
    }
}

/// The statements of the migration of `keyspace` ([`SCHEMA`] with its placeholders filled in,
/// comments dropped); `ttl` is the tables' default time to live. Every statement is
/// `IF NOT EXISTS` or sets a value, so the migration can run any number of times.
pub fn migration(keyspace: &str, replication: &str, ttl: Duration) -> Vec<String> {
    let text: String = SCHEMA
        .lines()
        .map(|l| l.split_once("--").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("${keyspace}", keyspace)
        .replace("${replication}", replication)
        .replace("${ttl}", &ttl.as_secs().clamp(1, MAX_TTL_SECS).to_string());
    text.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The columns of `table` as [`SCHEMA`] creates it, in order (empty for a table it does not have).
#[cfg(test)]
pub(crate) fn columns(table: &str) -> Vec<String> {
    let create = format!("CREATE TABLE IF NOT EXISTS ${{keyspace}}.{table} (");
    let Some(start) = SCHEMA.find(&create) else { return Vec::new() };
    SCHEMA[start + create.len()..]
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("PRIMARY KEY"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readmodel::{EVENTS_TABLE, ORDERS_TABLE, ORDER_ID_TABLE};

    #[test]
    fn the_migration_fills_in_the_keyspace_replication_and_ttl() {
        let all = migration("ks", &replication(3, Some("dc1")), Duration::from_secs(86_400));
        assert_eq!(all.len(), 9, "a keyspace, four tables and four TTL updates");
        assert!(all[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks"));
        assert!(all[0].ends_with("{'class': 'NetworkTopologyStrategy', 'dc1': 3}"));
        assert!(all.iter().all(|s| !s.contains("${") && !s.contains("--")));
        assert!(all[1].contains("ks.orders (") && all[1].ends_with("default_time_to_live = 86400"));
        assert_eq!(replication(1, None), "{'class': 'SimpleStrategy', 'replication_factor': 1}");
    }

    #[test]
    fn the_tables_columns_are_read_from_the_schema() {
        assert_eq!(columns(ORDERS_TABLE).len(), 16);
        assert_eq!(columns(EVENTS_TABLE)[..3], ["partner", "correlation_id", "version"]);
        assert_eq!(columns(ORDER_ID_TABLE).last().map(String::as_str), Some("created_at"));
        assert!(columns("nothing").is_empty());
    }
}
