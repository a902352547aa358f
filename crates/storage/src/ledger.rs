//! The ledger's tables: transfers (one row per request, posted or rejected)
//! and entries (two rows per posted transfer, with the balance after each).
//!
//! Statements here write whole batches: one multi-row `INSERT` per table and
//! one `UPDATE … FROM (VALUES …)` for balances, whatever the batch size.

use std::str::FromStr;

use subledger_domain::ids::{TenantId, TransferId, WalletId};
use subledger_domain::ledger::{TransferKind, TransferRejection, WalletState};
use subledger_domain::money::Currency;

use crate::sql::{placeholder_list, power_of_two_chunks, values_rows};
use crate::{Backend, Result, StorageError, Store, WriteTx};

/// Largest number of rows one statement writes. Larger batches are split.
const ROWS_PER_STATEMENT_MAX: usize = 256;

/// Locks the wallets (in id order, so that concurrent batches cannot
/// deadlock on each other) and returns their current state.
pub async fn lock_wallets(tx: &mut WriteTx, ids: &[WalletId]) -> Result<Vec<(TenantId, WalletState)>> {
    let mut ids: Vec<i64> = ids.iter().map(|w| w.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let lock = match tx.backend() {
        Backend::Postgres => " FOR UPDATE",
        // The write transaction holds SQLite's only write lock already.
        Backend::Sqlite => "",
    };
    let mut wallets = Vec::with_capacity(ids.len());
    let mut start = 0;
    for size in power_of_two_chunks(ids.len(), ROWS_PER_STATEMENT_MAX) {
        let sql = format!(
            "SELECT id, tenant_id, currency, balance_minor, floor_minor, entry_seq FROM wallets WHERE id IN ({}) ORDER BY id{lock}",
            placeholder_list(1, size)
        );
        let mut query = sqlx::query_as::<_, (i64, i64, String, i64, Option<i64>, i64)>(&sql);
        for id in &ids[start..start + size] {
            query = query.bind(*id);
        }
        for (id, tenant_id, currency, balance_minor, floor_minor, entry_seq) in query.fetch_all(tx.conn()).await? {
            let currency = Currency::from_str(&currency).map_err(|e| StorageError::corrupt(e.to_string()))?;
            wallets.push((TenantId(tenant_id), WalletState { id: WalletId(id), currency, balance_minor, floor_minor, entry_seq }));
        }
        start += size;
    }
    Ok(wallets)
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
}

type TransferRow = (String, i64, Option<String>, String, String, Option<String>, String, i64, i64, i64, String, Option<String>, i64);

const TRANSFER_COLUMNS: &str =
    "id, tenant_id, idempotency_key, fingerprint, status, rejection, kind, debit_wallet_id, credit_wallet_id, amount_minor, currency, memo, created_at_us";

fn transfer_from_row(row: TransferRow) -> Result<StoredTransfer> {
    let (id, tenant_id, idempotency_key, fingerprint, status, rejection, kind, debit, credit, amount_minor, currency, memo, created_at_us) = row;
    let corrupt = |what: &str| StorageError::corrupt(format!("transfer {id}: {what}"));
    let outcome = match (status.as_str(), rejection) {
        ("posted", None) => Ok(()),
        ("rejected", Some(reason)) => Err(TransferRejection::from_str(&reason).map_err(|_| corrupt("rejection"))?),
        _ => return Err(corrupt("status")),
    };
    Ok(StoredTransfer {
        id: TransferId::from_str(&id).map_err(|_| corrupt("id"))?,
        tenant_id: TenantId(tenant_id),
        idempotency_key,
        fingerprint,
        outcome,
        kind: TransferKind::from_str(&kind).map_err(|_| corrupt("kind"))?,
        debit: WalletId(debit),
        credit: WalletId(credit),
        amount_minor,
        currency: Currency::from_str(&currency).map_err(|_| corrupt("currency"))?,
        memo,
        created_at_us,
    })
}

/// The tenant's transfers recorded under any of `keys`.
pub async fn transfers_by_keys(tx: &mut WriteTx, tenant: TenantId, keys: &[&str]) -> Result<Vec<StoredTransfer>> {
    let mut found = Vec::new();
    let mut start = 0;
    for size in power_of_two_chunks(keys.len(), ROWS_PER_STATEMENT_MAX) {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE tenant_id = $1 AND idempotency_key IN ({})", placeholder_list(2, size));
        let mut query = sqlx::query_as::<_, TransferRow>(&sql).bind(tenant.0);
        for key in &keys[start..start + size] {
            query = query.bind(*key);
        }
        for row in query.fetch_all(tx.conn()).await? {
            found.push(transfer_from_row(row)?);
        }
        start += size;
    }
    Ok(found)
}

pub async fn get_transfer(store: &Store, tenant: TenantId, id: TransferId) -> Result<Option<StoredTransfer>> {
    let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE tenant_id = $1 AND id = $2");
    let row: Option<TransferRow> = sqlx::query_as(&sql).bind(tenant.0).bind(id.to_string()).fetch_optional(store.reader()).await?;
    row.map(transfer_from_row).transpose()
}

/// The balance each wallet had right after each of these transfers.
pub async fn balances_after(tx: &mut WriteTx, transfers: &[TransferId]) -> Result<Vec<(TransferId, WalletId, i64)>> {
    let ids: Vec<String> = transfers.iter().map(ToString::to_string).collect();
    let mut found = Vec::new();
    let mut start = 0;
    for size in power_of_two_chunks(ids.len(), ROWS_PER_STATEMENT_MAX) {
        let sql = format!("SELECT transfer_id, wallet_id, balance_after_minor FROM entries WHERE transfer_id IN ({})", placeholder_list(1, size));
        let mut query = sqlx::query_as::<_, (String, i64, i64)>(&sql);
        for id in &ids[start..start + size] {
            query = query.bind(id.as_str());
        }
        for (transfer, wallet, balance) in query.fetch_all(tx.conn()).await? {
            let transfer = TransferId::from_str(&transfer).map_err(|_| StorageError::corrupt(format!("entry of transfer {transfer}")))?;
            found.push((transfer, WalletId(wallet), balance));
        }
        start += size;
    }
    Ok(found)
}

/// Appends transfers (posted and rejected alike).
pub async fn insert_transfers(tx: &mut WriteTx, transfers: &[StoredTransfer]) -> Result<()> {
    let mut start = 0;
    for size in power_of_two_chunks(transfers.len(), ROWS_PER_STATEMENT_MAX) {
        let sql = format!("INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES {}", values_rows(size, 13));
        let mut query = sqlx::query(&sql);
        for t in &transfers[start..start + size] {
            let (status, rejection) = match t.outcome {
                Ok(()) => ("posted", None),
                Err(reason) => ("rejected", Some(reason.as_str())),
            };
            query = query
                .bind(t.id.to_string())
                .bind(t.tenant_id.0)
                .bind(t.idempotency_key.as_deref())
                .bind(t.fingerprint.as_str())
                .bind(status)
                .bind(rejection)
                .bind(t.kind.as_str())
                .bind(t.debit.0)
                .bind(t.credit.0)
                .bind(t.amount_minor)
                .bind(t.currency.code())
                .bind(t.memo.as_deref())
                .bind(t.created_at_us);
        }
        query.execute(tx.conn()).await?;
        start += size;
    }
    Ok(())
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

pub async fn insert_entries(tx: &mut WriteTx, entries: &[NewEntry]) -> Result<()> {
    let mut start = 0;
    for size in power_of_two_chunks(entries.len(), ROWS_PER_STATEMENT_MAX) {
        let sql = format!(
            "INSERT INTO entries (wallet_id, seq, tenant_id, transfer_id, amount_minor, balance_after_minor, created_at_us) VALUES {}",
            values_rows(size, 7)
        );
        let mut query = sqlx::query(&sql);
        for e in &entries[start..start + size] {
            query = query
                .bind(e.wallet.0)
                .bind(e.seq)
                .bind(e.tenant_id.0)
                .bind(e.transfer_id.to_string())
                .bind(e.amount_minor)
                .bind(e.balance_after_minor)
                .bind(e.created_at_us);
        }
        query.execute(tx.conn()).await?;
        start += size;
    }
    Ok(())
}

/// Writes the new balance and last entry number of each wallet.
pub async fn store_balances(tx: &mut WriteTx, wallets: &[&WalletState]) -> Result<()> {
    let mut start = 0;
    for size in power_of_two_chunks(wallets.len(), ROWS_PER_STATEMENT_MAX) {
        // VALUES columns are named column1, column2 … on both backends.
        let sql = format!(
            "UPDATE wallets SET balance_minor = v.column2, entry_seq = v.column3 FROM (VALUES {}) AS v WHERE wallets.id = v.column1",
            values_rows(size, 3)
        );
        let mut query = sqlx::query(&sql);
        for w in &wallets[start..start + size] {
            query = query.bind(w.id.0).bind(w.balance_minor).bind(w.entry_seq);
        }
        let done = query.execute(tx.conn()).await?;
        if done.rows_affected() != size as u64 {
            return Err(StorageError::corrupt(format!("updated {} wallets of {size}", done.rows_affected())));
        }
        start += size;
    }
    Ok(())
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
    /// Posted transfers without exactly one debit and one credit of their amount.
    pub transfers_unbalanced: i64,
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
    }
}

/// Checks the ledger invariants over the whole database (a full scan: for
/// tests, operators and after a crash, not for the request path).
pub async fn audit(store: &Store) -> Result<AuditReport> {
    let pool = store.reader();
    let balance_sums: Vec<(String, i64)> =
        sqlx::query_as("SELECT currency, CAST(SUM(balance_minor) AS BIGINT) FROM wallets GROUP BY currency ORDER BY currency").fetch_all(pool).await?;
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
               (SELECT COUNT(*) FROM entries e WHERE e.transfer_id = t.id AND e.wallet_id = t.debit_wallet_id AND e.amount_minor = -t.amount_minor) <> 1
               OR (SELECT COUNT(*) FROM entries e WHERE e.transfer_id = t.id AND e.wallet_id = t.credit_wallet_id AND e.amount_minor = t.amount_minor) <> 1
               OR (SELECT COUNT(*) FROM entries e WHERE e.transfer_id = t.id) <> 2)",
        )
        .await?,
        wallets: count("SELECT COUNT(*) FROM wallets").await?,
        transfers: count("SELECT COUNT(*) FROM transfers").await?,
        entries: count("SELECT COUNT(*) FROM entries").await?,
    })
}
