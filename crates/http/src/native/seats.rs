//! Seats: funding mode, time cards, subscriptions to monthly items, their
//! rates, and UUCall's billing views (charge bill, basic and function bills
//! by day, billing account). Money is in minor units (fen) beside its
//! two-decimal text, as the other views show it.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::account::Funding;
use subledger_domain::calendar::{Day, Month, from_unix_micros};
use subledger_domain::ids::TimeCardId;
use subledger_domain::money::format_minor;
use subledger_domain::paging::Page;
use subledger_service::seat_bills::{BasicBillDay, CHARGE_BILL_PAGE_MAX, ChargeBillRow, FunctionBillDay};
use subledger_service::seats::{RecurringRate, SUBSCRIPTION_PAGE_MAX, Subscription};
use subledger_service::timecards::{CardExpiry, NewTimeCard, TIME_CARD_PAGE_MAX, TimeCard};
use utoipa::{IntoParams, ToSchema};

use super::catalog::parse_instant;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, Granted, need};
use crate::AppState;

fn page(offset: Option<i64>, limit: Option<i64>, max: i64) -> Result<Page, ApiError> {
    Page::new(offset.unwrap_or(0), limit.unwrap_or(50), max).map_err(|e| ApiError::bad_request("invalid_page", &e.to_string()))
}

fn month(text: &str) -> Result<Month, ApiError> {
    Month::parse_dashed(text).map_err(|e| ApiError::bad_request("invalid_month", &format!("month: {e}")))
}

fn instant(us: i64) -> String {
    from_unix_micros(us).to_string()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundingBody {
    /// `own` (its own wallets pay) or `tenant` (the tenant's wallets pay: a seat).
    pub funding: String,
}

#[derive(Serialize, ToSchema)]
pub struct FundingView {
    pub username: String,
    pub funding: String,
}

/// Set whose wallets pay for an account
#[utoipa::path(put, path = "/v1/accounts/{username}/funding", tag = "seats", security(("api_token" = [])), params(("username" = String, Path)),
    request_body = FundingBody, responses((status = 200, body = FundingView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_funding(
    Granted { tenant, caller, .. }: Granted<need::AccountsManage>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<FundingBody>,
) -> Result<Json<FundingView>, ApiError> {
    let funding = Funding::parse(&body.funding).ok_or_else(|| ApiError::bad_request("invalid_funding", &format!("funding must be own or tenant, not {:?}", body.funding)))?;
    let account = state.services.set_funding(&tenant, &username, funding, &caller.change()).await?;
    Ok(Json(FundingView { username: account.username.as_str().to_owned(), funding: account.funding.as_str().to_owned() }))
}

#[derive(Serialize, ToSchema)]
pub struct TimeCardView {
    pub id: i64,
    pub name: String,
    /// The account it belongs to; absent: shared by the tenant's seats.
    pub username: Option<String>,
    pub minutes_total: i64,
    pub minutes_left: i64,
    /// RFC 3339.
    pub effective_at: String,
    /// RFC 3339: the first instant it no longer covers.
    pub expires_at: String,
    /// `pending`, `valid`, `used_up`, `expired` or `cancelled`.
    pub state: String,
    pub note: String,
}

async fn card_view(state: &AppState, tenant: &subledger_service::tenants::Tenant, card: TimeCard) -> Result<TimeCardView, ApiError> {
    let username = match card.account {
        Some(account) => Some(state.services.username_of(tenant, account).await?),
        None => None,
    };
    Ok(TimeCardView {
        id: card.id.0,
        name: card.name,
        username,
        minutes_total: card.minutes_total,
        minutes_left: card.minutes_left,
        effective_at: instant(card.effective_at_us),
        expires_at: instant(card.expires_at_us),
        state: card.state.as_str().to_owned(),
        note: card.note,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTimeCardBody {
    pub name: String,
    /// The account it is for; absent: shared by the tenant's seats (tenant-funded accounts).
    pub username: Option<String>,
    /// 1 to 10,000,000.
    pub minutes: i64,
    /// RFC 3339; default: now.
    pub effective_at: Option<String>,
    /// RFC 3339: the first instant it no longer covers. Give this or `expires_on`.
    pub expires_at: Option<String>,
    /// `YYYY-MM-DD`: it covers until the end of that day in the tenant's zone.
    pub expires_on: Option<String>,
    pub note: Option<String>,
}

/// Issue a time card (prepaid minutes)
#[utoipa::path(post, path = "/v1/time-cards", tag = "seats", security(("api_token" = [])), request_body = NewTimeCardBody,
    responses((status = 201, body = TimeCardView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn issue_card(Granted { tenant, caller, .. }: Granted<need::RatesManage>, State(state): State<AppState>, ApiJson(body): ApiJson<NewTimeCardBody>) -> Result<impl IntoResponse, ApiError> {
    let expires = match (body.expires_at.as_deref(), body.expires_on.as_deref()) {
        (Some(at), None) => CardExpiry::At(parse_instant(at)?),
        (None, Some(day)) => CardExpiry::EndOf(Day(day.parse().map_err(|_| ApiError::bad_request("invalid_day", &format!("expires_on: {day:?} is not a YYYY-MM-DD date")))?)),
        _ => return Err(ApiError::bad_request("invalid_request", "give expires_at or expires_on")),
    };
    let account = match body.username.as_deref() {
        Some(username) => Some(state.services.account(&tenant, username).await?.id),
        None => None,
    };
    let card =
        NewTimeCard { name: body.name, account, minutes: body.minutes, effective_at_us: body.effective_at.as_deref().map(parse_instant).transpose()?, expires, note: body.note.unwrap_or_default() };
    let card = state.services.issue_time_card(&tenant, card, &caller.change()).await?;
    Ok((StatusCode::CREATED, Json(card_view(&state, &tenant, card).await?)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One account's (for cards: its own and the shared ones).
    pub username: Option<String>,
    pub offset: Option<i64>,
    /// 0 to 200 (default 50).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct TimeCardList {
    pub total: i64,
    pub items: Vec<TimeCardView>,
}

/// The tenant's time cards
#[utoipa::path(get, path = "/v1/time-cards", tag = "seats", security(("api_token" = [])), params(ListQuery),
    responses((status = 200, body = TimeCardList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_cards(Granted { tenant, .. }: Granted<need::RatesView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<ListQuery>) -> Result<Json<TimeCardList>, ApiError> {
    let page = page(query.offset, query.limit, TIME_CARD_PAGE_MAX)?;
    let account = match query.username.as_deref() {
        Some(username) => Some(state.services.account(&tenant, username).await?.id),
        None => None,
    };
    let (total, cards) = state.services.time_cards(&tenant, account, page).await?;
    let mut items = Vec::with_capacity(cards.len());
    for card in cards {
        items.push(card_view(&state, &tenant, card).await?);
    }
    Ok(Json(TimeCardList { total, items }))
}

/// Cancel a time card
#[utoipa::path(post, path = "/v1/time-cards/{id}/cancel", tag = "seats", security(("api_token" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = TimeCardView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cancel_card(Granted { tenant, caller, .. }: Granted<need::RatesManage>, State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<TimeCardView>, ApiError> {
    let card = state.services.cancel_time_card(&tenant, TimeCardId(id), &caller.change()).await?;
    Ok(Json(card_view(&state, &tenant, card).await?))
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: i64,
    pub username: String,
    pub product: String,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339; absent: until further notice.
    pub until: Option<String>,
}

async fn subscription_view(state: &AppState, tenant: &subledger_service::tenants::Tenant, s: Subscription) -> Result<SubscriptionView, ApiError> {
    Ok(SubscriptionView { id: s.id.0, username: state.services.username_of(tenant, s.account).await?, product: s.product_code, from: instant(s.from_us), until: s.until_us.map(instant) })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeBody {
    /// A function, rental or `seat` product.
    pub product: String,
    /// RFC 3339, not before the current month; default: now.
    pub from: Option<String>,
}

/// Subscribe an account to a monthly item
#[utoipa::path(post, path = "/v1/accounts/{username}/subscriptions", tag = "seats", security(("api_token" = [])), params(("username" = String, Path)), request_body = SubscribeBody,
    responses((status = 201, body = SubscriptionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn subscribe(
    Granted { tenant, caller, .. }: Granted<need::AccountsManage>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<SubscribeBody>,
) -> Result<impl IntoResponse, ApiError> {
    let from = body.from.as_deref().map(parse_instant).transpose()?;
    let subscription = state.services.subscribe_function(&tenant, &username, &body.product, from, &caller.change()).await?;
    Ok((StatusCode::CREATED, Json(subscription_view(&state, &tenant, subscription).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeBody {
    /// RFC 3339, not before the current month; default: now.
    pub until: Option<String>,
}

/// End an account's subscription to a monthly item
#[utoipa::path(post, path = "/v1/accounts/{username}/subscriptions/{product}/end", tag = "seats", security(("api_token" = [])),
    params(("username" = String, Path), ("product" = String, Path)), request_body = UnsubscribeBody,
    responses((status = 200, body = SubscriptionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unsubscribe(
    Granted { tenant, caller, .. }: Granted<need::AccountsManage>,
    State(state): State<AppState>,
    ApiPath((username, product)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UnsubscribeBody>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let until = body.until.as_deref().map(parse_instant).transpose()?;
    let subscription = state.services.unsubscribe_function(&tenant, &username, &product, until, &caller.change()).await?;
    Ok(Json(subscription_view(&state, &tenant, subscription).await?))
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    pub total: i64,
    pub items: Vec<SubscriptionView>,
}

/// The tenant's subscriptions, newest first
#[utoipa::path(get, path = "/v1/subscriptions", tag = "seats", security(("api_token" = [])), params(ListQuery),
    responses((status = 200, body = SubscriptionList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_subscriptions(Granted { tenant, .. }: Granted<need::AccountsView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<ListQuery>) -> Result<Json<SubscriptionList>, ApiError> {
    let page = page(query.offset, query.limit, SUBSCRIPTION_PAGE_MAX)?;
    let account = match query.username.as_deref() {
        Some(username) => Some(state.services.account(&tenant, username).await?.id),
        None => None,
    };
    let (total, subscriptions) = state.services.subscriptions(&tenant, account, page).await?;
    let mut items = Vec::with_capacity(subscriptions.len());
    for s in subscriptions {
        items.push(subscription_view(&state, &tenant, s).await?);
    }
    Ok(Json(SubscriptionList { total, items }))
}

#[derive(Serialize, ToSchema)]
pub struct RateView {
    pub product: String,
    pub name: String,
    /// e.g. `个/月`.
    pub charge_unit: String,
    /// A month's price (up to six decimals).
    pub price: String,
    pub currency: String,
    /// RFC 3339: the start of next month in the tenant's zone.
    pub next_charge_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct RateList {
    pub items: Vec<RateView>,
}

fn rates(rates: Vec<RecurringRate>) -> Json<RateList> {
    Json(RateList {
        items: rates
            .into_iter()
            .map(|r| RateView {
                product: r.product_code,
                name: r.name,
                charge_unit: r.charge_unit,
                price: r.price.to_string(),
                currency: r.currency.code().to_owned(),
                next_charge_at: instant(r.next_charge_at_us),
            })
            .collect(),
    })
}

/// Function fees in force (UUCall funrate)
#[utoipa::path(get, path = "/v1/rates/functions", tag = "seats", security(("api_token" = [])), responses((status = 200, body = RateList), (status = 401, body = ErrorBody)))]
pub async fn function_rates(Granted { tenant, .. }: Granted<need::RatesView>, State(state): State<AppState>) -> Result<Json<RateList>, ApiError> {
    Ok(rates(state.services.function_rates(&tenant).await?))
}

/// Rentals in force (UUCall hirerate)
#[utoipa::path(get, path = "/v1/rates/rentals", tag = "seats", security(("api_token" = [])), responses((status = 200, body = RateList), (status = 401, body = ErrorBody)))]
pub async fn rental_rates(Granted { tenant, .. }: Granted<need::RatesView>, State(state): State<AppState>) -> Result<Json<RateList>, ApiError> {
    Ok(rates(state.services.rental_rates(&tenant).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChargeBillQuery {
    /// `YYYY-MM`.
    pub month: String,
    pub username: Option<String>,
    pub offset: Option<i64>,
    /// 0 to 200 (default 50).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ChargeBillView {
    pub username: String,
    pub month: String,
    /// Fen: seat fee, calls, SMS and every other line but functions and rentals.
    pub basic_minor: i64,
    /// Fen: function fees and rentals.
    pub function_minor: i64,
    pub total_minor: i64,
    pub total: String,
}

impl From<ChargeBillRow> for ChargeBillView {
    fn from(r: ChargeBillRow) -> Self {
        ChargeBillView {
            username: r.username,
            month: r.month.to_string(),
            basic_minor: r.basic_cents,
            function_minor: r.function_cents,
            total_minor: r.total_cents,
            total: format_minor(r.total_cents),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ChargeBillList {
    pub total: i64,
    pub items: Vec<ChargeBillView>,
}

/// Charge bills of a month per account (UUCall chargebill), in yuan
#[utoipa::path(get, path = "/v1/charge-bills", tag = "seats", security(("api_token" = [])), params(ChargeBillQuery),
    responses((status = 200, body = ChargeBillList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn charge_bills(Granted { tenant, .. }: Granted<need::BillingView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<ChargeBillQuery>) -> Result<Json<ChargeBillList>, ApiError> {
    let page = page(query.offset, query.limit, CHARGE_BILL_PAGE_MAX)?;
    let (total, rows) = state.services.charge_bills(&tenant, month(&query.month)?, query.username.as_deref(), page).await?;
    Ok(Json(ChargeBillList { total, items: rows.into_iter().map(ChargeBillView::from).collect() }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MonthQuery {
    /// `YYYY-MM`.
    pub month: String,
}

#[derive(Serialize, ToSchema)]
pub struct BasicBillDayView {
    pub day: String,
    pub seat_minor: i64,
    pub call_in_minor: i64,
    pub call_out_minor: i64,
    pub internal_voice_minor: i64,
    pub sms_minor: i64,
    pub other_minor: i64,
    pub total_minor: i64,
    /// Minutes time cards covered that day.
    pub card_minutes: i64,
}

impl From<BasicBillDay> for BasicBillDayView {
    fn from(d: BasicBillDay) -> Self {
        BasicBillDayView {
            day: d.day.to_string(),
            seat_minor: d.seat_cents,
            call_in_minor: d.call_in_cents,
            call_out_minor: d.call_out_cents,
            internal_voice_minor: d.internal_voice_cents,
            sms_minor: d.sms_cents,
            other_minor: d.other_cents,
            total_minor: d.total_cents,
            card_minutes: d.card_minutes,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BasicBillList {
    pub items: Vec<BasicBillDayView>,
}

/// An account's basic bill of a month by day (UUCall basicbill), in fen
#[utoipa::path(get, path = "/v1/accounts/{username}/basic-bill", tag = "seats", security(("api_token" = [])), params(("username" = String, Path), MonthQuery),
    responses((status = 200, body = BasicBillList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn basic_bill(
    Granted { tenant, .. }: Granted<need::BillingView>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiQuery(query): ApiQuery<MonthQuery>,
) -> Result<Json<BasicBillList>, ApiError> {
    let month = month(&query.month)?;
    let account = state.services.account(&tenant, &username).await?;
    let days = state.services.basic_bill_days(&tenant, account.id, month).await?;
    Ok(Json(BasicBillList { items: days.into_iter().map(BasicBillDayView::from).collect() }))
}

#[derive(Serialize, ToSchema)]
pub struct FunctionBillDayView {
    pub day: String,
    pub product: String,
    pub name: String,
    pub amount_minor: i64,
}

impl From<FunctionBillDay> for FunctionBillDayView {
    fn from(d: FunctionBillDay) -> Self {
        FunctionBillDayView { day: d.day.to_string(), product: d.product_code, name: d.name, amount_minor: d.amount_cents }
    }
}

#[derive(Serialize, ToSchema)]
pub struct FunctionBillList {
    pub items: Vec<FunctionBillDayView>,
}

/// An account's function fees and rentals of a month by day (UUCall funbill), in fen
#[utoipa::path(get, path = "/v1/accounts/{username}/function-bill", tag = "seats", security(("api_token" = [])), params(("username" = String, Path), MonthQuery),
    responses((status = 200, body = FunctionBillList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn function_bill(
    Granted { tenant, .. }: Granted<need::BillingView>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiQuery(query): ApiQuery<MonthQuery>,
) -> Result<Json<FunctionBillList>, ApiError> {
    let month = month(&query.month)?;
    let account = state.services.account(&tenant, &username).await?;
    let days = state.services.function_bill_days(&tenant, account.id, month).await?;
    Ok(Json(FunctionBillList { items: days.into_iter().map(FunctionBillDayView::from).collect() }))
}

#[derive(Serialize, ToSchema)]
pub struct BillingAccountJson {
    /// Fen: the tenant's spendable yuan wallets.
    pub balance_minor: i64,
    /// Fen: the credit line of its primary wallet.
    pub overdraft_minor: i64,
    /// Fen: recharged this month.
    pub advance_minor: i64,
    /// Fen: charged this month (its seats' and its own usage, fees, settlements) minus refunds.
    pub consume_minor: i64,
    /// 1 normal, 2 overdrawn, 3 exhausted.
    pub state: i64,
}

/// The tenant's billing account (UUCall BillingAccount)
#[utoipa::path(get, path = "/v1/billing-account", tag = "seats", security(("api_token" = [])), responses((status = 200, body = BillingAccountJson), (status = 401, body = ErrorBody)))]
pub async fn billing_account(Granted { tenant, .. }: Granted<need::FundsView>, State(state): State<AppState>) -> Result<Json<BillingAccountJson>, ApiError> {
    let view = state.services.billing_account(&tenant).await?;
    Ok(Json(BillingAccountJson {
        balance_minor: view.balance_cents,
        overdraft_minor: view.overdraft_cents,
        advance_minor: view.advance_cents,
        consume_minor: view.consume_cents,
        state: view.state.code(),
    }))
}
