//! Reads of the operation log. Entries are written only with their change
//! ([`crate::records`]); the table is append-only (triggers on both backends).

use subledger_domain::ids::{AccountId, TenantId};
use subledger_domain::oplog::{Actor, Operation, OperationKind, Outcome};

use crate::rows::{StoredOperationRow, columns};
use crate::{Result, StorageError, Store};

/// Largest page of entries.
pub const OPERATIONS_PAGE_MAX: i64 = 500;

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOperation {
    pub id: i64,
    pub tenant: TenantId,
    pub at_us: i64,
    pub actor: Actor,
    pub operation: Operation,
    pub outcome: Outcome,
}

impl TryFrom<StoredOperationRow<String>> for StoredOperation {
    type Error = StorageError;
    fn try_from(row: StoredOperationRow<String>) -> Result<StoredOperation> {
        let corrupt = |what: &str| StorageError::Corrupt(format!("operation {}: {what}", row.id));
        let actor = Actor::from_stored(&row.actor_kind, row.actor_account_id.map(AccountId), row.actor_name.clone()).ok_or_else(|| corrupt("actor"))?;
        let kind = OperationKind::parse(&row.kind).ok_or_else(|| corrupt("kind"))?;
        Ok(StoredOperation {
            id: row.id,
            tenant: TenantId(row.tenant_id),
            at_us: row.at_us,
            actor,
            operation: Operation { kind, subject: row.subject, detail: row.detail },
            outcome: Outcome::from_stored(row.outcome),
        })
    }
}

/// Which entries to read: newest first, every filter optional.
#[derive(Debug, Clone, Default)]
pub struct OperationFilter<'a> {
    pub id: Option<i64>,
    /// Entries of this sub-user (the actor's name).
    pub actor_name: Option<&'a str>,
    /// Only entries of sub-users, when no name is given.
    pub kind: Option<OperationKind>,
    /// At or after this instant.
    pub from_us: Option<i64>,
    /// At or before this instant.
    pub until_us: Option<i64>,
}

/// A page of a tenant's entries, newest first. Each filter adds its own
/// condition, so that the plan uses the index that fits
/// (`operations_tenant_actor_time` with a name, else `operations_tenant_time`).
pub async fn list(store: &Store, tenant: TenantId, filter: &OperationFilter<'_>, offset: i64, limit: i64) -> Result<Vec<StoredOperation>> {
    let mut sql = format!("SELECT {} FROM operations WHERE tenant_id = $1", columns::<StoredOperationRow<String>>(None));
    let mut next = 2;
    let mut condition = |sql: &mut String, text: &str| {
        sql.push_str(&text.replace('?', &format!("${next}")));
        next += 1;
    };
    if filter.id.is_some() {
        condition(&mut sql, " AND id = ?");
    }
    if filter.actor_name.is_some() {
        condition(&mut sql, " AND actor_name = ?");
    }
    if filter.kind.is_some() {
        condition(&mut sql, " AND kind = ?");
    }
    if filter.from_us.is_some() {
        condition(&mut sql, " AND at_us >= ?");
    }
    if filter.until_us.is_some() {
        condition(&mut sql, " AND at_us <= ?");
    }
    sql.push_str(" ORDER BY at_us DESC, id DESC");
    condition(&mut sql, " LIMIT ?");
    condition(&mut sql, " OFFSET ?");
    let mut query = sqlx::query_as::<_, StoredOperationRow<String>>(&sql).bind(tenant.0);
    if let Some(id) = filter.id {
        query = query.bind(id);
    }
    if let Some(name) = filter.actor_name {
        query = query.bind(name);
    }
    if let Some(kind) = filter.kind {
        query = query.bind(kind.code());
    }
    if let Some(from) = filter.from_us {
        query = query.bind(from);
    }
    if let Some(until) = filter.until_us {
        query = query.bind(until);
    }
    let rows = query.bind(limit.clamp(0, OPERATIONS_PAGE_MAX)).bind(offset.max(0)).fetch_all(store.reader()).await?;
    rows.into_iter().map(StoredOperation::try_from).collect()
}

/// How many entries a tenant has (tests and the benchmark).
pub async fn count(store: &Store, tenant: TenantId) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM operations WHERE tenant_id = $1").bind(tenant.0).fetch_one(store.reader()).await?)
}
