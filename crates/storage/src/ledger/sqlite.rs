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

use std::path::Path;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;

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
}

/// The same settings as the sqlx pools (see `Store::open_sqlite`), but for a
/// smaller page cache: the batch touches few pages, and SQLite scans its
/// cache's hash table at every commit.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL;
     PRAGMA synchronous = FULL;
     PRAGMA foreign_keys = ON;
     PRAGMA busy_timeout = 10000;
     PRAGMA cache_size = -4000;
     PRAGMA temp_store = MEMORY;
     PRAGMA wal_autocheckpoint = 0;";

/// Prepared statements kept per connection: the batch path uses eight.
const STATEMENT_CACHE_CAPACITY: usize = 16;

impl Writer {
    pub fn open(path: &Path, gate: Arc<Mutex<()>>) -> Result<Writer> {
        let conn = Connection::open(path).map_err(storage_error)?;
        conn.execute_batch(PRAGMAS).map_err(storage_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        Ok(Writer { conn: Rc::new(conn), gate })
    }
}

/// A batch in progress: the write lock is held until [`finish`] or drop.
pub(super) struct Batch {
    conn: Rc<Connection>,
    /// Rolled back on drop while `open`.
    open: bool,
    _gate: OwnedMutexGuard<()>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn storage_error(error: rusqlite::Error) -> StorageError {
    if let rusqlite::Error::SqliteFailure(failure, message) = &error {
        let detail = message.clone().unwrap_or_else(|| failure.to_string());
        match failure.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => return StorageError::Transient(detail),
            // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY.
            ErrorCode::ConstraintViolation if matches!(failure.extended_code, 2067 | 1555) => return StorageError::UniqueViolation { detail },
            _ => {}
        }
    }
    StorageError::Failed(error.to_string())
}

pub(super) async fn begin(writer: &Writer, wallet_ids: &[i64], keys: &[(TenantId, &str)], ids_needed: usize) -> Result<(Batch, BatchReads)> {
    let gate = writer.gate.clone().lock_owned().await;
    let conn = &writer.conn;
    // Waits in SQLite's busy handler if another process is writing.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(storage_error)?;
    let batch = Batch { conn: conn.clone(), open: true, _gate: gate };

    let mut wallets = Vec::with_capacity(wallet_ids.len());
    let mut select = conn.prepare_cached("SELECT tenant_id, currency, balance_minor, floor_minor, entry_seq FROM wallets WHERE id = ?1").map_err(storage_error)?;
    for id in wallet_ids {
        let row = select
            .query_row(params![id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?, r.get::<_, i64>(4)?)))
            .optional()
            .map_err(storage_error)?;
        if let Some((tenant, currency, balance_minor, floor_minor, entry_seq)) = row {
            let currency = Currency::from_str(&currency).map_err(|e| StorageError::corrupt(e.to_string()))?;
            wallets.push((TenantId(tenant), WalletState { id: WalletId(*id), currency, balance_minor, floor_minor, entry_seq }));
        }
    }

    let mut earlier = Vec::new();
    let mut by_key = conn.prepare_cached(&format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE tenant_id = ?1 AND idempotency_key = ?2")).map_err(storage_error)?;
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

    // Under the write lock nobody else inserts transfers: the ids after the largest are free.
    let largest: i64 = conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM transfers").and_then(|mut s| s.query_row([], |r| r.get(0))).map_err(storage_error)?;
    let transfer_ids = (1..=ids_needed as i64).map(|i| TransferId(largest + i)).collect();
    Ok((batch, BatchReads { wallets, earlier, transfer_ids }))
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

pub(super) fn finish(mut batch: Batch, transfers: &[StoredTransfer], entries: &[NewEntry], wallets: &[(&WalletState, i64)]) -> Result<()> {
    let conn = batch.conn.clone();
    {
        let mut insert_transfer = conn
            .prepare_cached(&format!("INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"))
            .map_err(storage_error)?;
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
    conn.execute_batch("COMMIT").map_err(storage_error)?;
    batch.open = false;
    Ok(())
}
