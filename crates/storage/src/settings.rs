//! Server-wide settings kept in the database (so every process sees the same).

use crate::{Result, Store, WriteTx};

pub const ADMIN_TOKEN_SHA256: &str = "admin_token_sha256";

pub async fn get(store: &Store, key: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT value FROM server_settings WHERE key = $1").bind(key).fetch_optional(store.reader()).await?)
}

/// Sets `key` only if it has no value yet; returns whether this call set it.
/// Several servers starting at once agree on one value this way.
pub async fn insert_if_absent(tx: &mut WriteTx, key: &str, value: &str) -> Result<bool> {
    let done = sqlx::query("INSERT INTO server_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING").bind(key).bind(value).execute(tx.conn()).await?;
    Ok(done.rows_affected() == 1)
}

pub async fn put(tx: &mut WriteTx, key: &str, value: &str) -> Result<()> {
    sqlx::query("INSERT INTO server_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value").bind(key).bind(value).execute(tx.conn()).await?;
    Ok(())
}
