//! The HTTP layer: one module per dialect, plus the native API and the
//! operational endpoints. Dialects translate; they hold no business rule.

pub mod ads;
mod input;
mod metrics;
pub mod native;
mod numbers;
pub mod ratelimit;
pub mod sendcloud;
pub mod server;
pub mod telephony;
pub mod uucall;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use subledger_service::Services;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

pub use metrics::HttpMetrics;
use ratelimit::{RateLimitConfig, RateLimits};
use sendcloud::SendCloudConfig;
use server::ConnectionLimits;

/// Default of `--http-requests-in-flight-max`. The ledger batches hundreds of
/// transfers per commit and the benchmark peaks at 64 clients; a thousand
/// requests in flight keeps every batch full while bounding the memory held
/// by requests (SendCloud bodies are read before authentication, at most
/// 64 KiB each).
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: usize = 1_024;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub sendcloud: SendCloudConfig,
    /// Longest a request may take before it is answered with a timeout.
    pub request_timeout: Duration,
    /// Requests of the dialects served at once; beyond it they are answered busy at once.
    pub requests_in_flight_max: usize,
    /// Largest JSON body of the native API.
    pub json_body_bytes_max: usize,
    pub connections: ConnectionLimits,
    /// Per tenant, per session and login rate limits.
    pub rate_limits: RateLimitConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            sendcloud: SendCloudConfig::default(),
            request_timeout: Duration::from_secs(30),
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            json_body_bytes_max: 256 * 1024,
            connections: ConnectionLimits::default(),
            rate_limits: RateLimitConfig::default(),
        }
    }
}

/// Serves the whole application on `listener` until `shutdown` completes,
/// then lets in-flight requests finish and returns.
pub async fn serve(listener: TcpListener, services: Services, config: HttpConfig, mut registry: Registry, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let metrics = HttpMetrics::new(&mut registry);
    let connections = config.connections;
    let router = app(services, config, metrics.clone(), registry);
    server::run(listener, router, connections, metrics, shutdown).await
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub services: Services,
    pub sendcloud: SendCloudConfig,
    /// The rate limits every dialect applies to its authenticated callers.
    pub limits: RateLimits,
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
fn app(services: Services, config: HttpConfig, metrics: HttpMetrics, registry: Registry) -> Router {
    // One cap for every dialect; `/healthz`, `/readyz`, `/metrics` and
    // `/openapi.json` stay outside it, so liveness answers under any load.
    let in_flight = Arc::new(Semaphore::new(config.requests_in_flight_max));
    let admission = |answers: Answers| Admission { in_flight: in_flight.clone(), deadline: config.request_timeout, answers, metrics: metrics.clone() };
    let native_bounds = admission(Answers { busy: native::busy, timed_out: native::timed_out });
    let sendcloud_bounds = admission(Answers { busy: sendcloud::unavailable, timed_out: sendcloud::unavailable });
    let telephony_bounds = admission(Answers { busy: telephony::busy, timed_out: telephony::timed_out });
    let uucall_bounds = admission(Answers { busy: uucall::busy, timed_out: uucall::timed_out });
    let ads_bounds = admission(Answers { busy: ads::busy, timed_out: ads::timed_out });
    let (native, openapi) = native::router();
    let state = AppState(Arc::new(AppInner { services, sendcloud: config.sendcloud, limits: RateLimits::new(&config.rate_limits), registry, openapi_json: native::openapi::document(&openapi) }));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .merge(native.layer(DefaultBodyLimit::max(config.json_body_bytes_max)).layer(axum::middleware::from_fn_with_state(native_bounds, admit)))
        .merge(sendcloud::router().layer(axum::middleware::from_fn_with_state(sendcloud_bounds, admit)))
        .merge(telephony::router().layer(axum::middleware::from_fn_with_state(telephony_bounds, admit)))
        .merge(uucall::router().layer(axum::middleware::from_fn_with_state(uucall_bounds, admit)))
        .merge(ads::router().layer(axum::middleware::from_fn_with_state(ads_bounds, admit)))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track))
        .layer(CatchPanicLayer::new())
}

/// How a dialect says it cannot serve a request, in its own format.
#[derive(Clone, Copy)]
struct Answers {
    /// The in-flight cap is reached; nothing was done.
    busy: fn() -> Response,
    /// The request outlived its deadline.
    timed_out: fn() -> Response,
}

/// The bounds on a dialect's requests: the in-flight cap shared by every
/// dialect, and the deadline of each request.
#[derive(Clone)]
struct Admission {
    in_flight: Arc<Semaphore>,
    deadline: Duration,
    answers: Answers,
    metrics: HttpMetrics,
}

/// Serves a dialect's request within the bounds, or answers in the dialect's
/// format. Beyond the in-flight cap the answer is immediate, so a flood costs
/// no memory and no queueing; `Retry-After` tells clients when to come back.
/// Past the deadline the work may still complete (a transfer already in a
/// ledger batch commits); clients retry with the same idempotency key
/// (native) or check `list` (SendCloud).
async fn admit(State(admission): State<Admission>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let Ok(_permit) = admission.in_flight.try_acquire() else {
        admission.metrics.request_refused();
        let mut response = (admission.answers.busy)();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let _counted = admission.metrics.request_admitted();
    match tokio::time::timeout(admission.deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit_ms = admission.deadline.as_millis() as u64, "request exceeded its deadline");
            (admission.answers.timed_out)()
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
