//! The ledger batch on SQLite: synchronous, on the ledger worker's own thread.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every statement
//! is a hand-off between threads; on a busy machine each hand-off waits for a
//! time slice, and the batch path is serial. So the ledger writes through a
//! connection of its own (rusqlite, the same SQLite library) that lives on the
//! ledger worker's thread: a batch is a handful of calls into SQLite with no
//! hand-off at all, each statement prepared once and cached.
//!
//! This connection and the sqlx write pool take turns through one fair gate
//! (`Store::write_gate`), so a busy ledger cannot starve other writes in the
//! process. Other processes on the same file are kept out by `BEGIN
//! IMMEDIATE` and wait in SQLite's busy handler.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use subledger_domain::ids::{AccountId, TenantId, TransferId, WalletId};
use subledger_domain::ledger::WalletState;
use subledger_domain::money::Currency;
use subledger_domain::usage::AccountTerms;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::close::{Chunk, CloseReads, CloseWrites, MonthRow, SettlementWallets};
use super::usage::{UsageKeys, UsageReads, UsageWrites};
use super::{BatchKeys, BatchReads, LedgerWrites, StoredHold, StoredTransfer};
use crate::error::{DatabaseFailure, classify};
use crate::rows::{
    self, BillLineRow, BillRow, ChunkWindowKey, EntryKey, EntryRow, HoldIdKey, HoldKey, HoldResolutionRow, HoldRow, MonthCloseRow, MonthClosingRow, MonthKey, PreviousBilledRow, ProductTotalRow,
    QuotaKey, QuotaRow, Row, SettlementRow, SightingRow, SqliteDecode, SubscriptionRow, TenantMonthKey, TimeCardRow, TransferKey, TransferRow, UsageAccountRow, UsageDayRow, UsageEventKey,
    UsageEventRow, UsageMonthRow, WalletRow, WalletUpdate,
};
use crate::{Backend, Result, StorageError};

/// The ledger's own connection. Not `Send`: it stays on the worker's thread.
#[derive(Clone)]
pub(super) struct Writer {
    conn: Rc<Connection>,
    gate: Arc<Mutex<()>>,
    last_checkpoint: Rc<Cell<Instant>>,
    wal_watch: Option<Arc<crate::WalWatch>>,
}

/// How often the ledger's own connection checkpoints the WAL after a commit.
/// The background checkpoint alone never catches up with a writer that
/// commits back to back (it copies what was there when it started, and the
/// WAL can only start over once everything is copied), so under sustained
/// load the WAL grew by gigabytes and every commit paid for the kernel
/// zeroing new file blocks. A PASSIVE checkpoint here, between batches and
/// with the write gate still held, copies the rest, and the next batch
/// starts the WAL over (measured in `bench/README.md`).
const INLINE_CHECKPOINT_EVERY: Duration = Duration::from_millis(1_000);

/// The same settings as the sqlx pools (see `Store::open_sqlite`), but for a
/// smaller page cache: the batch touches few pages, and SQLite scans its
/// cache's hash table at every commit.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL;
     PRAGMA synchronous = FULL;
     PRAGMA foreign_keys = ON;
     PRAGMA busy_timeout = 10000;
     PRAGMA cache_size = -4000;
     PRAGMA temp_store = MEMORY;
     PRAGMA wal_autocheckpoint = 0;
     PRAGMA journal_size_limit = 67108864;"; // the limit is WAL_FILE_BYTES_MAX in lib.rs

/// Prepared statements kept per connection: the transfer, usage and close
/// paths use a few dozen.
const STATEMENT_CACHE_CAPACITY: usize = 64;

impl Writer {
    pub fn open(path: &Path, gate: Arc<Mutex<()>>, wal_watch: Option<Arc<crate::WalWatch>>) -> Result<Writer> {
        let conn = Connection::open(path).map_err(storage_error)?;
        conn.execute_batch(PRAGMAS).map_err(storage_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        Ok(Writer { conn: Rc::new(conn), gate, last_checkpoint: Rc::new(Cell::new(Instant::now())), wal_watch })
    }
}

/// A batch in progress: the write lock is held until [`finish`] or drop.
pub(super) struct Batch {
    pub(super) conn: Rc<Connection>,
    /// Rolled back on drop while `open`.
    open: bool,
    last_checkpoint: Rc<Cell<Instant>>,
    wal_watch: Option<Arc<crate::WalWatch>>,
    _gate: OwnedMutexGuard<()>,
}

impl Batch {
    /// Commits, then (once a second) checkpoints the WAL while the write gate
    /// is still held, and reports the WAL's size to its watch.
    fn commit(mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(storage_error)?;
        self.open = false;
        if self.last_checkpoint.get().elapsed() >= INLINE_CHECKPOINT_EVERY {
            self.last_checkpoint.set(Instant::now());
            // The batch is committed: a failed checkpoint only leaves the WAL longer.
            if let Err(error) = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(%error, "WAL checkpoint after a ledger batch failed");
            }
        }
        if let Some(watch) = &self.wal_watch {
            watch.after_commit();
        }
        Ok(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A rusqlite failure, classified as the sqlx ones are (`crate::error::classify`).
pub(crate) fn storage_error(error: rusqlite::Error) -> StorageError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &error {
        let message = message.clone().unwrap_or_else(|| failure.to_string());
        if let Some(classified) = classify(&DatabaseFailure { backend: Backend::Sqlite, code: &failure.extended_code.to_string(), constraint: None, message: &message }) {
            return classified;
        }
    }
    StorageError::Failed(error.to_string())
}

/// Takes the write gate and SQLite's write lock.
pub(super) async fn open_batch(writer: &Writer) -> Result<Batch> {
    let gate = writer.gate.clone().lock_owned().await;
    // Waits in SQLite's busy handler if another process is writing.
    writer.conn.execute_batch("BEGIN IMMEDIATE").map_err(storage_error)?;
    Ok(Batch { conn: writer.conn.clone(), open: true, last_checkpoint: writer.last_checkpoint.clone(), wal_watch: writer.wal_watch.clone(), _gate: gate })
}

pub(super) async fn begin(writer: &Writer, wallet_ids: &[i64], keys: &BatchKeys<'_>) -> Result<(Batch, BatchReads)> {
    let batch = open_batch(writer).await?;
    let transfer_keys = keys.transfer_keys.iter().map(|(tenant, key)| TransferKey { tenant_id: tenant.0, idempotency_key: *key });
    let earlier = rows_of::<_, TransferRow<String>>(&batch, &TRANSFER_BY_KEY, transfer_keys)?.into_iter().map(StoredTransfer::try_from).collect::<Result<_>>()?;
    let holds = |rows: Vec<HoldRow<String>>| -> Result<Vec<StoredHold>> { rows.into_iter().map(StoredHold::try_from).collect() };
    let hold_keys = keys.hold_keys.iter().map(|(tenant, key)| HoldKey { tenant_id: tenant.0, idempotency_key: *key });
    let earlier_holds = holds(rows_of(&batch, &HOLD_BY_KEY, hold_keys)?)?;
    let hold_ids = keys.hold_ids.iter().map(|(tenant, id)| HoldIdKey { tenant_id: tenant.0, id: id.0 });
    let named_holds = holds(rows_of(&batch, &HOLD_BY_ID, hold_ids)?)?;
    let reads = BatchReads { wallets: read_wallets(&batch, wallet_ids)?, earlier, earlier_holds, holds: named_holds, transfer_ids: fresh_ids(&batch, keys.ids_needed)? };
    Ok((batch, reads))
}

static WALLET_BY_ID: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM wallets WHERE id = ?1", rows::columns::<WalletRow<String>>(None)));
static TRANSFER_BY_KEY: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM transfers WHERE {}", rows::columns::<TransferRow<String>>(None), rows::sqlite_match::<TransferKey<&str>>(None)));
static ENTRY_BY_KEY: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM entries WHERE {}", rows::columns::<EntryRow>(None), rows::sqlite_match::<EntryKey>(None)));
static HOLD_BY_KEY: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM holds WHERE {}", rows::columns::<HoldRow<String>>(None), rows::sqlite_match::<HoldKey<&str>>(None)));
static HOLD_BY_ID: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM holds WHERE {}", rows::columns::<HoldRow<String>>(None), rows::sqlite_match::<HoldIdKey>(None)));
static INSERT_TRANSFER: LazyLock<String> = LazyLock::new(rows::sqlite_insert::<TransferRow<&str>>);
static INSERT_ENTRY: LazyLock<String> = LazyLock::new(rows::sqlite_insert::<EntryRow>);
static INSERT_HOLD: LazyLock<String> = LazyLock::new(rows::sqlite_insert::<HoldRow<&str>>);
const RESOLVE_HOLD: &str = "UPDATE holds SET state = :state, resolved_at_us = :resolved_at_us, posted_transfer_id = :posted_transfer_id, posted_amount_minor = :posted_amount_minor
  WHERE id = :id AND state = 'pending'";
/// The write lock has been held since the read: the checks of what was read
/// guard against a bug, not against another writer.
const UPDATE_WALLET: &str = "UPDATE wallets SET balance_minor = :balance_minor, entry_seq = :entry_seq, reserved_minor = :reserved_minor
  WHERE id = :id AND entry_seq = :entry_seq_read AND floor_minor IS :floor_minor AND reserved_minor = :reserved_minor_read";
static RECORD_SIGHTING: LazyLock<String> = LazyLock::new(|| format!("{} {}", rows::sqlite_insert::<SightingRow<&str>>(), crate::signed_requests::record_sighting_conflict("?4")));

/// Runs `sql` once per row, with the row's values as its parameters.
fn execute_each<R: Row>(batch: &Batch, sql: &str, rows: impl IntoIterator<Item = R>) -> Result<()> {
    let mut statement = batch.conn.prepare_cached(sql).map_err(storage_error)?;
    for row in rows {
        rows::sqlite_bind(&mut statement, &row, &[]).and_then(|()| statement.raw_execute()).map_err(storage_error)?;
    }
    Ok(())
}

/// Runs `sql` (with `:column` parameters) once per row, each of which must
/// change exactly one row: under the write lock, any other count is a bug.
fn update_each<R: Row>(batch: &Batch, sql: &str, rows: impl IntoIterator<Item = R>, corrupt: impl Fn(&R) -> String) -> Result<()> {
    let mut statement = batch.conn.prepare_cached(sql).map_err(storage_error)?;
    for row in rows {
        if rows::sqlite_bind_named(&mut statement, &row).and_then(|()| statement.raw_execute()).map_err(storage_error)? != 1 {
            return Err(StorageError::corrupt(corrupt(&row)));
        }
    }
    Ok(())
}

/// The rows `sql` returns for each key, with the key's values as its parameters.
fn rows_of<K: Row, T: SqliteDecode>(batch: &Batch, sql: &str, keys: impl IntoIterator<Item = K>) -> Result<Vec<T>> {
    let mut statement = batch.conn.prepare_cached(sql).map_err(storage_error)?;
    let mut found = Vec::new();
    for key in keys {
        rows::sqlite_bind(&mut statement, &key, &[]).map_err(storage_error)?;
        found.extend(rows::sqlite_rows::<T>(&mut statement).map_err(storage_error)?);
    }
    Ok(found)
}

/// The rows `sql` returns, with a key's values bound to its `:column` parameters.
fn rows_named<K: Row, T: SqliteDecode>(batch: &Batch, sql: &str, key: &K) -> Result<Vec<T>> {
    let mut statement = batch.conn.prepare_cached(sql).map_err(storage_error)?;
    rows::sqlite_bind_named(&mut statement, key).map_err(storage_error)?;
    rows::sqlite_rows(&mut statement).map_err(storage_error)
}

pub(super) fn read_wallets(batch: &Batch, wallet_ids: &[i64]) -> Result<Vec<(TenantId, WalletState)>> {
    let mut statement = batch.conn.prepare_cached(&WALLET_BY_ID).map_err(storage_error)?;
    let mut wallets = Vec::with_capacity(wallet_ids.len());
    for id in wallet_ids {
        for row in statement.query_map(params![id], WalletRow::from_sqlite).map_err(storage_error)? {
            wallets.push(row.map_err(storage_error)?.state()?);
        }
    }
    Ok(wallets)
}

/// Under the write lock nobody else inserts transfers or holds (which share
/// the transfers' ids): the ids after the largest are free.
pub(super) fn fresh_ids(batch: &Batch, count: usize) -> Result<Vec<TransferId>> {
    let largest: i64 = batch
        .conn
        .prepare_cached("SELECT MAX(COALESCE((SELECT MAX(id) FROM transfers), 0), COALESCE((SELECT MAX(id) FROM holds), 0))")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(storage_error)?;
    Ok((1..=count as i64).map(|i| TransferId(largest + i)).collect())
}

pub(super) fn entries_at(batch: &Batch, keys: &[EntryKey]) -> Result<Vec<EntryRow>> {
    rows_of(batch, &ENTRY_BY_KEY, keys.iter().cloned())
}

pub(super) fn finish(batch: Batch, writes: &LedgerWrites) -> Result<()> {
    execute_each(&batch, &INSERT_TRANSFER, writes.transfers.iter().map(TransferRow::from))?;
    execute_each(&batch, &INSERT_ENTRY, writes.entries.iter().map(EntryRow::from))?;
    execute_each(&batch, &INSERT_HOLD, writes.holds_opened.iter().map(HoldRow::from))?;
    let resolutions = writes.holds_resolved.iter().map(|(id, state, at_us)| HoldResolutionRow::of(*id, *state, Some(*at_us)));
    update_each(&batch, RESOLVE_HOLD, resolutions, |r| format!("hold {} was no longer pending under the write lock", r.id))?;
    let updates = writes.wallets.iter().map(|(wallet, read)| WalletUpdate::of(wallet, *read));
    update_each(&batch, UPDATE_WALLET, updates, |u| format!("wallet {} changed under the write lock", u.id))?;
    crate::records::write_sqlite(&batch.conn, &writes.records, crate::now_us())?;
    batch.commit()
}

pub(super) async fn record_sightings(writer: &Writer, sightings: &[crate::signed_requests::Sighting], now_ms: i64) -> Result<Vec<bool>> {
    let batch = open_batch(writer).await?;
    let mut first = Vec::with_capacity(sightings.len());
    {
        let mut record = batch.conn.prepare_cached(&RECORD_SIGHTING).map_err(storage_error)?;
        for s in sightings {
            first.push(rows::sqlite_bind(&mut record, &SightingRow::from(s), &[&now_ms]).and_then(|()| record.raw_execute()).map_err(storage_error)? == 1);
        }
    }
    batch.commit()?;
    Ok(first)
}

static USAGE_ACCOUNT: LazyLock<String> =
    LazyLock::new(|| rows::select_from::<UsageAccountRow<String>>(&format!("{} WHERE a.id = :id AND a.tenant_id = :tenant_id", rows::usage_account_select(":currency"))));
static USAGE_EVENT_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM usage_events WHERE {}", rows::columns::<UsageEventRow<String>>(None), rows::sqlite_match::<UsageEventKey<&str>>(None)));
static MONTH_ROWS_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM usage_monthly WHERE {}", rows::columns::<UsageMonthRow<String>>(None), rows::sqlite_match::<MonthKey<&str>>(None)));
static QUOTA_BY_KEY: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM quota_usage WHERE {}", rows::columns::<QuotaRow<String>>(None), rows::sqlite_match::<QuotaKey<&str>>(None)));
static MONTH_CLOSE_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM month_closes WHERE {}", rows::columns::<MonthCloseRow<String>>(None), rows::sqlite_match::<TenantMonthKey<&str>>(None)));

/// The accounts among `accounts` that exist, with their terms and their
/// wallets of the currencies asked for.
fn usage_accounts(batch: &Batch, tenant: TenantId, accounts: &[(AccountId, Currency)]) -> Result<Vec<AccountTerms>> {
    let mut found = Vec::with_capacity(accounts.len());
    for key in super::usage::account_keys(tenant, accounts) {
        found.extend(rows_named::<_, UsageAccountRow<String>>(batch, &USAGE_ACCOUNT, &key)?);
    }
    rows::usage_accounts(found)
}

/// The reads of a usage batch, under the write lock.
pub(super) fn usage_reads(batch: &Batch, keys: &UsageKeys<'_>) -> Result<UsageReads> {
    let tenant_id = keys.tenant.0;
    let accounts = usage_accounts(batch, keys.tenant, keys.accounts)?;
    let wallets = read_wallets(batch, &super::usage::wallets_to_lock(&accounts, keys.revenue))?;
    let earlier = rows_of::<_, UsageEventRow<String>>(batch, &USAGE_EVENT_BY_KEY, keys.event_ids.iter().map(|id| UsageEventKey { tenant_id, event_id: *id }))?;
    let months =
        rows_of::<_, UsageMonthRow<String>>(batch, &MONTH_ROWS_BY_KEY, keys.months.iter().map(|(account, product, month)| MonthKey { account_id: account.0, product_code: *product, month: *month }))?;
    let quota = rows_of::<_, QuotaRow<String>>(batch, &QUOTA_BY_KEY, keys.quota_days.iter().map(|(account, day)| QuotaKey { account_id: account.0, day: *day }))?;
    let month_keys = || keys.month_names.iter().map(|month| TenantMonthKey { tenant_id, month: *month });
    let closed = rows_of::<_, MonthCloseRow<String>>(batch, &MONTH_CLOSE_BY_KEY, month_keys())?;
    let closing = rows_of::<_, MonthClosingRow<String>>(batch, &MONTH_CLOSING_BY_KEY, month_keys())?;
    let cards = rows_of::<_, TimeCardRow<String>>(batch, &USABLE_CARDS, keys.card_holders())?;
    super::usage::reads((wallets, fresh_ids(batch, keys.ids_needed)?), earlier, accounts, months, quota, (closed, closing), cards)
}

/// A holder's cards that may still cover something (`account_id IS` also matches NULL: the shared cards).
static USABLE_CARDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM time_cards WHERE tenant_id = ?1 AND account_id IS ?2 AND state = 'active' AND minutes_left > 0 AND expires_at_us > ?3 ORDER BY id",
        rows::columns::<TimeCardRow<String>>(None)
    )
});
/// Under the write lock the check of what was read guards against a bug, not another writer.
const UPDATE_CARD: &str = "UPDATE time_cards SET minutes_left = :minutes_left, updated_at_us = :updated_at_us WHERE id = :id AND minutes_left = :minutes_left_read";

static INSERT_USAGE_EVENT: LazyLock<String> = LazyLock::new(rows::sqlite_insert::<UsageEventRow<&str>>);
static UPSERT_USAGE_DAY: LazyLock<String> = LazyLock::new(|| format!("{} {}", rows::sqlite_insert::<UsageDayRow<&str>>(), *super::usage::DAY_CONFLICT));
static UPSERT_USAGE_MONTH: LazyLock<String> = LazyLock::new(|| format!("{} {}", rows::sqlite_insert::<UsageMonthRow<&str>>(), *super::usage::MONTH_CONFLICT));
static UPSERT_QUOTA: LazyLock<String> = LazyLock::new(|| format!("{} {}", rows::sqlite_insert::<QuotaRow<&str>>(), super::usage::QUOTA_CONFLICT));

/// The writes of a usage batch, before the charges are posted and committed.
pub(super) fn usage_writes(batch: &Batch, writes: &UsageWrites<'_>) -> Result<()> {
    execute_each(batch, &INSERT_USAGE_EVENT, writes.event_rows())?;
    execute_each(batch, &UPSERT_USAGE_DAY, writes.day_rows())?;
    execute_each(batch, &UPSERT_USAGE_MONTH, writes.month_rows())?;
    execute_each(batch, &UPSERT_QUOTA, writes.quota_rows())?;
    update_each(batch, UPDATE_CARD, writes.card_rows(), |c| format!("time card {} changed under the write lock", c.id))
}

static CLOSE_MONTH_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM usage_monthly WHERE tenant_id = :tenant_id AND month = :month AND {}",
        rows::columns::<UsageMonthRow<String>>(None),
        super::close::in_chunk(":after_account_id", ":through_account_id")
    )
});
static CLOSE_LATE_ROWS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM {}", rows::columns::<UsageMonthRow<String>>(Some("usage_monthly")), super::close::late_groups(":tenant_id", ":month", &CHUNK)));
static CLOSE_PREVIOUS_BILLED: LazyLock<String> = LazyLock::new(|| rows::select_from::<PreviousBilledRow<String>>(&super::close::previous_billed(":tenant_id", ":month", &CHUNK)));
static CLOSE_BILLED: LazyLock<String> = LazyLock::new(|| rows::select_from::<ProductTotalRow<String>>(&super::close::billed_totals(":tenant_id", &CHUNK)));
static CLOSE_CHARGED: LazyLock<String> = LazyLock::new(|| rows::select_from::<ProductTotalRow<String>>(&super::close::charged_totals(":tenant_id", ":month", &CHUNK)));
static CLOSE_SETTLED: LazyLock<String> = LazyLock::new(|| rows::select_from::<ProductTotalRow<String>>(&super::close::settled_totals(":tenant_id", &CHUNK)));
static MONTH_CLOSING_BY_KEY: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM month_closings WHERE {}", rows::columns::<MonthClosingRow<String>>(None), rows::sqlite_match::<TenantMonthKey<&str>>(None)));
/// The tenant's accounts after ?2, in id order, at most ?3.
const NEXT_ACCOUNTS: &str = "SELECT id FROM accounts WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
/// A chunk's accounts, as named parameters of [`ChunkKey`].
static CHUNK: LazyLock<String> = LazyLock::new(|| super::close::in_chunk(":after_account_id", ":through_account_id"));

/// The reads of a chunk of a month close, under the write lock: whether the
/// month is closed, how far its close got, the chunk's accounts (at most
/// `accounts_max` after the last one billed) and what the close needs of them.
pub(super) fn close_reads(batch: &Batch, tenant: TenantId, month: &str, (from_us, until_us): (i64, i64), accounts_max: usize) -> Result<CloseReads> {
    let month_key = TenantMonthKey { tenant_id: tenant.0, month };
    if !rows_of::<_, MonthCloseRow<String>>(batch, &MONTH_CLOSE_BY_KEY, [month_key.clone()])?.is_empty() {
        return Ok(super::close::closed_reads());
    }
    let progress = rows_of::<_, MonthClosingRow<String>>(batch, &MONTH_CLOSING_BY_KEY, [month_key])?.into_iter().next().map(MonthClosingRow::progress);
    let after = progress.map_or(AccountId(0), |p| p.last_account);
    let limit = i64::try_from(accounts_max).unwrap_or(i64::MAX).saturating_add(1);
    let next_ids: Vec<i64> = {
        let mut statement = batch.conn.prepare_cached(NEXT_ACCOUNTS).map_err(storage_error)?;
        statement.query_map(params![tenant.0, after.0, limit], |row| row.get(0)).and_then(|ids| ids.collect()).map_err(storage_error)?
    };
    let chunk = Chunk::of(after, &next_ids, accounts_max);
    let key = chunk.key(tenant, month);
    let totals = |sql: &str| -> Result<super::close::ProductTotals> { Ok(rows_named::<_, ProductTotalRow<String>>(batch, sql, &key)?.into_iter().map(ProductTotalRow::entry).collect()) };
    let month_rows = |sql: &str| -> Result<Vec<MonthRow>> { rows_named::<_, UsageMonthRow<String>>(batch, sql, &key)?.into_iter().map(MonthRow::try_from).collect() };
    Ok(CloseReads {
        already_closed: false,
        progress,
        chunk,
        month_rows: month_rows(&CLOSE_MONTH_ROWS)?,
        late_rows: month_rows(&CLOSE_LATE_ROWS)?,
        previous_billed: rows_named::<_, PreviousBilledRow<String>>(batch, &CLOSE_PREVIOUS_BILLED, &key)?.into_iter().map(PreviousBilledRow::entry).collect(),
        billed: totals(&CLOSE_BILLED)?,
        charged: totals(&CLOSE_CHARGED)?,
        settled: totals(&CLOSE_SETTLED)?,
        subscriptions: {
            let window = ChunkWindowKey { tenant_id: tenant.0, after_account_id: key.after_account_id, through_account_id: key.through_account_id, from_us, until_us };
            rows_named::<_, SubscriptionRow<String>>(batch, &CLOSE_SUBSCRIPTIONS, &window)?.into_iter().map(Into::into).collect()
        },
    })
}

static CLOSE_SUBSCRIPTIONS: LazyLock<String> =
    LazyLock::new(|| crate::subscriptions::in_window(":tenant_id", &super::close::in_chunk(":after_account_id", ":through_account_id"), ":from_us", ":until_us"));

pub(super) fn settlement_wallets(batch: &mut Batch, tenant: TenantId, accounts: &[(AccountId, Currency)], revenue: &[WalletId], ids_needed: usize) -> Result<SettlementWallets> {
    let accounts = usage_accounts(batch, tenant, accounts)?;
    let wallets = read_wallets(batch, &super::usage::wallets_to_lock(&accounts, revenue))?;
    Ok(SettlementWallets { accounts, wallets, transfer_ids: fresh_ids(batch, ids_needed)? })
}

static INSERT_BILL: LazyLock<String> = LazyLock::new(rows::sqlite_insert::<BillRow<&str>>);
static INSERT_BILL_LINE: LazyLock<String> = LazyLock::new(rows::sqlite_insert::<BillLineRow<&str>>);
static INSERT_SETTLEMENT: LazyLock<String> = LazyLock::new(rows::sqlite_insert::<SettlementRow<&str>>);
static INSERT_MONTH_CLOSE: LazyLock<String> = LazyLock::new(rows::sqlite_insert::<MonthCloseRow<&str>>);
static UPSERT_PROGRESS: LazyLock<String> = LazyLock::new(|| format!("{} {}", rows::sqlite_insert::<MonthClosingRow<&str>>(), *super::close::PROGRESS_CONFLICT));
const FORGET_PROGRESS: &str = "DELETE FROM month_closings WHERE tenant_id = :tenant_id AND month = :month";
static CLEAR_LATE: LazyLock<String> = LazyLock::new(|| super::close::clear_late(":tenant_id", ":month", &CHUNK));

/// Runs `sql` once with a key's values bound to its `:column` parameters.
fn execute_named<K: Row>(batch: &Batch, sql: &str, key: &K) -> Result<usize> {
    let mut statement = batch.conn.prepare_cached(sql).map_err(storage_error)?;
    rows::sqlite_bind_named(&mut statement, key).and_then(|()| statement.raw_execute()).map_err(storage_error)
}

pub(super) fn close_writes(batch: &Batch, writes: &CloseWrites<'_>) -> Result<()> {
    execute_each(batch, &INSERT_BILL, writes.bill_rows())?;
    execute_each(batch, &INSERT_BILL_LINE, writes.line_rows())?;
    execute_each(batch, &INSERT_SETTLEMENT, writes.settlement_rows())?;
    execute_named(batch, &CLEAR_LATE, &writes.chunk_key())?;
    execute_each(batch, &UPSERT_PROGRESS, writes.progress_rows())?;
    if let Some(closed) = writes.close_rows() {
        execute_named(batch, FORGET_PROGRESS, &TenantMonthKey { tenant_id: writes.tenant.0, month: writes.month })?;
        execute_each(batch, &INSERT_MONTH_CLOSE, [closed])?;
    }
    Ok(())
}
