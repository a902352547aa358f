//! Sub-accounts of a tenant.

use std::sync::LazyLock;

use subledger_domain::ids::{AccountId, TenantId};
use subledger_domain::money::Currency;

use crate::rows::{self, ClashCountsRow, NewAccountRow, Row};
use crate::{Result, Store, WriteTx};

/// An account as stored. Secrets (password, API key) stay in the table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRecord {
    pub id: i64,
    pub tenant_id: i64,
    pub username: String,
    pub user_type: i64,
    pub status: i64,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub company_url: Option<String>,
    pub api_user: Option<String>,
    pub daily_quota: i64,
    pub billing_mode: String,
    /// `own` or `tenant`.
    pub funding: String,
    /// 1 enabled, 2 disabled, 3 cancelled.
    pub access_state: i64,
    pub role_id: Option<i64>,
    /// 1: the role's application template applies.
    pub role_template: i64,
    pub person_name: Option<String>,
    pub job_number: Option<String>,
    pub extension: Option<i64>,
    pub department: Option<String>,
    pub note: Option<String>,
    pub last_login_at_us: Option<i64>,
    pub logins: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

impl AccountRecord {
    pub fn account_id(&self) -> AccountId {
        AccountId(self.id)
    }
}

pub(crate) const COLUMNS: &str = "id, tenant_id, username, user_type, status, phone, email, company_name, company_url, api_user, daily_quota, billing_mode, funding, access_state, role_id, role_template, person_name, job_number, extension, department, note, last_login_at_us, logins, created_at_us, updated_at_us";

pub struct NewAccount<'a> {
    pub tenant_id: TenantId,
    pub username: &'a str,
    pub user_type: i64,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub company_name: Option<&'a str>,
    pub company_url: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub api_user: Option<&'a str>,
    pub api_key_sha256: Option<&'a str>,
    pub daily_quota: i64,
    /// `own` or `tenant`.
    pub funding: &'a str,
    pub now_us: i64,
}

static INSERT: LazyLock<String> = LazyLock::new(|| format!("{} RETURNING id", rows::sqlx_insert::<NewAccountRow<&str>>()));

/// Inserts an account, active.
pub async fn insert(tx: &mut WriteTx, account: &NewAccount<'_>) -> Result<AccountId> {
    let id: i64 = sqlx::query_scalar_with(&INSERT, NewAccountRow::from(account).sqlx_arguments()?).fetch_one(tx.conn()).await?;
    Ok(AccountId(id))
}

pub async fn find_by_username(store: &Store, tenant: TenantId, username: &str) -> Result<Option<AccountRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND username = $2");
    Ok(sqlx::query_as(&sql).bind(tenant.0).bind(username).fetch_optional(store.reader()).await?)
}

/// The username of one of the tenant's accounts.
pub async fn username_of(store: &Store, tenant: TenantId, account: AccountId) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT username FROM accounts WHERE id = $1 AND tenant_id = $2").bind(account.0).bind(tenant.0).fetch_optional(store.reader()).await?)
}

/// What a new account would clash with: its username or phone already used
/// in the tenant, and how many accounts the tenant has against its limit
/// (read from the tenant's row, never from a cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clashes {
    pub username_taken: bool,
    pub phone_taken: bool,
    pub accounts: i64,
    pub account_limit: i64,
}

async fn clashes_on<'e>(db: impl sqlx::Executor<'e, Database = sqlx::Any>, tenant: TenantId, username: &str, phone: Option<&str>) -> Result<Clashes> {
    // A NULL phone matches no row, so an account without one clashes with nobody's.
    let counts: ClashCountsRow = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM accounts WHERE tenant_id = $1 AND username = $2) AS usernames,
                (SELECT COUNT(*) FROM accounts WHERE tenant_id = $1 AND phone = $3) AS phones,
                (SELECT COUNT(*) FROM accounts WHERE tenant_id = $1) AS accounts,
                COALESCE((SELECT account_limit FROM tenants WHERE id = $1), 0) AS account_limit",
    )
    .bind(tenant.0)
    .bind(username)
    .bind(phone)
    .fetch_one(db)
    .await?;
    Ok(Clashes { username_taken: counts.usernames > 0, phone_taken: counts.phones > 0, accounts: counts.accounts, account_limit: counts.account_limit })
}

/// [`Clashes`] as the read pool sees them now: a cheap early answer, which a
/// concurrent create can make stale.
pub async fn clashes(store: &Store, tenant: TenantId, username: &str, phone: Option<&str>) -> Result<Clashes> {
    clashes_on(store.reader(), tenant, username, phone).await
}

/// [`Clashes`] inside the write transaction that inserts (after the tenant's
/// row lock), so the answer still holds at commit.
pub async fn clashes_in_tx(tx: &mut WriteTx, tenant: TenantId, username: &str, phone: Option<&str>) -> Result<Clashes> {
    clashes_on(tx.conn(), tenant, username, phone).await
}

/// How many accounts match a listing, and how many of those are frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountCounts {
    pub total: i64,
    pub frozen: i64,
}

/// One row of an account listing: the account with the requests it used on
/// `day` (its balances are read by [`spendable_balances`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountSummary {
    #[sqlx(flatten)]
    pub account: AccountRecord,
    pub used_today: i64,
}

pub struct AccountFilter<'a> {
    pub tenant: TenantId,
    pub username: Option<&'a str>,
}

pub async fn counts(store: &Store, filter: &AccountFilter<'_>) -> Result<AccountCounts> {
    let (total, frozen): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status = -1 THEN 1 ELSE 0 END), 0) AS BIGINT)
         FROM accounts WHERE tenant_id = $1 AND ($2 IS NULL OR username = $2)",
    )
    .bind(filter.tenant.0)
    .bind(filter.username)
    .fetch_one(store.reader())
    .await?;
    Ok(AccountCounts { total, frozen })
}

pub async fn list_summaries(store: &Store, filter: &AccountFilter<'_>, day: &str, offset: i64, limit: i64) -> Result<Vec<AccountSummary>> {
    let sql = format!(
        "SELECT {columns},
            COALESCE((SELECT q.used FROM quota_usage q WHERE q.account_id = a.id AND q.day = $3), 0) AS used_today
         FROM accounts a
         WHERE a.tenant_id = $1 AND ($2 IS NULL OR a.username = $2)
         ORDER BY a.id LIMIT $4 OFFSET $5",
        columns = COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
    );
    Ok(sqlx::query_as(&sql).bind(filter.tenant.0).bind(filter.username).bind(day).bind(limit).bind(offset).fetch_all(store.reader()).await?)
}

/// The spendable balance (primary plus promo) of each of these accounts of
/// the tenant in each currency it has wallets in, by account and currency.
pub async fn spendable_balances(store: &Store, tenant: TenantId, accounts: &[AccountId]) -> Result<Vec<(AccountId, Currency, i64)>> {
    // `COALESCE(account_id, 0)` is the owner column of the index `wallets_owner`, which the lookup then
    // goes through: (tenant, account, purpose) for each account, not every wallet of the tenant.
    let sql = format!(
        "SELECT account_id, currency, CAST(SUM(balance_minor) AS BIGINT) FROM wallets
         WHERE tenant_id = $1 AND {} AND purpose IN ('primary', 'promo') GROUP BY account_id, currency ORDER BY account_id, currency",
        crate::bills::in_ids(store.backend(), "COALESCE(account_id, 0)", 2)
    );
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(&sql).bind(tenant.0).bind(crate::bills::ids_json(accounts)).fetch_all(store.reader()).await?;
    rows.into_iter().map(|(account, code, balance_minor)| Ok((AccountId(account), rows::currency(&code, || format!("the wallets of account {account}"))?, balance_minor))).collect()
}

pub async fn used_on_day(store: &Store, account: AccountId, day: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE((SELECT used FROM quota_usage WHERE account_id = $1 AND day = $2), 0)").bind(account.0).bind(day).fetch_one(store.reader()).await?)
}

pub async fn set_status(tx: &mut WriteTx, tenant: TenantId, username: &str, status: i64, now_us: i64) -> Result<Option<AccountRecord>> {
    let sql = format!("UPDATE accounts SET status = $3, updated_at_us = $4 WHERE tenant_id = $1 AND username = $2 RETURNING {COLUMNS}");
    Ok(sqlx::query_as(&sql).bind(tenant.0).bind(username).bind(status).bind(now_us).fetch_optional(tx.conn()).await?)
}

pub async fn set_daily_quota(tx: &mut WriteTx, tenant: TenantId, username: &str, quota: i64, now_us: i64) -> Result<Option<AccountRecord>> {
    let sql = format!("UPDATE accounts SET daily_quota = $3, updated_at_us = $4 WHERE tenant_id = $1 AND username = $2 RETURNING {COLUMNS}");
    Ok(sqlx::query_as(&sql).bind(tenant.0).bind(username).bind(quota).bind(now_us).fetch_optional(tx.conn()).await?)
}

/// Every account of the tenant: id and username, by id.
/// Sets whose wallets pay for the account (`own` or `tenant`); `None` when
/// the tenant has no such account.
pub async fn set_funding(tx: &mut WriteTx, tenant: TenantId, username: &str, funding: &str, now_us: i64) -> Result<Option<AccountRecord>> {
    let sql = format!("UPDATE accounts SET funding = $3, updated_at_us = $4 WHERE tenant_id = $1 AND username = $2 RETURNING {COLUMNS}");
    Ok(sqlx::query_as(&sql).bind(tenant.0).bind(username).bind(funding).bind(now_us).fetch_optional(tx.conn()).await?)
}

pub async fn all_ids(store: &Store, tenant: TenantId) -> Result<Vec<(AccountId, String)>> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, username FROM accounts WHERE tenant_id = $1 ORDER BY id").bind(tenant.0).fetch_all(store.reader()).await?;
    Ok(rows.into_iter().map(|(id, name)| (AccountId(id), name)).collect())
}
