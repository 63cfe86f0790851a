//! A real browser for tests: Debian's headless Chromium driven through its chromedriver
//! (WebDriver, the `fantoccini` client), both installed by `scripts/test`; and axe-core (npm),
//! the accessibility checker, run inside the page.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::Value;

/// chromedriver and one Chromium session; both end on drop, with every process Chromium started
/// (chromedriver runs in a process group of its own, and the whole group is killed: killing
/// chromedriver alone left each test's Chromium running).
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn path_of(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session of `width` x `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromium = path_of("HUB_TEST_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = path_of("HUB_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        for program in [&chromium, &chromedriver] {
            assert!(
                std::path::Path::new(program).exists(),
                "{program} is missing: scripts/test installs Debian's chromium and chromium-driver"
            );
        }
        let port = super::free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        // The machine's network is closed: no background traffic, no first-run, no sandbox (root).
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--window-size={width},{height}"),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": chromium, "args": args }));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            match ClientBuilder::native().capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no WebDriver session from {chromedriver}: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        client.set_window_size(width, height).await.expect("window size");
        Browser { client, driver, _profile: profile }
    }

    /// Waits until the browser is on a URL containing `url_part` and its page has an element
    /// matching the CSS `marker`: a click or an Enter navigates without waiting for the next page.
    /// Returns the text of the new page's `main`.
    pub async fn arrive(&self, url_part: &str, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            if url.contains(url_part) && self.client.find(Locator::Css(marker)).await.is_ok() {
                if let Ok(main) = self.client.find(Locator::Css("main")).await {
                    if let Ok(text) = main.text().await {
                        return text;
                    }
                }
            }
            assert!(Instant::now() < deadline, "never reached {url_part} with {marker}; at {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the viewport as `name`.png under `HUB_TEST_SCREENSHOTS` (default
    /// `target/screenshots`); returns its path.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let dir = std::env::var("HUB_TEST_SCREENSHOTS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| super::repo().join("target/screenshots"));
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// axe-core's WCAG 2 A and AA rules run on the current page: each violation as
    /// `rule (impact): targets`.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let path = path_of(
            "HUB_TEST_AXE",
            &format!(
                "{}/.cache/interchange/npm/axe-core-4.14.1/node_modules/axe-core/axe.min.js",
                std::env::var("HOME").unwrap_or_default()
            ),
        );
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("axe-core is not installed at {path} ({e}): scripts/test installs it from npm"));
        self.client.execute(&source, vec![]).await.expect("inject axe-core");
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
              .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): '
                  + v.nodes.map(n => n.target.join(' ')).join(', '))))
              .catch(e => done(['axe failed: ' + e]));";
        let result = self.client.execute_async(script, vec![]).await.expect("axe.run");
        match result {
            Value::Array(items) => items.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect(),
            other => vec![format!("unexpected axe answer {other}")],
        }
    }
}
