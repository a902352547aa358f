//! `/v1/sessions`, `/v1/me`, `/v1/apps`: sub-user logins and who is calling.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use http::StatusCode;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use subledger_domain::access::{APPS, App, AppSet, Language, Permissions};
use subledger_domain::calendar::from_unix_micros;
use subledger_service::ServiceError;
use utoipa::ToSchema;

use super::accounts::AccountView;
use super::{ApiError, ApiJson, Authenticated, ErrorBody, bearer};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The tenant: its `tn_…` id or its app id.
    pub tenant: String,
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionCreated {
    /// Bearer token for `/v1` (and `/rest`), shown once.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    pub account: AccountView,
}

/// The client's address, when the server knows it (`server.rs` adds it to
/// every request it accepts over TCP).
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip())))
    }
}

/// Log a sub-user in
///
/// No bearer token. Five wrong passwords in a row lock the account for 15
/// minutes (429 with `Retry-After` meanwhile); attempts are also limited per
/// client address and per username.
#[utoipa::path(post, path = "/v1/sessions", tag = "access", security(()), request_body = LoginBody,
    responses((status = 201, body = SessionCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody, description = "wrong tenant, username or password, or a disabled or cancelled sub-user"),
              (status = 429, body = ErrorBody, description = "too many attempts, or the account is locked")))]
pub async fn login(State(state): State<AppState>, ClientAddress(address): ClientAddress, ApiJson(body): ApiJson<LoginBody>) -> Result<impl IntoResponse, ApiError> {
    const WRONG: ServiceError = ServiceError::Unauthenticated("wrong username or password");
    // An unknown tenant answers like a wrong password, so tenants cannot be probed.
    state.limits.check_login_address(address)?;
    if body.tenant.len() > 64 {
        return Err(WRONG.into());
    }
    let tenant = match state.services.find_tenant(&body.tenant).await {
        Ok(tenant) => tenant,
        Err(ServiceError::NotFound(_)) => return Err(WRONG.into()),
        Err(other) => return Err(other.into()),
    };
    state.limits.check_login_username(tenant.id, &body.username)?;
    let session = state.services.login(&tenant, &body.username, &body.password).await?;
    Ok((StatusCode::CREATED, Json(SessionCreated { token: session.token, expires_at: from_unix_micros(session.expires_at_us).to_string(), account: session.account.into() })))
}

/// The session token of a request, for logout.
pub struct SessionToken(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for SessionToken {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        bearer(parts).map(|token| SessionToken(token.to_owned())).ok_or(ApiError::Unauthenticated)
    }
}

/// End the current session
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "access", security(("session_token" = [])),
    responses((status = 204), (status = 400, body = ErrorBody, description = "the token is not a session"), (status = 401, body = ErrorBody)))]
pub async fn logout(State(state): State<AppState>, SessionToken(token): SessionToken) -> Result<StatusCode, ApiError> {
    state.services.logout(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One application of the tree.
#[derive(Serialize, ToSchema)]
pub struct AppView {
    pub id: i64,
    /// The parent's id; 0 for a top-level menu.
    pub pid: i64,
    pub code: String,
    /// In the tenant's language.
    pub name: String,
    /// Whether endpoints name it (leaves) or it groups others.
    pub leaf: bool,
}

fn app_view(app: &App, language: Language) -> AppView {
    AppView { id: app.id.0, pid: app.pid, code: app.code.to_owned(), name: app.name(language).to_owned(), leaf: app.is_leaf() }
}

/// A set of applications as a menu: the leaves held and their parents.
pub(super) fn app_views(set: AppSet, language: Language) -> Vec<AppView> {
    set.apps().map(|app| app_view(app, language)).collect()
}

#[derive(Serialize, ToSchema)]
pub struct MeView {
    pub tenant_id: String,
    /// `tenant` (the API token) or `sub_user` (a session).
    pub actor: String,
    /// The sub-user, for a session.
    pub account: Option<AccountView>,
    /// What the caller may do.
    pub apps: Vec<AppView>,
}

/// Who am I
#[utoipa::path(get, path = "/v1/me", tag = "access", security(("api_token" = []), ("session_token" = [])),
    responses((status = 200, body = MeView), (status = 401, body = ErrorBody)))]
pub async fn me(Authenticated { tenant, caller }: Authenticated, State(state): State<AppState>) -> Result<Json<MeView>, ApiError> {
    let apps = match caller.permissions {
        Permissions::Everything => AppSet::all(),
        Permissions::Only(set) => set,
    };
    let account = match caller.actor.username() {
        Some(username) => Some(state.services.account(&tenant, username).await?.into()),
        None => None,
    };
    Ok(Json(MeView { tenant_id: tenant.public_id.0.clone(), actor: caller.actor.kind().to_owned(), account, apps: app_views(apps, tenant.language) }))
}

#[derive(Serialize, ToSchema)]
pub struct AppTree {
    pub apps: Vec<AppView>,
}

/// The application tree
#[utoipa::path(get, path = "/v1/apps", tag = "access", security(("api_token" = []), ("session_token" = [])),
    responses((status = 200, body = AppTree), (status = 401, body = ErrorBody)))]
pub async fn apps(Authenticated { tenant, .. }: Authenticated) -> Json<AppTree> {
    Json(AppTree { apps: APPS.iter().map(|app| app_view(app, tenant.language)).collect() })
}
