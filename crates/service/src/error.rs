//! The service error type. Each dialect maps it, once, to its own codes.

use subledger_domain::ledger::TransferRejection;
use subledger_domain::money::AmountTooLarge;
use subledger_storage::{RefusedValue, StorageError};

/// What a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(Resource),
    #[error("the username is already taken in this tenant")]
    UsernameTaken,
    #[error("the phone number is already used by another account of this tenant")]
    PhoneTaken,
    #[error("the tenant has reached its limit of {limit} accounts")]
    AccountLimit { limit: i64 },
    /// The ledger refused the transfer; nothing moved.
    #[error("transfer refused: {0}")]
    Rejected(TransferRejection),
    /// The request was seen before (a signed request replayed): nothing was done.
    #[error("this request was already received")]
    Replayed,
    #[error("this idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    /// The hold was already posted, voided or expired (its state is given):
    /// it can no longer be posted (or voided, once posted).
    #[error("the hold is {0}, no longer pending")]
    HoldNotPending(&'static str),
    /// The request contradicts what exists (a product code taken, …).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Input that passed the edge's parsing but breaks a rule that needs state
    /// or several fields to check.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// An amount or quantity would pass its limit (see the limits in
    /// `rating` and `money`), or the database refused a number as out of
    /// range; nothing was written. The message says what and, where it
    /// helps, for whom.
    #[error("amount too large: {0}")]
    AmountTooLarge(String),
    /// The server is shutting down; the request did nothing.
    #[error("service unavailable: {0}")]
    Unavailable(&'static str),
    /// The server has no room for the request now (its ledger queue is
    /// full); the request did nothing and may be sent again at once.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// The caller is authenticated but its grants lack the application the
    /// call needs (a sub-user's session).
    #[error("not allowed: this needs the application {app} ({code})")]
    Forbidden { app: subledger_domain::access::AppId, code: &'static str },
    /// Credentials that do not authenticate (a failed login, an ended session).
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// Too many requests or failed logins; retry after the given seconds.
    #[error("too many requests; retry after {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    /// The ad-account reseller's rules refused the request (before any call upstream).
    #[error("{0}")]
    AdRefused(crate::ads::AdRefusal),
    /// The ad platform did not do what was asked (or its answer was lost).
    #[error("ad platform: {0}")]
    Upstream(subledger_ads::PlatformError),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for ServiceError {
    /// A value the database refused is the request's, not the server's fault.
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::ValueRefused { kind: RefusedValue::Number, detail } => ServiceError::AmountTooLarge(format!("the database refused a number as out of range ({detail})")),
            StorageError::ValueRefused { kind: RefusedValue::Text, detail } => ServiceError::Invalid { field: "text", reason: format!("the database cannot store it ({detail})") },
            StorageError::Replayed(_) => ServiceError::Replayed,
            StorageError::Stale(_) => ServiceError::Conflict("the record changed while the request ran; send it again"),
            other => ServiceError::Storage(other),
        }
    }
}

impl From<AmountTooLarge> for ServiceError {
    fn from(error: AmountTooLarge) -> Self {
        ServiceError::AmountTooLarge(error.to_string())
    }
}

/// The kinds of thing a lookup can miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Tenant,
    Account,
    Wallet,
    Transfer,
    Hold,
    Product,
    Role,
    Notice,
    Session,
    TimeCard,
    AdAccount,
    AdRequest,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Tenant => "tenant",
            Resource::Account => "account",
            Resource::Wallet => "wallet",
            Resource::Transfer => "transfer",
            Resource::Hold => "hold",
            Resource::Product => "product",
            Resource::Role => "role",
            Resource::Notice => "notice",
            Resource::Session => "session",
            Resource::TimeCard => "time_card",
            Resource::AdAccount => "ad_account",
            Resource::AdRequest => "ad_request",
        })
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
