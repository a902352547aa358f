//! The one error body of the UUCall dialect and the mapping of service errors
//! onto the statuses the spec lists.
//!
//! Every failure is `{"code": <status>, "message": "…", "field": <name or null>}`
//! sent with the HTTP status equal to `code`. `field` names the parameter at
//! fault (by its spec name) when there is one. The spec lists 401, 403, 405,
//! 424, 429 and 500 for every operation; a missing id, another enterprise's
//! id and a bad value are all "invalid parameters" (424), so that nothing
//! tells another enterprise's ids from ids that do not exist. 503 (busy,
//! shutting down, past the deadline: nothing was done) is the one status
//! beyond the spec's list.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use subledger_service::{Resource, ServiceError};

/// Why a request failed.
#[derive(Debug)]
pub enum Refusal {
    /// 401: no bearer token, or one that is not the enterprise's API token
    /// or a live sub-user session.
    Unauthenticated,
    /// 403: another enterprise's `uid` / `uidName`, or a caller without the
    /// application the operation needs.
    Forbidden(String),
    /// 405: a method the path does not serve.
    MethodNotAllowed,
    /// 424: a parameter is missing, malformed, out of range, or names
    /// nothing this enterprise has.
    Invalid { field: Option<String>, message: String },
    /// 429: over the rate limit; retry after the given seconds.
    RateLimited { retry_after_s: u64 },
    /// 503: nothing was done; retry.
    Unavailable(&'static str),
    /// 500: the database failed (logged); never caused by input.
    Internal,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    message: &'a str,
    field: Option<&'a str>,
}

impl Refusal {
    /// A 424 about one parameter.
    pub fn invalid(field: &str, message: impl Into<String>) -> Refusal {
        Refusal::Invalid { field: Some(field.to_owned()), message: message.into() }
    }

    /// The 424 of an id or name that names nothing this enterprise has
    /// (another enterprise's included).
    pub fn unknown(field: &str) -> Refusal {
        Refusal::invalid(field, format!("{field} names nothing in this enterprise"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            // 424 Failed Dependency: the spec's status for invalid parameters.
            Refusal::Invalid { .. } => StatusCode::FAILED_DEPENDENCY,
            Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Maps a service error, naming `field` when it is the lookup of a
    /// resource that missed: each operation knows which of its parameters
    /// named the thing (`roleId`, `subUserName` …).
    pub fn from_service(error: ServiceError, field_of: impl Fn(Resource) -> &'static str) -> Refusal {
        match error {
            ServiceError::NotFound(resource) => Refusal::unknown(field_of(resource)),
            ServiceError::Invalid { field, reason } => Refusal::invalid(field, reason),
            ServiceError::AmountTooLarge(what) => Refusal::Invalid { field: None, message: format!("amount too large: {what}") },
            ServiceError::UsernameTaken => Refusal::invalid("account", "this account name is taken in this enterprise"),
            ServiceError::PhoneTaken => Refusal::invalid("mphone", "this phone number is used by another sub-user"),
            ServiceError::AccountLimit { limit } => Refusal::invalid("account", format!("the enterprise has reached its limit of {limit} sub-users")),
            ServiceError::Conflict(what) => Refusal::Invalid { field: None, message: what.to_owned() },
            ServiceError::Forbidden { app, code } => Refusal::Forbidden(format!("this needs the application {app} ({code})")),
            ServiceError::Unauthenticated(_) => Refusal::Unauthenticated,
            ServiceError::RateLimited { retry_after_s } => Refusal::RateLimited { retry_after_s },
            ServiceError::Unavailable(_) => Refusal::Unavailable("the service is shutting down; nothing was done, retry"),
            ServiceError::Busy(_) => Refusal::Unavailable("the service is busy; nothing was done, retry"),
            ServiceError::Storage(storage) if storage.is_retryable() => {
                tracing::warn!(error = %storage, "UUCall request hit a transient storage conflict");
                Refusal::Unavailable("the database is busy; nothing was changed, retry")
            }
            other => {
                tracing::error!(error = %other, "UUCall request failed");
                Refusal::Internal
            }
        }
    }
}

/// The parameter each kind of resource is named by when an operation does
/// not say otherwise.
pub fn default_field(resource: Resource) -> &'static str {
    match resource {
        Resource::Role => "roleId",
        Resource::Notice => "noticeId",
        Resource::Account => "subUserId",
        Resource::TimeCard => "id",
        Resource::Tenant => "uid",
        Resource::Wallet | Resource::Transfer | Resource::Hold | Resource::Product | Resource::Session | Resource::AdAccount | Resource::AdRequest => "id",
    }
}

impl From<ServiceError> for Refusal {
    fn from(error: ServiceError) -> Self {
        Refusal::from_service(error, default_field)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, field): (String, Option<String>) = match self {
            Refusal::Unauthenticated => ("send the enterprise's API token or a sub-user's session token as Authorization: Bearer <token>".to_owned(), None),
            Refusal::Forbidden(message) => (message, None),
            Refusal::MethodNotAllowed => ("this path does not serve this method".to_owned(), None),
            Refusal::Invalid { field, message } => (message, field),
            Refusal::RateLimited { retry_after_s } => {
                let body = Json(Body { code: status.as_u16(), message: "too many requests; retry later", field: None });
                let mut response = (status, body).into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s.max(1)));
                return response;
            }
            Refusal::Unavailable(message) => {
                let mut response = (status, Json(Body { code: status.as_u16(), message, field: None })).into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            Refusal::Internal => ("the server failed; nothing was changed".to_owned(), None),
        };
        (status, Json(Body { code: status.as_u16(), message: &message, field: field.as_deref() })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(refusal: Refusal) -> (u16, String) {
        let response = refusal.into_response();
        let status = response.status().as_u16();
        (status, String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
    }

    #[tokio::test]
    async fn every_refusal_has_the_one_body() {
        assert_eq!(body(Refusal::invalid("pageSize", "too big")).await, (424, r#"{"code":424,"message":"too big","field":"pageSize"}"#.to_owned()));
        assert_eq!(body(Refusal::from(ServiceError::NotFound(Resource::Role))).await, (424, r#"{"code":424,"message":"roleId names nothing in this enterprise","field":"roleId"}"#.to_owned()));
        let (status, text) = body(Refusal::MethodNotAllowed).await;
        assert_eq!(status, 405);
        assert!(text.starts_with(r#"{"code":405,"#) && text.ends_with(r#""field":null}"#), "{text}");
        let response = Refusal::RateLimited { retry_after_s: 3 }.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }
}
