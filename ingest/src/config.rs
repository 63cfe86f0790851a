//! Settings of the edge that are not in topology.toml: where it listens and its limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::contract::UnknownFields;

/// `hub ingest` options; each has an environment variable.
#[derive(Debug, Clone, Args)]
pub struct IngestConfig {
    /// Address the edge listens on.
    #[arg(long = "listen", env = "HUB_INGEST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// TLS certificate chain (PEM); with --tls-key the edge terminates TLS itself (1.3 preferred, 1.2 minimum).
    #[arg(long, env = "HUB_INGEST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "HUB_INGEST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted, bytes (413 above).
    #[arg(long, env = "HUB_INGEST_BODY_LIMIT", default_value_t = 1_048_576)]
    pub body_limit: usize,
    /// Most events in one :batch request.
    #[arg(long, env = "HUB_INGEST_MAX_BATCH", default_value_t = 500)]
    pub max_batch: usize,
    /// Requests of identified partners handled at once (a permit is taken after the identity and
    /// rate checks, so unauthenticated traffic never holds one); more are answered 503 at once.
    #[arg(long, env = "HUB_INGEST_CONCURRENCY", default_value_t = 4096)]
    pub concurrency: usize,
    /// JSON fields the contract does not have: reject (422) or ignore.
    #[arg(long, env = "HUB_INGEST_UNKNOWN_FIELDS", value_enum, default_value_t = UnknownFieldsArg::Reject)]
    pub unknown_fields: UnknownFieldsArg,
    /// Per client IP limit as RATE/BURST requests per second (for example 100/200); none by default.
    #[arg(long, env = "HUB_INGEST_IP_RATE_LIMIT", value_parser = parse_rate)]
    pub ip_rate_limit: Option<interchange_core::topology::RateLimit>,
    /// Proxies in front of the edge, as CIDR,... (for example 10.0.0.0/8,127.0.0.1): only from
    /// these peers is X-Forwarded-For believed, and the client is its rightmost hop that is not
    /// one of them (hops a client wrote itself are never used). None by default: the peer is the client.
    #[arg(long, env = "HUB_INGEST_TRUSTED_PROXIES", value_parser = crate::client_ip::parse_proxies, default_value = "")]
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Removed: it trusted the leftmost X-Forwarded-For entry, which any client can write. The
    /// edge refuses to start with it; use --trusted-proxies.
    #[arg(long, env = "HUB_INGEST_TRUST_FORWARDED_FOR", hide = true)]
    pub trust_forwarded_for: bool,
    /// Longest time for a request's body to arrive once its headers did (408 after it). The
    /// body is read only after the caller was identified from the headers.
    #[arg(long, env = "HUB_INGEST_BODY_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub body_timeout: Duration,
    /// Longest time for a connection to send a request's headers; the connection is closed after it.
    #[arg(long, env = "HUB_INGEST_HEADER_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub header_timeout: Duration,
    /// How long an answered Idempotency-Key is remembered.
    #[arg(long, env = "HUB_INGEST_IDEMPOTENCY_TTL", value_parser = humantime::parse_duration, default_value = "24h")]
    pub idempotency_ttl: Duration,
    /// How long an Idempotency-Key stays reserved while its first request is in flight (a repeat
    /// meanwhile gets 409); after it, a key whose answer could not be recorded is processed again,
    /// under the same event id and correlation id (both derived from the key and body), which the order
    /// processor recognises. Default: --delivery-timeout plus 30s.
    #[arg(long, env = "HUB_INGEST_IDEMPOTENCY_PENDING_TTL", value_parser = humantime::parse_duration)]
    pub idempotency_pending_ttl: Option<Duration>,
    /// Longest wait for the broker's acknowledgement before answering 503.
    #[arg(long, env = "HUB_INGEST_DELIVERY_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub delivery_timeout: Duration,
    /// Longest wait for Redis on any call.
    #[arg(long, env = "HUB_INGEST_REDIS_TIMEOUT", value_parser = humantime::parse_duration, default_value = "250ms")]
    pub redis_timeout: Duration,
    /// On SIGTERM: how long in-flight requests and the producer flush may take.
    #[arg(long, env = "HUB_INGEST_DRAIN_DEADLINE", value_parser = humantime::parse_duration, default_value = "20s")]
    pub drain_deadline: Duration,
}

/// `--unknown-fields` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UnknownFieldsArg {
    Reject,
    Ignore,
}

impl From<UnknownFieldsArg> for UnknownFields {
    fn from(value: UnknownFieldsArg) -> Self {
        match value {
            UnknownFieldsArg::Reject => UnknownFields::Reject,
            UnknownFieldsArg::Ignore => UnknownFields::Ignore,
        }
    }
}

fn parse_rate(text: &str) -> Result<interchange_core::topology::RateLimit, String> {
    let (rate, burst) = text.split_once('/').ok_or("expected RATE/BURST, for example 100/200")?;
    let per_second = rate.trim().parse::<u32>().map_err(|e| format!("rate: {e}"))?;
    let burst = burst.trim().parse::<u32>().map_err(|e| format!("burst: {e}"))?;
    if per_second == 0 || burst == 0 {
        return Err("rate and burst must be at least 1".to_owned());
    }
    Ok(interchange_core::topology::RateLimit { per_second, burst })
}
