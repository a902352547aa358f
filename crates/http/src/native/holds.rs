//! Holds: two-phase transfers (reserve, then post or void; void by themselves at their timeout).

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::calendar::from_unix_micros;
use subledger_domain::ids::{TransferId, WalletId};
use subledger_domain::money::format_minor;
use subledger_domain::posting::HoldState;
use subledger_service::funds::MoveOptions;
use subledger_service::holds::{HOLD_TIMEOUT_SECONDS_DEFAULT, HOLDS_PAGE_MAX, HoldFilter, HoldInput, PostedHold, StoredHold};
use utoipa::{IntoParams, ToSchema};

use super::wallets::{TransferView, WalletSide, parse_amount, parse_currency, transfer_view, wallet_ref};
use super::{ApiError, ApiJson, ApiJsonOrEmpty, ApiPath, ApiQuery, ErrorBody, Granted, IdempotencyKey, need};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct HoldView {
    pub hold_id: String,
    pub kind: String,
    /// `pending`, `posted`, `voided` (by its owner), `expired` (at its
    /// timeout) or `rejected` (refused when asked; kept for its idempotency key).
    pub state: String,
    /// Why it was refused, for a `rejected` hold.
    pub rejection: Option<String>,
    /// What it reserves (or reserved).
    pub amount: String,
    pub amount_minor: i64,
    pub currency: String,
    pub debit_wallet_id: i64,
    pub credit_wallet_id: i64,
    pub memo: Option<String>,
    /// When a pending hold voids itself.
    pub timeout_at: String,
    pub created_at: String,
    /// When it was posted, voided or expired.
    pub resolved_at: Option<String>,
    /// The transfer that posted it, and for how much.
    pub posted_transfer_id: Option<String>,
    pub posted_amount_minor: Option<i64>,
    /// True when the request changed nothing (a replayed key, or a void of a hold already void).
    pub replayed: bool,
}

fn hold_view(stored: &StoredHold, replayed: bool) -> HoldView {
    let hold = &stored.hold;
    let (posted_transfer_id, posted_amount_minor) = match hold.state {
        HoldState::Posted { transfer, amount_minor } => (Some(transfer.to_string()), Some(amount_minor)),
        _ => (None, None),
    };
    HoldView {
        hold_id: hold.id.to_string(),
        kind: hold.kind.as_str().to_owned(),
        state: hold.state.as_str().to_owned(),
        rejection: match hold.state {
            HoldState::Rejected(reason) => Some(reason.as_str().to_owned()),
            _ => None,
        },
        amount: format_minor(hold.intent.amount.minor()),
        amount_minor: hold.intent.amount.minor(),
        currency: hold.intent.currency.code().to_owned(),
        debit_wallet_id: hold.intent.debit.0,
        credit_wallet_id: hold.intent.credit.0,
        memo: stored.memo.clone(),
        timeout_at: from_unix_micros(hold.timeout_at_us).to_string(),
        created_at: from_unix_micros(stored.created_at_us).to_string(),
        resolved_at: stored.resolved_at_us.map(|us| from_unix_micros(us).to_string()),
        posted_transfer_id,
        posted_amount_minor,
        replayed,
    }
}

/// The response to a hold request, marked when it replays an earlier one.
fn hold_response(status: StatusCode, view: impl Serialize, replayed: bool) -> Response {
    let mut response = (status, Json(view)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", http::HeaderValue::from_static("true"));
    }
    response
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// The wallet the money is reserved on.
    pub from: WalletSide,
    /// The wallet a posting pays.
    pub to: WalletSide,
    /// Decimal string with at most two places: what is reserved.
    pub amount: String,
    /// `CNY` (default) or `USD`.
    pub currency: Option<String>,
    /// Seconds until the hold voids itself if neither posted nor voided:
    /// 1 to 2,592,000 (30 days); 3,600 when absent.
    pub timeout_seconds: Option<u32>,
    pub memo: Option<String>,
}

/// Reserve money for a later transfer (a pending transfer)
#[utoipa::path(post, path = "/v1/holds", tag = "holds", security(("api_token" = [])),
    params(("Idempotency-Key" = String, Header)), request_body = HoldBody,
    responses((status = 201, body = HoldView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "idempotency key reused for another request"),
              (status = 422, body = ErrorBody, description = "insufficient_funds, negative_balance …")))]
pub async fn open(
    Granted { tenant, caller, .. }: Granted<need::FundsMove>,
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<HoldBody>,
) -> Result<Response, ApiError> {
    let amount = parse_amount(&body.amount)?;
    let currency = parse_currency(body.currency.as_deref())?;
    let input = HoldInput { from: wallet_ref(&body.from)?, to: wallet_ref(&body.to)?, amount, currency, timeout_seconds: body.timeout_seconds.unwrap_or(HOLD_TIMEOUT_SECONDS_DEFAULT) };
    let receipt = state.services.open_hold(&tenant, &input, MoveOptions { idempotency_key: Some(key), memo: body.memo }, &caller.change()).await?;
    if let HoldState::Rejected(reason) = receipt.hold.hold.state {
        return Err(subledger_service::ServiceError::Rejected(reason).into());
    }
    Ok(hold_response(StatusCode::CREATED, hold_view(&receipt.hold, receipt.replayed), receipt.replayed))
}

fn parse_hold_id(text: &str) -> Result<TransferId, ApiError> {
    TransferId::from_str(text).map_err(|_| ApiError::bad_request("invalid_hold_id", "hold ids are whole numbers"))
}

/// Show a hold
#[utoipa::path(get, path = "/v1/holds/{hold_id}", tag = "holds", security(("api_token" = [])), params(("hold_id" = String, Path)),
    responses((status = 200, body = HoldView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(Granted { tenant, .. }: Granted<need::FundsView>, State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<HoldView>, ApiError> {
    let hold = state.services.hold(&tenant, parse_hold_id(&id)?).await?;
    Ok(Json(hold_view(&hold, false)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HoldQuery {
    /// Only holds in this state: pending, posted, voided, expired or rejected.
    pub state: Option<String>,
    /// Only holds debiting or crediting this wallet.
    pub wallet_id: Option<i64>,
    /// Only holds older than this one: the `next_before` of the previous page.
    pub before: Option<String>,
    /// 1 to 500; 100 when absent.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HoldPage {
    pub items: Vec<HoldView>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<String>,
}

/// List the tenant's holds, newest first
#[utoipa::path(get, path = "/v1/holds", tag = "holds", security(("api_token" = [])), params(HoldQuery),
    responses((status = 200, body = HoldPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(Granted { tenant, .. }: Granted<need::FundsView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<HoldQuery>) -> Result<Json<HoldPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=HOLDS_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", &format!("limit must be from 1 to {HOLDS_PAGE_MAX}")));
    }
    let filter = HoldFilter { state: query.state, wallet: query.wallet_id.map(WalletId), before: query.before.as_deref().map(parse_hold_id).transpose()? };
    let holds = state.services.holds(&tenant, &filter, limit).await?;
    let next_before = (holds.len() as i64 == limit).then(|| holds.last().map(|h| h.hold.id.to_string())).flatten();
    Ok(Json(HoldPage { items: holds.iter().map(|h| hold_view(h, false)).collect(), next_before }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PostHoldBody {
    /// What to move, at most what the hold reserved; all of it when absent.
    /// The rest of the reservation is given back.
    pub amount: Option<String>,
    pub memo: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PostedHoldView {
    pub hold: HoldView,
    /// The transfer that moved the money.
    pub transfer: TransferView,
}

/// Post a pending hold: move the money it reserved (or part of it)
#[utoipa::path(post, path = "/v1/holds/{hold_id}/post", tag = "holds", security(("api_token" = [])),
    params(("hold_id" = String, Path), ("Idempotency-Key" = String, Header)), request_body = PostHoldBody,
    responses((status = 200, body = PostedHoldView), (status = 400, body = ErrorBody, description = "an amount above the reservation"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "hold_not_pending (posted, voided or expired), idempotency_key_reused"),
              (status = 422, body = ErrorBody)))]
pub async fn post(
    Granted { tenant, caller, .. }: Granted<need::FundsMove>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<PostHoldBody>,
) -> Result<Response, ApiError> {
    let id = parse_hold_id(&id)?;
    let amount = body.amount.as_deref().map(parse_amount).transpose()?;
    let PostedHold { hold, transfer, replayed } = state.services.post_hold(&tenant, id, amount, MoveOptions { idempotency_key: Some(key), memo: body.memo }, &caller.change()).await?;
    let view = PostedHoldView { hold: hold_view(&hold, replayed), transfer: transfer_view(transfer, hold.hold.intent.currency)? };
    Ok(hold_response(StatusCode::OK, view, replayed))
}

/// Void a pending hold: give back what it reserved
#[utoipa::path(post, path = "/v1/holds/{hold_id}/void", tag = "holds", security(("api_token" = [])), params(("hold_id" = String, Path)),
    responses((status = 200, body = HoldView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "hold_not_pending: already posted")))]
pub async fn void(Granted { tenant, caller, .. }: Granted<need::FundsMove>, State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let receipt = state.services.void_hold(&tenant, parse_hold_id(&id)?, &caller.change()).await?;
    Ok(hold_response(StatusCode::OK, hold_view(&receipt.hold, receipt.replayed), receipt.replayed))
}
