//! The ad-account reseller's rows: which platform serves a tenant, what was
//! synced from it (creation requests, ad accounts, their Business Managers and
//! pixels), the operator's blacklist, and the dialect's writes by `search_id`.
//! Plain reads and writes; the money of ad accounts moves only through
//! [`crate::ledger`].

use subledger_domain::ids::{TenantId, WalletId};

use crate::{Result, Store, WriteTx};

/// Most rows one read returns where the caller asks for "all": requests after
/// an id.
pub const ADS_LIST_MAX: i64 = 10_000;

// ---------------------------------------------------------------------------
// Connections

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConnectionRecord {
    pub tenant_id: i64,
    /// `sandbox` or `graph`.
    pub platform: String,
    pub business_id: String,
    pub token_sealed: Option<String>,
    /// 0 or 1.
    pub unbind_business_paused: i64,
    pub synced_at_us: Option<i64>,
    pub sync_error: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

const CONNECTION_COLUMNS: &str = "tenant_id, platform, business_id, token_sealed, unbind_business_paused, synced_at_us, sync_error, created_at_us, updated_at_us";

pub async fn connection(store: &Store, tenant: TenantId) -> Result<Option<ConnectionRecord>> {
    Ok(sqlx::query_as(&format!("SELECT {CONNECTION_COLUMNS} FROM ad_connections WHERE tenant_id = $1")).bind(tenant.0).fetch_optional(store.reader()).await?)
}

/// Makes the tenant's connection unless it has one; answers whether it did.
pub async fn insert_connection_if_absent(tx: &mut WriteTx, tenant: TenantId, platform: &str, business_id: &str, token_sealed: Option<&str>, now_us: i64) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO ad_connections (tenant_id, platform, business_id, token_sealed, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant.0)
    .bind(platform)
    .bind(business_id)
    .bind(token_sealed)
    .bind(now_us)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets which platform serves the tenant (and with which credentials).
pub async fn set_connection(tx: &mut WriteTx, tenant: TenantId, platform: &str, business_id: &str, token_sealed: Option<&str>, now_us: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO ad_connections (tenant_id, platform, business_id, token_sealed, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (tenant_id) DO UPDATE SET platform = excluded.platform, business_id = excluded.business_id, token_sealed = excluded.token_sealed,
             updated_at_us = excluded.updated_at_us, synced_at_us = NULL, sync_error = NULL",
    )
    .bind(tenant.0)
    .bind(platform)
    .bind(business_id)
    .bind(token_sealed)
    .bind(now_us)
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn set_unbind_business_paused(tx: &mut WriteTx, tenant: TenantId, paused: bool, now_us: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE ad_connections SET unbind_business_paused = $2, updated_at_us = $3 WHERE tenant_id = $1").bind(tenant.0).bind(i64::from(paused)).bind(now_us).execute(tx.conn()).await?;
    Ok(done.rows_affected() == 1)
}

/// Takes the tenant's sync lease for `owner` until `until_us`, if nobody else
/// holds it now; answers whether it did. One process syncs a tenant at a time.
pub async fn take_sync_lease(store: &Store, tenant: TenantId, owner: &str, now_us: i64, until_us: i64) -> Result<bool> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("UPDATE ad_connections SET sync_owner = $2, sync_lease_until_us = $3 WHERE tenant_id = $1 AND (sync_lease_until_us <= $4 OR sync_owner = $2)")
        .bind(tenant.0)
        .bind(owner)
        .bind(until_us)
        .bind(now_us)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Records a sync's end and gives the lease back.
pub async fn finish_sync(store: &Store, tenant: TenantId, owner: &str, synced_at_us: Option<i64>, error: Option<&str>) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "UPDATE ad_connections SET synced_at_us = COALESCE($3, synced_at_us), sync_error = $4, sync_lease_until_us = 0, sync_owner = NULL
         WHERE tenant_id = $1 AND sync_owner = $2",
    )
    .bind(tenant.0)
    .bind(owner)
    .bind(synced_at_us)
    .bind(error)
    .execute(tx.conn())
    .await?;
    tx.commit().await
}

/// Tenants whose last sync began before `stale_before_us` (or never ran) and
/// whose lease is free, oldest first.
pub async fn due_for_sync(store: &Store, stale_before_us: i64, now_us: i64, limit: i64) -> Result<Vec<TenantId>> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT tenant_id FROM ad_connections WHERE COALESCE(synced_at_us, 0) < $1 AND sync_lease_until_us <= $2 ORDER BY COALESCE(synced_at_us, 0), tenant_id LIMIT $3")
            .bind(stale_before_us)
            .bind(now_us)
            .bind(limit)
            .fetch_all(store.reader())
            .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}

// ---------------------------------------------------------------------------
// Creation requests

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RequestRecord {
    pub tenant_id: i64,
    pub id: String,
    pub aac_id: String,
    pub status: String,
    pub company_name: String,
    pub time_created_us: i64,
    pub time_updated_us: i64,
    /// Meta's fields, JSON.
    pub fields: String,
    pub synced_at_us: i64,
}

const REQUEST_COLUMNS: &str = "tenant_id, id, aac_id, status, company_name, time_created_us, time_updated_us, fields, synced_at_us";

pub async fn upsert_requests(tx: &mut WriteTx, requests: &[RequestRecord]) -> Result<()> {
    for r in requests {
        sqlx::query(&format!(
            "INSERT INTO ad_requests ({REQUEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (tenant_id, id) DO UPDATE SET aac_id = excluded.aac_id, status = excluded.status, company_name = excluded.company_name,
                 time_updated_us = excluded.time_updated_us, fields = excluded.fields, synced_at_us = excluded.synced_at_us"
        ))
        .bind(r.tenant_id)
        .bind(&r.id)
        .bind(&r.aac_id)
        .bind(&r.status)
        .bind(&r.company_name)
        .bind(r.time_created_us)
        .bind(r.time_updated_us)
        .bind(&r.fields)
        .bind(r.synced_at_us)
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

pub async fn request(store: &Store, tenant: TenantId, id: &str) -> Result<Option<RequestRecord>> {
    Ok(sqlx::query_as(&format!("SELECT {REQUEST_COLUMNS} FROM ad_requests WHERE tenant_id = $1 AND id = $2")).bind(tenant.0).bind(id).fetch_optional(store.reader()).await?)
}

pub async fn request_by_aac(store: &Store, tenant: TenantId, aac_id: &str) -> Result<Option<RequestRecord>> {
    Ok(sqlx::query_as(&format!("SELECT {REQUEST_COLUMNS} FROM ad_requests WHERE tenant_id = $1 AND aac_id = $2 ORDER BY id LIMIT 1"))
        .bind(tenant.0)
        .bind(aac_id)
        .fetch_optional(store.reader())
        .await?)
}

/// Ids of the tenant's requests in creation order, after the request `after`
/// (its creation instant and id) when given, at most `limit`.
pub async fn request_ids_after(store: &Store, tenant: TenantId, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<String>> {
    let (after_us, after_id) = after.unwrap_or((i64::MIN, ""));
    Ok(sqlx::query_scalar(
        "SELECT id FROM ad_requests WHERE tenant_id = $1 AND (time_created_us > $2 OR (time_created_us = $2 AND id > $3))
         ORDER BY time_created_us, id LIMIT $4",
    )
    .bind(tenant.0)
    .bind(after_us)
    .bind(after_id)
    .bind(limit)
    .fetch_all(store.reader())
    .await?)
}

// ---------------------------------------------------------------------------
// Ad accounts

/// An ad account as synced, with its funding and its company's blacklist entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdAccountRecord {
    pub tenant_id: i64,
    pub id: String,
    pub name: String,
    pub request_id: Option<String>,
    pub company_name: String,
    pub meta_status: i64,
    pub disable_reason: i64,
    pub currency: String,
    pub spend_cap_cents: i64,
    pub amount_spent_cents: i64,
    pub total_spent_cents: i64,
    pub created_time_us: i64,
    /// 0 or 1.
    pub violation: i64,
    pub violation_reason: String,
    /// Meta's fields, JSON.
    pub fields: String,
    pub synced_at_us: i64,
    /// The company's blacklist entry, if any (its level and end).
    pub blacklist_level: Option<i64>,
    pub blacklist_until_us: Option<i64>,
}

const ACCOUNT_COLUMNS: &str = "a.tenant_id, a.id, a.name, a.request_id, a.company_name, a.meta_status, a.disable_reason, a.currency, a.spend_cap_cents, a.amount_spent_cents,
     a.total_spent_cents, a.created_time_us, a.violation, a.violation_reason, a.fields, a.synced_at_us, b.level AS blacklist_level, b.until_us AS blacklist_until_us";
const ACCOUNT_FROM: &str = "ad_accounts a LEFT JOIN ad_blacklist b ON b.tenant_id = a.tenant_id AND b.company_name = a.company_name";

/// What a sync learned of an account, besides its money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedAdAccount<'a> {
    pub tenant: TenantId,
    pub id: &'a str,
    pub name: &'a str,
    pub request_id: Option<&'a str>,
    pub company_name: &'a str,
    pub meta_status: i64,
    pub disable_reason: i64,
    pub currency: &'a str,
    pub created_time_us: i64,
    pub fields: &'a str,
    pub synced_at_us: i64,
}

/// Inserts or refreshes an account's synced fields. Its money (cap, spent)
/// starts at 0 and is written only by [`set_money`], after the ledger moved it.
pub async fn upsert_account(tx: &mut WriteTx, a: &SyncedAdAccount<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO ad_accounts (tenant_id, id, name, request_id, company_name, meta_status, disable_reason, currency, spend_cap_cents, amount_spent_cents,
             total_spent_cents, created_time_us, fields, synced_at_us)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, 0, $9, $10, $11)
         ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, request_id = COALESCE(excluded.request_id, ad_accounts.request_id),
             company_name = CASE WHEN excluded.company_name = '' THEN ad_accounts.company_name ELSE excluded.company_name END,
             meta_status = excluded.meta_status, disable_reason = excluded.disable_reason, currency = excluded.currency,
             created_time_us = excluded.created_time_us, fields = excluded.fields, synced_at_us = excluded.synced_at_us",
    )
    .bind(a.tenant.0)
    .bind(a.id)
    .bind(a.name)
    .bind(a.request_id)
    .bind(a.company_name)
    .bind(a.meta_status)
    .bind(a.disable_reason)
    .bind(a.currency)
    .bind(a.created_time_us)
    .bind(a.fields)
    .bind(a.synced_at_us)
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn set_violation(tx: &mut WriteTx, tenant: TenantId, id: &str, violation: bool, reason: &str) -> Result<bool> {
    let done = sqlx::query("UPDATE ad_accounts SET violation = $3, violation_reason = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(id)
        .bind(i64::from(violation))
        .bind(reason)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn account(store: &Store, tenant: TenantId, id: &str) -> Result<Option<AdAccountRecord>> {
    Ok(sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM {ACCOUNT_FROM} WHERE a.tenant_id = $1 AND a.id = $2")).bind(tenant.0).bind(id).fetch_optional(store.reader()).await?)
}

/// A page of the tenant's accounts created in `[from_us, until_us)`, newest
/// first, and how many there are.
pub async fn accounts_page(store: &Store, tenant: TenantId, from_us: i64, until_us: i64, offset: i64, limit: i64) -> Result<(i64, Vec<AdAccountRecord>)> {
    let filter = "a.tenant_id = $1 AND a.created_time_us >= $2 AND a.created_time_us < $3";
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM ad_accounts a WHERE {filter}")).bind(tenant.0).bind(from_us).bind(until_us).fetch_one(store.reader()).await?;
    let rows = sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM {ACCOUNT_FROM} WHERE {filter} ORDER BY a.created_time_us DESC, a.id DESC LIMIT $4 OFFSET $5"))
        .bind(tenant.0)
        .bind(from_us)
        .bind(until_us)
        .bind(limit)
        .bind(offset)
        .fetch_all(store.reader())
        .await?;
    Ok((total, rows))
}

// ---------------------------------------------------------------------------
// Business Managers and pixels bound to an account

/// (id, name, permitted tasks as a JSON array).
pub type BusinessRow = (String, String, String);

pub async fn replace_businesses(tx: &mut WriteTx, tenant: TenantId, account: &str, businesses: &[BusinessRow]) -> Result<()> {
    sqlx::query("DELETE FROM ad_account_businesses WHERE tenant_id = $1 AND account_id = $2").bind(tenant.0).bind(account).execute(tx.conn()).await?;
    for (id, name, tasks) in businesses {
        sqlx::query("INSERT INTO ad_account_businesses (tenant_id, account_id, business_id, name, permitted_tasks) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
            .bind(tenant.0)
            .bind(account)
            .bind(id)
            .bind(name)
            .bind(tasks)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

pub async fn businesses(store: &Store, tenant: TenantId, account: &str) -> Result<Vec<BusinessRow>> {
    Ok(sqlx::query_as("SELECT business_id, name, permitted_tasks FROM ad_account_businesses WHERE tenant_id = $1 AND account_id = $2 ORDER BY business_id")
        .bind(tenant.0)
        .bind(account)
        .fetch_all(store.reader())
        .await?)
}

/// (id, name).
pub type PixelRow = (String, String);

pub async fn replace_pixels(tx: &mut WriteTx, tenant: TenantId, account: &str, pixels: &[PixelRow]) -> Result<()> {
    sqlx::query("DELETE FROM ad_account_pixels WHERE tenant_id = $1 AND account_id = $2").bind(tenant.0).bind(account).execute(tx.conn()).await?;
    for (id, name) in pixels {
        sqlx::query("INSERT INTO ad_account_pixels (tenant_id, account_id, pixel_id, name) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(tenant.0)
            .bind(account)
            .bind(id)
            .bind(name)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

pub async fn pixels(store: &Store, tenant: TenantId, account: &str) -> Result<Vec<PixelRow>> {
    Ok(sqlx::query_as("SELECT pixel_id, name FROM ad_account_pixels WHERE tenant_id = $1 AND account_id = $2 ORDER BY pixel_id").bind(tenant.0).bind(account).fetch_all(store.reader()).await?)
}

// ---------------------------------------------------------------------------
// Blacklist

/// Puts a company on the blacklist at `level` (1–4) until `until_us` (`None`
/// for level 4), or replaces its entry.
pub async fn set_blacklist(tx: &mut WriteTx, tenant: TenantId, company: &str, level: i64, since_us: i64, until_us: Option<i64>, reason: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO ad_blacklist (tenant_id, company_name, level, since_us, until_us, reason) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, company_name) DO UPDATE SET level = excluded.level, since_us = excluded.since_us, until_us = excluded.until_us, reason = excluded.reason",
    )
    .bind(tenant.0)
    .bind(company)
    .bind(level)
    .bind(since_us)
    .bind(until_us)
    .bind(reason)
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn clear_blacklist(tx: &mut WriteTx, tenant: TenantId, company: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM ad_blacklist WHERE tenant_id = $1 AND company_name = $2").bind(tenant.0).bind(company).execute(tx.conn()).await?;
    Ok(done.rows_affected() == 1)
}

// ---------------------------------------------------------------------------
// The dialect's writes, by search_id

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdWriteRecord {
    pub tenant_id: i64,
    pub search_id: String,
    pub operation: String,
    pub fingerprint: String,
    pub account_id: String,
    /// `started`, `unknown` or `done` (`reserved` and `calling` are reserved for finer recovery).
    pub state: String,
    pub cap_before_cents: Option<i64>,
    pub cap_after_cents: Option<i64>,
    pub hold_id: Option<i64>,
    pub outcome: Option<String>,
    pub message: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

const WRITE_COLUMNS: &str = "tenant_id, search_id, operation, fingerprint, account_id, state, cap_before_cents, cap_after_cents, hold_id, outcome, message, created_at_us, updated_at_us";

/// Records a write as started. A `search_id` seen before is
/// `UniqueViolation(AdWrite)`; a second money change of one account while
/// one is unsettled is `UniqueViolation(AdWriteInFlight)`.
pub async fn insert_write(tx: &mut WriteTx, w: &AdWriteRecord) -> Result<()> {
    sqlx::query(&format!("INSERT INTO ad_writes ({WRITE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"))
        .bind(w.tenant_id)
        .bind(&w.search_id)
        .bind(&w.operation)
        .bind(&w.fingerprint)
        .bind(&w.account_id)
        .bind(&w.state)
        .bind(w.cap_before_cents)
        .bind(w.cap_after_cents)
        .bind(w.hold_id)
        .bind(&w.outcome)
        .bind(&w.message)
        .bind(w.created_at_us)
        .bind(w.updated_at_us)
        .execute(tx.conn())
        .await?;
    Ok(())
}

pub async fn write(store: &Store, tenant: TenantId, search_id: &str) -> Result<Option<AdWriteRecord>> {
    Ok(sqlx::query_as(&format!("SELECT {WRITE_COLUMNS} FROM ad_writes WHERE tenant_id = $1 AND search_id = $2")).bind(tenant.0).bind(search_id).fetch_optional(store.reader()).await?)
}

/// Moves an unsettled write on (to `unknown`, or `done` with its outcome);
/// answers whether it was still unsettled. A settled write never changes.
pub async fn settle_write(tx: &mut WriteTx, tenant: TenantId, search_id: &str, state: &str, outcome: Option<&str>, message: Option<&str>, now_us: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE ad_writes SET state = $3, outcome = $4, message = $5, updated_at_us = $6 WHERE tenant_id = $1 AND search_id = $2 AND state <> 'done'")
        .bind(tenant.0)
        .bind(search_id)
        .bind(state)
        .bind(outcome)
        .bind(message)
        .bind(now_us)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Unsettled money writes last touched before `before_us`, of every tenant, oldest first.
pub async fn unsettled_writes(store: &Store, before_us: i64, limit: i64) -> Result<Vec<AdWriteRecord>> {
    Ok(sqlx::query_as(&format!("SELECT {WRITE_COLUMNS} FROM ad_writes WHERE state <> 'done' AND updated_at_us < $1 ORDER BY updated_at_us LIMIT $2"))
        .bind(before_us)
        .bind(limit)
        .fetch_all(store.reader())
        .await?)
}

/// Accounts of the tenant with an unsettled money write: a sync leaves their money alone.
pub async fn accounts_in_flight(store: &Store, tenant: TenantId) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT account_id FROM ad_writes WHERE tenant_id = $1 AND state <> 'done' AND cap_after_cents IS NOT NULL").bind(tenant.0).fetch_all(store.reader()).await?)
}

// ---------------------------------------------------------------------------
// Ad accounts' wallets

/// Creates the `ad_cap` wallet of an ad account unless it exists; its id either way.
pub async fn ensure_cap_wallet(tx: &mut WriteTx, tenant: TenantId, account: &str, currency: &str, now_us: i64) -> Result<WalletId> {
    sqlx::query(
        "INSERT INTO wallets (tenant_id, account_id, ad_account_id, purpose, currency, balance_minor, floor_minor, entry_seq, created_at_us)
         VALUES ($1, NULL, $2, 'ad_cap', $3, 0, NULL, 0, $4) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.0)
    .bind(account)
    .bind(currency)
    .bind(now_us)
    .execute(tx.conn())
    .await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM wallets WHERE tenant_id = $1 AND COALESCE(account_id, 0) = 0 AND COALESCE(ad_account_id, '') = $2 AND purpose = 'ad_cap' AND currency = $3")
        .bind(tenant.0)
        .bind(account)
        .bind(currency)
        .fetch_one(tx.conn())
        .await?;
    Ok(WalletId(id))
}

/// An ad account's `ad_cap` wallet: its id, balance, reservation and last entry's number.
pub async fn cap_wallet(store: &Store, tenant: TenantId, account: &str, currency: &str) -> Result<Option<(WalletId, i64, i64, i64)>> {
    let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, balance_minor, reserved_minor, entry_seq FROM wallets WHERE tenant_id = $1 AND COALESCE(account_id, 0) = 0 AND COALESCE(ad_account_id, '') = $2 AND purpose = 'ad_cap' AND currency = $3",
    )
    .bind(tenant.0)
    .bind(account)
    .bind(currency)
    .fetch_optional(store.reader())
    .await?;
    Ok(row.map(|(id, balance, reserved, seq)| (WalletId(id), balance, reserved, seq)))
}

/// The id of the tenant's hold opened under `key`, if any.
pub async fn hold_by_key(store: &Store, tenant: TenantId, key: &str) -> Result<Option<subledger_domain::ids::TransferId>> {
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM holds WHERE tenant_id = $1 AND idempotency_key = $2").bind(tenant.0).bind(key).fetch_optional(store.reader()).await?;
    Ok(id.map(subledger_domain::ids::TransferId))
}
