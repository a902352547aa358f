//! Reads of bills, rollups and closes (the writes happen in `ledger::close`
//! and `ledger::usage`, on the ledger writer).

use subledger_domain::ids::{AccountId, TenantId};
use subledger_domain::usage::RollupAmounts;

use crate::ledger::close::MonthRow;
use crate::{Backend, Result, Store};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BillRecord {
    pub account_id: i64,
    pub month: String,
    pub total_cents: i64,
    pub created_at_us: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LineRecord {
    pub account_id: i64,
    pub month: String,
    pub line_no: i64,
    pub kind: String,
    pub for_month: String,
    pub product_code: String,
    pub order_type: i64,
    pub description: String,
    pub unit: String,
    pub quantity_milli: i64,
    pub money_cents: i64,
    pub previous_quantity_milli: Option<i64>,
    pub previous_money_cents: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettlementRecord {
    pub account_id: i64,
    pub product_code: String,
    pub month: String,
    pub order_type: i64,
    pub amount_cents: i64,
    pub status: String,
    pub transfer_id: Option<i64>,
}

/// `account_id IN (…)` over a JSON array parameter, in each backend's dialect.
fn in_accounts(backend: Backend, param: usize) -> String {
    match backend {
        Backend::Sqlite => format!("account_id IN (SELECT value FROM json_each(${param}))"),
        Backend::Postgres => format!("account_id = ANY(ARRAY(SELECT jsonb_array_elements_text(${param}::jsonb)::bigint))"),
    }
}

fn ids_json(accounts: &[AccountId]) -> String {
    serde_json::Value::Array(accounts.iter().map(|a| a.0.into()).collect()).to_string()
}

/// Bills of these accounts for months in `[from, to]` (`YYYY-MM`).
pub async fn bills(store: &Store, tenant: TenantId, accounts: &[AccountId], from: &str, to: &str) -> Result<Vec<BillRecord>> {
    let sql = format!(
        "SELECT account_id, month, total_cents, created_at_us FROM bills WHERE tenant_id = $1 AND {} AND month >= $3 AND month <= $4 ORDER BY account_id, month",
        in_accounts(store.backend(), 2)
    );
    Ok(sqlx::query_as(&sql).bind(tenant.0).bind(ids_json(accounts)).bind(from).bind(to).fetch_all(store.reader()).await?)
}

/// Lines of those bills, in order.
pub async fn bill_lines(store: &Store, tenant: TenantId, accounts: &[AccountId], from: &str, to: &str) -> Result<Vec<LineRecord>> {
    let sql = format!(
        "SELECT account_id, month, line_no, kind, for_month, product_code, order_type, description, unit, quantity_milli, money_cents,
                previous_quantity_milli, previous_money_cents, detail
         FROM bill_lines WHERE tenant_id = $1 AND {} AND month >= $3 AND month <= $4 ORDER BY account_id, month, line_no",
        in_accounts(store.backend(), 2)
    );
    Ok(sqlx::query_as(&sql).bind(tenant.0).bind(ids_json(accounts)).bind(from).bind(to).fetch_all(store.reader()).await?)
}

/// Settlements a close of `month` recorded for these accounts.
pub async fn settlements(store: &Store, tenant: TenantId, accounts: &[AccountId], from: &str, to: &str) -> Result<Vec<SettlementRecord>> {
    let sql = format!(
        "SELECT account_id, product_code, month, order_type, amount_cents, status, transfer_id FROM settlements
         WHERE tenant_id = $1 AND {} AND month >= $3 AND month <= $4 ORDER BY account_id, month, product_code",
        in_accounts(store.backend(), 2)
    );
    Ok(sqlx::query_as(&sql).bind(tenant.0).bind(ids_json(accounts)).bind(from).bind(to).fetch_all(store.reader()).await?)
}

/// Month rollup rows of these accounts (for a month not closed yet).
pub async fn month_rows(store: &Store, tenant: TenantId, accounts: &[AccountId], month: &str) -> Result<Vec<MonthRow>> {
    rollup_rows(store, "usage_monthly", "tenant_id = $1 AND month = $3", tenant, accounts, month).await
}

/// Rollup rows of closed months before `month` that grew after they were
/// billed: the next bill's supplements.
pub async fn late_rows(store: &Store, tenant: TenantId, accounts: &[AccountId], month: &str) -> Result<Vec<MonthRow>> {
    rollup_rows(store, &crate::ledger::close::late_groups("$1", "$3"), "TRUE", tenant, accounts, month).await
}

/// account, product, month, attr, then the five amounts.
type RollupRow = (i64, String, String, String, i64, i64, i64, i64, i64);

/// Rollup rows `FROM source WHERE condition` of these accounts; `$1` is the
/// tenant, `$2` the accounts and `$3` the month.
async fn rollup_rows(store: &Store, source: &str, condition: &str, tenant: TenantId, accounts: &[AccountId], month: &str) -> Result<Vec<MonthRow>> {
    let sql = format!(
        "SELECT account_id, product_code, month, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents
         FROM {source} WHERE {condition} AND {} ORDER BY account_id, product_code, month, attr",
        in_accounts(store.backend(), 2)
    );
    let rows: Vec<RollupRow> = sqlx::query_as(&sql).bind(tenant.0).bind(ids_json(accounts)).bind(month).fetch_all(store.reader()).await?;
    Ok(rows
        .into_iter()
        .map(|(account, product, month, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents)| MonthRow {
            account: AccountId(account),
            product,
            month,
            attr,
            amounts: RollupAmounts { quantity_milli, billable_milli, events, rated_micros, charged_cents },
        })
        .collect())
}

/// What the bills so far counted for each (account, product, month) that has
/// late usage before `month`: quantity (milli) and money (cents).
pub async fn previous_billed(store: &Store, tenant: TenantId, accounts: &[AccountId], month: &str) -> Result<crate::ledger::close::PreviousBilled> {
    let sql = crate::ledger::close::previous_billed("$1", "$3", &in_accounts(store.backend(), 2));
    let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(&sql).bind(tenant.0).bind(ids_json(accounts)).bind(month).fetch_all(store.reader()).await?;
    Ok(rows.into_iter().map(|(account, product, for_month, quantity, cents)| ((AccountId(account), product, for_month), (quantity, cents))).collect())
}

/// Day rollups of one account between two days (inclusive), per product and day.
pub async fn daily(store: &Store, tenant: TenantId, account: AccountId, from_day: &str, to_day: &str) -> Result<Vec<(String, String, RollupAmounts)>> {
    let rows: Vec<(String, String, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT product_code, day, CAST(SUM(quantity_milli) AS BIGINT), CAST(SUM(billable_milli) AS BIGINT), CAST(SUM(events) AS BIGINT),
                CAST(SUM(rated_micros) AS BIGINT), CAST(SUM(charged_cents) AS BIGINT)
         FROM usage_daily WHERE account_id = $1 AND day >= $2 AND day <= $3 AND tenant_id = $4 GROUP BY product_code, day ORDER BY day, product_code",
    )
    .bind(account.0)
    .bind(from_day)
    .bind(to_day)
    .bind(tenant.0)
    .fetch_all(store.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(product, day, quantity_milli, billable_milli, events, rated_micros, charged_cents)| {
            (product, day, RollupAmounts { quantity_milli, billable_milli, events, rated_micros, charged_cents })
        })
        .collect())
}

/// The tenant's closed months, oldest first.
pub async fn closed_months(store: &Store, tenant: TenantId) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT month FROM month_closes WHERE tenant_id = $1 ORDER BY month").bind(tenant.0).fetch_all(store.reader()).await?)
}

/// Months up to `up_to` with usage that are not closed yet, oldest first.
pub async fn unclosed_months_with_usage(store: &Store, tenant: TenantId, up_to: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT u.month FROM usage_monthly u
         WHERE u.tenant_id = $1 AND u.month <= $2 AND NOT EXISTS (SELECT 1 FROM month_closes c WHERE c.tenant_id = u.tenant_id AND c.month = u.month)
         ORDER BY u.month",
    )
    .bind(tenant.0)
    .bind(up_to)
    .fetch_all(store.reader())
    .await?)
}

/// Tenants with usage in months up to `up_to` that are not closed (for the automatic close).
pub async fn tenants_with_unclosed_months(store: &Store, up_to: &str) -> Result<Vec<TenantId>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT u.tenant_id FROM usage_monthly u
         WHERE u.month <= $1 AND NOT EXISTS (SELECT 1 FROM month_closes c WHERE c.tenant_id = u.tenant_id AND c.month = u.month)",
    )
    .bind(up_to)
    .fetch_all(store.reader())
    .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}
