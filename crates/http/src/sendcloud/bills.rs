//! `bill` and `billDetail`: sub-accounts' monthly bills, paged over sub-accounts.
//!
//! SendCloud accounts (`userType` 0) see closed months only; iFaxin accounts
//! (`userType` 1) also see the current month to date, as the spec describes.
//! `billDetail` does not cover iFaxin accounts (spec note 2): they are listed,
//! so that paging and `total` stay those of `bill`, with an empty `billDetail`.

use axum::extract::{Request, State};
use axum::response::Response;
use serde::Serialize;
use serde_json::value::RawValue;
use subledger_domain::account::UserType;
use subledger_domain::calendar::Month;
use subledger_domain::decimal::div_round_half_up;
use subledger_domain::paging::Page;
use subledger_domain::rating::{DetailLine, Quantity, UnitPrice, format_scaled};
use subledger_service::billing::{BillRange, BillView, LineView};
use subledger_service::{Resource, ServiceError};

use super::envelope::{Code, Refusal, Yuan, success};
use super::handlers::run;
use super::{Replays, SignedCall, storage_refusal};
use crate::AppState;
use crate::numbers::Number;

/// Widest range of months one query may span.
const MONTHS_MAX: usize = 24;
const PAGE_SIZE_DEFAULT: i64 = 10;
const PAGE_SIZE_MAX: i64 = 200;

fn quantity(q: Quantity) -> Number {
    Number(q.to_string())
}

fn price(p: UnitPrice) -> Number {
    Number(p.to_string())
}

/// Micros per unit of the fourth decimal of a yuan.
const MICROS_PER_DETAIL_UNIT: i128 = 100;

/// Micros as a decimal of at most four places (detail lines keep 3–4 decimals), rounded half-up.
fn detail_money(micros: i64) -> Number {
    // A 100th of an i64 fits i64.
    let units = i64::try_from(div_round_half_up(i128::from(micros), MICROS_PER_DETAIL_UNIT)).expect("a hundredth of an i64 fits i64");
    Number(format_scaled(units, 4))
}

/// A bill line as `consumeOrders` and `billDetail` show it.
#[derive(Serialize)]
struct ConsumeOrder {
    #[serde(rename = "orderType")]
    order_type: i64,
    desc: String,
    remark: Number,
    component: String,
    #[serde(rename = "orderMoney")]
    order_money: Yuan,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BillData {
    date: String,
    total_money: Yuan,
    consume_orders: Vec<ConsumeOrder>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountBills<T: Serialize> {
    username: String,
    user_type: i64,
    #[serde(flatten)]
    bills: T,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BillPage<T: Serialize> {
    total: i64,
    count: usize,
    list: Vec<AccountBills<T>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BillDataList {
    bill_data: Vec<BillData>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BillDetailList {
    bill_detail: Vec<DetailOrder>,
}

impl From<&LineView> for ConsumeOrder {
    fn from(l: &LineView) -> Self {
        ConsumeOrder { order_type: l.order_type, desc: l.description.clone(), remark: quantity(l.quantity), component: l.unit.clone(), order_money: Yuan(l.money_cents) }
    }
}

#[derive(Serialize)]
struct DetailOrder {
    date: String,
    #[serde(flatten)]
    order: ConsumeOrder,
    info: Box<RawValue>,
}

/// The `info` of a supplement line: what was billed before, and the detail.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SupplementInfo {
    last_month_money: Yuan,
    last_month_amount: Number,
    list: Vec<serde_json::Value>,
}

/// The `info` of a detail line, in the spec's shape for its kind.
fn detail_json(line: &DetailLine) -> serde_json::Value {
    let number = |n: Number| serde_json::from_str::<serde_json::Value>(&n.0).unwrap_or(serde_json::Value::Null);
    match line {
        DetailLine::Tier { level, min, max, unit, price: p, count, money_micros } => serde_json::json!({
            "level": level,
            "price": number(price(*p)),
            "unit": number(quantity(*unit)),
            "minValue": number(quantity(*min)),
            "maxValue": max.map(|m| number(quantity(m))),
            "count": number(quantity(*count)),
            "money": number(detail_money(*money_micros)),
        }),
        DetailLine::Units { count, price: p, money_micros } => serde_json::json!({
            "level": 0,
            "price": number(price(*p)),
            "unit": 1,
            "minValue": 0,
            "maxValue": null,
            "count": number(quantity(*count)),
            "money": number(detail_money(*money_micros)),
        }),
        DetailLine::Country { country_id, name, price: p, count, money_micros } => serde_json::json!({
            "money": number(detail_money(*money_micros)),
            "price": number(price(*p)),
            "count": number(quantity(*count)),
            "countryName": name,
            "countryId": country_id,
        }),
        DetailLine::Item { item, price: p, money_micros } => {
            let (kind, ip) = item.split_once('|').unwrap_or(("", item.as_str()));
            serde_json::json!({ "money": number(detail_money(*money_micros)), "price": number(price(*p)), "ip": ip, "type": kind })
        }
        DetailLine::Allowance { total, free, pay, price: p, money_micros } => serde_json::json!({
            "payEmailDataCount": number(quantity(*pay)),
            "money": number(detail_money(*money_micros)),
            "price": number(price(*p)),
            "totalEmailDataCount": number(quantity(*total)),
            "freeEmailDataCount": number(quantity(*free)),
        }),
        // A monthly fee (spec 000 has none): its days, like a count of units.
        DetailLine::Subscription { days, month_days, price: p, money_micros, .. } => serde_json::json!({
            "money": number(detail_money(*money_micros)),
            "price": number(price(*p)),
            "count": days,
            "monthDays": month_days,
        }),
    }
}

/// The `info` of a bill line: a list for tiers, countries and items, an
/// object for a single part, and for a supplement the spec's
/// `{lastMonthMoney, lastMonthAmount, list}`.
fn line_info(line: &LineView) -> Box<RawValue> {
    let parts: Vec<serde_json::Value> = line.detail.iter().map(detail_json).collect();
    let single = matches!(line.detail.as_slice(), [DetailLine::Units { .. } | DetailLine::Allowance { .. } | DetailLine::Subscription { .. }]);
    let raw = match line.previous {
        // Money with its two decimals, like `orderMoney`.
        Some((amount, money)) => serde_json::value::to_raw_value(&SupplementInfo { last_month_money: Yuan(money), last_month_amount: quantity(amount), list: parts }),
        None if single => serde_json::value::to_raw_value(&parts.into_iter().next().unwrap_or_default()),
        None => serde_json::value::to_raw_value(&parts),
    };
    raw.expect("bill detail serializes")
}

/// The range, paging and filter of both endpoints.
struct BillQuery {
    from: Month,
    to: Month,
    page: Page,
    username: Option<String>,
}

fn bill_query(call: &SignedCall) -> Result<BillQuery, Refusal> {
    let month = |name: &str| call.params.get(name).ok_or(Refusal(Code::Failed)).and_then(|m| Month::parse_compact(m).map_err(|_| Refusal(Code::Failed)));
    let (from, to) = (month("startMonth")?, month("endMonth")?);
    if from > to || from.through(to).count() > MONTHS_MAX {
        return Err(Refusal(Code::Failed));
    }
    let page = Page::parse(call.params.get("startNo"), call.params.get("pageSize"), PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX).map_err(|_| Refusal(Code::PageSize))?;
    Ok(BillQuery { from, to, page, username: call.params.get("username").filter(|u| !u.is_empty()).map(str::to_owned) })
}

/// The page of sub-accounts and their bills in the range.
async fn page_bills(state: &AppState, call: &SignedCall, query: &BillQuery) -> Result<(i64, Vec<(String, UserType, Vec<BillView>)>), Refusal> {
    // SendCloud accounts see closed months only; iFaxin ones the month so far too.
    // Its bills are those in its currency: yuan, as `totalMoney` shows.
    let range = BillRange { from: query.from, to: query.to, currency: Some(super::CURRENCY) };
    let (total, accounts) = state.services.bills_page(&call.tenant, query.username.as_deref(), query.page, range, |account| account.user_type == UserType::IFaxin).await.map_err(|e| match e {
        ServiceError::NotFound(Resource::Account) => Refusal(Code::UsernameUnknown),
        other => storage_refusal(other, Code::Failed),
    })?;
    let accounts = accounts
        .into_iter()
        .map(|(account, mut bills)| {
            // Newest month first, as the spec's examples list them.
            bills.sort_by(|a, b| b.month.cmp(&a.month));
            (account.username, account.user_type, bills)
        })
        .collect();
    Ok((total, accounts))
}

pub async fn bill(State(state): State<AppState>, request: Request) -> Response {
    run(state, request, false, Replays::Recorded, |state, call| async move {
        let query = bill_query(&call)?;
        let (total, accounts) = page_bills(&state, &call, &query).await?;
        let list: Vec<AccountBills<BillDataList>> = accounts
            .into_iter()
            .map(|(username, user_type, bills)| {
                let bill_data = bills.into_iter().map(|b| BillData { date: b.month, total_money: Yuan(b.total_cents), consume_orders: b.lines.iter().map(ConsumeOrder::from).collect() }).collect();
                AccountBills { username, user_type: user_type.code(), bills: BillDataList { bill_data } }
            })
            .collect();
        Ok(success(BillPage { total, count: list.len(), list }))
    })
    .await
}

pub async fn bill_detail(State(state): State<AppState>, request: Request) -> Response {
    run(state, request, false, Replays::Recorded, |state, call| async move {
        let query = bill_query(&call)?;
        let (total, accounts) = page_bills(&state, &call, &query).await?;
        let list: Vec<AccountBills<BillDetailList>> = accounts
            .into_iter()
            .map(|(username, user_type, bills)| {
                let bill_detail = if user_type == UserType::IFaxin {
                    Vec::new()
                } else {
                    bills
                        .into_iter()
                        .flat_map(|b| {
                            let month = b.month;
                            b.lines.into_iter().map(move |l| DetailOrder { date: month.clone(), order: ConsumeOrder::from(&l), info: line_info(&l) })
                        })
                        .collect()
                };
                AccountBills { username, user_type: user_type.code(), bills: BillDetailList { bill_detail } }
            })
            .collect();
        Ok(success(BillPage { total, count: list.len(), list }))
    })
    .await
}
