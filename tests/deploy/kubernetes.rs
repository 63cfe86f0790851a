//! deploy/kubernetes/ and deploy/kustomization.yaml: the hub's workloads on Kubernetes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;

/// ConfigMaps by name: their data.
pub fn config_maps(manifests: &[(PathBuf, Value)]) -> BTreeMap<String, BTreeMap<String, String>> {
    manifests
        .iter()
        .filter(|(_, d)| text(d, "kind") == "ConfigMap")
        .map(|(_, d)| {
            let data = at(d, "data")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())).collect())
                .unwrap_or_default();
            (text(d, "metadata.name").to_owned(), data)
        })
        .collect()
}

/// A hub workload: its kind and name, pod spec, the hub container's args, and the Kafka user
/// whose Secret it mounts as `kafka-user`.
pub struct Workload<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub doc: &'a Value,
    pub pod: &'a Value,
    pub container: &'a Value,
    pub args: Vec<String>,
    pub kafka_user: String,
}

pub fn workloads(manifests: &[(PathBuf, Value)]) -> Vec<Workload<'_>> {
    let mut out = Vec::new();
    for (_, doc) in manifests {
        if !["Deployment", "StatefulSet"].contains(&text(doc, "kind")) {
            continue;
        }
        let pod = at(doc, "spec.template.spec").expect("pod spec");
        let Some(container) = list(pod, "containers").iter().find(|c| text(c, "image").starts_with("interchange/hub"))
        else {
            continue;
        };
        let kafka_user = list(pod, "volumes")
            .iter()
            .find(|v| text(v, "name") == "kafka-user")
            .map(|v| text(v, "secret.secretName").to_owned())
            .unwrap_or_default();
        out.push(Workload {
            kind: text(doc, "kind"),
            name: text(doc, "metadata.name"),
            doc,
            pod,
            container,
            args: list(container, "args").iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            kafka_user,
        });
    }
    out
}

fn by_kind<'a>(manifests: &'a [(PathBuf, Value)], kind: &str) -> Vec<&'a Value> {
    manifests.iter().filter(|(_, d)| text(d, "kind") == kind).map(|(_, d)| d).collect()
}

#[test]
fn every_manifest_loads_with_its_required_fields_and_is_applied() {
    let mut p = Problems::default();
    let manifests = manifests();
    p.check(manifests.len() > 20, || format!("only {} manifests found", manifests.len()));
    for (file, doc) in &manifests {
        for field in ["apiVersion", "kind", "metadata.name"] {
            p.check(!text(doc, field).is_empty(), || format!("{}: a document without {field}", file.display()));
        }
        let mut images = Vec::new();
        strings_under_key(doc, "image", &mut images);
        for image in images {
            p.check(pinned(&image), || format!("{}: image {image:?} is not pinned", file.display()));
        }
    }
    for file in files_under(&root().join("deploy"), &[".yaml", ".yml"]) {
        // Grafana and Prometheus files, the kustomization and patches too: they must load.
        p.check(!yaml_docs(&file).is_empty(), || format!("{}: empty", file.display()));
    }
    // The kustomization applies every manifest of deploy/strimzi and deploy/kubernetes.
    let kustomization = yaml_docs(&root().join("deploy/kustomization.yaml")).remove(0);
    let listed: BTreeSet<String> =
        list(&kustomization, "resources").iter().filter_map(Value::as_str).map(str::to_owned).collect();
    let present: BTreeSet<String> = ["strimzi", "kubernetes"]
        .iter()
        .flat_map(|d| files_under(&root().join("deploy").join(d), &[".yaml"]))
        .map(|f| f.strip_prefix(root().join("deploy")).expect("under deploy").to_string_lossy().into_owned())
        .collect();
    p.check(listed == present, || format!("deploy/kustomization.yaml lists {listed:?}, the folders hold {present:?}"));
    for generated in list(&kustomization, "configMapGenerator") {
        for file in list(generated, "files").iter().filter_map(Value::as_str) {
            p.check(root().join("deploy").join(file).is_file(), || format!("configMapGenerator: no file {file}"));
        }
    }
    let tag =
        list(&kustomization, "images").iter().find(|i| text(i, "name") == "interchange/hub").map(|i| text(i, "newTag"));
    p.check(tag == Some(env!("CARGO_PKG_VERSION")), || {
        format!("the kustomization's hub image tag {tag:?} is not the crate version")
    });
    p.finish("manifests");
}

#[test]
fn workloads_wire_ports_probes_settings_and_secrets() {
    let manifests = manifests();
    let topology = topology();
    let config_maps = config_maps(&manifests);
    let users: BTreeSet<&str> = by_kind(&manifests, "KafkaUser").iter().map(|u| text(u, "metadata.name")).collect();
    let kafka = by_kind(&manifests, "Kafka");
    let cluster = kafka.first().map(|k| text(k, "metadata.name")).unwrap_or("");
    let pdbs = by_kind(&manifests, "PodDisruptionBudget");
    let mut p = Problems::default();
    let mut sinks_run = Vec::new();
    let mut roles = BTreeSet::new();
    let client =
        config_maps.get("hub-kafka-client").and_then(|c| c.get("client.properties")).cloned().unwrap_or_default();
    let client = interchange_core::kafka::parse_properties(&client);
    for w in workloads(&manifests) {
        let name = w.name;
        let role = w.args.first().cloned().unwrap_or_default();
        roles.insert(role.clone());
        let env = container_env(w.container, &config_maps);
        for var in loopback_defaults(&role) {
            p.check(env.contains_key(&var), || format!("{name} ({role}): {var} is not set"));
        }
        let listen_var = match role.as_str() {
            "ingest" => "HUB_INGEST_LISTEN",
            "process" => "HUB_PROCESSOR_LISTEN",
            _ => "HUB_SINK_LISTEN",
        };
        let listen = env.get(listen_var).cloned().unwrap_or_default();
        p.check(listen.starts_with("0.0.0.0:"), || format!("{name}: {listen_var}={listen:?}, not 0.0.0.0"));
        let port: i64 = listen.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(-1);
        let ports = list(w.container, "ports");
        let http = ports.iter().find(|p| text(p, "name") == "http");
        p.check(http.and_then(|h| at(h, "containerPort")).and_then(Value::as_i64) == Some(port), || {
            format!("{name}: container port `http` is not the listen port {port}")
        });
        let served = served_paths(&role);
        for path in ["/healthz", "/readyz", "/metrics"] {
            p.check(served.iter().any(|s| s == path), || {
                format!("{name}: the {role} role serves no {path} ({served:?})")
            });
        }
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = at(w.container, &format!("{probe}.httpGet"));
            let ok = get.is_some_and(|g| {
                text(g, "path") == path
                    && (text(g, "port") == "http" || g.get("port").and_then(Value::as_i64) == Some(port))
            });
            p.check(ok, || format!("{name}: {probe} should GET {path} on the role's port"));
        }
        for r in ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"] {
            p.check(at(w.container, &format!("resources.{r}")).is_some(), || format!("{name}: no resources.{r}"));
        }
        p.check(at(w.pod, "securityContext.runAsNonRoot") == Some(&Value::Bool(true)), || {
            format!("{name}: not runAsNonRoot")
        });
        p.check(at(w.container, "securityContext.readOnlyRootFilesystem") == Some(&Value::Bool(true)), || {
            format!("{name}: root filesystem writable")
        });
        // Shutdown: the grace period outlasts the role's own drain deadline.
        let grace = at(w.pod, "terminationGracePeriodSeconds").and_then(Value::as_f64).unwrap_or(30.0);
        let pre_stop = at(w.container, "lifecycle.preStop.sleep.seconds").and_then(Value::as_f64).unwrap_or(0.0);
        let drain = match role.as_str() {
            "ingest" => seconds(env.get("HUB_INGEST_DRAIN_DEADLINE").map_or("20s", String::as_str)),
            "process" => seconds(env.get("HUB_PROCESSOR_TRANSACTION_TIMEOUT").map_or("10s", String::as_str)),
            _ => 10.0,
        };
        p.check(grace > drain + pre_stop, || {
            format!("{name}: grace {grace}s is not longer than drain {drain}s + preStop {pre_stop}s")
        });
        // Kafka: the TLS client settings, the cluster CA and the workload's own KafkaUser.
        p.check(
            env.get("HUB_KAFKA_CONFIG").map(String::as_str) == Some("/etc/interchange/kafka/client.properties"),
            || format!("{name}: HUB_KAFKA_CONFIG does not name the mounted client.properties"),
        );
        p.check(users.contains(w.kafka_user.as_str()), || {
            format!("{name}: mounts {:?}, not a KafkaUser", w.kafka_user)
        });
        let mounts: BTreeMap<&str, &str> =
            list(w.container, "volumeMounts").iter().map(|m| (text(m, "name"), text(m, "mountPath"))).collect();
        let volume =
            |n: &str| list(w.pod, "volumes").iter().find(|v| text(v, "name") == n).cloned().unwrap_or(Value::Null);
        p.check(text(&volume("kafka-ca"), "secret.secretName") == format!("{cluster}-cluster-ca-cert"), || {
            format!("{name}: kafka-ca is not the cluster CA secret")
        });
        p.check(text(&volume("kafka-client"), "configMap.name") == "hub-kafka-client", || {
            format!("{name}: no hub-kafka-client")
        });
        for (key, mount, file) in [
            ("ssl.ca.location", "kafka-ca", "ca.crt"),
            ("ssl.certificate.location", "kafka-user", "user.crt"),
            ("ssl.key.location", "kafka-user", "user.key"),
        ] {
            let expected = format!("{}/{file}", mounts.get(mount).copied().unwrap_or("?"));
            p.check(client.get(key) == Some(&expected), || format!("{name}: {key} is not {expected}"));
        }
        p.check(mounts.get("kafka-client") == Some(&"/etc/interchange/kafka"), || {
            format!("{name}: client.properties not mounted")
        });
        // Partner secrets from the Secret, not literals.
        let sinks = sink_args(&w.args);
        for secret in partner_secrets(&topology, &role, &sinks) {
            p.check(env.get(&secret).is_some_and(|v| v.starts_with("secret:")), || {
                format!("{name}: partner secret {secret} is not read from a Secret")
            });
        }
        if sinks.iter().any(|s| {
            topology.sinks.iter().any(|t| {
                &t.name == s && matches!(t.params, interchange_core::topology::SinkParams::CqlProjector { .. })
            })
        }) {
            p.check(env.contains_key("HUB_CQL_NODES"), || format!("{name}: the projector needs HUB_CQL_NODES"));
        }
        sinks_run.extend(sinks);
        // Disruptions take one pod at a time.
        let labels = at(w.doc, "spec.selector.matchLabels").cloned().unwrap_or(Value::Null);
        p.check(pdbs.iter().any(|b| at(b, "spec.selector.matchLabels") == Some(&labels)), || {
            format!("{name}: no PodDisruptionBudget")
        });
        if w.kind == "StatefulSet" {
            p.check(env.get("HUB_INSTANCE_ID").map(String::as_str) == Some("field:metadata.name"), || {
                format!("{name}: HUB_INSTANCE_ID should be the pod name (stable in a StatefulSet)")
            });
        }
    }
    let mut expected: Vec<String> = topology.sinks.iter().map(|s| s.name.clone()).collect();
    expected.sort();
    sinks_run.sort();
    p.check(sinks_run == expected, || {
        format!("every sink should run in exactly one workload: {sinks_run:?} vs {expected:?}")
    });
    p.check(roles == BTreeSet::from(["ingest".into(), "process".into(), "sink".into()]), || {
        format!("roles: {roles:?}")
    });
    // The one-shot set-up: contracts, then the read model's tables.
    let job = by_kind(&manifests, "Job");
    let steps: Vec<String> = job
        .iter()
        .flat_map(|j| {
            list(j, "spec.template.spec.initContainers").iter().chain(list(j, "spec.template.spec.containers"))
        })
        .map(|c| list(c, "args").iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        .collect();
    p.check(steps == ["schemas register", "readmodel migrate"], || format!("init Job steps: {steps:?}"));
    p.finish("Kubernetes workloads");
}

#[test]
fn autoscaling_follows_cpu_for_ingest_and_lag_for_consumers_capped_at_partitions() {
    let manifests = manifests();
    let topology = topology();
    let config_maps = config_maps(&manifests);
    let workloads = workloads(&manifests);
    let mut p = Problems::default();
    let hpas = by_kind(&manifests, "HorizontalPodAutoscaler");
    let ingest =
        workloads.iter().find(|w| w.args.first().map(String::as_str) == Some("ingest")).expect("ingest workload");
    p.check(
        hpas.iter().any(|h| {
            text(h, "spec.scaleTargetRef.name") == ingest.name
                && list(h, "spec.metrics").iter().any(|m| text(m, "resource.name") == "cpu")
        }),
        || "no CPU HorizontalPodAutoscaler for the ingest edge".to_owned(),
    );
    let bootstrap =
        config_maps.get("hub-config").and_then(|c| c.get("HUB_BOOTSTRAP_SERVERS")).cloned().unwrap_or_default();
    let auths: Vec<&Value> = by_kind(&manifests, "TriggerAuthentication");
    let scaled = by_kind(&manifests, "ScaledObject");
    for w in workloads.iter().filter(|w| w.args.first().map(String::as_str) != Some("ingest")) {
        // What the workload consumes: (group, topic) pairs.
        let mut consumes = BTreeSet::new();
        if w.args[0] == "process" {
            for proc in &topology.processors {
                for input in &proc.inputs {
                    consumes.insert((proc.name.clone(), input.clone()));
                }
            }
        } else {
            for s in sink_args(&w.args) {
                let sink = topology.sinks.iter().find(|t| t.name == s).expect("declared sink");
                consumes.insert((sink.name.clone(), sink.input.clone()));
            }
        }
        let Some(so) = scaled.iter().find(|s| text(s, "spec.scaleTargetRef.name") == w.name) else {
            p.0.push(format!("{}: no KEDA ScaledObject", w.name));
            continue;
        };
        p.check(text(so, "spec.scaleTargetRef.kind") == w.kind, || {
            format!("{}: ScaledObject targets another kind", w.name)
        });
        let triggers: BTreeSet<(String, String)> = list(so, "spec.triggers")
            .iter()
            .filter(|t| text(t, "type") == "kafka")
            .map(|t| (text(t, "metadata.consumerGroup").to_owned(), text(t, "metadata.topic").to_owned()))
            .collect();
        p.check(triggers == consumes, || format!("{}: lag triggers {triggers:?}, consumes {consumes:?}", w.name));
        for t in list(so, "spec.triggers") {
            p.check(text(t, "metadata.bootstrapServers") == bootstrap, || {
                format!("{}: trigger bootstrap is not {bootstrap}", w.name)
            });
            let auth = text(t, "authenticationRef.name");
            p.check(auths.iter().any(|a| text(a, "metadata.name") == auth), || {
                format!("{}: no TriggerAuthentication {auth}", w.name)
            });
        }
        let partitions = consumes
            .iter()
            .filter_map(|(_, topic)| topology.topics.iter().find(|t| &t.name == topic).map(|t| i64::from(t.partitions)))
            .min()
            .unwrap_or(0);
        let max = at(so, "spec.maxReplicaCount").and_then(Value::as_i64).unwrap_or(i64::MAX);
        p.check(max <= partitions && max >= 1, || {
            format!("{}: maxReplicaCount {max} exceeds the {partitions} partitions", w.name)
        });
    }
    p.finish("autoscaling");
}

/// Kubernetes' JSON schemas (strict), fetched by `scripts/stack k8s-schemas`.
fn k8s_schema_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HUB_K8S_SCHEMAS") {
        return PathBuf::from(dir);
    }
    let script = std::fs::read_to_string(root().join("scripts/stack.d/kubernetes.sh")).expect("kubernetes.sh");
    let var = |name: &str| {
        script
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split_whitespace().next())
            .expect("version in kubernetes.sh")
            .to_owned()
    };
    let cache = std::env::var("INTERCHANGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/interchange"));
    cache.join(format!("kubernetes-schemas-{}/{}-local-strict", var("K8S_VALIDATE_VERSION"), var("K8S_SCHEMA_VERSION")))
}

#[test]
fn built_in_resources_validate_against_kubernetes_schemas() {
    let dir = k8s_schema_dir();
    let definitions = dir.join("_definitions.json");
    assert!(
        definitions.is_file(),
        "Kubernetes' schemas are missing at {}: run `scripts/stack k8s-schemas` (scripts/test does) or set HUB_K8S_SCHEMAS",
        dir.display()
    );
    let read = |path: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("schema JSON")
    };
    let registry = jsonschema::Registry::new()
        .add("https://kubernetes.io/api/_definitions.json", read(&definitions))
        .expect("definitions")
        .prepare()
        .expect("registry");
    let mut validators = BTreeMap::new();
    let mut p = Problems::default();
    let mut checked = 0;
    let mut docs = manifests();
    // The reference patch, made whole: the Deployment it patches with the container added.
    let patch = yaml_docs(&root().join("deploy/reference/sink-with-demo-partners.yaml")).remove(0);
    if let Some((file, sink)) =
        docs.iter().find(|(_, d)| text(d, "metadata.name") == "hub-sink" && text(d, "kind") == "Deployment")
    {
        let mut whole = sink.clone();
        for (key, items) in [("containers", "spec.template.spec.containers"), ("volumes", "spec.template.spec.volumes")]
        {
            let added = list(&patch, items).to_vec();
            if let Some(list) = whole.pointer_mut(&format!("/spec/template/spec/{key}")).and_then(Value::as_array_mut) {
                list.extend(added);
            }
        }
        docs.push((file.with_file_name("sink-with-demo-partners.yaml"), whole));
    }
    for (file, doc) in &docs {
        let api = text(doc, "apiVersion");
        let (group, version) = api.split_once('/').unwrap_or(("", api));
        if !["", "apps", "batch", "policy", "autoscaling"].contains(&group) {
            continue; // custom resources: Strimzi's are validated against its CRDs, the others are checked by name
        }
        let group = group.split('.').next().unwrap_or("");
        let kind = text(doc, "kind").to_lowercase();
        let name =
            if group.is_empty() { format!("{kind}-{version}.json") } else { format!("{kind}-{group}-{version}.json") };
        let validator = validators.entry(name.clone()).or_insert_with(|| {
            let schema = read(&dir.join(&name));
            jsonschema::options().with_registry(&registry).build(&schema).expect("schema compiles")
        });
        let errors: Vec<String> = validator.iter_errors(doc).map(|e| format!("{e} at {}", e.instance_path())).collect();
        p.check(errors.is_empty(), || {
            format!("{} {}: {}", file.display(), text(doc, "metadata.name"), errors.join("; "))
        });
        checked += 1;
    }
    p.check(checked >= 15, || format!("only {checked} resources validated"));
    p.finish("Kubernetes schema validation");

    // The validation can fail: an unknown field, a wrong type.
    let deployment = docs.iter().map(|(_, d)| d).find(|d| text(d, "kind") == "Deployment").expect("a Deployment");
    let validator = &validators["deployment-apps-v1.json"];
    for (pointer, value) in [("/spec/replica", serde_json::json!(2)), ("/spec/replicas", serde_json::json!("two"))] {
        let mut broken = deployment.clone();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        if let Some(obj) = broken.pointer_mut(parent).and_then(Value::as_object_mut) {
            obj.insert(key.to_owned(), value);
        }
        assert!(!validator.is_valid(&broken), "{pointer} should be refused");
    }
}
