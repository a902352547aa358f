//! The six endpoints of spec 002. Each authenticates, parses, calls one
//! service method and renders its answer.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use subledger_domain::calendar::Month;
use subledger_domain::ledger::WalletPurpose;
use subledger_domain::rating::format_scaled;
use subledger_service::statements::{ChargeItem, DayAmount, StatementGroup, StatementItem, WalletMonth};

use super::envelope::{Failure, Number, OrderedObject, Yuan, success};
use super::{PathParams, QueryParams, TenantAuth};
use crate::AppState;

/// Any method but GET (and HEAD) on a telephony path.
pub async fn only_get() -> Failure {
    Failure::MethodNotAllowed
}

#[derive(Deserialize)]
pub struct ChargesQuery {
    #[serde(rename = "accountId")]
    account_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChargeView {
    name: &'static str,
    pay_type: &'static str,
    /// Yuan per `unit`, as a string without trailing zeros (`"0.12"`, `"0"`).
    price: String,
    unit: &'static str,
}

impl From<ChargeItem> for ChargeView {
    fn from(c: ChargeItem) -> Self {
        ChargeView { name: c.item.name, pay_type: c.item.pay_type, price: format_scaled(c.price_micros, 6), unit: c.item.price_unit }
    }
}

/// `GET /balance/charges?accountId=…`: the account's tariffs by group.
pub async fn charges(TenantAuth(tenant): TenantAuth, State(state): State<AppState>, QueryParams(query): QueryParams<ChargesQuery>) -> Result<Response, Failure> {
    let username = query.account_id.filter(|a| !a.is_empty()).ok_or_else(|| Failure::BadRequest("缺少参数accountId".to_owned()))?;
    let groups = state.services.telephony_charges(&tenant, &username).await?;
    Ok(success(OrderedObject(groups.into_iter().map(|g| (g.group.key(), g.items.into_iter().map(ChargeView::from).collect::<Vec<_>>())).collect())))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountAmountView {
    primary_amount: Yuan,
    depute_amount: Yuan,
    consumption_yesterday: Yuan,
    consumption_month: Yuan,
}

/// `GET /balance/getAccountAmount/{accountId}`: balances and consumption.
pub async fn account_amount(TenantAuth(tenant): TenantAuth, State(state): State<AppState>, PathParams(username): PathParams<String>) -> Result<Response, Failure> {
    let amounts = state.services.account_amounts(&tenant, &username).await?;
    Ok(success(AccountAmountView {
        primary_amount: Yuan(amounts.primary_minor),
        depute_amount: Yuan(amounts.promo_minor),
        consumption_yesterday: Yuan(amounts.yesterday_cents),
        consumption_month: Yuan(amounts.month_cents),
    }))
}

/// `GET /balance/getConsumerOverview/{accountId}`: the month so far by category.
pub async fn consumer_overview(TenantAuth(tenant): TenantAuth, State(state): State<AppState>, PathParams(username): PathParams<String>) -> Result<Response, Failure> {
    let categories = state.services.consumption_overview(&tenant, &username).await?;
    Ok(success(OrderedObject(categories.into_iter().map(|(category, cents)| (category, Yuan(cents))).collect())))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WalletMonthView {
    name: &'static str,
    amount: Yuan,
    deduction: Yuan,
    balance: Yuan,
    recharge_amount: Yuan,
}

impl From<WalletMonth> for WalletMonthView {
    fn from(w: WalletMonth) -> Self {
        WalletMonthView {
            // The spec's name for the promo (bonus) wallet is `depute`.
            name: if w.purpose == WalletPurpose::Promo { "depute" } else { "primary" },
            amount: Yuan(w.amount_minor),
            deduction: Yuan(w.deduction_minor),
            balance: Yuan(w.balance_minor),
            recharge_amount: Yuan(w.recharged_minor),
        }
    }
}

/// `GET /balance/getAccountInfo/{accountId}`: each wallet over the current month.
pub async fn account_info(TenantAuth(tenant): TenantAuth, State(state): State<AppState>, PathParams(username): PathParams<String>) -> Result<Response, Failure> {
    let months = state.services.wallet_months(&tenant, &username).await?;
    Ok(success(months.into_iter().map(WalletMonthView::from).collect::<Vec<_>>()))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatementItemView {
    name: &'static str,
    pay_type: &'static str,
    /// Money spent on the item in the month.
    price: Yuan,
    /// Billable quantity (minutes, messages).
    number: Number,
}

impl From<StatementItem> for StatementItemView {
    fn from(i: StatementItem) -> Self {
        StatementItemView { name: i.item.name, pay_type: i.item.statement_pay_type, price: Yuan(i.cents), number: Number(i.billable.to_string()) }
    }
}

#[derive(Serialize)]
struct StatementGroupView {
    name: &'static str,
    total: Yuan,
    items: Vec<StatementItemView>,
}

impl From<StatementGroup> for StatementGroupView {
    fn from(g: StatementGroup) -> Self {
        StatementGroupView { name: g.group.title(), total: Yuan(g.total_cents), items: g.items.into_iter().map(StatementItemView::from).collect() }
    }
}

/// `yyyy-MM` or `yyyyMM`.
fn parse_month(text: &str) -> Result<Month, Failure> {
    let parsed = if text.contains('-') { Month::parse_dashed(text) } else { Month::parse_compact(text) };
    parsed.map_err(|_| Failure::BadRequest("月份格式错误：应为yyyy-MM或yyyyMM，例如2024-03或202403".to_owned()))
}

/// `GET /balance/getConsumerInfo/{accountId}/{month}`: a month's statement by group and item.
pub async fn consumer_info(TenantAuth(tenant): TenantAuth, State(state): State<AppState>, PathParams((username, month)): PathParams<(String, String)>) -> Result<Response, Failure> {
    let month = parse_month(&month)?;
    let groups = state.services.telephony_statement(&tenant, &username, month).await?;
    Ok(success(groups.into_iter().map(StatementGroupView::from).collect::<Vec<_>>()))
}

#[derive(Serialize)]
struct DayView {
    days: String,
    amount: Yuan,
}

/// `GET /balance/getConsumptionTrend/{accountId}`: consumption per day of the current month.
pub async fn consumption_trend(TenantAuth(tenant): TenantAuth, State(state): State<AppState>, PathParams(username): PathParams<String>) -> Result<Response, Failure> {
    let trend = state.services.consumption_trend(&tenant, &username).await?;
    Ok(success(trend.into_iter().map(|DayAmount { day, cents }| DayView { days: day.to_string(), amount: Yuan(cents) }).collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_read_in_both_spellings() {
        assert_eq!(parse_month("2024-03").unwrap().to_string(), "2024-03");
        assert_eq!(parse_month("202403").unwrap().to_string(), "2024-03");
        for bad in ["2024-3", "2024-13", "202413", "24-03", "2024/03", "", "2024-03-01"] {
            assert_eq!(parse_month(bad).map_err(|f| f.code()).unwrap_err(), 400, "{bad}");
        }
    }
}
