//! The console's errors: what stops it from starting or serving.

/// Why the console could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("operators file {path}: {}", problems.join("; "))]
    Operators { path: String, problems: Vec<String> },
    #[error("{0}")]
    Setup(String),
    #[error("serving on {address}: {source}")]
    Serve { address: String, source: std::io::Error },
}
