//! Signed requests seen recently: the replay guard of SendCloud's signed,
//! timestamped calls. It lives in the database, so a request captured on the
//! wire cannot be replayed to another process or after a restart.

use subledger_domain::ids::TenantId;
use subledger_storage::signed_requests::{self, Sighting};

use crate::Services;
use crate::error::ServiceResult;

/// How often expired records are swept, for a timestamp window of
/// `window_ms`: once per window, between 1 and 10 seconds. Records live for
/// the window, so the table holds the signed requests of about two windows.
pub fn sweep_every(window_ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(window_ms.clamp(1_000, 10_000) as u64)
}

impl Services {
    /// Whether this is the first sighting of `signature` for `tenant` before
    /// `expires_at_ms`; records it if so. A replay answers `false`.
    /// The ledger worker records it, with the other sightings queued beside
    /// it in one transaction.
    pub async fn first_sighting(&self, tenant: TenantId, signature: &str, expires_at_ms: i64) -> ServiceResult<bool> {
        self.ledger.submit_sighting(Sighting { tenant, signature: signature.to_owned(), expires_at_ms }).await
    }

    /// Whether a signed request was recorded as seen and its record is still
    /// live: the early refusal of a replayed change (see `Change::signed`).
    pub async fn seen_before(&self, tenant: TenantId, signature: &str, now_ms: i64) -> ServiceResult<bool> {
        Ok(signed_requests::is_recorded(&self.store, tenant, signature, now_ms).await?)
    }

    /// Forgets the sightings that expired before `now_ms`.
    pub async fn forget_expired_sightings(&self, now_ms: i64) -> ServiceResult<u64> {
        Ok(signed_requests::forget_expired(&self.store, now_ms).await?)
    }
}
