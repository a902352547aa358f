//! The ledger batch on PostgreSQL, through sqlx.
//!
//! A batch of any size costs the same few round trips: rows travel as one
//! `jsonb` array per table in a single text parameter, so every statement has
//! one fixed text, prepared once per connection, whatever the batch size. The
//! write is one statement with data-modifying CTEs.
//!
//! The first attempt at a batch is optimistic ([`Locking::Optimistic`]): read
//! without locks, then write in one statement that is its own transaction and
//! updates each wallet only if its `entry_seq` and floor are still the ones
//! read (`subledger_expect_rows` raises a serialization failure otherwise). A batch
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
use sqlx::Row;
use subledger_domain::ids::{TenantId, TransferId, WalletId};
use subledger_domain::ledger::WalletState;

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
        AND wallets.id = (r->>0)::bigint AND wallets.entry_seq = (r->>3)::bigint
        AND wallets.floor_minor IS NOT DISTINCT FROM (r->>4)::bigint RETURNING 1)
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
    let (wallets, earlier, ids): (String, String, String) = sqlx::query_as(statement).bind(json!(wallet_ids).to_string()).bind(keys).bind(ids_needed as i64).fetch_one(batch.conn()).await?;
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
        // A wallet is updated only if neither its entries nor its floor
        // changed since the batch read it: an optimistic batch checked its
        // debits against the floor it read, and an overdraft change made
        // meanwhile (`wallets::set_floor`) must send it round again, locked.
        let wallet_rows: Vec<serde_json::Value> = wallets.iter().map(|(w, read_seq)| json!([w.id.0, w.balance_minor, w.entry_seq, read_seq, w.floor_minor])).collect();
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

/// [`crate::signed_requests::RECORD_SIGHTING`] for many rows at once; the
/// rows it returns are the first sightings.
const RECORD_SIGHTINGS: &str = "INSERT INTO signed_requests (tenant_id, signature, expires_at_ms)
      SELECT (r->>0)::bigint, r->>1, (r->>2)::bigint FROM jsonb_array_elements($1::jsonb) AS r
     ON CONFLICT (tenant_id, signature) DO UPDATE SET expires_at_ms = excluded.expires_at_ms
     WHERE signed_requests.expires_at_ms < $2
     RETURNING tenant_id, signature";

pub(super) async fn record_sightings(store: &Store, sightings: &[crate::signed_requests::Sighting], now_ms: i64) -> Result<Vec<bool>> {
    use std::collections::HashSet;
    // One statement cannot touch a row twice: a request repeated within the
    // call is a replay of its first occurrence, decided here.
    let mut unique = HashSet::with_capacity(sightings.len());
    let rows: Vec<serde_json::Value> = sightings.iter().filter(|s| unique.insert((s.tenant, s.signature.as_str()))).map(|s| json!([s.tenant.0, s.signature, s.expires_at_ms])).collect();
    let recorded: Vec<(i64, String)> = sqlx::query_as(RECORD_SIGHTINGS).bind(serde_json::Value::Array(rows).to_string()).bind(now_ms).fetch_all(store.writer()).await?;
    let mut recorded: HashSet<(i64, String)> = recorded.into_iter().collect();
    Ok(sightings.iter().map(|s| recorded.remove(&(s.tenant.0, s.signature.clone()))).collect())
}

const USAGE_ACCOUNTS: &str = "SELECT COALESCE(json_agg(json_build_array(a.id, a.status, a.billing_mode, a.daily_quota,
           (SELECT id FROM wallets WHERE account_id = a.id AND purpose = 'primary' AND currency = 'CNY'),
           (SELECT id FROM wallets WHERE account_id = a.id AND purpose = 'promo' AND currency = 'CNY')))::text, '[]')
     FROM accounts a WHERE a.tenant_id = $1 AND a.id = ANY(ARRAY(SELECT jsonb_array_elements_text($2::jsonb)::bigint))";

const USAGE_READS: &str = "SELECT
      (SELECT COALESCE(json_agg(json_build_array(k, e.status, e.rejection, e.billable_milli, e.rated_micros, e.charge_cents))::text, '[]')
         FROM jsonb_array_elements_text($2::jsonb) AS k,
              LATERAL (SELECT * FROM usage_events WHERE tenant_id = $1 AND event_id = k LIMIT 1) AS e),
      (SELECT COALESCE(json_agg(json_build_array(m.account_id, m.product_code, m.month, m.attr, m.quantity_milli, m.billable_milli, m.events, m.rated_micros, m.charged_cents))::text, '[]')
         FROM jsonb_array_elements($3::jsonb) AS k,
              LATERAL (SELECT * FROM usage_monthly WHERE account_id = (k->>0)::bigint AND product_code = k->>1 AND month = k->>2) AS m),
      (SELECT COALESCE(json_agg(json_build_array(q.account_id, q.day, q.used))::text, '[]')
         FROM jsonb_array_elements($4::jsonb) AS k,
              LATERAL (SELECT * FROM quota_usage WHERE account_id = (k->>0)::bigint AND day = k->>1 LIMIT 1) AS q),
      (SELECT COALESCE(json_agg(month)::text, '[]') FROM month_closes
         WHERE tenant_id = $1 AND month = ANY(ARRAY(SELECT jsonb_array_elements_text($5::jsonb))))";

const USAGE_WRITES: &str = "WITH new_events AS (
      INSERT INTO usage_events (tenant_id, event_id, account_id, username, product_code, quantity_milli, occurred_at_us, attributes,
                                status, rejection, billable_milli, rated_micros, charge_cents, ingested_at_us)
      SELECT $1, r->>0, (r->>1)::bigint, r->>2, r->>3, (r->>4)::bigint, (r->>5)::bigint, r->>6, r->>7, r->>8, (r->>9)::bigint, (r->>10)::bigint, (r->>11)::bigint, $2
      FROM jsonb_array_elements($3::jsonb) AS r RETURNING 1),
    days AS (
      INSERT INTO usage_daily (tenant_id, account_id, product_code, day, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents)
      SELECT $1, (r->>0)::bigint, r->>1, r->>2, r->>3, (r->>4)::bigint, (r->>5)::bigint, (r->>6)::bigint, (r->>7)::bigint, (r->>8)::bigint
      FROM jsonb_array_elements($4::jsonb) AS r
      ON CONFLICT (account_id, product_code, day, attr) DO UPDATE SET
        quantity_milli = usage_daily.quantity_milli + excluded.quantity_milli, billable_milli = usage_daily.billable_milli + excluded.billable_milli,
        events = usage_daily.events + excluded.events, rated_micros = usage_daily.rated_micros + excluded.rated_micros,
        charged_cents = usage_daily.charged_cents + excluded.charged_cents
      RETURNING 1),
    months AS (
      INSERT INTO usage_monthly (tenant_id, account_id, product_code, month, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents, late)
      SELECT $1, (r->>0)::bigint, r->>1, r->>2, r->>3, (r->>4)::bigint, (r->>5)::bigint, (r->>6)::bigint, (r->>7)::bigint, (r->>8)::bigint, (r->>9)::bigint
      FROM jsonb_array_elements($5::jsonb) AS r
      ON CONFLICT (account_id, product_code, month, attr) DO UPDATE SET
        quantity_milli = usage_monthly.quantity_milli + excluded.quantity_milli, billable_milli = usage_monthly.billable_milli + excluded.billable_milli,
        events = usage_monthly.events + excluded.events, rated_micros = usage_monthly.rated_micros + excluded.rated_micros,
        charged_cents = usage_monthly.charged_cents + excluded.charged_cents, late = GREATEST(usage_monthly.late, excluded.late)
      RETURNING 1),
    quota AS (
      INSERT INTO quota_usage (account_id, day, tenant_id, used)
      SELECT (r->>0)::bigint, r->>1, $1, (r->>2)::bigint FROM jsonb_array_elements($6::jsonb) AS r
      ON CONFLICT (account_id, day) DO UPDATE SET used = quota_usage.used + excluded.used
      RETURNING 1)
    SELECT (SELECT COUNT(*) FROM new_events) + (SELECT COUNT(*) FROM days) + (SELECT COUNT(*) FROM months) + (SELECT COUNT(*) FROM quota)";

/// A tenant's month-close lock (a transaction-scoped advisory lock, keyed by
/// the tenant in its own namespace): usage batches hold it shared, a close
/// exclusively. Without it, a batch in another process (or in flight beside
/// the close) could read a month as open, then commit its usage after the
/// close read the month's rollups: usage neither billed nor flagged late.
/// Advisory locks live in memory, so sharing it costs no row write.
const CLOSE_LOCK_SHARED: &str = "SELECT pg_advisory_xact_lock_shared(1398096460, ($1::bigint % 2147483647)::int)";
const CLOSE_LOCK_EXCLUSIVE: &str = "SELECT pg_advisory_xact_lock(1398096460, ($1::bigint % 2147483647)::int)";

/// Begins a usage batch: a transaction with the tenant's close lock shared,
/// the accounts' and the revenue wallet locked, and everything the engine reads.
pub(super) async fn usage_begin(store: &Store, keys: &super::usage::UsageKeys<'_>) -> Result<(Batch, super::usage::UsageReads)> {
    use subledger_domain::ids::AccountId;
    use subledger_domain::usage::RollupAmounts;

    let mut batch = Batch::Locked(store.writer().begin().await?);
    sqlx::query(CLOSE_LOCK_SHARED).bind(keys.tenant.0).execute(batch.conn()).await?;
    let account_ids: Vec<i64> = keys.accounts.iter().map(|a| a.0).collect();
    let text: String = sqlx::query_scalar(USAGE_ACCOUNTS).bind(keys.tenant.0).bind(json!(account_ids).to_string()).fetch_one(batch.conn()).await?;
    let accounts: Vec<super::usage::AccountRow> = parse_json::<Vec<(i64, i64, String, i64, Option<i64>, Option<i64>)>>(&text, "accounts")?
        .into_iter()
        .filter_map(|(id, status, mode, quota, primary, promo)| {
            Some(super::usage::AccountRow { id: AccountId(id), active: status == 1, postpaid: mode == "postpaid", daily_quota: quota, primary: WalletId(primary?), promo: WalletId(promo?) })
        })
        .collect();
    let mut wallet_ids: Vec<i64> = accounts.iter().flat_map(|a| [a.primary.0, a.promo.0]).chain([keys.revenue.0]).collect();
    wallet_ids.sort_unstable();
    wallet_ids.dedup();
    let (wallets, _, ids): (String, String, String) = sqlx::query_as(READS_LOCKED).bind(json!(wallet_ids).to_string()).bind("[]").bind(keys.ids_needed as i64).fetch_one(batch.conn()).await?;
    let months_json = serde_json::Value::Array(keys.months.iter().map(|(a, p, m)| json!([a.0, p, m])).collect()).to_string();
    let quota_json = serde_json::Value::Array(keys.quota_days.iter().map(|(a, d)| json!([a.0, d])).collect()).to_string();
    let (earlier, months, quota, closed): (String, String, String, String) = sqlx::query_as(USAGE_READS)
        .bind(keys.tenant.0)
        .bind(json!(keys.event_ids).to_string())
        .bind(months_json)
        .bind(quota_json)
        .bind(json!(keys.month_names).to_string())
        .fetch_one(batch.conn())
        .await?;
    let earlier = parse_json::<Vec<(String, String, Option<String>, Option<i64>, Option<i64>, Option<i64>)>>(&earlier, "earlier events")?
        .into_iter()
        .map(|(id, status, rejection, billable, rated, charge)| {
            let outcome = super::usage::outcome_from_columns(&id, &status, rejection.as_deref(), billable, rated, charge)?;
            Ok((id, outcome))
        })
        .collect::<Result<_>>()?;
    let months = parse_json::<Vec<(i64, String, String, String, i64, i64, i64, i64, i64)>>(&months, "month rollups")?
        .into_iter()
        .map(|(account, product, month, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents)| {
            ((AccountId(account), product, month, attr), RollupAmounts { quantity_milli, billable_milli, events, rated_micros, charged_cents })
        })
        .collect();
    let quota = parse_json::<Vec<(i64, String, i64)>>(&quota, "quota")?.into_iter().map(|(account, day, used)| ((AccountId(account), day), used)).collect();
    let reads = super::usage::UsageReads {
        wallets: parse_wallets(parse_json(&wallets, "locked wallets")?)?,
        transfer_ids: parse_json::<Vec<i64>>(&ids, "transfer ids")?.into_iter().map(TransferId).collect(),
        earlier,
        accounts,
        months,
        quota,
        closed_months: parse_json(&closed, "closed months")?,
    };
    Ok((batch, reads))
}

/// The writes of a usage batch, before the charges are posted and committed.
pub(super) async fn usage_writes(batch: &mut Batch, writes: &super::usage::UsageWrites<'_>) -> Result<()> {
    let events: Vec<serde_json::Value> = writes
        .events
        .iter()
        .map(|e| {
            let (status, rejection, billable, rated, charge) = super::usage::outcome_columns(e.outcome);
            json!([e.event_id, e.account_id.map(|a| a.0), e.username, e.product_code, e.quantity_milli, e.occurred_at_us, e.attributes, status, rejection, billable, rated, charge])
        })
        .collect();
    let days: Vec<serde_json::Value> =
        writes.days.iter().map(|((account, product, day, attr), a)| json!([account.0, product, day, attr, a.quantity_milli, a.billable_milli, a.events, a.rated_micros, a.charged_cents])).collect();
    let months: Vec<serde_json::Value> = writes
        .months
        .iter()
        .map(|((account, product, month, attr), a, late)| json!([account.0, product, month, attr, a.quantity_milli, a.billable_milli, a.events, a.rated_micros, a.charged_cents, i64::from(*late)]))
        .collect();
    let quota: Vec<serde_json::Value> = writes.quota.iter().map(|((account, day), used)| json!([account.0, day, used])).collect();
    let written: i64 = sqlx::query(USAGE_WRITES)
        .bind(writes.tenant.0)
        .bind(writes.ingested_at_us)
        .bind(serde_json::Value::Array(events).to_string())
        .bind(serde_json::Value::Array(days).to_string())
        .bind(serde_json::Value::Array(months).to_string())
        .bind(serde_json::Value::Array(quota).to_string())
        .fetch_one(batch.conn())
        .await?
        .try_get(0)?;
    let expected = (writes.events.len() + writes.days.len() + writes.months.len() + writes.quota.len()) as i64;
    if written != expected {
        return Err(StorageError::corrupt(format!("a usage batch wrote {written} rows where {expected} were due")));
    }
    Ok(())
}

const CLOSE_ROW: &str = "json_build_array(account_id, product_code, month, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents)";

fn month_rows(text: &str) -> Result<Vec<super::close::MonthRow>> {
    use subledger_domain::ids::AccountId;
    use subledger_domain::usage::RollupAmounts;
    Ok(parse_json::<Vec<(i64, String, String, String, i64, i64, i64, i64, i64)>>(text, "month rows")?
        .into_iter()
        .map(|(account, product, month, attr, quantity_milli, billable_milli, events, rated_micros, charged_cents)| super::close::MonthRow {
            account: AccountId(account),
            product,
            month,
            attr,
            amounts: RollupAmounts { quantity_milli, billable_milli, events, rated_micros, charged_cents },
        })
        .collect())
}

fn totals(text: &str, what: &str) -> Result<super::close::ProductTotals> {
    use subledger_domain::ids::AccountId;
    Ok(parse_json::<Vec<(i64, String, i64)>>(text, what)?.into_iter().map(|(account, product, cents)| ((AccountId(account), product), cents)).collect())
}

/// Begins a month close: a transaction holding the tenant row (so two
/// processes closing the same month take turns), then the reads.
pub(super) async fn close_begin(store: &Store, tenant: TenantId, month: &str) -> Result<(Batch, super::close::CloseReads)> {
    use subledger_domain::ids::AccountId;
    let mut batch = Batch::Locked(store.writer().begin().await?);
    sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE").bind(tenant.0).execute(batch.conn()).await?;
    sqlx::query(CLOSE_LOCK_EXCLUSIVE).bind(tenant.0).execute(batch.conn()).await?;
    let late = super::close::late_groups("$1", "$2");
    let billed_months = super::close::billed_months("$1", "$2");
    let previous = super::close::previous_billed("$1", "$2", "TRUE");
    let sql = format!(
        "SELECT
          EXISTS (SELECT 1 FROM month_closes WHERE tenant_id = $1 AND month = $2),
          (SELECT COALESCE(json_agg({CLOSE_ROW})::text, '[]') FROM usage_monthly WHERE tenant_id = $1 AND month = $2),
          (SELECT COALESCE(json_agg({CLOSE_ROW})::text, '[]') FROM {late}),
          (SELECT COALESCE(json_agg(json_build_array(account_id, product_code, for_month, q, m))::text, '[]') FROM ({previous}) AS previous),
          (SELECT COALESCE(json_agg(json_build_array(account_id, product_code, c))::text, '[]') FROM
             (SELECT account_id, product_code, SUM(money_cents)::bigint AS c FROM bill_lines WHERE tenant_id = $1 GROUP BY account_id, product_code) AS billed),
          (SELECT COALESCE(json_agg(json_build_array(account_id, product_code, c))::text, '[]') FROM
             (SELECT account_id, product_code, SUM(charged_cents)::bigint AS c FROM usage_monthly WHERE tenant_id = $1 AND {billed_months} GROUP BY account_id, product_code) AS charged),
          (SELECT COALESCE(json_agg(json_build_array(account_id, product_code, c))::text, '[]') FROM
             (SELECT account_id, product_code, SUM(amount_cents)::bigint AS c FROM settlements WHERE tenant_id = $1 AND status = 'posted' GROUP BY account_id, product_code) AS settled)"
    );
    let (closed, month_json, late_json, previous_json, billed, charged, settled): (bool, String, String, String, String, String, String) =
        sqlx::query_as(&sql).bind(tenant.0).bind(month).fetch_one(batch.conn()).await?;
    let previous_billed = parse_json::<Vec<(i64, String, String, i64, i64)>>(&previous_json, "previous bills")?
        .into_iter()
        .map(|(account, product, for_month, quantity, cents)| ((AccountId(account), product, for_month), (quantity, cents)))
        .collect();
    let reads = super::close::CloseReads {
        already_closed: closed,
        month_rows: month_rows(&month_json)?,
        late_rows: month_rows(&late_json)?,
        previous_billed,
        billed: totals(&billed, "billed")?,
        charged: totals(&charged, "charged")?,
        settled: totals(&settled, "settled")?,
    };
    Ok((batch, reads))
}

pub(super) async fn settlement_wallets(
    batch: &mut Batch,
    tenant: TenantId,
    accounts: &[subledger_domain::ids::AccountId],
    revenue: WalletId,
    ids_needed: usize,
) -> Result<super::close::SettlementWallets> {
    use subledger_domain::ids::AccountId;
    let account_ids: Vec<i64> = accounts.iter().map(|a| a.0).collect();
    let text: String = sqlx::query_scalar(USAGE_ACCOUNTS).bind(tenant.0).bind(json!(account_ids).to_string()).fetch_one(batch.conn()).await?;
    let found: Vec<(AccountId, WalletId, WalletId)> = parse_json::<Vec<(i64, i64, String, i64, Option<i64>, Option<i64>)>>(&text, "accounts")?
        .into_iter()
        .filter_map(|(id, _, _, _, primary, promo)| Some((AccountId(id), WalletId(primary?), WalletId(promo?))))
        .collect();
    let mut ids: Vec<i64> = found.iter().flat_map(|(_, p, q)| [p.0, q.0]).chain([revenue.0]).collect();
    ids.sort_unstable();
    ids.dedup();
    let (wallets, _, transfer_ids): (String, String, String) = sqlx::query_as(READS_LOCKED).bind(json!(ids).to_string()).bind("[]").bind(ids_needed as i64).fetch_one(batch.conn()).await?;
    Ok(super::close::SettlementWallets {
        accounts: found,
        wallets: parse_wallets(parse_json(&wallets, "locked wallets")?)?,
        transfer_ids: parse_json::<Vec<i64>>(&transfer_ids, "transfer ids")?.into_iter().map(TransferId).collect(),
    })
}

const CLOSE_WRITES: &str = "WITH new_bills AS (
      INSERT INTO bills (tenant_id, account_id, month, total_cents, created_at_us)
      SELECT $1, (r->>0)::bigint, $2, (r->>1)::bigint, $3 FROM jsonb_array_elements($4::jsonb) AS r RETURNING 1),
    new_lines AS (
      INSERT INTO bill_lines (tenant_id, account_id, month, line_no, kind, for_month, product_code, order_type, description, unit,
                              quantity_milli, money_cents, previous_quantity_milli, previous_money_cents, detail)
      SELECT $1, (r->>0)::bigint, $2, (r->>1)::bigint, r->>2, r->>3, r->>4, (r->>5)::bigint, r->>6, r->>7, (r->>8)::bigint, (r->>9)::bigint, (r->>10)::bigint, (r->>11)::bigint, r->>12
      FROM jsonb_array_elements($5::jsonb) AS r RETURNING 1),
    new_settlements AS (
      INSERT INTO settlements (tenant_id, account_id, product_code, month, order_type, amount_cents, status, transfer_id, created_at_us)
      SELECT $1, (r->>0)::bigint, r->>1, $2, (r->>2)::bigint, (r->>3)::bigint, r->>4, (r->>5)::bigint, $3 FROM jsonb_array_elements($6::jsonb) AS r RETURNING 1),
    cleared AS (UPDATE usage_monthly SET late = 0 WHERE tenant_id = $1 AND late = 1 AND month < $2 RETURNING 1),
    closed AS (INSERT INTO month_closes (tenant_id, month, closed_at_us, accounts) VALUES ($1, $2, $3, $7) RETURNING 1)
    SELECT (SELECT COUNT(*) FROM new_bills) + (SELECT COUNT(*) FROM new_lines) + (SELECT COUNT(*) FROM new_settlements) + (SELECT COUNT(*) FROM closed)";

pub(super) async fn close_writes(batch: &mut Batch, writes: &super::close::CloseWrites<'_>) -> Result<()> {
    let bills: Vec<serde_json::Value> = writes.bills.iter().map(|(account, total)| json!([account.0, total])).collect();
    let lines: Vec<serde_json::Value> = writes
        .lines
        .iter()
        .map(|l| {
            json!([
                l.account.0,
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
        })
        .collect();
    let settlements: Vec<serde_json::Value> = writes
        .settlements
        .iter()
        .map(|s| json!([s.account.0, s.product_code, s.order_type, s.amount_cents, if s.transfer_id.is_some() { "posted" } else { "outstanding" }, s.transfer_id.map(|t| t.0)]))
        .collect();
    let written: i64 = sqlx::query(CLOSE_WRITES)
        .bind(writes.tenant.0)
        .bind(writes.month)
        .bind(writes.now_us)
        .bind(serde_json::Value::Array(bills).to_string())
        .bind(serde_json::Value::Array(lines).to_string())
        .bind(serde_json::Value::Array(settlements).to_string())
        .bind(writes.bills.len() as i64)
        .fetch_one(batch.conn())
        .await?
        .try_get(0)?;
    let expected = (writes.bills.len() + writes.lines.len() + writes.settlements.len() + 1) as i64;
    if written != expected {
        return Err(StorageError::corrupt(format!("a month close wrote {written} rows where {expected} were due")));
    }
    Ok(())
}
