//! `/v1/subusers` and a sub-user's seat, state and grants
//! (`/v1/accounts/{username}` PATCH, `/v1/accounts/{username}/apps`).
//!
//! Giving a role (or switching its template on) hands out applications, so
//! besides `accounts.manage` it needs `roles.manage`: a sub-user that manages
//! accounts cannot raise itself or a new seat above what it may grant.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::access::app;
use subledger_domain::account::{AccessState, Department, Email, Extension, JobNumber, Password, PersonName, Phone, SeatNote, Username};
use subledger_domain::ids::{AccountId, RoleId};
use subledger_domain::paging::Page;
use subledger_service::Caller;
use subledger_service::subusers::{NewSubUser, SUB_USER_PAGE_MAX, SubUserChanges, SubUserFilter, SubUserView};
use utoipa::{IntoParams, ToSchema};

use super::accounts::{AccountView, invalid};
use super::roles::{AppsView, GrantBody, apps_view, grant_ids};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, Granted, need};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct SubUserItem {
    #[serde(flatten)]
    pub account: AccountView,
    pub role_name: Option<String>,
}

impl From<SubUserView> for SubUserItem {
    fn from(view: SubUserView) -> Self {
        SubUserItem { account: view.account.into(), role_name: view.role_name }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SubUserList {
    pub total: i64,
    pub items: Vec<SubUserItem>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SubUserQuery {
    pub id: Option<i64>,
    /// Exact.
    pub username: Option<String>,
    /// Part of the person's name.
    pub person_name: Option<String>,
    /// Exact.
    pub job_number: Option<String>,
    pub extension: Option<i64>,
    /// Part of the role's name.
    pub role_name: Option<String>,
    /// `enabled`, `disabled` or `cancelled`.
    pub access: Option<String>,
    pub offset: Option<i64>,
    /// Default 50, at most 200.
    pub limit: Option<i64>,
}

/// List sub-users with their seat fields and roles
#[utoipa::path(get, path = "/v1/subusers", tag = "access", security(("api_token" = []), ("session_token" = [])), params(SubUserQuery),
    responses((status = 200, body = SubUserList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(Granted { tenant, .. }: Granted<need::AccountsView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<SubUserQuery>) -> Result<Json<SubUserList>, ApiError> {
    let page = Page::new(query.offset.unwrap_or(0), query.limit.unwrap_or(50), SUB_USER_PAGE_MAX).map_err(|e| invalid("invalid_page", e))?;
    let filter = SubUserFilter {
        id: query.id.map(AccountId),
        username: query.username,
        person_name: query.person_name,
        job_number: query.job_number,
        extension: query.extension,
        role_name: query.role_name,
        access: query.access.as_deref().map(parse_access).transpose()?,
    };
    let (total, views) = state.services.sub_users(&tenant, &filter, page).await?;
    Ok(Json(SubUserList { total, items: views.into_iter().map(SubUserItem::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubUserBody {
    pub username: String,
    pub password: String,
    pub person_name: Option<String>,
    pub job_number: Option<String>,
    pub role_id: Option<i64>,
    /// Whether the role's applications apply (default true).
    pub role_template: Option<bool>,
    pub extension: Option<i64>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub department: Option<String>,
    pub note: Option<String>,
}

fn parse_access(text: &str) -> Result<AccessState, ApiError> {
    match text {
        "enabled" => Ok(AccessState::Enabled),
        "disabled" => Ok(AccessState::Disabled),
        "cancelled" => Ok(AccessState::Cancelled),
        _ => Err(ApiError::bad_request("invalid_access", "access must be enabled, disabled or cancelled")),
    }
}

fn parse<T, E: std::fmt::Display>(text: Option<&str>, code: &'static str, parse: impl Fn(&str) -> Result<T, E>) -> Result<Option<T>, ApiError> {
    text.map(parse).transpose().map_err(|e| invalid(code, e))
}

fn extension(value: Option<i64>) -> Result<Option<Extension>, ApiError> {
    value.map(Extension::new).transpose().map_err(|e| invalid("invalid_extension", e))
}

/// Giving a role hands out applications: it needs `roles.manage` too.
fn may_give_roles(caller: &Caller, gives: bool) -> Result<(), ApiError> {
    if gives {
        caller.require(app::ROLES_MANAGE)?;
    }
    Ok(())
}

/// Create a sub-user (a seat paid by the tenant)
#[utoipa::path(post, path = "/v1/subusers", tag = "access", security(("api_token" = []), ("session_token" = [])), request_body = NewSubUserBody,
    responses((status = 201, body = AccountView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "no such role"), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(Granted { tenant, caller, .. }: Granted<need::AccountsManage>, State(state): State<AppState>, ApiJson(body): ApiJson<NewSubUserBody>) -> Result<impl IntoResponse, ApiError> {
    may_give_roles(&caller, body.role_id.is_some())?;
    let new = NewSubUser {
        username: Username::parse(&body.username).map_err(|e| invalid("invalid_username", e))?,
        password: Password::parse(&body.password).map_err(|e| invalid("invalid_password", e))?,
        person_name: parse(body.person_name.as_deref(), "invalid_person_name", PersonName::parse)?,
        job_number: parse(body.job_number.as_deref(), "invalid_job_number", JobNumber::parse)?,
        role: body.role_id.map(RoleId),
        role_template: body.role_template.unwrap_or(true),
        extension: extension(body.extension)?,
        email: parse(body.email.as_deref(), "invalid_email", Email::parse)?,
        phone: parse(body.phone.as_deref(), "invalid_phone", Phone::parse)?,
        department: parse(body.department.as_deref(), "invalid_department", Department::parse)?,
        note: parse(body.note.as_deref(), "invalid_note", SeatNote::parse)?,
    };
    let account = state.services.create_sub_user(&tenant, new, &caller.change()).await?;
    Ok((StatusCode::CREATED, Json(AccountView::from(account))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubUserChangesBody {
    pub person_name: Option<String>,
    pub job_number: Option<String>,
    pub extension: Option<i64>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub department: Option<String>,
    pub note: Option<String>,
    /// A role's id; 0 takes the role away.
    pub role_id: Option<i64>,
    pub role_template: Option<bool>,
    /// `enabled`, `disabled` or `cancelled` (final: a cancelled sub-user cannot log in, be charged or be changed).
    #[schema(value_type = Option<String>)]
    pub access: Option<AccessState>,
    pub password: Option<String>,
}

/// Change a sub-user's seat fields, role, state or password
#[utoipa::path(patch, path = "/v1/accounts/{username}", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("username" = String, Path)), request_body = SubUserChangesBody,
    responses((status = 200, body = SubUserItem), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    Granted { tenant, caller, .. }: Granted<need::AccountsManage>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<SubUserChangesBody>,
) -> Result<Json<SubUserItem>, ApiError> {
    may_give_roles(&caller, body.role_id.is_some_and(|id| id != 0) || body.role_template == Some(true))?;
    let changes = SubUserChanges {
        person_name: parse(body.person_name.as_deref(), "invalid_person_name", PersonName::parse)?,
        job_number: parse(body.job_number.as_deref(), "invalid_job_number", JobNumber::parse)?,
        extension: extension(body.extension)?,
        email: parse(body.email.as_deref(), "invalid_email", Email::parse)?,
        phone: parse(body.phone.as_deref(), "invalid_phone", Phone::parse)?,
        department: parse(body.department.as_deref(), "invalid_department", Department::parse)?,
        note: parse(body.note.as_deref(), "invalid_note", SeatNote::parse)?,
        role: body.role_id.map(|id| (id != 0).then_some(RoleId(id))),
        role_template: body.role_template,
        access: body.access,
        password: parse(body.password.as_deref(), "invalid_password", Password::parse)?,
    };
    let account = state.services.account(&tenant, &username).await?;
    Ok(Json(state.services.update_sub_user(&tenant, account.id, changes, &caller.change()).await?.into()))
}

/// A sub-user's applications (its role's template, plus its grants, minus its revocations)
#[utoipa::path(get, path = "/v1/accounts/{username}/apps", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("username" = String, Path)),
    responses((status = 200, body = AppsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn apps(Granted { tenant, .. }: Granted<need::RolesView>, State(state): State<AppState>, ApiPath(username): ApiPath<String>) -> Result<Json<AppsView>, ApiError> {
    let account = state.services.account(&tenant, &username).await?;
    let apps = state.services.user_apps(&tenant, account.id).await?;
    Ok(apps_view(&tenant, apps))
}

/// Grant and revoke a sub-user's own applications, on top of its role
#[utoipa::path(put, path = "/v1/accounts/{username}/apps", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("username" = String, Path)), request_body = GrantBody,
    responses((status = 200, body = AppsView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_apps(
    Granted { tenant, caller, .. }: Granted<need::RolesManage>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<Json<AppsView>, ApiError> {
    let (grant, revoke) = grant_ids(&body)?;
    let account = state.services.account(&tenant, &username).await?;
    let apps = state.services.set_user_apps(&tenant, account.id, &grant, &revoke, &caller.change()).await?;
    Ok(apps_view(&tenant, apps))
}
