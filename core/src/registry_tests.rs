//! Unit tests of the one registry client builder, against a loopback HTTP server that records
//! the request heads it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// How the recording server treats a request.
#[derive(Clone, Copy)]
enum Mode {
    /// `200 {}`.
    Answer,
    /// No answer for a minute.
    Silent,
    /// Closes the connection without an answer on the first `n` requests, then answers.
    CloseFirst(usize),
}

/// A server treating each request as `mode` says; it keeps each request head.
async fn recording_server(mode: Mode) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/apis/ccompat/v7/", listener.local_addr().expect("addr"));
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let count = {
                    let mut seen = seen.lock().expect("lock");
                    seen.push(String::from_utf8_lossy(&buffer[..read]).into_owned());
                    seen.len()
                };
                match mode {
                    Mode::Silent => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    Mode::CloseFirst(n) if count <= n => return,
                    _ => {}
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, heads)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn basic_auth_goes_on_every_request() {
    let (url, heads) = recording_server(Mode::Answer).await;
    let registry = RegistrySettings::new(&url).with_basic_auth(Some("hub:s3cret:with-colon")).client().expect("client");
    registry.ping().await.expect("ping");
    registry.subjects().await.expect("subjects");
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 2);
    // base64("hub:s3cret:with-colon"): the user ends at the first colon, the password keeps the rest.
    for head in &heads {
        assert_eq!(header(head, "authorization"), Some("Basic aHViOnMzY3JldDp3aXRoLWNvbG9u"), "{head}");
    }
    assert!(
        heads[0].starts_with("GET /apis/ccompat/v7/config HTTP/1.1"),
        "the URL's trailing slash is trimmed: {}",
        heads[0]
    );
    assert!(heads[1].starts_with("GET /apis/ccompat/v7/subjects HTTP/1.1"), "{}", heads[1]);
}

#[tokio::test]
async fn without_credentials_no_authorization_header() {
    let (url, heads) = recording_server(Mode::Answer).await;
    RegistrySettings::new(&url).client().expect("client").ping().await.expect("ping");
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1);
    assert_eq!(header(&heads[0], "authorization"), None);
}

#[tokio::test]
async fn a_user_without_password() {
    let (url, heads) = recording_server(Mode::Answer).await;
    RegistrySettings::new(&url).with_basic_auth(Some("hub")).client().expect("client").ping().await.expect("ping");
    // base64("hub:")
    assert_eq!(header(&heads.lock().expect("lock")[0], "authorization"), Some("Basic aHViOg=="));
}

#[tokio::test]
async fn the_timeout_bounds_a_registry_that_never_answers() {
    let (url, heads) = recording_server(Mode::Silent).await;
    let settings = RegistrySettings { timeout: Duration::from_millis(300), ..RegistrySettings::new(&url) };
    let error = settings.client().expect("client").ping().await.expect_err("no answer");
    assert!(matches!(&error, CoreError::RegistryUnreachable { .. }), "{error}");
    assert_eq!(error.class(), crate::ErrorClass::Transient, "records wait for the registry: {error}");
    assert_eq!(heads.lock().expect("lock").len(), 1, "the request reached the server");
}

#[tokio::test]
async fn a_connection_closed_under_a_request_is_tried_again_on_a_new_one() {
    let (url, heads) = recording_server(Mode::CloseFirst(2)).await;
    let registry = RegistrySettings::new(&url).client().expect("client");
    registry.subjects().await.expect("the third attempt is answered");
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 3, "two closed connections, then the answer");
    assert!(heads.iter().all(|h| h.starts_with("GET /apis/ccompat/v7/subjects HTTP/1.1")), "{heads:?}");
}

#[tokio::test]
async fn a_registry_that_keeps_closing_is_unreachable_after_three_attempts_and_the_error_says_why() {
    let (url, heads) = recording_server(Mode::CloseFirst(usize::MAX)).await;
    let registry = RegistrySettings::new(&url).client().expect("client");
    let error = registry.register("s", "\"string\"").await.expect_err("never answered");
    assert!(matches!(&error, CoreError::RegistryUnreachable { .. }), "{error}");
    assert_eq!(error.class(), crate::ErrorClass::Transient, "{error}");
    assert!(error.to_string().contains("closed"), "the cause is named, not only the URL: {error}");
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 3, "{heads:?}");
    assert!(heads.iter().all(|h| h.starts_with("POST /apis/ccompat/v7/subjects/s/versions HTTP/1.1")), "{heads:?}");
}

#[test]
fn a_missing_or_empty_ca_file_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.pem");
    let settings =
        RegistrySettings { ca_file: Some(missing.clone()), ..RegistrySettings::new("https://registry:8081") };
    let error = settings.client().expect_err("missing file");
    assert!(matches!(&error, CoreError::Config { path, .. } if *path == missing), "{error}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let settings = RegistrySettings { ca_file: Some(empty.clone()), ..RegistrySettings::new("https://registry:8081") };
    let error = settings.client().expect_err("no certificate");
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
}

#[test]
fn debug_output_hides_the_credentials() {
    let settings = RegistrySettings::new("http://r").with_basic_auth(Some("hub:s3cret"));
    let text = format!("{settings:?}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}
