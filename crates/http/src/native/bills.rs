//! `/v1/bills`: month bills, closing a month, exports, and daily bills.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use subledger_domain::calendar::{Day, Month};
use subledger_domain::money::format_minor;
use subledger_domain::paging::Page;
use subledger_domain::rating::format_scaled;
use subledger_service::accounts::ACCOUNT_PAGE_MAX;
use subledger_service::billing::{BillRange, BillView, CloseReport, CloseTotals, DayBill, LineView, SettlementView};
use subledger_service::exports::ExportFormat;
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, Granted, need};
use crate::AppState;

/// Widest range of months one bill query may span.
const MONTHS_MAX: usize = 24;

fn month(field: &str, text: &str) -> Result<Month, ApiError> {
    Month::parse_dashed(text).map_err(|e| ApiError::bad_request("invalid_month", &format!("{field}: {e}")))
}

fn day(field: &str, text: &str) -> Result<Day, ApiError> {
    text.parse::<jiff::civil::Date>().map(Day).map_err(|e| ApiError::bad_request("invalid_day", &format!("{field}: {text:?} is not a YYYY-MM-DD date: {e}")))
}

#[derive(Serialize, ToSchema)]
pub struct BillLineView {
    /// `usage` (this month's usage) or `supplement` (late usage of an earlier, closed month: 补扣, or 返账 with a negative amount when the month got cheaper).
    pub kind: String,
    /// The month the usage belongs to.
    pub for_month: String,
    pub product: String,
    /// SendCloud `orderType`.
    pub order_type: i64,
    pub description: String,
    pub unit: String,
    /// What money paid for (billable quantity).
    pub quantity: String,
    /// Minutes time cards covered, beside `quantity` (per-minute voice products).
    pub card_minutes: String,
    pub money: String,
    pub money_minor: i64,
    /// For a supplement: the quantity and money billed for `for_month` before.
    pub previous_quantity: Option<String>,
    pub previous_money: Option<String>,
    /// How the money was computed (tiers, countries, items, allowance); the parts sum to `money`.
    #[schema(value_type = Vec<Object>)]
    pub detail: Vec<subledger_domain::rating::DetailLine>,
}

impl From<LineView> for BillLineView {
    fn from(line: LineView) -> Self {
        BillLineView {
            kind: line.kind.as_str().to_owned(),
            for_month: line.for_month,
            product: line.product_code,
            order_type: line.order_type,
            description: line.description,
            unit: line.unit,
            quantity: line.quantity.to_string(),
            card_minutes: line.card.to_string(),
            money: format_minor(line.money_cents),
            money_minor: line.money_cents,
            previous_quantity: line.previous.map(|(q, _)| q.to_string()),
            previous_money: line.previous.map(|(_, c)| format_minor(c)),
            detail: line.detail,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SettlementJson {
    pub product: String,
    /// 补扣 (a charge) or 返账 (a refund) `orderType`.
    pub order_type: i64,
    /// Positive: charged at close; negative: refunded (in the bill's currency).
    pub amount: String,
    pub amount_minor: i64,
    /// `posted`, or `outstanding` when the wallets could not pay (the next close tries again).
    pub status: String,
    pub transfer_id: Option<i64>,
}

impl From<SettlementView> for SettlementJson {
    fn from(s: SettlementView) -> Self {
        SettlementJson {
            product: s.product_code,
            order_type: s.order_type,
            amount: format_minor(s.amount_cents),
            amount_minor: s.amount_cents,
            status: if s.transfer_id.is_some() { "posted" } else { "outstanding" }.to_owned(),
            transfer_id: s.transfer_id,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BillJson {
    pub username: String,
    pub month: String,
    /// `CNY` or `USD`: an account has one bill per month and currency, and
    /// every amount of the bill (lines, total, settlements) is in it.
    pub currency: String,
    /// False for the current month so far (computed, not final).
    pub closed: bool,
    /// The sum of the lines' money.
    pub total: String,
    pub total_minor: i64,
    pub lines: Vec<BillLineView>,
    pub settlements: Vec<SettlementJson>,
}

fn bill_json(username: String, bill: BillView) -> BillJson {
    BillJson {
        username,
        month: bill.month,
        currency: bill.currency.code().to_owned(),
        closed: bill.closed,
        total: format_minor(bill.total_cents),
        total_minor: bill.total_cents,
        lines: bill.lines.into_iter().map(BillLineView::from).collect(),
        settlements: bill.settlements.into_iter().map(SettlementJson::from).collect(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct BillList {
    /// Accounts matching the filter (the page runs over accounts, not bills).
    pub total_accounts: i64,
    pub items: Vec<BillJson>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BillQuery {
    /// First month, `YYYY-MM`.
    pub from: String,
    /// Last month, `YYYY-MM` (default: `from`); at most 24 months.
    pub to: Option<String>,
    /// Exact username.
    pub username: Option<String>,
    /// Also show the current month so far (not closed).
    pub month_to_date: Option<bool>,
    /// Only bills in this currency (`CNY` or `USD`); default: every currency.
    pub currency: Option<String>,
    pub offset: Option<i64>,
    /// Accounts per page: default 50, at most 200.
    pub limit: Option<i64>,
}

/// Bills of a range of months
///
/// Closed months' bills, and with `month_to_date=true` the current month so
/// far, for a page of accounts.
#[utoipa::path(get, path = "/v1/bills", tag = "billing", security(("api_token" = [])), params(BillQuery),
    responses((status = 200, body = BillList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(Granted { tenant, .. }: Granted<need::BillingView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<BillQuery>) -> Result<Json<BillList>, ApiError> {
    let from = month("from", &query.from)?;
    let to = query.to.as_deref().map(|t| month("to", t)).transpose()?.unwrap_or(from);
    if from > to || from.through(to).count() > MONTHS_MAX {
        return Err(ApiError::bad_request("invalid_range", &format!("from must not be after to, and the range spans at most {MONTHS_MAX} months")));
    }
    let page = Page::new(query.offset.unwrap_or(0), query.limit.unwrap_or(50), ACCOUNT_PAGE_MAX).map_err(|e| ApiError::bad_request("invalid_page", &e.to_string()))?;
    let username = query.username.as_deref().filter(|u| !u.is_empty());
    let month_to_date = query.month_to_date.unwrap_or(false);
    let currency = query.currency.as_deref().map(|c| super::wallets::parse_currency(Some(c))).transpose()?;
    let (total, accounts) = state.services.bills_page(&tenant, username, page, BillRange { from, to, currency }, |_| month_to_date).await?;
    let items = accounts.into_iter().flat_map(|(account, bills)| bills.into_iter().map(move |bill| bill_json(account.username.clone(), bill))).collect();
    Ok(Json(BillList { total_accounts: total, items }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// `YYYY-MM`; must have ended in the tenant's time zone.
    pub month: String,
}

#[derive(Serialize, ToSchema)]
pub struct CloseReportJson {
    pub month: String,
    /// The month was closed before: nothing changed.
    pub already_closed: bool,
    /// Bills written, every currency.
    pub bills: usize,
    /// What was billed and settled, per currency (oldest code first: `CNY`, `USD`).
    pub currencies: Vec<CloseTotalsJson>,
}

#[derive(Serialize, ToSchema)]
pub struct CloseTotalsJson {
    pub currency: String,
    /// Bills in this currency.
    pub bills: i64,
    pub billed: String,
    /// Settlement charges minus refunds posted at close.
    pub settled: String,
    /// Settlement charges the wallets could not pay.
    pub outstanding: String,
}

impl From<CloseReport> for CloseReportJson {
    fn from(r: CloseReport) -> Self {
        let currencies = r
            .by_currency
            .into_iter()
            .map(|(currency, t): (_, CloseTotals)| CloseTotalsJson {
                currency: currency.code().to_owned(),
                bills: t.bills,
                billed: format_minor(t.billed_cents),
                settled: format_minor(t.settled_cents),
                outstanding: format_minor(t.outstanding_cents),
            })
            .collect();
        CloseReportJson { month: r.month, already_closed: r.already_closed, bills: r.bills, currencies }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CloseResult {
    /// One report per month closed: earlier open months with usage close first.
    pub months: Vec<CloseReportJson>,
}

/// Close a month
///
/// Computes every account's exact bill, settles the difference with what was
/// charged in real time, and locks the month. Closing again changes nothing.
#[utoipa::path(post, path = "/v1/bills/close", tag = "billing", security(("api_token" = [])), request_body = CloseBody,
    responses((status = 200, body = CloseResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn close(Granted { tenant, caller, .. }: Granted<need::BillingManage>, State(state): State<AppState>, ApiJson(body): ApiJson<CloseBody>) -> Result<Json<CloseResult>, ApiError> {
    let month = month("month", &body.month)?;
    let reports = state.services.close_month(&tenant, month, &caller.change()).await?;
    Ok(Json(CloseResult { months: reports.into_iter().map(CloseReportJson::from).collect() }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// A closed month, `YYYY-MM`.
    pub month: String,
    /// `csv` (default) or `xlsx`.
    pub format: Option<String>,
}

/// Export a closed month's bills
///
/// One row per bill line, every account: CSV or an XLSX workbook.
#[utoipa::path(get, path = "/v1/bills/export", tag = "billing", security(("api_token" = [])), params(ExportQuery),
    responses((status = 200, description = "the file: text/csv, or an XLSX workbook (application/vnd.openxmlformats-officedocument.spreadsheetml.sheet)"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn export(Granted { tenant, .. }: Granted<need::BillingView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<ExportQuery>) -> Result<Response, ApiError> {
    let month = month("month", &query.month)?;
    let format_name = query.format.as_deref().unwrap_or("csv");
    let format = ExportFormat::parse(format_name).ok_or_else(|| ApiError::bad_request("invalid_format", &format!("format must be csv or xlsx, not {format_name:?}")))?;
    let file = state.services.export_bills(&tenant, month, format).await?;
    let disposition = format!("attachment; filename=\"bills-{month}.{}\"", format.extension());
    Ok(([(http::header::CONTENT_TYPE, format.content_type().to_owned()), (http::header::CONTENT_DISPOSITION, disposition)], file).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct DayLineJson {
    pub product: String,
    pub order_type: i64,
    pub description: String,
    pub unit: String,
    pub quantity: String,
    /// What money paid for.
    pub billable: String,
    /// Minutes time cards covered, beside `billable`.
    pub card_minutes: String,
    pub events: i64,
    /// Exact rated cost (up to six decimals).
    pub rated: String,
    /// Debited in real time (prepaid accounts).
    pub charged: String,
}

#[derive(Serialize, ToSchema)]
pub struct DayBillJson {
    pub day: String,
    /// The currency of the day's lines: a day with usage in two currencies has two entries.
    pub currency: String,
    /// The day's rated cost, rounded once to the cent.
    pub total: String,
    pub total_minor: i64,
    pub charged: String,
    pub lines: Vec<DayLineJson>,
}

fn day_json(bill: DayBill) -> DayBillJson {
    DayBillJson {
        day: bill.day.to_string(),
        currency: bill.currency.code().to_owned(),
        total: format_minor(bill.total_cents),
        total_minor: bill.total_cents,
        charged: format_minor(bill.charged_cents),
        lines: bill
            .lines
            .into_iter()
            .map(|l| DayLineJson {
                product: l.product_code,
                order_type: l.order_type,
                description: l.description,
                unit: l.unit,
                quantity: l.quantity.to_string(),
                billable: l.billable.to_string(),
                card_minutes: l.card.to_string(),
                events: l.events,
                rated: format_scaled(l.rated_micros, 6),
                charged: format_minor(l.charged_cents),
            })
            .collect(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct DayBillList {
    /// Days with usage, oldest first (per day, CNY before USD).
    pub items: Vec<DayBillJson>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    /// First day, `YYYY-MM-DD` (the tenant's calendar).
    pub from: String,
    /// Last day, included; the range spans at most 93 days, both ends counted.
    pub to: String,
}

/// An account's daily bills
#[utoipa::path(get, path = "/v1/accounts/{username}/daily", tag = "billing", security(("api_token" = [])), params(("username" = String, Path), DailyQuery),
    responses((status = 200, body = DayBillList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn daily(
    Granted { tenant, .. }: Granted<need::BillingView>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiQuery(query): ApiQuery<DailyQuery>,
) -> Result<Json<DayBillList>, ApiError> {
    let (from, to) = (day("from", &query.from)?, day("to", &query.to)?);
    let bills = state.services.daily_bills(&tenant, &username, from, to).await?;
    Ok(Json(DayBillList { items: bills.into_iter().map(day_json).collect() }))
}
