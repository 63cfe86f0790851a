#[path = "../ingest/src/auth/mod.rs"]
pub mod auth;
