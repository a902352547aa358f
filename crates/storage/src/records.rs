//! Records that commit with a change, in the change's own transaction,
//! whichever job performs it (a plain write transaction, a ledger batch on
//! either backend, a usage batch): a change and its records are durable
//! together or not at all.
//!
//! Today that is the replay guard of a signed request (a SendCloud call that
//! mutates is recorded as seen only if its change commits, so a failed change
//! can be sent again). A new kind of record (the operation log) is one more
//! field of [`ChangeRecords`] and one more statement in [`write`] and
//! [`write_sqlite`]: every job already calls them.

use std::sync::LazyLock;

use crate::rows::{self, Row as _, SightingRow};
use crate::signed_requests::{Sighting, record_sighting_conflict};
use crate::{Result, StorageError};

/// What must be written with a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeRecords {
    /// Signed requests to record as seen: each must be the first sighting,
    /// or the change is refused as a replay ([`StorageError::Replayed`]).
    pub sightings: Vec<Sighting>,
}

impl ChangeRecords {
    pub fn is_empty(&self) -> bool {
        self.sightings.is_empty()
    }

    /// Adds another change's records: a batch commits the records of all its changes.
    pub fn extend(&mut self, other: ChangeRecords) {
        self.sightings.extend(other.sightings);
    }
}

static RECORD_SIGHTING_SQLX: LazyLock<String> = LazyLock::new(|| format!("{} {}", rows::sqlx_insert::<SightingRow<&str>>(), record_sighting_conflict("$4")));
static RECORD_SIGHTING_SQLITE: LazyLock<String> = LazyLock::new(|| format!("{} {}", rows::sqlite_insert::<SightingRow<&str>>(), record_sighting_conflict("?4")));

fn replayed(sighting: &Sighting) -> StorageError {
    StorageError::Replayed(format!("signed request {} of tenant {} was seen before", sighting.signature, sighting.tenant))
}

/// Writes `records` on a connection inside the change's transaction (sqlx:
/// plain write transactions, and PostgreSQL ledger batches).
pub(crate) async fn write(conn: &mut sqlx::AnyConnection, records: &ChangeRecords, now_ms: i64) -> Result<()> {
    for sighting in &records.sightings {
        let mut arguments = SightingRow::from(sighting).sqlx_arguments()?;
        rows::add_argument(&mut arguments, &now_ms)?;
        let done = sqlx::query_with(&RECORD_SIGHTING_SQLX, arguments).execute(&mut *conn).await?;
        if done.rows_affected() != 1 {
            return Err(replayed(sighting));
        }
    }
    Ok(())
}

/// Writes `records` on the ledger's own SQLite connection, inside its batch.
pub(crate) fn write_sqlite(conn: &rusqlite::Connection, records: &ChangeRecords, now_ms: i64) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut record = conn.prepare_cached(&RECORD_SIGHTING_SQLITE).map_err(crate::ledger::sqlite::storage_error)?;
    for sighting in &records.sightings {
        let first = rows::sqlite_bind(&mut record, &SightingRow::from(sighting), &[&now_ms]).and_then(|()| record.raw_execute()).map_err(crate::ledger::sqlite::storage_error)? == 1;
        if !first {
            return Err(replayed(sighting));
        }
    }
    Ok(())
}
