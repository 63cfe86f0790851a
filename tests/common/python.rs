//! Confluent's own Python client (confluent-kafka from PyPI, installed by `scripts/test`) driven
//! from the tests through `tests/python/confluent_avro.py`: JSON lines in, JSON lines out; and
//! the `standardwebhooks` reference library (PyPI) through `scripts/verify-webhook.py`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{bootstrap, registry_url, repo};

/// Where `scripts/test` installed confluent-kafka with its Avro serde.
fn pythonpath() -> String {
    let path = std::env::var("HUB_TEST_CONFLUENT_PYTHONPATH").unwrap_or_else(|_| {
        format!("{}/.cache/interchange/python/confluent-kafka-2.16.1", std::env::var("HOME").unwrap_or_default())
    });
    assert!(
        std::path::Path::new(&path).join("confluent_kafka").is_dir(),
        "confluent-kafka (PyPI) is not installed in {path}: scripts/test installs it (pip install --target)"
    );
    path
}

/// Runs the script in `mode` over `requests`; every line it printed, parsed. Panics with the
/// script's stderr when it fails.
pub fn run(mode: &str, requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new("python3")
        .arg(repo().join("tests/python/confluent_avro.py"))
        .arg(mode)
        .env("PYTHONPATH", pythonpath())
        .env("HUB_REGISTRY_URL", registry_url())
        .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    // Written from another thread: the script answers as it reads, and a full stdout pipe would
    // otherwise block both sides.
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("python3 finished");
    writer.join().expect("writer thread").expect("write requests");
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "confluent_avro.py {mode} failed:\n{err}\n{out}");
    out.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// `run` on a blocking thread, for async tests.
pub async fn run_async(mode: &str, requests: Vec<Value>) -> Vec<Value> {
    let mode = mode.to_owned();
    tokio::task::spawn_blocking(move || run(&mode, &requests)).await.expect("python task")
}

/// Every record of `topic` as Confluent's consumer (a fresh group, read_committed, from the
/// start) and stock Avro deserializer read them: exactly `count` records, or a panic saying what
/// the consumer saw (assignments, errors, positions, watermarks).
pub async fn consume(topic: &str, count: usize) -> Vec<Value> {
    let request = serde_json::json!({"topic": topic, "count": count, "timeout_s": 60});
    let mut theirs = run_async("consume", vec![request]).await;
    let done = theirs.pop().expect("the script's summary");
    assert_eq!(done["done"], count, "{topic}: Confluent's consumer read every record: {done}");
    theirs
}

/// Hex of bytes, as the script takes them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of the script's hex.
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).expect("even hex"), 16).expect("hex"))
        .collect()
}

/// Verifies a webhook as its receiver would, with the `standardwebhooks` reference library (the
/// Standard Webhooks project's Python package from PyPI, installed by `scripts/test`): the
/// payload it verified, or what it said when it refused.
pub fn verify_webhook(secret: &str, body: &[u8], headers: &axum::http::HeaderMap) -> Result<Value, String> {
    let path = std::env::var("HUB_TEST_PYTHONPATH").unwrap_or_else(|_| {
        format!("{}/.cache/interchange/python/standardwebhooks-1.0.0", std::env::var("HOME").unwrap_or_default())
    });
    assert!(
        std::path::Path::new(&path).join("standardwebhooks").is_dir(),
        "the reference verifier is not installed in {path}: scripts/test installs it (pip install --target)"
    );
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let input = serde_json::json!({
        "secret": secret,
        "body": String::from_utf8_lossy(body),
        "headers": { "webhook-id": h("webhook-id"), "webhook-timestamp": h("webhook-timestamp"), "webhook-signature": h("webhook-signature") },
    });
    let mut child = Command::new("python3")
        .env("PYTHONPATH", &path)
        .arg(repo().join("scripts/verify-webhook.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the verifier");
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write");
    let output = child.wait_with_output().expect("the verifier's output");
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(format!("{out}{err}"));
    }
    serde_json::from_str(out.trim()).map_err(|e| format!("{e}: {out}"))
}
