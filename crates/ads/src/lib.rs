//! The ad platform subledger resells (Meta), seen through one trait.
//!
//! [`AdPlatform`] names every upstream call the ad-account dialect needs, in
//! Meta's own terms (objects and fields of the Graph API, as the official
//! `facebook-business` SDK defines them). Two implementations exist:
//! [`graph::GraphApi`], Meta's Graph API over HTTP, and the sandbox in
//! `subledger-service` (`ads::sandbox`), which simulates Meta inside the
//! server so that the dialect works with no Meta credentials.
//!
//! Nothing here touches the ledger or the database: the service layer calls
//! a platform outside any transaction and never on the ledger worker.

pub mod graph;
pub mod model;
pub mod sandbox_model;

use std::future::Future;

pub use model::*;

/// Whose upstream a call is made for: the tenant (an agency), its Business
/// Manager and its system-user token.
#[derive(Clone)]
pub struct Scope {
    /// subledger's tenant id, which the sandbox keys its state by.
    pub tenant_id: i64,
    /// The agency's Business Manager id.
    pub business_id: String,
    /// The system-user access token (empty for the sandbox). Never logged.
    pub access_token: String,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope").field("tenant_id", &self.tenant_id).field("business_id", &self.business_id).field("access_token", &"<redacted>").finish()
    }
}

/// Why an upstream call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// No answer within the deadline (retries included). For a write, the
    /// outcome is unknown: it may have been applied.
    #[error("the ad platform did not answer in time")]
    Timeout,
    /// Transient failures (5xx, connection reset, Meta's "temporary" error
    /// codes) persisted through every retry. For a write, the outcome is
    /// unknown.
    #[error("the ad platform is unavailable: {0}")]
    Unavailable(String),
    /// Meta answered with its error object: the call was refused and changed
    /// nothing.
    #[error("the ad platform refused: {message}")]
    Refused { code: i64, subcode: Option<i64>, message: String },
    /// Meta refused because of its rate limits (codes 4, 17, 32, 613, 80000…)
    /// and waiting the time it asked for did not help within the deadline.
    /// Nothing was changed.
    #[error("the ad platform's rate limit was reached; retry after {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    /// The object does not exist or the token cannot see it (Graph code 100,
    /// subcode 33). Nothing was changed.
    #[error("no such object on the ad platform")]
    NotFound,
    /// The answer could not be understood. For a write, the outcome is unknown.
    #[error("the ad platform's answer was not understood: {0}")]
    Malformed(String),
}

impl PlatformError {
    /// Whether a write that failed this way may nevertheless have been
    /// applied upstream, so that its outcome must be read back.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, PlatformError::Timeout | PlatformError::Unavailable(_) | PlatformError::Malformed(_))
    }
}

pub type PlatformResult<T> = Result<T, PlatformError>;

/// Every upstream call the ad-account dialect needs. Implementations must be
/// safe to call concurrently: the service layer runs many calls at once and
/// never serializes them.
pub trait AdPlatform: Send + Sync {
    /// Every ad account creation request of the agency (Graph: the Business's
    /// `adaccountcreationrequests`, or the sandbox's), with each request's
    /// issued ad accounts. Cursor pages are followed to the end.
    fn creation_requests(&self, scope: &Scope) -> impl Future<Output = PlatformResult<Vec<CreationRequest>>> + Send;

    /// Every ad account the agency manages (Graph: the Business's
    /// `client_ad_accounts` and `owned_ad_accounts`), with the fields of
    /// [`AD_ACCOUNT_FIELDS`]. Cursor pages are followed to the end.
    fn ad_accounts(&self, scope: &Scope) -> impl Future<Output = PlatformResult<Vec<AdAccount>>> + Send;

    /// One ad account (Graph: `GET /act_{id}`), read now.
    fn ad_account(&self, scope: &Scope, account_id: &str) -> impl Future<Output = PlatformResult<AdAccount>> + Send;

    /// Sets the account's spend cap, in cents (Graph: `POST /act_{id}` with
    /// `spend_cap` in dollars).
    fn set_spend_cap(&self, scope: &Scope, account_id: &str, spend_cap_cents: i64) -> impl Future<Output = PlatformResult<()>> + Send;

    /// Resets the account's spend: `amount_spent` starts again from 0 and
    /// the spend cap becomes [`RESET_SPEND_CAP_CENTS`] (Graph: `POST /act_{id}`
    /// with `spend_cap_action=reset`, then `spend_cap=0.01`).
    fn reset_spend_cap(&self, scope: &Scope, account_id: &str) -> impl Future<Output = PlatformResult<()>> + Send;

    /// The Business Managers the account is shared with (Graph: `GET /act_{id}/agencies`).
    fn businesses(&self, scope: &Scope, account_id: &str) -> impl Future<Output = PlatformResult<Vec<Business>>> + Send;

    /// Shares the account with a Business Manager (Graph: `POST /act_{id}/agencies`
    /// with `business` and `permitted_tasks`).
    fn bind_business(&self, scope: &Scope, account_id: &str, business_id: &str) -> impl Future<Output = PlatformResult<()>> + Send;

    /// Stops sharing the account with a Business Manager (Graph: `DELETE /act_{id}/agencies`
    /// with `business`).
    fn unbind_business(&self, scope: &Scope, account_id: &str, business_id: &str) -> impl Future<Output = PlatformResult<()>> + Send;

    /// The pixels the account can use (Graph: `GET /act_{id}/adspixels`).
    fn pixels(&self, scope: &Scope, account_id: &str) -> impl Future<Output = PlatformResult<Vec<Pixel>>> + Send;

    /// Shares a pixel with the account (Graph: `POST /{pixel_id}/shared_accounts`
    /// with `account_id` and `business`).
    fn bind_pixel(&self, scope: &Scope, account_id: &str, pixel_id: &str) -> impl Future<Output = PlatformResult<()>> + Send;

    /// Stops sharing a pixel with the account (Graph: `DELETE /{pixel_id}/shared_accounts`).
    fn unbind_pixel(&self, scope: &Scope, account_id: &str, pixel_id: &str) -> impl Future<Output = PlatformResult<()>> + Send;

    /// Daily insights of the account over `since..=until` (Graph:
    /// `GET /act_{id}/insights` with `time_range`, `time_increment=1`,
    /// [`INSIGHTS_SYNC_FIELDS`], and `breakdowns` when given), one row per day
    /// (and per breakdown value). Cursor pages are followed to the end.
    fn daily_insights(&self, scope: &Scope, account_id: &str, window: &InsightsWindow) -> impl Future<Output = PlatformResult<Vec<InsightsRow>>> + Send;
}
