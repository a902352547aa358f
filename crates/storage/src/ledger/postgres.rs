//! The ledger batch on PostgreSQL, through sqlx.
//!
//! A batch of any size costs the same few round trips: rows travel as one
//! `jsonb` array per table in a single text parameter, so every statement has
//! one fixed text, prepared once per connection, whatever the batch size. The
//! write is one statement with data-modifying CTEs. Each row is a JSON array
//! of its values in field order, taken apart by expressions generated from
//! the same field list (`rows::postgres_records`), and reads come back as
//! `json_agg` of `json_build_array` over the row's columns
//! (`rows::postgres_agg`): nothing here numbers a column by hand.
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

use std::sync::LazyLock;

use sqlx::Row as _;
use subledger_domain::ids::{AccountId, TenantId, TransferId, WalletId};
use subledger_domain::ledger::WalletState;
use subledger_domain::money::Currency;
use subledger_domain::usage::AccountTerms;

use super::close::{Chunk, CloseReads, CloseWrites, MonthRow, SettlementWallets};
use super::usage::{UsageKeys, UsageReads, UsageWrites};
use super::{BatchKeys, BatchReads, LedgerWrites, Locking, StoredHold, StoredTransfer};
use crate::rows::{
    self, AccountCurrencyKey, BillLineRow, BillRow, CardUpdate, EntryKey, EntryRow, HoldIdKey, HoldKey, HoldResolutionRow, HoldRow, MonthCloseRow, MonthClosingRow, MonthKey, PreviousBilledRow,
    ProductTotalRow, QuotaKey, QuotaRow, SettlementRow, SightingRow, SubscriptionRow, TimeCardRow, TransferKey, TransferRow, UsageAccountRow, UsageDayRow, UsageEventRow, UsageMonthRow, WalletRow,
    WalletUpdate, columns, from_json, json,
};
use crate::{Result, StorageError, Store};

/// The batch's reads in one statement; `lock` is `FOR UPDATE` or nothing.
fn batch_reads(lock: &str) -> String {
    format!(
        "SELECT
          (SELECT {wallets} FROM
             (SELECT {wallet_columns} FROM wallets WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::bigint)) ORDER BY id {lock}) AS w),
          (SELECT {transfers} FROM {keys},
                  LATERAL (SELECT {transfer_columns} FROM transfers WHERE {key_match} LIMIT 1) AS t),
          (SELECT COALESCE(json_agg(nextval('transfer_ids'))::text, '[]') FROM generate_series(1, $3))",
        wallets = rows::postgres_agg::<WalletRow<String>>("w"),
        wallet_columns = columns::<WalletRow<String>>(None),
        transfers = rows::postgres_agg::<TransferRow<String>>("t"),
        keys = rows::postgres_records::<TransferKey<String>>(2, "k"),
        transfer_columns = columns::<TransferRow<String>>(None),
        key_match = rows::postgres_match::<TransferKey<String>>("transfers", "k"),
    )
}

static READS_LOCKED: LazyLock<String> = LazyLock::new(|| batch_reads("FOR UPDATE"));
static READS_UNLOCKED: LazyLock<String> = LazyLock::new(|| batch_reads(""));

/// The holds named by key ($1) and by id ($2), read after the wallets so
/// that, under their locks, they are read as last committed.
static HOLD_READS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT
          (SELECT {holds} FROM {keys}, LATERAL (SELECT {hold_columns} FROM holds WHERE {key_match} LIMIT 1) AS h),
          (SELECT {holds} FROM {ids}, LATERAL (SELECT {hold_columns} FROM holds WHERE {id_match} LIMIT 1) AS h)",
        holds = rows::postgres_agg::<HoldRow<String>>("h"),
        hold_columns = columns::<HoldRow<String>>(None),
        keys = rows::postgres_records::<HoldKey<String>>(1, "k"),
        key_match = rows::postgres_match::<HoldKey<String>>("holds", "k"),
        ids = rows::postgres_records::<HoldIdKey>(2, "k"),
        id_match = rows::postgres_match::<HoldIdKey>("holds", "k"),
    )
});

static ENTRIES_AT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM {}, LATERAL (SELECT {} FROM entries WHERE {} LIMIT 1) AS e",
        rows::postgres_agg::<EntryRow>("e"),
        rows::postgres_records::<EntryKey>(1, "k"),
        columns::<EntryRow>(None),
        rows::postgres_match::<EntryKey>("entries", "k")
    )
});

/// Holds are resolved only while pending, and wallets updated only while as
/// read: any other count fails the statement as a serialization failure
/// (`subledger_expect_rows`), and the batch runs again under locks.
static WRITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH new_transfers AS ({transfers} RETURNING 1),
        new_entries AS ({entries} RETURNING 1),
        new_holds AS ({holds} RETURNING 1),
        new_operations AS ({operations} RETURNING 1),
        resolved_holds AS (
          UPDATE holds SET state = r.state, resolved_at_us = r.resolved_at_us,
                 posted_transfer_id = r.posted_transfer_id, posted_amount_minor = r.posted_amount_minor
          FROM {resolutions}
          WHERE holds.id = ANY(ARRAY(SELECT h.id FROM {resolution_ids}))
            AND holds.id = r.id AND holds.state = 'pending' RETURNING 1),
        new_balances AS (
          UPDATE wallets SET balance_minor = r.balance_minor, entry_seq = r.entry_seq, reserved_minor = r.reserved_minor
          FROM {updates}
          WHERE wallets.id = ANY(ARRAY(SELECT w.id FROM {ids}))
            AND wallets.id = r.id AND wallets.entry_seq = r.entry_seq_read
            AND wallets.floor_minor IS NOT DISTINCT FROM r.floor_minor
            AND wallets.reserved_minor = r.reserved_minor_read RETURNING 1)
        SELECT (SELECT COUNT(*) FROM new_transfers) + (SELECT COUNT(*) FROM new_entries) + (SELECT COUNT(*) FROM new_holds) + (SELECT COUNT(*) FROM new_operations)
             + subledger_expect_rows((SELECT COUNT(*) FROM resolved_holds), $6)
             + subledger_expect_rows((SELECT COUNT(*) FROM new_balances), $4)",
        transfers = rows::postgres_insert::<TransferRow<&str>>(1),
        entries = rows::postgres_insert::<EntryRow>(2),
        updates = rows::postgres_records::<WalletUpdate>(3, "r"),
        ids = rows::postgres_records::<WalletUpdate>(3, "w"),
        holds = rows::postgres_insert::<HoldRow<&str>>(5),
        resolutions = rows::postgres_records::<HoldResolutionRow<String>>(7, "r"),
        resolution_ids = rows::postgres_records::<HoldResolutionRow<String>>(7, "h"),
        operations = rows::postgres_insert::<crate::rows::OperationRow<&str>>(8),
    )
});

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

/// Runs [`batch_reads`]: the wallets (ids in `wallet_ids`), the transfers
/// recorded under `keys` and `ids_needed` fresh transfer ids.
async fn read_batch(
    batch: &mut Batch,
    statement: &str,
    wallet_ids: &[i64],
    keys: &[TransferKey<&str>],
    ids_needed: usize,
) -> Result<(Vec<(TenantId, WalletState)>, Vec<StoredTransfer>, Vec<TransferId>)> {
    let (wallets, earlier, ids): (String, String, String) = sqlx::query_as(statement).bind(json(wallet_ids)).bind(json(keys)).bind(ids_needed as i64).fetch_one(batch.conn()).await?;
    Ok((
        from_json::<WalletRow<String>>(&wallets, "locked wallets")?.into_iter().map(WalletRow::state).collect::<Result<_>>()?,
        from_json::<TransferRow<String>>(&earlier, "earlier transfers")?.into_iter().map(StoredTransfer::try_from).collect::<Result<_>>()?,
        from_json::<i64>(&ids, "transfer ids")?.into_iter().map(TransferId).collect(),
    ))
}

pub(super) async fn begin(store: &Store, wallet_ids: &[i64], keys: &BatchKeys<'_>, locking: Locking) -> Result<(Batch, BatchReads)> {
    let transfer_keys: Vec<TransferKey<&str>> = keys.transfer_keys.iter().map(|(tenant, key)| TransferKey { tenant_id: tenant.0, idempotency_key: *key }).collect();
    let (mut batch, statement) = match locking {
        Locking::Optimistic => (Batch::Optimistic(store.writer().acquire().await?), &*READS_UNLOCKED),
        Locking::Pessimistic => (Batch::Locked(store.writer().begin().await?), &*READS_LOCKED),
    };
    let (wallets, earlier, transfer_ids) = read_batch(&mut batch, statement, wallet_ids, &transfer_keys, keys.ids_needed).await?;
    let (earlier_holds, holds) = if keys.hold_keys.is_empty() && keys.hold_ids.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let hold_keys: Vec<HoldKey<&str>> = keys.hold_keys.iter().map(|(tenant, key)| HoldKey { tenant_id: tenant.0, idempotency_key: *key }).collect();
        let hold_ids: Vec<HoldIdKey> = keys.hold_ids.iter().map(|(tenant, id)| HoldIdKey { tenant_id: tenant.0, id: id.0 }).collect();
        let (by_key, by_id): (String, String) = sqlx::query_as(&HOLD_READS).bind(json(&hold_keys)).bind(json(&hold_ids)).fetch_one(batch.conn()).await?;
        let holds = |text: &str, what: &str| -> Result<Vec<StoredHold>> { from_json::<HoldRow<String>>(text, what)?.into_iter().map(StoredHold::try_from).collect() };
        (holds(&by_key, "earlier holds")?, holds(&by_id, "holds")?)
    };
    Ok((batch, BatchReads { wallets, earlier, earlier_holds, holds, transfer_ids }))
}

/// Locks and reads wallets and draws transfer ids, inside a locked batch.
async fn lock_wallets(batch: &mut Batch, wallet_ids: &[i64], ids_needed: usize) -> Result<(Vec<(TenantId, WalletState)>, Vec<TransferId>)> {
    let (wallets, _, transfer_ids) = read_batch(batch, &READS_LOCKED, wallet_ids, &[], ids_needed).await?;
    Ok((wallets, transfer_ids))
}

pub(super) async fn entries_at(batch: &mut Batch, keys: &[EntryKey]) -> Result<Vec<EntryRow>> {
    let text: String = sqlx::query_scalar(&ENTRIES_AT).bind(json(keys)).fetch_one(batch.conn()).await?;
    from_json(&text, "entries")
}

pub(super) async fn finish(batch: Batch, writes: &LedgerWrites) -> Result<()> {
    match batch {
        Batch::Locked(mut tx) => {
            write_all(&mut tx, writes).await?;
            Ok(tx.commit().await?)
        }
        // The write statement is its own transaction, operations included.
        Batch::Optimistic(mut conn) if !writes.records.need_transaction() => write_rows(&mut conn, writes).await,
        // Sightings need a transaction shared with the write (each must be the first). The write still
        // checks every wallet as read, so nothing the batch decided can have
        // changed unseen.
        Batch::Optimistic(mut conn) => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            write_all(&mut tx, writes).await?;
            Ok(tx.commit().await?)
        }
    }
}

/// The records that go with the batch's changes, then its rows.
async fn write_all(conn: &mut sqlx::AnyConnection, writes: &LedgerWrites) -> Result<()> {
    crate::records::write_sightings(conn, &writes.records, crate::now_ms()).await?;
    crate::records::write_ad_money(conn, &writes.records).await?;
    write_rows(conn, writes).await
}

/// The batch's transfers, entries, holds and wallets, in one statement.
async fn write_rows(conn: &mut sqlx::AnyConnection, writes: &LedgerWrites) -> Result<()> {
    if writes.transfers.is_empty() && writes.holds_opened.is_empty() && writes.holds_resolved.is_empty() && writes.wallets.is_empty() && writes.records.operations.is_empty() {
        return Ok(());
    }
    // A wallet is updated only if neither its entries, its floor nor its
    // reservation changed since the batch read it: an optimistic batch
    // checked its debits against the floor it read, and an overdraft change
    // made meanwhile (`wallets::set_floor`) must send it round again, locked.
    let transfer_rows: Vec<TransferRow<&str>> = writes.transfers.iter().map(TransferRow::from).collect();
    let entry_rows: Vec<EntryRow> = writes.entries.iter().map(EntryRow::from).collect();
    let updates: Vec<WalletUpdate> = writes.wallets.iter().map(|(wallet, read)| WalletUpdate::of(wallet, *read)).collect();
    let hold_rows: Vec<HoldRow<&str>> = writes.holds_opened.iter().map(HoldRow::from).collect();
    let resolutions: Vec<HoldResolutionRow<&str>> = writes.holds_resolved.iter().map(|(id, state, at_us)| HoldResolutionRow::of(*id, *state, Some(*at_us))).collect();
    let operations = crate::records::operation_rows(&writes.records, crate::now_us());
    let written = sqlx::query(&WRITE)
        .bind(json(&transfer_rows))
        .bind(json(&entry_rows))
        .bind(json(&updates))
        .bind(updates.len() as i64)
        .bind(json(&hold_rows))
        .bind(resolutions.len() as i64)
        .bind(json(&resolutions))
        .bind(json(&operations))
        .fetch_one(conn)
        .await?
        .try_get::<i64, _>(0)?;
    expect_written(written, writes.transfers.len() + writes.entries.len() + hold_rows.len() + resolutions.len() + updates.len() + operations.len(), "a ledger batch")
}

fn expect_written(written: i64, expected: usize, what: &str) -> Result<()> {
    if written == expected as i64 { Ok(()) } else { Err(StorageError::corrupt(format!("{what} wrote {written} rows where {expected} were due"))) }
}

/// Records sightings, many rows at once; the rows it returns are the first sightings.
static RECORD_SIGHTINGS: LazyLock<String> =
    LazyLock::new(|| format!("{} {} RETURNING tenant_id, signature", rows::postgres_insert::<SightingRow<&str>>(1), crate::signed_requests::record_sighting_conflict("$2")));

pub(super) async fn record_sightings(store: &Store, sightings: &[crate::signed_requests::Sighting], now_ms: i64) -> Result<Vec<bool>> {
    use std::collections::HashSet;
    // One statement cannot touch a row twice: a request repeated within the
    // call is a replay of its first occurrence, decided here.
    let mut unique = HashSet::with_capacity(sightings.len());
    let rows: Vec<SightingRow<&str>> = sightings.iter().filter(|s| unique.insert((s.tenant, s.signature.as_str()))).map(SightingRow::from).collect();
    let recorded: Vec<(i64, String)> = sqlx::query_as(&RECORD_SIGHTINGS).bind(json(&rows)).bind(now_ms).fetch_all(store.writer()).await?;
    let mut recorded: HashSet<(i64, String)> = recorded.into_iter().collect();
    Ok(sightings.iter().map(|s| recorded.remove(&(s.tenant.0, s.signature.clone()))).collect())
}

/// Each key's account by primary key (`LATERAL … LIMIT 1`, so that the plan
/// is an index probe per key whatever the statistics), kept if it is the tenant's.
static USAGE_ACCOUNTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM {}, LATERAL ({} WHERE a.id = k.id LIMIT 1) AS q WHERE q.tenant_id = k.tenant_id",
        rows::postgres_agg::<UsageAccountRow<String>>("q"),
        rows::postgres_records::<AccountCurrencyKey<String>>(1, "k"),
        rows::usage_account_select("k.currency")
    )
});

static USAGE_READS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT
          (SELECT {events} FROM jsonb_array_elements_text($2::jsonb) AS k,
                  LATERAL (SELECT {event_columns} FROM usage_events WHERE tenant_id = $1 AND event_id = k LIMIT 1) AS e),
          (SELECT {months} FROM {month_keys},
                  LATERAL (SELECT {month_columns} FROM usage_monthly WHERE {month_match}) AS m),
          (SELECT {quota} FROM {quota_keys},
                  LATERAL (SELECT {quota_columns} FROM quota_usage WHERE {quota_match} LIMIT 1) AS q),
          (SELECT {closes} FROM (SELECT {close_columns} FROM month_closes
             WHERE tenant_id = $1 AND month = ANY(ARRAY(SELECT jsonb_array_elements_text($5::jsonb)))) AS c),
          (SELECT {closings} FROM (SELECT {closing_columns} FROM month_closings
             WHERE tenant_id = $1 AND month = ANY(ARRAY(SELECT jsonb_array_elements_text($5::jsonb)))) AS c)",
        events = rows::postgres_agg::<UsageEventRow<String>>("e"),
        event_columns = columns::<UsageEventRow<String>>(None),
        months = rows::postgres_agg::<UsageMonthRow<String>>("m"),
        month_keys = rows::postgres_records::<MonthKey<String>>(3, "k"),
        month_columns = columns::<UsageMonthRow<String>>(None),
        month_match = rows::postgres_match::<MonthKey<String>>("usage_monthly", "k"),
        quota = rows::postgres_agg::<QuotaRow<String>>("q"),
        quota_keys = rows::postgres_records::<QuotaKey<String>>(4, "k"),
        quota_columns = columns::<QuotaRow<String>>(None),
        quota_match = rows::postgres_match::<QuotaKey<String>>("quota_usage", "k"),
        closes = rows::postgres_agg::<MonthCloseRow<String>>("c"),
        close_columns = columns::<MonthCloseRow<String>>(None),
        closings = rows::postgres_agg::<MonthClosingRow<String>>("c"),
        closing_columns = columns::<MonthClosingRow<String>>(None),
    )
});

/// The usable time cards of the batch ($1 tenant; expiring after $2; of the
/// accounts in $3, or shared), locked in id order like the wallets.
static USABLE_CARDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {cards} FROM (SELECT {columns} FROM time_cards
           WHERE tenant_id = $1 AND state = 'active' AND minutes_left > 0 AND expires_at_us > $2
             AND (account_id IS NULL OR account_id = ANY(ARRAY(SELECT jsonb_array_elements_text($3::jsonb)::bigint)))
           ORDER BY id FOR UPDATE) AS c",
        cards = rows::postgres_agg::<TimeCardRow<String>>("c"),
        columns = columns::<TimeCardRow<String>>(None),
    )
});

/// A card's minutes left are written only as read (they are locked since:
/// the check guards against a bug); any other count fails the batch.
static USAGE_WRITES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH new_events AS ({events} RETURNING 1),
        days AS ({days} {day_conflict} RETURNING 1),
        months AS ({months} {month_conflict} RETURNING 1),
        quota AS ({quota} {quota_conflict} RETURNING 1),
        cards AS (
          UPDATE time_cards SET minutes_left = r.minutes_left, updated_at_us = r.updated_at_us
          FROM {card_updates}
          WHERE time_cards.id = ANY(ARRAY(SELECT c.id FROM {card_ids}))
            AND time_cards.id = r.id AND time_cards.minutes_left = r.minutes_left_read RETURNING 1)
        SELECT (SELECT COUNT(*) FROM new_events) + (SELECT COUNT(*) FROM days) + (SELECT COUNT(*) FROM months) + (SELECT COUNT(*) FROM quota)
             + subledger_expect_rows((SELECT COUNT(*) FROM cards), $6)",
        events = rows::postgres_insert::<UsageEventRow<&str>>(1),
        days = rows::postgres_insert::<UsageDayRow<&str>>(2),
        day_conflict = *super::usage::DAY_CONFLICT,
        months = rows::postgres_insert::<UsageMonthRow<&str>>(3),
        month_conflict = *super::usage::MONTH_CONFLICT,
        quota = rows::postgres_insert::<QuotaRow<&str>>(4),
        quota_conflict = super::usage::QUOTA_CONFLICT,
        card_updates = rows::postgres_records::<CardUpdate>(5, "r"),
        card_ids = rows::postgres_records::<CardUpdate>(5, "c"),
    )
});

/// A tenant's month-close lock (a transaction-scoped advisory lock, keyed by
/// the tenant in its own namespace): usage batches hold it shared, a close
/// exclusively. Without it, a batch in another process (or in flight beside
/// the close) could read a month as open, then commit its usage after the
/// close read the month's rollups: usage neither billed nor flagged late.
/// Advisory locks live in memory, so sharing it costs no row write.
const CLOSE_LOCK_SHARED: &str = "SELECT pg_advisory_xact_lock_shared(1398096460, ($1::bigint % 2147483647)::int)";
const CLOSE_LOCK_EXCLUSIVE: &str = "SELECT pg_advisory_xact_lock(1398096460, ($1::bigint % 2147483647)::int)";

/// The accounts among `accounts` that exist, with their terms and their
/// wallets of the currencies asked for.
async fn usage_accounts(batch: &mut Batch, tenant: TenantId, accounts: &[(AccountId, Currency)]) -> Result<Vec<AccountTerms>> {
    let text: String = sqlx::query_scalar(&USAGE_ACCOUNTS).bind(json(&super::usage::account_keys(tenant, accounts))).fetch_one(batch.conn()).await?;
    rows::usage_accounts(from_json::<UsageAccountRow<String>>(&text, "accounts")?)
}

/// Begins a usage batch: a transaction with the tenant's close lock shared,
/// the accounts' and the revenue wallet locked, and everything the engine reads.
pub(super) async fn usage_begin(store: &Store, keys: &UsageKeys<'_>) -> Result<(Batch, UsageReads)> {
    let mut batch = Batch::Locked(store.writer().begin().await?);
    sqlx::query(CLOSE_LOCK_SHARED).bind(keys.tenant.0).execute(batch.conn()).await?;
    let accounts = usage_accounts(&mut batch, keys.tenant, keys.accounts).await?;
    let (wallets, transfer_ids) = lock_wallets(&mut batch, &super::usage::wallets_to_lock(&accounts, keys.revenue), keys.ids_needed).await?;
    let months: Vec<MonthKey<&str>> = keys.months.iter().map(|(account, product, month)| MonthKey { account_id: account.0, product_code: *product, month: *month }).collect();
    let quota: Vec<QuotaKey<&str>> = keys.quota_days.iter().map(|(account, day)| QuotaKey { account_id: account.0, day: *day }).collect();
    let (earlier, months, quota, closed, closing): (String, String, String, String, String) =
        sqlx::query_as(&USAGE_READS).bind(keys.tenant.0).bind(json(keys.event_ids)).bind(json(&months)).bind(json(&quota)).bind(json(keys.month_names)).fetch_one(batch.conn()).await?;
    let cards: Vec<TimeCardRow<String>> = if keys.card_accounts.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<i64> = keys.card_accounts.iter().map(|a| a.0).collect();
        let text: String = sqlx::query_scalar(&USABLE_CARDS).bind(keys.tenant.0).bind(keys.cards_after_us).bind(json(&ids)).fetch_one(batch.conn()).await?;
        from_json(&text, "time cards")?
    };
    let reads = super::usage::reads(
        (wallets, transfer_ids),
        from_json(&earlier, "earlier events")?,
        accounts,
        from_json(&months, "month rollups")?,
        from_json(&quota, "quota")?,
        (from_json(&closed, "closed months")?, from_json(&closing, "closing months")?),
        cards,
    )?;
    Ok((batch, reads))
}

/// The writes of a usage batch, before the charges are posted and committed.
pub(super) async fn usage_writes(batch: &mut Batch, writes: &UsageWrites<'_>) -> Result<()> {
    let written: i64 = sqlx::query(&USAGE_WRITES)
        .bind(json(&writes.event_rows().collect::<Vec<_>>()))
        .bind(json(&writes.day_rows().collect::<Vec<_>>()))
        .bind(json(&writes.month_rows().collect::<Vec<_>>()))
        .bind(json(&writes.quota_rows().collect::<Vec<_>>()))
        .bind(json(&writes.card_rows().collect::<Vec<_>>()))
        .bind(writes.cards.len() as i64)
        .fetch_one(batch.conn())
        .await?
        .try_get(0)?;
    expect_written(written, writes.events.len() + writes.days.len() + writes.months.len() + writes.quota.len() + writes.cards.len(), "a usage batch")
}

/// Whether the month is closed, how far its close got, and the tenant's next
/// accounts after the last one billed ($3: at most this many).
static CLOSE_STATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT
          EXISTS (SELECT 1 FROM month_closes WHERE tenant_id = $1 AND month = $2),
          (SELECT {p} FROM (SELECT {progress_columns} FROM month_closings WHERE tenant_id = $1 AND month = $2) AS p),
          (SELECT COALESCE(json_agg(a.id ORDER BY a.id)::text, '[]') FROM
             (SELECT id FROM accounts WHERE tenant_id = $1
                AND id > COALESCE((SELECT last_account_id FROM month_closings WHERE tenant_id = $1 AND month = $2), 0)
              ORDER BY id LIMIT $3) AS a)",
        p = rows::postgres_agg::<MonthClosingRow<String>>("p"),
        progress_columns = columns::<MonthClosingRow<String>>(None),
    )
});

/// What a chunk needs of its accounts ($3 < id <= $4).
static CLOSE_READS: LazyLock<String> = LazyLock::new(|| {
    let month_columns = columns::<UsageMonthRow<String>>(Some("usage_monthly"));
    let chunk = super::close::in_chunk("$3", "$4");
    format!(
        "SELECT
          (SELECT {m} FROM (SELECT {month_columns} FROM usage_monthly WHERE tenant_id = $1 AND month = $2 AND {chunk}) AS m),
          (SELECT {m} FROM (SELECT {month_columns} FROM {late}) AS m),
          (SELECT {p} FROM ({previous}) AS p),
          (SELECT {t} FROM ({billed}) AS t),
          (SELECT {t} FROM ({charged}) AS t),
          (SELECT {t} FROM ({settled}) AS t),
          (SELECT {s} FROM ({subscriptions}) AS s)",
        m = rows::postgres_agg::<UsageMonthRow<String>>("m"),
        p = rows::postgres_agg::<PreviousBilledRow<String>>("p"),
        t = rows::postgres_agg::<ProductTotalRow<String>>("t"),
        late = super::close::late_groups("$1", "$2", &chunk),
        previous = super::close::previous_billed("$1", "$2", &chunk),
        billed = super::close::billed_totals("$1", &chunk),
        charged = super::close::charged_totals("$1", "$2", &chunk),
        settled = super::close::settled_totals("$1", &chunk),
        s = rows::postgres_agg::<SubscriptionRow<String>>("s"),
        subscriptions = crate::subscriptions::in_window("$1", &chunk, "$5", "$6"),
    )
});

/// Begins a chunk of a month close: a transaction holding the tenant row (so
/// two processes closing the same month take turns, chunk by chunk, each
/// reading where the other left off) and the tenant's close lock, then the reads.
pub(super) async fn close_begin(store: &Store, tenant: TenantId, month: &str, (from_us, until_us): (i64, i64), accounts_max: usize) -> Result<(Batch, CloseReads)> {
    let mut batch = Batch::Locked(store.writer().begin().await?);
    sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE").bind(tenant.0).execute(batch.conn()).await?;
    sqlx::query(CLOSE_LOCK_EXCLUSIVE).bind(tenant.0).execute(batch.conn()).await?;
    let limit = i64::try_from(accounts_max).unwrap_or(i64::MAX).saturating_add(1);
    let (already_closed, progress, next_ids): (bool, String, String) = sqlx::query_as(&CLOSE_STATE).bind(tenant.0).bind(month).bind(limit).fetch_one(batch.conn()).await?;
    if already_closed {
        return Ok((batch, super::close::closed_reads()));
    }
    let progress = from_json::<MonthClosingRow<String>>(&progress, "close progress")?.into_iter().next().map(MonthClosingRow::progress);
    let chunk = Chunk::of(progress.map_or(AccountId(0), |p| p.last_account), &from_json::<i64>(&next_ids, "accounts")?, accounts_max);
    let key = chunk.key(tenant, month);
    let (month_rows, late_rows, previous, billed, charged, settled, subscriptions): (String, String, String, String, String, String, String) =
        sqlx::query_as(&CLOSE_READS).bind(tenant.0).bind(month).bind(key.after_account_id).bind(key.through_account_id).bind(from_us).bind(until_us).fetch_one(batch.conn()).await?;
    let rollups = |text: &str, what: &str| -> Result<Vec<MonthRow>> { from_json::<UsageMonthRow<String>>(text, what)?.into_iter().map(MonthRow::try_from).collect() };
    let totals = |text: &str, what: &str| -> Result<super::close::ProductTotals> { Ok(from_json::<ProductTotalRow<String>>(text, what)?.into_iter().map(ProductTotalRow::entry).collect()) };
    let reads = CloseReads {
        already_closed,
        progress,
        chunk,
        month_rows: rollups(&month_rows, "month rows")?,
        late_rows: rollups(&late_rows, "late rows")?,
        previous_billed: from_json::<PreviousBilledRow<String>>(&previous, "previous bills")?.into_iter().map(PreviousBilledRow::entry).collect(),
        billed: totals(&billed, "billed")?,
        charged: totals(&charged, "charged")?,
        settled: totals(&settled, "settled")?,
        subscriptions: from_json::<SubscriptionRow<String>>(&subscriptions, "subscriptions")?.into_iter().map(Into::into).collect(),
    };
    Ok((batch, reads))
}

pub(super) async fn settlement_wallets(batch: &mut Batch, tenant: TenantId, accounts: &[(AccountId, Currency)], revenue: &[WalletId], ids_needed: usize) -> Result<SettlementWallets> {
    let accounts = usage_accounts(batch, tenant, accounts).await?;
    let (wallets, transfer_ids) = lock_wallets(batch, &super::usage::wallets_to_lock(&accounts, revenue), ids_needed).await?;
    Ok(SettlementWallets { accounts, wallets, transfer_ids })
}

/// A chunk's writes in one statement: its bills, lines and settlements, its
/// late flags cleared ($5 tenant, $6 month, $7 < account <= $8), and either
/// the close's progress ($9, not the last chunk) or the month closed ($4,
/// the last chunk, which also forgets the progress).
static CLOSE_WRITES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH new_bills AS ({bills} RETURNING 1),
        new_lines AS ({lines} RETURNING 1),
        new_settlements AS ({settlements} RETURNING 1),
        cleared AS ({clear} RETURNING 1),
        closed AS ({close} RETURNING 1),
        progress AS ({progress} {progress_conflict} RETURNING 1),
        finished AS (DELETE FROM month_closings WHERE tenant_id = $5 AND month = $6 AND jsonb_array_length($4::jsonb) > 0 RETURNING 1)
        SELECT (SELECT COUNT(*) FROM new_bills) + (SELECT COUNT(*) FROM new_lines) + (SELECT COUNT(*) FROM new_settlements) + (SELECT COUNT(*) FROM closed) + (SELECT COUNT(*) FROM progress)",
        bills = rows::postgres_insert::<BillRow<&str>>(1),
        lines = rows::postgres_insert::<BillLineRow<&str>>(2),
        settlements = rows::postgres_insert::<SettlementRow<&str>>(3),
        close = rows::postgres_insert::<MonthCloseRow<&str>>(4),
        clear = super::close::clear_late("$5", "$6", &super::close::in_chunk("$7", "$8")),
        progress = rows::postgres_insert::<MonthClosingRow<&str>>(9),
        progress_conflict = *super::close::PROGRESS_CONFLICT,
    )
});

pub(super) async fn close_writes(batch: &mut Batch, writes: &CloseWrites<'_>) -> Result<()> {
    let key = writes.chunk_key();
    let closed: Vec<_> = writes.close_rows().into_iter().collect();
    let progress: Vec<_> = writes.progress_rows().into_iter().collect();
    let written: i64 = sqlx::query(&CLOSE_WRITES)
        .bind(json(&writes.bill_rows().collect::<Vec<_>>()))
        .bind(json(&writes.line_rows().collect::<Vec<_>>()))
        .bind(json(&writes.settlement_rows().collect::<Vec<_>>()))
        .bind(json(&closed))
        .bind(writes.tenant.0)
        .bind(writes.month)
        .bind(key.after_account_id)
        .bind(key.through_account_id)
        .bind(json(&progress))
        .fetch_one(batch.conn())
        .await?
        .try_get(0)?;
    expect_written(written, writes.bills.len() + writes.lines.len() + writes.settlements.len() + closed.len() + progress.len(), "a month close")
}
