//! docker-compose.yml and the Dockerfile.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;

fn compose() -> Value {
    yaml_docs(&root().join("docker-compose.yml")).into_iter().next().expect("docker-compose.yml has a document")
}

fn args(service: &Value) -> Vec<String> {
    list(service, "command").iter().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn env(service: &Value) -> BTreeMap<String, String> {
    at(service, "environment")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
        .unwrap_or_default()
}

/// Host of a `host:port` or URL value.
fn host(value: &str) -> String {
    let rest = value.split_once("://").map_or(value, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    authority.split(',').next().unwrap_or("").rsplit_once(':').map_or(authority, |(h, _)| h).to_owned()
}

#[test]
fn compose_runs_every_role_wired_and_health_checked() {
    let compose = compose();
    let topology = topology();
    let services = at(&compose, "services").and_then(Value::as_object).expect("services");
    let mut p = Problems::default();
    let mut sinks_run = Vec::new();
    let mut scraped_roles = BTreeSet::new();
    let prometheus = yaml_docs(&root().join("deploy/prometheus/prometheus.yml")).remove(0);
    let mut targets = Vec::new();
    for t in list(&prometheus, "scrape_configs") {
        for target in list(t, "static_configs.0.targets").iter().filter_map(Value::as_str) {
            targets.push(target.to_owned());
        }
    }

    for (name, service) in services {
        let image = text(service, "image");
        p.check(pinned(image), || format!("service {name}: image {image:?} is not pinned"));
        if image != "interchange/hub:0.1.0" {
            continue;
        }
        let args = args(service);
        let role = args.first().cloned().unwrap_or_default();
        let env = env(service);
        // Where the shared services are: hosts that are services of this file.
        for (var, expected_host) in [
            ("HUB_BOOTSTRAP_SERVERS", "kafka"),
            ("HUB_REGISTRY_URL", "registry"),
            ("HUB_REDIS_URL", "redis"),
            ("HUB_CQL_NODES", "scylla"),
        ] {
            let h = env.get(var).map(|v| host(v)).unwrap_or_default();
            p.check(h == expected_host && services.contains_key(expected_host), || {
                format!("service {name}: {var} should point at the {expected_host} service, is {h:?}")
            });
        }
        if !["ingest", "process", "sink"].contains(&role.as_str()) {
            continue;
        }
        for var in loopback_defaults(&role) {
            p.check(env.contains_key(&var), || format!("service {name} ({role}): {var} is not set"));
        }
        let listen_var = match role.as_str() {
            "ingest" => "HUB_INGEST_LISTEN",
            "process" => "HUB_PROCESSOR_LISTEN",
            _ => "HUB_SINK_LISTEN",
        };
        let listen = env.get(listen_var).cloned().unwrap_or_default();
        p.check(listen.starts_with("0.0.0.0:"), || format!("service {name}: {listen_var}={listen:?}, not 0.0.0.0"));
        let port = listen.rsplit(':').next().unwrap_or("").to_owned();
        p.check(served_paths(&role).iter().any(|s| s == "/readyz"), || {
            format!("service {name}: {role} serves no /readyz")
        });
        let health = list(service, "healthcheck.test").iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ");
        p.check(health.contains(&format!("hub probe http://127.0.0.1:{port}/readyz")), || {
            format!("service {name}: health check {health:?} does not probe /readyz on port {port}")
        });
        let sinks = sink_args(&args);
        for secret in partner_secrets(&topology, &role, &sinks) {
            p.check(env.contains_key(&secret), || format!("service {name}: partner secret {secret} is not set"));
        }
        if role == "sink" {
            for s in &sinks {
                p.check(topology.sinks.iter().any(|t| &t.name == s), || format!("service {name}: no sink {s}"));
            }
            sinks_run.extend(sinks);
        }
        // Started only once topics and contracts exist.
        for setup in ["topology-apply", "schemas-register"] {
            p.check(
                text(service, &format!("depends_on.{setup}.condition")) == "service_completed_successfully",
                || format!("service {name} does not wait for {setup}"),
            );
        }
        // Scraped by Prometheus: at this service, or at the one whose network it shares.
        let address = text(service, "network_mode").strip_prefix("service:").unwrap_or(name).to_owned();
        let scraped = targets.contains(&format!("{address}:{port}"));
        p.check(scraped, || format!("service {name}: Prometheus does not scrape {address}:{port}"));
        scraped_roles.insert(role);
    }
    let mut expected: Vec<String> = topology.sinks.iter().map(|s| s.name.clone()).collect();
    expected.sort();
    sinks_run.sort();
    p.check(sinks_run == expected, || {
        format!("every sink should run exactly once: run {sinks_run:?}, declared {expected:?}")
    });
    p.check(scraped_roles.len() == 3, || format!("roles run and scraped: {scraped_roles:?}"));

    // The one-shot set-up, in order.
    for (service, command, after) in [
        ("topology-apply", "topology apply --allow-fewer-replicas", "kafka"),
        ("schemas-register", "schemas register", "registry"),
        ("readmodel-migrate", "readmodel migrate", "scylla"),
    ] {
        let s = &services[service];
        p.check(args(s).join(" ") == command, || format!("{service} should run `hub {command}`"));
        p.check(text(s, "restart") == "no", || format!("{service} is one-shot: restart \"no\""));
        p.check(text(s, &format!("depends_on.{after}.condition")) == "service_healthy", || {
            format!("{service} should wait for a healthy {after}")
        });
    }
    p.check(
        text(&services["projector"], "depends_on.readmodel-migrate.condition") == "service_completed_successfully",
        || "the projector should wait for the CQL migration".to_owned(),
    );
    for s in ["kafka", "registry", "redis", "scylla", "prometheus"] {
        p.check(at(&services[s], "healthcheck.test").is_some(), || format!("service {s} has no health check"));
    }
    // Grafana provisioned with the dashboard and the Prometheus data source; Prometheus with the alerts.
    let mounts =
        |s: &str| list(&services[s], "volumes").iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>();
    for (service, mount) in [
        ("grafana", "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro"),
        ("grafana", "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro"),
        ("prometheus", "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro"),
        ("prometheus", "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"),
    ] {
        p.check(mounts(service).iter().any(|m| m == mount), || format!("{service} does not mount {mount}"));
    }
    let dashboards = yaml_docs(&root().join("deploy/grafana/provisioning/dashboards/interchange.yaml")).remove(0);
    p.check(text(&dashboards, "providers.0.options.path") == "/var/lib/grafana/dashboards", || {
        "the dashboard provider reads another folder than the one mounted".to_owned()
    });
    p.check(services.contains_key("jaeger"), || "no trace viewer (jaeger)".to_owned());
    p.finish("docker-compose.yml");
}

#[test]
fn dockerfile_builds_one_pinned_nonroot_image() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let mut p = Problems::default();
    let froms: Vec<&str> = lines.iter().filter(|l| l.starts_with("FROM ")).copied().collect();
    p.check(froms.len() >= 2, || "not a multi-stage build".to_owned());
    for from in &froms {
        let image = from.split_whitespace().nth(1).unwrap_or("");
        p.check(pinned(image), || format!("{from}: image not pinned"));
    }
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap_or(0);
    let runtime = &lines[last_from..];
    p.check(runtime[0].contains("distroless"), || "the runtime image should be distroless (no shell)".to_owned());
    let user = runtime.iter().filter_map(|l| l.strip_prefix("USER ")).next_back().unwrap_or("");
    let uid = user.split(':').next().unwrap_or("");
    p.check(!uid.is_empty() && uid != "0" && uid != "root", || {
        format!("runtime USER {user:?} is not an unprivileged user")
    });
    p.check(runtime.contains(&r#"ENTRYPOINT ["/usr/local/bin/hub"]"#), || "ENTRYPOINT is not hub".to_owned());
    p.check(!runtime.iter().any(|l| l.starts_with("RUN ")), || {
        "the runtime stage runs commands (it has no shell)".to_owned()
    });
    p.check(text.contains("cargo build --release --locked -p hub --bin hub --features kafka-tls,static-zlib"), || {
        "the build is not a locked release build of hub with Kafka TLS".to_owned()
    });
    p.check(runtime.iter().any(|l| l.starts_with("COPY topology.toml ")), || {
        "topology.toml not in the image".to_owned()
    });
    p.check(runtime.iter().any(|l| l.starts_with("COPY schemas ")), || "schemas/ not in the image".to_owned());
    p.check(runtime.iter().any(|l| l.starts_with("COPY machines ")), || "machines/ not in the image".to_owned());
    // Every workspace member's sources reach the build.
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml"))
            .expect("Cargo.toml parses");
    let members = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    for member in members.iter().filter_map(|m| m.as_str()).chain(["src"]) {
        p.check(lines.iter().any(|l| *l == format!("COPY {member} {member}")), || {
            format!("{member}/ is not copied into the build")
        });
    }
    // The features the build names exist.
    let features = manifest.get("features").and_then(|f| f.as_table()).cloned().unwrap_or_default();
    for f in ["kafka-tls", "static-zlib"] {
        p.check(features.contains_key(f), || format!("Cargo.toml has no feature {f}"));
    }
    p.finish("Dockerfile");
}

/// `hub probe`, the image's health check: success only on a 2xx answer.
#[test]
fn probe_succeeds_only_on_2xx() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { continue };
            let mut request = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request);
            let status = if request.starts_with("GET /readyz ") { "200 OK" } else { "503 Service Unavailable" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    let probe = |url: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["probe", &url])
            .output()
            .expect("hub runs")
            .status
            .success()
    };
    assert!(probe(format!("http://127.0.0.1:{port}/readyz")), "200 should pass");
    assert!(!probe(format!("http://127.0.0.1:{port}/starting")), "503 should fail");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    assert!(!probe(format!("http://127.0.0.1:{closed}/readyz")), "a closed port should fail");
}
