//! `/v1/tenants` (admin) and `/v1/tenant` (a tenant about itself).

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::account::{DailyQuota, TenantName};
use subledger_domain::calendar::{TenantTimeZone, from_unix_micros};
use subledger_domain::oplog::Actor;
use subledger_domain::paging::Page;
use subledger_service::Change;
use subledger_service::tenants::{TENANT_PAGE_MAX, Tenant, TenantUpdate, TenantWithSecrets};
use utoipa::{IntoParams, ToSchema};

use super::{AdminAuth, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, Granted, need};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    /// Opaque id (`tn_…`), accepted wherever a tenant is named.
    pub tenant_id: String,
    /// The numeric enterprise id, as the UUCall dialect names it (`uid`).
    pub uid: i64,
    pub name: String,
    /// IANA zone in which days and months are cut.
    pub timezone: String,
    /// `zh-CN` or `en`.
    pub language: String,
    /// SendCloud `appId`.
    pub app_id: String,
    /// Most sub-accounts this tenant may have.
    pub account_limit: i64,
    /// Daily request quota of new accounts.
    pub default_daily_quota: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        TenantView {
            tenant_id: t.public_id.to_string(),
            uid: t.id.0,
            name: t.name.clone(),
            language: t.language.as_str().to_owned(),
            timezone: t.timezone.name().to_owned(),
            app_id: t.app_id.clone(),
            account_limit: t.account_limit,
            default_daily_quota: t.default_daily_quota,
            created_at: from_unix_micros(t.created_at_us).to_string(),
        }
    }
}

/// A tenant with its secrets, shown once: at creation and at rotation.
#[derive(Serialize, ToSchema)]
pub struct TenantCreated {
    #[serde(flatten)]
    pub tenant: TenantView,
    /// SendCloud signing key.
    pub app_key: String,
    /// Bearer token for the native API.
    pub api_token: String,
}

impl From<TenantWithSecrets> for TenantCreated {
    fn from(created: TenantWithSecrets) -> Self {
        TenantCreated { tenant: TenantView::from(&created.tenant), app_key: created.app_key, api_token: created.api_token }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantBody {
    pub name: String,
    /// IANA time zone; default `Asia/Shanghai`.
    pub timezone: Option<String>,
}

pub(super) fn parse_timezone(text: &str) -> Result<TenantTimeZone, ApiError> {
    TenantTimeZone::parse(text).map_err(|e| ApiError::bad_request("invalid_timezone", &e.to_string()))
}

fn parse_name(text: &str) -> Result<TenantName, ApiError> {
    TenantName::parse(text).map_err(|e| ApiError::bad_request("invalid_name", &e.to_string()))
}

/// Create a tenant
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", security(("admin_token" = [])),
    request_body = CreateTenantBody,
    responses((status = 201, body = TenantCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(_: AdminAuth, State(state): State<AppState>, ApiJson(body): ApiJson<CreateTenantBody>) -> Result<impl IntoResponse, ApiError> {
    let name = parse_name(&body.name)?;
    let timezone = parse_timezone(body.timezone.as_deref().unwrap_or(TenantTimeZone::DEFAULT))?;
    let created = state.services.create_tenant(name, timezone, &Change::by(Actor::Admin)).await?;
    Ok((StatusCode::CREATED, Json(TenantCreated::from(created))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Rows to skip (default 0).
    pub offset: Option<i64>,
    /// Rows to return (default 50, at most 200).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub total: i64,
    pub items: Vec<TenantView>,
}

/// List tenants
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", security(("admin_token" = [])), params(PageQuery),
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody)))]
pub async fn list(_: AdminAuth, State(state): State<AppState>, ApiQuery(query): ApiQuery<PageQuery>) -> Result<Json<TenantList>, ApiError> {
    let page = Page::new(query.offset.unwrap_or(0), query.limit.unwrap_or(50), TENANT_PAGE_MAX).map_err(|e| ApiError::bad_request("invalid_page", &e.to_string()))?;
    let (total, tenants) = state.services.list_tenants(page).await?;
    Ok(Json(TenantList { total, items: tenants.iter().map(TenantView::from).collect() }))
}

/// Show a tenant (by `tn_…` id or app id)
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants", security(("admin_token" = [])),
    params(("tenant" = String, Path, description = "tenant id or app id")),
    responses((status = 200, body = TenantView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(_: AdminAuth, State(state): State<AppState>, ApiPath(tenant): ApiPath<String>) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(TenantView::from(&state.services.find_tenant(&tenant).await?)))
}

/// The authenticated tenant
#[utoipa::path(get, path = "/v1/tenant", tag = "tenants", security(("api_token" = [])),
    responses((status = 200, body = TenantView), (status = 401, body = ErrorBody)))]
pub async fn current(Granted { tenant, .. }: Granted<need::SettingsView>) -> Json<TenantView> {
    Json(TenantView::from(&tenant))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantBody {
    pub name: Option<String>,
    pub timezone: Option<String>,
    /// `zh-CN` or `en`: the language of operation log entries and application names.
    pub language: Option<String>,
    /// Most sub-accounts (SendCloud 417 beyond it).
    pub account_limit: Option<i64>,
    pub default_daily_quota: Option<i64>,
}

/// Change a tenant's settings
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", security(("admin_token" = [])),
    params(("tenant" = String, Path, description = "tenant id or app id")), request_body = UpdateTenantBody,
    responses((status = 200, body = TenantView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(_: AdminAuth, State(state): State<AppState>, ApiPath(tenant): ApiPath<String>, ApiJson(body): ApiJson<UpdateTenantBody>) -> Result<Json<TenantView>, ApiError> {
    let tenant = state.services.find_tenant(&tenant).await?;
    let update = TenantUpdate {
        name: body.name.as_deref().map(parse_name).transpose()?,
        timezone: body.timezone.as_deref().map(parse_timezone).transpose()?,
        language: body.language.as_deref().map(|l| subledger_domain::access::Language::parse(l).map_err(|e| ApiError::bad_request("invalid_language", &e.to_string()))).transpose()?,
        account_limit: body.account_limit,
        default_daily_quota: body.default_daily_quota.map(|q| DailyQuota::new(q).map_err(|e| ApiError::bad_request("invalid_quota", &e.to_string()))).transpose()?,
    };
    Ok(Json(TenantView::from(&state.services.update_tenant(tenant.id, update, &Change::by(Actor::Admin)).await?)))
}

/// Issue new secrets (the old app key and API token stop working)
#[utoipa::path(post, path = "/v1/tenants/{tenant}/rotate-secrets", tag = "tenants", security(("admin_token" = [])),
    params(("tenant" = String, Path, description = "tenant id or app id")),
    responses((status = 200, body = TenantCreated), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_secrets(_: AdminAuth, State(state): State<AppState>, ApiPath(tenant): ApiPath<String>) -> Result<Json<TenantCreated>, ApiError> {
    let tenant = state.services.find_tenant(&tenant).await?;
    Ok(Json(TenantCreated::from(state.services.rotate_tenant_secrets(tenant.id, &Change::by(Actor::Admin)).await?)))
}
