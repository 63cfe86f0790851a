//! `hub console` in tests: an operators file of two (alice may replay, bob only reads) and the
//! console role started against the local stack, killed on drop.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::readmodel::cql_nodes;
use super::{bootstrap, registry_url, repo, TopologyCopy};

pub const ALICE_TOKEN: &str = "alice-console-token-7f3b";
pub const BOB_TOKEN: &str = "bob-console-token-91c2";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A running `hub console`.
pub struct Console {
    child: Child,
    pub base: String,
    log: std::path::PathBuf,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Console {
    /// Writes the operators file next to the topology and starts the console on a free port,
    /// sampling the roles' `metrics` (their `/metrics` URLs).
    pub async fn start(topology: &TopologyCopy, prefix: &str, metrics: &[String]) -> Console {
        let operators = topology.dir.path().join("operators.toml");
        std::fs::write(
            &operators,
            format!(
                "[[operator]]\nname = \"alice\"\ntoken_sha256 = \"{}\"\npermissions = [\"replay\"]\n\n\
                 [[operator]]\nname = \"bob\"\ntoken_sha256 = \"{}\"\n",
                sha256_hex(ALICE_TOKEN),
                sha256_hex(BOB_TOKEN)
            ),
        )
        .expect("operators file");
        let port = super::free_port();
        let log = topology.dir.path().join(format!("console-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["--topology", topology.arg(), "--topic-prefix", prefix, "--cql-nodes", &cql_nodes(), "console"])
            .args(["--console-listen", &format!("127.0.0.1:{port}"), "--operators"])
            .arg(&operators)
            .args(["--metrics-from", &metrics.join(",")])
            .env("HUB_BOOTSTRAP_SERVERS", bootstrap())
            .env("HUB_REGISTRY_URL", registry_url())
            .env("HUB_LOG_FORMAT", "json")
            .env("HUB_CONSOLE_JAEGER_URL", "http://jaeger.test:16686")
            .current_dir(repo())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn hub console");
        let console = Console { child, base: format!("http://127.0.0.1:{port}"), log };
        let deadline = Instant::now() + Duration::from_secs(60);
        // Ready: listening, and connected to the read model.
        while super::http_status(&format!("127.0.0.1:{port}"), "/readyz") != Some(200) {
            assert!(Instant::now() < deadline, "console not up:\n{}", console.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        console
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
