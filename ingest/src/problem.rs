//! RFC 9457 problem details: every error the edge answers is `application/problem+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::contract::Violation;

/// Base of the problem `type` URIs; each slug is documented in the README.
pub(crate) const TYPE_BASE: &str = "https://interchange.dev/problems/";

/// One problem answer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Problem {
    #[serde(rename = "type")]
    pub(crate) type_uri: String,
    pub(crate) title: String,
    pub(crate) status: u16,
    pub(crate) detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<Violation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) correlation_id: Option<String>,
    #[serde(skip)]
    pub(crate) retry_after: Option<u64>,
}

impl Problem {
    /// A problem of `status` with a slug (`invalid-body`) and a detail sentence.
    pub(crate) fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{TYPE_BASE}{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            correlation_id: None,
            retry_after: None,
        }
    }

    /// 422 with every contract violation.
    pub(crate) fn contract(violations: Vec<Violation>) -> Self {
        let n = violations.len();
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "contract-violation",
            format!("the body breaks the contract in {n} place{}", if n == 1 { "" } else { "s" }),
        );
        problem.errors = violations;
        problem
    }

    /// Asks the client to come back after `seconds`.
    pub(crate) fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// Tags the problem with the request's correlation id.
    pub(crate) fn correlated(mut self, correlation_id: &str) -> Self {
        self.correlation_id = Some(correlation_id.to_owned());
        self
    }

    /// The status code.
    pub(crate) fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The slug at the end of the type URI.
    pub(crate) fn slug(&self) -> &str {
        self.type_uri.strip_prefix(TYPE_BASE).unwrap_or(&self.type_uri)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status_code(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
