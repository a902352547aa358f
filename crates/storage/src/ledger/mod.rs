//! The ledger's tables: transfers (one row per request, posted or rejected)
//! and entries (two rows per posted transfer, with the balance after each).
//!
//! A ledger batch goes [`begin_batch`] → ([`balances_after`]) →
//! [`finish_batch`]; each backend does it its own way (see `postgres` and
//! `sqlite`), behind the same functions. The batch logic itself (which
//! transfer posts, which replays) is the service layer's; storage only reads
//! under lock and writes what it is given.

pub mod close;
mod postgres;
pub(crate) mod sqlite;
pub mod usage;

use std::collections::HashSet;
use std::sync::LazyLock;

use subledger_domain::ids::{TenantId, TransferId, WalletId};
use subledger_domain::ledger::{TransferKind, TransferRejection, WalletState};
use subledger_domain::money::Currency;

use crate::rows::{EntryKey, TransferRow, columns};
use crate::signed_requests::Sighting;
use crate::{Backend, Result, StorageError, Store};

/// How a batch protects the wallets it read until it writes them. Only
/// PostgreSQL has a choice; SQLite takes its single write lock first, always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    /// Read without locks and outside a transaction, then write in one
    /// statement (its own transaction) that updates each wallet only if its
    /// `entry_seq` is still the one read, and fails with a serialization
    /// error otherwise. Two round trips; the usual case.
    Optimistic,
    /// `BEGIN`, lock the wallets `FOR UPDATE`, read, write, `COMMIT`. For a
    /// batch that lost an optimistic race: under contention it waits instead
    /// of failing again.
    Pessimistic,
}

/// The ledger worker's handle on the database. On SQLite it owns a
/// connection that must stay on the worker's thread (it is not `Send`).
#[derive(Clone)]
pub struct LedgerWriter {
    inner: WriterInner,
}

#[derive(Clone)]
enum WriterInner {
    Sqlite(sqlite::Writer),
    Postgres(Store),
}

impl LedgerWriter {
    /// Opens the writer on the thread that will use it.
    pub fn open(store: &Store) -> Result<LedgerWriter> {
        let inner = match store.backend() {
            Backend::Sqlite => {
                let path = store.sqlite_path().ok_or_else(|| StorageError::Config("the SQLite store has no file path".to_owned()))?;
                WriterInner::Sqlite(sqlite::Writer::open(path, store.write_gate(), store.wal_watch())?)
            }
            Backend::Postgres => WriterInner::Postgres(store.clone()),
        };
        Ok(LedgerWriter { inner })
    }
}

/// The transaction of one ledger batch, from [`begin_batch`] to
/// [`finish_batch`]. Dropped unfinished, it rolls back.
pub struct BatchTx {
    inner: BatchInner,
}

enum BatchInner {
    Sqlite(sqlite::Batch),
    Postgres(postgres::Batch),
}

/// What a batch reads under its locks.
pub struct BatchReads {
    /// The wallets named, with their owner; missing ids are simply absent.
    pub wallets: Vec<(TenantId, WalletState)>,
    /// Earlier transfers recorded under the batch's idempotency keys.
    pub earlier: Vec<StoredTransfer>,
    /// Fresh ids for the transfers this batch may write, as many as asked for.
    pub transfer_ids: Vec<TransferId>,
}

/// Starts a batch: takes the write lock (SQLite) or, unless optimistic, the
/// wallets' row locks (PostgreSQL), and reads the wallets, the earlier
/// outcomes of `keys`, and `ids_needed` fresh transfer ids.
pub async fn begin_batch(writer: &LedgerWriter, wallet_ids: &[WalletId], keys: &[(TenantId, &str)], ids_needed: usize, locking: Locking) -> Result<(BatchTx, BatchReads)> {
    let mut ids: Vec<i64> = wallet_ids.iter().map(|w| w.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let (inner, reads) = match &writer.inner {
        WriterInner::Sqlite(w) => {
            let (batch, reads) = sqlite::begin(w, &ids, keys, ids_needed).await?;
            (BatchInner::Sqlite(batch), reads)
        }
        WriterInner::Postgres(store) => {
            let (batch, reads) = postgres::begin(store, &ids, keys, ids_needed, locking).await?;
            (BatchInner::Postgres(batch), reads)
        }
    };
    Ok((BatchTx { inner }, reads))
}

/// The entries at these (wallet, entry number) positions, as (transfer,
/// wallet, balance after): how replays of posted transfers get their first
/// outcome. A position without its entry is [`StorageError::Corrupt`]: the
/// positions come from stored transfers, and a posted transfer has its entries.
pub async fn balances_after(tx: &mut BatchTx, positions: &[(WalletId, i64)]) -> Result<Vec<(TransferId, WalletId, i64)>> {
    let keys: Vec<EntryKey> = positions.iter().map(|(wallet, seq)| EntryKey { wallet_id: wallet.0, seq: *seq }).collect();
    let entries = match &mut tx.inner {
        BatchInner::Sqlite(batch) => sqlite::entries_at(batch, &keys)?,
        BatchInner::Postgres(batch) => postgres::entries_at(batch, &keys).await?,
    };
    let found: HashSet<(i64, i64)> = entries.iter().map(|e| (e.wallet_id, e.seq)).collect();
    if let Some(missing) = keys.iter().find(|k| !found.contains(&(k.wallet_id, k.seq))) {
        return Err(StorageError::corrupt(format!("entry {} of wallet {}, named by a posted transfer, is missing", missing.seq, missing.wallet_id)));
    }
    Ok(entries.into_iter().map(|e| (TransferId(e.transfer_id), WalletId(e.wallet_id), e.balance_after_minor)).collect())
}

/// Writes a batch and commits it: its transfers (posted and rejected alike),
/// the entries of the posted ones, and the new balance and last entry number
/// of every wallet they touched. `wallets` pairs each new state with the
/// `entry_seq` the wallet had when the batch read it.
pub async fn finish_batch(tx: BatchTx, transfers: &[StoredTransfer], entries: &[NewEntry], wallets: &[(&WalletState, i64)]) -> Result<()> {
    match tx.inner {
        BatchInner::Sqlite(batch) => sqlite::finish(batch, transfers, entries, wallets),
        BatchInner::Postgres(batch) => postgres::finish(batch, transfers, entries, wallets).await,
    }
}

/// Records signed requests in one transaction; for each, in order, whether
/// it is the first sighting (`false`: a live record exists, or the same
/// request came earlier in this call). See [`crate::signed_requests`].
pub async fn record_sightings(writer: &LedgerWriter, sightings: &[Sighting], now_ms: i64) -> Result<Vec<bool>> {
    match &writer.inner {
        WriterInner::Sqlite(w) => sqlite::record_sightings(w, sightings, now_ms).await,
        WriterInner::Postgres(store) => postgres::record_sightings(store, sightings, now_ms).await,
    }
}

/// A transfer as stored: the request and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransfer {
    pub id: TransferId,
    pub tenant_id: TenantId,
    pub idempotency_key: Option<String>,
    pub fingerprint: String,
    /// `Ok` when posted, the reason when rejected.
    pub outcome: Result<(), TransferRejection>,
    pub kind: TransferKind,
    pub debit: WalletId,
    pub credit: WalletId,
    pub amount_minor: i64,
    pub currency: Currency,
    pub memo: Option<String>,
    pub created_at_us: i64,
    /// For a posted transfer, the sequence numbers of its debit and credit entries.
    pub entry_seqs: Option<(i64, i64)>,
}

static GET_TRANSFER: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM transfers WHERE tenant_id = $1 AND id = $2", columns::<TransferRow<String>>(None)));

pub async fn get_transfer(store: &Store, tenant: TenantId, id: TransferId) -> Result<Option<StoredTransfer>> {
    let row: Option<TransferRow<String>> = sqlx::query_as(&GET_TRANSFER).bind(tenant.0).bind(id.0).fetch_optional(store.reader()).await?;
    row.map(StoredTransfer::try_from).transpose()
}

/// An entry to append: one side of a posted transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub wallet: WalletId,
    pub seq: i64,
    pub tenant_id: TenantId,
    pub transfer_id: TransferId,
    pub amount_minor: i64,
    pub balance_after_minor: i64,
    pub created_at_us: i64,
}

/// What an audit of the whole ledger found. Every count is zero on a sound ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuditReport {
    /// Per currency, the sum of all balances (must be 0).
    pub balance_sums: Vec<(String, i64)>,
    /// Wallets whose balance is not the balance after their last entry.
    pub wallets_off_their_last_entry: i64,
    /// Wallets whose balance is not the sum of their entries.
    pub wallets_off_their_entries: i64,
    /// Wallets whose entry numbering has a gap or does not end at `entry_seq`.
    pub wallets_with_gaps: i64,
    /// Wallets below their floor.
    pub wallets_below_floor: i64,
    /// Posted transfers without their debit and credit entry of their amount.
    pub transfers_unbalanced: i64,
    /// Entries beyond two per posted transfer (non-zero means an orphan entry).
    pub entries_unaccounted: i64,
    /// Entries naming a transfer or wallet that does not exist, or of another tenant.
    pub entries_dangling: i64,
    /// Transfers naming a wallet that does not exist or belongs to another tenant.
    pub transfers_dangling: i64,
    pub wallets: i64,
    pub transfers: i64,
    pub entries: i64,
}

impl AuditReport {
    pub fn is_sound(&self) -> bool {
        self.balance_sums.iter().all(|(_, sum)| *sum == 0)
            && self.wallets_off_their_last_entry == 0
            && self.wallets_off_their_entries == 0
            && self.wallets_with_gaps == 0
            && self.wallets_below_floor == 0
            && self.transfers_unbalanced == 0
            && self.entries_unaccounted == 0
            && self.entries_dangling == 0
            && self.transfers_dangling == 0
    }
}

/// Checks the ledger invariants over the whole database (a full scan: for
/// tests, operators and after a crash, not for the request path).
pub async fn audit(store: &Store) -> Result<AuditReport> {
    let pool = store.reader();
    let balance_sums: Vec<(String, i64)> = sqlx::query_as("SELECT currency, CAST(SUM(balance_minor) AS BIGINT) FROM wallets GROUP BY currency ORDER BY currency").fetch_all(pool).await?;
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await };
    Ok(AuditReport {
        balance_sums,
        wallets_off_their_last_entry: count(
            "SELECT COUNT(*) FROM wallets w WHERE w.balance_minor <>
               COALESCE((SELECT e.balance_after_minor FROM entries e WHERE e.wallet_id = w.id AND e.seq = w.entry_seq), 0)",
        )
        .await?,
        wallets_off_their_entries: count(
            "SELECT COUNT(*) FROM wallets w WHERE w.balance_minor <>
               COALESCE((SELECT CAST(SUM(e.amount_minor) AS BIGINT) FROM entries e WHERE e.wallet_id = w.id), 0)",
        )
        .await?,
        wallets_with_gaps: count(
            "SELECT COUNT(*) FROM wallets w WHERE w.entry_seq <> (SELECT COUNT(*) FROM entries e WHERE e.wallet_id = w.id)
               OR w.entry_seq <> COALESCE((SELECT MAX(e.seq) FROM entries e WHERE e.wallet_id = w.id), 0)",
        )
        .await?,
        wallets_below_floor: count("SELECT COUNT(*) FROM wallets WHERE floor_minor IS NOT NULL AND balance_minor < floor_minor").await?,
        transfers_unbalanced: count(
            "SELECT COUNT(*) FROM transfers t WHERE t.status = 'posted' AND (
               NOT EXISTS (SELECT 1 FROM entries e WHERE e.wallet_id = t.debit_wallet_id AND e.seq = t.debit_seq
                                                     AND e.transfer_id = t.id AND e.amount_minor = -t.amount_minor)
               OR NOT EXISTS (SELECT 1 FROM entries e WHERE e.wallet_id = t.credit_wallet_id AND e.seq = t.credit_seq
                                                        AND e.transfer_id = t.id AND e.amount_minor = t.amount_minor))",
        )
        .await?,
        entries_unaccounted: count("SELECT (SELECT COUNT(*) FROM entries) - 2 * (SELECT COUNT(*) FROM transfers WHERE status = 'posted')").await?,
        entries_dangling: count(
            "SELECT COUNT(*) FROM entries e WHERE
               NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = e.transfer_id AND t.tenant_id = e.tenant_id)
               OR NOT EXISTS (SELECT 1 FROM wallets w WHERE w.id = e.wallet_id AND w.tenant_id = e.tenant_id)",
        )
        .await?,
        transfers_dangling: count(
            "SELECT COUNT(*) FROM transfers t WHERE
               NOT EXISTS (SELECT 1 FROM wallets w WHERE w.id = t.debit_wallet_id AND w.tenant_id = t.tenant_id)
               OR NOT EXISTS (SELECT 1 FROM wallets w WHERE w.id = t.credit_wallet_id AND w.tenant_id = t.tenant_id)",
        )
        .await?,
        wallets: count("SELECT COUNT(*) FROM wallets").await?,
        transfers: count("SELECT COUNT(*) FROM transfers").await?,
        entries: count("SELECT COUNT(*) FROM entries").await?,
    })
}
