//! The admin token: the credential for tenant administration on the native API.
//!
//! Given by configuration, or generated at the first start and shown once.
//! Only its digest is stored, in the database, so every server process on the
//! same database accepts the same token.

use subledger_storage::settings::{self, ADMIN_TOKEN_SHA256};

use crate::Services;
use crate::error::ServiceResult;
use crate::secrets::{random_base62, secrets_equal, token_digest};

pub const ADMIN_TOKEN_PREFIX: &str = "sla_";
/// Shortest admin token accepted from configuration.
pub const ADMIN_TOKEN_CHARS_MIN: usize = 24;

impl Services {
    /// Makes sure an admin token exists. With `configured`, that token becomes
    /// the admin token. Without, one is generated if the database has none;
    /// the generated token is returned (to be shown once) only by the call
    /// that created it.
    pub async fn ensure_admin_token(&self, configured: Option<&str>) -> ServiceResult<Option<String>> {
        let mut tx = self.store.begin_write().await?;
        let generated = match configured {
            Some(token) => {
                settings::put(&mut tx, ADMIN_TOKEN_SHA256, &token_digest(token)).await?;
                None
            }
            None => {
                let token = format!("{ADMIN_TOKEN_PREFIX}{}", random_base62(40));
                settings::insert_if_absent(&mut tx, ADMIN_TOKEN_SHA256, &token_digest(&token)).await?.then_some(token)
            }
        };
        tx.commit().await?;
        Ok(generated)
    }

    /// Replaces the admin token with a new random one and returns it.
    pub async fn rotate_admin_token(&self) -> ServiceResult<String> {
        let token = format!("{ADMIN_TOKEN_PREFIX}{}", random_base62(40));
        let mut tx = self.store.begin_write().await?;
        settings::put(&mut tx, ADMIN_TOKEN_SHA256, &token_digest(&token)).await?;
        tx.commit().await?;
        Ok(token)
    }

    pub async fn is_admin_token(&self, presented: &str) -> ServiceResult<bool> {
        let Some(stored) = settings::get(&self.store, ADMIN_TOKEN_SHA256).await? else { return Ok(false) };
        Ok(secrets_equal(token_digest(presented).as_bytes(), stored.as_bytes()))
    }
}
