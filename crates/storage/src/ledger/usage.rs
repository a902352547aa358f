//! Usage ingestion's storage: one transaction per batch of events, on the
//! ledger writer. It reads what the usage engine needs under the write lock
//! (SQLite) or the wallets' row locks (PostgreSQL), then writes the events,
//! their rollups, the quota counts, the time cards' minutes consumed and the
//! charges, and commits.
//!
//! Time cards are read with the batch's other reads, under the same lock
//! (SQLite's write lock; on PostgreSQL `FOR UPDATE`, in id order), and only
//! for batches with events cards may cover; a card's minutes left are
//! written only if still as read, so two batches never consume one minute.

use std::sync::LazyLock;

use subledger_domain::ids::{AccountId, TenantId, TransferId, WalletId};
use subledger_domain::ledger::WalletState;
use subledger_domain::money::Currency;
use subledger_domain::timecards::{Card, CardChange};
use subledger_domain::usage::{AccountTerms, Outcome, RollupAmounts};

use super::close::MonthRow;
use super::{BatchInner, BatchTx, LedgerWriter, WriterInner, postgres, sqlite};
use crate::Result;
use crate::rows::{AccountCurrencyKey, CardHolderKey, CardUpdate, MonthCloseRow, MonthClosingRow, QuotaRow, TimeCardRow, UsageDayRow, UsageEventRow, UsageMonthRow};

/// What the batch reads, and which wallets it must lock.
pub struct UsageKeys<'a> {
    pub tenant: TenantId,
    pub event_ids: &'a [&'a str],
    /// The accounts, each with a currency whose wallets the batch charges.
    pub accounts: &'a [(AccountId, Currency)],
    /// (account, product, month) whose month-to-date rollups matter.
    pub months: &'a [(AccountId, &'a str, &'a str)],
    /// (account, day) whose quota use matters.
    pub quota_days: &'a [(AccountId, &'a str)],
    /// The months of the batch, to learn which are closed.
    pub month_names: &'a [&'a str],
    /// The tenant's revenue wallets of the batch's currencies.
    pub revenue: &'a [WalletId],
    /// Transfer ids to draw (two per account and currency at most: promo and primary).
    pub ids_needed: usize,
    /// Accounts with events time cards may cover: their cards and the
    /// tenant's shared ones are read (none when empty).
    pub card_accounts: &'a [AccountId],
    /// The earliest instant of those events: cards expired by then are left out.
    pub cards_after_us: i64,
}

impl UsageKeys<'_> {
    /// The holders whose usable cards the batch reads: each account, and the
    /// tenant's shared cards (no account).
    pub(crate) fn card_holders(&self) -> Vec<CardHolderKey> {
        if self.card_accounts.is_empty() {
            return Vec::new();
        }
        let holder = |account: Option<AccountId>| CardHolderKey { tenant_id: self.tenant.0, account_id: account.map(|a| a.0), after_us: self.cards_after_us };
        self.card_accounts.iter().map(|a| holder(Some(*a))).chain([holder(None)]).collect()
    }
}

pub struct UsageReads {
    pub wallets: Vec<(TenantId, WalletState)>,
    pub transfer_ids: Vec<TransferId>,
    pub earlier: Vec<(String, Outcome)>,
    /// The accounts that exist, each with its wallets of the currencies
    /// asked for (those it has).
    pub accounts: Vec<AccountTerms>,
    /// (account, product, month, attr) → amounts.
    pub months: Vec<((AccountId, String, String, String), RollupAmounts)>,
    pub quota: Vec<((AccountId, String), i64)>,
    pub closed_months: Vec<String>,
    /// Months of the batch whose close is under way, with the last account
    /// it billed: usage of those accounts is late, of the others not.
    pub closing_months: Vec<(String, AccountId)>,
    /// The usable time cards of the batch's card accounts and the shared ones, locked.
    pub cards: Vec<Card>,
}

/// An event to store with its outcome.
pub struct NewUsageEvent<'a> {
    pub event_id: &'a str,
    pub account_id: Option<AccountId>,
    pub username: &'a str,
    pub product_code: &'a str,
    pub quantity_milli: i64,
    pub occurred_at_us: i64,
    pub attributes: Option<&'a str>,
    pub outcome: &'a Outcome,
}

/// (account, product, day or month, attr): the key of a rollup row.
pub type RollupKey = (AccountId, String, String, String);

/// The rollup and counter changes of a batch.
pub struct UsageWrites<'a> {
    pub tenant: TenantId,
    pub ingested_at_us: i64,
    pub events: &'a [NewUsageEvent<'a>],
    /// (account, product, day, attr) additions.
    pub days: &'a [(&'a RollupKey, &'a RollupAmounts)],
    /// (account, product, month, attr) additions, and whether the month is closed (late usage).
    pub months: &'a [(&'a RollupKey, &'a RollupAmounts, bool)],
    pub quota: &'a [(&'a (AccountId, String), i64)],
    /// The time cards consumed from.
    pub cards: &'a [CardChange],
}

impl<'a> UsageWrites<'a> {
    pub(crate) fn event_rows(&self) -> impl Iterator<Item = UsageEventRow<&'a str>> + '_ {
        self.events.iter().map(|e| UsageEventRow::of(self.tenant, self.ingested_at_us, e))
    }

    pub(crate) fn day_rows(&self) -> impl Iterator<Item = UsageDayRow<&'a str>> + '_ {
        self.days.iter().map(|(key, amounts)| UsageDayRow::of(self.tenant, key, amounts))
    }

    pub(crate) fn month_rows(&self) -> impl Iterator<Item = UsageMonthRow<&'a str>> + '_ {
        self.months.iter().map(|(key, amounts, late)| UsageMonthRow::of(self.tenant, key, amounts, *late))
    }

    pub(crate) fn quota_rows(&self) -> impl Iterator<Item = QuotaRow<&'a str>> + '_ {
        self.quota.iter().map(|((account, day), used)| QuotaRow { account_id: account.0, day: day.as_str(), tenant_id: self.tenant.0, used: *used })
    }

    pub(crate) fn card_rows(&self) -> impl Iterator<Item = CardUpdate> + '_ {
        self.cards.iter().map(|c| CardUpdate { id: c.id.0, minutes_left: c.minutes_left, minutes_left_read: c.minutes_left_read, updated_at_us: self.ingested_at_us })
    }
}

/// The columns a rollup adds up when its row exists already.
const ROLLUP_AMOUNT_COLUMNS: [&str; 6] = ["quantity_milli", "billable_milli", "events", "rated_micros", "charged_cents", "card_milli"];

/// `ON CONFLICT … DO UPDATE`, on both backends: a day rollup adds up.
pub(crate) static DAY_CONFLICT: LazyLock<String> = LazyLock::new(|| format!("ON CONFLICT (account_id, product_code, day, attr) DO UPDATE SET {}", add_amounts("usage_daily")));

/// A month rollup adds up, and stays late once late.
pub(crate) static MONTH_CONFLICT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "ON CONFLICT (account_id, product_code, month, attr) DO UPDATE SET {}, late = CASE WHEN excluded.late > usage_monthly.late THEN excluded.late ELSE usage_monthly.late END",
        add_amounts("usage_monthly")
    )
});

/// A quota count adds up.
pub(crate) const QUOTA_CONFLICT: &str = "ON CONFLICT (account_id, day) DO UPDATE SET used = quota_usage.used + excluded.used";

fn add_amounts(table: &str) -> String {
    ROLLUP_AMOUNT_COLUMNS.iter().map(|c| format!("{c} = {table}.{c} + excluded.{c}")).collect::<Vec<_>>().join(", ")
}

/// The keys of the accounts' terms and wallets, one per account and currency.
pub(crate) fn account_keys(tenant: TenantId, accounts: &[(AccountId, Currency)]) -> Vec<AccountCurrencyKey<&'static str>> {
    accounts.iter().map(|(account, currency)| AccountCurrencyKey { id: account.0, tenant_id: tenant.0, currency: currency.code() }).collect()
}

/// The wallets a batch of these accounts locks: theirs (of the currencies
/// read) and the revenue wallets, in id order.
pub(crate) fn wallets_to_lock(accounts: &[AccountTerms], revenue: &[WalletId]) -> Vec<i64> {
    let mut ids: Vec<i64> = accounts.iter().flat_map(|a| a.wallets.values().flat_map(|w| [w.primary.0, w.promo.0])).chain(revenue.iter().map(|w| w.0)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What a usage batch read, decoded (the same on both backends); the last
/// pair is the batch's months that are closed and those whose close is under way;
/// the first the locked wallets and the fresh transfer ids.
pub(crate) fn reads(
    (wallets, transfer_ids): (Vec<(TenantId, WalletState)>, Vec<TransferId>),
    earlier: Vec<UsageEventRow<String>>,
    accounts: Vec<AccountTerms>,
    months: Vec<UsageMonthRow<String>>,
    quota: Vec<QuotaRow<String>>,
    (closed, closing): (Vec<MonthCloseRow<String>>, Vec<MonthClosingRow<String>>),
    cards: Vec<TimeCardRow<String>>,
) -> Result<UsageReads> {
    Ok(UsageReads {
        wallets,
        transfer_ids,
        earlier: earlier.into_iter().map(|e| e.outcome().map(|outcome| (e.event_id, outcome))).collect::<Result<_>>()?,
        accounts,
        months: months
            .into_iter()
            .map(|row| {
                let row = MonthRow::try_from(row)?;
                Ok(((row.account, row.product, row.month, row.attr), row.amounts))
            })
            .collect::<Result<_>>()?,
        quota: quota.into_iter().map(|q| ((AccountId(q.account_id), q.day), q.used)).collect(),
        closed_months: closed.into_iter().map(|c| c.month).collect(),
        closing_months: closing.into_iter().map(|c| (c.month, AccountId(c.last_account_id))).collect(),
        cards: cards.iter().map(TimeCardRow::card).collect::<Result<_>>()?,
    })
}

/// Begins a usage batch: locks, then reads everything the engine needs.
pub async fn begin_usage(writer: &LedgerWriter, keys: &UsageKeys<'_>) -> Result<(BatchTx, UsageReads)> {
    match &writer.inner {
        WriterInner::Sqlite(w) => {
            let batch = sqlite::open_batch(w).await?;
            let reads = sqlite::usage_reads(&batch, keys)?;
            Ok((BatchTx { inner: BatchInner::Sqlite(batch) }, reads))
        }
        WriterInner::Postgres(store) => {
            let (batch, reads) = postgres::usage_begin(store, keys).await?;
            Ok((BatchTx { inner: BatchInner::Postgres(batch) }, reads))
        }
    }
}

/// Writes a usage batch (events, rollups, quota counts, then the charges'
/// transfers, entries and balances) and commits it.
pub async fn finish_usage(tx: BatchTx, writes: &UsageWrites<'_>, ledger: &super::LedgerWrites) -> Result<()> {
    match tx.inner {
        BatchInner::Sqlite(batch) => {
            sqlite::usage_writes(&batch, writes)?;
            sqlite::finish(batch, ledger)
        }
        BatchInner::Postgres(mut batch) => {
            postgres::usage_writes(&mut batch, writes).await?;
            postgres::finish(batch, ledger).await
        }
    }
}
