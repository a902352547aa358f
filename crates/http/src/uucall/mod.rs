//! The UUCall REST dialect: `/rest/*`, tags `account` and `power`.
//!
//! Authenticates with `Authorization: Bearer <token>` (the enterprise's API
//! token, with every right), reads the spec's parameters from the query and
//! the JSON body ([`params::Params`]), checks that `uid` / `uidName` name the
//! caller's enterprise, checks the application the operation needs, calls one
//! service method and renders the spec's model with its exact field names.
//! Every failure is one JSON body ([`error::Refusal`]). No business rule
//! lives here; the choices made where the spec is silent are in
//! `docs/uucall.md`.

mod account;
mod bills;
mod error;
mod notices;
mod params;
mod power;
mod roles;
mod subusers;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, put};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use subledger_domain::text::TextError;
use subledger_service::access::Caller;
use subledger_service::tenants::Tenant;

pub use error::Refusal;

use crate::AppState;
use crate::input::{InvalidText, Part, Refuse, refuse_invalid_uri};

/// Every operation of the spec under `/rest`, each path with the methods it
/// serves; any other method on a known path is a 405 in this dialect's body.
pub fn router() -> Router<AppState> {
    let routes: [(&str, MethodRouter<AppState>); 23] = [
        ("/rest/account/cashlog", get(account::cashlog)),
        ("/rest/account/chargebill", get(bills::charge_bills)),
        ("/rest/account/chargebill/basicbill", get(bills::basic_bill)),
        ("/rest/account/chargebill/funbill", get(bills::function_bill)),
        ("/rest/account/file/chargebill", get(bills::charge_bills_file)),
        ("/rest/account/file/chargebill/basicbill", get(bills::basic_bill_file)),
        ("/rest/account/file/chargebill/funbill", get(bills::function_bill_file)),
        ("/rest/account/{uid}", get(account::billing_account)),
        ("/rest/account/{uid}/baserate", get(account::baserate)),
        ("/rest/account/{uid}/funrate", get(account::funrate)),
        ("/rest/account/{uid}/giftrate", get(account::giftrate)),
        ("/rest/account/{uid}/hirerate", get(account::hirerate)),
        ("/rest/power/notice", get(notices::list_notices).post(notices::create_notice)),
        ("/rest/power/notice/{noticeId}", get(notices::get_notice).put(notices::update_notice).delete(notices::delete_notice)),
        ("/rest/power/oplog", get(power::oplog)),
        ("/rest/power/role", get(roles::list_roles).post(roles::create_role)),
        ("/rest/power/role/auth/{roleId}", get(roles::role_apps).put(roles::set_role_apps)),
        ("/rest/power/role/{roleId}", put(roles::update_role).delete(roles::delete_role)),
        ("/rest/power/roleuser", get(subusers::list_role_users).post(subusers::create_role_user)),
        ("/rest/power/roleuser/{subUserId}", get(subusers::get_role_user).put(subusers::update_role_user)),
        ("/rest/power/subuser", get(subusers::list_sub_users)),
        ("/rest/power/subuser/auth/{subUserId}", get(subusers::sub_user_apps).put(subusers::set_sub_user_apps)),
        ("/rest/power/subuser/{subUserId}", get(subusers::get_sub_user).put(subusers::update_sub_user).delete(subusers::delete_sub_user)),
    ];
    routes
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| router.route(path, methods.fallback(method_not_allowed)))
        .layer(DefaultBodyLimit::max(params::BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(invalid_text as Refuse, refuse_invalid_uri))
}

async fn method_not_allowed() -> Refusal {
    Refusal::MethodNotAllowed
}

/// A path or query that is not valid UTF-8 or holds NUL: 424.
fn invalid_text(invalid: InvalidText) -> Response {
    let field = match invalid.part {
        Part::Path => "path",
        Part::Query => "query",
        Part::Body => "body",
    };
    let rule = match invalid.error {
        TextError::NotUtf8 => "must be UTF-8",
        TextError::Nul => "must not hold NUL",
    };
    Refusal::invalid(field, format!("the {field} {rule}")).into_response()
}

/// The answer to a request that outlived its deadline: 503 in the dialect's body.
pub fn timed_out() -> Response {
    Refusal::Unavailable("the request took too long; retry").into_response()
}

/// The answer to a request beyond the in-flight cap: 503; nothing was done.
pub fn busy() -> Response {
    Refusal::Unavailable("the service is busy; nothing was done, retry").into_response()
}

/// Who is calling: the enterprise, and the caller with its rights (the
/// enterprise's API token: every right; a sub-user's session: its applications).
pub struct Auth {
    pub tenant: Tenant,
    pub caller: Caller,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Refusal;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        let token = crate::native::bearer(parts).ok_or(Refusal::Unauthenticated)?;
        let (tenant, caller) = state.services.authenticate_bearer(token).await?.ok_or(Refusal::Unauthenticated)?;
        // The limits `/v1` applies, after authentication (only real
        // credentials make keys): the tenant's bucket, then the sub-user's.
        state.limits.check_caller(&tenant, &caller)?;
        Ok(Auth { tenant, caller })
    }
}

impl Auth {
    /// Refuses (403) a caller whose applications lack `app`.
    pub fn require(&self, app: subledger_domain::access::AppId) -> Result<(), Refusal> {
        Ok(self.caller.require(app)?)
    }
}

/// 200 with a JSON body; `()` is an empty body (PUT and DELETE).
fn ok<T: Serialize + 'static>(value: T) -> Response {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<()>() {
        return StatusCode::OK.into_response();
    }
    axum::Json(value).into_response()
}

/// 201 for a creation; `Location` names the new resource.
fn created(location: String) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}

/// A list: a JSON array of the model, with the number of items over all
/// pages in `X-Total-Count` when it is known.
fn list<T: Serialize>(total: Option<i64>, items: Vec<T>) -> Response {
    let mut response = axum::Json(items).into_response();
    if let Some(total) = total {
        response.headers_mut().insert("x-total-count", HeaderValue::from(total));
    }
    response
}

/// Epoch milliseconds from stored microseconds.
fn millis(at_us: i64) -> i64 {
    at_us.div_euclid(1_000)
}

/// The one parameter of a path (`{uid}`, `{roleId}` …), as text.
pub struct PathValue(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathValue {
    type Rejection = Refusal;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathValue(value)),
            Err(_) => Err(Refusal::invalid("path", "the path parameter must be UTF-8")),
        }
    }
}

impl PathValue {
    /// The parameter as an int64 id, named `name` in a refusal.
    pub fn id(&self, name: &str) -> Result<i64, Refusal> {
        params::parse_int64(name, &self.0)
    }
}
