//! Signed requests seen recently (SendCloud's replay guard), shared by every
//! process on the database. Sightings are recorded by the ledger worker, many
//! in one transaction ([`crate::ledger::record_sightings`]), so the guard
//! costs the hot path a row, not a commit of its own.

use subledger_domain::ids::TenantId;

use crate::{Result, Store};

/// A signed request to record until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub tenant: TenantId,
    pub signature: String,
    pub expires_at_ms: i64,
}

/// What inserting a sighting does on conflict, on both backends: it takes
/// over an expired record of the same signature; a live record is left alone
/// (the request is a replay), and the insert counts no row. A record is live
/// through its expiry millisecond: the timestamp window accepts a request up
/// to and including that instant. `now_ms` is the parameter holding the
/// current time in ms.
pub(crate) fn record_sighting_conflict(now_ms: &str) -> String {
    format!("ON CONFLICT (tenant_id, signature) DO UPDATE SET expires_at_ms = excluded.expires_at_ms WHERE signed_requests.expires_at_ms < {now_ms}")
}

/// Whether a live record of `signature` exists: a request that mutates is
/// recorded only with its change, but a replay of one that committed is
/// refused before any work (the record's insert still decides a race).
pub async fn is_recorded(store: &Store, tenant: TenantId, signature: &str, now_ms: i64) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM signed_requests WHERE tenant_id = $1 AND signature = $2 AND expires_at_ms >= $3")
        .bind(tenant.0)
        .bind(signature)
        .bind(now_ms)
        .fetch_optional(store.reader())
        .await?;
    Ok(found.is_some())
}

/// Deletes the records that expired before `now_ms`; returns how many.
pub async fn forget_expired(store: &Store, now_ms: i64) -> Result<u64> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("DELETE FROM signed_requests WHERE expires_at_ms < $1").bind(now_ms).execute(tx.conn()).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
