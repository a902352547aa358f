//! The SendCloud endpoints. Each one: authenticate, parse, call the service, render.
//!
//! # A `transferIn`, step by step
//!
//! 1. **Connection and route.** `server::run` admits the connection under the
//!    connection cap, and hyper reads the request head under the header-read
//!    timeout (at most `REQUEST_HEAD_BYTES_MAX`). The request passes
//!    `CatchPanicLayer` and `metrics::track`; `POST /api/subAccount/transferIn`
//!    reaches this dialect's `admit`, which takes an in-flight permit (none
//!    left: 400 at once, with `Retry-After`) and runs `transfer_in` under the
//!    request deadline (past it: 400). Any other method gets `only_post`: 400.
//! 2. **Authenticate** (`super::authenticate`), in this order, each refusal
//!    before any later lookup:
//!    - parameters: the query string, then the body (at most
//!      `SendCloudConfig::body_bytes_max`, a form content type or none), into
//!      one `Params`; a repeated name, invalid UTF-8 or NUL, more than 64
//!      parameters or a value over 4096 bytes is 400;
//!    - `appId`: missing or empty 401; over 64 characters or unknown 402
//!      (`Services::tenant_by_app_id`, through the tenant cache);
//!    - `signature`: missing or not 32 hex digits 403; otherwise
//!      `expected_signature` with the tenant's key, compared with the
//!      lowercased value by `secrets_equal` (constant time), 404 on a mismatch;
//!    - `timestamp` (milliseconds): malformed or further than the window from
//!      server time 425; missing 425, unless the server runs with
//!      `--sendcloud-transfer-timestamp-optional`;
//!    - replays: `transferIn` is `Replays::ByLedgerKey`, so nothing is recorded
//!      here and the hot path pays no extra write: its idempotency key (step 3)
//!      refuses a replay, in any process.
//! 3. **Parse.** `username` into a `Username` (407 missing, 426 malformed),
//!    `money` into a `PositiveAmount` within 1.00–10000.00 (421 malformed, 422
//!    out of range). A timestamped request gets the idempotency key
//!    `sendcloud:{timestamp}:{signature}` (`transfer_key`).
//! 4. **`Services::transfer`** from the tenant's primary wallet to the
//!    account's: an `Allocation` under `DebitRule::ToFloorFromNonNegative`
//!    (`move_between`), both wallets resolved by `spendable_wallet` through the
//!    wallet-id cache. An unknown username is `NotFound`: 423.
//! 5. **The ledger**: `Ledger::submit` queues the request for the ledger
//!    worker, which commits it in a batch and answers after the commit; the
//!    batch path is told in `subledger_service::ledger`. A full queue is
//!    `Busy` at once: 104, nothing done.
//! 6. **Render.** A replayed receipt or `IdempotencyKeyReused`: 425.
//!    `InsufficientFunds`: 420. `NegativeBalance`: 416. Any other failure:
//!    104, logged (`storage_refusal`). Posted: `success` with
//!    `{username, money, transferId}`.
//!
//! A deposit or a native `POST /v1/transfers` takes the same path from step 4.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use subledger_domain::account::{CompanyName, CompanyNameError, CompanyUrl, CompanyUrlError, DailyQuota, Email, Funding, Password, PasswordError, Phone, UserType, Username, UsernameError};
use subledger_domain::ids::TransferId;
use subledger_domain::ledger::TransferRejection;
use subledger_domain::money::{AmountParseError, PositiveAmount, parse_amount_minor};
use subledger_domain::paging::Page;
use subledger_service::ServiceError;
use subledger_service::accounts::NewAccountInput;
use subledger_service::funds::{Holder, MoveOptions, WalletRef};

use super::envelope::{Code, Refusal, Yuan, success};
use super::{Replays, SignedCall, authenticate, storage_refusal};
use crate::AppState;

/// `startNo` default and `pageSize` default and maximum, as the spec gives them.
const PAGE_SIZE_DEFAULT: i64 = 10;
const PAGE_SIZE_MAX: i64 = 200;
/// `transferIn` accepts 1.00 to 10000.00 yuan.
const TRANSFER_MINOR_MIN: i64 = 100;
const TRANSFER_MINOR_MAX: i64 = 1_000_000;

/// Answers a mutation called with GET: the spec documents POST only.
pub async fn only_post() -> Response {
    Refusal(Code::Failed).into_response()
}

/// Runs an endpoint after authentication; both kinds of refusal render the same way.
pub(super) async fn run<F, Fut>(state: AppState, request: Request, timestamp_required: bool, replays: Replays, endpoint: F) -> Response
where
    F: FnOnce(AppState, SignedCall) -> Fut,
    Fut: Future<Output = Result<Response, Refusal>>,
{
    let call = match authenticate(&state, request, timestamp_required, replays).await {
        Ok(call) => call,
        Err(refusal) => return refusal.into_response(),
    };
    endpoint(state, call).await.unwrap_or_else(IntoResponse::into_response)
}

/// A username parameter: 407 when missing or empty, 426 when malformed.
fn username_param(call: &SignedCall) -> Result<Username, Refusal> {
    Username::parse(call.params.get("username").unwrap_or("")).map_err(|e| match e {
        UsernameError::Empty => Refusal(Code::UsernameMissing),
        UsernameError::Format => Refusal(Code::UsernameFormat),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListInfo {
    total: i64,
    freeze: i64,
    available: i64,
    count: usize,
    list: Vec<ListedAccount>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedAccount {
    username: String,
    phone: String,
    user_type: i64,
    status: i64,
    balance: Yuan,
    quota: i64,
    today_used_quota: i64,
}

/// `list`: a page of sub-accounts with the counts over all that match.
pub async fn list(State(state): State<AppState>, request: Request) -> Response {
    run(state, request, false, Replays::Recorded, |state, call| async move {
        let page = Page::parse(call.params.get("startNo"), call.params.get("pageSize"), PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX).map_err(|_| Refusal(Code::PageSize))?;
        // An empty `username` is no filter; a name that cannot exist matches nothing.
        let username = call.params.get("username").filter(|u| !u.is_empty());
        let found = state.services.list_accounts(&call.tenant, username, page).await.map_err(|e| storage_refusal(e, Code::Failed))?;
        if username.is_some() && found.total == 0 {
            return Err(Refusal(Code::UsernameUnknown));
        }
        let list: Vec<ListedAccount> = found
            .accounts
            .into_iter()
            .map(|row| ListedAccount {
                balance: Yuan(row.balance_minor(super::CURRENCY)),
                phone: row.account.phone.unwrap_or_default(),
                user_type: row.account.user_type.code(),
                status: row.account.status.code(),
                quota: row.account.daily_quota,
                today_used_quota: row.used_today,
                username: row.account.username,
            })
            .collect();
        Ok(success(ListInfo { total: found.total, freeze: found.frozen, available: found.total - found.frozen, count: list.len(), list }))
    })
    .await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    api_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
}

/// Parses the fields of `create`: username, userType, phone, email,
/// companyName, companyUrl, pwd; the first bad one decides the code.
fn new_account_input(call: &SignedCall) -> Result<NewAccountInput, Refusal> {
    let params = &call.params;
    let username = username_param(call)?;
    let user_type = UserType::parse(params.get("userType").unwrap_or("")).map_err(|_| Refusal(Code::UserType))?;
    // Optional, but a present phone or e-mail must be valid (an empty one is "missing").
    let phone = params.get("phone").map(|p| Phone::parse(p).map_err(|_| Refusal(Code::Phone))).transpose()?;
    let email = params.get("email").map(|e| Email::parse(e).map_err(|_| Refusal(Code::Email))).transpose()?;
    let company_name = CompanyName::parse(params.get("companyName").unwrap_or("")).map_err(|e| match e {
        CompanyNameError::Empty => Refusal(Code::CompanyNameMissing),
        // Too long or with control characters: the spec has no code of its own for it.
        CompanyNameError::Invalid => Refusal(Code::Failed),
    })?;
    let company_url = CompanyUrl::parse(params.get("companyUrl").unwrap_or("")).map_err(|e| match e {
        CompanyUrlError::Empty => Refusal(Code::CompanyUrlMissing),
        CompanyUrlError::Invalid => Refusal(Code::CompanyUrlInvalid),
    })?;
    let password = Password::parse(params.get("pwd").unwrap_or("")).map_err(|e| match e {
        PasswordError::Empty => Refusal(Code::PasswordMissing),
        PasswordError::Weak => Refusal(Code::PasswordRule),
    })?;
    Ok(NewAccountInput { username, user_type, phone, email, company_name: Some(company_name), company_url: Some(company_url), password: Some(password), daily_quota: None, funding: Funding::Own })
}

/// `create`: a new sub-account; SendCloud accounts get an API user and key.
pub async fn create(State(state): State<AppState>, request: Request) -> Response {
    run(state, request, false, Replays::WithChange, |state, call| async move {
        let input = new_account_input(&call)?;
        let created = state.services.create_account(&call.tenant, input, &call.change()).await.map_err(|e| match e {
            ServiceError::UsernameTaken => Refusal(Code::UsernameTaken),
            ServiceError::PhoneTaken => Refusal(Code::PhoneTaken),
            ServiceError::AccountLimit { .. } => Refusal(Code::AccountLimit),
            other => storage_refusal(other, Code::SaveFailed),
        })?;
        Ok(success(CreatedInfo { api_user: created.account.api_user, api_key: created.api_key }))
    })
    .await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransferInfo<'a> {
    username: &'a str,
    money: Yuan,
    /// A JSON string, as the spec shows it; written straight from the id.
    #[serde(serialize_with = "serialize_display")]
    transfer_id: TransferId,
}

/// A value written as a JSON string through its `Display`, without an intermediate `String`.
fn serialize_display<T: std::fmt::Display, S: serde::Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Prefix of the ledger idempotency key of a timestamped `transferIn`.
const TRANSFER_KEY_PREFIX: &str = "sendcloud:";

/// `sendcloud:{timestamp}:{signature}`. A timestamped request is unique, so
/// it is its own idempotency key: a replay that reaches another server
/// process is caught by the ledger (which keeps the first outcome) and
/// refused here. The timestamp leads the key so that keys arrive in order
/// and land side by side in the index, instead of one random page each.
fn transfer_key(timestamp: &str, signature: &str) -> String {
    let mut key = String::with_capacity(TRANSFER_KEY_PREFIX.len() + timestamp.len() + 1 + signature.len());
    key.push_str(TRANSFER_KEY_PREFIX);
    key.push_str(timestamp);
    key.push(':');
    key.push_str(signature);
    key
}

/// `money`: 421 when it is not a plain decimal with at most two places, 422
/// when it is outside 1.00–10000.00.
fn money_param(call: &SignedCall) -> Result<PositiveAmount, Refusal> {
    let minor = parse_amount_minor(call.params.get("money").unwrap_or("")).map_err(|e| match e {
        AmountParseError::TooLarge => Refusal(Code::MoneyOutOfRange),
        AmountParseError::Empty | AmountParseError::Malformed | AmountParseError::TooPrecise => Refusal(Code::MoneyMalformed),
    })?;
    if !(TRANSFER_MINOR_MIN..=TRANSFER_MINOR_MAX).contains(&minor) {
        return Err(Refusal(Code::MoneyOutOfRange));
    }
    PositiveAmount::new(minor).map_err(|_| Refusal(Code::MoneyOutOfRange))
}

/// `transferIn`: moves money from the tenant's primary wallet to the
/// sub-account's, as one ledger transfer.
pub async fn transfer_in(State(state): State<AppState>, request: Request) -> Response {
    let timestamp_required = state.sendcloud.transfer_requires_timestamp;
    run(state, request, timestamp_required, Replays::ByLedgerKey, |state, call| async move {
        let username = username_param(&call)?;
        let amount = money_param(&call)?;
        let options = MoveOptions { idempotency_key: call.has_timestamp.then(|| transfer_key(call.params.get("timestamp").unwrap_or_default(), &call.signature)), memo: None };
        let receipt = state
            .services
            .transfer(&call.tenant, &WalletRef::primary(Holder::Tenant), &WalletRef::primary(Holder::Account(username.clone())), amount, super::CURRENCY, options, &call.change())
            .await
            .map_err(|e| match e {
                ServiceError::NotFound(_) => Refusal(Code::UsernameUnknown),
                ServiceError::IdempotencyKeyReused => Refusal(Code::Timestamp),
                other => storage_refusal(other, Code::TransferFailed),
            })?;
        if receipt.replayed {
            return Err(Refusal(Code::Timestamp));
        }
        let (receipt, _) = receipt.posted().map_err(|e| match e {
            ServiceError::Rejected(TransferRejection::InsufficientFunds) => Refusal(Code::BalanceInsufficient),
            ServiceError::Rejected(TransferRejection::NegativeBalance) => Refusal(Code::BalanceNegative),
            other => storage_refusal(other, Code::TransferFailed),
        })?;
        Ok(success(TransferInfo { username: username.as_str(), money: Yuan(amount.minor()), transfer_id: receipt.transfer_id }))
    })
    .await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuotaInfo {
    username: String,
    quota: i64,
    today_used_quota: i64,
}

/// `quota`: sets a sub-account's daily request quota.
pub async fn quota(State(state): State<AppState>, request: Request) -> Response {
    run(state, request, false, Replays::WithChange, |state, call| async move {
        let username = username_param(&call)?;
        // The spec has no code of its own for a bad quota: plain 400.
        let quota = DailyQuota::parse(call.params.get("quota").unwrap_or("")).map_err(|_| Refusal(Code::Failed))?;
        let (account, state) = state.services.set_daily_quota(&call.tenant, username.as_str(), quota, &call.change()).await.map_err(|e| match e {
            ServiceError::NotFound(_) => Refusal(Code::UsernameUnknown),
            other => storage_refusal(other, Code::UpdateFailed),
        })?;
        Ok(success(QuotaInfo { username: account.username, quota: state.quota, today_used_quota: state.used_today }))
    })
    .await
}
