//! Deployment files: docker-compose.yml, the Dockerfile, deploy/ (Strimzi, Kubernetes, Grafana,
//! Prometheus). Offline checks, no running stack: every file parses, images are pinned, the roles'
//! ports, probes and settings are wired, the KafkaTopics match topology.toml, the KafkaUsers'
//! ACLs are exactly what the topology needs, the Strimzi resources validate against Strimzi's own
//! CRD schemas, and the dashboard and alerts name only metrics the code exports.

mod compose;
mod kubernetes;
mod observability;
mod strimzi;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use interchange_core::topology::Topology;
use serde::Deserialize;
use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The reference topology, validated.
pub fn topology() -> Topology {
    Topology::load(&root().join("topology.toml"), "").expect("topology.toml is valid")
}

/// Every document of a YAML file (merge keys applied), as JSON values; empty documents skipped.
pub fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let mut value = serde_yaml_ng::Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{} (document {i}): not YAML: {e}", path.display()));
        value.apply_merge().unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
        if value.is_null() {
            continue;
        }
        out.push(
            serde_json::to_value(value)
                .unwrap_or_else(|e| panic!("{} (document {i}): not JSON-like: {e}", path.display())),
        );
    }
    out
}

/// Every file under `dir` (recursively) whose name ends with one of `suffixes`, sorted.
pub fn files_under(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The Kubernetes manifests: every YAML document under deploy/strimzi, deploy/kubernetes and
/// deploy/reference (the patch file excepted), with the file it came from.
pub fn manifests() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for dir in ["deploy/strimzi", "deploy/kubernetes", "deploy/reference"] {
        for file in files_under(&root().join(dir), &[".yaml", ".yml"]) {
            if is_patch(&file) {
                continue;
            }
            for doc in yaml_docs(&file) {
                out.push((file.clone(), doc));
            }
        }
    }
    out
}

/// Strategic-merge patches (no kind of their own).
pub fn is_patch(file: &Path) -> bool {
    file.file_name().is_some_and(|n| n.to_string_lossy().starts_with("sink-with-"))
}

/// `value` at a dotted path (`spec.template.spec`); numeric segments index arrays.
pub fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match key.parse::<usize>() {
        Ok(i) if v.is_array() => v.get(i),
        _ => v.get(key),
    })
}

/// The string at `path`, or "".
pub fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path).and_then(Value::as_str).unwrap_or("")
}

/// The array at `path`, or empty.
pub fn list<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    at(value, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Every string value under the key `key`, anywhere in `value`.
pub fn strings_under_key(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                }
                strings_under_key(v, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings_under_key(v, key, out)),
        _ => {}
    }
}

/// Whether an image reference is pinned: a digest, or a tag that names a version (has a digit)
/// and is not `latest`.
pub fn pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let name_end = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_end..].split_once(':') {
        Some((_, tag)) => tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
        None => false,
    }
}

/// Environment variables each role reads whose defaults only work on one machine (loopback),
/// from the roles' own clap definitions: a container must set every one of them.
pub fn loopback_defaults(role: &str) -> Vec<String> {
    use clap::{Args, Command};
    let command = match role {
        "ingest" => interchange_ingest::IngestConfig::augment_args(Command::new("x")),
        "process" => interchange_processors::ProcessorConfig::augment_args(Command::new("x")),
        "sink" => interchange_sinks::SinkConfig::augment_args(Command::new("x")),
        other => panic!("no role {other}"),
    };
    let mut out: Vec<String> = command
        .get_arguments()
        .filter(|a| a.get_default_values().iter().any(|d| d.to_string_lossy().starts_with("127.0.0.1")))
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    // Global options (src/cli.rs, the binary's): where the services are. Which role uses which
    // is read from the roles' Services structs.
    out.extend(["HUB_BOOTSTRAP_SERVERS", "HUB_REGISTRY_URL"].map(str::to_owned));
    if role == "ingest" {
        out.push("HUB_REDIS_URL".to_owned());
    }
    out
}

/// The partner secrets (environment variables) a role needs: inbound ones for the edge,
/// outbound ones for the HTTP sinks named.
pub fn partner_secrets(topology: &Topology, role: &str, sinks: &[String]) -> Vec<String> {
    use interchange_core::topology::{OutboundAuth, SecretRef, SinkParams};
    let env = |r: &Option<SecretRef>, out: &mut Vec<String>| {
        if let Some(SecretRef::Env(name)) = r {
            out.push(name.clone());
        }
    };
    let mut out = Vec::new();
    for partner in &topology.partners {
        if role == "ingest" {
            if let Some(inbound) = &partner.inbound {
                env(&inbound.api_keys, &mut out);
                env(&inbound.webhook_secrets, &mut out);
                if let Some(jwt) = &inbound.jwt {
                    env(&jwt.hs256_secret, &mut out);
                    env(&jwt.rs256_public_key, &mut out);
                }
            }
        }
        let delivers = topology.sinks.iter().any(|s| {
            sinks.contains(&s.name)
                && matches!(&s.params, SinkParams::Http { .. })
                && s.params.http_partners().contains(&partner.name.as_str())
        });
        if role == "sink" && delivers {
            if let Some(outbound) = &partner.outbound {
                env(&outbound.signing_secret, &mut out);
                match &outbound.auth {
                    Some(OutboundAuth::Bearer { token }) => env(&Some(token.clone()), &mut out),
                    Some(OutboundAuth::ApiKey { key, .. }) => env(&Some(key.clone()), &mut out),
                    Some(OutboundAuth::OauthClientCredentials { client_secret, .. }) => {
                        env(&Some(client_secret.clone()), &mut out)
                    }
                    None => {}
                }
            }
        }
    }
    out
}

/// The HTTP paths a role's health server routes, read from its source (`.route("/path", ...)`).
pub fn served_paths(role: &str) -> Vec<String> {
    let file = match role {
        "ingest" => "ingest/src/app.rs",
        // The processor and the sinks serve core's one health and metrics router.
        "process" | "sink" => "core/src/health.rs",
        other => panic!("no role {other}"),
    };
    let source = std::fs::read_to_string(root().join(file)).expect("role source");
    let mut out = Vec::new();
    for (i, _) in source.match_indices(".route(") {
        let rest = source[i + ".route(".len()..].trim_start();
        if let Some(path) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
            out.push(path.to_owned());
        }
    }
    out
}

/// The `--sink NAME` values of a `hub sink` command line.
pub fn sink_args(args: &[String]) -> Vec<String> {
    args.windows(2).filter(|w| w[0] == "--sink").map(|w| w[1].clone()).collect()
}

/// A duration such as `20s`, `500ms`, `5m`.
pub fn seconds(text: &str) -> f64 {
    let d = humantime::parse_duration(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    d.as_secs_f64()
}

/// Collects problems and fails once with all of them.
#[derive(Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(problem());
        }
    }

    pub fn finish(self, what: &str) {
        assert!(self.0.is_empty(), "{what}: {} problem(s):\n  - {}", self.0.len(), self.0.join("\n  - "));
    }
}

/// Map of a container's environment: literal values, `configMap:<name>` for whole config maps
/// and `secret:<name>/<key>` for secret references.
pub fn container_env(
    container: &Value,
    config_maps: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in list(container, "envFrom") {
        let name = text(source, "configMapRef.name");
        if let Some(data) = config_maps.get(name) {
            env.extend(data.clone());
        }
    }
    for var in list(container, "env") {
        let name = text(var, "name").to_owned();
        if let Some(v) = at(var, "value").and_then(Value::as_str) {
            env.insert(name, v.to_owned());
        } else if at(var, "valueFrom.secretKeyRef").is_some() {
            let s = format!(
                "secret:{}/{}",
                text(var, "valueFrom.secretKeyRef.name"),
                text(var, "valueFrom.secretKeyRef.key")
            );
            env.insert(name, s);
        } else if at(var, "valueFrom.fieldRef").is_some() {
            env.insert(name, format!("field:{}", text(var, "valueFrom.fieldRef.fieldPath")));
        }
    }
    env
}

#[test]
fn image_pinning_rule_can_fail() {
    assert!(pinned("apache/kafka:4.4.0"));
    assert!(pinned("gcr.io/distroless/cc-debian12:nonroot@sha256:abc"));
    assert!(!pinned("redis"));
    assert!(!pinned("redis:latest"));
    assert!(!pinned("localhost:5000/hub"));
    assert!(!pinned("gcr.io/distroless/cc-debian12:nonroot"));
}
