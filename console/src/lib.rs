//! The operator console (`hub console`): server-rendered pages for the hub's on-call engineer,
//! a role of its own behind operator authentication ([`operators`]), never on the partners'
//! edge. What it serves: sign-in, an overview of what the hub is doing now ([`overview`], from
//! [`live`]: the roles' metrics and Kafka's consumer lag), partners ([`partners`]), orders
//! ([`orders`]: search, an order's state and timeline from the read model) dead letters
//! ([`dead_letters`]: browse and filter, one letter's cause and original record decoded) and
//! their replay ([`replay`]: a dry run, a confirmation, the `replay` permission, an audit record
//! in the replay's own transaction, a second replay refused unless forced).
//!
//! Every answer carries a content security policy that allows no inline script or style (one
//! script file of the console's own refreshes the overview in place), is not cached, and may
//! not be framed; every page works without JavaScript.

use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use interchange_ingest::read_model::{connect_in_background, Slot};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod dead_letters;
mod error;
mod html;
mod letters;
mod live;
pub mod operators;
mod orders;
mod overview;
mod partners;
mod quiet;
mod replay;
mod settings;
mod traffic;

pub use dead_letters::DeadLetterSettings;
pub use error::ConsoleError;
use html::{page, Section};
pub use live::LiveSources;
use operators::{Operator, Operators, COOKIE};
pub use replay::AuditSettings;
pub use settings::{ConsoleOptions, Settings};

/// The console's shared state.
pub(crate) struct Console {
    operators: Operators,
    read_model: Slot,
    dead_letters: Option<DeadLetterSettings>,
    /// The dead letters, tailed into memory.
    letters: Option<Arc<letters::LetterIndex>>,
    /// Whether the topology keeps a read model the console must reach before it is ready.
    needs_read_model: bool,
    audit: Option<AuditSettings>,
    /// The topology: partners' limits, consumer groups.
    topology: interchange_core::topology::Topology,
    /// Jaeger's UI, to link trace ids to.
    jaeger: Option<String>,
    /// Decodes records of every contract through the registry (its schemas cached).
    reader: Option<Arc<interchange_core::avro::Reader>>,
    /// Reads an order's commands and deliveries from Kafka.
    traffic: Option<traffic::TrafficReader>,
    /// What the hub is doing now, sampled in the background.
    live: Arc<live::LiveView>,
    /// The transactional producer of replays, made at the first one; one replay at a time.
    replayer: tokio::sync::Mutex<Option<rdkafka::producer::FutureProducer>>,
}

/// The console's router, its read model connected in the background (pages that need it answer
/// 503 until then).
pub fn router(settings: Settings, shutdown: CancellationToken) -> Router {
    let slot: Slot = Arc::new(OnceLock::new());
    let needs_read_model = settings.read_model.is_some();
    if let Some(config) = settings.read_model {
        connect_in_background(config, slot.clone(), shutdown.clone());
    }
    let letters = settings.dead_letters.clone().map(|d| letters::LetterIndex::start(d, shutdown.clone()));
    let reader = settings.dead_letters.as_ref().and_then(|d| {
        let registry = d.services.registry.client().ok()?;
        Some(Arc::new(interchange_core::avro::Reader::new(registry, d.contracts.clone())))
    });
    let traffic = settings.dead_letters.as_ref().map(|d| traffic::TrafficReader::new(d.services.kafka.clone()));
    let live = live::LiveView::start(settings.live, settings.topology.clone(), shutdown);
    let console = Arc::new(Console {
        operators: settings.operators,
        read_model: slot,
        dead_letters: settings.dead_letters,
        letters,
        needs_read_model,
        audit: settings.audit,
        topology: settings.topology,
        jaeger: settings.jaeger_url,
        reader,
        traffic,
        live,
        replayer: tokio::sync::Mutex::new(None),
    });
    Router::new()
        .route("/", get(overview::page))
        .route("/overview/live", get(overview::fragment))
        .route("/partners", get(partners::list))
        .route("/partners/{name}", get(partners::partner))
        .route("/console.js", get(script))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/orders", get(orders::search))
        .route("/orders/{partner}/{correlation_id}", get(orders::order))
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/replay", post(replay::replay))
        .route("/dead-letters/{topic}/{partition}/{offset}", get(dead_letters::letter))
        .route("/console.css", get(css))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

/// Serves the console on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, settings: Settings, shutdown: CancellationToken) -> Result<(), ConsoleError> {
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(%address, "console listening");
    let app = router(settings, shutdown.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|source| ConsoleError::Serve { address, source })
}

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |value: &'static str| HeaderValue::from_static(value);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        set("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, set("nosniff"));
    headers.insert(header::REFERRER_POLICY, set("no-referrer"));
    headers.insert(header::CACHE_CONTROL, set("no-store"));
    response
}

/// A page for operators only: without a known token, the sign-in form (401).
impl FromRequestParts<Arc<Console>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Self, Self::Rejection> {
        operators::token_of(&parts.headers)
            .and_then(|token| console.operators.authenticate(token))
            .cloned()
            .ok_or_else(|| sign_in_page(StatusCode::UNAUTHORIZED, None))
    }
}

fn sign_in_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem = problem.map(html::alert).unwrap_or_default();
    let body = format!(
        "{problem}<form method=\"post\" action=\"/login\"><p><label for=\"token\">Operator token\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button type=\"submit\">Sign in</button></p></form>"
    );
    (status, Html(page("Sign in", Section::SignIn, None, &body))).into_response()
}

async fn login_form() -> Response {
    sign_in_page(StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
struct Login {
    token: String,
}

async fn login(State(console): State<Arc<Console>>, Form(form): Form<Login>) -> Response {
    let token = form.token.trim();
    let Some(operator) = console.operators.authenticate(token) else {
        return sign_in_page(StatusCode::UNAUTHORIZED, Some("That token is not an operator's."));
    };
    tracing::info!(operator = %operator.name, "operator signed in");
    // The token is the session: HttpOnly (no script reads it), SameSite=Strict (no other site's
    // form sends it), for the console's paths only.
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    let expired = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Ready once the read model (when the topology keeps one) is connected.
async fn ready(State(console): State<Arc<Console>>) -> Response {
    if console.needs_read_model && console.read_model.get().is_none() {
        (StatusCode::SERVICE_UNAVAILABLE, "read model not connected").into_response()
    } else {
        "ready".into_response()
    }
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], html::SCRIPT).into_response()
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], html::CSS).into_response()
}
