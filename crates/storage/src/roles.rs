//! Roles of a tenant and their application templates (`role_apps`: the
//! leaves a role grants; parents are implied).

use subledger_domain::access::AppId;
use subledger_domain::ids::{RoleId, TenantId};

use crate::{Result, Store, WriteTx};

/// A role as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoleRecord {
    pub id: i64,
    pub tenant_id: i64,
    pub name: String,
    pub level: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

impl RoleRecord {
    pub fn role_id(&self) -> RoleId {
        RoleId(self.id)
    }
}

const COLUMNS: &str = "id, tenant_id, name, level, created_at_us, updated_at_us";

/// Inserts a role; a name the tenant already uses is `UniqueViolation` `RoleName`.
pub async fn insert(tx: &mut WriteTx, tenant: TenantId, name: &str, level: i64, now_us: i64) -> Result<RoleId> {
    let id: i64 = sqlx::query_scalar("INSERT INTO roles (tenant_id, name, level, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $4) RETURNING id")
        .bind(tenant.0)
        .bind(name)
        .bind(level)
        .bind(now_us)
        .fetch_one(tx.conn())
        .await?;
    Ok(RoleId(id))
}

/// How many roles the tenant has, inside the transaction that adds one.
pub async fn count_in_tx(tx: &mut WriteTx, tenant: TenantId) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM roles WHERE tenant_id = $1").bind(tenant.0).fetch_one(tx.conn()).await?)
}

/// The tenant's roles by id, at most `limit`.
pub async fn list(store: &Store, tenant: TenantId, limit: i64) -> Result<Vec<RoleRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM roles WHERE tenant_id = $1 ORDER BY id LIMIT $2");
    Ok(sqlx::query_as(&sql).bind(tenant.0).bind(limit).fetch_all(store.reader()).await?)
}

/// One of the tenant's roles; another tenant's is `None`, like a missing one.
pub async fn get(store: &Store, tenant: TenantId, id: RoleId) -> Result<Option<RoleRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM roles WHERE id = $1 AND tenant_id = $2");
    Ok(sqlx::query_as(&sql).bind(id.0).bind(tenant.0).fetch_optional(store.reader()).await?)
}

/// [`get`] inside a write transaction (the check before an assignment).
pub async fn get_in_tx(tx: &mut WriteTx, tenant: TenantId, id: RoleId) -> Result<Option<RoleRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM roles WHERE id = $1 AND tenant_id = $2");
    Ok(sqlx::query_as(&sql).bind(id.0).bind(tenant.0).fetch_optional(tx.conn()).await?)
}

/// Changes a role's name and/or level (`None` keeps it); `None` if the
/// tenant has no such role.
pub async fn update(tx: &mut WriteTx, tenant: TenantId, id: RoleId, name: Option<&str>, level: Option<i64>, now_us: i64) -> Result<Option<RoleRecord>> {
    let sql = format!("UPDATE roles SET name = COALESCE($3, name), level = COALESCE($4, level), updated_at_us = $5 WHERE id = $1 AND tenant_id = $2 RETURNING {COLUMNS}");
    Ok(sqlx::query_as(&sql).bind(id.0).bind(tenant.0).bind(name).bind(level).bind(now_us).fetch_optional(tx.conn()).await?)
}

/// How many of the tenant's accounts hold the role.
pub async fn holders_in_tx(tx: &mut WriteTx, tenant: TenantId, id: RoleId) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE tenant_id = $1 AND role_id = $2").bind(tenant.0).bind(id.0).fetch_one(tx.conn()).await?)
}

/// Deletes a role and its template; false if the tenant has no such role.
/// A role still assigned is refused by the foreign key (the service checks first).
pub async fn delete(tx: &mut WriteTx, tenant: TenantId, id: RoleId) -> Result<bool> {
    sqlx::query("DELETE FROM role_apps WHERE role_id = (SELECT id FROM roles WHERE id = $1 AND tenant_id = $2)").bind(id.0).bind(tenant.0).execute(tx.conn()).await?;
    let deleted = sqlx::query("DELETE FROM roles WHERE id = $1 AND tenant_id = $2").bind(id.0).bind(tenant.0).execute(tx.conn()).await?;
    Ok(deleted.rows_affected() == 1)
}

/// The leaves a role's template grants (the caller checked the role is the tenant's).
pub async fn apps(store: &Store, id: RoleId) -> Result<Vec<AppId>> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT app_id FROM role_apps WHERE role_id = $1 ORDER BY app_id").bind(id.0).fetch_all(store.reader()).await?;
    Ok(ids.into_iter().map(AppId).collect())
}

/// [`apps`] inside a write transaction.
pub async fn apps_in_tx(tx: &mut WriteTx, id: RoleId) -> Result<Vec<AppId>> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT app_id FROM role_apps WHERE role_id = $1 ORDER BY app_id").bind(id.0).fetch_all(tx.conn()).await?;
    Ok(ids.into_iter().map(AppId).collect())
}

/// Replaces a role's template with these leaves.
pub async fn set_apps(tx: &mut WriteTx, id: RoleId, leaves: &[AppId]) -> Result<()> {
    sqlx::query("DELETE FROM role_apps WHERE role_id = $1").bind(id.0).execute(tx.conn()).await?;
    for app in leaves {
        sqlx::query("INSERT INTO role_apps (role_id, app_id) VALUES ($1, $2)").bind(id.0).bind(app.0).execute(tx.conn()).await?;
    }
    Ok(())
}
