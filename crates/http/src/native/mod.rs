//! The native API (`/v1`): JSON over HTTP, bearer tokens, OpenAPI 3.1.
//!
//! Three credentials: a tenant's `api_token` for everything inside that
//! tenant, a sub-user's session token for the applications it holds (each
//! endpoint names its own in `Granted<need::…>`), and the admin token for
//! tenant administration. Money-moving calls require
//! an `Idempotency-Key` header; replaying it returns the first outcome.

mod accounts;
mod ads;
mod bills;
mod catalog;
mod error;
mod holds;
mod notices;
pub mod openapi;
mod operations;
mod roles;
mod seats;
mod sessions;
mod subusers;
mod tenants;
mod usage;
mod wallets;

use std::marker::PhantomData;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use http::request::Parts;
use serde::de::DeserializeOwned;
use subledger_domain::access::AppId;
use subledger_domain::text::check_json_text;
use subledger_service::Caller;
use subledger_service::tenants::Tenant;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};

use crate::AppState;
use crate::input::{InvalidText, Part, Refuse, refuse_invalid_uri};

/// Largest body of `POST /v1/usage`.
pub const USAGE_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;

/// The native API's routes and its OpenAPI document, built together: each
/// route is registered from its handler's `#[utoipa::path]` (method and
/// path), so no route exists without its entry in the document, nor an
/// entry without its route.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // A thousand events with attributes outgrow the default JSON limit.
    let (schemas, paths, ingest) = routes!(usage::ingest);
    let usage = (schemas, paths, ingest.layer(axum::extract::DefaultBodyLimit::max(USAGE_BODY_BYTES_MAX)));
    OpenApiRouter::with_openapi(openapi::NativeApi::openapi())
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::show, tenants::update))
        .routes(routes!(tenants::rotate_secrets))
        .routes(routes!(wallets::deposit))
        .routes(routes!(wallets::tenant_overdraft))
        .routes(routes!(tenants::current))
        .routes(routes!(accounts::list, accounts::create))
        .routes(routes!(accounts::show, subusers::update))
        .routes(routes!(accounts::set_quota))
        .routes(routes!(accounts::freeze))
        .routes(routes!(accounts::unfreeze))
        .routes(routes!(wallets::account_overdraft))
        .routes(routes!(wallets::list))
        .routes(routes!(wallets::entries))
        .routes(routes!(wallets::transfer))
        .routes(routes!(wallets::show_transfer))
        .routes(routes!(holds::open, holds::list))
        .routes(routes!(holds::show))
        .routes(routes!(holds::post))
        .routes(routes!(holds::void))
        .routes(routes!(catalog::list_products, catalog::add_product))
        .routes(routes!(catalog::list_tariffs, catalog::set_tariff))
        .routes(routes!(catalog::set_billing))
        .routes(routes!(bills::daily))
        .routes(routes!(bills::list))
        .routes(routes!(bills::close))
        .routes(routes!(bills::export))
        .routes(routes!(seats::set_funding))
        .routes(routes!(seats::issue_card, seats::list_cards))
        .routes(routes!(seats::cancel_card))
        .routes(routes!(seats::subscribe))
        .routes(routes!(seats::unsubscribe))
        .routes(routes!(seats::list_subscriptions))
        .routes(routes!(seats::function_rates))
        .routes(routes!(seats::rental_rates))
        .routes(routes!(seats::charge_bills))
        .routes(routes!(seats::basic_bill))
        .routes(routes!(seats::function_bill))
        .routes(routes!(seats::billing_account))
        .routes(usage)
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::me))
        .routes(routes!(sessions::apps))
        .routes(routes!(roles::list, roles::create))
        .routes(routes!(roles::show, roles::update, roles::delete))
        .routes(routes!(roles::apps, roles::set_apps))
        .routes(routes!(subusers::list, subusers::create))
        .routes(routes!(subusers::apps, subusers::set_apps))
        .routes(routes!(notices::list, notices::create))
        .routes(routes!(notices::show, notices::update, notices::delete))
        .routes(routes!(ads::set_connection))
        .routes(routes!(ads::sync))
        .routes(routes!(ads::set_blacklist))
        .routes(routes!(ads::set_violation))
        .routes(routes!(ads::set_settings))
        .routes(routes!(operations::list))
        .layer(axum::middleware::from_fn_with_state(invalid_text as Refuse, refuse_invalid_uri))
        .split_for_parts()
}

/// The answer to text that is not valid UTF-8 or holds NUL, in the path, the query or the body.
fn invalid_text(invalid: InvalidText) -> Response {
    ApiError::from(invalid).into_response()
}

/// The token of an `Authorization: Bearer …` header (also the telephony dialect's credential).
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The answer to a request that outlived its deadline: 503, safe to retry
/// with the same `Idempotency-Key`.
pub fn timed_out() -> axum::response::Response {
    axum::response::IntoResponse::into_response(ApiError::Service(subledger_service::ServiceError::Unavailable("the request took too long; retry it with the same Idempotency-Key")))
}

/// The answer to a request beyond the in-flight cap: 503 `busy`; nothing was done.
pub fn busy() -> axum::response::Response {
    axum::response::IntoResponse::into_response(ApiError::Busy)
}

/// What an endpoint needs: one leaf application of the tree. Each marker
/// below is one application; an endpoint names it in its `Granted<…>`.
pub trait Need {
    const APP: AppId;
}

macro_rules! needs {
    ($($marker:ident = $app:ident;)+) => {
        /// The markers of [`Need`], one per leaf application.
        pub mod need {
            use subledger_domain::access::{AppId, app};
            $(
                #[doc = concat!("Needs `", stringify!($app), "`.")]
                pub struct $marker;
                impl super::Need for $marker {
                    const APP: AppId = app::$app;
                }
            )+
        }
    };
}

needs! {
    AccountsView = ACCOUNTS_VIEW;
    AccountsManage = ACCOUNTS_MANAGE;
    FundsView = FUNDS_VIEW;
    FundsMove = FUNDS_MOVE;
    BillingView = BILLING_VIEW;
    BillingManage = BILLING_MANAGE;
    RatesView = RATES_VIEW;
    RatesManage = RATES_MANAGE;
    NoticesView = NOTICES_VIEW;
    NoticesManage = NOTICES_MANAGE;
    RolesView = ROLES_VIEW;
    RolesManage = ROLES_MANAGE;
    OplogView = OPLOG_VIEW;
    SettingsView = SETTINGS_VIEW;
    SettingsManage = SETTINGS_MANAGE;
    AdsView = ADS_VIEW;
    AdsManage = ADS_MANAGE;
}

/// The tenant and caller of a bearer token (the tenant's `api_token` or a
/// sub-user's session), within the caller's rate limits.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<(Tenant, Caller), ApiError> {
    let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
    let (tenant, caller) = state.services.authenticate_bearer(token).await?.ok_or(ApiError::Unauthenticated)?;
    state.limits.check_caller(&tenant, &caller)?;
    Ok((tenant, caller))
}

/// An authenticated caller that holds the application `A` needs (else 403).
/// Mutating handlers build their `Change` from `caller`, so the operation
/// log records who acted.
pub struct Granted<A: Need> {
    pub tenant: Tenant,
    pub caller: Caller,
    need: PhantomData<A>,
}

impl<A: Need> FromRequestParts<AppState> for Granted<A> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (tenant, caller) = authenticate(parts, state).await?;
        caller.require(A::APP)?;
        Ok(Granted { tenant, caller, need: PhantomData })
    }
}

/// Any authenticated caller, whatever it holds (who am I, the tree).
pub struct Authenticated {
    pub tenant: Tenant,
    pub caller: Caller,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (tenant, caller) = authenticate(parts, state).await?;
        Ok(Authenticated { tenant, caller })
    }
}

/// Proof that the request carries the admin token.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
        if state.services.is_admin_token(token).await? { Ok(AdminAuth) } else { Err(ApiError::Unauthenticated) }
    }
}

/// A JSON body, with malformed, oversized or mistyped bodies, and bodies
/// holding NUL, answered in the API's own error format.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // axum's `Json` would decode the body before the raw bytes could be
        // checked for NUL, so its steps run here: content type, body (within
        // the route's limit), the text rule, then the parse.
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| ApiError::from_json_rejection(JsonRejection::from(rejection)))?;
        check_json_text(&body).map_err(|error| ApiError::from(InvalidText { part: Part::Body, error }))?;
        axum::Json::<T>::from_bytes(&body).map(|axum::Json(value)| ApiJson(value)).map_err(ApiError::from_json_rejection)
    }
}

/// A JSON body whose fields are all optional: no body at all (no content
/// type, no length) reads as the default.
pub struct ApiJsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJsonOrEmpty<T> {
    type Rejection = ApiError;
    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let headers = request.headers();
        let no_length = headers.get(http::header::CONTENT_LENGTH).is_none_or(|length| length.as_bytes() == b"0");
        if headers.get(http::header::CONTENT_TYPE).is_none() && no_length && headers.get(http::header::TRANSFER_ENCODING).is_none() {
            return Ok(ApiJsonOrEmpty(T::default()));
        }
        ApiJson::<T>::from_request(request, state).await.map(|ApiJson(value)| ApiJsonOrEmpty(value))
    }
}

/// `application/json` or `application/…+json`, parameters aside: the media
/// types axum's `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.strip_prefix("application/").is_some_and(|subtype| subtype == "json" || subtype.ends_with("+json"))
}

/// The `Idempotency-Key` header, required on money-moving calls.
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let value = parts.headers.get("idempotency-key").ok_or(ApiError::bad_request("idempotency_key_required", "send an Idempotency-Key header"))?;
        let key = value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= subledger_service::ledger::IDEMPOTENCY_KEY_BYTES_MAX);
        let key = key.ok_or(ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters"))?;
        Ok(IdempotencyKey(key.to_owned()))
    }
}

/// A path parameter, with a malformed one answered in the API's error format.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::bad_request("invalid_path", &rejection.body_text())),
        }
    }
}

/// Query parameters, with bad values answered in the API's error format.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request("invalid_query", &rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_timeout_is_a_503_in_the_error_format() {
        let response = super::timed_out();
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, serde_json::json!({"error": {"code": "unavailable", "message": "service unavailable: the request took too long; retry it with the same Idempotency-Key"}}));
    }
}
