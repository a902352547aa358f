//! Tenants (resellers) and their credentials.

use std::sync::LazyLock;

use subledger_domain::ids::TenantId;

use crate::rows::{self, NewTenantRow, Row, TenantChangesRow};
use crate::{Result, Store, WriteTx};

/// A tenant as stored. The API token is only ever stored as a digest.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantRecord {
    pub id: i64,
    pub public_id: String,
    pub name: String,
    pub timezone: String,
    pub language: String,
    pub app_id: String,
    pub app_key: String,
    pub account_limit: i64,
    pub default_daily_quota: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

impl TenantRecord {
    pub fn tenant_id(&self) -> TenantId {
        TenantId(self.id)
    }
}

pub struct NewTenant<'a> {
    pub public_id: &'a str,
    pub name: &'a str,
    pub timezone: &'a str,
    pub app_id: &'a str,
    pub app_key: &'a str,
    pub api_token_sha256: &'a str,
    pub account_limit: i64,
    pub default_daily_quota: i64,
    pub now_us: i64,
}

const COLUMNS: &str = "id, public_id, name, timezone, language, app_id, app_key, account_limit, default_daily_quota, created_at_us, updated_at_us";

static INSERT: LazyLock<String> = LazyLock::new(|| format!("{} RETURNING id", rows::sqlx_insert::<NewTenantRow<&str>>()));

pub async fn insert(tx: &mut WriteTx, tenant: &NewTenant<'_>) -> Result<TenantId> {
    let id: i64 = sqlx::query_scalar_with(&INSERT, NewTenantRow::from(tenant).sqlx_arguments()?).fetch_one(tx.conn()).await?;
    Ok(TenantId(id))
}

pub async fn find_by_app_id(store: &Store, app_id: &str) -> Result<Option<TenantRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE app_id = $1");
    Ok(sqlx::query_as(&sql).bind(app_id).fetch_optional(store.reader()).await?)
}

pub async fn find_by_public_id(store: &Store, public_id: &str) -> Result<Option<TenantRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE public_id = $1");
    Ok(sqlx::query_as(&sql).bind(public_id).fetch_optional(store.reader()).await?)
}

pub async fn find_by_token_sha256(store: &Store, token_sha256: &str) -> Result<Option<TenantRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE api_token_sha256 = $1");
    Ok(sqlx::query_as(&sql).bind(token_sha256).fetch_optional(store.reader()).await?)
}

pub async fn get(store: &Store, id: TenantId) -> Result<Option<TenantRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id.0).fetch_optional(store.reader()).await?)
}

/// Locks the tenant row for the rest of the transaction (PostgreSQL; SQLite's
/// write transaction is already exclusive). Serializes the changes that must
/// see a consistent count, such as creating accounts under a cap.
pub async fn lock(tx: &mut WriteTx, id: TenantId) -> Result<Option<TenantRecord>> {
    let sql = match tx.backend() {
        crate::Backend::Postgres => format!("SELECT {COLUMNS} FROM tenants WHERE id = $1 FOR NO KEY UPDATE"),
        crate::Backend::Sqlite => format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"),
    };
    Ok(sqlx::query_as(&sql).bind(id.0).fetch_optional(tx.conn()).await?)
}

pub async fn list(store: &Store, offset: i64, limit: i64) -> Result<Vec<TenantRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM tenants ORDER BY id LIMIT $1 OFFSET $2");
    Ok(sqlx::query_as(&sql).bind(limit).bind(offset).fetch_all(store.reader()).await?)
}

pub async fn count(store: &Store) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM tenants").fetch_one(store.reader()).await?)
}

/// Changes to a tenant's settings; `None` leaves a field as it is.
pub type TenantChanges<'a> = TenantChangesRow<&'a str>;

/// Each changeable column set to its new value, or kept (`COALESCE`), then
/// `updated_at_us` and the tenant's id.
static UPDATE: LazyLock<String> = LazyLock::new(|| {
    let columns = TenantChangesRow::<&str>::COLUMNS;
    let sets: Vec<String> = columns.iter().enumerate().map(|(i, c)| format!("{c} = COALESCE(${}, {c})", i + 1)).collect();
    format!("UPDATE tenants SET {}, updated_at_us = ${} WHERE id = ${}", sets.join(", "), columns.len() + 1, columns.len() + 2)
});

pub async fn update(tx: &mut WriteTx, id: TenantId, changes: &TenantChanges<'_>, now_us: i64) -> Result<bool> {
    let mut arguments = changes.sqlx_arguments()?;
    rows::add_argument(&mut arguments, &now_us)?;
    rows::add_argument(&mut arguments, &id.0)?;
    let done = sqlx::query_with(&UPDATE, arguments).execute(tx.conn()).await?;
    Ok(done.rows_affected() == 1)
}
