//! The fake's HTTP side: admin endpoints, and every other path answered as
//! Graph would, after the latency and faults a test set.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::Control;
use crate::world::{Fault, Params, World};

type Shared = Arc<Mutex<World>>;

/// How long a hanging call waits before the fake gives up on it (longer
/// than any client's deadline: to the client, it never answers).
const HANG_FOR: Duration = Duration::from_secs(3600);

fn lock(world: &Shared) -> std::sync::MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) async fn serve(listener: tokio::net::TcpListener, world: Shared) {
    let app = Router::new().route("/__control", post(control)).route("/__calls", get(calls)).route("/__account/{id}", get(account)).fallback(graph).with_state(world);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the fake Graph server stopped");
    }
}

/// `POST /__control`: one [`Control`] or an array of them, applied in order.
async fn control(State(world): State<Shared>, body: Bytes) -> Response {
    let controls = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items.into_iter().map(serde_json::from_value::<Control>).collect::<Result<Vec<_>, _>>(),
        Ok(item) => serde_json::from_value::<Control>(item).map(|control| vec![control]),
        Err(error) => Err(error),
    };
    let outcome = match controls {
        Ok(controls) => {
            let mut world = lock(&world);
            controls.into_iter().try_for_each(|control| world.apply(control))
        }
        Err(error) => Err(format!("not a control: {error}")),
    };
    match outcome {
        Ok(()) => axum::Json(json!({"ok": true})).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, axum::Json(json!({"ok": false, "error": error}))).into_response(),
    }
}

async fn calls(State(world): State<Shared>) -> Response {
    axum::Json(lock(&world).calls_json()).into_response()
}

async fn account(State(world): State<Shared>, Path(id): Path<String>) -> Response {
    match lock(&world).account(&id) {
        Some(seed) => axum::Json(seed).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Every Graph path: counted, delayed, maybe hung or failed, then answered.
async fn graph(State(world): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    let arrival = lock(&world).arrive(uri.path());
    if !arrival.latency.is_zero() {
        tokio::time::sleep(arrival.latency).await;
    }
    let (status, body) = match arrival.fault {
        Some(Fault::Hang) => {
            tokio::time::sleep(HANG_FOR).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Some(Fault::Fail { status, error: Some(error) }) => (status, Json(json!({"error": error}))),
        Some(Fault::Fail { status, error: None }) => (status, Text("<html><body>Sorry, something went wrong.</body></html>")),
        None => {
            let mut params: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
            params.extend(form_urlencoded::parse(&body).into_owned());
            let (status, body) = lock(&world).answer(method.as_str(), uri.path(), &Params(params));
            (status, Json(body))
        }
    };
    let mut response = match body {
        Json(value) => axum::Json(value).into_response(),
        Text(text) => ([(axum::http::header::CONTENT_TYPE, "text/html")], text).into_response(),
    };
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in arrival.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

enum Body {
    Json(Value),
    Text(&'static str),
}
use Body::{Json, Text};
