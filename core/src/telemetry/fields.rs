//! A span's fields in JSON log lines, with fields recorded after the span was created appended
//! to its JSON object instead of the object being parsed and written again.

use std::fmt;

use tracing::span::Record;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{JsonVisitor, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// tracing-subscriber's `JsonFields`, except for `Span::record`: `JsonFields` parses the span's
/// JSON object into a map, adds the new fields and serialises it all again, which took 15% of
/// the sinks' CPU (a status code recorded on every HTTP attempt's span: `docs/perf/`). Here the
/// new fields are appended to the object. A key recorded twice then appears twice; the JSON log
/// format reads the object with serde_json, where the later one wins, as with `JsonFields`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AppendingJsonFields;

impl<'writer> FormatFields<'writer> for AppendingJsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = JsonVisitor::new(&mut writer);
        fields.record(&mut visitor);
        visitor.finish()
    }

    fn add_fields(&self, current: &'writer mut FormattedFields<Self>, fields: &Record<'_>) -> fmt::Result {
        let mut more = String::new();
        let mut visitor = JsonVisitor::new(&mut more);
        fields.record(&mut visitor);
        visitor.finish()?;
        append(&mut current.fields, &more);
        Ok(())
    }
}

/// Appends the members of the JSON object `more` to the JSON object `object` (either may be
/// empty text or `{}`).
fn append(object: &mut String, more: &str) {
    let members = more.strip_prefix('{').and_then(|m| m.strip_suffix('}')).unwrap_or("");
    if members.is_empty() {
        return;
    }
    if object.pop() != Some('}') {
        object.clear();
        object.push('{');
    } else if object.len() > 1 {
        object.push(',');
    }
    object.push_str(members);
    object.push('}');
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log lines written while `f` runs, parsed, with the hub's JSON layer settings.
    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(AppendingJsonFields)
            .with_writer(move || writer.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        let bytes = buffer.0.lock().expect("buffer").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is JSON"))
            .collect()
    }

    #[test]
    fn fields_recorded_later_are_in_the_span_and_the_last_value_wins() {
        let lines = lines(|| {
            let span = tracing::info_span!(
                "attempt",
                partner = "acme \"erp\"",
                offset = 7_i64,
                status = tracing::field::Empty,
                kind = tracing::field::Empty
            );
            let _entered = span.enter();
            tracing::info!("before");
            span.record("status", 503_u64);
            tracing::info!("once");
            span.record("status", 200_u64);
            span.record("kind", "retry");
            tracing::info!(detail = "x", "twice");
        });
        let spans: Vec<_> = lines.iter().map(|l| (l["message"].clone(), l["span"].clone())).collect();
        assert_eq!(
            spans,
            vec![
                (
                    serde_json::json!("before"),
                    serde_json::json!({ "name": "attempt", "partner": "acme \"erp\"", "offset": 7 })
                ),
                (
                    serde_json::json!("once"),
                    serde_json::json!({ "name": "attempt", "partner": "acme \"erp\"", "offset": 7, "status": 503 })
                ),
                (
                    serde_json::json!("twice"),
                    serde_json::json!({
                        "name": "attempt", "partner": "acme \"erp\"", "offset": 7, "status": 200, "kind": "retry"
                    })
                ),
            ]
        );
        assert_eq!(lines[2]["detail"], "x");
    }

    #[test]
    fn a_span_created_without_fields_takes_recorded_ones() {
        let lines = lines(|| {
            let span = tracing::info_span!("empty", later = tracing::field::Empty);
            let _entered = span.enter();
            span.record("later", true);
            tracing::info!("in it");
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["span"], serde_json::json!({ "name": "empty", "later": true }));
    }

    #[test]
    fn appending_joins_objects() {
        let cases = [
            ("", "{\"a\":1}", "{\"a\":1}"),
            ("{}", "{\"a\":1}", "{\"a\":1}"),
            ("{\"a\":1}", "{}", "{\"a\":1}"),
            ("{\"a\":1}", "{\"b\":\"}\",\"c\":2}", "{\"a\":1,\"b\":\"}\",\"c\":2}"),
        ];
        for (object, more, joined) in cases {
            let mut text = object.to_owned();
            append(&mut text, more);
            assert_eq!(text, joined, "{object} + {more}");
        }
    }
}
