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
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use subledger_domain::ids::{TenantId, TransferId, WalletId};
use subledger_domain::ledger::WalletState;
use subledger_domain::money::Currency;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{BatchReads, NewEntry, StoredTransfer, TRANSFER_COLUMNS, TransferRow, entry_values, transfer_from_row, transfer_values};
use crate::{Result, StorageError};

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

pub(crate) fn storage_error(error: rusqlite::Error) -> StorageError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &error {
        let detail = message.clone().unwrap_or_else(|| failure.to_string());
        match failure.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => return StorageError::Transient(detail),
            // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
            ErrorCode::ConstraintViolation if matches!(failure.extended_code, 2067 | 1555) => return StorageError::UniqueViolation { detail },
            _ => {
                if let Some(refused) = crate::error::RefusedValue::error(&failure.extended_code.to_string(), &detail) {
                    return refused;
                }
            }
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

pub(super) async fn begin(writer: &Writer, wallet_ids: &[i64], keys: &[(TenantId, &str)], ids_needed: usize) -> Result<(Batch, BatchReads)> {
    let batch = open_batch(writer).await?;
    let reads = BatchReads { wallets: read_wallets(&batch, wallet_ids)?, earlier: read_keys(&batch, keys)?, transfer_ids: fresh_ids(&batch, ids_needed)? };
    Ok((batch, reads))
}

pub(super) fn read_wallets(batch: &Batch, wallet_ids: &[i64]) -> Result<Vec<(TenantId, WalletState)>> {
    let mut wallets = Vec::with_capacity(wallet_ids.len());
    let mut select = batch.conn.prepare_cached("SELECT tenant_id, currency, balance_minor, floor_minor, entry_seq FROM wallets WHERE id = ?1").map_err(storage_error)?;
    for id in wallet_ids {
        let row = select
            .query_row(params![id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?, r.get::<_, i64>(4)?)))
            .optional()
            .map_err(storage_error)?;
        if let Some((tenant, currency, balance_minor, floor_minor, entry_seq)) = row {
            let currency = Currency::from_str(&currency).map_err(|e| StorageError::corrupt(e.to_string()))?;
            wallets.push((TenantId(tenant), WalletState { id: WalletId(*id), currency, balance_minor, floor_minor, entry_seq, reserved_minor: 0 }));
        }
    }
    Ok(wallets)
}

fn read_keys(batch: &Batch, keys: &[(TenantId, &str)]) -> Result<Vec<StoredTransfer>> {
    let mut earlier = Vec::new();
    let mut by_key = batch.conn.prepare_cached(&format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE tenant_id = ?1 AND idempotency_key = ?2")).map_err(storage_error)?;
    for (tenant, key) in keys {
        let row: Option<TransferRow> = by_key
            .query_row(params![tenant.0, key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?))
            })
            .optional()
            .map_err(storage_error)?;
        if let Some(row) = row {
            earlier.push(transfer_from_row(row)?);
        }
    }
    Ok(earlier)
}

/// Under the write lock nobody else inserts transfers: the ids after the largest are free.
pub(super) fn fresh_ids(batch: &Batch, count: usize) -> Result<Vec<TransferId>> {
    let largest: i64 = batch.conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM transfers").and_then(|mut s| s.query_row([], |r| r.get(0))).map_err(storage_error)?;
    Ok((1..=count as i64).map(|i| TransferId(largest + i)).collect())
}

pub(super) fn balances_after(batch: &mut Batch, positions: &[(WalletId, i64)]) -> Result<Vec<(TransferId, WalletId, i64)>> {
    let mut select = batch.conn.prepare_cached("SELECT transfer_id, balance_after_minor FROM entries WHERE wallet_id = ?1 AND seq = ?2").map_err(storage_error)?;
    let mut found = Vec::with_capacity(positions.len());
    for (wallet, seq) in positions {
        if let Some((transfer, balance)) = select.query_row(params![wallet.0, seq], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).optional().map_err(storage_error)? {
            found.push((TransferId(transfer), *wallet, balance));
        }
    }
    Ok(found)
}

pub(super) fn finish(batch: Batch, transfers: &[StoredTransfer], entries: &[NewEntry], wallets: &[(&WalletState, i64)]) -> Result<()> {
    let conn = batch.conn.clone();
    {
        let mut insert_transfer =
            conn.prepare_cached(&format!("INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)")).map_err(storage_error)?;
        for t in transfers {
            insert_transfer.execute(transfer_values(t)).map_err(storage_error)?;
        }
        let mut insert_entry = conn
            .prepare_cached("INSERT INTO entries (wallet_id, seq, tenant_id, transfer_id, amount_minor, balance_after_minor, created_at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .map_err(storage_error)?;
        for e in entries {
            insert_entry.execute(entry_values(e)).map_err(storage_error)?;
        }
        // The write lock has been held since the read: the sequence check is
        // a guard against a bug, not against another writer.
        let mut update_wallet = conn.prepare_cached("UPDATE wallets SET balance_minor = ?2, entry_seq = ?3 WHERE id = ?1 AND entry_seq = ?4").map_err(storage_error)?;
        for (w, read_seq) in wallets {
            if update_wallet.execute(params![w.id.0, w.balance_minor, w.entry_seq, read_seq]).map_err(storage_error)? != 1 {
                return Err(StorageError::corrupt(format!("wallet {} changed under the write lock", w.id)));
            }
        }
    }
    batch.commit()
}

pub(super) async fn record_sightings(writer: &Writer, sightings: &[crate::signed_requests::Sighting], now_ms: i64) -> Result<Vec<bool>> {
    let batch = open_batch(writer).await?;
    let mut first = Vec::with_capacity(sightings.len());
    {
        let mut record = batch.conn.prepare_cached(crate::signed_requests::RECORD_SIGHTING).map_err(storage_error)?;
        for s in sightings {
            first.push(record.execute(params![s.tenant.0, s.signature, s.expires_at_ms, now_ms]).map_err(storage_error)? == 1);
        }
    }
    batch.commit()?;
    Ok(first)
}

/// The reads of a usage batch, under the write lock.
pub(super) fn usage_reads(batch: &Batch, keys: &super::usage::UsageKeys<'_>) -> Result<super::usage::UsageReads> {
    use subledger_domain::ids::AccountId;
    use subledger_domain::usage::RollupAmounts;

    let conn = &batch.conn;
    let mut accounts = Vec::with_capacity(keys.accounts.len());
    let mut select_account = conn
        .prepare_cached(
            "SELECT a.status, a.billing_mode, a.daily_quota,
                    (SELECT id FROM wallets WHERE account_id = a.id AND purpose = 'primary' AND currency = 'CNY'),
                    (SELECT id FROM wallets WHERE account_id = a.id AND purpose = 'promo' AND currency = 'CNY')
             FROM accounts a WHERE a.id = ?1 AND a.tenant_id = ?2",
        )
        .map_err(storage_error)?;
    for account in keys.accounts {
        let row = select_account
            .query_row(params![account.0, keys.tenant.0], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?, r.get::<_, Option<i64>>(4)?)))
            .optional()
            .map_err(storage_error)?;
        if let Some((status, mode, quota, Some(primary), Some(promo))) = row {
            accounts.push(super::usage::AccountRow { id: *account, active: status == 1, postpaid: mode == "postpaid", daily_quota: quota, primary: WalletId(primary), promo: WalletId(promo) });
        }
    }
    let mut wallet_ids: Vec<i64> = accounts.iter().flat_map(|a| [a.primary.0, a.promo.0]).chain([keys.revenue.0]).collect();
    wallet_ids.sort_unstable();
    wallet_ids.dedup();
    let wallets = read_wallets(batch, &wallet_ids)?;

    let mut earlier = Vec::new();
    let mut select_event =
        conn.prepare_cached("SELECT status, rejection, billable_milli, rated_micros, charge_cents FROM usage_events WHERE tenant_id = ?1 AND event_id = ?2").map_err(storage_error)?;
    for id in keys.event_ids {
        let row = select_event
            .query_row(params![keys.tenant.0, id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<i64>>(2)?, r.get::<_, Option<i64>>(3)?, r.get::<_, Option<i64>>(4)?))
            })
            .optional()
            .map_err(storage_error)?;
        if let Some((status, rejection, billable, rated, charge)) = row {
            earlier.push(((*id).to_owned(), super::usage::outcome_from_columns(id, &status, rejection.as_deref(), billable, rated, charge)?));
        }
    }

    let mut months = Vec::new();
    let mut select_month = conn
        .prepare_cached("SELECT attr, quantity_milli, billable_milli, events, rated_micros, charged_cents FROM usage_monthly WHERE account_id = ?1 AND product_code = ?2 AND month = ?3")
        .map_err(storage_error)?;
    for (account, product, month) in keys.months {
        let rows = select_month
            .query_map(params![account.0, product, month], |r| {
                Ok((r.get::<_, String>(0)?, RollupAmounts { quantity_milli: r.get(1)?, billable_milli: r.get(2)?, events: r.get(3)?, rated_micros: r.get(4)?, charged_cents: r.get(5)? }))
            })
            .map_err(storage_error)?;
        for row in rows {
            let (attr, amounts) = row.map_err(storage_error)?;
            months.push(((*account, (*product).to_owned(), (*month).to_owned(), attr), amounts));
        }
    }

    let mut quota = Vec::new();
    let mut select_quota = conn.prepare_cached("SELECT used FROM quota_usage WHERE account_id = ?1 AND day = ?2").map_err(storage_error)?;
    for (account, day) in keys.quota_days {
        if let Some(used) = select_quota.query_row(params![account.0, day], |r| r.get::<_, i64>(0)).optional().map_err(storage_error)? {
            quota.push(((AccountId(account.0), (*day).to_owned()), used));
        }
    }

    let mut closed_months = Vec::new();
    let mut select_closed = conn.prepare_cached("SELECT 1 FROM month_closes WHERE tenant_id = ?1 AND month = ?2").map_err(storage_error)?;
    for month in keys.month_names {
        if select_closed.query_row(params![keys.tenant.0, month], |_| Ok(())).optional().map_err(storage_error)?.is_some() {
            closed_months.push((*month).to_owned());
        }
    }

    Ok(super::usage::UsageReads { wallets, transfer_ids: fresh_ids(batch, keys.ids_needed)?, earlier, accounts, months, quota, closed_months })
}

/// The writes of a usage batch, before the charges are posted and committed.
pub(super) fn usage_writes(batch: &Batch, writes: &super::usage::UsageWrites<'_>) -> Result<()> {
    let conn = &batch.conn;
    let tenant = writes.tenant.0;
    let mut insert_event = conn
        .prepare_cached(
            "INSERT INTO usage_events (tenant_id, event_id, account_id, username, product_code, quantity_milli, occurred_at_us, attributes,
                                       status, rejection, billable_milli, rated_micros, charge_cents, ingested_at_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .map_err(storage_error)?;
    for e in writes.events {
        let (status, rejection, billable, rated, charge) = super::usage::outcome_columns(e.outcome);
        insert_event
            .execute(params![
                tenant,
                e.event_id,
                e.account_id.map(|a| a.0),
                e.username,
                e.product_code,
                e.quantity_milli,
                e.occurred_at_us,
                e.attributes,
                status,
                rejection,
                billable,
                rated,
                charge,
                writes.ingested_at_us
            ])
            .map_err(storage_error)?;
    }
    let mut upsert_day = conn
        .prepare_cached(
            "INSERT INTO usage_daily (tenant_id, account_id, product_code, day, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (account_id, product_code, day, attr) DO UPDATE SET
               quantity_milli = quantity_milli + excluded.quantity_milli, billable_milli = billable_milli + excluded.billable_milli,
               events = events + excluded.events, rated_micros = rated_micros + excluded.rated_micros, charged_cents = charged_cents + excluded.charged_cents",
        )
        .map_err(storage_error)?;
    for ((account, product, day, attr), a) in writes.days {
        upsert_day.execute(params![tenant, account.0, product, day, attr, a.quantity_milli, a.billable_milli, a.events, a.rated_micros, a.charged_cents]).map_err(storage_error)?;
    }
    let mut upsert_month = conn
        .prepare_cached(
            "INSERT INTO usage_monthly (tenant_id, account_id, product_code, month, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents, late)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (account_id, product_code, month, attr) DO UPDATE SET
               quantity_milli = quantity_milli + excluded.quantity_milli, billable_milli = billable_milli + excluded.billable_milli,
               events = events + excluded.events, rated_micros = rated_micros + excluded.rated_micros, charged_cents = charged_cents + excluded.charged_cents,
               late = MAX(late, excluded.late)",
        )
        .map_err(storage_error)?;
    for ((account, product, month, attr), a, late) in writes.months {
        upsert_month
            .execute(params![tenant, account.0, product, month, attr, a.quantity_milli, a.billable_milli, a.events, a.rated_micros, a.charged_cents, i64::from(*late)])
            .map_err(storage_error)?;
    }
    let mut upsert_quota = conn
        .prepare_cached("INSERT INTO quota_usage (account_id, day, tenant_id, used) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id, day) DO UPDATE SET used = used + excluded.used")
        .map_err(storage_error)?;
    for ((account, day), used) in writes.quota {
        upsert_quota.execute(params![account.0, day, tenant, used]).map_err(storage_error)?;
    }
    Ok(())
}

fn month_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<super::close::MonthRow> {
    use subledger_domain::ids::AccountId;
    use subledger_domain::usage::RollupAmounts;
    Ok(super::close::MonthRow {
        account: AccountId(r.get(0)?),
        product: r.get(1)?,
        month: r.get(2)?,
        attr: r.get(3)?,
        amounts: RollupAmounts { quantity_milli: r.get(4)?, billable_milli: r.get(5)?, events: r.get(6)?, rated_micros: r.get(7)?, charged_cents: r.get(8)? },
    })
}

fn product_totals(batch: &Batch, sql: &str, params: impl rusqlite::Params) -> Result<super::close::ProductTotals> {
    use subledger_domain::ids::AccountId;
    let mut statement = batch.conn.prepare_cached(sql).map_err(storage_error)?;
    let rows = statement.query_map(params, |r| Ok(((AccountId(r.get(0)?), r.get::<_, String>(1)?), r.get::<_, i64>(2)?))).map_err(storage_error)?;
    rows.collect::<rusqlite::Result<_>>().map_err(storage_error)
}

/// The reads of a month close, under the write lock.
pub(super) fn close_reads(batch: &Batch, tenant: TenantId, month: &str) -> Result<super::close::CloseReads> {
    use subledger_domain::ids::AccountId;
    let conn = &batch.conn;
    let already_closed = conn
        .prepare_cached("SELECT 1 FROM month_closes WHERE tenant_id = ?1 AND month = ?2")
        .and_then(|mut s| s.query_row(params![tenant.0, month], |_| Ok(())).optional())
        .map_err(storage_error)?
        .is_some();
    const ROW_COLUMNS: &str = "SELECT account_id, product_code, month, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents";
    let month_rows = conn
        .prepare_cached(&format!("{ROW_COLUMNS} FROM usage_monthly WHERE tenant_id = ?1 AND month = ?2"))
        .and_then(|mut s| s.query_map(params![tenant.0, month], month_row)?.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(storage_error)?;
    let late_rows = conn
        .prepare_cached(&format!("{ROW_COLUMNS} FROM {}", super::close::late_groups("?1", "?2")))
        .and_then(|mut s| s.query_map(params![tenant.0, month], month_row)?.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(storage_error)?;
    let previous_billed = conn
        .prepare_cached(&super::close::previous_billed("?1", "?2", "TRUE"))
        .and_then(|mut s| {
            s.query_map(params![tenant.0, month], |r| Ok(((AccountId(r.get(0)?), r.get::<_, String>(1)?, r.get::<_, String>(2)?), (r.get::<_, i64>(3)?, r.get::<_, i64>(4)?))))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(storage_error)?;
    Ok(super::close::CloseReads {
        already_closed,
        month_rows,
        late_rows,
        previous_billed,
        billed: product_totals(batch, "SELECT account_id, product_code, SUM(money_cents) FROM bill_lines WHERE tenant_id = ?1 GROUP BY account_id, product_code", params![tenant.0])?,
        charged: product_totals(
            batch,
            &format!("SELECT account_id, product_code, SUM(charged_cents) FROM usage_monthly WHERE tenant_id = ?1 AND {} GROUP BY account_id, product_code", super::close::billed_months("?1", "?2")),
            params![tenant.0, month],
        )?,
        settled: product_totals(
            batch,
            "SELECT account_id, product_code, SUM(amount_cents) FROM settlements WHERE tenant_id = ?1 AND status = 'posted' GROUP BY account_id, product_code",
            params![tenant.0],
        )?,
    })
}

pub(super) fn settlement_wallets(batch: &mut Batch, tenant: TenantId, accounts: &[subledger_domain::ids::AccountId], revenue: WalletId, ids_needed: usize) -> Result<super::close::SettlementWallets> {
    let mut found = Vec::with_capacity(accounts.len());
    {
        let mut select = batch
            .conn
            .prepare_cached(
                "SELECT (SELECT id FROM wallets WHERE account_id = a.id AND purpose = 'primary' AND currency = 'CNY'),
                        (SELECT id FROM wallets WHERE account_id = a.id AND purpose = 'promo' AND currency = 'CNY')
                 FROM accounts a WHERE a.id = ?1 AND a.tenant_id = ?2",
            )
            .map_err(storage_error)?;
        for account in accounts {
            let row = select.query_row(params![account.0, tenant.0], |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?))).optional().map_err(storage_error)?;
            if let Some((Some(primary), Some(promo))) = row {
                found.push((*account, WalletId(primary), WalletId(promo)));
            }
        }
    }
    let mut ids: Vec<i64> = found.iter().flat_map(|(_, p, q)| [p.0, q.0]).chain([revenue.0]).collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(super::close::SettlementWallets { wallets: read_wallets(batch, &ids)?, transfer_ids: fresh_ids(batch, ids_needed)?, accounts: found })
}

pub(super) fn close_writes(batch: &Batch, writes: &super::close::CloseWrites<'_>) -> Result<()> {
    let conn = &batch.conn;
    let tenant = writes.tenant.0;
    let mut insert_bill = conn.prepare_cached("INSERT INTO bills (tenant_id, account_id, month, total_cents, created_at_us) VALUES (?1, ?2, ?3, ?4, ?5)").map_err(storage_error)?;
    for (account, total) in writes.bills {
        insert_bill.execute(params![tenant, account.0, writes.month, total, writes.now_us]).map_err(storage_error)?;
    }
    let mut insert_line = conn
        .prepare_cached(
            "INSERT INTO bill_lines (tenant_id, account_id, month, line_no, kind, for_month, product_code, order_type, description, unit,
                                     quantity_milli, money_cents, previous_quantity_milli, previous_money_cents, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )
        .map_err(storage_error)?;
    for l in writes.lines {
        insert_line
            .execute(params![
                tenant,
                l.account.0,
                writes.month,
                l.line_no,
                l.kind,
                l.for_month,
                l.product_code,
                l.order_type,
                l.description,
                l.unit,
                l.quantity_milli,
                l.money_cents,
                l.previous.map(|p| p.0),
                l.previous.map(|p| p.1),
                l.detail
            ])
            .map_err(storage_error)?;
    }
    let mut insert_settlement = conn
        .prepare_cached(
            "INSERT INTO settlements (tenant_id, account_id, product_code, month, order_type, amount_cents, status, transfer_id, created_at_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(storage_error)?;
    for s in writes.settlements {
        let status = if s.transfer_id.is_some() { "posted" } else { "outstanding" };
        insert_settlement
            .execute(params![tenant, s.account.0, s.product_code, writes.month, s.order_type, s.amount_cents, status, s.transfer_id.map(|t| t.0), writes.now_us])
            .map_err(storage_error)?;
    }
    conn.prepare_cached("UPDATE usage_monthly SET late = 0 WHERE tenant_id = ?1 AND late = 1 AND month < ?2").and_then(|mut s| s.execute(params![tenant, writes.month])).map_err(storage_error)?;
    conn.prepare_cached("INSERT INTO month_closes (tenant_id, month, closed_at_us, accounts) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut s| s.execute(params![tenant, writes.month, writes.now_us, writes.bills.len() as i64]))
        .map_err(storage_error)?;
    Ok(())
}
