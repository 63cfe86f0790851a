//! Helpers shared by the integration tests: running `hub`, isolated topic prefixes, broken copies.
#![allow(dead_code)]

pub mod avro;
pub mod browser;
pub mod console;
pub mod edge;
pub mod kafka;
pub mod orders;
pub mod pipeline;
pub mod process;
pub mod python;
pub mod readmodel;
pub mod sinks;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A service address from the environment (set by `scripts/stack env`), or the stack default.
pub fn service(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

pub fn bootstrap() -> String {
    service("HUB_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
}

pub fn registry_url() -> String {
    service("HUB_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
}

/// The second tenant's secrets (globex-shop, globex-erp of the shipped topology) and the returns
/// flow's (payflow): every role that resolves partner secrets needs them
/// (`.envs(common::GLOBEX_ENV)`).
pub const GLOBEX_ENV: [(&str, &str); 5] = [
    ("HUB_PARTNER_GLOBEX_SHOP_API_KEYS", edge::GLOBEX_KEY),
    ("HUB_PARTNER_GLOBEX_SHOP_WEBHOOK_SECRETS", edge::GLOBEX_WEBHOOK_SECRET),
    ("HUB_PARTNER_GLOBEX_SHOP_SIGNING_SECRET", edge::GLOBEX_SIGNING_SECRET),
    ("HUB_PARTNER_GLOBEX_ERP_TOKEN", edge::GLOBEX_ERP_TOKEN),
    ("HUB_PARTNER_PAYFLOW_TOKEN", PAYFLOW_TOKEN),
];

/// The payment partner's bearer token in tests.
pub const PAYFLOW_TOKEN: &str = "payflow-token-for-tests";

/// A `hub` child process, killed (and reaped) on drop.
pub struct Hub(pub std::process::Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Status code of `GET path` on `addr` (host:port), or None when nothing answers. Plain std I/O:
/// callable from sync and async tests alike.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(3))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A topic prefix no other test run uses, so tests share one broker and registry.
pub fn unique_prefix(test: &str) -> String {
    format!("it-{test}-{}.", uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap_or("x"))
}

/// `hub` with the given arguments, pointed at the local stack.
pub fn hub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(args)
        .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
        .env("HUB_REGISTRY_URL", registry_url())
        .env("HUB_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .current_dir(repo())
        .output()
        .expect("run hub")
}

/// Stdout and stderr of a run, for assertions and failure messages.
pub fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A copy of topology.toml with `edits` (from, to) applied, each of which must match exactly once,
/// and copies of schemas/ and machines/ beside it.
pub struct TopologyCopy {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TopologyCopy {
    pub fn new(edits: &[(&str, &str)]) -> Self {
        let mut text = std::fs::read_to_string(repo().join("topology.toml")).expect("topology.toml");
        for (from, to) in edits {
            assert_eq!(text.matches(from).count(), 1, "edit needs exactly one {from:?}");
            text = text.replacen(from, to, 1);
        }
        if std::env::var("HUB_TEST_ORDER_SAGA").is_ok_and(|v| v == "declared") {
            text = order_saga_declared(&text);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&repo().join("schemas"), &dir.path().join("schemas"));
        copy_dir(&repo().join("machines"), &dir.path().join("machines"));
        let path = dir.path().join("topology.toml");
        std::fs::write(&path, text).expect("write topology");
        Self { dir, path }
    }

    pub fn schema_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("schemas").join(format!("{name}.avsc"))
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }
}

/// The topology with its order saga run from `machines/order_saga.toml` by the interpreter
/// instead of the coded saga (README, "The order saga, declared"). Tests run with
/// `HUB_TEST_ORDER_SAGA=declared` take it (scripts/test runs the order flow's tests so).
pub fn order_saga_declared(text: &str) -> String {
    interchange_core::topology::machine::order_saga_declared(text).expect("one coded order saga")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}
