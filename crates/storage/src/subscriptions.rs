//! Subscriptions of accounts to monthly items (functions, rentals, seats):
//! plain writes; read by month closes (in the chunk's transaction) and by
//! the month-to-date views.

use std::sync::LazyLock;

use subledger_domain::ids::{AccountId, SubscriptionId, TenantId};

use crate::bills::{ids_json, in_accounts};
use crate::rows::{self, NewSubscriptionRow, Row, SubscriptionRow, columns};
use crate::{Result, Store, WriteTx};

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub id: SubscriptionId,
    pub account: AccountId,
    pub product_code: String,
    pub from_us: i64,
    /// `None`: until further notice.
    pub until_us: Option<i64>,
}

impl From<SubscriptionRow<String>> for SubscriptionRecord {
    fn from(row: SubscriptionRow<String>) -> Self {
        SubscriptionRecord { id: SubscriptionId(row.id), account: AccountId(row.account_id), product_code: row.product_code, from_us: row.from_us, until_us: row.until_us }
    }
}

/// Subscriptions of the accounts `accounts` (an SQL condition on
/// `account_id`) in force for some instant of `[from, until)` (SQL expressions).
pub(crate) fn in_window(tenant: &str, accounts: &str, from: &str, until: &str) -> String {
    format!(
        "SELECT {} FROM subscriptions WHERE tenant_id = {tenant} AND {accounts} AND from_us < {until} AND (until_us IS NULL OR until_us > {from}) ORDER BY account_id, product_code, from_us",
        columns::<SubscriptionRow<String>>(None)
    )
}

static INSERT: LazyLock<String> = LazyLock::new(|| format!("{} RETURNING id", rows::sqlx_insert::<NewSubscriptionRow<&str>>()));

/// Opens a subscription from `from_us`, until further notice. An open one of
/// the same account and product is `UniqueViolation(SubscriptionOpen)`.
pub async fn insert(tx: &mut WriteTx, tenant: TenantId, account: AccountId, product_code: &str, from_us: i64, now_us: i64) -> Result<SubscriptionId> {
    let row = NewSubscriptionRow { tenant_id: tenant.0, account_id: account.0, product_code, from_us, until_us: None, created_at_us: now_us };
    Ok(SubscriptionId(sqlx::query_scalar_with(&INSERT, row.sqlx_arguments()?).fetch_one(tx.conn()).await?))
}

/// Whether the account has a subscription to the product in force at or after `from_us`.
pub async fn in_force_from(tx: &mut WriteTx, tenant: TenantId, account: AccountId, product_code: &str, from_us: i64) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM subscriptions WHERE tenant_id = $1 AND account_id = $2 AND product_code = $3 AND (until_us IS NULL OR until_us > $4) LIMIT 1")
        .bind(tenant.0)
        .bind(account.0)
        .bind(product_code)
        .bind(from_us)
        .fetch_optional(tx.conn())
        .await?;
    Ok(found.is_some())
}

/// Ends the account's open subscription to the product at `until_us` (at its
/// start if that is later: it then covers nothing). `None` when none is open.
pub async fn end_open(tx: &mut WriteTx, tenant: TenantId, account: AccountId, product_code: &str, until_us: i64) -> Result<Option<SubscriptionRecord>> {
    let sql = format!(
        "UPDATE subscriptions SET until_us = CASE WHEN from_us > $4 THEN from_us ELSE $4 END
         WHERE tenant_id = $1 AND account_id = $2 AND product_code = $3 AND until_us IS NULL RETURNING {}",
        columns::<SubscriptionRow<String>>(None)
    );
    let row: Option<SubscriptionRow<String>> = sqlx::query_as(&sql).bind(tenant.0).bind(account.0).bind(product_code).bind(until_us).fetch_optional(tx.conn()).await?;
    Ok(row.map(SubscriptionRecord::from))
}

/// Ends every open subscription of the account at `until_us` (a cancelled
/// seat pays for nothing after its cancellation), in the caller's transaction.
pub async fn end_all_open(tx: &mut WriteTx, tenant: TenantId, account: AccountId, until_us: i64) -> Result<u64> {
    let done = sqlx::query("UPDATE subscriptions SET until_us = CASE WHEN from_us > $3 THEN from_us ELSE $3 END WHERE tenant_id = $1 AND account_id = $2 AND until_us IS NULL")
        .bind(tenant.0)
        .bind(account.0)
        .bind(until_us)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected())
}

/// Whether `month` (`YYYY-MM`) or a later month of the tenant is closed or
/// closing: a subscription may not start or end in it, since its bill is
/// (being) written.
pub async fn month_billed(tx: &mut WriteTx, tenant: TenantId, month: &str) -> Result<bool> {
    let billed: i64 = sqlx::query_scalar(
        "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM month_closes WHERE tenant_id = $1 AND month >= $2)
                            OR EXISTS (SELECT 1 FROM month_closings WHERE tenant_id = $1 AND month >= $2) THEN 1 ELSE 0 END AS BIGINT)",
    )
    .bind(tenant.0)
    .bind(month)
    .fetch_one(tx.conn())
    .await?;
    Ok(billed == 1)
}

/// The subscriptions of these accounts in force for some instant of `[from_us, until_us)`.
pub async fn of_accounts(store: &Store, tenant: TenantId, accounts: &[AccountId], from_us: i64, until_us: i64) -> Result<Vec<SubscriptionRecord>> {
    let sql = in_window("$1", &in_accounts(store.backend(), 2), "$3", "$4");
    let rows: Vec<SubscriptionRow<String>> = sqlx::query_as(&sql).bind(tenant.0).bind(ids_json(accounts)).bind(from_us).bind(until_us).fetch_all(store.reader()).await?;
    Ok(rows.into_iter().map(SubscriptionRecord::from).collect())
}

/// A page of the tenant's subscriptions (or one account's), newest first, and how many there are.
pub async fn list(store: &Store, tenant: TenantId, account: Option<AccountId>, offset: i64, limit: i64) -> Result<(i64, Vec<SubscriptionRecord>)> {
    let filter = if account.is_some() { "tenant_id = $1 AND account_id = $2" } else { "tenant_id = $1 AND CAST($2 AS BIGINT) IS NULL" };
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM subscriptions WHERE {filter}")).bind(tenant.0).bind(account.map(|a| a.0)).fetch_one(store.reader()).await?;
    let sql = format!("SELECT {} FROM subscriptions WHERE {filter} ORDER BY id DESC LIMIT $3 OFFSET $4", columns::<SubscriptionRow<String>>(None));
    let rows: Vec<SubscriptionRow<String>> = sqlx::query_as(&sql).bind(tenant.0).bind(account.map(|a| a.0)).bind(limit).bind(offset).fetch_all(store.reader()).await?;
    Ok((total, rows.into_iter().map(SubscriptionRecord::from).collect()))
}
