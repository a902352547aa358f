//! Month close's storage: one transaction per tenant and month, on the ledger
//! writer. It reads the month's rollups, the late usage of closed months and
//! the running totals (billed, charged, settled), then writes the bills, the
//! settlements and their transfers, and marks the month closed.

use subledger_domain::ids::{AccountId, TenantId, TransferId, WalletId};
use subledger_domain::ledger::WalletState;
use subledger_domain::money::Currency;
use subledger_domain::usage::{AccountTerms, RollupAmounts};

use super::{BatchInner, BatchTx, LedgerWriter, WriterInner, postgres, sqlite};
use crate::Result;
use crate::rows::{BillLineRow, BillRow, MonthCloseRow, SettlementRow};

/// Every rollup row of each (account, product, month) before `month` that
/// has late usage, as a FROM clause: a supplement re-rates a product's whole
/// month, so it needs the rows of the attributes that did not change too.
/// Driven by the partial index of late rows, then primary-key lookups.
pub(crate) fn late_groups(tenant: &str, month: &str) -> String {
    format!(
        "(SELECT DISTINCT account_id AS late_account, product_code AS late_product, month AS late_month FROM usage_monthly
          WHERE tenant_id = {tenant} AND late = 1 AND month < {month}) AS late_groups
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

/// What the tenant's bills counted so far, per account and product, as a
/// query of `ProductTotalRow`s.
pub(crate) fn billed_totals(tenant: &str) -> String {
    format!("SELECT account_id, product_code, CAST(SUM(money_cents) AS BIGINT) AS cents FROM bill_lines WHERE tenant_id = {tenant} GROUP BY account_id, product_code")
}

/// What was charged in real time in the months that count when `month`
/// closes ([`billed_months`]), per account and product.
pub(crate) fn charged_totals(tenant: &str, month: &str) -> String {
    format!(
        "SELECT account_id, product_code, CAST(SUM(charged_cents) AS BIGINT) AS cents FROM usage_monthly WHERE tenant_id = {tenant} AND {} GROUP BY account_id, product_code",
        billed_months(tenant, month)
    )
}

/// What earlier closes settled, per account and product.
pub(crate) fn settled_totals(tenant: &str) -> String {
    format!("SELECT account_id, product_code, CAST(SUM(amount_cents) AS BIGINT) AS cents FROM settlements WHERE tenant_id = {tenant} AND status = 'posted' GROUP BY account_id, product_code")
}

/// Clears the late flags the close of `month` billed.
pub(crate) fn clear_late(tenant: &str, month: &str) -> String {
    format!("UPDATE usage_monthly SET late = 0 WHERE tenant_id = {tenant} AND late = 1 AND month < {month}")
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

    pub(crate) fn close_row(&self) -> MonthCloseRow<&'a str> {
        MonthCloseRow { tenant_id: self.tenant.0, month: self.month, closed_at_us: self.now_us, accounts: self.bills.len() as i64 }
    }
}

/// Begins closing `month` for a tenant: takes the write lock (or a
/// transaction) and reads what the close needs.
pub async fn begin_close(writer: &LedgerWriter, tenant: TenantId, month: &str) -> Result<(BatchTx, CloseReads)> {
    match &writer.inner {
        WriterInner::Sqlite(w) => {
            let batch = sqlite::open_batch(w).await?;
            let reads = sqlite::close_reads(&batch, tenant, month)?;
            Ok((BatchTx { inner: BatchInner::Sqlite(batch) }, reads))
        }
        WriterInner::Postgres(store) => {
            let (batch, reads) = postgres::close_begin(store, tenant, month).await?;
            Ok((BatchTx { inner: BatchInner::Postgres(batch) }, reads))
        }
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

/// Writes the close (bills, lines, settlements, late flags cleared, the month
/// marked closed), then the settlements' transfers, and commits.
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

/// Ends a close that found nothing to do (the month was closed already).
pub async fn abandon(tx: BatchTx) -> Result<()> {
    finish_close_empty(tx).await
}

async fn finish_close_empty(tx: BatchTx) -> Result<()> {
    super::finish_batch(tx, &super::LedgerWrites::default()).await
}
