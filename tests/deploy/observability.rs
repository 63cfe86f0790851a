//! The Grafana dashboard and the Prometheus alert rules: they parse, agree between compose and
//! Kubernetes, cover the seed's promises, and name only metrics the code exports.

use std::collections::{BTreeMap, BTreeSet};

use prometheus_client::registry::Registry;
use serde_json::Value;

use super::*;

/// Metric constants of core/src/metrics.rs (name -> constant), read from the source.
fn constants() -> BTreeMap<String, String> {
    let source = std::fs::read_to_string(root().join("core/src/metrics.rs")).expect("metrics.rs");
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let value = rest.split('"').nth(1)?;
            Some((value.to_owned(), name.trim().to_owned()))
        })
        .collect()
}

/// Sample names for a family of `kind`, as prometheus-client writes them (counter `_total`;
/// histogram `_bucket`, `_sum`, `_count`; gauge as is).
fn samples(name: &str, kind: &str) -> Vec<String> {
    match kind {
        "counter" => vec![format!("{name}_total")],
        "histogram" => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{name}{s}")).collect(),
        _ => vec![name.to_owned()],
    }
}

/// Sample names the roles export, read from the roles' metrics modules: each
/// `registry.register(names::CONST, "...", m.field.clone())` and the type of `field`.
fn exported() -> BTreeSet<String> {
    let constants: BTreeMap<String, String> = constants().into_iter().map(|(name, c)| (c, name)).collect();
    let mut out = BTreeSet::new();
    for file in ["ingest/src/metrics.rs", "processors/src/runtime/metrics.rs", "sinks/src/metrics.rs"] {
        let source = std::fs::read_to_string(root().join(file)).expect("metrics module");
        let ident_end = |s: &str| s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
        for (i, _) in source.match_indices("names::") {
            let rest = &source[i + "names::".len()..];
            let constant = &rest[..ident_end(rest)];
            let Some(clone) = rest.find(".clone()") else { continue };
            let before = &rest[..clone];
            let field = &before[before.rfind('.').map_or(0, |d| d + 1)..];
            let at = source.find(&format!("pub {field}: ")).or_else(|| source.find(&format!("pub(crate) {field}: ")));
            let declared = at.map(|d| {
                let line = &source[d..];
                &line[..line.find('\n').unwrap_or(line.len())]
            });
            let kind = match declared {
                Some(t) if t.contains("Histogram") => "histogram",
                Some(t) if t.contains("Counter") => "counter",
                Some(t) if t.contains("Gauge") => "gauge",
                _ => panic!("{file}: cannot tell the type of field {field:?} registered as {constant}"),
            };
            let name = constants.get(constant).unwrap_or_else(|| panic!("{file}: names::{constant} is not a constant"));
            out.extend(samples(name, kind));
        }
    }
    out
}

/// What prometheus-client really writes for the unlabelled metrics (labelled families write
/// nothing until a label set is used).
fn encoded() -> BTreeSet<String> {
    let mut registry = Registry::default();
    let _ingest = interchange_ingest::metrics::IngestMetrics::register(&mut registry);
    let _processor = interchange_processors::runtime::metrics::ProcessorMetrics::register(&mut registry);
    let _sink = interchange_sinks::metrics::SinkMetrics::register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut parts = rest.split_whitespace();
        if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
            out.extend(samples(name, kind));
        }
    }
    out
}

/// `hub_...` metric names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("hub_") {
        let start = i + at;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end =
            expr[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(expr.len(), |e| start + e);
        if boundary {
            out.insert(expr[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// Checks every name: exported by the roles, or a constant of core/src/metrics.rs that no role
/// registers yet, used bare (a gauge; reported).
fn check_names(what: &str, exprs: &[String], p: &mut Problems) -> BTreeSet<String> {
    let exported = exported();
    let constants = constants();
    let mut used = BTreeSet::new();
    for expr in exprs {
        for name in metric_names(expr) {
            let registered_elsewhere = constants.contains_key(&name) && !exported.iter().any(|e| e.starts_with(&name));
            if !exported.contains(&name) && registered_elsewhere {
                eprintln!("note: {what} uses {name} ({}), a constant no role registers yet", constants[&name]);
            }
            p.check(exported.contains(&name) || registered_elsewhere, || {
                format!("{what}: {name} is not exported (in {expr:?})")
            });
            used.insert(name);
        }
    }
    used
}

fn dashboard() -> Value {
    let path = root().join("deploy/grafana/dashboards/interchange.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("the dashboard is JSON")
}

fn alert_rules() -> Vec<Value> {
    let alerts = yaml_docs(&root().join("deploy/prometheus/alerts.yml")).remove(0);
    list(&alerts, "groups").iter().flat_map(|g| list(g, "rules").to_vec()).collect()
}

#[test]
fn exported_names_follow_the_constants_and_prometheus_client() {
    let exported = exported();
    assert!(exported.len() > 30, "{exported:?}");
    // The source reading agrees with what prometheus-client writes, for every metric it writes.
    let encoded = encoded();
    // (Labelled families, the processor's all of them, write nothing here.)
    assert!(encoded.len() > 5, "{encoded:?}");
    let unknown: Vec<_> = encoded.difference(&exported).collect();
    assert!(unknown.is_empty(), "written but not found in the sources: {unknown:?}");
    assert_eq!(
        metric_names("sum(rate(hub_a_total[5m])) / x_hub_b + hub_c"),
        BTreeSet::from(["hub_a_total".into(), "hub_c".into()])
    );
}

#[test]
fn dashboard_covers_every_stage_with_exported_metrics() {
    let dashboard = dashboard();
    let mut p = Problems::default();
    p.check(!text(&dashboard, "uid").is_empty() && !text(&dashboard, "title").is_empty(), || {
        "no uid or title".to_owned()
    });
    let mut exprs = Vec::new();
    strings_under_key(&dashboard, "expr", &mut exprs);
    p.check(exprs.len() >= 20, || format!("only {} queries", exprs.len()));
    let used = check_names("dashboard", &exprs, &mut p);
    for needed in [
        "hub_ingest_requests_total",
        "hub_ingest_request_duration_seconds_bucket",
        "hub_processor_records_total",
        "hub_processor_commit_duration_seconds_bucket",
        "hub_processor_lag_records",
        "hub_sink_deliveries_total",
        "hub_sink_attempt_duration_seconds_bucket",
        "hub_sink_breaker_state",
        "hub_processor_dead_letters_total",
        "hub_sink_dead_letters_total",
    ] {
        p.check(used.contains(needed), || format!("the dashboard shows no {needed}"));
    }
    let mut ids = BTreeSet::new();
    for panel in list(&dashboard, "panels") {
        p.check(ids.insert(at(panel, "id").and_then(Value::as_i64).unwrap_or(-1)), || "duplicate panel id".to_owned());
    }
    p.finish("Grafana dashboard");
}

#[test]
fn alerts_keep_the_seeds_promises_and_agree_with_the_prometheus_rule() {
    let rules = alert_rules();
    let mut p = Problems::default();
    let exprs: Vec<String> = rules.iter().map(|r| text(r, "expr").to_owned()).collect();
    check_names("alerts", &exprs, &mut p);
    for rule in &rules {
        p.check(!text(rule, "alert").is_empty() && !text(rule, "annotations.summary").is_empty(), || {
            format!("a rule without a name or summary: {rule}")
        });
    }
    let find = |pred: &dyn Fn(&str) -> bool| rules.iter().filter(|r| pred(text(r, "expr"))).count();
    p.check(find(&|e| e.contains("_total") && e.contains("> 0.001")) >= 3, || {
        "error rate over 0.1% per stage".to_owned()
    });
    p.check(find(&|e| e.contains("histogram_quantile(0.99") && e.contains("> 0.5")) >= 1, || {
        "p99 over 500 ms".to_owned()
    });
    p.check(find(&|e| e.contains("hub_processor_lag_records") && e.contains("deriv(")) >= 1, || {
        "lag growing".to_owned()
    });
    p.check(
        rules.iter().any(|r| {
            text(r, "expr").contains("hub_sink_breaker_state")
                && text(r, "expr").contains("== 2")
                && !text(r, "for").is_empty()
        }),
        || "a breaker open longer than N minutes".to_owned(),
    );
    p.check(find(&|e| e.contains("dead_letters_total") && e.contains("> 0")) >= 2, || {
        "dead letters appearing".to_owned()
    });
    for rule in &rules {
        if let Some(d) = at(rule, "for").and_then(Value::as_str) {
            p.check(humantime::parse_duration(d).is_ok(), || format!("{}: for {d:?}", text(rule, "alert")));
        }
    }
    // Kubernetes runs the same groups.
    let alerts = yaml_docs(&root().join("deploy/prometheus/alerts.yml")).remove(0);
    let rule = manifests().into_iter().map(|(_, d)| d).find(|d| text(d, "kind") == "PrometheusRule");
    p.check(rule.as_ref().and_then(|r| at(r, "spec.groups")) == at(&alerts, "groups"), || {
        "the PrometheusRule's groups differ from deploy/prometheus/alerts.yml".to_owned()
    });
    p.finish("alert rules");
}
