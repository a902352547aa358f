//! `POST /v1/usage`: batches of usage events.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use subledger_domain::money::format_minor;
use subledger_domain::rating::{Quantity, format_scaled};
use subledger_domain::usage::Outcome;
use subledger_service::usage::{USAGE_BATCH_MAX, UsageEventIn, UsageResult};
use utoipa::ToSchema;

use super::catalog::parse_instant;
use super::{ApiError, ApiJson, ErrorBody, Granted, need};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEventBody {
    /// Unique per tenant: a replay is answered with the first outcome.
    /// Time-ordered ids (ULID, UUIDv7, sequence numbers) keep ingestion fastest.
    pub id: String,
    /// The sub-account's username.
    pub account: String,
    /// Product code (see `GET /v1/products`).
    pub product: String,
    /// Decimal string or integer, at most three decimals (see the product's `quantity_meaning`).
    #[schema(value_type = String)]
    pub quantity: Quantity,
    /// RFC 3339; default: when received.
    pub occurred_at: Option<String>,
    /// Strings; `country` (a country id) and `item` (e.g. an IP) where the product is grouped by them.
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatchBody {
    /// At most 1,000 events.
    pub events: Vec<UsageEventBody>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageEventResult {
    pub id: String,
    /// `accepted`, `duplicate` (the outcome below is the first one) or `rejected`.
    pub status: String,
    /// For a duplicate: `accepted` or `rejected`, as the first time.
    pub first_status: Option<String>,
    /// Why it was (first) rejected: `unknown_account`, `unknown_product`, `no_tariff`,
    /// `account_frozen`, `missing_attribute`, `invalid_quantity`, `in_future`, `too_old` (over 400 days old),
    /// `quota_exceeded`, `amount_too_large` (its cost, or its month's totals with it, past their
    /// limits), `insufficient_funds`, `no_wallet_in_currency` (the account has no wallets in the
    /// product's currency: they open with its first deposit, transfer or overdraft in it),
    /// `account_cancelled` (a cancelled sub-user), `not_metered` (a monthly fee, billed by subscription).
    pub reason: Option<String>,
    /// Debited now, in `currency` (decimal; 0 for postpaid accounts).
    pub charge: Option<String>,
    pub charge_minor: Option<i64>,
    /// Billable quantity in the product's unit: for per-unit prices, the started
    /// increments (a 61 s call at 60 s increments is 2 minutes).
    pub billable: Option<String>,
    /// What the event added to its month's exact cost (up to six decimals).
    pub rated: Option<String>,
    /// Billable minutes time cards covered (not in `billable`, which money paid for).
    pub card_minutes: Option<i64>,
    /// `CNY` or `USD`: the currency of the event's product, which `charge` and
    /// `rated` are in; `null` for a product the tenant does not have.
    pub currency: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UsageBatchResult {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<UsageEventResult>,
}

fn result_view(result: UsageResult) -> UsageEventResult {
    let (first_status, reason, charge, billable, rated, card_minutes) = match result.outcome {
        Outcome::Accepted(a) => ("accepted", None, Some(a.charge_cents), Some(a.billable), Some(a.rated_micros), Some(a.card_minutes)),
        Outcome::Rejected(r) => ("rejected", Some(r.as_str().to_owned()), None, None, None, None),
    };
    UsageEventResult {
        id: result.id,
        status: if result.duplicate { "duplicate" } else { first_status }.to_owned(),
        first_status: result.duplicate.then(|| first_status.to_owned()),
        reason,
        charge: charge.map(format_minor),
        charge_minor: charge,
        billable: billable.map(|b| b.to_string()),
        rated: rated.map(|r| format_scaled(r, 6)),
        card_minutes,
        currency: result.currency.map(|c| c.code().to_owned()),
    }
}

/// Ingest a batch of usage events
///
/// Every event is answered on its own; the batch is recorded in one
/// transaction, so it is never half applied. Replaying a batch charges
/// nothing twice.
#[utoipa::path(post, path = "/v1/usage", tag = "billing", security(("api_token" = [])), request_body = UsageBatchBody,
    responses((status = 200, body = UsageBatchResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn ingest(Granted { tenant, caller, .. }: Granted<need::BillingManage>, State(state): State<AppState>, ApiJson(body): ApiJson<UsageBatchBody>) -> Result<Json<UsageBatchResult>, ApiError> {
    if body.events.len() > USAGE_BATCH_MAX {
        return Err(ApiError::bad_request("batch_too_large", &format!("a batch holds at most {USAGE_BATCH_MAX} events")));
    }
    let now = jiff::Timestamp::now().as_microsecond();
    let mut events = Vec::with_capacity(body.events.len());
    for event in body.events {
        let occurred_at_us = match event.occurred_at.as_deref() {
            Some(text) => parse_instant(text)?,
            None => now,
        };
        let mut attributes = BTreeMap::new();
        for (name, value) in event.attributes {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                other => return Err(ApiError::bad_request("invalid_attribute", &format!("event {}: attribute {name} must be a string or an integer, not {other}", event.id))),
            };
            attributes.insert(name, text);
        }
        events.push(UsageEventIn { id: event.id, username: event.account, product: event.product, quantity: event.quantity, occurred_at_us, attributes });
    }
    let results = state.services.ingest_usage(&tenant, events, &caller.change()).await?;
    let views: Vec<UsageEventResult> = results.into_iter().map(result_view).collect();
    let count = |status: &str| views.iter().filter(|v| v.status == status).count();
    Ok(Json(UsageBatchResult { accepted: count("accepted"), duplicates: count("duplicate"), rejected: count("rejected"), results: views }))
}
