//! Reads of bills, rollups and closes (the writes happen in `ledger::close`
//! and `ledger::usage`, on the ledger writer).

use std::collections::BTreeMap;
use std::str::FromStr;

use subledger_domain::billing::LineKind;
use subledger_domain::calendar::Month;
use subledger_domain::ids::{AccountId, TenantId, TransferId};
use subledger_domain::money::Currency;
use subledger_domain::rating::Quantity;

use crate::ledger::close::{CloseProgress, MonthRow};
use crate::rows::{self, BillLineRow, BillRow, MonthClosingRow, PreviousBilledRow, Row, SettlementRow, UsageDaySumRow, UsageMonthRow, columns};
use crate::{Backend, Result, StorageError, Store};

/// An account's bill of a month in one currency, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRecord {
    pub account: AccountId,
    /// `YYYY-MM`.
    pub month: String,
    pub currency: Currency,
    pub total_cents: i64,
    pub created_at_us: i64,
}

/// A line of a bill, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRecord {
    pub account: AccountId,
    pub month: String,
    pub currency: Currency,
    pub line_no: i64,
    pub kind: LineKind,
    pub for_month: String,
    pub product_code: String,
    pub order_type: i64,
    pub description: String,
    pub unit: String,
    pub quantity: Quantity,
    /// Minutes time cards covered, beside `quantity` (which money paid for).
    pub card: Quantity,
    pub money_cents: i64,
    /// For a supplement: the quantity and cents earlier bills counted.
    pub previous: Option<(Quantity, i64)>,
    /// JSON of the line's detail.
    pub detail: String,
}

/// A settlement a close recorded, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementRecord {
    pub account: AccountId,
    pub product_code: String,
    pub month: String,
    pub currency: Currency,
    pub order_type: i64,
    pub amount_cents: i64,
    /// The transfer that moved it, or `None` when it is outstanding (the
    /// wallets could not pay it; the next close tries again).
    pub transfer: Option<TransferId>,
    pub created_at_us: i64,
}

/// `account_id IN (…)` over a JSON array parameter, in each backend's dialect.
pub(crate) fn in_accounts(backend: Backend, param: usize) -> String {
    in_ids(backend, "account_id", param)
}

/// `column IN (…)` over a JSON array parameter of integers, in each backend's dialect.
pub(crate) fn in_ids(backend: Backend, column: &str, param: usize) -> String {
    match backend {
        Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(${param}))"),
        Backend::Postgres => format!("{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(${param}::jsonb)::bigint))"),
    }
}

pub(crate) fn ids_json(accounts: &[AccountId]) -> String {
    serde_json::Value::Array(accounts.iter().map(|a| a.0.into()).collect()).to_string()
}

/// Rows of `table` of these accounts for months in `[from, to]` (`YYYY-MM`), in `order`.
async fn of_months<R>(store: &Store, table: &str, order: &str, tenant: TenantId, accounts: &[AccountId], from: &str, to: &str) -> Result<Vec<R>>
where
    R: Row + for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let sql = format!("SELECT {} FROM {table} WHERE tenant_id = $1 AND {} AND month >= $3 AND month <= $4 ORDER BY {order}", columns::<R>(None), in_accounts(store.backend(), 2));
    Ok(sqlx::query_as(&sql).bind(tenant.0).bind(ids_json(accounts)).bind(from).bind(to).fetch_all(store.reader()).await?)
}

/// Each row converted, or the first that does not decode.
fn decoded<R, T: TryFrom<R, Error = StorageError>>(rows: Vec<R>) -> Result<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

/// Bills of these accounts for months in `[from, to]` (`YYYY-MM`), every currency.
pub async fn bills(store: &Store, tenant: TenantId, accounts: &[AccountId], from: &str, to: &str) -> Result<Vec<BillRecord>> {
    decoded(of_months::<BillRow<String>>(store, "bills", "account_id, month, currency", tenant, accounts, from, to).await?)
}

/// Lines of those bills, in order.
pub async fn bill_lines(store: &Store, tenant: TenantId, accounts: &[AccountId], from: &str, to: &str) -> Result<Vec<LineRecord>> {
    decoded(of_months::<BillLineRow<String>>(store, "bill_lines", "account_id, month, currency, line_no", tenant, accounts, from, to).await?)
}

/// Settlements a close of `month` recorded for these accounts.
pub async fn settlements(store: &Store, tenant: TenantId, accounts: &[AccountId], from: &str, to: &str) -> Result<Vec<SettlementRecord>> {
    decoded(of_months::<SettlementRow<String>>(store, "settlements", "account_id, month, product_code", tenant, accounts, from, to).await?)
}

/// Month rollup rows of these accounts (for a month not closed yet).
pub async fn month_rows(store: &Store, tenant: TenantId, accounts: &[AccountId], month: &str) -> Result<Vec<MonthRow>> {
    rollup_rows(store, "usage_monthly", "tenant_id = $1 AND month = $3", tenant, accounts, month).await
}

/// Rollup rows of closed months before `month` that grew after they were
/// billed: the next bill's supplements.
pub async fn late_rows(store: &Store, tenant: TenantId, accounts: &[AccountId], month: &str) -> Result<Vec<MonthRow>> {
    rollup_rows(store, &crate::ledger::close::late_groups("$1", "$3", "TRUE"), "TRUE", tenant, accounts, month).await
}

/// Rollup rows `FROM source WHERE condition` of these accounts; `$1` is the
/// tenant, `$2` the accounts and `$3` the month.
async fn rollup_rows(store: &Store, source: &str, condition: &str, tenant: TenantId, accounts: &[AccountId], month: &str) -> Result<Vec<MonthRow>> {
    let sql = format!(
        "SELECT {} FROM {source} WHERE {condition} AND usage_monthly.{} ORDER BY usage_monthly.account_id, usage_monthly.product_code, usage_monthly.month, usage_monthly.attr",
        columns::<UsageMonthRow<String>>(Some("usage_monthly")),
        in_accounts(store.backend(), 2)
    );
    let rows: Vec<UsageMonthRow<String>> = sqlx::query_as(&sql).bind(tenant.0).bind(ids_json(accounts)).bind(month).fetch_all(store.reader()).await?;
    rows.into_iter().map(MonthRow::try_from).collect()
}

/// What the bills so far counted for each (account, product, month) that has
/// late usage before `month`: quantity (milli) and money (cents).
pub async fn previous_billed(store: &Store, tenant: TenantId, accounts: &[AccountId], month: &str) -> Result<crate::ledger::close::PreviousBilled> {
    let sql = crate::ledger::close::previous_billed("$1", "$3", &in_accounts(store.backend(), 2));
    let rows: Vec<PreviousBilledRow<String>> = sqlx::query_as(&sql).bind(tenant.0).bind(ids_json(accounts)).bind(month).fetch_all(store.reader()).await?;
    Ok(rows.into_iter().map(PreviousBilledRow::entry).collect())
}

/// One product's usage by one account on one day, summed over grouping values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayUsage {
    pub product_code: String,
    /// `YYYY-MM-DD`, the tenant's calendar day.
    pub day: String,
    pub quantity: Quantity,
    pub billable: Quantity,
    /// Minutes time cards covered, beside `billable` (which money paid for).
    pub card: Quantity,
    pub events: i64,
    pub rated_micros: i64,
    pub charged_cents: i64,
}

/// Day rollups of one account between two days (inclusive), per product and day.
pub async fn daily(store: &Store, tenant: TenantId, account: AccountId, from_day: &str, to_day: &str) -> Result<Vec<DayUsage>> {
    let rows: Vec<UsageDaySumRow<String>> = sqlx::query_as(
        "SELECT product_code, day, CAST(SUM(quantity_milli) AS BIGINT) AS quantity_milli, CAST(SUM(billable_milli) AS BIGINT) AS billable_milli,
                CAST(SUM(events) AS BIGINT) AS events, CAST(SUM(rated_micros) AS BIGINT) AS rated_micros, CAST(SUM(charged_cents) AS BIGINT) AS charged_cents,
                CAST(SUM(card_milli) AS BIGINT) AS card_milli
         FROM usage_daily WHERE account_id = $1 AND day >= $2 AND day <= $3 AND tenant_id = $4 GROUP BY product_code, day ORDER BY day, product_code",
    )
    .bind(account.0)
    .bind(from_day)
    .bind(to_day)
    .bind(tenant.0)
    .fetch_all(store.reader())
    .await?;
    decoded(rows)
}

/// Months (`YYYY-MM`) as stored, each parsed.
fn months(months: Vec<String>, place: &str) -> Result<Vec<Month>> {
    months.iter().map(|month| rows::parsed_month(month, || place.to_owned())).collect()
}

/// The tenant's closed months, oldest first.
pub async fn closed_months(store: &Store, tenant: TenantId) -> Result<Vec<Month>> {
    let closed = sqlx::query_scalar("SELECT month FROM month_closes WHERE tenant_id = $1 ORDER BY month").bind(tenant.0).fetch_all(store.reader()).await?;
    months(closed, "a month close")
}

/// Months up to `up_to` with usage that are not closed yet, and months whose
/// close is under way (which may have no usage of their own: a close bills
/// late usage of earlier months too), oldest first.
pub async fn unclosed_months_with_usage(store: &Store, tenant: TenantId, up_to: &str) -> Result<Vec<Month>> {
    let open = sqlx::query_scalar(
        "SELECT DISTINCT u.month FROM usage_monthly u
         WHERE u.tenant_id = $1 AND u.month <= $2 AND NOT EXISTS (SELECT 1 FROM month_closes c WHERE c.tenant_id = u.tenant_id AND c.month = u.month)
         UNION SELECT month FROM month_closings WHERE tenant_id = $1 AND month <= $2
         ORDER BY 1",
    )
    .bind(tenant.0)
    .bind(up_to)
    .fetch_all(store.reader())
    .await?;
    months(open, "a month rollup")
}

/// What a closed month's bills and settlements add up to, per currency: the
/// report of a close, summed over all its chunks from what they stored.
pub async fn close_totals(store: &Store, tenant: TenantId, month: &str) -> Result<BTreeMap<Currency, CloseTotals>> {
    let bills: Vec<(String, i64, i64)> = sqlx::query_as("SELECT currency, COUNT(*), CAST(COALESCE(SUM(total_cents), 0) AS BIGINT) FROM bills WHERE tenant_id = $1 AND month = $2 GROUP BY currency")
        .bind(tenant.0)
        .bind(month)
        .fetch_all(store.reader())
        .await?;
    let settlements: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT currency,
                CAST(COALESCE(SUM(CASE WHEN transfer_id IS NOT NULL THEN amount_cents ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN transfer_id IS NULL THEN amount_cents ELSE 0 END), 0) AS BIGINT)
         FROM settlements WHERE tenant_id = $1 AND month = $2 GROUP BY currency",
    )
    .bind(tenant.0)
    .bind(month)
    .fetch_all(store.reader())
    .await?;
    let mut totals: BTreeMap<Currency, CloseTotals> = BTreeMap::new();
    let currency = |code: &str| Currency::from_str(code).map_err(|_| StorageError::corrupt(format!("currency {code:?} of a bill or settlement of {month}")));
    for (code, count, cents) in bills {
        let entry = totals.entry(currency(&code)?).or_default();
        entry.bills = count;
        entry.billed_cents = cents;
    }
    for (code, settled, outstanding) in settlements {
        let entry = totals.entry(currency(&code)?).or_default();
        entry.settled_cents = settled;
        entry.outstanding_cents = outstanding;
    }
    Ok(totals)
}

/// What a close billed and settled in one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloseTotals {
    pub bills: i64,
    pub billed_cents: i64,
    /// Settlement charges (positive) and refunds (negative) posted.
    pub settled_cents: i64,
    /// Settlements the wallets could not pay, left for the next close.
    pub outstanding_cents: i64,
}

/// Tenants with usage in months up to `up_to` that are not closed, or with
/// a close under way (for the automatic close).
pub async fn tenants_with_unclosed_months(store: &Store, up_to: &str) -> Result<Vec<TenantId>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT u.tenant_id FROM usage_monthly u
         WHERE u.month <= $1 AND NOT EXISTS (SELECT 1 FROM month_closes c WHERE c.tenant_id = u.tenant_id AND c.month = u.month)
         UNION SELECT tenant_id FROM month_closings WHERE month <= $1",
    )
    .bind(up_to)
    .fetch_all(store.reader())
    .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}

static MONTH_CLOSING: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!("SELECT {} FROM month_closings WHERE tenant_id = $1 AND month = $2", columns::<MonthClosingRow<String>>(None)));

/// How far the close of a tenant's month got, if it is under way.
pub async fn month_closing(store: &Store, tenant: TenantId, month: &str) -> Result<Option<CloseProgress>> {
    let row: Option<MonthClosingRow<String>> = sqlx::query_as(&MONTH_CLOSING).bind(tenant.0).bind(month).fetch_optional(store.reader()).await?;
    Ok(row.map(MonthClosingRow::progress))
}
