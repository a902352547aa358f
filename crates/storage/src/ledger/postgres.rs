//! The ledger batch on PostgreSQL, through sqlx.
//!
//! A batch of any size costs the same few round trips: rows travel as one
//! `jsonb` array per table in a single text parameter, so every statement has
//! one fixed text, prepared once per connection, whatever the batch size. The
//! write is one statement with data-modifying CTEs.
//!
//! The first attempt at a batch is optimistic ([`Locking::Optimistic`]): read
//! without locks, then write in one statement that is its own transaction and
//! updates each wallet only if its `entry_seq` is still the one read
//! (`subledger_expect_rows` raises a serialization failure otherwise). A batch
//! that lost such a race runs again pessimistically: `BEGIN`, lock the wallets
//! `FOR UPDATE` in id order (so concurrent batches cannot deadlock), write,
//! `COMMIT`.
//!
//! The key lookup reads the snapshot its statement started with, so it can
//! miss a key that another process committed meanwhile; the unique index on
//! the keys then refuses the insert, and the worker runs the batch again,
//! which finds the key and answers with its first outcome.
//!
//! Every lookup is written to go through an index whatever the plan: these
//! statements are prepared, and PostgreSQL's generic plan guesses 100 rows
//! for a JSON array, which made it scan and hash whole tables (`transfers`
//! for the keys; `wallets` and its dead row versions for the update), a cost
//! that grew with the data. `LATERAL … LIMIT 1` and `= ANY(ARRAY(…))` keep
//! them to index probes.

use serde_json::json;
use subledger_domain::ids::{TenantId, TransferId, WalletId};
use subledger_domain::ledger::WalletState;
use sqlx::Row;

use super::{BatchReads, Locking, NewEntry, StoredTransfer, TransferRow, entry_values, parse_json, parse_wallets, transfer_from_row, transfer_values};
use crate::{Result, StorageError, Store};

/// The batch's reads in one statement; `$lock` is `FOR UPDATE` or nothing.
macro_rules! batch_reads {
    ($lock:literal) => {
        concat!(
            "SELECT
              (SELECT COALESCE(json_agg(json_build_array(id, tenant_id, currency, balance_minor, floor_minor, entry_seq))::text, '[]') FROM
                 (SELECT id, tenant_id, currency, balance_minor, floor_minor, entry_seq FROM wallets
                  WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint)) ORDER BY id ",
            $lock,
            ") AS read),
              (SELECT COALESCE(json_agg(json_build_array(t.id, t.tenant_id, t.idempotency_key, t.fingerprint, t.status, t.rejection, t.kind,
                                                         t.debit_wallet_id, t.credit_wallet_id, t.amount_minor, t.currency, t.memo, t.created_at_us,
                                                         t.debit_seq, t.credit_seq))::text, '[]')
                 FROM jsonb_array_elements($2::jsonb) AS k,
                      LATERAL (SELECT * FROM transfers WHERE tenant_id = (k->>0)::bigint AND idempotency_key = k->>1 LIMIT 1) AS t),
              (SELECT COALESCE(json_agg(nextval('transfer_ids'))::text, '[]') FROM generate_series(1, $3))"
        )
    };
}

const READS_LOCKED: &str = batch_reads!("FOR UPDATE");
const READS_UNLOCKED: &str = batch_reads!("");

const BALANCES_AFTER: &str = "SELECT COALESCE(json_agg(json_build_array(e.transfer_id, e.wallet_id, e.balance_after_minor))::text, '[]')
     FROM jsonb_array_elements($1::jsonb) AS k,
          LATERAL (SELECT * FROM entries WHERE wallet_id = (k->>0)::bigint AND seq = (k->>1)::bigint LIMIT 1) AS e";

const WRITE: &str = "WITH new_transfers AS (
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
         + subledger_expect_rows((SELECT COUNT(*) FROM new_balances), $4)";

/// A batch in progress on PostgreSQL.
pub(super) enum Batch {
    /// Pessimistic: a transaction holding the wallets' row locks.
    Locked(sqlx::Transaction<'static, sqlx::Any>),
    /// Optimistic: a plain connection; the write commits itself.
    Optimistic(sqlx::pool::PoolConnection<sqlx::Any>),
}

impl Batch {
    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match self {
            Batch::Locked(tx) => tx,
            Batch::Optimistic(conn) => conn,
        }
    }
}

pub(super) async fn begin(store: &Store, wallet_ids: &[i64], keys: &[(TenantId, &str)], ids_needed: usize, locking: Locking) -> Result<(Batch, BatchReads)> {
    let keys = serde_json::Value::Array(keys.iter().map(|(tenant, key)| json!([tenant.0, key])).collect()).to_string();
    let (mut batch, statement) = match locking {
        Locking::Optimistic => (Batch::Optimistic(store.writer().acquire().await?), READS_UNLOCKED),
        Locking::Pessimistic => (Batch::Locked(store.writer().begin().await?), READS_LOCKED),
    };
    let (wallets, earlier, ids): (String, String, String) =
        sqlx::query_as(statement).bind(json!(wallet_ids).to_string()).bind(keys).bind(ids_needed as i64).fetch_one(batch.conn()).await?;
    let reads = BatchReads {
        wallets: parse_wallets(parse_json(&wallets, "locked wallets")?)?,
        earlier: parse_json::<Vec<TransferRow>>(&earlier, "earlier transfers")?.into_iter().map(transfer_from_row).collect::<Result<_>>()?,
        transfer_ids: parse_json::<Vec<i64>>(&ids, "transfer ids")?.into_iter().map(TransferId).collect(),
    };
    Ok((batch, reads))
}

pub(super) async fn balances_after(batch: &mut Batch, positions: &[(WalletId, i64)]) -> Result<Vec<(TransferId, WalletId, i64)>> {
    let positions = serde_json::Value::Array(positions.iter().map(|(wallet, seq)| json!([wallet.0, seq])).collect()).to_string();
    let text: String = sqlx::query_scalar(BALANCES_AFTER).bind(positions).fetch_one(batch.conn()).await?;
    Ok(parse_json::<Vec<(i64, i64, i64)>>(&text, "balances after")?.into_iter().map(|(transfer, wallet, balance)| (TransferId(transfer), WalletId(wallet), balance)).collect())
}

pub(super) async fn finish(mut batch: Batch, transfers: &[StoredTransfer], entries: &[NewEntry], wallets: &[(&WalletState, i64)]) -> Result<()> {
    if !transfers.is_empty() {
        let wallet_rows: Vec<serde_json::Value> = wallets.iter().map(|(w, read_seq)| json!([w.id.0, w.balance_minor, w.entry_seq, read_seq])).collect();
        let written = sqlx::query(WRITE)
            .bind(json!(transfers.iter().map(transfer_values).collect::<Vec<_>>()).to_string())
            .bind(json!(entries.iter().map(entry_values).collect::<Vec<_>>()).to_string())
            .bind(serde_json::Value::Array(wallet_rows).to_string())
            .bind(wallets.len() as i64)
            .fetch_one(batch.conn())
            .await?
            .try_get::<i64, _>(0)?;
        let expected = (transfers.len() + entries.len() + wallets.len()) as i64;
        if written != expected {
            return Err(StorageError::corrupt(format!("a ledger batch wrote {written} rows where {expected} were due")));
        }
    }
    match batch {
        Batch::Locked(tx) => Ok(tx.commit().await?),
        // The write was its own transaction.
        Batch::Optimistic(_) => Ok(()),
    }
}
