//! Tag `account`: the enterprise's recharges, bills and rates.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use subledger_domain::access::app;
use subledger_domain::ledger::WalletPurpose;
use subledger_service::rates::BaseRate;
use subledger_service::recharges::Recharge;

use super::params::{Params, check_uid};
use super::{Auth, PathValue, Refusal, list, millis};
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
