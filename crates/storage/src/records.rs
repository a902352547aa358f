//! Records that commit with a change, in the change's own transaction,
//! whichever job performs it (a plain write transaction, a ledger batch on
//! either backend, a usage batch): a change and its records are durable
//! together or not at all.
//!
//! Two kinds: the replay guard of a signed request (a SendCloud call that
//! mutates is recorded as seen only if its change commits, so a failed change
//! can be sent again), and the change's entry in the operation log. Every
//! job calls [`write`] or [`write_sqlite`]; PostgreSQL ledger batches write
//! the operations inside their one write statement instead
//! (`ledger::postgres`), so that a batch without sightings stays a single
//! round trip.

use std::sync::LazyLock;

use subledger_domain::ids::TenantId;
use subledger_domain::oplog::{Actor, Operation, Outcome};

use crate::rows::{self, OperationRow, Row as _, SightingRow};
use crate::signed_requests::{Sighting, record_sighting_conflict};
use crate::{Result, StorageError};

/// What must be written with a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeRecords {
    /// Signed requests to record as seen: each must be the first sighting,
    /// or the change is refused as a replay ([`StorageError::Replayed`]).
    pub sightings: Vec<Sighting>,
    /// Entries of the operation log.
    pub operations: Vec<OperationRecord>,
    /// Ad accounts' cap and spend as the change's transfers fund them.
    pub ad_money: Vec<AdMoneyRecord>,
}

/// An ad account's cap and spend, written with the transfer that funds them
/// (`ad_accounts`), so that the ledger and the account never disagree, even
/// after a crash. With `expected`, the account must still have the cap and
/// spend the change was computed from, or the change is refused
/// ([`StorageError::Stale`]): two processes syncing one account cannot both
/// move its spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdMoneyRecord {
    pub tenant: TenantId,
    pub account_id: String,
    /// (spend cap, amount spent) as read, in cents.
    pub expected: Option<(i64, i64)>,
    pub spend_cap_cents: i64,
    /// `None` keeps the amount spent as it is.
    pub amount_spent_cents: Option<i64>,
    /// Added to the account's lifetime spend.
    pub total_spent_delta_cents: i64,
}

const UPDATE_AD_MONEY: &str = "UPDATE ad_accounts SET spend_cap_cents = $3, amount_spent_cents = COALESCE(CAST($4 AS BIGINT), amount_spent_cents),
     total_spent_cents = total_spent_cents + $5
     WHERE tenant_id = $1 AND id = $2 AND (CAST($6 AS BIGINT) IS NULL OR (spend_cap_cents = $6 AND amount_spent_cents = $7))";
const UPDATE_AD_MONEY_SQLITE: &str = "UPDATE ad_accounts SET spend_cap_cents = ?3, amount_spent_cents = COALESCE(?4, amount_spent_cents),
     total_spent_cents = total_spent_cents + ?5
     WHERE tenant_id = ?1 AND id = ?2 AND (?6 IS NULL OR (spend_cap_cents = ?6 AND amount_spent_cents = ?7))";

fn stale(record: &AdMoneyRecord) -> StorageError {
    StorageError::Stale(format!("ad account {} of tenant {} changed since it was read", record.account_id, record.tenant))
}

/// Writes the ad accounts' money of `records` (sqlx).
pub(crate) async fn write_ad_money(conn: &mut sqlx::AnyConnection, records: &ChangeRecords) -> Result<()> {
    for record in &records.ad_money {
        let (expected_cap, expected_spent) = record.expected.unzip();
        let done = sqlx::query(UPDATE_AD_MONEY)
            .bind(record.tenant.0)
            .bind(&record.account_id)
            .bind(record.spend_cap_cents)
            .bind(record.amount_spent_cents)
            .bind(record.total_spent_delta_cents)
            .bind(expected_cap)
            .bind(expected_spent)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() != 1 {
            return Err(stale(record));
        }
    }
    Ok(())
}

impl ChangeRecords {
    pub fn is_empty(&self) -> bool {
        self.sightings.is_empty() && self.operations.is_empty() && self.ad_money.is_empty()
    }

    /// Whether the records need a transaction around the batch's write
    /// statement (each must be checked as written), rather than riding in it.
    pub fn need_transaction(&self) -> bool {
        !self.sightings.is_empty() || !self.ad_money.is_empty()
    }

    /// Adds another change's records: a batch commits the records of all its changes.
    pub fn extend(&mut self, other: ChangeRecords) {
        self.sightings.extend(other.sightings);
        self.operations.extend(other.operations);
        self.ad_money.extend(other.ad_money);
    }

    /// Marks the change's operations as refused (a refusal that was itself
    /// stored, such as a transfer refused under an idempotency key).
    pub fn refused(mut self, reason: &str) -> ChangeRecords {
        for operation in &mut self.operations {
            operation.outcome = Outcome::Refused(reason.to_owned());
        }
        // No money moved, so no account's money changes.
        self.ad_money.clear();
        self
    }
}

/// One entry of the operation log, as a change hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRecord {
    pub tenant: TenantId,
    pub actor: Actor,
    pub operation: Operation,
    pub outcome: Outcome,
}

impl OperationRecord {
    pub(crate) fn row(&self, at_us: i64) -> OperationRow<&str> {
        OperationRow {
            tenant_id: self.tenant.0,
            at_us,
            actor_kind: self.actor.kind(),
            actor_account_id: self.actor.account().map(|a| a.0),
            actor_name: self.actor.username(),
            kind: self.operation.kind.code(),
            subject: &self.operation.subject,
            detail: &self.operation.detail,
            outcome: self.outcome.as_stored(),
        }
    }
}

/// The rows of `operations`, stamped `at_us`.
pub(crate) fn operation_rows(records: &ChangeRecords, at_us: i64) -> Vec<OperationRow<&str>> {
    records.operations.iter().map(|record| record.row(at_us)).collect()
}

static RECORD_SIGHTING_SQLX: LazyLock<String> = LazyLock::new(|| format!("{} {}", rows::sqlx_insert::<SightingRow<&str>>(), record_sighting_conflict("$4")));
static INSERT_OPERATION_SQLX: LazyLock<String> = LazyLock::new(rows::sqlx_insert::<OperationRow<&str>>);
static INSERT_OPERATION_SQLITE: LazyLock<String> = LazyLock::new(rows::sqlite_insert::<OperationRow<&str>>);
static RECORD_SIGHTING_SQLITE: LazyLock<String> = LazyLock::new(|| format!("{} {}", rows::sqlite_insert::<SightingRow<&str>>(), record_sighting_conflict("?4")));

fn replayed(sighting: &Sighting) -> StorageError {
    StorageError::Replayed(format!("signed request {} of tenant {} was seen before", sighting.signature, sighting.tenant))
}

/// Writes `records` on a connection inside the change's transaction (sqlx:
/// plain write transactions).
pub(crate) async fn write(conn: &mut sqlx::AnyConnection, records: &ChangeRecords, now_us: i64) -> Result<()> {
    write_sightings(conn, records, now_us / 1000).await?;
    write_ad_money(conn, records).await?;
    for row in operation_rows(records, now_us) {
        sqlx::query_with(&INSERT_OPERATION_SQLX, row.sqlx_arguments()?).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Records the sightings alone (PostgreSQL ledger batches, which write
/// their operations with their rows).
pub(crate) async fn write_sightings(conn: &mut sqlx::AnyConnection, records: &ChangeRecords, now_ms: i64) -> Result<()> {
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
pub(crate) fn write_sqlite(conn: &rusqlite::Connection, records: &ChangeRecords, now_us: i64) -> Result<()> {
    if !records.operations.is_empty() {
        let mut insert = conn.prepare_cached(&INSERT_OPERATION_SQLITE).map_err(crate::ledger::sqlite::storage_error)?;
        for row in operation_rows(records, now_us) {
            rows::sqlite_bind(&mut insert, &row, &[]).and_then(|()| insert.raw_execute()).map_err(crate::ledger::sqlite::storage_error)?;
        }
    }
    if !records.ad_money.is_empty() {
        let mut update = conn.prepare_cached(UPDATE_AD_MONEY_SQLITE).map_err(crate::ledger::sqlite::storage_error)?;
        for record in &records.ad_money {
            let (expected_cap, expected_spent) = record.expected.unzip();
            let changed = update
                .execute(rusqlite::params![record.tenant.0, record.account_id, record.spend_cap_cents, record.amount_spent_cents, record.total_spent_delta_cents, expected_cap, expected_spent])
                .map_err(crate::ledger::sqlite::storage_error)?;
            if changed != 1 {
                return Err(stale(record));
            }
        }
    }
    if records.sightings.is_empty() {
        return Ok(());
    }
    let now_ms = now_us / 1000;
    let mut record = conn.prepare_cached(&RECORD_SIGHTING_SQLITE).map_err(crate::ledger::sqlite::storage_error)?;
    for sighting in &records.sightings {
        let first = rows::sqlite_bind(&mut record, &SightingRow::from(sighting), &[&now_ms]).and_then(|()| record.raw_execute()).map_err(crate::ledger::sqlite::storage_error)? == 1;
        if !first {
            return Err(replayed(sighting));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_change_moves_no_ad_money() {
        let money = AdMoneyRecord { tenant: TenantId(1), account_id: "1".to_owned(), expected: None, spend_cap_cents: 5, amount_spent_cents: None, total_spent_delta_cents: 0 };
        let records = ChangeRecords { ad_money: vec![money], ..ChangeRecords::default() };
        assert!(records.need_transaction());
        let refused = records.refused("insufficient_funds");
        assert!(refused.ad_money.is_empty(), "the account keeps its cap when the money did not move");
    }
}
