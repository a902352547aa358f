//! Month close's storage: one transaction per chunk of a tenant's accounts
//! (in id order), on the ledger writer. A chunk reads its accounts' rollups of
//! the month, their late usage of closed months and their running totals
//! (billed, charged, settled), then writes their bills, settlements and
//! settlement transfers, and records how far the close got
//! (`month_closings`); the last chunk marks the month closed instead.

use std::sync::LazyLock;

use subledger_domain::ids::{AccountId, TenantId, TransferId, WalletId};
use subledger_domain::ledger::WalletState;
use subledger_domain::money::Currency;
use subledger_domain::usage::{AccountTerms, RollupAmounts};

use super::{BatchInner, BatchTx, LedgerWriter, WriterInner, postgres, sqlite};
use crate::rows::{BillLineRow, BillRow, ChunkKey, MonthCloseRow, MonthClosingRow, Row, SettlementRow};
use crate::{Result, StorageError};

/// `account_id` within a chunk: after `after`, up to `through` (both SQL
/// expressions). Every read and write of a chunk is narrowed by it.
pub(crate) fn in_chunk(after: &str, through: &str) -> String {
    format!("account_id > {after} AND account_id <= {through}")
}

/// Every rollup row of each (account, product, month) before `month` that
/// has late usage, as a FROM clause: a supplement re-rates a product's whole
/// month, so it needs the rows of the attributes that did not change too.
/// Driven by the partial index of late rows, then primary-key lookups.
/// `accounts` narrows the accounts (`TRUE` for all).
pub(crate) fn late_groups(tenant: &str, month: &str, accounts: &str) -> String {
    format!(
        "(SELECT DISTINCT account_id AS late_account, product_code AS late_product, month AS late_month FROM usage_monthly
          WHERE tenant_id = {tenant} AND late = 1 AND month < {month} AND {accounts}) AS late_groups
         JOIN usage_monthly ON usage_monthly.account_id = late_account AND usage_monthly.product_code = late_product AND usage_monthly.month = late_month"
    )
}

/// What earlier bills counted for each (account, product, month) with late
/// usage before `month`, as a query of `PreviousBilledRow`s: the quantity
/// (milli) and money (cents) a supplement subtracts. `accounts` narrows the
/// rows further (`TRUE` for all).
pub(crate) fn previous_billed(tenant: &str, month: &str, accounts: &str) -> String {
    format!(
        "SELECT account_id, product_code, for_month, CAST(SUM(quantity_milli) AS BIGINT) AS quantity_milli, CAST(SUM(money_cents) AS BIGINT) AS money_cents FROM bill_lines
         WHERE tenant_id = {tenant} AND {accounts} AND for_month IN (SELECT DISTINCT month FROM usage_monthly WHERE tenant_id = {tenant} AND late = 1 AND month < {month})
         GROUP BY account_id, product_code, for_month"
    )
}

/// Months whose real-time charges count against what has been billed when
/// `month` closes: itself, every earlier month (closed first), and any later
/// month already closed (a month closed out of order, e.g. one that had no
/// usage when later months closed). Without the last part, closing such a
/// month would see later months' bills but not their charges.
pub(crate) fn billed_months(tenant: &str, month: &str) -> String {
    format!("(month <= {month} OR month IN (SELECT month FROM month_closes WHERE tenant_id = {tenant}))")
}

/// What the tenant's bills counted so far, per account (among `accounts`)
/// and product, as a query of `ProductTotalRow`s.
pub(crate) fn billed_totals(tenant: &str, accounts: &str) -> String {
    format!("SELECT account_id, product_code, CAST(SUM(money_cents) AS BIGINT) AS cents FROM bill_lines WHERE tenant_id = {tenant} AND {accounts} GROUP BY account_id, product_code")
}

/// What was charged in real time in the months that count when `month`
/// closes ([`billed_months`]), per account (among `accounts`) and product.
pub(crate) fn charged_totals(tenant: &str, month: &str, accounts: &str) -> String {
    format!(
        "SELECT account_id, product_code, CAST(SUM(charged_cents) AS BIGINT) AS cents FROM usage_monthly WHERE tenant_id = {tenant} AND {accounts} AND {} GROUP BY account_id, product_code",
        billed_months(tenant, month)
    )
}

/// What earlier closes settled, per account (among `accounts`) and product.
pub(crate) fn settled_totals(tenant: &str, accounts: &str) -> String {
    format!(
        "SELECT account_id, product_code, CAST(SUM(amount_cents) AS BIGINT) AS cents FROM settlements WHERE tenant_id = {tenant} AND {accounts} AND status = 'posted' GROUP BY account_id, product_code"
    )
}

/// Clears the late flags the close of `month` billed, of `accounts`.
pub(crate) fn clear_late(tenant: &str, month: &str, accounts: &str) -> String {
    format!("UPDATE usage_monthly SET late = 0 WHERE tenant_id = {tenant} AND late = 1 AND month < {month} AND {accounts}")
}

/// A chunk records how far the close got: the first inserts the row, the
/// next ones move it on.
pub(crate) static PROGRESS_CONFLICT: LazyLock<String> = LazyLock::new(|| {
    let moved: Vec<String> = MonthClosingRow::<&str>::COLUMNS.iter().filter(|c| !matches!(**c, "tenant_id" | "month" | "started_at_us")).map(|c| format!("{c} = excluded.{c}")).collect();
    format!("ON CONFLICT (tenant_id, month) DO UPDATE SET {}", moved.join(", "))
});

/// How far a month's close got: the chunks committed so far and what they wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseProgress {
    pub started_at_us: i64,
    /// The accounts up to this id are billed and settled.
    pub last_account: AccountId,
    pub chunks: i64,
    /// Bills written so far, every currency.
    pub bills: i64,
}

/// The accounts one chunk of a close bills: ids after `after`, up to
/// `through`. The last chunk has no upper bound: it takes every account
/// after, so the month is complete when it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub after: AccountId,
    pub through: Option<AccountId>,
}

impl Chunk {
    /// The month's last chunk: it marks the month closed.
    pub fn is_last(&self) -> bool {
        self.through.is_none()
    }

    /// The chunk after `after`, given the ids of the tenant's next accounts
    /// in order (read with a limit of `accounts_max + 1`): `accounts_max`
    /// of them, or every one left.
    pub(crate) fn of(after: AccountId, next_ids: &[i64], accounts_max: usize) -> Chunk {
        let through = (next_ids.len() > accounts_max).then(|| AccountId(next_ids[accounts_max - 1]));
        Chunk { after, through }
    }

    pub(crate) fn key<'a>(&self, tenant: TenantId, month: &'a str) -> ChunkKey<&'a str> {
        ChunkKey { tenant_id: tenant.0, month, after_account_id: self.after.0, through_account_id: self.through.map_or(i64::MAX, |a| a.0) }
    }
}

/// A rollup row of the month being closed, or of a closed month with late usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRow {
    pub account: AccountId,
    pub product: String,
    pub month: String,
    pub attr: String,
    pub amounts: RollupAmounts,
}

/// Per (account, product): an amount in cents.
pub type ProductTotals = Vec<((AccountId, String), i64)>;

/// Per (account, product, month): the quantity (milli) and cents earlier bills counted.
pub type PreviousBilled = Vec<((AccountId, String, String), (i64, i64))>;

pub struct CloseReads {
    pub already_closed: bool,
    /// Where the close stands: `None` when this chunk begins it.
    pub progress: Option<CloseProgress>,
    /// The accounts this chunk bills; everything below is theirs only.
    pub chunk: Chunk,
    /// Rows of the month itself.
    pub month_rows: Vec<MonthRow>,
    /// Rows of earlier months flagged late.
    pub late_rows: Vec<MonthRow>,
    /// What earlier bills counted per (account, product, month): quantity and cents.
    pub previous_billed: PreviousBilled,
    /// Running totals per (account, product), before this close.
    pub billed: ProductTotals,
    /// Real-time charges of months up to the one closed.
    pub charged: ProductTotals,
    pub settled: ProductTotals,
    /// The chunk's accounts' subscriptions in force for some instant of the month.
    pub subscriptions: Vec<crate::subscriptions::SubscriptionRecord>,
}

/// The wallets a close's settlements move, locked.
pub struct SettlementWallets {
    /// The accounts with their wallets of the currencies they settle in.
    pub accounts: Vec<AccountTerms>,
    pub wallets: Vec<(TenantId, WalletState)>,
    pub transfer_ids: Vec<TransferId>,
}

/// One line to store.
pub struct NewBillLine<'a> {
    pub account: AccountId,
    /// Its bill's currency.
    pub currency: Currency,
    pub line_no: i64,
    pub kind: &'a str,
    pub for_month: &'a str,
    pub product_code: &'a str,
    pub order_type: i64,
    pub description: &'a str,
    pub unit: &'a str,
    pub quantity_milli: i64,
    /// Minutes time cards covered.
    pub card_milli: i64,
    pub money_cents: i64,
    pub previous: Option<(i64, i64)>,
    pub detail: String,
}

pub struct NewSettlement<'a> {
    pub account: AccountId,
    pub product_code: &'a str,
    /// The product's currency.
    pub currency: Currency,
    pub order_type: i64,
    pub amount_cents: i64,
    pub transfer_id: Option<TransferId>,
}

pub struct CloseWrites<'a> {
    pub tenant: TenantId,
    pub month: &'a str,
    pub now_us: i64,
    /// The chunk written (as read): its late flags are cleared.
    pub chunk: Chunk,
    /// Where the close stands with this chunk: recorded, or, after the last
    /// chunk, the month closed with this many bills.
    pub progress: &'a CloseProgress,
    /// (account, currency, total cents) per bill.
    pub bills: &'a [(AccountId, Currency, i64)],
    pub lines: &'a [NewBillLine<'a>],
    pub settlements: &'a [NewSettlement<'a>],
}

impl<'a> CloseWrites<'a> {
    pub(crate) fn bill_rows(&self) -> impl Iterator<Item = BillRow<&'a str>> + '_ {
        self.bills.iter().map(|(account, currency, total_cents)| BillRow {
            tenant_id: self.tenant.0,
            account_id: account.0,
            month: self.month,
            currency: currency.code(),
            total_cents: *total_cents,
            created_at_us: self.now_us,
        })
    }

    pub(crate) fn line_rows(&self) -> impl Iterator<Item = BillLineRow<&'a str>> + '_ {
        self.lines.iter().map(|line| BillLineRow::of(self.tenant, self.month, line))
    }

    pub(crate) fn settlement_rows(&self) -> impl Iterator<Item = SettlementRow<&'a str>> + '_ {
        self.settlements.iter().map(|s| SettlementRow::of(self.tenant, self.month, self.now_us, s))
    }

    /// The month closed (after its last chunk), with all its chunks' bills.
    pub(crate) fn close_rows(&self) -> Option<MonthCloseRow<&'a str>> {
        self.chunk.is_last().then_some(MonthCloseRow { tenant_id: self.tenant.0, month: self.month, closed_at_us: self.now_us, accounts: self.progress.bills })
    }

    /// How far the close got (after any chunk but the last).
    pub(crate) fn progress_rows(&self) -> Option<MonthClosingRow<&'a str>> {
        (!self.chunk.is_last()).then(|| MonthClosingRow::of(self.tenant, self.month, self.progress))
    }

    pub(crate) fn chunk_key(&self) -> ChunkKey<&'a str> {
        self.chunk.key(self.tenant, self.month)
    }
}

/// Begins a chunk of the close of `month` for a tenant: takes the write lock
/// (or a transaction and the tenant's locks) and reads whether the month is
/// closed, how far its close got, which accounts come next (at most
/// `accounts_max`), and what the close needs of them.
/// `window` is the month's `[start, end)` in microseconds (its subscriptions are read).
pub async fn begin_close(writer: &LedgerWriter, tenant: TenantId, month: &str, window: (i64, i64), accounts_max: usize) -> Result<(BatchTx, CloseReads)> {
    if accounts_max == 0 {
        return Err(StorageError::Config("a close chunk takes at least one account".to_owned()));
    }
    match &writer.inner {
        WriterInner::Sqlite(w) => {
            let batch = sqlite::open_batch(w).await?;
            let reads = sqlite::close_reads(&batch, tenant, month, window, accounts_max)?;
            Ok((BatchTx { inner: BatchInner::Sqlite(batch) }, reads))
        }
        WriterInner::Postgres(store) => {
            let (batch, reads) = postgres::close_begin(store, tenant, month, window, accounts_max).await?;
            Ok((BatchTx { inner: BatchInner::Postgres(batch) }, reads))
        }
    }
}

/// What a chunk reads of a month found closed: nothing more.
pub(crate) fn closed_reads() -> CloseReads {
    CloseReads {
        already_closed: true,
        progress: None,
        chunk: Chunk { after: AccountId(0), through: None },
        month_rows: Vec::new(),
        late_rows: Vec::new(),
        previous_billed: Vec::new(),
        billed: Vec::new(),
        charged: Vec::new(),
        settled: Vec::new(),
        subscriptions: Vec::new(),
    }
}

/// Locks and reads the wallets of the accounts the close settles, in the
/// currencies each settles in, with the tenant's revenue wallets of those
/// currencies, and draws transfer ids.
pub async fn settlement_wallets(tx: &mut BatchTx, tenant: TenantId, accounts: &[(AccountId, Currency)], revenue: &[WalletId], ids_needed: usize) -> Result<SettlementWallets> {
    match &mut tx.inner {
        BatchInner::Sqlite(batch) => sqlite::settlement_wallets(batch, tenant, accounts, revenue, ids_needed),
        BatchInner::Postgres(batch) => postgres::settlement_wallets(batch, tenant, accounts, revenue, ids_needed).await,
    }
}

/// Writes a chunk (bills, lines, settlements, late flags cleared, and the
/// close's progress, or after the last chunk the month marked closed), then
/// the settlements' transfers, and commits.
pub async fn finish_close(tx: BatchTx, writes: &CloseWrites<'_>, ledger: &super::LedgerWrites) -> Result<()> {
    match tx.inner {
        BatchInner::Sqlite(batch) => {
            sqlite::close_writes(&batch, writes)?;
            sqlite::finish(batch, ledger)
        }
        BatchInner::Postgres(mut batch) => {
            postgres::close_writes(&mut batch, writes).await?;
            postgres::finish(batch, ledger).await
        }
    }
}

/// Ends a chunk that found nothing to do (the month was closed already).
pub async fn abandon(tx: BatchTx) -> Result<()> {
    finish_close_empty(tx).await
}

async fn finish_close_empty(tx: BatchTx) -> Result<()> {
    super::finish_batch(tx, &super::LedgerWrites::default()).await
}
