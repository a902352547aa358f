//! Notices of a tenant and the sub-users they are aimed at (a notice
//! without targets is for everyone).

use std::collections::BTreeMap;

use subledger_domain::ids::{AccountId, NoticeId, TenantId};

use crate::{Result, Store, WriteTx};

/// A notice as stored, with its targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecord {
    pub id: NoticeId,
    pub tenant: TenantId,
    pub title: String,
    pub content: String,
    /// By id.
    pub targets: Vec<AccountId>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

#[derive(sqlx::FromRow)]
struct NoticeRow {
    id: i64,
    tenant_id: i64,
    title: String,
    content: String,
    created_at_us: i64,
    updated_at_us: i64,
}

const COLUMNS: &str = "n.id, n.tenant_id, n.title, n.content, n.created_at_us, n.updated_at_us";

pub async fn insert(tx: &mut WriteTx, tenant: TenantId, title: &str, content: &str, now_us: i64) -> Result<NoticeId> {
    let id: i64 = sqlx::query_scalar("INSERT INTO notices (tenant_id, title, content, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $4) RETURNING id")
        .bind(tenant.0)
        .bind(title)
        .bind(content)
        .bind(now_us)
        .fetch_one(tx.conn())
        .await?;
    Ok(NoticeId(id))
}

/// Replaces a notice's targets (the caller checked they are the tenant's accounts).
pub async fn set_targets(tx: &mut WriteTx, notice: NoticeId, targets: &[AccountId]) -> Result<()> {
    sqlx::query("DELETE FROM notice_targets WHERE notice_id = $1").bind(notice.0).execute(tx.conn()).await?;
    for account in targets {
        sqlx::query("INSERT INTO notice_targets (notice_id, account_id) VALUES ($1, $2)").bind(notice.0).bind(account.0).execute(tx.conn()).await?;
    }
    Ok(())
}

/// Changes a notice's title and/or content; false if the tenant has no such notice.
pub async fn update(tx: &mut WriteTx, tenant: TenantId, notice: NoticeId, title: Option<&str>, content: Option<&str>, now_us: i64) -> Result<bool> {
    let updated = sqlx::query("UPDATE notices SET title = COALESCE($3, title), content = COALESCE($4, content), updated_at_us = $5 WHERE id = $1 AND tenant_id = $2")
        .bind(notice.0)
        .bind(tenant.0)
        .bind(title)
        .bind(content)
        .bind(now_us)
        .execute(tx.conn())
        .await?;
    Ok(updated.rows_affected() == 1)
}

/// Deletes a notice and its targets; false if the tenant has no such notice.
pub async fn delete(tx: &mut WriteTx, tenant: TenantId, notice: NoticeId) -> Result<bool> {
    sqlx::query("DELETE FROM notice_targets WHERE notice_id = (SELECT id FROM notices WHERE id = $1 AND tenant_id = $2)").bind(notice.0).bind(tenant.0).execute(tx.conn()).await?;
    let deleted = sqlx::query("DELETE FROM notices WHERE id = $1 AND tenant_id = $2").bind(notice.0).bind(tenant.0).execute(tx.conn()).await?;
    Ok(deleted.rows_affected() == 1)
}

/// Which notices a listing returns; every filter optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeQuery<'a> {
    pub id: Option<NoticeId>,
    /// Part of the title (case-sensitive).
    pub title: Option<&'a str>,
    /// Only the notices this sub-user sees: those aimed at it and those without targets.
    pub visible_to: Option<AccountId>,
}

/// The tenant's notices that match, newest first, at most `limit`.
pub async fn list(store: &Store, tenant: TenantId, query: &NoticeQuery<'_>, limit: i64) -> Result<Vec<NoticeRecord>> {
    let mut sql = format!("SELECT {COLUMNS} FROM notices n WHERE n.tenant_id = $1");
    let mut next = 2;
    if query.id.is_some() {
        sql.push_str(&format!(" AND n.id = ${next}"));
        next += 1;
    }
    if query.title.is_some() {
        sql.push_str(&match store.backend() {
            crate::Backend::Sqlite => format!(" AND instr(n.title, ${next}) > 0"),
            crate::Backend::Postgres => format!(" AND strpos(n.title, ${next}) > 0"),
        });
        next += 1;
    }
    if query.visible_to.is_some() {
        sql.push_str(&format!(
            " AND (NOT EXISTS (SELECT 1 FROM notice_targets t WHERE t.notice_id = n.id)
                  OR EXISTS (SELECT 1 FROM notice_targets t WHERE t.notice_id = n.id AND t.account_id = ${next}))"
        ));
        next += 1;
    }
    sql.push_str(&format!(" ORDER BY n.id DESC LIMIT ${next}"));
    let mut statement = sqlx::query_as::<_, NoticeRow>(&sql).bind(tenant.0);
    if let Some(id) = query.id {
        statement = statement.bind(id.0);
    }
    if let Some(title) = query.title {
        statement = statement.bind(title);
    }
    if let Some(account) = query.visible_to {
        statement = statement.bind(account.0);
    }
    let rows = statement.bind(limit).fetch_all(store.reader()).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::Value::Array(rows.iter().map(|row| row.id.into()).collect()).to_string();
    let targets_sql = format!("SELECT notice_id, account_id FROM notice_targets WHERE {} ORDER BY notice_id, account_id", crate::bills::in_ids(store.backend(), "notice_id", 1));
    let pairs: Vec<(i64, i64)> = sqlx::query_as(&targets_sql).bind(ids).fetch_all(store.reader()).await?;
    let mut targets: BTreeMap<i64, Vec<AccountId>> = BTreeMap::new();
    for (notice, account) in pairs {
        targets.entry(notice).or_default().push(AccountId(account));
    }
    Ok(rows
        .into_iter()
        .map(|row| NoticeRecord {
            targets: targets.remove(&row.id).unwrap_or_default(),
            id: NoticeId(row.id),
            tenant: TenantId(row.tenant_id),
            title: row.title,
            content: row.content,
            created_at_us: row.created_at_us,
            updated_at_us: row.updated_at_us,
        })
        .collect())
}
