//! Sink connectors (issue 5).
