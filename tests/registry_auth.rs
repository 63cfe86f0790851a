//! `HUB_REGISTRY_BASIC_AUTH` reaches the registry from every role and tool: a recording proxy in
//! front of the real registry (Apicurio does not enforce auth here, so the proxy is what can
//! tell) sees the `Authorization` header on every request of `hub schemas register`,
//! `hub ingest`, `hub process`, `hub sink` and `hub dlq list`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine;
use common::edge::{hub_ok, Edge};
use common::process::Processor;
use common::sinks::{dispatch, produce, topology, Partner, SinkProcess};
use common::{registry_url, unique_prefix};

const AUTH: &str = "hub-test:s3cret";

/// One request the proxy forwarded: method, path and its Authorization header.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// A proxy on loopback that forwards everything to the local registry and records each request.
async fn recording_proxy() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let upstream = registry_url();
    let http = reqwest::Client::new();
    let record = Arc::clone(&seen);
    let app =
        axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let (record, upstream, http) = (Arc::clone(&record), upstream.clone(), http.clone());
            async move {
                let path = uri.path().strip_prefix("/r").unwrap_or(uri.path()).to_owned();
                let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                record.lock().expect("lock").push(Seen {
                    method: method.to_string(),
                    path: path.clone(),
                    authorization,
                });
                let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                let mut request = http.request(method, format!("{upstream}{path}{query}")).body(body.to_vec());
                for name in ["accept", "content-type"] {
                    if let Some(value) = headers.get(name) {
                        request = request.header(name, value.as_bytes());
                    }
                }
                match request.send().await {
                    Ok(response) => {
                        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
                        let kind = response.headers().get("content-type").cloned();
                        let bytes = response.bytes().await.unwrap_or_default();
                        let mut answer = (status, bytes).into_response();
                        if let Some(kind) = kind {
                            answer.headers_mut().insert("content-type", kind);
                        }
                        answer
                    }
                    Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/r"), seen)
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The requests since the last call, every one with the expected header; at least one.
fn take_checked(seen: &Arc<Mutex<Vec<Seen>>>, role: &str) -> Vec<Seen> {
    let requests: Vec<Seen> = std::mem::take(&mut *seen.lock().expect("lock"));
    assert!(!requests.is_empty(), "{role} made no registry request through the proxy");
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(AUTH));
    let without: Vec<_> = requests.iter().filter(|r| r.authorization.as_deref() != Some(expected.as_str())).collect();
    assert!(
        without.is_empty(),
        "{role}: {} of {} registry requests without the credentials: {without:?}",
        without.len(),
        requests.len()
    );
    eprintln!("{role}: {} registry requests, all with the credentials", requests.len());
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_role_sends_the_registry_credentials() {
    let (proxy, seen) = recording_proxy().await;
    // The ERP refuses the one command: a result and a dead letter for `hub dlq list` to read.
    let erp = Partner::start(Arc::new(|_, _| (400, vec![]))).await;
    let shop = Partner::ok().await;
    let topology = topology(
        &erp.url,
        &shop.url,
        "rate_limit = { per_second = 100, burst = 10 }\nretry = { initial_backoff = \"50ms\", max_backoff = \"100ms\", max_attempts = 2 }",
        "rate_limit = { per_second = 100, burst = 10 }",
    );
    let prefix = unique_prefix("registry-auth");
    let via_proxy = ["--registry-url", proxy.as_str(), "--registry-basic-auth", AUTH];

    hub_ok(&topology, &prefix, &["topology", "apply", "--allow-fewer-replicas"]);
    let mut args = via_proxy.to_vec();
    args.extend(["schemas", "register"]);
    hub_ok(&topology, &prefix, &args);
    let register = take_checked(&seen, "hub schemas register");
    assert!(register.iter().any(|r| r.method == "POST" && r.path.ends_with("/versions")), "{register:?}");

    let edge = Edge::start(&topology, &prefix, &via_proxy);
    drop(edge);
    take_checked(&seen, "hub ingest");

    let processor = Processor::start(&topology, &prefix, "registry-auth", &via_proxy);
    drop(processor);
    take_checked(&seen, "hub process");

    produce(&format!("{prefix}orders.commands"), "dispatch_command", &[dispatch("auth-1", 0)], None).await;
    let sink = SinkProcess::start_with(&topology, &prefix, &["erp-dispatch"], "auth", &via_proxy);
    let dlq = format!("{prefix}orders.dlq");
    wait_for("the refused command's dead letter", Duration::from_secs(90), || common::kafka::count(&dlq) >= 1).await;
    drop(sink);
    let sink_requests = take_checked(&seen, "hub sink");
    assert!(
        sink_requests.iter().any(|r| r.path.starts_with("/schemas/ids/")),
        "the sink read the command's writer schema: {sink_requests:?}"
    );

    let mut args = via_proxy.to_vec();
    args.extend(["dlq", "list", "--json"]);
    let listed = hub_ok(&topology, &prefix, &args);
    assert_eq!(listed.lines().count(), 1, "one dead letter: {listed}");
    let dlq_requests = take_checked(&seen, "hub dlq list");
    assert!(dlq_requests.iter().any(|r| r.path.starts_with("/schemas/ids/")), "{dlq_requests:?}");
}
