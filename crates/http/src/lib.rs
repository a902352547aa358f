//! The HTTP layer: one module per dialect, plus the native API and the
//! operational endpoints. Dialects translate; they hold no business rule.

mod input;
mod metrics;
pub mod native;
mod numbers;
pub mod sendcloud;
pub mod telephony;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use subledger_service::Services;
use tower_http::catch_panic::CatchPanicLayer;

pub use metrics::HttpMetrics;
use sendcloud::{ReplayGuard, SendCloudConfig};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub sendcloud: SendCloudConfig,
    /// Longest a request may take before it is answered with a timeout.
    pub request_timeout: Duration,
    /// Largest JSON body of the native API.
    pub json_body_bytes_max: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { sendcloud: SendCloudConfig::default(), request_timeout: Duration::from_secs(30), json_body_bytes_max: 256 * 1024 }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub services: Services,
    pub sendcloud: SendCloudConfig,
    pub replay: ReplayGuard,
    registry: Registry,
    openapi_json: String,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// Builds the whole application: every route and every layer.
pub fn app(services: Services, config: HttpConfig, mut registry: Registry) -> Router {
    let metrics = HttpMetrics::new(&mut registry);
    let state = AppState(Arc::new(AppInner {
        services,
        replay: ReplayGuard::new(config.sendcloud.replay_entries_max),
        sendcloud: config.sendcloud,
        registry,
        openapi_json: native::openapi::document(),
    }));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .merge(
            native::router()
                .layer(DefaultBodyLimit::max(config.json_body_bytes_max))
                .layer(axum::middleware::from_fn_with_state(Deadline { limit: config.request_timeout, answer: native::timed_out }, deadline)),
        )
        .merge(sendcloud::router().layer(axum::middleware::from_fn_with_state(Deadline { limit: config.request_timeout, answer: sendcloud::timed_out }, deadline)))
        .merge(telephony::router().layer(axum::middleware::from_fn_with_state(Deadline { limit: config.request_timeout, answer: telephony::timed_out }, deadline)))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track))
        .layer(CatchPanicLayer::new())
}

/// How long a dialect's request may take, and how that dialect says it did not finish in time.
#[derive(Clone, Copy)]
struct Deadline {
    limit: Duration,
    answer: fn() -> axum::response::Response,
}

/// Answers in the dialect's own format when a request outlives its deadline.
/// The work may still complete (a transfer already in a ledger batch commits);
/// clients retry with the same idempotency key (native) or check `list` (SendCloud).
async fn deadline(State(deadline): State<Deadline>, request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    match tokio::time::timeout(deadline.limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit_ms = deadline.limit.as_millis() as u64, "request exceeded its deadline");
            (deadline.answer)()
        }
    }
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.services.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &state.registry).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], String::new());
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
}

async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi_json.clone())
}
