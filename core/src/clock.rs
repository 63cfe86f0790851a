//! The wall clock as the hub writes it into records and rows: milliseconds since the Unix epoch.

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(duration_millis).unwrap_or(0)
}

/// A duration in whole milliseconds, saturated at `i64::MAX`.
pub fn duration_millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
