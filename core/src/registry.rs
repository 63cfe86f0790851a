//! Confluent-compatible schema registry client: `hub schemas check|register`, the ids of the
//! hub's contracts, and writer schemas by id for [`crate::avro::Reader`].

use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::error::CoreError;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What the registry says of a schema under a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compatibility {
    /// The subject has no version yet.
    NewSubject,
    /// The exact schema is already registered.
    Registered { id: i64, version: i64 },
    /// A new version that passes the subject's compatibility rule.
    Compatible,
    /// A new version the rule refuses, with the registry's reasons.
    Incompatible { messages: Vec<String> },
}

/// What a global schema id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaById {
    /// An Avro schema, as registered.
    Avro(String),
    /// A schema of another type (`JSON`, `PROTOBUF`).
    NotAvro(String),
    /// No schema has this id.
    Missing,
}

/// How the hub reaches the schema registry: the one set of settings every registry client is
/// built from ([`RegistrySettings::client`]), in every role and tool (`hub ingest`, `process`,
/// `sink`, `run`, `schemas`, `dlq`, `demo`, `bench`). `hub` fills it from `--registry-url`,
/// `--registry-basic-auth`, `--registry-timeout` and `--registry-ca-file` (or their
/// `HUB_REGISTRY_*` variables).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Base URL (for Apicurio, its `/apis/ccompat/v7` base).
    pub url: String,
    /// `user:password` for HTTP basic auth on every request (a value without `:` is a user with
    /// an empty password).
    pub basic_auth: Option<String>,
    /// Limit on one request, connecting included (connecting alone: at most 10 s).
    pub timeout: Duration,
    /// A PEM file of CA certificates trusted for an `https` registry, besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for RegistrySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySettings")
            .field("url", &self.url)
            .field("basic_auth", &self.basic_auth.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl RegistrySettings {
    /// The default limit on one registry request.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The longest wait for a connection, whatever the request timeout.
    pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Settings for `url` without credentials, with the default timeout and the system's CAs.
    pub fn new(url: &str) -> Self {
        Self { url: url.to_owned(), basic_auth: None, timeout: Self::DEFAULT_TIMEOUT, ca_file: None }
    }

    /// The same with `user:password` basic auth.
    #[must_use]
    pub fn with_basic_auth(mut self, basic_auth: Option<&str>) -> Self {
        self.basic_auth = basic_auth.map(str::to_owned);
        self
    }

    /// The one place a registry client is built: URL, basic auth, timeouts and TLS roots all
    /// come from these settings.
    pub fn client(&self) -> Result<Registry, CoreError> {
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Self::MAX_CONNECT_TIMEOUT));
        if let Some(path) = &self.ca_file {
            let config = |reason: String| CoreError::Config { path: path.clone(), reason };
            let pem = std::fs::read(path).map_err(|e| config(format!("registry CA file: {e}")))?;
            let certificates =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| config(format!("registry CA file: {e}")))?;
            if certificates.is_empty() {
                return Err(config("registry CA file: no PEM certificate in it".to_owned()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| CoreError::RegistryUnreachable { url: self.url.clone(), reason: e.to_string() })?;
        let basic_auth = self.basic_auth.as_deref().map(|auth| {
            let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
            (user.to_owned(), password.to_owned())
        });
        Ok(Registry { url: self.url.trim_end_matches('/').to_owned(), http, basic_auth })
    }
}

/// A registry client; built by [`RegistrySettings::client`] only.
#[derive(Clone)]
pub struct Registry {
    url: String,
    http: reqwest::Client,
    basic_auth: Option<(String, String)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("url", &self.url).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

impl Registry {
    /// Attempts at one registry call. A connection that fails or closes under a request (a
    /// keep-alive connection the registry dropped, a registry restarting) is tried again on a
    /// new one; a timeout is not, so [`RegistrySettings::timeout`] still bounds a silent registry.
    /// Every call is safe to repeat: reads, `PUT /config`, and registering a schema, which the
    /// registry answers with the same id.
    const ATTEMPTS: u32 = 3;
    /// The pause before the second attempt; it doubles before each further one.
    const RETRY_PAUSE: Duration = Duration::from_millis(200);

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, serde_json::Value), CoreError> {
        let url = format!("{}{path}", self.url);
        let body = body.map(|b| b.to_string());
        let mut pause = Self::RETRY_PAUSE;
        let mut attempt = 1;
        loop {
            match self.attempt(method.clone(), &url, body.as_deref()).await {
                Err(e)
                    if attempt < Self::ATTEMPTS
                        && !e.is_timeout()
                        && (e.is_connect() || e.is_request() || e.is_body()) =>
                {
                    tracing::debug!(url = %url, attempt, error = %causes(&e), "registry call failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(CoreError::RegistryUnreachable { url, reason: causes(&e) }),
                Ok((status, text)) => {
                    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                    return Ok((status, value));
                }
            }
        }
    }

    async fn attempt(
        &self,
        method: Method,
        url: &str,
        body: Option<&str>,
    ) -> Result<(StatusCode, String), reqwest::Error> {
        let mut request = self.http.request(method, url).header("Accept", CONTENT_TYPE);
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            request = request.header("Content-Type", CONTENT_TYPE).body(body.to_owned());
        }
        let response = request.send().await?;
        let status = response.status();
        Ok((status, response.text().await?))
    }

    fn refused(subject: &str, status: StatusCode, body: &serde_json::Value) -> CoreError {
        let message = serde_json::from_value::<ErrorBody>(body.clone())
            .map(|b| b.message)
            .ok()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| body.to_string());
        CoreError::Registry { subject: subject.to_owned(), status: status.as_u16(), message }
    }

    /// A cheap liveness call (the global compatibility level), for readiness probes.
    pub async fn ping(&self) -> Result<(), CoreError> {
        let (status, body) = self.call(Method::GET, "/config", None).await?;
        if !status.is_success() {
            return Err(Self::refused("*", status, &body));
        }
        Ok(())
    }

    /// Every subject the registry holds.
    pub async fn subjects(&self) -> Result<Vec<String>, CoreError> {
        let (status, body) = self.call(Method::GET, "/subjects", None).await?;
        if !status.is_success() {
            return Err(Self::refused("*", status, &body));
        }
        Ok(serde_json::from_value(body).unwrap_or_default())
    }

    /// Sets the subject's compatibility rule (`BACKWARD`, `FULL`, ...).
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), CoreError> {
        let body = json!({ "compatibility": level });
        let (status, body) = self.call(Method::PUT, &format!("/config/{}", enc(subject)), Some(body)).await?;
        if !status.is_success() {
            return Err(Self::refused(subject, status, &body));
        }
        Ok(())
    }

    /// The subject's compatibility rule, if one is set on it.
    pub async fn compatibility(&self, subject: &str) -> Result<Option<String>, CoreError> {
        let (status, body) = self.call(Method::GET, &format!("/config/{}", enc(subject)), None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Self::refused(subject, status, &body));
        }
        let level = body.get("compatibilityLevel").or_else(|| body.get("compatibility"));
        Ok(level.and_then(|l| l.as_str()).map(str::to_owned))
    }

    /// Tests `schema` against the subject without registering it.
    pub async fn check(&self, subject: &str, schema: &str) -> Result<Compatibility, CoreError> {
        let body = json!({ "schema": schema, "schemaType": "AVRO" });
        let (status, found) =
            self.call(Method::POST, &format!("/subjects/{}", enc(subject)), Some(body.clone())).await?;
        if status.is_success() {
            let id = found.get("id").and_then(serde_json::Value::as_i64).unwrap_or(-1);
            let version = found.get("version").and_then(serde_json::Value::as_i64).unwrap_or(-1);
            return Ok(Compatibility::Registered { id, version });
        }
        let (status, versions) = self.call(Method::GET, &format!("/subjects/{}/versions", enc(subject)), None).await?;
        if status == StatusCode::NOT_FOUND || versions.as_array().is_some_and(Vec::is_empty) {
            return Ok(Compatibility::NewSubject);
        }
        if !status.is_success() {
            return Err(Self::refused(subject, status, &versions));
        }
        let path = format!("/compatibility/subjects/{}/versions/latest?verbose=true", enc(subject));
        let (status, verdict) = self.call(Method::POST, &path, Some(body)).await?;
        if !status.is_success() {
            return Err(Self::refused(subject, status, &verdict));
        }
        if verdict.get("is_compatible").and_then(serde_json::Value::as_bool) == Some(true) {
            return Ok(Compatibility::Compatible);
        }
        let messages = verdict
            .get("messages")
            .and_then(serde_json::Value::as_array)
            .map(|m| m.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect())
            .unwrap_or_default();
        Ok(Compatibility::Incompatible { messages })
    }

    /// The id of exactly this schema under the subject; an error telling to run
    /// `hub schemas register` when it is not registered.
    pub async fn registered_id(&self, subject: &str, schema: &str) -> Result<u32, CoreError> {
        match self.check(subject, schema).await? {
            Compatibility::Registered { id, .. } => u32::try_from(id).map_err(|_| CoreError::Registry {
                subject: subject.to_owned(),
                status: 200,
                message: format!("schema id {id} out of range"),
            }),
            _ => Err(CoreError::Registry {
                subject: subject.to_owned(),
                status: 404,
                message: "this contract is not registered: run `hub schemas register`".to_owned(),
            }),
        }
    }

    /// What the registry holds under global id `id`. Any failure (unreachable, 5xx, refused
    /// credentials) is an error: not the fault of a record that names the id.
    pub async fn schema_by_id(&self, id: u32) -> Result<SchemaById, CoreError> {
        let (status, body) = self.call(Method::GET, &format!("/schemas/ids/{id}"), None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(SchemaById::Missing);
        }
        if !status.is_success() {
            return Err(Self::refused(&format!("schema id {id}"), status, &body));
        }
        match (body.get("schemaType").and_then(serde_json::Value::as_str), body.get("schema")) {
            (Some(kind), _) if kind != "AVRO" => Ok(SchemaById::NotAvro(kind.to_owned())),
            (_, Some(serde_json::Value::String(text))) => Ok(SchemaById::Avro(text.clone())),
            _ => Err(Self::refused(&format!("schema id {id}"), status, &body)),
        }
    }

    /// Registers `schema` under the subject and returns its global id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<i64, CoreError> {
        let body = json!({ "schema": schema, "schemaType": "AVRO" });
        let (status, answer) =
            self.call(Method::POST, &format!("/subjects/{}/versions", enc(subject)), Some(body)).await?;
        if status == StatusCode::CONFLICT {
            let message = Self::refused(subject, status, &answer).to_string();
            return Err(CoreError::Incompatible { subject: subject.to_owned(), messages: vec![message] });
        }
        if !status.is_success() {
            return Err(Self::refused(subject, status, &answer));
        }
        answer.get("id").and_then(serde_json::Value::as_i64).ok_or_else(|| Self::refused(subject, status, &answer))
    }
}

/// An error with its causes (`error sending request ...: connection closed before message
/// completed`): reqwest's own message alone does not say what failed.
fn causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Percent-encodes a subject for a path segment (record full names hold only safe characters,
/// but topic prefixes may not).
fn enc(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
