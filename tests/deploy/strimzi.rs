//! deploy/strimzi/: the Kafka cluster, the KafkaTopics rendered from topology.toml, the
//! KafkaUsers' ACLs, and validation against Strimzi's own CRD schemas.

use std::collections::{BTreeMap, BTreeSet};

use interchange_core::topology::{render, Topology};
use serde_json::Value;

use super::kubernetes::workloads;
use super::*;

const CLUSTER: &str = "interchange";

#[test]
fn checked_in_topics_are_what_the_command_renders() {
    let rendered = render::strimzi_topics(&topology(), CLUSTER, "topology.toml");
    let path = root().join("deploy/strimzi/topics.yaml");
    let checked_in = std::fs::read_to_string(&path).expect("deploy/strimzi/topics.yaml");
    assert!(
        checked_in == rendered,
        "deploy/strimzi/topics.yaml differs from what `hub topology render strimzi` renders from topology.toml; \
         regenerate it: cargo run -- topology render strimzi --out deploy/strimzi/topics.yaml"
    );
}

#[test]
fn the_render_command_writes_the_checked_in_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["--topology", &root().join("topology.toml").to_string_lossy(), "topology", "render", "strimzi"])
        .args(["--cluster", CLUSTER, "--out", &dir.path().to_string_lossy()])
        .output()
        .expect("hub runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let written = std::fs::read_to_string(dir.path().join("topics.yaml")).expect("topics.yaml written into the folder");
    let checked_in = std::fs::read_to_string(root().join("deploy/strimzi/topics.yaml")).expect("checked in");
    assert!(
        written == checked_in,
        "`hub topology render strimzi` (absolute --topology) differs from the checked-in file"
    );
}

#[test]
fn kafka_topics_match_the_topology() {
    let topology = topology();
    let docs = yaml_docs(&root().join("deploy/strimzi/topics.yaml"));
    let mut p = Problems::default();
    p.check(docs.len() == topology.topics.len(), || {
        format!("{} KafkaTopics for {} topics", docs.len(), topology.topics.len())
    });
    for topic in &topology.topics {
        let Some(doc) = docs.iter().find(|d| text(d, "spec.topicName") == topic.name) else {
            p.0.push(format!("no KafkaTopic for {}", topic.name));
            continue;
        };
        p.check(text(doc, "kind") == "KafkaTopic", || format!("{}: kind", topic.name));
        let cluster = at(doc, "metadata.labels").and_then(|l| l.get("strimzi.io/cluster")).and_then(Value::as_str);
        p.check(cluster == Some(CLUSTER), || format!("{}: cluster label {cluster:?}", topic.name));
        p.check(at(doc, "spec.partitions").and_then(Value::as_i64) == Some(i64::from(topic.partitions)), || {
            format!("{}: partitions", topic.name)
        });
        p.check(at(doc, "spec.replicas").and_then(Value::as_i64) == Some(i64::from(topic.replication_factor)), || {
            format!("{}: replicas", topic.name)
        });
        let config: BTreeMap<String, String> = at(doc, "spec.config")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
            })
            .unwrap_or_default();
        // Declared in topology.toml, independently of Topic::kafka_configs.
        p.check(config.get("cleanup.policy").map(String::as_str) == Some(topic.cleanup_policy.as_kafka()), || {
            format!("{}: cleanup.policy", topic.name)
        });
        p.check(config.get("min.insync.replicas") == Some(&topic.min_insync_replicas.to_string()), || {
            format!("{}: min.insync.replicas", topic.name)
        });
        let retention = topic.retention.map(|r| r.as_millis().to_string());
        p.check(config.get("retention.ms") == retention.as_ref(), || format!("{}: retention.ms", topic.name));
        for (k, v) in &topic.configs {
            p.check(config.get(k) == Some(v), || format!("{}: {k}", topic.name));
        }
    }
    p.finish("KafkaTopics");
}

#[test]
fn kafka_cluster_is_kraft_rack_aware_durable_and_secured() {
    let manifests = manifests();
    let mut p = Problems::default();
    let kafka: Vec<&Value> = manifests.iter().map(|(_, d)| d).filter(|d| text(d, "kind") == "Kafka").collect();
    p.check(kafka.len() == 1, || format!("{} Kafka resources", kafka.len()));
    let Some(kafka) = kafka.first() else { return p.finish("Kafka") };
    p.check(text(kafka, "metadata.name") == CLUSTER, || "the cluster is not named interchange".to_owned());
    p.check(at(kafka, "spec.zookeeper").is_none(), || "ZooKeeper configured: KRaft only".to_owned());
    let pools: Vec<&Value> = manifests.iter().map(|(_, d)| d).filter(|d| text(d, "kind") == "KafkaNodePool").collect();
    let count = |role: &str| {
        pools
            .iter()
            .filter(|n| list(n, "spec.roles").iter().any(|r| r == role))
            .filter_map(|n| at(n, "spec.replicas").and_then(Value::as_i64))
            .sum::<i64>()
    };
    p.check(count("broker") == 3 && count("controller") == 3, || "3 brokers and 3 controllers expected".to_owned());
    for pool in &pools {
        let label = at(pool, "metadata.labels").and_then(|l| l.get("strimzi.io/cluster")).and_then(Value::as_str);
        p.check(label == Some(CLUSTER), || format!("node pool {} not in the cluster", text(pool, "metadata.name")));
    }
    p.check(!text(kafka, "spec.kafka.rack.topologyKey").is_empty(), || "no rack awareness".to_owned());
    let config = at(kafka, "spec.kafka.config").cloned().unwrap_or(Value::Null);
    for (key, value) in [
        ("min.insync.replicas", 2),
        ("default.replication.factor", 3),
        ("offsets.topic.replication.factor", 3),
        ("transaction.state.log.replication.factor", 3),
        ("transaction.state.log.min.isr", 2),
    ] {
        p.check(config.get(key).and_then(Value::as_i64) == Some(value), || format!("{key} should be {value}"));
    }
    let listeners = list(kafka, "spec.kafka.listeners");
    p.check(!listeners.is_empty(), || "no listeners".to_owned());
    for l in listeners {
        let auth = text(l, "authentication.type");
        p.check(l.get("tls") == Some(&Value::Bool(true)) && ["tls", "scram-sha-512"].contains(&auth), || {
            format!("listener {} is not TLS with mTLS or SCRAM authentication", text(l, "name"))
        });
    }
    p.check(text(kafka, "spec.kafka.authorization.type") == "simple", || "ACLs not enforced".to_owned());
    p.check(
        at(kafka, "spec.entityOperator.topicOperator").is_some()
            && at(kafka, "spec.entityOperator.userOperator").is_some(),
        || "the Topic and User Operators must run".to_owned(),
    );
    p.finish("Kafka");
}

/// (resource type, name, pattern type, operation).
type Acls = BTreeSet<(String, String, String, String)>;

fn grant(acls: &mut Acls, kind: &str, name: &str, pattern: &str, ops: &[&str]) {
    for op in ops {
        acls.insert((kind.to_owned(), name.to_owned(), pattern.to_owned(), (*op).to_owned()));
    }
}

/// The fixed group.ids of the processor's assign-only readers, read from its source.
fn fixed_processor_groups() -> Vec<String> {
    let mut out = Vec::new();
    for file in files_under(&root().join("processors/src/runtime"), &[".rs"]) {
        let source = std::fs::read_to_string(&file).expect("source");
        for (i, _) in source.match_indices(".set(\"group.id\", \"") {
            let rest = &source[i + ".set(\"group.id\", \"".len()..];
            out.push(rest[..rest.find('"').expect("closing quote")].to_owned());
        }
        // Core's consumer builder: `.read_committed("client-id", "group-id")`, when the group is a literal.
        for (i, _) in source.match_indices(".read_committed(\"") {
            let rest = &source[i + ".read_committed(\"".len()..];
            let Some(end) = rest.find('"') else { continue };
            if let Some(group) = rest[end + 1..].strip_prefix(", \"").and_then(|g| g.split('"').next()) {
                out.push(group.to_owned());
            }
        }
    }
    out.sort();
    out
}

/// What the processors need: read inputs, lookups and state (and describe their configs: the
/// runtime checks co-partitioning and compaction), write outputs, state and dead letters, their
/// group, and transactional ids `<group>-<instance>`.
fn processor_needs(topology: &Topology) -> Acls {
    let mut acls = Acls::new();
    for p in &topology.processors {
        for t in p.inputs.iter().chain(&p.lookups).chain([&p.state]) {
            grant(&mut acls, "topic", t, "literal", &["Read", "Describe", "DescribeConfigs"]);
        }
        for t in p.outputs.iter().chain([&p.state, &p.dead_letter]) {
            grant(&mut acls, "topic", t, "literal", &["Write", "Describe"]);
        }
        grant(&mut acls, "group", &p.name, "literal", &["Read"]);
        grant(&mut acls, "transactionalId", &format!("{}-", p.name), "prefix", &["Write", "Describe"]);
    }
    for group in fixed_processor_groups() {
        grant(&mut acls, "group", &group, "literal", &["Describe"]);
    }
    acls
}

fn sink_needs(topology: &Topology, names: &[String]) -> Acls {
    let mut acls = Acls::new();
    for s in topology.sinks.iter().filter(|s| names.contains(&s.name)) {
        grant(&mut acls, "topic", &s.input, "literal", &["Read", "Describe"]);
        for t in s.results.iter().chain([&s.dead_letter]) {
            grant(&mut acls, "topic", t, "literal", &["Write", "Describe"]);
        }
        grant(&mut acls, "group", &s.name, "literal", &["Read"]);
    }
    acls
}

/// `hub dlq replay`: read the dead-letter topics, write back to what was consumed (never to a
/// processor's state topic), groups `hub-dlq-*`.
fn ops_needs(topology: &Topology) -> Acls {
    let mut acls = Acls::new();
    let states: Vec<&String> = topology.processors.iter().map(|p| &p.state).collect();
    for dlq in topology.processors.iter().map(|p| &p.dead_letter).chain(topology.sinks.iter().map(|s| &s.dead_letter)) {
        grant(&mut acls, "topic", dlq, "literal", &["Read", "Describe"]);
    }
    let consumed =
        topology.processors.iter().flat_map(|p| p.inputs.iter()).chain(topology.sinks.iter().map(|s| &s.input));
    for t in consumed.filter(|t| !states.contains(t)) {
        grant(&mut acls, "topic", t, "literal", &["Write", "Describe"]);
    }
    grant(&mut acls, "group", "hub-dlq-", "prefix", &["Read"]);
    acls
}

/// KEDA: Describe on the topics and groups of every consumer it scales.
fn keda_needs(topology: &Topology) -> Acls {
    let mut acls = Acls::new();
    for p in &topology.processors {
        p.inputs.iter().for_each(|t| grant(&mut acls, "topic", t, "literal", &["Describe"]));
        grant(&mut acls, "group", &p.name, "literal", &["Describe"]);
    }
    for s in &topology.sinks {
        grant(&mut acls, "topic", &s.input, "literal", &["Describe"]);
        grant(&mut acls, "group", &s.name, "literal", &["Describe"]);
    }
    acls
}

fn granted(user: &Value) -> Acls {
    let mut acls = Acls::new();
    for acl in list(user, "spec.authorization.acls") {
        let ops: Vec<&str> = list(acl, "operations").iter().filter_map(Value::as_str).collect();
        let pattern = match text(acl, "resource.patternType") {
            "" => "literal",
            p => p,
        };
        grant(&mut acls, text(acl, "resource.type"), text(acl, "resource.name"), pattern, &ops);
        if !["", "allow"].contains(&text(acl, "type")) {
            acls.insert(("deny".into(), String::new(), String::new(), String::new()));
        }
    }
    acls
}

#[test]
fn kafka_users_hold_exactly_the_acls_the_topology_needs() {
    let topology = topology();
    let manifests = manifests();
    let mut needs: BTreeMap<String, (String, Acls)> = BTreeMap::new();
    // Which user each role runs as: the Secret its workload mounts.
    for w in workloads(&manifests) {
        let role = w.args.first().cloned().unwrap_or_default();
        let acls = match role.as_str() {
            "ingest" => {
                let mut a = Acls::new();
                topology
                    .routes
                    .iter()
                    .for_each(|r| grant(&mut a, "topic", &r.topic, "literal", &["Write", "Describe"]));
                a
            }
            "process" => processor_needs(&topology),
            "sink" => sink_needs(&topology, &sink_args(&w.args)),
            other => panic!("unexpected role {other}"),
        };
        let entry = needs.entry(w.kafka_user.clone()).or_insert_with(|| (w.name.to_owned(), Acls::new()));
        entry.1.extend(acls);
    }
    // KEDA's user: the certificate its TriggerAuthentication presents.
    for (_, doc) in manifests.iter().filter(|(_, d)| text(d, "kind") == "TriggerAuthentication") {
        for r in list(doc, "spec.secretTargetRef").iter().filter(|r| text(r, "parameter") == "cert") {
            needs.insert(text(r, "name").to_owned(), ("KEDA".to_owned(), keda_needs(&topology)));
        }
    }
    needs.insert("hub-ops".to_owned(), ("hub dlq replay".to_owned(), ops_needs(&topology)));
    // The reference flow's demo partners publish stock to the processors' lookup topics.
    let mut demo = Acls::new();
    for t in topology.processors.iter().filter_map(|p| p.lookups.first()) {
        grant(&mut demo, "topic", t, "literal", &["Write", "Describe"]);
    }
    needs.insert("hub-demo".to_owned(), ("hub demo".to_owned(), demo));

    let mut p = Problems::default();
    let users: Vec<&Value> = manifests.iter().map(|(_, d)| d).filter(|d| text(d, "kind") == "KafkaUser").collect();
    for user in &users {
        let name = text(user, "metadata.name");
        let label = at(user, "metadata.labels").and_then(|l| l.get("strimzi.io/cluster")).and_then(Value::as_str);
        p.check(label == Some(CLUSTER), || format!("user {name}: not in the cluster"));
        p.check(["tls", "scram-sha-512"].contains(&text(user, "spec.authentication.type")), || {
            format!("user {name}: no authentication")
        });
        let Some((who, needed)) = needs.get(name) else {
            p.0.push(format!("user {name} is used by no role"));
            continue;
        };
        let has = granted(user);
        let extra: Vec<_> = has.difference(needed).collect();
        let missing: Vec<_> = needed.difference(&has).collect();
        p.check(extra.is_empty(), || format!("user {name} ({who}) is granted more than it needs: {extra:?}"));
        p.check(missing.is_empty(), || format!("user {name} ({who}) lacks: {missing:?}"));
        for (kind, resource, _, op) in &has {
            p.check(resource != "*" && op != "All" && kind != "cluster", || {
                format!("user {name}: broad grant {kind} {resource} {op}")
            });
        }
    }
    for name in needs.keys() {
        p.check(users.iter().any(|u| text(u, "metadata.name") == name), || format!("no KafkaUser {name}"));
    }
    p.finish("KafkaUser ACLs");
}

#[test]
fn acl_comparison_can_fail() {
    let topology = topology();
    let mut user: Value = serde_json::json!({ "spec": { "authorization": { "acls": [
        { "resource": { "type": "topic", "name": "orders.inbound", "patternType": "literal" }, "operations": ["Write", "Describe"] },
        { "resource": { "type": "topic", "name": "orders.inbound", "patternType": "literal" }, "operations": ["Read"] }
    ]}}});
    let mut needed = Acls::new();
    let orders = topology.routes.iter().filter(|r| r.topic == "orders.inbound");
    orders.for_each(|r| grant(&mut needed, "topic", &r.topic, "literal", &["Write", "Describe"]));
    assert_ne!(granted(&user), needed, "an extra Read must show");
    if let Some(acls) = user.pointer_mut("/spec/authorization/acls").and_then(Value::as_array_mut) {
        acls.pop();
    }
    assert_eq!(granted(&user), needed);
}

/// Strimzi's CRDs, generated from its API model by `scripts/stack strimzi-crds`.
fn crd_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HUB_STRIMZI_CRDS") {
        return PathBuf::from(dir);
    }
    let pom = std::fs::read_to_string(root().join("scripts/stack.d/strimzi/pom.xml")).expect("strimzi pom");
    let version = pom.split("<strimzi.version>").nth(1).and_then(|r| r.split('<').next()).expect("strimzi.version");
    let cache = std::env::var("INTERCHANGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/interchange"));
    cache.join(format!("strimzi-{version}/crds"))
}

/// The OpenAPI schema of `kind` at version v1, made strict: an object that lists its properties
/// accepts no others (the API server's strict field validation), so a misspelt field fails.
fn schema(kind: &str) -> Value {
    let dir = crd_dir();
    let file = dir.join(format!("{}.yaml", kind.to_lowercase()));
    assert!(
        file.is_file(),
        "Strimzi's CRD for {kind} is missing at {}: run `scripts/stack strimzi-crds` (scripts/test does) \
         or set HUB_STRIMZI_CRDS",
        file.display()
    );
    let crd = yaml_docs(&file).remove(0);
    let version = list(&crd, "spec.versions").iter().find(|v| text(v, "name") == "v1").expect("v1 served");
    let mut schema = at(version, "schema.openAPIV3Schema").cloned().expect("schema");
    fn strict(v: &mut Value) {
        match v {
            Value::Object(map) => {
                let open = map.contains_key("additionalProperties")
                    || map.contains_key("x-kubernetes-preserve-unknown-fields");
                if map.contains_key("properties") && !open {
                    map.insert("additionalProperties".to_owned(), Value::Bool(false));
                }
                map.values_mut().for_each(strict);
            }
            Value::Array(items) => items.iter_mut().for_each(strict),
            _ => {}
        }
    }
    strict(&mut schema);
    schema
}

fn violations(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

#[test]
fn strimzi_resources_validate_against_strimzis_crd_schemas() {
    let mut validators = BTreeMap::new();
    let mut p = Problems::default();
    let mut checked = 0;
    for (file, doc) in manifests() {
        if !text(&doc, "apiVersion").starts_with("kafka.strimzi.io/") {
            continue;
        }
        let kind = text(&doc, "kind").to_owned();
        p.check(text(&doc, "apiVersion") == render::STRIMZI_API_VERSION, || {
            format!("{}: {kind} not at v1", file.display())
        });
        let validator = validators
            .entry(kind.clone())
            .or_insert_with(|| jsonschema::validator_for(&schema(&kind)).expect("the CRD schema compiles"));
        let errors = violations(validator, &doc);
        p.check(errors.is_empty(), || {
            format!("{} {kind} {}: {}", file.display(), text(&doc, "metadata.name"), errors.join("; "))
        });
        checked += 1;
    }
    p.check(checked >= 15, || format!("only {checked} Strimzi resources validated"));
    p.finish("Strimzi schema validation");

    // The validation can fail: a misspelt field, a wrong type, an unknown enum value.
    let kafka = manifests().into_iter().map(|(_, d)| d).find(|d| text(d, "kind") == "Kafka").expect("Kafka");
    let validator = &validators["Kafka"];
    for (pointer, value) in [
        ("/spec/kafka/listenrs", serde_json::json!([])),
        ("/spec/kafka/listeners/0/port", serde_json::json!("9093")),
        ("/spec/kafka/listeners/0/authentication/type", serde_json::json!("password")),
    ] {
        let mut broken = kafka.clone();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        if let Some(obj) = broken.pointer_mut(parent).and_then(Value::as_object_mut) {
            obj.insert(key.to_owned(), value);
        }
        assert!(!violations(validator, &broken).is_empty(), "{pointer} should be refused");
    }
}
