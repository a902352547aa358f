//! Tag `account`: the enterprise's recharges, bills and rates.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use subledger_domain::access::{Language, app};
use subledger_domain::ledger::WalletPurpose;
use subledger_service::ServiceResult;
use subledger_service::rates::{BaseRate, recurring_charge_unit};
use subledger_service::recharges::Recharge;
use subledger_service::seat_bills::{BillingAccountView, BillingState};
use subledger_service::seats::RecurringRate;
use subledger_service::timecards::TimeCard;

use super::params::{Params, check_uid};
use super::{Auth, PathValue, Refusal, list, millis, ok};
use crate::AppState;

/// `CashLog`: one recharge. `money` in fen.
#[derive(Serialize)]
struct CashLog {
    id: i64,
    account_time: i64,
    money: i64,
    /// 1 the enterprise's 充值账户 (primary wallet), 2 its 赠送账户 (promo wallet).
    r#type: i64,
    note: Option<String>,
    serial_number: String,
}

impl From<Recharge> for CashLog {
    fn from(r: Recharge) -> Self {
        CashLog { id: r.id, account_time: millis(r.at_us), money: r.amount_minor, r#type: if r.purpose == WalletPurpose::Promo { 2 } else { 1 }, note: r.memo, serial_number: r.serial_number }
    }
}

/// `GET /account/cashlog`: the enterprise's recharges, newest first.
pub async fn cashlog(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::FUNDS_VIEW)?;
    params.check_uid(&auth.tenant, true)?;
    let page = params.page()?;
    let (total, recharges) = state.services.recharges(&auth.tenant, page).await?;
    Ok(list(Some(total), recharges.into_iter().map(CashLog::from).collect()))
}

/// `RuleRate`: one standard rate.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleRate {
    name: String,
    rule_id: i64,
    charge_unit: String,
}

impl From<BaseRate> for RuleRate {
    fn from(r: BaseRate) -> Self {
        RuleRate { name: r.name, rule_id: r.rule_id, charge_unit: r.charge_unit }
    }
}

/// Checks the `{uid}` of the path (and a `uid` query parameter, if given).
fn check_path_uid(auth: &Auth, uid: &PathValue, params: &Params) -> Result<(), Refusal> {
    check_uid(&auth.tenant, uid.id("uid")?)?;
    params.check_uid(&auth.tenant, false)
}

/// `GET /account/{uid}/baserate`: the tariffs in force, every one (a bounded list).
pub async fn baserate(auth: Auth, uid: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::RATES_VIEW)?;
    check_path_uid(&auth, &uid, &params)?;
    let rates = state.services.base_rates(&auth.tenant).await?;
    Ok(list(Some(rates.len() as i64), rates.into_iter().map(RuleRate::from).collect()))
}

/// `FunRate` and `HireRate` (the same fields): a monthly item's price in force.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MonthlyRate {
    name: String,
    /// When it is charged next: the start of next month in the enterprise's
    /// zone, where the month in use is closed (epoch ms).
    next_rate_time: i64,
    /// The price as people read it: `30元/个/月`.
    charge_unit: String,
}

impl From<RecurringRate> for MonthlyRate {
    fn from(r: RecurringRate) -> Self {
        MonthlyRate { charge_unit: recurring_charge_unit(&r), name: r.name, next_rate_time: millis(r.next_charge_at_us) }
    }
}

/// `GET /account/{uid}/funrate`: the function fees in force (a bounded list).
pub async fn funrate(auth: Auth, uid: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    monthly_rates(&auth, &uid, &params, state.services.function_rates(&auth.tenant)).await
}

/// `GET /account/{uid}/hirerate`: the rentals in force (a bounded list).
pub async fn hirerate(auth: Auth, uid: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    monthly_rates(&auth, &uid, &params, state.services.rental_rates(&auth.tenant)).await
}

/// Checks the caller, then awaits `rates` (a service call not started yet).
async fn monthly_rates(auth: &Auth, uid: &PathValue, params: &Params, rates: impl Future<Output = ServiceResult<Vec<RecurringRate>>>) -> Result<Response, Refusal> {
    auth.require(app::RATES_VIEW)?;
    check_path_uid(auth, uid, params)?;
    let rates = rates.await?;
    Ok(list(Some(rates.len() as i64), rates.into_iter().map(MonthlyRate::from).collect()))
}

/// `GiftRate`: a time card. Minutes in `giftTime` (issued) and
/// `ruleGiftTime` (left); `expirationTime` is the first instant it no longer
/// covers; `state` one of `pending`, `valid`, `used_up`, `expired`,
/// `cancelled`; `notie` (sic) its note.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GiftRate {
    id: i64,
    name: String,
    gift_time: i64,
    rule_gift_time: i64,
    effective_time: i64,
    expiration_time: i64,
    state: &'static str,
    notie: String,
}

impl From<TimeCard> for GiftRate {
    fn from(c: TimeCard) -> Self {
        GiftRate {
            id: c.id.0,
            name: c.name,
            gift_time: c.minutes_total,
            rule_gift_time: c.minutes_left,
            effective_time: millis(c.effective_at_us),
            expiration_time: millis(c.expires_at_us),
            state: c.state.as_str(),
            notie: c.note,
        }
    }
}

/// `GET /account/{uid}/giftrate`: the enterprise's time cards (each sub-user's
/// and the shared ones), by id, paged.
pub async fn giftrate(auth: Auth, uid: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::RATES_VIEW)?;
    check_path_uid(&auth, &uid, &params)?;
    let page = params.page()?;
    let (total, cards) = state.services.time_cards(&auth.tenant, None, page).await?;
    Ok(list(Some(total), cards.into_iter().map(GiftRate::from).collect()))
}

/// `BillingAccount`: the enterprise's billing account, in fen. `account` is
/// its number (the enterprise's `uid`), `name` the enterprise's name, `note`
/// its state in words, in the enterprise's language.
#[derive(Serialize)]
struct BillingAccount {
    balance: i64,
    overdraft: i64,
    name: String,
    state: i64,
    account: i64,
    note: &'static str,
    advance: i64,
    consume: i64,
}

fn state_note(state: BillingState, language: Language) -> &'static str {
    match (state, language) {
        (BillingState::Normal, Language::Zh) => "正常",
        (BillingState::Overdrawn, Language::Zh) => "已透支",
        (BillingState::Exhausted, Language::Zh) => "余额不足",
        (BillingState::Normal, Language::En) => "normal",
        (BillingState::Overdrawn, Language::En) => "overdrawn",
        (BillingState::Exhausted, Language::En) => "exhausted",
    }
}

/// `GET /account/{uid}`: the enterprise's billing account now.
pub async fn billing_account(auth: Auth, uid: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::FUNDS_VIEW)?;
    check_path_uid(&auth, &uid, &params)?;
    let view: BillingAccountView = state.services.billing_account(&auth.tenant).await?;
    Ok(ok(BillingAccount {
        balance: view.balance_cents,
        overdraft: view.overdraft_cents,
        name: auth.tenant.name.clone(),
        state: view.state.code(),
        account: auth.tenant.id.0,
        note: state_note(view.state, auth.tenant.language),
        advance: view.advance_cents,
        consume: view.consume_cents,
    }))
}
