//! Ad accounts: `account_info`, `account_recharge_status`,
//! `change_spend_cap`, `account_spend_cap_reset`, and `/lb/api/v1/account_list`.

use serde::Serialize;
use serde_json::{Map, Value, json};
use subledger_ads::AD_ACCOUNT_FIELDS;
use subledger_domain::ads::{SpendCap, SpendCapError};
use subledger_domain::calendar::{Day, TenantTimeZone};
use subledger_domain::insights::parse_day;
use subledger_service::ads::{AdAccountFilter, AdAccountView};

use super::error::{Refusal, code, recharge_refusal};
use super::{Call, Codes, Reply, graph_time, requested_fields};
use crate::numbers::Number;

pub const CHANGE_SPEND_CAP: Codes =
    &[code::ID_MISSING, code::ID_INVALID, code::AMOUNT_MISSING, code::AMOUNT_INVALID, code::AMOUNT_TOO_LOW, code::UPSTREAM_TIMEOUT, code::STATUS, code::VIOLATION, code::BLACKLISTED];
pub const RESET_SPEND_CAP: Codes = &[code::ID_MISSING, code::ID_INVALID, code::UPSTREAM_TIMEOUT, code::STATUS];
pub const ACCOUNT_INFO: Codes = &[code::ID_MISSING, code::ID_INVALID, code::FIELDS_EMPTY, code::FIELDS_INVALID, code::UPSTREAM_TIMEOUT];
pub const RECHARGE_STATUS: Codes = &[code::ID_MISSING, code::ID_INVALID, code::VIOLATION, code::BLACKLISTED];
pub const ACCOUNT_LIST: Codes = &[code::TIME_RANGE, code::PAGING];

/// `change_spend_cap`: sets the account's spend cap to `amount_usd` US
/// cents; the service funds the difference from the tenant's USD wallet.
pub async fn change_spend_cap(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.account_id()?;
    let cap = SpendCap::parse(&call.params.amount_usd()?).map_err(|error| {
        let code = match error {
            SpendCapError::Invalid => code::AMOUNT_INVALID,
            SpendCapError::TooLow => code::AMOUNT_TOO_LOW,
        };
        Refusal::new(code, error.to_string())
    })?;
    call.state.services.change_ad_spend_cap(&call.tenant, &call.write(), &id, cap).await?;
    Reply::done()
}

/// `account_spend_cap_reset`: Meta's `spend_cap_action=reset`; what was not
/// spent goes back to the tenant.
pub async fn reset_spend_cap(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.account_id()?;
    call.state.services.reset_ad_spend_cap(&call.tenant, &call.write(), &id).await?;
    Reply::done()
}

/// `account_info`: the account read from Meta now, with the fields asked
/// (every field of [`AD_ACCOUNT_FIELDS`] when `fields` is absent).
pub async fn account_info(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.account_id()?;
    let fields = requested_fields(&call.params, &AD_ACCOUNT_FIELDS, &AD_ACCOUNT_FIELDS)?;
    let account = call.state.services.ad_account_info(&call.tenant, &id).await?;
    let data: Map<String, Value> = fields.iter().map(|name| ((*name).to_owned(), info_field(&account, &call.tenant.timezone, name))).collect();
    Reply::data(&data)
}

/// One field of `account_info`: money in US cents as whole numbers, times
/// as Graph writes them, the rest as Meta gave it (`null` when it gave nothing).
fn info_field(account: &AdAccountView, timezone: &TenantTimeZone, name: &str) -> Value {
    match name {
        "id" => json!(format!("act_{}", account.id)),
        "account_id" => json!(account.id),
        "name" => json!(account.name),
        "account_status" => json!(account.meta_status),
        "disable_reason" => json!(account.disable_reason),
        "currency" => json!(account.currency),
        "spend_cap" => json!(account.spend_cap_cents),
        "amount_spent" => json!(account.amount_spent_cents),
        "created_time" => json!(graph_time(timezone, account.created_time_us)),
        // Graph writes money as a string of minor units: a number here, like the other amounts.
        "balance" => match account.fields.get(name) {
            Some(Value::String(text)) => text.parse::<i64>().map_or_else(|_| json!(text), |cents| json!(cents)),
            other => other.cloned().unwrap_or(Value::Null),
        },
        _ => account.fields.get(name).cloned().unwrap_or(Value::Null),
    }
}

/// `account_recharge_status`: whether the account can be topped up now. A
/// violation account (1020) and a blacklisted company (1021) are the spec's
/// refusals; a status that forbids it is `status: false` with the reason.
pub async fn recharge_status(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.account_id()?;
    let (status, reason) = match call.state.services.ad_recharge_status(&call.tenant, &id).await? {
        None => (true, String::new()),
        Some(refusal) => {
            let refusal = recharge_refusal(refusal);
            if refusal.code != code::STATUS {
                return Err(refusal);
            }
            (false, refusal.message.into_owned())
        }
    };
    Reply::data(&json!({ "status": status, "reason": reason }))
}

/// `page_size` when not given (the spec's example).
const PAGE_SIZE_DEFAULT: i64 = 100;

/// One ad account of `account_list`. Money in US dollars with two decimals.
#[derive(Serialize)]
struct ListedAccount {
    id: String,
    name: String,
    created_time: String,
    status: i64,
    spend_cap: Number,
    amount_spent: Number,
    total_spend: Number,
    company_name: String,
    request_id: String,
    violation: bool,
    violation_reason: String,
    blacklist: i64,
}

/// `account_list`'s `data` (a struct, not `json!`: its money keeps two decimals).
#[derive(Serialize)]
struct AccountPage {
    list: Vec<ListedAccount>,
    total_count: i64,
}

/// `/lb/api/v1/account_list`: the tenant's ad accounts as synced, newest
/// first, a page at a time, optionally only those issued between two days
/// (inclusive, in the tenant's zone).
pub async fn account_list(call: Call) -> Result<Reply, Refusal> {
    // The service bounds both (1027 beyond them).
    let page_num = call.params.whole_number("page_num", code::PAGING)?.unwrap_or(1);
    let page_size = call.params.whole_number("page_size", code::PAGING)?.unwrap_or(PAGE_SIZE_DEFAULT);
    let filter = AdAccountFilter { created_from: day(&call, "create_start_date")?, created_until: day(&call, "create_end_date")? };
    if let (Some(from), Some(until)) = (filter.created_from, filter.created_until)
        && from > until
    {
        return Err(Refusal::new(code::TIME_RANGE, "create_start_date must not be after create_end_date"));
    }
    let (accounts, total) = call.state.services.ad_accounts(&call.tenant, &filter, page_num, page_size).await?;
    let dollars = |cents: i64| Number(subledger_domain::money::format_minor(cents));
    let list: Vec<ListedAccount> = accounts
        .into_iter()
        .map(|account| ListedAccount {
            created_time: graph_time(&call.tenant.timezone, account.created_time_us),
            status: account.status.code(),
            spend_cap: dollars(account.spend_cap_cents),
            amount_spent: dollars(account.amount_spent_cents),
            total_spend: dollars(account.total_spent_cents),
            request_id: account.request_id.unwrap_or_default(),
            blacklist: account.blacklist.code(),
            id: account.id,
            name: account.name,
            company_name: account.company_name,
            violation: account.violation,
            violation_reason: account.violation_reason,
        })
        .collect();
    Reply::data(&AccountPage { list, total_count: total })
}

/// A day parameter, `YYYY-MM-DD` (1015 otherwise).
fn day(call: &Call, name: &str) -> Result<Option<Day>, Refusal> {
    let Some(text) = call.params.optional_text(name, code::TIME_RANGE)? else { return Ok(None) };
    parse_day(&text).map(Some).ok_or_else(|| Refusal::new(code::TIME_RANGE, format!("{name} must be a day written YYYY-MM-DD")))
}
