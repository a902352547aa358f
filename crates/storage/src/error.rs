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
    /// The database refused a value it was given or computed: a number out of
    /// its column's range (PostgreSQL 22003, SQLite's `integer overflow` in a
    /// `SUM`) or text it cannot hold (PostgreSQL 22021, a NUL byte; 22P05).
    /// The statement changed nothing; retrying cannot help.
    #[error("value refused by the database: {detail}")]
    ValueRefused { kind: RefusedValue, detail: String },
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

/// What kind of value the database refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedValue {
    /// A number too large for its type.
    Number,
    /// Text the database cannot store.
    Text,
}

impl RefusedValue {
    /// From a PostgreSQL SQLSTATE of class 22 (data exception), or SQLite's
    /// message for a `SUM` past `i64` (its error code, 1, is shared by every
    /// SQL error). `None` for every other error.
    fn classify(code: &str, message: &str) -> Option<RefusedValue> {
        match code {
            "22003" => Some(RefusedValue::Number),
            "22021" | "22P05" => Some(RefusedValue::Text),
            "1" if message == "integer overflow" => Some(RefusedValue::Number),
            _ => None,
        }
    }

    /// The classified error, if the database refused a value.
    pub(crate) fn error(code: &str, message: &str) -> Option<StorageError> {
        RefusedValue::classify(code, message).map(|kind| StorageError::ValueRefused { kind, detail: message.to_owned() })
    }
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
            if let Some(refused) = RefusedValue::error(&code, db.message()) {
                return refused;
            }
        }
        if matches!(error, sqlx::Error::PoolTimedOut) {
            return StorageError::Transient("timed out waiting for a database connection".to_owned());
        }
        StorageError::Database(error)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    /// What each backend says when a `SUM` passes `i64` and when text holds a NUL byte.
    const OVERFLOWING_SUM: &str = "SELECT CAST(SUM(v) AS BIGINT) FROM (SELECT 9223372036854775807 AS v UNION ALL SELECT 1) AS t";

    #[tokio::test]
    async fn sqlite_overflow_is_a_refused_number() {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect("sqlite::memory:").await.unwrap();
        let error: StorageError = sqlx::query_scalar::<_, i64>(OVERFLOWING_SUM).fetch_one(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Number, .. }), "{error:?}");
        // The ledger's own connection (rusqlite) says the same.
        let ledger = rusqlite::Connection::open_in_memory().unwrap();
        let error = crate::ledger::sqlite::storage_error(ledger.query_row(OVERFLOWING_SUM, [], |row| row.get::<_, i64>(0)).unwrap_err());
        assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Number, .. }), "{error:?}");
        // Any other SQL error stays what it was.
        let error: StorageError = sqlx::query("SELECT * FROM no_such_table").execute(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::Database(_)), "{error:?}");
    }

    /// Runs with `SUBLEDGER_TEST_POSTGRES_URL` set (as the black-box suite does); passes without.
    #[tokio::test]
    async fn postgres_range_and_text_errors_are_refused_values() {
        let Ok(url) = std::env::var("SUBLEDGER_TEST_POSTGRES_URL") else { return };
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        let error: StorageError = sqlx::query_scalar::<_, i64>(OVERFLOWING_SUM).fetch_one(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Number, .. }), "{error:?}");
        let error: StorageError = sqlx::query_scalar::<_, String>("SELECT $1::text").bind("a\0b").fetch_one(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Text, .. }), "{error:?}");
        let error: StorageError = sqlx::query("SELECT * FROM no_such_table").execute(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::Database(_)), "{error:?}");
    }
}
