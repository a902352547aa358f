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
use subledger_domain::posting::{Hold, HoldChange, HoldState, JournalWrites, WalletRead};

use crate::rows::{EntryKey, HoldRow, TransferRow, columns};
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

/// What a batch of transfers and holds reads, besides its wallets.
#[derive(Debug, Default)]
pub struct BatchKeys<'a> {
    /// The wallets the batch may move (locked first when pessimistic).
    pub wallets: &'a [WalletId],
    /// Idempotency keys of the transfers it may post.
    pub transfer_keys: &'a [(TenantId, &'a str)],
    /// Idempotency keys of the holds it may open.
    pub hold_keys: &'a [(TenantId, &'a str)],
    /// Holds it may post or void, read after the wallets: a hold changes
    /// only with its debit wallet (its reservation), so a hold read under
    /// that wallet's lock stays as read.
    pub hold_ids: &'a [(TenantId, TransferId)],
    /// Fresh transfer ids to draw.
    pub ids_needed: usize,
}

/// What a batch reads under its locks.
pub struct BatchReads {
    /// The wallets named, with their owner; missing ids are simply absent.
    pub wallets: Vec<(TenantId, WalletState)>,
    /// Earlier transfers recorded under the batch's idempotency keys.
    pub earlier: Vec<StoredTransfer>,
    /// Earlier holds recorded under the batch's hold keys.
    pub earlier_holds: Vec<StoredHold>,
    /// The holds named by id (those of another tenant, or missing, are absent).
    pub holds: Vec<StoredHold>,
    /// Fresh ids for the transfers this batch may write, as many as asked for.
    pub transfer_ids: Vec<TransferId>,
}

/// Starts a batch: takes the write lock (SQLite) or, unless optimistic, the
/// wallets' row locks (PostgreSQL), and reads the wallets, the earlier
/// outcomes of the keys, the holds named, and fresh transfer ids.
pub async fn begin_batch(writer: &LedgerWriter, keys: &BatchKeys<'_>, locking: Locking) -> Result<(BatchTx, BatchReads)> {
    let mut ids: Vec<i64> = keys.wallets.iter().map(|w| w.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let (inner, reads) = match &writer.inner {
        WriterInner::Sqlite(w) => {
            let (batch, reads) = sqlite::begin(w, &ids, keys).await?;
            (BatchInner::Sqlite(batch), reads)
        }
        WriterInner::Postgres(store) => {
            let (batch, reads) = postgres::begin(store, &ids, keys, locking).await?;
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
/// the entries of the posted ones, the holds it opened or resolved, and the
/// new balance, last entry number and reservation of every wallet they
/// touched, each written only if the wallet is still as the batch read it.
pub async fn finish_batch(tx: BatchTx, writes: &LedgerWrites) -> Result<()> {
    match tx.inner {
        BatchInner::Sqlite(batch) => sqlite::finish(batch, writes),
        BatchInner::Postgres(batch) => postgres::finish(batch, writes).await,
    }
}

/// What a job writes to the ledger's tables: its journal's writes in
/// storage's terms. The one conversion every job that moves money goes through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerWrites {
    pub transfers: Vec<StoredTransfer>,
    pub entries: Vec<NewEntry>,
    /// Holds opened (pending, or refused under a key).
    pub holds_opened: Vec<StoredHold>,
    /// Holds resolved: (id, new state, when). Written only over a pending hold.
    pub holds_resolved: Vec<(TransferId, HoldState, i64)>,
    /// Each moved wallet's new state, with what it held when read.
    pub wallets: Vec<(WalletState, WalletRead)>,
    /// What must commit with the job's changes ([`crate::records`]).
    pub records: crate::records::ChangeRecords,
}

impl LedgerWrites {
    /// A journal's writes, with the records of the changes it made.
    pub fn with_records(writes: JournalWrites, records: crate::records::ChangeRecords) -> LedgerWrites {
        LedgerWrites { records, ..LedgerWrites::of(writes) }
    }

    pub fn of(writes: JournalWrites) -> LedgerWrites {
        let transfers = writes
            .transfers
            .into_iter()
            .map(|t| StoredTransfer {
                id: t.id,
                tenant_id: t.tenant,
                idempotency_key: t.idempotency_key,
                fingerprint: t.fingerprint,
                outcome: t.outcome.map(|_| ()),
                kind: t.kind,
                debit: t.intent.debit,
                credit: t.intent.credit,
                amount_minor: t.intent.amount.minor(),
                currency: t.intent.currency,
                memo: t.memo,
                created_at_us: t.created_at_us,
                entry_seqs: t.outcome.ok(),
            })
            .collect();
        let entries = writes
            .entries
            .into_iter()
            .map(|e| NewEntry {
                wallet: e.wallet,
                seq: e.seq,
                tenant_id: e.tenant,
                transfer_id: e.transfer,
                amount_minor: e.amount_minor,
                balance_after_minor: e.balance_after_minor,
                created_at_us: e.created_at_us,
            })
            .collect();
        let (mut holds_opened, mut holds_resolved) = (Vec::new(), Vec::new());
        for change in writes.holds {
            match change {
                HoldChange::Opened { hold, fingerprint, memo, idempotency_key, created_at_us } => {
                    holds_opened.push(StoredHold { hold, fingerprint, memo, idempotency_key, created_at_us, resolved_at_us: None })
                }
                HoldChange::Resolved { id, state, at_us } => holds_resolved.push((id, state, at_us)),
            }
        }
        LedgerWrites { transfers, entries, holds_opened, holds_resolved, wallets: writes.wallets, records: crate::records::ChangeRecords::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.transfers.is_empty() && self.holds_opened.is_empty() && self.holds_resolved.is_empty() && self.wallets.is_empty() && self.records.is_empty()
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

/// A hold as stored: the pending transfer, where it stands, and its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHold {
    pub hold: Hold,
    pub fingerprint: String,
    pub memo: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at_us: i64,
    /// When it was posted, voided or expired.
    pub resolved_at_us: Option<i64>,
}

static GET_HOLD: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM holds WHERE tenant_id = $1 AND id = $2", columns::<HoldRow<String>>(None)));

pub async fn get_hold(store: &Store, tenant: TenantId, id: TransferId) -> Result<Option<StoredHold>> {
    let row: Option<HoldRow<String>> = sqlx::query_as(&GET_HOLD).bind(tenant.0).bind(id.0).fetch_optional(store.reader()).await?;
    row.map(StoredHold::try_from).transpose()
}

/// Most holds one page lists.
pub const HOLDS_PAGE_MAX: i64 = 500;

static LIST_HOLDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM holds WHERE tenant_id = $1 AND id < $2 AND (CAST($3 AS TEXT) IS NULL OR state = CAST($3 AS TEXT)) AND (CAST($4 AS BIGINT) IS NULL OR debit_wallet_id = CAST($4 AS BIGINT) OR credit_wallet_id = CAST($4 AS BIGINT)) ORDER BY id DESC LIMIT $5",
        columns::<HoldRow<String>>(None)
    )
});

/// A tenant's holds, newest first, below `before` (a hold id), optionally of
/// one state and touching one wallet.
pub async fn list_holds(store: &Store, tenant: TenantId, before: Option<TransferId>, state: Option<&str>, wallet: Option<WalletId>, limit: i64) -> Result<Vec<StoredHold>> {
    let rows: Vec<HoldRow<String>> = sqlx::query_as(&LIST_HOLDS)
        .bind(tenant.0)
        .bind(before.map_or(i64::MAX, |id| id.0))
        .bind(state)
        .bind(wallet.map(|w| w.0))
        .bind(limit.clamp(1, HOLDS_PAGE_MAX))
        .fetch_all(store.reader())
        .await?;
    rows.into_iter().map(StoredHold::try_from).collect()
}

/// Pending holds whose timeout has passed, oldest timeout first, at most `limit`.
pub async fn overdue_holds(store: &Store, now_us: i64, limit: i64) -> Result<Vec<StoredHold>> {
    static OVERDUE: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {} FROM holds WHERE state = 'pending' AND timeout_at_us <= $1 ORDER BY timeout_at_us LIMIT $2", columns::<HoldRow<String>>(None)));
    let rows: Vec<HoldRow<String>> = sqlx::query_as(&OVERDUE).bind(now_us).bind(limit).fetch_all(store.reader()).await?;
    rows.into_iter().map(StoredHold::try_from).collect()
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
    /// Wallets whose reservation is not the sum of their pending holds.
    pub wallets_off_their_holds: i64,
    /// Wallets whose reservations exceed their funds (balance less reserved below the floor).
    pub wallets_over_reserved: i64,
    /// Pending holds past their timeout by more than [`HOLD_EXPIRY_GRACE_US`]:
    /// every running server expires them within a second or two.
    pub holds_outliving_timeout: i64,
    /// Holds naming a wallet that does not exist or belongs to another tenant.
    pub holds_dangling: i64,
    /// Posted transfers without their debit and credit entry of their amount.
    pub transfers_unbalanced: i64,
    /// Entries beyond two per posted transfer (non-zero means an orphan entry).
    pub entries_unaccounted: i64,
    /// Entries naming a transfer or wallet that does not exist, or of another tenant.
    pub entries_dangling: i64,
    /// Transfers naming a wallet that does not exist or belongs to another tenant.
    pub transfers_dangling: i64,
    /// Ad accounts (without a cap change under way) whose `ad_cap` wallet does
    /// not hold their spend cap less what Meta spent: funded = spent + remaining cap.
    pub ad_accounts_off_their_funding: i64,
    /// Tenants whose `ad_payable` wallet does not hold what their ad accounts spent.
    pub ad_payables_off_their_spend: i64,
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
            && self.wallets_off_their_holds == 0
            && self.wallets_over_reserved == 0
            && self.holds_outliving_timeout == 0
            && self.holds_dangling == 0
            && self.transfers_unbalanced == 0
            && self.entries_unaccounted == 0
            && self.entries_dangling == 0
            && self.transfers_dangling == 0
            && self.ad_accounts_off_their_funding == 0
            && self.ad_payables_off_their_spend == 0
    }
}

/// How long past its timeout a pending hold may wait for the expiry sweep
/// before an audit counts it: the sweep runs every second in every server
/// process. A database no server has run on since holds timed out has such
/// holds until one starts.
pub const HOLD_EXPIRY_GRACE_US: i64 = 60_000_000;

/// Checks the ledger invariants over the whole database (a full scan: for
/// tests, operators and after a crash, not for the request path).
pub async fn audit(store: &Store) -> Result<AuditReport> {
    let pool = store.reader();
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_micros() as i64);
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
        wallets_off_their_holds: count(
            "SELECT COUNT(*) FROM wallets w WHERE w.reserved_minor <>
               COALESCE((SELECT CAST(SUM(h.amount_minor) AS BIGINT) FROM holds h WHERE h.debit_wallet_id = w.id AND h.state = 'pending'), 0)",
        )
        .await?,
        wallets_over_reserved: count("SELECT COUNT(*) FROM wallets WHERE reserved_minor < 0 OR (floor_minor IS NOT NULL AND balance_minor - reserved_minor < floor_minor)").await?,
        holds_outliving_timeout: sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM holds WHERE state = 'pending' AND timeout_at_us < $1").bind(now_us - HOLD_EXPIRY_GRACE_US).fetch_one(pool).await?,
        holds_dangling: count(
            "SELECT COUNT(*) FROM holds h WHERE
               NOT EXISTS (SELECT 1 FROM wallets w WHERE w.id = h.debit_wallet_id AND w.tenant_id = h.tenant_id)
               OR NOT EXISTS (SELECT 1 FROM wallets w WHERE w.id = h.credit_wallet_id AND w.tenant_id = h.tenant_id)",
        )
        .await?,
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
        ad_accounts_off_their_funding: count(
            "SELECT COUNT(*) FROM ad_accounts a
             WHERE NOT EXISTS (SELECT 1 FROM ad_writes x WHERE x.tenant_id = a.tenant_id AND x.account_id = a.id AND x.state <> 'done' AND x.cap_after_cents IS NOT NULL)
               AND a.spend_cap_cents - a.amount_spent_cents <> COALESCE((SELECT w.balance_minor FROM wallets w WHERE w.tenant_id = a.tenant_id AND w.ad_account_id = a.id
                                                                         AND w.purpose = 'ad_cap' AND w.currency = a.currency), 0)",
        )
        .await?,
        ad_payables_off_their_spend: count(
            "SELECT COUNT(*) FROM wallets w WHERE w.purpose = 'ad_payable'
               AND w.balance_minor <> COALESCE((SELECT CAST(SUM(a.total_spent_cents) AS BIGINT) FROM ad_accounts a WHERE a.tenant_id = w.tenant_id AND a.currency = w.currency), 0)",
        )
        .await?,
        wallets: count("SELECT COUNT(*) FROM wallets").await?,
        transfers: count("SELECT COUNT(*) FROM transfers").await?,
        entries: count("SELECT COUNT(*) FROM entries").await?,
    })
}
