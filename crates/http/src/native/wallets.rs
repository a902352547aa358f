//! Wallets, entries, deposits and transfers.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::account::Username;
use subledger_domain::calendar::from_unix_micros;
use subledger_domain::ids::{TransferId, WalletId};
use subledger_domain::ledger::WalletPurpose;
use subledger_domain::money::{Currency, PositiveAmount, format_minor, parse_amount_minor};
use subledger_domain::oplog::Actor;
use subledger_service::Change;
use subledger_service::funds::{ENTRY_PAGE_MAX, Holder, MoveOptions, WalletRef};
use subledger_service::funds::{EntryRecord, WalletRecord};
use subledger_service::ledger::TransferReceipt;
use utoipa::{IntoParams, ToSchema};

use super::{AdminAuth, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, Granted, IdempotencyKey, need};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct WalletView {
    pub wallet_id: i64,
    /// `primary`, `promo`, or the system wallets `world` and `revenue`.
    pub purpose: String,
    pub currency: String,
    pub balance: String,
    pub balance_minor: i64,
    /// Lowest balance allowed; absent for system wallets (unbounded).
    pub floor_minor: Option<i64>,
    /// Held by pending holds: part of the balance, but not spendable.
    pub reserved_minor: i64,
    /// What can still be spent: balance less reserved, down to the floor.
    /// Absent for system wallets (they pay only by explicit transfers).
    pub available_minor: Option<i64>,
    /// Number of entries, which is also the last entry's `seq`.
    pub entry_count: i64,
}

impl From<&WalletRecord> for WalletView {
    fn from(w: &WalletRecord) -> Self {
        WalletView {
            wallet_id: w.id.0,
            purpose: w.purpose.as_str().to_owned(),
            currency: w.currency.code().to_owned(),
            balance: format_minor(w.balance_minor),
            balance_minor: w.balance_minor,
            floor_minor: w.floor_minor,
            reserved_minor: w.reserved_minor,
            available_minor: w.available_minor(),
            entry_count: w.entry_seq,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WalletList {
    pub items: Vec<WalletView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WalletQuery {
    /// An account's wallets; without it, the tenant's own.
    pub username: Option<String>,
}

fn parse_username(text: &str) -> Result<Username, ApiError> {
    Username::parse(text).map_err(|e| ApiError::bad_request("invalid_username", &e.to_string()))
}

fn holder_of(username: Option<&str>) -> Result<Holder, ApiError> {
    Ok(match username {
        Some(name) => Holder::Account(parse_username(name)?),
        None => Holder::Tenant,
    })
}

/// List wallets with balances
#[utoipa::path(get, path = "/v1/wallets", tag = "wallets", security(("api_token" = [])), params(WalletQuery),
    responses((status = 200, body = WalletList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(Granted { tenant, .. }: Granted<need::FundsView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<WalletQuery>) -> Result<Json<WalletList>, ApiError> {
    let holder = holder_of(query.username.as_deref())?;
    let wallets = state.services.wallets(&tenant, &holder).await?;
    Ok(Json(WalletList { items: wallets.iter().map(WalletView::from).collect() }))
}

#[derive(Serialize, ToSchema)]
pub struct EntryView {
    /// Position in the wallet's history: 1, 2, 3 …
    pub seq: i64,
    pub transfer_id: String,
    /// `deposit`, `allocation`, `reclaim`, `internal`, `charge` or `refund`.
    pub kind: String,
    /// Signed: negative when money left the wallet.
    pub amount: String,
    pub amount_minor: i64,
    pub balance_after: String,
    pub balance_after_minor: i64,
    pub counterparty_wallet_id: i64,
    pub memo: Option<String>,
    pub created_at: String,
}

impl From<EntryRecord> for EntryView {
    fn from(e: EntryRecord) -> Self {
        EntryView {
            seq: e.seq,
            transfer_id: e.transfer_id.to_string(),
            kind: e.kind,
            amount: format_minor(e.amount_minor),
            amount_minor: e.amount_minor,
            balance_after: format_minor(e.balance_after_minor),
            balance_after_minor: e.balance_after_minor,
            counterparty_wallet_id: e.counterparty_wallet_id,
            memo: e.memo,
            created_at: from_unix_micros(e.created_at_us).to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EntryPage {
    pub wallet: WalletView,
    pub items: Vec<EntryView>,
    /// Pass as `after_seq` for the next page; absent on the last page.
    pub next_after_seq: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EntryQuery {
    /// Entries after this one (default 0: from the start).
    pub after_seq: Option<i64>,
    /// Default 100, at most 500.
    pub limit: Option<i64>,
}

/// A wallet's entries, oldest first
#[utoipa::path(get, path = "/v1/wallets/{wallet_id}/entries", tag = "wallets", security(("api_token" = [])),
    params(("wallet_id" = i64, Path), EntryQuery),
    responses((status = 200, body = EntryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn entries(
    Granted { tenant, .. }: Granted<need::FundsView>,
    State(state): State<AppState>,
    ApiPath(wallet_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<EntryQuery>,
) -> Result<Json<EntryPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=ENTRY_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request("invalid_page", &format!("limit must be from 1 to {ENTRY_PAGE_MAX}")));
    }
    let after_seq = query.after_seq.unwrap_or(0);
    let (wallet, entries) = state.services.wallet_entries(&tenant, WalletId(wallet_id), after_seq, limit).await?;
    let last_seq = entries.last().map(|e| e.seq);
    let next_after_seq = last_seq.filter(|seq| *seq < wallet.entry_seq);
    Ok(Json(EntryPage { wallet: WalletView::from(&wallet), items: entries.into_iter().map(EntryView::from).collect(), next_after_seq }))
}

#[derive(Serialize, ToSchema)]
pub struct TransferView {
    pub transfer_id: String,
    /// `deposit`, `allocation`, `reclaim` or `internal`.
    pub kind: String,
    pub amount: String,
    pub amount_minor: i64,
    pub currency: String,
    pub debit_wallet_id: i64,
    pub credit_wallet_id: i64,
    pub debit_balance_after_minor: Option<i64>,
    pub credit_balance_after_minor: Option<i64>,
    pub created_at: String,
    /// True when this answers a replayed `Idempotency-Key`.
    pub replayed: bool,
}

fn transfer_response(receipt: TransferReceipt, currency: Currency) -> Result<Response, ApiError> {
    let replayed = receipt.replayed;
    let view = transfer_view(receipt, currency)?;
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", http::HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A posted transfer as shown; a refused one as its error.
pub(super) fn transfer_view(receipt: TransferReceipt, currency: Currency) -> Result<TransferView, ApiError> {
    let replayed = receipt.replayed;
    let (receipt, balances) = receipt.posted()?;
    Ok(TransferView {
        transfer_id: receipt.transfer_id.to_string(),
        kind: receipt.kind.as_str().to_owned(),
        amount: format_minor(receipt.amount_minor),
        amount_minor: receipt.amount_minor,
        currency: currency.code().to_owned(),
        debit_wallet_id: receipt.debit.0,
        credit_wallet_id: receipt.credit.0,
        debit_balance_after_minor: Some(balances.debit_balance_after_minor),
        credit_balance_after_minor: Some(balances.credit_balance_after_minor),
        created_at: from_unix_micros(receipt.created_at_us).to_string(),
        replayed,
    })
}

pub(super) fn parse_amount(text: &str) -> Result<PositiveAmount, ApiError> {
    let minor = parse_amount_minor(text).map_err(|e| ApiError::bad_request("invalid_amount", &e.to_string()))?;
    PositiveAmount::new(minor).map_err(|e| ApiError::bad_request("invalid_amount", &e.to_string()))
}

pub(super) fn parse_currency(text: Option<&str>) -> Result<Currency, ApiError> {
    text.map_or(Ok(Currency::Cny), |c| Currency::from_str(c).map_err(|e| ApiError::bad_request("invalid_currency", &e.to_string())))
}

fn parse_purpose(text: Option<&str>) -> Result<WalletPurpose, ApiError> {
    match text.unwrap_or("primary") {
        "primary" => Ok(WalletPurpose::Primary),
        "promo" => Ok(WalletPurpose::Promo),
        other => Err(ApiError::bad_request("invalid_wallet", &format!("wallet must be primary or promo, not {other:?}"))),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepositBody {
    /// Decimal string with at most two places, e.g. `"1000.00"`.
    pub amount: String,
    /// `CNY` (default) or `USD`.
    pub currency: Option<String>,
    /// `primary` (default) or `promo`.
    pub wallet: Option<String>,
    /// Deposit into this account's wallet instead of the tenant's.
    pub username: Option<String>,
    pub note: Option<String>,
}

/// Record a recharge from the outside world (admin)
#[utoipa::path(post, path = "/v1/tenants/{tenant}/deposits", tag = "wallets", security(("admin_token" = [])),
    params(("tenant" = String, Path, description = "tenant id or app id"), ("Idempotency-Key" = String, Header)),
    request_body = DepositBody,
    responses((status = 201, body = TransferView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "idempotency key reused for another request")))]
pub async fn deposit(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(tenant): ApiPath<String>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<DepositBody>,
) -> Result<Response, ApiError> {
    let tenant = state.services.find_tenant(&tenant).await?;
    let amount = parse_amount(&body.amount)?;
    let currency = parse_currency(body.currency.as_deref())?;
    let to = WalletRef { holder: holder_of(body.username.as_deref())?, purpose: parse_purpose(body.wallet.as_deref())? };
    let receipt = state.services.deposit(&tenant, &to, amount, currency, MoveOptions { idempotency_key: Some(key), memo: body.note }, &Change::by(Actor::Admin)).await?;
    transfer_response(receipt, currency)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalletSide {
    /// An account; without it, the tenant itself.
    pub username: Option<String>,
    /// `primary` (default) or `promo`.
    pub wallet: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    pub from: WalletSide,
    pub to: WalletSide,
    /// Decimal string with at most two places.
    pub amount: String,
    /// `CNY` (default) or `USD`.
    pub currency: Option<String>,
    pub memo: Option<String>,
}

pub(super) fn wallet_ref(side: &WalletSide) -> Result<WalletRef, ApiError> {
    Ok(WalletRef { holder: holder_of(side.username.as_deref())?, purpose: parse_purpose(side.wallet.as_deref())? })
}

/// Move money between the tenant's wallets and its accounts'
#[utoipa::path(post, path = "/v1/transfers", tag = "wallets", security(("api_token" = [])),
    params(("Idempotency-Key" = String, Header)), request_body = TransferBody,
    responses((status = 201, body = TransferView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "idempotency key reused for another request"),
              (status = 422, body = ErrorBody, description = "insufficient_funds, negative_balance, same_wallet …")))]
pub async fn transfer(
    Granted { tenant, caller, .. }: Granted<need::FundsMove>,
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<Response, ApiError> {
    let amount = parse_amount(&body.amount)?;
    let currency = parse_currency(body.currency.as_deref())?;
    let (from, to) = (wallet_ref(&body.from)?, wallet_ref(&body.to)?);
    let receipt = state.services.transfer(&tenant, &from, &to, amount, currency, MoveOptions { idempotency_key: Some(key), memo: body.memo }, &caller.change()).await?;
    transfer_response(receipt, currency)
}

#[derive(Serialize, ToSchema)]
pub struct StoredTransferView {
    pub transfer_id: String,
    pub kind: String,
    /// `posted` or `rejected` (rejections are kept when they carried an idempotency key).
    pub status: String,
    pub rejection: Option<String>,
    pub amount: String,
    pub amount_minor: i64,
    pub currency: String,
    pub debit_wallet_id: i64,
    pub credit_wallet_id: i64,
    pub memo: Option<String>,
    pub created_at: String,
}

/// Show a transfer
#[utoipa::path(get, path = "/v1/transfers/{transfer_id}", tag = "wallets", security(("api_token" = [])), params(("transfer_id" = String, Path)),
    responses((status = 200, body = StoredTransferView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_transfer(Granted { tenant, .. }: Granted<need::FundsView>, State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<StoredTransferView>, ApiError> {
    let id = TransferId::from_str(&id).map_err(|_| ApiError::bad_request("invalid_transfer_id", "transfer ids are whole numbers"))?;
    let t = state.services.transfer_by_id(&tenant, id).await?;
    Ok(Json(StoredTransferView {
        transfer_id: t.id.to_string(),
        kind: t.kind.as_str().to_owned(),
        status: if t.outcome.is_ok() { "posted" } else { "rejected" }.to_owned(),
        rejection: t.outcome.err().map(|r| r.as_str().to_owned()),
        amount: format_minor(t.amount_minor),
        amount_minor: t.amount_minor,
        currency: t.currency.code().to_owned(),
        debit_wallet_id: t.debit.0,
        credit_wallet_id: t.credit.0,
        memo: t.memo,
        created_at: from_unix_micros(t.created_at_us).to_string(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverdraftBody {
    /// How far below zero the primary wallet may go, e.g. `"500.00"`; `"0"` removes it.
    pub limit: String,
    /// `CNY` (default) or `USD`.
    pub currency: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantOverdraftBody {
    #[serde(flatten)]
    pub overdraft: OverdraftBody,
    /// Grant it to this account instead of the tenant.
    pub username: Option<String>,
}

fn parse_limit(text: &str) -> Result<i64, ApiError> {
    parse_amount_minor(text).map_err(|e| ApiError::bad_request("invalid_amount", &e.to_string()))
}

/// Grant a tenant (or one of its accounts) an overdraft on its primary wallet (admin)
#[utoipa::path(put, path = "/v1/tenants/{tenant}/overdraft", tag = "wallets", security(("admin_token" = [])),
    params(("tenant" = String, Path, description = "tenant id or app id")), request_body = TenantOverdraftBody,
    responses((status = 200, body = WalletView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn tenant_overdraft(_: AdminAuth, State(state): State<AppState>, ApiPath(tenant): ApiPath<String>, ApiJson(body): ApiJson<TenantOverdraftBody>) -> Result<Json<WalletView>, ApiError> {
    let tenant = state.services.find_tenant(&tenant).await?;
    let holder = holder_of(body.username.as_deref())?;
    let wallet = state.services.set_overdraft(&tenant, &holder, parse_currency(body.overdraft.currency.as_deref())?, parse_limit(&body.overdraft.limit)?, &Change::by(Actor::Admin)).await?;
    Ok(Json(WalletView::from(&wallet)))
}

/// Grant one of the tenant's accounts an overdraft on its primary wallet
#[utoipa::path(put, path = "/v1/accounts/{username}/overdraft", tag = "wallets", security(("api_token" = [])),
    params(("username" = String, Path)), request_body = OverdraftBody,
    responses((status = 200, body = WalletView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn account_overdraft(
    Granted { tenant, caller, .. }: Granted<need::FundsMove>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<OverdraftBody>,
) -> Result<Json<WalletView>, ApiError> {
    let holder = Holder::Account(parse_username(&username)?);
    let wallet = state.services.set_overdraft(&tenant, &holder, parse_currency(body.currency.as_deref())?, parse_limit(&body.limit)?, &caller.change()).await?;
    Ok(Json(WalletView::from(&wallet)))
}
