//! Logs and traces. Logs: JSON lines by default (human-readable on a terminal or on request),
//! each with the fields of the span it was written in (role, correlation id, trace id). Traces:
//! OpenTelemetry over OTLP when the standard `OTEL_*` variables ask for it; otherwise no exporter
//! is built and spans cost only what the log layer does with them.
//!
//! Trace context crosses Kafka and HTTP as W3C `traceparent`/`tracestate` headers: [`parent`]
//! makes a span the child of an incoming one, [`traceparent`] gives the header for a span's
//! children.

mod fields;

use std::collections::HashMap;
use std::io::IsTerminal;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON unless stderr is a terminal.
    Auto,
    Json,
    Text,
}

/// Keeps the trace exporter alive; dropping it flushes the spans not yet sent.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Writes JSON log lines to stderr with `"role"` first (the formatter writes each line at once).
struct RoleWriter {
    role: &'static str,
    out: std::io::Stderr,
}

impl std::io::Write for RoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match buf.strip_prefix(b"{") {
            Some(rest) if !rest.is_empty() => {
                let mut line = Vec::with_capacity(buf.len() + 24);
                line.extend_from_slice(b"{\"role\":\"");
                line.extend_from_slice(self.role.as_bytes());
                line.extend_from_slice(b"\",");
                line.extend_from_slice(rest);
                self.out.write_all(&line)?;
            }
            _ => self.out.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Whether the environment asks for OTLP trace export (an endpoint is set, and neither
/// `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`).
pub fn otlp_requested() -> bool {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled && (var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
}

fn tracer_provider(role: &'static str, endpoint: Option<&str>) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder.build().map_err(|e| e.to_string())?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| format!("hub-{role}"));
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// Installs the global subscriber; `filter` is RUST_LOG syntax (`info,interchange_core=debug`)
/// and applies to logs and to the spans exported when OTLP is configured.
pub fn init(format: LogFormat, filter: &str, role: &'static str) -> Telemetry {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let logs = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(fields::AppendingJsonFields)
            .with_writer(move || RoleWriter { role, out: std::io::stderr() })
            .boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (provider, problem) = if otlp_requested() {
        match tracer_provider(role, None) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    // One global filter for logs and traces (per-layer filters lost spans now and then with
    // tracing-opentelemetry): the spans exported are those the filter enables, so keep the hub's
    // crates at `info` or finer to trace.
    let result = match &provider {
        // Exporting from the start: the layer itself, so trace context can be read and set
        // through it (a reload layer hides it from `OpenTelemetrySpanExt`).
        Some(p) => {
            let traces = tracing_opentelemetry::layer().with_tracer(p.tracer("interchange"));
            tracing_subscriber::registry().with(filter).with(logs).with(traces).try_init()
        }
        // Not exporting: an empty slot behind a reload handle, so a benchmark can switch export
        // on in the same process ([`export_to`]; spans are exported, context is not propagated).
        None => {
            let (traces, handle) = tracing_subscriber::reload::Layer::new(None);
            let _ = SWITCH.set(Box::new(move |provider: Option<&SdkTracerProvider>| {
                handle
                    .modify(|layer| {
                        *layer = provider.map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("interchange")));
                    })
                    .map_err(|e| e.to_string())
            }));
            tracing_subscriber::registry().with(filter).with(logs).with(traces).try_init()
        }
    };
    if result.is_ok() {
        tracing::debug!(role, exporting = provider.is_some(), "telemetry initialised");
        if let Some(problem) = problem {
            tracing::warn!(%problem, "OTLP trace export requested but not started");
        }
    }
    Telemetry { provider }
}

type Switch = Box<dyn Fn(Option<&SdkTracerProvider>) -> Result<(), String> + Send + Sync>;

/// Swaps the trace layer of the installed subscriber.
static SWITCH: std::sync::OnceLock<Switch> = std::sync::OnceLock::new();

/// Starts exporting spans over OTLP/HTTP to `endpoint` (a full `/v1/traces` URL) in a process
/// that was started without; the guard stops it when dropped. For benchmarks: spans are built
/// and exported as usual, but trace context is not read from or written to headers.
pub fn export_to(endpoint: &str, role: &'static str) -> Result<Telemetry, String> {
    let provider = tracer_provider(role, Some(endpoint))?;
    SWITCH.get().ok_or("telemetry is not initialised")?(Some(&provider))?;
    Ok(Telemetry { provider: Some(provider) })
}

/// Stops exporting spans (the layer is removed; the guard of [`export_to`] still flushes).
pub fn stop_exporting() -> Result<(), String> {
    SWITCH.get().ok_or("telemetry is not initialised")?(None)
}

/// Makes `span` the child of the W3C trace context in `traceparent` (and `tracestate`), when
/// valid. No effect without an exporter.
pub fn parent(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent else { return };
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        if let Err(error) = span.set_parent(cx) {
            tracing::debug!(%error, "trace context not applied");
        }
    }
}

/// The `traceparent` for children of `span`, when spans are exported (None otherwise: callers
/// then pass on the context they received).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Links `span` to the span in `traceparent` (a transaction to the records it commits).
pub fn link(span: &tracing::Span, traceparent: &str) {
    let mut carrier = HashMap::with_capacity(1);
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    let cx = TraceContextPropagator::new().extract(&carrier);
    let context = cx.span().span_context().clone();
    if context.is_valid() {
        span.add_link(context);
    }
}

/// The trace id in a `traceparent` (for log fields), or "".
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.get(3..35).unwrap_or("")
}
