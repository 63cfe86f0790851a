#[path = "../ingest/src/contract.rs"]
pub mod contract;
