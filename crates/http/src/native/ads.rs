//! `/v1/ads/*`: the operator's side of the ad-account reseller dialect:
//! which platform serves the tenant, a sync on demand, the blacklist of
//! opening companies, violation accounts and the unbinding switch.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::ads::BlacklistLevel;
use subledger_service::ads::sync::SyncReport;
use subledger_service::ads::{AdConnectionInput, BlacklistInput};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiPath, ErrorBody, Granted, need};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    /// `sandbox` (built in, the default) or `graph` (Meta's Graph API).
    pub platform: String,
    /// The agency's Business Manager id (graph only).
    pub business_id: Option<String>,
    /// The system user's access token (graph only); stored sealed, never shown again.
    pub access_token: Option<String>,
}

/// Choose the ad platform serving the tenant
#[utoipa::path(put, path = "/v1/ads/connection", tag = "ads", security(("api_token" = []), ("session_token" = [])), request_body = ConnectionBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn set_connection(Granted { tenant, caller, .. }: Granted<need::SettingsManage>, State(state): State<AppState>, ApiJson(body): ApiJson<ConnectionBody>) -> Result<StatusCode, ApiError> {
    let input = match (body.platform.as_str(), body.business_id, body.access_token) {
        ("sandbox", None, None) => AdConnectionInput::Sandbox,
        ("graph", Some(business_id), Some(access_token)) => AdConnectionInput::Graph { business_id, access_token },
        _ => return Err(ApiError::bad_request("invalid_platform", "platform is `sandbox` (alone) or `graph` with business_id and access_token")),
    };
    state.services.set_ad_connection(&tenant, &input, &caller.change()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct SyncView {
    pub requests: usize,
    pub accounts: usize,
    /// Spend moved to the payable wallet by this sync, in US cents.
    pub spend_moved_cents: i64,
    pub accounts_in_flight: usize,
    pub errors: Vec<String>,
}

impl From<SyncReport> for SyncView {
    fn from(report: SyncReport) -> Self {
        SyncView { requests: report.requests, accounts: report.accounts, spend_moved_cents: report.spend_moved_cents, accounts_in_flight: report.accounts_in_flight, errors: report.errors }
    }
}

/// Sync the tenant's ad data from its platform now
#[utoipa::path(post, path = "/v1/ads/sync", tag = "ads", security(("api_token" = []), ("session_token" = [])),
    responses((status = 200, body = SyncView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn sync(Granted { tenant, .. }: Granted<need::AdsManage>, State(state): State<AppState>) -> Result<Json<SyncView>, ApiError> {
    Ok(Json(state.services.sync_ads_now(&tenant).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlacklistBody {
    /// 0 off the list, 1 today, 2 seven days, 3 fourteen days, 4 for ever.
    pub level: i64,
    #[serde(default)]
    pub reason: String,
}

/// Put an opening company on the blacklist (or take it off)
#[utoipa::path(put, path = "/v1/ads/blacklist/{company}", tag = "ads", security(("api_token" = []), ("session_token" = [])), request_body = BlacklistBody,
    params(("company" = String, Path, description = "The company's name as the creation request gives it")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_blacklist(
    Granted { tenant, caller, .. }: Granted<need::AdsManage>,
    State(state): State<AppState>,
    ApiPath(company): ApiPath<String>,
    ApiJson(body): ApiJson<BlacklistBody>,
) -> Result<StatusCode, ApiError> {
    let level = BlacklistLevel::from_code(body.level).ok_or_else(|| ApiError::bad_request("invalid_level", "level is 0 to 4"))?;
    state.services.set_ad_blacklist(&tenant, &BlacklistInput { company_name: company, level, reason: body.reason }, &caller.change()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViolationBody {
    pub violation: bool,
    #[serde(default)]
    pub reason: String,
}

/// Mark an ad account as a violation account (or clear the mark)
#[utoipa::path(put, path = "/v1/ads/accounts/{id}/violation", tag = "ads", security(("api_token" = []), ("session_token" = [])), request_body = ViolationBody,
    params(("id" = String, Path, description = "The ad account's id (digits)")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_violation(
    Granted { tenant, caller, .. }: Granted<need::AdsManage>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ViolationBody>,
) -> Result<StatusCode, ApiError> {
    state.services.set_ad_violation(&tenant, &id, body.violation, &body.reason, &caller.change()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// Pauses unbinding Business Managers (`account_remove_bm` answers 1022).
    pub unbind_business_paused: bool,
}

/// Change the tenant's ad settings
#[utoipa::path(put, path = "/v1/ads/settings", tag = "ads", security(("api_token" = []), ("session_token" = [])), request_body = SettingsBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_settings(Granted { tenant, caller, .. }: Granted<need::AdsManage>, State(state): State<AppState>, ApiJson(body): ApiJson<SettingsBody>) -> Result<StatusCode, ApiError> {
    state.services.set_ad_unbind_paused(&tenant, body.unbind_business_paused, &caller.change()).await?;
    Ok(StatusCode::NO_CONTENT)
}
