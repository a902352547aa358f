//! The ledger's tables: transfers (one row per request, posted or rejected)
//! and entries (two rows per posted transfer, with the balance after each).
//!
//! A batch of any size costs the same few round trips: rows travel as one
//! JSON array per table in a single text parameter (`json_each` on SQLite,
//! `json_array_elements` on PostgreSQL). So every statement here has one
//! fixed text, prepared once per connection, and binding stays cheap however
//! many rows a batch has. The write is a single call: three statements in one
//! string on SQLite, one statement with data-modifying CTEs on PostgreSQL.

use std::str::FromStr;

use serde_json::json;
use subledger_domain::ids::{TenantId, TransferId, WalletId};
use subledger_domain::ledger::{TransferKind, TransferRejection, WalletState};
use subledger_domain::money::Currency;

use crate::{Backend, Result, StorageError, Store};

/// The statements of the batch path, in each backend's dialect.
struct BatchSql {
    /// Reads what the batch needs under its locks: its wallets, the earlier
    /// outcomes of its idempotency keys, fresh transfer ids. One string,
    /// one call (on SQLite it also begins the transaction).
    reads: &'static [&'static str; 1],
    balances_after: &'static str,
    /// Writes the batch (and, on SQLite, commits it).
    write: &'static str,
}

/// On SQLite the batch takes two calls (three when it replays a posted key):
/// one string begins the transaction and runs the reads, another writes and
/// commits. `BEGIN IMMEDIATE` holds
/// the database's only write lock, so the reads see every committed batch.
const SQLITE: BatchSql = BatchSql {
    reads: &["BEGIN IMMEDIATE;
             SELECT json_group_array(json_array(id, tenant_id, currency, balance_minor, floor_minor, entry_seq)) FROM
               (SELECT id, tenant_id, currency, balance_minor, floor_minor, entry_seq FROM wallets
                WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id);
             SELECT json_group_array(json_array(t.id, t.tenant_id, t.idempotency_key, t.fingerprint, t.status, t.rejection, t.kind,
                                                t.debit_wallet_id, t.credit_wallet_id, t.amount_minor, t.currency, t.memo, t.created_at_us,
                                                t.debit_seq, t.credit_seq))
               FROM json_each($2) AS k CROSS JOIN transfers AS t
               WHERE t.tenant_id = k.value->>0 AND t.idempotency_key = k.value->>1;
             SELECT CAST(COALESCE(MAX(id), 0) AS TEXT) FROM transfers"],
    balances_after: "SELECT json_group_array(json_array(e.transfer_id, e.wallet_id, e.balance_after_minor))
                     FROM json_each($1) AS k CROSS JOIN entries AS e WHERE e.wallet_id = k.value->>0 AND e.seq = k.value->>1",
    write: "INSERT INTO transfers (id, tenant_id, idempotency_key, fingerprint, status, rejection, kind, debit_wallet_id, credit_wallet_id, amount_minor, currency, memo, created_at_us, debit_seq, credit_seq)
              SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8, value->>9, value->>10, value->>11, value->>12, value->>13, value->>14
              FROM json_each($1);
            SELECT changes();
            INSERT INTO entries (wallet_id, seq, tenant_id, transfer_id, amount_minor, balance_after_minor, created_at_us)
              SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6 FROM json_each($2);
            SELECT changes();
            UPDATE wallets SET balance_minor = v.balance, entry_seq = v.seq
              FROM (SELECT value->>0 AS id, value->>1 AS balance, value->>2 AS seq FROM json_each($3)) AS v
              WHERE wallets.id = v.id;
            SELECT changes();
            COMMIT",
};

/// On PostgreSQL one statement locks the wallets (in id order, so concurrent
/// batches cannot deadlock), reads the earlier outcomes of the keys and
/// draws fresh transfer ids. Under READ COMMITTED the key lookup reads the
/// snapshot the statement started with, so it can miss a key that another
/// process committed while this one waited for the lock; the unique index on
/// the keys then refuses the insert, and the worker runs the batch again,
/// which finds the key and answers with its first outcome.
///
/// The optimistic variant is the same statement without `FOR UPDATE`, run
/// outside a transaction: see [`Locking`].
///
/// Every lookup is written to go through an index whatever the plan: these
/// statements are prepared, and PostgreSQL's generic plan guesses 100 rows
/// for a JSON array, which made it scan and hash whole tables (`transfers`
/// for the keys; `wallets` and its dead row versions for the update), a
/// cost that grew with the data. `LATERAL … LIMIT 1` and `= ANY(ARRAY(…))`
/// keep them to index probes.
const POSTGRES: BatchSql = BatchSql {
    reads: &["SELECT
          (SELECT COALESCE(json_agg(json_build_array(id, tenant_id, currency, balance_minor, floor_minor, entry_seq))::text, '[]') FROM
             (SELECT id, tenant_id, currency, balance_minor, floor_minor, entry_seq FROM wallets
              WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint)) ORDER BY id FOR UPDATE) AS locked),
          (SELECT COALESCE(json_agg(json_build_array(t.id, t.tenant_id, t.idempotency_key, t.fingerprint, t.status, t.rejection, t.kind,
                                                     t.debit_wallet_id, t.credit_wallet_id, t.amount_minor, t.currency, t.memo, t.created_at_us,
                                                     t.debit_seq, t.credit_seq))::text, '[]')
             FROM jsonb_array_elements($2::jsonb) AS k,
                  LATERAL (SELECT * FROM transfers WHERE tenant_id = (k->>0)::bigint AND idempotency_key = k->>1 LIMIT 1) AS t),
          (SELECT COALESCE(json_agg(nextval('transfer_ids'))::text, '[]') FROM generate_series(1, $3))"],
    balances_after: "SELECT COALESCE(json_agg(json_build_array(e.transfer_id, e.wallet_id, e.balance_after_minor))::text, '[]')
                     FROM jsonb_array_elements($1::jsonb) AS k,
                          LATERAL (SELECT * FROM entries WHERE wallet_id = (k->>0)::bigint AND seq = (k->>1)::bigint LIMIT 1) AS e",
    write: "WITH new_transfers AS (
              INSERT INTO transfers (id, tenant_id, idempotency_key, fingerprint, status, rejection, kind, debit_wallet_id, credit_wallet_id, amount_minor, currency, memo, created_at_us, debit_seq, credit_seq)
              SELECT (r->>0)::bigint, (r->>1)::bigint, r->>2, r->>3, r->>4, r->>5, r->>6, (r->>7)::bigint, (r->>8)::bigint, (r->>9)::bigint, r->>10, r->>11, (r->>12)::bigint, (r->>13)::bigint, (r->>14)::bigint
              FROM jsonb_array_elements($1::jsonb) AS r RETURNING 1),
            new_entries AS (
              INSERT INTO entries (wallet_id, seq, tenant_id, transfer_id, amount_minor, balance_after_minor, created_at_us)
              SELECT (r->>0)::bigint, (r->>1)::bigint, (r->>2)::bigint, (r->>3)::bigint, (r->>4)::bigint, (r->>5)::bigint, (r->>6)::bigint
              FROM jsonb_array_elements($2::jsonb) AS r RETURNING 1),
            new_balances AS (
              UPDATE wallets SET balance_minor = (r->>1)::bigint, entry_seq = (r->>2)::bigint
              FROM jsonb_array_elements($3::jsonb) AS r
              WHERE wallets.id = ANY(ARRAY(SELECT (w->>0)::bigint FROM jsonb_array_elements($3::jsonb) AS w))
                AND wallets.id = (r->>0)::bigint AND wallets.entry_seq = (r->>3)::bigint RETURNING 1)
            SELECT (SELECT COUNT(*) FROM new_transfers) + (SELECT COUNT(*) FROM new_entries)
                 + subledger_expect_rows((SELECT COUNT(*) FROM new_balances), $4)",
};

/// [`POSTGRES`]'s reads without the row locks, for [`Locking::Optimistic`].
const POSTGRES_UNLOCKED_READS: &str = "SELECT
          (SELECT COALESCE(json_agg(json_build_array(id, tenant_id, currency, balance_minor, floor_minor, entry_seq))::text, '[]') FROM
             (SELECT id, tenant_id, currency, balance_minor, floor_minor, entry_seq FROM wallets
              WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint)) ORDER BY id) AS read),
          (SELECT COALESCE(json_agg(json_build_array(t.id, t.tenant_id, t.idempotency_key, t.fingerprint, t.status, t.rejection, t.kind,
                                                     t.debit_wallet_id, t.credit_wallet_id, t.amount_minor, t.currency, t.memo, t.created_at_us,
                                                     t.debit_seq, t.credit_seq))::text, '[]')
             FROM jsonb_array_elements($2::jsonb) AS k,
                  LATERAL (SELECT * FROM transfers WHERE tenant_id = (k->>0)::bigint AND idempotency_key = k->>1 LIMIT 1) AS t),
          (SELECT COALESCE(json_agg(nextval('transfer_ids'))::text, '[]') FROM generate_series(1, $3))";

fn sql_for(backend: Backend) -> &'static BatchSql {
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

/// How a batch protects the wallets it read until it writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    /// PostgreSQL: read without locks and outside a transaction, then write
    /// in one statement (its own transaction) that updates each wallet only
    /// if its `entry_seq` is still the one read, and fails with a
    /// serialization error otherwise. Two round trips; the usual case.
    Optimistic,
    /// PostgreSQL: `BEGIN`, lock the wallets `FOR UPDATE`, read, write,
    /// `COMMIT`. For a batch that lost an optimistic race: under contention
    /// it waits instead of failing again.
    Pessimistic,
}

/// The transaction of one ledger batch, from [`begin_batch`] to [`finish_batch`].
/// Dropped unfinished, it rolls back.
pub struct BatchTx {
    inner: BatchTxInner,
}

enum BatchTxInner {
    /// A raw connection with `BEGIN IMMEDIATE` issued on it. Closed rather
    /// than pooled if dropped unfinished, which rolls the transaction back.
    Sqlite(sqlx::pool::PoolConnection<sqlx::Any>),
    Postgres(sqlx::Transaction<'static, sqlx::Any>),
    /// PostgreSQL without a transaction: the write commits itself.
    PostgresOptimistic(sqlx::pool::PoolConnection<sqlx::Any>),
    /// Committed or rolled back.
    Done,
}

impl BatchTx {
    fn backend(&self) -> Backend {
        match self.inner {
            BatchTxInner::Postgres(_) | BatchTxInner::PostgresOptimistic(_) => Backend::Postgres,
            BatchTxInner::Sqlite(_) | BatchTxInner::Done => Backend::Sqlite,
        }
    }

    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.inner {
            BatchTxInner::Sqlite(conn) | BatchTxInner::PostgresOptimistic(conn) => conn,
            BatchTxInner::Postgres(tx) => tx,
            BatchTxInner::Done => panic!("a finished ledger batch has no connection"),
        }
    }
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

type WalletRow = (i64, i64, String, i64, Option<i64>, i64);

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StorageError::corrupt(format!("{what}: {e}")))
}

/// Starts a batch: takes the write lock (SQLite) or, unless optimistic, the
/// wallets' row locks (PostgreSQL), and reads the wallets and the earlier
/// outcomes of `keys`. Rows travel as one JSON array per query: one row
/// crosses to the driver far cheaper than hundreds. SQLite ignores `locking`:
/// its write lock is always taken first.
pub async fn begin_batch(store: &Store, wallet_ids: &[WalletId], keys: &[(TenantId, &str)], ids_needed: usize, locking: Locking) -> Result<(BatchTx, BatchReads)> {
    let mut ids: Vec<i64> = wallet_ids.iter().map(|w| w.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let ids = json!(ids).to_string();
    let keys = serde_json::Value::Array(keys.iter().map(|(tenant, key)| json!([tenant.0, key])).collect()).to_string();
    let sql = sql_for(store.backend());
    let (tx, wallets_json, earlier_json, transfer_ids) = match store.backend() {
        Backend::Sqlite => {
            let mut conn = store.writer().acquire().await?;
            let rows = match sqlx::query_scalar::<_, String>(sql.reads[0]).bind(ids).bind(keys).fetch_all(&mut *conn).await {
                Ok(rows) => rows,
                Err(error) => {
                    // The BEGIN may have run before the failure; leave no transaction behind.
                    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    return Err(error.into());
                }
            };
            let [wallets, earlier, largest_id]: [String; 3] =
                rows.try_into().map_err(|_| StorageError::corrupt("the batch reads returned an unexpected number of rows"))?;
            // Under the write lock nobody else inserts transfers: the ids after the largest are free.
            let largest_id: i64 = largest_id.parse().map_err(|_| StorageError::corrupt("largest transfer id"))?;
            let ids = (1..=ids_needed as i64).map(|i| TransferId(largest_id + i)).collect();
            (BatchTx { inner: BatchTxInner::Sqlite(conn) }, wallets, earlier, ids)
        }
        Backend::Postgres => {
            let (mut tx, statement) = match locking {
                Locking::Optimistic => (BatchTx { inner: BatchTxInner::PostgresOptimistic(store.writer().acquire().await?) }, POSTGRES_UNLOCKED_READS),
                Locking::Pessimistic => (BatchTx { inner: BatchTxInner::Postgres(store.writer().begin().await?) }, sql.reads[0]),
            };
            let (wallets, earlier, ids): (String, String, String) =
                sqlx::query_as(statement).bind(ids).bind(keys).bind(ids_needed as i64).fetch_one(tx.conn()).await?;
            let ids = parse_json::<Vec<i64>>(&ids, "transfer ids")?.into_iter().map(TransferId).collect();
            (tx, wallets, earlier, ids)
        }
    };
    let wallets = parse_json::<Vec<WalletRow>>(&wallets_json, "locked wallets")?
        .into_iter()
        .map(|(id, tenant_id, currency, balance_minor, floor_minor, entry_seq)| {
            let currency = Currency::from_str(&currency).map_err(|e| StorageError::corrupt(e.to_string()))?;
            Ok((TenantId(tenant_id), WalletState { id: WalletId(id), currency, balance_minor, floor_minor, entry_seq }))
        })
        .collect::<Result<_>>()?;
    let earlier = parse_json::<Vec<TransferRow>>(&earlier_json, "earlier transfers")?.into_iter().map(transfer_from_row).collect::<Result<_>>()?;
    Ok((tx, BatchReads { wallets, earlier, transfer_ids }))
}

impl Drop for BatchTx {
    fn drop(&mut self) {
        if let BatchTxInner::Sqlite(conn) = &mut self.inner {
            // Reached only when the batch was not finished (finish takes the
            // connection out): closing the connection rolls its transaction back.
            conn.close_on_drop();
        }
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

type TransferRow = (i64, i64, Option<String>, String, String, Option<String>, String, i64, i64, i64, String, Option<String>, i64, Option<i64>, Option<i64>);

const TRANSFER_COLUMNS: &str = "id, tenant_id, idempotency_key, fingerprint, status, rejection, kind, debit_wallet_id, credit_wallet_id, amount_minor, currency, memo, created_at_us, debit_seq, credit_seq";

fn transfer_from_row(row: TransferRow) -> Result<StoredTransfer> {
    let (id, tenant_id, idempotency_key, fingerprint, status, rejection, kind, debit, credit, amount_minor, currency, memo, created_at_us, debit_seq, credit_seq) = row;
    let corrupt = |what: &str| StorageError::corrupt(format!("transfer {id}: {what}"));
    let outcome = match (status.as_str(), rejection) {
        ("posted", None) => Ok(()),
        ("rejected", Some(reason)) => Err(TransferRejection::from_str(&reason).map_err(|_| corrupt("rejection"))?),
        _ => return Err(corrupt("status")),
    };
    Ok(StoredTransfer {
        id: TransferId(id),
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
        entry_seqs: debit_seq.zip(credit_seq),
    })
}

pub async fn get_transfer(store: &Store, tenant: TenantId, id: TransferId) -> Result<Option<StoredTransfer>> {
    let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE tenant_id = $1 AND id = $2");
    let row: Option<TransferRow> = sqlx::query_as(&sql).bind(tenant.0).bind(id.0).fetch_optional(store.reader()).await?;
    row.map(transfer_from_row).transpose()
}

/// The entries at these (wallet, entry number) positions, as (transfer,
/// wallet, balance after): how replays of posted transfers get their first outcome.
pub async fn balances_after(tx: &mut BatchTx, positions: &[(WalletId, i64)]) -> Result<Vec<(TransferId, WalletId, i64)>> {
    let positions = serde_json::Value::Array(positions.iter().map(|(wallet, seq)| json!([wallet.0, seq])).collect()).to_string();
    let sql = sql_for(tx.backend()).balances_after;
    let text: String = sqlx::query_scalar(sql).bind(positions).fetch_one(tx.conn()).await?;
    Ok(parse_json::<Vec<(i64, i64, i64)>>(&text, "balances after")?.into_iter().map(|(transfer, wallet, balance)| (TransferId(transfer), WalletId(wallet), balance)).collect())
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

/// Writes a batch — its transfers (posted and rejected alike), the entries
/// of the posted ones, the new balance and last entry number of every wallet
/// they touched — and commits it.
/// `wallets` pairs each touched wallet's new state with the `entry_seq` it had
/// when the batch read it (which an optimistic write checks).
pub async fn finish_batch(mut tx: BatchTx, transfers: &[StoredTransfer], entries: &[NewEntry], wallets: &[(&WalletState, i64)]) -> Result<()> {
    if transfers.is_empty() {
        // Only replays and refusals without keys: nothing to write.
        return commit(tx).await;
    }
    let transfer_rows: Vec<serde_json::Value> = transfers
        .iter()
        .map(|t| {
            let (status, rejection) = match t.outcome {
                Ok(()) => ("posted", None),
                Err(reason) => ("rejected", Some(reason.as_str())),
            };
            json!([
                t.id.0,
                t.tenant_id.0,
                t.idempotency_key,
                t.fingerprint,
                status,
                rejection,
                t.kind.as_str(),
                t.debit.0,
                t.credit.0,
                t.amount_minor,
                t.currency.code(),
                t.memo,
                t.created_at_us,
                t.entry_seqs.map(|(debit, _)| debit),
                t.entry_seqs.map(|(_, credit)| credit)
            ])
        })
        .collect();
    let entry_rows: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| json!([e.wallet.0, e.seq, e.tenant_id.0, e.transfer_id.0, e.amount_minor, e.balance_after_minor, e.created_at_us]))
        .collect();
    let wallet_rows: Vec<serde_json::Value> = wallets.iter().map(|(w, read_seq)| json!([w.id.0, w.balance_minor, w.entry_seq, read_seq])).collect();
    let query = sqlx::query(sql_for(tx.backend()).write)
        .bind(serde_json::Value::Array(transfer_rows).to_string())
        .bind(serde_json::Value::Array(entry_rows).to_string())
        .bind(serde_json::Value::Array(wallet_rows).to_string());
    match tx.backend() {
        Backend::Sqlite => {
            // One call writes and commits; on failure nothing of it stands.
            let BatchTxInner::Sqlite(conn) = &mut tx.inner else { unreachable!() };
            // The string reports each statement's row count, then commits.
            let outcome = query.try_map(|row: sqlx::any::AnyRow| sqlx::Row::try_get::<i64, _>(&row, 0)).fetch_all(&mut **conn).await;
            let due = [transfers.len() as i64, entries.len() as i64, wallets.len() as i64];
            match outcome {
                Ok(counts) if counts == due => {
                    disarm(tx);
                    Ok(())
                }
                Ok(counts) => {
                    let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
                    Err(StorageError::corrupt(format!("a ledger batch wrote {counts:?} rows where {due:?} were due")))
                }
                Err(error) => {
                    let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
                    Err(error.into())
                }
            }
        }
        Backend::Postgres => {
            use sqlx::Row;
            let query = query.bind(wallets.len() as i64);
            let written = query.fetch_one(tx.conn()).await?.try_get::<i64, _>(0)?;
            let expected = (transfers.len() + entries.len() + wallets.len()) as i64;
            if written != expected {
                return Err(StorageError::corrupt(format!("a ledger batch wrote {written} rows where {expected} were due")));
            }
            commit(tx).await
        }
    }
}

async fn commit(mut tx: BatchTx) -> Result<()> {
    let BatchTx { inner } = &mut tx;
    match std::mem::replace(inner, BatchTxInner::Done) {
        BatchTxInner::Sqlite(mut conn) => {
            if let Err(error) = sqlx::query("COMMIT").execute(&mut *conn).await {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                return Err(error.into());
            }
            Ok(())
        }
        BatchTxInner::Postgres(transaction) => Ok(transaction.commit().await?),
        // Each statement committed itself.
        BatchTxInner::PostgresOptimistic(_) | BatchTxInner::Done => Ok(()),
    }
}

/// Marks a SQLite batch as finished, so the connection returns to the pool.
fn disarm(mut tx: BatchTx) {
    tx.inner = BatchTxInner::Done;
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
