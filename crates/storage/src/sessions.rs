//! Sub-users' sessions, keyed by the SHA-256 of their token (the token
//! itself is never stored).

use subledger_domain::ids::{AccountId, TenantId};

use crate::{Result, Store, WriteTx};

/// A session to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession<'a> {
    pub token_sha256: &'a str,
    pub tenant: TenantId,
    pub account: AccountId,
    pub created_at_us: i64,
    pub expires_at_us: i64,
}

pub async fn insert(tx: &mut WriteTx, session: &NewSession<'_>) -> Result<()> {
    sqlx::query("INSERT INTO sessions (token_sha256, tenant_id, account_id, created_at_us, expires_at_us) VALUES ($1, $2, $3, $4, $5)")
        .bind(session.token_sha256)
        .bind(session.tenant.0)
        .bind(session.account.0)
        .bind(session.created_at_us)
        .bind(session.expires_at_us)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// A session that has neither ended nor expired, with the state of its
/// account that decides whether it may still act.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LiveSession {
    pub tenant_id: i64,
    pub account_id: i64,
    pub username: String,
    pub expires_at_us: i64,
    /// The account's: 1 enabled, 2 disabled, 3 cancelled.
    pub access_state: i64,
    pub locked_until_us: Option<i64>,
}

/// The live session with this token digest at `now_us`, if any.
pub async fn find_live(store: &Store, token_sha256: &str, now_us: i64) -> Result<Option<LiveSession>> {
    Ok(sqlx::query_as(
        "SELECT s.tenant_id, s.account_id, a.username, s.expires_at_us, a.access_state, a.locked_until_us
         FROM sessions s JOIN accounts a ON a.id = s.account_id AND a.tenant_id = s.tenant_id
         WHERE s.token_sha256 = $1 AND s.ended_at_us IS NULL AND s.expires_at_us > $2",
    )
    .bind(token_sha256)
    .bind(now_us)
    .fetch_optional(store.reader())
    .await?)
}

/// Ends the live session with this digest; its tenant, account and username,
/// or `None` if there was no live session.
pub async fn end(tx: &mut WriteTx, token_sha256: &str, now_us: i64) -> Result<Option<(TenantId, AccountId, String)>> {
    let ended: Option<(i64, i64)> = sqlx::query_as("UPDATE sessions SET ended_at_us = $2 WHERE token_sha256 = $1 AND ended_at_us IS NULL AND expires_at_us > $2 RETURNING tenant_id, account_id")
        .bind(token_sha256)
        .bind(now_us)
        .fetch_optional(tx.conn())
        .await?;
    let Some((tenant, account)) = ended else { return Ok(None) };
    let username: String = sqlx::query_scalar("SELECT username FROM accounts WHERE id = $1").bind(account).fetch_one(tx.conn()).await?;
    Ok(Some((TenantId(tenant), AccountId(account), username)))
}

/// Ends every live session of an account (disabled, cancelled, new password); how many.
pub async fn end_all_of(tx: &mut WriteTx, account: AccountId, now_us: i64) -> Result<u64> {
    let ended = sqlx::query("UPDATE sessions SET ended_at_us = $2 WHERE account_id = $1 AND ended_at_us IS NULL AND expires_at_us > $2").bind(account.0).bind(now_us).execute(tx.conn()).await?;
    Ok(ended.rows_affected())
}

/// How many live sessions an account has (tests, `me`).
pub async fn live_count(store: &Store, account: AccountId, now_us: i64) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE account_id = $1 AND ended_at_us IS NULL AND expires_at_us > $2").bind(account.0).bind(now_us).fetch_one(store.reader()).await?)
}

/// Deletes up to `limit` sessions that expired or ended before `before_us`;
/// how many. Called again until it returns less than `limit`, so that one
/// sweep never holds the write lock long.
pub async fn forget_old(store: &Store, before_us: i64, limit: i64) -> Result<u64> {
    let mut tx = store.begin_write().await?;
    let deleted = sqlx::query("DELETE FROM sessions WHERE token_sha256 IN (SELECT token_sha256 FROM sessions WHERE expires_at_us < $1 OR ended_at_us < $1 LIMIT $2)")
        .bind(before_us)
        .bind(limit)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected())
}
