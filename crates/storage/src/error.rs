//! The storage error type: what the layers above need to tell apart.

/// A storage failure, classified so the service layer can retry or map it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique constraint refused the write. `detail` names the constraint
    /// (PostgreSQL) or its columns (SQLite).
    #[error("unique constraint violated: {detail}")]
    UniqueViolation { detail: String },
    /// A conflict that a retry of the whole transaction resolves: a
    /// serialization failure, a deadlock, or a busy SQLite file.
    #[error("transient conflict, retry: {0}")]
    Transient(String),
    /// A stored value that cannot be read back into its domain type.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A database failure known by its message: from the ledger's own SQLite
    /// connection, or shared by every caller of a failed ledger batch.
    #[error("database error: {0}")]
    Failed(String),
}

impl StorageError {
    /// Whether running the same transaction again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Transient(_))
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StorageError::Corrupt(what.into())
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error {
            if db.is_unique_violation() {
                return StorageError::UniqueViolation { detail: db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned()) };
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // PostgreSQL: serialization_failure, deadlock_detected.
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with extended codes.
            let transient = matches!(code.as_str(), "40001" | "40P01" | "5" | "6" | "261" | "517" | "262");
            if transient {
                return StorageError::Transient(db.message().to_owned());
            }
        }
        if matches!(error, sqlx::Error::PoolTimedOut) {
            return StorageError::Transient("timed out waiting for a database connection".to_owned());
        }
        StorageError::Database(error)
    }
}
