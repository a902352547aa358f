//! `/v1/accounts`: a tenant's sub-accounts.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::account::{AccessState, AccountStatus, CompanyName, CompanyUrl, DailyQuota, Email, Funding, Password, Phone, UserType, Username};
use subledger_domain::calendar::from_unix_micros;
use subledger_domain::money::{Currency, format_minor};
use subledger_domain::paging::Page;
use subledger_service::accounts::{ACCOUNT_PAGE_MAX, Account, NewAccountInput, Seat};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, Granted, need};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct AccountView {
    /// The account's id (what notice targets and the operation log name).
    pub id: i64,
    pub username: String,
    /// `sendcloud` (SendCloud `userType` 0) or `ifaxin` (1).
    #[schema(value_type = String)]
    pub user_type: UserType,
    /// `active` or `frozen`.
    #[schema(value_type = String)]
    pub status: AccountStatus,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub company_url: Option<String>,
    /// SendCloud API user (SendCloud accounts only).
    pub api_user: Option<String>,
    pub daily_quota: i64,
    /// `own` or `tenant`: whose wallets its charges draw on.
    #[schema(value_type = String)]
    pub funding: Funding,
    /// `enabled`, `disabled` or `cancelled`.
    #[schema(value_type = String)]
    pub access: AccessState,
    /// A sub-user's seat fields (empty for other accounts).
    pub seat: SeatView,
    pub created_at: String,
}

/// What a sub-user seat carries beside the account's own fields.
#[derive(Serialize, ToSchema)]
pub struct SeatView {
    pub role_id: Option<i64>,
    /// Whether the role's application template applies.
    pub role_template: bool,
    pub person_name: Option<String>,
    pub job_number: Option<String>,
    pub extension: Option<i64>,
    pub department: Option<String>,
    pub note: Option<String>,
    pub last_login_at: Option<String>,
    pub logins: i64,
}

impl From<Seat> for SeatView {
    fn from(seat: Seat) -> Self {
        SeatView {
            role_id: seat.role.map(|r| r.0),
            role_template: seat.role_template,
            person_name: seat.person_name,
            job_number: seat.job_number,
            extension: seat.extension,
            department: seat.department,
            note: seat.note,
            last_login_at: seat.last_login_at_us.map(|at| from_unix_micros(at).to_string()),
            logins: seat.logins,
        }
    }
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        AccountView {
            id: a.id.0,
            username: a.username,
            user_type: a.user_type,
            status: a.status,
            phone: a.phone,
            email: a.email,
            company_name: a.company_name,
            company_url: a.company_url,
            api_user: a.api_user,
            daily_quota: a.daily_quota,
            funding: a.funding,
            access: a.access,
            seat: a.seat.into(),
            created_at: from_unix_micros(a.created_at_us).to_string(),
        }
    }
}

/// A spendable balance in one currency.
#[derive(Serialize, ToSchema)]
pub struct BalanceJson {
    pub currency: String,
    /// Primary plus promo, as a decimal string.
    pub balance: String,
    pub balance_minor: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AccountListItem {
    #[serde(flatten)]
    pub account: AccountView,
    /// Primary plus promo balance in CNY, as a decimal string (the figure
    /// SendCloud's `list` shows; `balances` has every currency).
    pub balance: String,
    pub balance_minor: i64,
    /// Primary plus promo balance per currency the account has wallets in.
    pub balances: Vec<BalanceJson>,
    /// Requests counted today (the tenant's calendar day).
    pub used_today: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AccountList {
    pub total: i64,
    pub frozen: i64,
    pub items: Vec<AccountListItem>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    /// Exact username.
    pub username: Option<String>,
    pub offset: Option<i64>,
    /// Default 50, at most 200.
    pub limit: Option<i64>,
}

/// List accounts
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", security(("api_token" = [])), params(AccountQuery),
    responses((status = 200, body = AccountList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(Granted { tenant, .. }: Granted<need::AccountsView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<AccountQuery>) -> Result<Json<AccountList>, ApiError> {
    let page = Page::new(query.offset.unwrap_or(0), query.limit.unwrap_or(50), ACCOUNT_PAGE_MAX).map_err(|e| ApiError::bad_request("invalid_page", &e.to_string()))?;
    let found = state.services.list_accounts(&tenant, query.username.as_deref().filter(|u| !u.is_empty()), page).await?;
    Ok(Json(AccountList {
        total: found.total,
        frozen: found.frozen,
        items: found
            .accounts
            .into_iter()
            .map(|row| {
                let cny = row.balance_minor(Currency::Cny);
                let balances = row.balances.iter().map(|(currency, minor)| BalanceJson { currency: currency.code().to_owned(), balance: format_minor(*minor), balance_minor: *minor }).collect();
                AccountListItem { balance: format_minor(cny), balance_minor: cny, balances, used_today: row.used_today, account: row.account.into() }
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountBody {
    pub username: String,
    /// `sendcloud` (default) or `ifaxin`.
    #[schema(value_type = Option<String>)]
    pub user_type: Option<UserType>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub company_url: Option<String>,
    pub password: Option<String>,
    /// Default: the tenant's default quota.
    pub daily_quota: Option<i64>,
    /// Whose wallets its charges draw on: `own` (default) or `tenant` (a seat paid by the tenant).
    #[schema(value_type = Option<String>)]
    pub funding: Option<Funding>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountCreated {
    #[serde(flatten)]
    pub account: AccountView,
    /// SendCloud API key, shown once (SendCloud accounts only).
    pub api_key: Option<String>,
}

pub(super) fn invalid(code: &'static str, error: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(code, &error.to_string())
}

/// Create an account
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", security(("api_token" = [])), request_body = CreateAccountBody,
    responses((status = 201, body = AccountCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "username or phone taken"), (status = 422, body = ErrorBody, description = "account limit reached")))]
pub async fn create(Granted { tenant, caller, .. }: Granted<need::AccountsManage>, State(state): State<AppState>, ApiJson(body): ApiJson<CreateAccountBody>) -> Result<impl IntoResponse, ApiError> {
    let input = NewAccountInput {
        username: Username::parse(&body.username).map_err(|e| invalid("invalid_username", e))?,
        user_type: body.user_type.unwrap_or(UserType::SendCloud),
        phone: body.phone.as_deref().map(Phone::parse).transpose().map_err(|e| invalid("invalid_phone", e))?,
        email: body.email.as_deref().map(Email::parse).transpose().map_err(|e| invalid("invalid_email", e))?,
        company_name: body.company_name.as_deref().map(CompanyName::parse).transpose().map_err(|e| invalid("invalid_company_name", e))?,
        company_url: body.company_url.as_deref().map(CompanyUrl::parse).transpose().map_err(|e| invalid("invalid_company_url", e))?,
        password: body.password.as_deref().map(Password::parse).transpose().map_err(|e| invalid("invalid_password", e))?,
        daily_quota: body.daily_quota.map(DailyQuota::new).transpose().map_err(|e| invalid("invalid_quota", e))?,
        funding: body.funding.unwrap_or_default(),
    };
    let created = state.services.create_account(&tenant, input, &caller.change()).await?;
    Ok((StatusCode::CREATED, Json(AccountCreated { account: created.account.into(), api_key: created.api_key })))
}

/// Show an account
#[utoipa::path(get, path = "/v1/accounts/{username}", tag = "accounts", security(("api_token" = [])), params(("username" = String, Path)),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(Granted { tenant, .. }: Granted<need::AccountsView>, State(state): State<AppState>, ApiPath(username): ApiPath<String>) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(state.services.account(&tenant, &username).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaBody {
    pub daily_quota: i64,
}

#[derive(Serialize, ToSchema)]
pub struct QuotaView {
    pub username: String,
    pub daily_quota: i64,
    pub used_today: i64,
}

/// Set an account's daily request quota
#[utoipa::path(put, path = "/v1/accounts/{username}/quota", tag = "accounts", security(("api_token" = [])), params(("username" = String, Path)),
    request_body = QuotaBody,
    responses((status = 200, body = QuotaView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_quota(
    Granted { tenant, caller, .. }: Granted<need::AccountsManage>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<QuotaBody>,
) -> Result<Json<QuotaView>, ApiError> {
    let quota = DailyQuota::new(body.daily_quota).map_err(|e| invalid("invalid_quota", e))?;
    let (account, quota) = state.services.set_daily_quota(&tenant, &username, quota, &caller.change()).await?;
    Ok(Json(QuotaView { username: account.username, daily_quota: quota.quota, used_today: quota.used_today }))
}

/// Freeze an account
#[utoipa::path(post, path = "/v1/accounts/{username}/freeze", tag = "accounts", security(("api_token" = [])), params(("username" = String, Path)),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn freeze(Granted { tenant, caller, .. }: Granted<need::AccountsManage>, State(state): State<AppState>, ApiPath(username): ApiPath<String>) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(state.services.set_account_status(&tenant, &username, AccountStatus::Frozen, &caller.change()).await?.into()))
}

/// Unfreeze an account
#[utoipa::path(post, path = "/v1/accounts/{username}/unfreeze", tag = "accounts", security(("api_token" = [])), params(("username" = String, Path)),
    responses((status = 200, body = AccountView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unfreeze(Granted { tenant, caller, .. }: Granted<need::AccountsManage>, State(state): State<AppState>, ApiPath(username): ApiPath<String>) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(state.services.set_account_status(&tenant, &username, AccountStatus::Active, &caller.change()).await?.into()))
}
