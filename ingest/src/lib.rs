//! HTTP ingest edge (issue 3).
