//! `/v1/roles` and the grants of roles and sub-users.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::access::{AppId, AppSet, RoleName};
use subledger_domain::calendar::from_unix_micros;
use subledger_domain::ids::RoleId;
use subledger_service::roles::{Role, RoleChanges};
use utoipa::{IntoParams, ToSchema};

use super::accounts::invalid;
use super::sessions::{AppView, app_views};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, Granted, need};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct RoleView {
    pub id: i64,
    pub name: String,
    pub level: i64,
    pub created_at: String,
}

impl From<Role> for RoleView {
    fn from(role: Role) -> Self {
        RoleView { id: role.id.0, name: role.name, level: role.level, created_at: from_unix_micros(role.created_at_us).to_string() }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RoleList {
    pub items: Vec<RoleView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RoleQuery {
    /// Part of the name.
    pub name: Option<String>,
}

/// List roles
#[utoipa::path(get, path = "/v1/roles", tag = "access", security(("api_token" = []), ("session_token" = [])), params(RoleQuery),
    responses((status = 200, body = RoleList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(Granted { tenant, .. }: Granted<need::RolesView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<RoleQuery>) -> Result<Json<RoleList>, ApiError> {
    let roles = state.services.roles(&tenant, query.name.as_deref().filter(|n| !n.is_empty())).await?;
    Ok(Json(RoleList { items: roles.into_iter().map(RoleView::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// 1 to 50 characters, unique in the tenant.
    pub name: String,
    /// 0 to 1000000 (default 0).
    pub level: Option<i64>,
}

fn parse_name(text: &str) -> Result<RoleName, ApiError> {
    RoleName::parse(text).map_err(|e| invalid("invalid_name", e))
}

/// Create a role
#[utoipa::path(post, path = "/v1/roles", tag = "access", security(("api_token" = []), ("session_token" = [])), request_body = RoleBody,
    responses((status = 201, body = RoleView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "name taken, or too many roles")))]
pub async fn create(Granted { tenant, caller, .. }: Granted<need::RolesManage>, State(state): State<AppState>, ApiJson(body): ApiJson<RoleBody>) -> Result<impl IntoResponse, ApiError> {
    let role = state.services.create_role(&tenant, parse_name(&body.name)?, body.level.unwrap_or(0), &caller.change()).await?;
    Ok((StatusCode::CREATED, Json(RoleView::from(role))))
}

/// Show a role
#[utoipa::path(get, path = "/v1/roles/{role_id}", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("role_id" = i64, Path)),
    responses((status = 200, body = RoleView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(Granted { tenant, .. }: Granted<need::RolesView>, State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<RoleView>, ApiError> {
    Ok(Json(state.services.role(&tenant, RoleId(id)).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChangesBody {
    pub name: Option<String>,
    pub level: Option<i64>,
}

/// Rename a role or change its level
#[utoipa::path(patch, path = "/v1/roles/{role_id}", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("role_id" = i64, Path)), request_body = RoleChangesBody,
    responses((status = 200, body = RoleView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    Granted { tenant, caller, .. }: Granted<need::RolesManage>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RoleChangesBody>,
) -> Result<Json<RoleView>, ApiError> {
    let changes = RoleChanges { name: body.name.as_deref().map(parse_name).transpose()?, level: body.level };
    Ok(Json(state.services.update_role(&tenant, RoleId(id), changes, &caller.change()).await?.into()))
}

/// Delete a role no sub-user holds
#[utoipa::path(delete, path = "/v1/roles/{role_id}", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("role_id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "still assigned")))]
pub async fn delete(Granted { tenant, caller, .. }: Granted<need::RolesManage>, State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<StatusCode, ApiError> {
    state.services.delete_role(&tenant, RoleId(id), &caller.change()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applications held, as a menu (the leaves and their parents).
#[derive(Serialize, ToSchema)]
pub struct AppsView {
    pub apps: Vec<AppView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// Application ids to grant (a parent grants its subtree).
    #[serde(default)]
    pub grant: Vec<i64>,
    /// Application ids to take away; a revocation beats a grant.
    #[serde(default)]
    pub revoke: Vec<i64>,
}

/// Most ids one grant names (the tree is smaller).
const GRANT_IDS_MAX: usize = 64;

pub(super) fn grant_ids(body: &GrantBody) -> Result<(Vec<AppId>, Vec<AppId>), ApiError> {
    if body.grant.len() > GRANT_IDS_MAX || body.revoke.len() > GRANT_IDS_MAX {
        return Err(ApiError::bad_request("invalid_apps", "at most 64 application ids in each list"));
    }
    Ok((body.grant.iter().copied().map(AppId).collect(), body.revoke.iter().copied().map(AppId).collect()))
}

pub(super) fn apps_view(tenant: &subledger_service::tenants::Tenant, apps: AppSet) -> Json<AppsView> {
    Json(AppsView { apps: app_views(apps, tenant.language) })
}

/// A role's applications
#[utoipa::path(get, path = "/v1/roles/{role_id}/apps", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("role_id" = i64, Path)),
    responses((status = 200, body = AppsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn apps(Granted { tenant, .. }: Granted<need::RolesView>, State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<AppsView>, ApiError> {
    let apps = state.services.role_apps(&tenant, RoleId(id)).await?;
    Ok(apps_view(&tenant, apps))
}

/// Grant and revoke a role's applications
#[utoipa::path(put, path = "/v1/roles/{role_id}/apps", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("role_id" = i64, Path)), request_body = GrantBody,
    responses((status = 200, body = AppsView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_apps(
    Granted { tenant, caller, .. }: Granted<need::RolesManage>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<Json<AppsView>, ApiError> {
    let (grant, revoke) = grant_ids(&body)?;
    let apps = state.services.set_role_apps(&tenant, RoleId(id), &grant, &revoke, &caller.change()).await?;
    Ok(apps_view(&tenant, apps))
}
