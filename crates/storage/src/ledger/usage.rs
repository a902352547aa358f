//! Usage ingestion's storage: one transaction per batch of events, on the
//! ledger writer. It reads what the usage engine needs under the write lock
//! (SQLite) or the wallets' row locks (PostgreSQL), then writes the events,
//! their rollups, the quota counts and the charges, and commits.

use subledger_domain::ids::{AccountId, TenantId, TransferId, WalletId};
use subledger_domain::ledger::WalletState;
use subledger_domain::usage::{Accepted, Outcome, RollupAmounts, UsageRejection};

use super::{BatchInner, BatchTx, LedgerWriter, NewEntry, StoredTransfer, WriterInner, postgres, sqlite};
use crate::{Result, StorageError};

/// What the batch reads, and which wallets it must lock.
pub struct UsageKeys<'a> {
    pub tenant: TenantId,
    pub event_ids: &'a [&'a str],
    pub accounts: &'a [AccountId],
    /// (account, product, month) whose month-to-date rollups matter.
    pub months: &'a [(AccountId, &'a str, &'a str)],
    /// (account, day) whose quota use matters.
    pub quota_days: &'a [(AccountId, &'a str)],
    /// The months of the batch, to learn which are closed.
    pub month_names: &'a [&'a str],
    /// The tenant's revenue wallet (CNY).
    pub revenue: WalletId,
    /// Transfer ids to draw (two per account at most: promo and primary).
    pub ids_needed: usize,
}

/// An account's terms, read under lock.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub id: AccountId,
    pub active: bool,
    pub postpaid: bool,
    pub daily_quota: i64,
    pub primary: WalletId,
    pub promo: WalletId,
}

pub struct UsageReads {
    pub wallets: Vec<(TenantId, WalletState)>,
    pub transfer_ids: Vec<TransferId>,
    pub earlier: Vec<(String, Outcome)>,
    pub accounts: Vec<AccountRow>,
    /// (account, product, month, attr) → amounts.
    pub months: Vec<((AccountId, String, String, String), RollupAmounts)>,
    pub quota: Vec<((AccountId, String), i64)>,
    pub closed_months: Vec<String>,
}

/// An event to store with its outcome.
pub struct NewUsageEvent<'a> {
    pub event_id: &'a str,
    pub account_id: Option<AccountId>,
    pub username: &'a str,
    pub product_code: &'a str,
    pub quantity_milli: i64,
    pub occurred_at_us: i64,
    pub attributes: Option<&'a str>,
    pub outcome: &'a Outcome,
}

/// (account, product, day or month, attr): the key of a rollup row.
pub type RollupKey = (AccountId, String, String, String);

/// The rollup and counter changes of a batch.
pub struct UsageWrites<'a> {
    pub tenant: TenantId,
    pub ingested_at_us: i64,
    pub events: &'a [NewUsageEvent<'a>],
    /// (account, product, day, attr) additions.
    pub days: &'a [(&'a RollupKey, &'a RollupAmounts)],
    /// (account, product, month, attr) additions, and whether the month is closed (late usage).
    pub months: &'a [(&'a RollupKey, &'a RollupAmounts, bool)],
    pub quota: &'a [(&'a (AccountId, String), i64)],
}

/// An event's stored outcome columns: status, rejection, billable, rated, charge.
pub(super) type OutcomeColumns = (&'static str, Option<&'static str>, Option<i64>, Option<i64>, Option<i64>);

pub(super) fn outcome_columns(outcome: &Outcome) -> OutcomeColumns {
    match outcome {
        Outcome::Accepted(a) => ("accepted", None, Some(a.billable.milli()), Some(a.rated_micros), Some(a.charge_cents)),
        Outcome::Rejected(r) => ("rejected", Some(r.as_str()), None, None, None),
    }
}

pub(super) fn outcome_from_columns(event_id: &str, status: &str, rejection: Option<&str>, billable: Option<i64>, rated: Option<i64>, charge: Option<i64>) -> Result<Outcome> {
    let corrupt = || StorageError::corrupt(format!("usage event {event_id}"));
    match status {
        "accepted" => Ok(Outcome::Accepted(Accepted {
            billable: subledger_domain::rating::Quantity::from_milli(billable.ok_or_else(corrupt)?).ok_or_else(corrupt)?,
            rated_micros: rated.ok_or_else(corrupt)?,
            charge_cents: charge.ok_or_else(corrupt)?,
        })),
        "rejected" => Ok(Outcome::Rejected(rejection.and_then(UsageRejection::parse).ok_or_else(corrupt)?)),
        _ => Err(corrupt()),
    }
}

/// Begins a usage batch: locks, then reads everything the engine needs.
pub async fn begin_usage(writer: &LedgerWriter, keys: &UsageKeys<'_>) -> Result<(BatchTx, UsageReads)> {
    match &writer.inner {
        WriterInner::Sqlite(w) => {
            let batch = sqlite::open_batch(w).await?;
            let reads = sqlite::usage_reads(&batch, keys)?;
            Ok((BatchTx { inner: BatchInner::Sqlite(batch) }, reads))
        }
        WriterInner::Postgres(store) => {
            let (batch, reads) = postgres::usage_begin(store, keys).await?;
            Ok((BatchTx { inner: BatchInner::Postgres(batch) }, reads))
        }
    }
}

/// Writes a usage batch (events, rollups, quota counts, then the charges'
/// transfers, entries and balances) and commits it.
pub async fn finish_usage(tx: BatchTx, writes: &UsageWrites<'_>, transfers: &[StoredTransfer], entries: &[NewEntry], wallets: &[(&WalletState, i64)]) -> Result<()> {
    match tx.inner {
        BatchInner::Sqlite(batch) => {
            sqlite::usage_writes(&batch, writes)?;
            sqlite::finish(batch, transfers, entries, wallets)
        }
        BatchInner::Postgres(mut batch) => {
            postgres::usage_writes(&mut batch, writes).await?;
            postgres::finish(batch, transfers, entries, wallets).await
        }
    }
}
