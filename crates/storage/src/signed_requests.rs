//! Signed requests seen recently (SendCloud's replay guard), shared by every
//! process on the database.

use subledger_domain::ids::TenantId;

use crate::{Result, Store};

/// Records a request's signature until `expires_at_ms`. Returns `false` when
/// the same signature of the same tenant is already recorded and has not
/// expired (a replay); an expired record is taken over.
pub async fn record_first_sighting(store: &Store, tenant: TenantId, signature: &str, now_ms: i64, expires_at_ms: i64) -> Result<bool> {
    let mut tx = store.begin_write().await?;
    // A record is live through its expiry millisecond: the timestamp window
    // accepts a request up to and including that instant.
    let done = sqlx::query(
        "INSERT INTO signed_requests (tenant_id, signature, expires_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, signature) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
         WHERE signed_requests.expires_at_ms < $4",
    )
    .bind(tenant.0)
    .bind(signature)
    .bind(expires_at_ms)
    .bind(now_ms)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the records that expired before `now_ms`; returns how many.
pub async fn forget_expired(store: &Store, now_ms: i64) -> Result<u64> {
    let mut tx = store.begin_write().await?;
    let done = sqlx::query("DELETE FROM signed_requests WHERE expires_at_ms < $1").bind(now_ms).execute(tx.conn()).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
