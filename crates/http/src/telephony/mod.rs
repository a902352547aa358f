//! The telephony balance dialect (spec 002): `/balance/*`. Being written.

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}

/// The answer to a request that outlived its deadline.
pub fn timed_out() -> axum::response::Response {
    axum::response::IntoResponse::into_response((http::StatusCode::SERVICE_UNAVAILABLE, "timed out"))
}
