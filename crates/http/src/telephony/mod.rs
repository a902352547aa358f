//! The telephony balance dialect (spec 002): `/balance/*`.
//!
//! Authenticates with the tenant's API token (`Authorization: Bearer slt_…`,
//! as the native API does), reads `accountId` as the username of one of the
//! tenant's sub-accounts, calls the service layer (`subledger_service::statements`)
//! and renders the spec's envelope `{"code", "msg", "data"}`. No business rule
//! lives here. The choices made where the spec is silent are listed in
//! `docs/telephony.md`.

mod envelope;
mod handlers;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::request::Parts;
use serde::de::DeserializeOwned;
use subledger_domain::text::TextError;
use subledger_service::tenants::Tenant;

use envelope::Failure;

use crate::AppState;
use crate::input::{InvalidText, Part, Refuse, refuse_invalid_uri};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/balance/charges", get(handlers::charges).fallback(handlers::only_get))
        .route("/balance/getAccountAmount/{account_id}", get(handlers::account_amount).fallback(handlers::only_get))
        .route("/balance/getConsumerOverview/{account_id}", get(handlers::consumer_overview).fallback(handlers::only_get))
        .route("/balance/getAccountInfo/{account_id}", get(handlers::account_info).fallback(handlers::only_get))
        .route("/balance/getConsumerInfo/{account_id}/{month}", get(handlers::consumer_info).fallback(handlers::only_get))
        .route("/balance/getConsumptionTrend/{account_id}", get(handlers::consumption_trend).fallback(handlers::only_get))
        .layer(axum::middleware::from_fn_with_state(invalid_text as Refuse, refuse_invalid_uri))
}

/// The answer to a path or query that is not valid UTF-8 or holds NUL: 400 in the envelope.
fn invalid_text(invalid: InvalidText) -> Response {
    let part = match invalid.part {
        Part::Path => "路径参数错误",
        Part::Query => "查询参数错误",
        Part::Body => "请求体错误",
    };
    let rule = match invalid.error {
        TextError::NotUtf8 => "请使用UTF-8编码",
        TextError::Nul => "不得包含NUL字符",
    };
    Failure::BadRequest(format!("{part}：{rule}")).into_response()
}

/// The answer to a request that outlived its deadline: code 503 in the envelope.
pub fn timed_out() -> axum::response::Response {
    Failure::Unavailable("请求超时，请稍后重试").into_response()
}

/// The answer to a request beyond the in-flight cap: code 503 in the envelope; nothing was done.
pub fn busy() -> axum::response::Response {
    Failure::Unavailable("服务繁忙，请稍后重试").into_response()
}

/// The tenant whose API token authenticated the request.
struct TenantAuth(Tenant);

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = Failure;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let token = crate::native::bearer(parts).ok_or(Failure::Unauthenticated)?;
        let tenant = state.services.tenant_by_api_token(token).await?.ok_or(Failure::Unauthenticated)?;
        Ok(TenantAuth(tenant))
    }
}

/// Path parameters; undecodable ones answer 400 in the envelope.
struct PathParams<T>(T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = Failure;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParams(value)),
            Err(_) => Err(Failure::BadRequest("路径参数错误：请使用UTF-8编码".to_owned())),
        }
    }
}

/// Query parameters; malformed ones answer 400 in the envelope.
struct QueryParams<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Failure;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(_) => Err(Failure::BadRequest("查询参数错误".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_timeout_is_a_503_in_the_envelope() {
        let response = super::timed_out();
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, serde_json::json!({"code": 503, "msg": "请求超时，请稍后重试", "data": null}));
    }
}
