//! The native API's one error type and its mapping from service errors.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use subledger_domain::ledger::TransferRejection;
use subledger_service::{Resource, ServiceError};
use utoipa::ToSchema;

use crate::input::InvalidText;

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case.
    pub code: String,
    /// For people.
    pub message: String,
}

#[derive(Debug)]
pub enum ApiError {
    Unauthenticated,
    BadRequest {
        code: &'static str,
        message: String,
    },
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Too many requests in flight; nothing was done.
    Busy,
    Service(ServiceError),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: &str) -> Self {
        ApiError::BadRequest { code, message: message.to_owned() }
    }

    pub fn from_json_rejection(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(ref r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            other => ApiError::bad_request("invalid_body", &other.body_text()),
        }
    }
}

impl From<InvalidText> for ApiError {
    fn from(invalid: InvalidText) -> Self {
        ApiError::bad_request("invalid_text", &invalid.to_string())
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError::Service(error)
    }
}

fn rejection_code(reason: TransferRejection) -> &'static str {
    reason.as_str()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message): (StatusCode, &str, String) = match self {
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", "send a valid bearer token in the Authorization header".to_owned()),
            ApiError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large".to_owned()),
            ApiError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json".to_owned()),
            ApiError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy", "the server is serving as many requests as it may; nothing was done, retry".to_owned()),
            ApiError::Service(error) => {
                let message = error.to_string();
                match error {
                    ServiceError::NotFound(resource) => (
                        StatusCode::NOT_FOUND,
                        match resource {
                            Resource::Tenant => "tenant_not_found",
                            Resource::Account => "account_not_found",
                            Resource::Wallet => "wallet_not_found",
                            Resource::Transfer => "transfer_not_found",
                            Resource::Hold => "hold_not_found",
                            Resource::Product => "product_not_found",
                            Resource::Role => "role_not_found",
                            Resource::Notice => "notice_not_found",
                            Resource::Session => "session_not_found",
                            Resource::TimeCard => "time_card_not_found",
                            Resource::AdAccount => "ad_account_not_found",
                            Resource::AdRequest => "ad_request_not_found",
                        },
                        message,
                    ),
                    ServiceError::UsernameTaken => (StatusCode::CONFLICT, "username_taken", message),
                    ServiceError::PhoneTaken => (StatusCode::CONFLICT, "phone_taken", message),
                    ServiceError::IdempotencyKeyReused => (StatusCode::CONFLICT, "idempotency_key_reused", message),
                    ServiceError::HoldNotPending(_) => (StatusCode::CONFLICT, "hold_not_pending", message),
                    ServiceError::Replayed => (StatusCode::CONFLICT, "replayed", message),
                    ServiceError::Conflict(_) => (StatusCode::CONFLICT, "conflict", message),
                    ServiceError::AccountLimit { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "account_limit_reached", message),
                    ServiceError::Rejected(reason) => (StatusCode::UNPROCESSABLE_ENTITY, rejection_code(reason), message),
                    ServiceError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_request", message),
                    ServiceError::AmountTooLarge(_) => (StatusCode::BAD_REQUEST, "amount_too_large", message),
                    ServiceError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
                    ServiceError::Busy(_) => return ApiError::Busy.into_response(),
                    ServiceError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", message),
                    ServiceError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated", message),
                    ServiceError::AdRefused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "ad_refused", message),
                    ServiceError::Upstream(subledger_ads::PlatformError::Timeout) => (StatusCode::GATEWAY_TIMEOUT, "ad_platform_timeout", message),
                    ServiceError::Upstream(_) => (StatusCode::BAD_GATEWAY, "ad_platform_error", message),
                    ServiceError::RateLimited { retry_after_s } => {
                        let body = Json(ErrorBody { error: ErrorDetail { code: "rate_limited".to_owned(), message } });
                        let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
                        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(retry_after_s.max(1)));
                        return response;
                    }
                    ServiceError::Storage(storage) if storage.is_retryable() => {
                        tracing::warn!(error = %storage, "native API request hit a transient storage conflict");
                        (StatusCode::SERVICE_UNAVAILABLE, "retry_later", "the database is busy; nothing was changed, retry".to_owned())
                    }
                    ServiceError::Storage(storage) => {
                        tracing::error!(error = %storage, "native API request failed in storage");
                        (StatusCode::INTERNAL_SERVER_ERROR, "storage_error", "the database failed; nothing was changed".to_owned())
                    }
                }
            }
        };
        let busy = code == "busy";
        let mut response = (status, Json(ErrorBody { error: ErrorDetail { code: code.to_owned(), message } })).into_response();
        if busy {
            // Nothing was done: the client may come back at once.
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        response
    }
}
