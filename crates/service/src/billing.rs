//! Month close and bills.
//!
//! Closing a month, for one tenant, runs on the ledger worker in chunks of
//! accounts (at most [`crate::ledger::LedgerConfig::close_chunk_accounts`],
//! in id order), each chunk one transaction:
//! 1. every account of the chunk that used something gets a bill: one usage
//!    line per product (its exact cost, with detail), plus a supplementary
//!    line (补扣) per product of an earlier, closed month whose usage grew since;
//! 2. each (account, product) is settled: billed so far, minus charged in real
//!    time, minus settled before, is posted as a charge (补扣 code) or a
//!    refund (返账 code); a charge the wallets cannot pay stays outstanding and
//!    the next close tries again (the amounts are running totals);
//! 3. the close's progress is recorded (the month is *closing*: the accounts
//!    up to the chunk's last are billed), and the next chunk is queued behind
//!    whatever work arrived meanwhile, so other tenants wait for one chunk at
//!    most; the last chunk marks the month closed instead. Closing it again
//!    changes nothing.
//!
//! A close that stops between chunks (a failure, a crash) leaves the month
//! closing; the next close of it (by hand, or the automatic one) resumes
//! after the last account billed. Usage for a closing month is late (billed
//! at the next close) for the accounts already billed, and on the month's
//! bill for the others, so no usage is billed twice or never.
//!
//! Bills are per account, month and currency: a line is in its product's
//! currency and goes on the account's bill in that currency; a settlement
//! moves money in its product's currency, between the account's wallets and
//! the tenant's revenue wallet of that currency.
//!
//! # A month close, step by step
//!
//! 1. [`Services::close_month`] refuses a month that has not ended in the
//!    tenant's zone, then hands the worker one `CloseJob` per month: every
//!    earlier month with usage still open, oldest first, then the month asked
//!    for. The server's automatic close ([`Services::close_due_months`], every
//!    minute) does the same for each tenant with months due.
//! 2. Storage's `begin_close` takes the write lock (SQLite) or, on PostgreSQL,
//!    the tenant row `FOR NO KEY UPDATE` and the tenant's close lock
//!    exclusively (usage batches hold it shared). It reads whether the month
//!    is closed (then nothing happens), its progress, the chunk's accounts'
//!    rollups, the rollups of
//!    closed months with late usage (`late_groups`) with what earlier bills
//!    counted for them, and per (account, product) the running totals billed,
//!    charged in real time and settled.
//! 3. `Catalog::bill_lines` prices each account's lines with the tariff in
//!    force at the end of the month the usage belongs to: one usage line per
//!    product (its exact cost, with detail), and a supplement per product of
//!    an earlier, closed month whose usage changed since (补扣, or 返账 when
//!    the month got cheaper).
//! 4. Each (account, product) is settled: billed so far, minus charged in real
//!    time, minus settled before. A charge (the product's 补扣 code) is posted
//!    from promo, then primary, to revenue; a charge the wallets cannot pay is
//!    recorded `outstanding`, and the next close counts it again, since all
//!    three amounts are running totals. A refund goes from revenue to primary
//!    under the product's 返账 code (or its 补扣 code, negative, when it has
//!    none). The settling accounts' wallets are locked and read at this step
//!    (`settlement_wallets`).
//! 5. Each chunk's transaction writes its bills (0.00 for an account settled
//!    without usage), their lines, the settlements and their transfers,
//!    clears its accounts' `late` flags and records the progress
//!    (`month_closings`); the last chunk marks the month closed
//!    (`month_closes`) instead. A failure leaves nothing of its chunk. The
//!    report's totals per currency are summed from the month's stored bills
//!    and settlements once it is closed (`close_totals`).
//!
//! Every sum is checked. A month that the tariff in force at its end prices
//! past [`subledger_domain::rating::MONTH_MICROS_MAX`], or a bill or settlement whose total would not
//! fit, fails the close with [`ServiceError::AmountTooLarge`] naming the
//! account and product; nothing of that chunk is written, and the month
//! stays closing after the chunks before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use subledger_domain::billing::{BillLine, LineProduct, supplement_line, usage_line};
use subledger_domain::calendar::{Month, TenantTimeZone};
use subledger_domain::ids::{AccountId, TenantId, WalletId};
use subledger_domain::ledger::{DebitRule, TransferIntent, TransferKind};
use subledger_domain::money::{AMOUNT_MINOR_MAX, AmountTooLarge, Currency, PositiveAmount, checked_sum, format_minor};
use subledger_domain::oplog::{Actor, Operation, OperationKind};
use subledger_domain::paging::Page;
use subledger_domain::posting::{Journal, Posting, promo_first};
use subledger_domain::rating::PriceModel;
use subledger_domain::rating::{MONTH_CENTS_MAX, Quantity, sum_to_cents};
use subledger_domain::seats::{Period, fee_line, subscribed_days};
use subledger_domain::usage::{MonthRollup, SpendableWallets};
use subledger_storage::StorageError;
use subledger_storage::bills as store_bills;
use subledger_storage::ledger::close::{self as store_close, CloseProgress, CloseWrites, NewBillLine, NewSettlement};
use subledger_storage::ledger::{LedgerWriter, LedgerWrites};
use subledger_storage::records::ChangeRecords;
use subledger_storage::subscriptions::{self as store_subscriptions, SubscriptionRecord};

use crate::Change;
use crate::accounts::Account;
use crate::catalog::{Product, TariffBook};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::tenants::Tenant;
use crate::{Services, now_us};

/// What closing one month did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReport {
    pub month: String,
    /// The month was closed before: nothing changed.
    pub already_closed: bool,
    /// Bills written, every currency.
    pub bills: usize,
    /// The amounts, per currency that was billed or settled in.
    pub by_currency: BTreeMap<Currency, CloseTotals>,
}

pub use subledger_storage::bills::CloseTotals;

/// What one chunk of a close on the worker did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseStep {
    /// The month is closed: by this chunk (the report sums all the month's
    /// chunks), or before it (`already_closed`).
    Closed(CloseReport),
    /// The chunk committed and accounts are left: the month is closing.
    Closing(CloseProgress),
}

/// Everything the worker needs to close a month (each chunk gets a copy).
#[derive(Clone)]
pub struct CloseJob {
    pub tenant: TenantId,
    pub timezone: TenantTimeZone,
    pub month: Month,
    pub products: Arc<Vec<Product>>,
    pub tariffs: Arc<TariffBook>,
    /// The tenant's revenue wallet of each currency its products are in.
    pub revenue: BTreeMap<Currency, WalletId>,
    /// What commits with the close (see [`crate::Change`]).
    pub records: ChangeRecords,
}

impl Services {
    /// Closes `month` (and, first, every earlier month with usage that is
    /// still open) for a tenant. The month must have ended in the tenant's
    /// time zone.
    /// The change's records commit with the close of `month` itself.
    pub async fn close_month(&self, tenant: &Tenant, month: Month, change: &Change) -> ServiceResult<Vec<CloseReport>> {
        let current = tenant.timezone.month_of(jiff::Timestamp::now());
        if month >= current {
            return Err(ServiceError::Invalid { field: "month", reason: format!("{month} has not ended yet in {}", tenant.timezone.name()) });
        }
        let mut months: Vec<Month> = store_bills::unclosed_months_with_usage(&self.store, tenant.id, &month.to_string()).await?.into_iter().filter(|m| *m < month).collect();
        months.push(month);
        let products = self.products(tenant).await?;
        let tariffs = self.tariff_book(tenant).await?;
        let revenue = self.revenue_wallets(tenant, products.iter().map(|p| p.currency).collect()).await?;
        let mut reports = Vec::with_capacity(months.len());
        let asked = month;
        for month in months {
            let job = CloseJob {
                tenant: tenant.id,
                timezone: tenant.timezone.clone(),
                month,
                products: products.clone(),
                tariffs: tariffs.clone(),
                revenue: revenue.clone(),
                // Written with the chunk that closes the month asked for.
                records: if month == asked { change.records(tenant.id, Operation::new(OperationKind::BillClose, month.to_string())) } else { ChangeRecords::default() },
            };
            // One chunk per turn on the worker; each next chunk is queued
            // after the answer to the last, behind the work that came meanwhile.
            let mut report = loop {
                match self.ledger.submit_close(job.clone()).await {
                    Ok(CloseStep::Closed(report)) => break report,
                    Ok(CloseStep::Closing(_)) => continue,
                    Err(error) => return Err(self.close_failed(tenant, month, error).await),
                }
            };
            if !report.already_closed {
                // Summed over every chunk of the month, from what they stored.
                report.by_currency = store_bills::close_totals(&self.store, tenant.id, &report.month).await?;
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// The service's error for a failed close (or bill computation).
    async fn close_error(&self, tenant: &Tenant, error: CloseError) -> ServiceError {
        match error {
            CloseError::Unbillable(unbillable) => self.unbillable_error(tenant, unbillable).await,
            CloseError::Service(error) => error,
        }
    }

    /// The error of a close that failed, after saying (logged, and in the
    /// message of a month that cannot be billed) how far the month got if
    /// chunks before the failed one are committed: it stays closing, and
    /// the next close resumes after them.
    async fn close_failed(&self, tenant: &Tenant, month: Month, error: CloseError) -> ServiceError {
        let progress = store_bills::month_closing(&self.store, tenant.id, &month.to_string()).await.ok().flatten();
        let stopped = match progress {
            Some(progress) => {
                let last = self.username_or_id(tenant, progress.last_account).await;
                tracing::warn!(tenant = %tenant.public_id, %month, chunks = progress.chunks, bills = progress.bills, last_account_billed = %last, %error,
                    "a month close stopped part-way: the month stays closing, and the next close resumes after the accounts billed");
                format!("; {month} stays closing: {} bills are written, of the accounts up to {last}, and the next close resumes after them", progress.bills)
            }
            None => String::new(),
        };
        match self.close_error(tenant, error).await {
            ServiceError::AmountTooLarge(message) => ServiceError::AmountTooLarge(message + &stopped),
            other => other,
        }
    }

    /// An account's username, or its id if the username cannot be read.
    async fn username_or_id(&self, tenant: &Tenant, account: AccountId) -> String {
        match subledger_storage::accounts::username_of(&self.store, tenant.id, account).await {
            Ok(Some(username)) => username,
            _ => format!("#{account}"),
        }
    }

    /// The error for a month that cannot be billed, naming the account by its username.
    async fn unbillable_error(&self, tenant: &Tenant, unbillable: Unbillable) -> ServiceError {
        let account = self.username_or_id(tenant, unbillable.account).await;
        let Unbillable { month, product, cause, .. } = unbillable;
        ServiceError::AmountTooLarge(match product {
            Some(product) => format!(
                "{month} cannot be billed: {cause} for account {account}, product {product} (at most {} per account, product and month; a month priced on its total uses the tariff in force at the end of the month, which may differ from the one its usage was charged at)",
                format_minor(MONTH_CENTS_MAX)
            ),
            None => format!("{month} cannot be billed: {cause} for account {account}"),
        })
    }
}

/// A month a bill cannot price within the limits: whose, which product
/// (`None`: the account's bill as a whole), and why.
#[derive(Debug)]
pub(crate) struct Unbillable {
    account: AccountId,
    product: Option<String>,
    month: String,
    cause: AmountTooLarge,
}

impl Unbillable {
    /// The refusal of `product`'s `month` for `account`, for `map_err`.
    fn of<'a>(account: AccountId, product: &'a str, month: &'a str) -> impl FnOnce(AmountTooLarge) -> Unbillable + 'a {
        move |cause| Unbillable { account, product: Some(product.to_owned()), month: month.to_owned(), cause }
    }
}

/// Why a close failed. An [`Unbillable`] month is named after the worker
/// answers, where the account's username can be read.
#[derive(Debug)]
pub(crate) enum CloseError {
    Unbillable(Unbillable),
    Service(ServiceError),
}

impl std::fmt::Display for CloseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseError::Unbillable(u) => {
                write!(f, "{} cannot be billed: {} for account #{}{}", u.month, u.cause, u.account, u.product.as_deref().map(|p| format!(", product {p}")).unwrap_or_default())
            }
            CloseError::Service(error) => error.fmt(f),
        }
    }
}

impl From<StorageError> for CloseError {
    fn from(error: StorageError) -> Self {
        CloseError::Service(error.into())
    }
}

/// Tenants visited per page when closing across all tenants.
const TENANT_PAGE: i64 = 500;

impl Services {
    /// Closes `month` for every tenant (and, first, each tenant's earlier
    /// open months with usage). Tenants in whose time zone the month has not
    /// ended yet are skipped and reported as such.
    pub async fn close_month_all_tenants(&self, month: Month, change: &Change) -> ServiceResult<Vec<(Tenant, ServiceResult<Vec<CloseReport>>)>> {
        let mut outcomes = Vec::new();
        let mut offset = 0;
        loop {
            let (total, tenants) = self.list_tenants(subledger_domain::paging::Page { offset, limit: TENANT_PAGE }).await?;
            if tenants.is_empty() {
                break;
            }
            offset += tenants.len() as i64;
            for tenant in tenants {
                let outcome = self.close_month(&tenant, month, change).await;
                outcomes.push((tenant, outcome));
            }
            if offset >= total {
                break;
            }
        }
        Ok(outcomes)
    }

    /// Closes, for every tenant with usage in open months, the months that
    /// ended at least `grace` ago in the tenant's time zone. This is what the
    /// server runs periodically; running it again, or in two processes at
    /// once, changes nothing (a close of a closed month is a no-op). Each
    /// tenant has its own outcome: a tenant whose month cannot close (a month
    /// priced past its limit) does not hold up the others.
    pub async fn close_due_months(&self, now: jiff::Timestamp, grace: jiff::SignedDuration) -> ServiceResult<Vec<(Tenant, ServiceResult<Vec<CloseReport>>)>> {
        let up_to = jiff::tz::TimeZone::UTC.to_datetime(now);
        let up_to = Month::new(up_to.year(), up_to.month()).expect("a calendar month").to_string();
        let mut closed = Vec::new();
        for id in store_bills::tenants_with_unclosed_months(&self.store, &up_to).await? {
            let tenant = self.tenant(id).await?;
            // The latest month whose end lies `grace` or more in the past.
            let mut month = tenant.timezone.month_of(now).previous();
            while tenant.timezone.month_bounds(month).1.saturating_add(grace).map_or(true, |due| due > now) {
                month = month.previous();
            }
            let open = store_bills::unclosed_months_with_usage(&self.store, tenant.id, &month.to_string()).await?;
            if open.is_empty() {
                continue;
            }
            let outcome = self.close_month(&tenant, month, &Change::by(Actor::System)).await;
            closed.push((tenant, outcome));
        }
        Ok(closed)
    }
}

/// The version of a product's tariff in force at the end of a month (`None`:
/// no version was in force then), or `Corrupt` for a stored month that does not parse.
fn model_at_end<'a>(tariffs: &'a TariffBook, timezone: &TenantTimeZone, product: &str, account: AccountId, month: &str) -> Result<Option<&'a subledger_domain::rating::PriceModel>, StorageError> {
    let parsed = Month::parse_dashed(month).map_err(|_| StorageError::Corrupt(format!("month {month:?} of the usage of {product} by account {account}")))?;
    let (_, end) = timezone.month_bounds(parsed);
    Ok(tariffs.in_force(product, account, end.as_microsecond() - 1).map(|v| v.model.as_ref()))
}

fn group_rows(rows: Vec<store_close::MonthRow>) -> BTreeMap<(AccountId, String, String), MonthRollup> {
    let mut grouped: BTreeMap<(AccountId, String, String), MonthRollup> = BTreeMap::new();
    for row in rows {
        grouped.entry((row.account, row.product, row.month)).or_default().by_attr.insert(row.attr, row.amounts);
    }
    grouped
}

/// The product's bill-line identity. Products are never removed and usage
/// is accepted only for products of the catalog, so stored usage of a code
/// the catalog does not have is corrupt: its currency, and so its bill,
/// would be a guess.
fn line_product(products: &[Product], code: &str) -> Result<LineProduct, StorageError> {
    products.iter().find(|p| p.code == code).map(Product::line_product).ok_or_else(|| StorageError::Corrupt(format!("usage of product {code:?}, which is not in the tenant's catalog")))
}

/// What prices bill lines: the tenant's products, tariffs and calendar.
struct Catalog<'a> {
    products: &'a [Product],
    tariffs: &'a TariffBook,
    timezone: &'a TenantTimeZone,
}

/// The bills of a month: each account's lines per currency.
type BillLines = BTreeMap<(AccountId, Currency), Vec<BillLine>>;

impl Catalog<'_> {
    /// Each account's lines of `month`'s bills, one bill per currency, in
    /// bill order: a usage line per product used in the month, and a
    /// supplement (补扣) per product of an earlier, closed month whose usage
    /// grew since it was billed. A line goes on the bill of its product's currency.
    /// With them, one line per (account, monthly fee) subscribed in the month
    /// (see [`Catalog::fee_lines`]).
    fn bill_lines(
        &self,
        month: &str,
        month_rows: Vec<store_close::MonthRow>,
        late_rows: Vec<store_close::MonthRow>,
        previous_billed: store_close::PreviousBilled,
        subscriptions: &[SubscriptionRecord],
    ) -> Result<BillLines, CloseError> {
        let previous: HashMap<(AccountId, String, String), (i64, i64)> = previous_billed.into_iter().collect();
        let mut lines = self.fee_lines(month, subscriptions)?;
        for ((account, product, for_month), rollup) in &group_rows(month_rows) {
            let model = model_at_end(self.tariffs, self.timezone, product, *account, month)?;
            let line = usage_line(&line_product(self.products, product)?, month, rollup, model).map_err(Unbillable::of(*account, product, for_month))?;
            lines.entry((*account, line.currency)).or_default().push(line);
        }
        for ((account, product, for_month), rollup) in &group_rows(late_rows) {
            let model = model_at_end(self.tariffs, self.timezone, product, *account, for_month)?;
            let (quantity, cents) = previous.get(&(*account, product.clone(), for_month.clone())).copied().unwrap_or_default();
            let counted = (Quantity::from_milli(quantity).ok_or(AmountTooLarge("what earlier bills counted")).map_err(Unbillable::of(*account, product, for_month))?, cents);
            if let Some(line) = supplement_line(&line_product(self.products, product)?, month, for_month, rollup, model, counted).map_err(Unbillable::of(*account, product, for_month))? {
                lines.entry((*account, line.currency)).or_default().push(line);
            }
        }
        for bill_lines in lines.values_mut() {
            subledger_domain::billing::sort_lines(bill_lines);
        }
        Ok(lines)
    }
}

impl Catalog<'_> {
    /// The monthly fees of `month`: per (account, product) subscribed on some
    /// day of it, the price per month of the `recurring` tariff in force at
    /// the end of the month, pro-rated to the days subscribed in the tenant's
    /// calendar and rounded half-up once (`seats::fee_line`). A fee without a
    /// tariff then costs nothing and has no line (the seat's fee, for a tenant
    /// that sets no seat price).
    fn fee_lines(&self, month: &str, subscriptions: &[SubscriptionRecord]) -> Result<BillLines, CloseError> {
        let mut lines = BillLines::new();
        if subscriptions.is_empty() {
            return Ok(lines);
        }
        let parsed = Month::parse_dashed(month).map_err(|_| StorageError::Corrupt(format!("month {month:?} of a close")))?;
        let mut periods: BTreeMap<(AccountId, &str), Vec<Period>> = BTreeMap::new();
        for s in subscriptions {
            periods.entry((s.account, s.product_code.as_str())).or_default().push(Period { from_us: s.from_us, until_us: s.until_us });
        }
        for ((account, code), periods) in periods {
            // Subscriptions are taken only to monthly fees of the catalog, whose products are never removed.
            let product = self
                .products
                .iter()
                .find(|p| p.code == code && p.kind.is_monthly_fee())
                .ok_or_else(|| StorageError::Corrupt(format!("a subscription of account {account} to {code:?}, which is not a monthly fee of the catalog")))?;
            let Some(PriceModel::Recurring { price }) = model_at_end(self.tariffs, self.timezone, code, account, month)? else { continue };
            let days = subscribed_days(self.timezone, parsed, &periods);
            if let Some(line) = fee_line(&product.line_product(), parsed, &days, *price).map_err(Unbillable::of(account, code, month))? {
                lines.entry((account, line.currency)).or_default().push(line);
            }
        }
        Ok(lines)
    }
}

/// A bill's total: the sum of its lines' cents.
fn bill_total(account: AccountId, month: &str, lines: &[BillLine]) -> Result<i64, Unbillable> {
    checked_sum(lines.iter().map(|line| line.money_cents), "the bill's total").map_err(|cause| Unbillable { account, product: None, month: month.to_owned(), cause })
}

impl From<Unbillable> for CloseError {
    fn from(unbillable: Unbillable) -> Self {
        CloseError::Unbillable(unbillable)
    }
}

/// Runs the next chunk of a close on the ledger writer (at most
/// `accounts_max` accounts after the last one billed): one transaction. Any
/// error leaves nothing of the chunk written.
pub(crate) async fn run_close_job(writer: &LedgerWriter, job: &CloseJob, accounts_max: usize) -> Result<CloseStep, CloseError> {
    let month = job.month.to_string();
    let (start, end) = job.timezone.month_bounds(job.month);
    let window = (start.as_microsecond(), end.as_microsecond());
    let (mut tx, reads) = store_close::begin_close(writer, job.tenant, &month, window, accounts_max).await?;
    if reads.already_closed {
        store_close::abandon(tx).await?;
        return Ok(CloseStep::Closed(CloseReport { month, already_closed: true, bills: 0, by_currency: BTreeMap::new() }));
    }

    let catalog = Catalog { products: &job.products, tariffs: &job.tariffs, timezone: &job.timezone };
    let lines = catalog.bill_lines(&month, reads.month_rows, reads.late_rows, reads.previous_billed, &reads.subscriptions)?;

    // Settlements: running totals per (account, product), billed minus
    // charged minus settled, in the product's currency. Each must fit one transfer.
    let refuse = |account, product: &str, what| CloseError::Unbillable(Unbillable::of(account, product, &month)(AmountTooLarge(what)));
    let billed_now = lines.iter().flat_map(|((account, _), l)| l.iter().map(move |line| ((*account, line.product_code.clone()), line.money_cents)));
    let paid = reads.charged.into_iter().chain(reads.settled).map(|(key, cents)| (key, cents.checked_neg()));
    let mut due: BTreeMap<(AccountId, String), i64> = BTreeMap::new();
    for ((account, product), cents) in reads.billed.into_iter().chain(billed_now).map(|(key, cents)| (key, Some(cents))).chain(paid) {
        let total = due.entry((account, product.clone())).or_default();
        *total = cents.and_then(|cents| total.checked_add(cents)).ok_or_else(|| refuse(account, &product, "the running total to settle"))?;
    }
    due.retain(|_, cents| *cents != 0);
    if let Some(((account, product), _)) = due.iter().find(|(_, cents)| cents.unsigned_abs() > AMOUNT_MINOR_MAX.unsigned_abs()) {
        return Err(refuse(*account, product, "the settlement"));
    }
    let due: Vec<(AccountId, LineProduct, i64)> =
        due.into_iter().map(|((account, product), cents)| Ok((account, line_product(&job.products, &product)?, cents))).collect::<Result<_, StorageError>>()?;
    let mut settling: Vec<(AccountId, Currency)> = due.iter().map(|(account, product, _)| (*account, product.currency)).collect();
    settling.sort_unstable();
    settling.dedup();
    let revenue = |currency: Currency| job.revenue.get(&currency).copied().ok_or_else(|| StorageError::Corrupt(format!("the tenant has no revenue wallet in {currency}")));
    let mut revenue_ids: Vec<WalletId> = settling.iter().map(|(_, currency)| revenue(*currency)).collect::<Result<_, _>>()?;
    revenue_ids.dedup();

    let wallets = store_close::settlement_wallets(&mut tx, job.tenant, &settling, &revenue_ids, due.len() * 2).await?;
    if wallets.wallets.iter().any(|(tenant, _)| *tenant != job.tenant) {
        return Err(StorageError::Corrupt("a close named a wallet of another tenant".to_owned()).into());
    }
    let account_wallets: HashMap<AccountId, BTreeMap<Currency, SpendableWallets>> = wallets.accounts.into_iter().map(|a| (a.id, a.wallets)).collect();
    let mut journal = Journal::new(wallets.wallets.into_iter().map(|(_, w)| w), wallets.transfer_ids, now_us());
    let mut settlements = Vec::new();
    // This chunk's sums, checked: a chunk whose totals do not fit is refused.
    let mut chunk_totals: BTreeMap<Currency, CloseTotals> = BTreeMap::new();
    let report_total = |what| CloseError::Service(ServiceError::AmountTooLarge(format!("{month} cannot close: the month's {what} do not fit")));

    for (account, product, cents) in &due {
        let (product_code, currency) = (product.code.as_str(), product.currency);
        // The same rule as bill lines: a refund under the product's 返账 code when it has one.
        let (order_type, _) = product.adjustment(*cents);
        // Usage is accepted only from accounts with wallets in its currency, and wallets are never removed.
        let SpendableWallets { primary, promo } = account_wallets
            .get(account)
            .and_then(|wallets| wallets.get(&currency))
            .copied()
            .ok_or_else(|| StorageError::Corrupt(format!("account {account} has {currency} usage of {product_code} to settle but no {currency} wallets")))?;
        let revenue = revenue(currency)?;
        let totals = chunk_totals.entry(currency).or_default();
        let memo = format!("settlement {month} {product_code} orderType {order_type}");
        let posting = |kind, debit, credit, amount| Posting {
            tenant: job.tenant,
            kind,
            intent: TransferIntent { debit, credit, amount, currency, debit_rule: DebitRule::ToFloor },
            memo: Some(memo.clone()),
            idempotency_key: None,
        };
        let postings: Vec<Posting> = if *cents > 0 {
            // The settlement fits a transfer (checked above).
            let Some(parts) = promo_first(journal.book(), promo, primary, *cents) else {
                totals.outstanding_cents = totals.outstanding_cents.checked_add(*cents).ok_or_else(|| report_total("outstanding settlements"))?;
                settlements.push(NewSettlement { account: *account, product_code, currency, order_type, amount_cents: *cents, transfer_id: None });
                continue;
            };
            parts.into_iter().map(|(wallet, amount)| posting(TransferKind::Charge, wallet, revenue, amount)).collect()
        } else {
            let amount = PositiveAmount::new(-cents).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            vec![posting(TransferKind::Refund, revenue, primary, amount)]
        };
        let mut first_transfer = None;
        for posting in postings {
            let (id, posted) = journal.post(posting).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            posted.map_err(|reason| StorageError::Corrupt(format!("a settlement checked for funds was refused: {reason}")))?;
            first_transfer.get_or_insert(id);
        }
        totals.settled_cents = totals.settled_cents.checked_add(*cents).ok_or_else(|| report_total("settlements"))?;
        settlements.push(NewSettlement { account: *account, product_code, currency, order_type, amount_cents: *cents, transfer_id: first_transfer });
    }

    // Bills and their lines, one bill per account and currency.
    let mut bills: Vec<(AccountId, Currency, i64)> = lines.iter().map(|((account, currency), l)| Ok((*account, *currency, bill_total(*account, &month, l)?))).collect::<Result<_, Unbillable>>()?;
    // An account settled in a currency without usage in it this month (an
    // amount left outstanding at an earlier close, or a refund) gets a bill
    // of 0.00 in that currency, so that the settlement shows with a bill.
    let mut settled_only: Vec<(AccountId, Currency)> = settlements.iter().map(|s| (s.account, s.currency)).filter(|key| !lines.contains_key(key)).collect();
    settled_only.sort_unstable();
    settled_only.dedup();
    bills.extend(settled_only.into_iter().map(|(account, currency)| (account, currency, 0)));
    for (_, currency, cents) in &bills {
        let totals = chunk_totals.entry(*currency).or_default();
        totals.bills += 1;
        totals.billed_cents = totals.billed_cents.checked_add(*cents).ok_or_else(|| report_total("bills"))?;
    }
    let details: Vec<(AccountId, Currency, usize, &BillLine, String)> = lines
        .iter()
        .flat_map(|((account, currency), l)| l.iter().enumerate().map(move |(i, line)| (*account, *currency, i, line)))
        .map(|(account, currency, i, line)| (account, currency, i, line, serde_json::to_string(&line.detail).expect("detail lines serialize")))
        .collect();
    let new_lines: Vec<NewBillLine> = details
        .iter()
        .map(|(account, currency, i, line, detail)| NewBillLine {
            account: *account,
            currency: *currency,
            line_no: *i as i64 + 1,
            kind: line.kind.as_str(),
            for_month: &line.for_month,
            product_code: &line.product_code,
            order_type: line.order_type,
            description: &line.description,
            unit: &line.unit,
            quantity_milli: line.quantity.milli(),
            card_milli: line.card.milli(),
            money_cents: line.money_cents,
            previous: line.previous.map(|(q, c)| (q.milli(), c)),
            detail: detail.clone(),
        })
        .collect();
    let now = journal.now_us();
    // The change's records commit with the chunk that closes the month.
    let records = if reads.chunk.is_last() { job.records.clone() } else { ChangeRecords::default() };
    let ledger = LedgerWrites::with_records(journal.finish(), records);
    // What the month's chunks wrote, this one included.
    let before = reads.progress.unwrap_or(CloseProgress { started_at_us: now, last_account: reads.chunk.after, chunks: 0, bills: 0 });
    let progress = CloseProgress {
        started_at_us: before.started_at_us,
        last_account: reads.chunk.through.unwrap_or(before.last_account),
        chunks: before.chunks + 1,
        bills: before.bills.checked_add(bills.len() as i64).ok_or_else(|| report_total("bills"))?,
    };
    let writes = CloseWrites { tenant: job.tenant, month: &month, now_us: now, chunk: reads.chunk, progress: &progress, bills: &bills, lines: &new_lines, settlements: &settlements };
    store_close::finish_close(tx, &writes, &ledger).await?;
    if !reads.chunk.is_last() {
        return Ok(CloseStep::Closing(progress));
    }
    // The totals per currency are summed over all chunks by the caller (`close_totals`).
    Ok(CloseStep::Closed(CloseReport { month: month.clone(), already_closed: false, bills: progress.bills as usize, by_currency: BTreeMap::new() }))
}

/// A bill line as shown: stored (closed months) or computed (the month so far).
#[derive(Debug, Clone)]
pub struct LineView {
    pub kind: subledger_domain::billing::LineKind,
    pub for_month: String,
    pub product_code: String,
    pub order_type: i64,
    pub description: String,
    pub unit: String,
    pub quantity: Quantity,
    /// Minutes time cards covered, beside `quantity` (which money paid for).
    pub card: Quantity,
    pub money_cents: i64,
    pub previous: Option<(Quantity, i64)>,
    pub detail: Vec<subledger_domain::rating::DetailLine>,
}

impl From<BillLine> for LineView {
    fn from(line: BillLine) -> Self {
        LineView {
            kind: line.kind,
            for_month: line.for_month,
            product_code: line.product_code,
            order_type: line.order_type,
            description: line.description,
            unit: line.unit,
            quantity: line.quantity,
            card: line.card,
            money_cents: line.money_cents,
            previous: line.previous,
            detail: line.detail,
        }
    }
}

/// A settlement a close recorded, in its bill's currency.
#[derive(Debug, Clone)]
pub struct SettlementView {
    pub product_code: String,
    pub order_type: i64,
    pub amount_cents: i64,
    /// The transfer that moved it; `None` while it is outstanding.
    pub transfer_id: Option<i64>,
}

/// One account's bill for one month in one currency.
#[derive(Debug, Clone)]
pub struct BillView {
    pub account: AccountId,
    pub month: String,
    /// What every amount of the bill is in: its lines' products' currency.
    pub currency: Currency,
    /// False for the current month so far (computed, not closed).
    pub closed: bool,
    pub total_cents: i64,
    pub lines: Vec<LineView>,
    pub settlements: Vec<SettlementView>,
}

/// A bill's key: account, month and currency.
type BillKey = (AccountId, String, Currency);

/// Which bills a page shows: months `from..=to`, in one currency or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillRange {
    pub from: Month,
    pub to: Month,
    pub currency: Option<Currency>,
}

impl Services {
    /// Bills of these accounts for months `from`..=`to`, one per account,
    /// month and currency: the closed months' bills, and with
    /// `month_to_date`, every month not closed yet as it stands (the current
    /// month so far, an ended month as its close would bill it). With
    /// `currency`, only the bills in it.
    pub async fn bills(&self, tenant: &Tenant, accounts: &[AccountId], from: Month, to: Month, month_to_date: bool, currency: Option<Currency>) -> ServiceResult<Vec<BillView>> {
        if accounts.is_empty() || from > to {
            return Ok(Vec::new());
        }
        let (from_text, to_text) = (from.to_string(), to.to_string());
        let stored = store_bills::bills(&self.store, tenant.id, accounts, &from_text, &to_text).await?;
        let stored_lines = store_bills::bill_lines(&self.store, tenant.id, accounts, &from_text, &to_text).await?;
        let stored_settlements = store_bills::settlements(&self.store, tenant.id, accounts, &from_text, &to_text).await?;
        let mut lines: HashMap<BillKey, Vec<LineView>> = HashMap::new();
        for l in stored_lines {
            let detail = serde_json::from_str(&l.detail).map_err(|e| ServiceError::Storage(StorageError::Corrupt(format!("bill line detail: {e}"))))?;
            lines.entry((l.account, l.month, l.currency)).or_default().push(LineView {
                kind: l.kind,
                for_month: l.for_month,
                product_code: l.product_code,
                order_type: l.order_type,
                description: l.description,
                unit: l.unit,
                quantity: l.quantity,
                card: l.card,
                money_cents: l.money_cents,
                previous: l.previous,
                detail,
            });
        }
        let mut settlements: HashMap<BillKey, Vec<SettlementView>> = HashMap::new();
        for s in stored_settlements {
            settlements.entry((s.account, s.month, s.currency)).or_default().push(SettlementView {
                product_code: s.product_code,
                order_type: s.order_type,
                amount_cents: s.amount_cents,
                transfer_id: s.transfer.map(|t| t.0),
            });
        }
        let mut bills: Vec<BillView> = stored
            .into_iter()
            .filter(|b| currency.is_none_or(|c| c == b.currency))
            .map(|b| {
                let key = (b.account, b.month, b.currency);
                BillView {
                    account: b.account,
                    currency: b.currency,
                    closed: true,
                    total_cents: b.total_cents,
                    lines: lines.remove(&key).unwrap_or_default(),
                    settlements: settlements.remove(&key).unwrap_or_default(),
                    month: key.1,
                }
            })
            .collect();

        if month_to_date {
            // Every month of the range that is not closed yet, up to the
            // current one, is shown as it stands: the current month so far,
            // and a month that ended but is not (or not wholly) closed as its
            // close would bill it. Accounts a closing month already billed
            // keep their stored bill.
            let current = tenant.timezone.month_of(jiff::Timestamp::now());
            let closed: std::collections::HashSet<Month> = store_bills::closed_months(&self.store, tenant.id).await?.into_iter().collect();
            let billed: std::collections::HashSet<BillKey> = bills.iter().map(|b| (b.account, b.month.clone(), b.currency)).collect();
            let mut month = from;
            while month <= to.min(current) {
                if !closed.contains(&month) {
                    let computed = self.month_so_far(tenant, accounts, month, currency).await?;
                    bills.extend(computed.into_iter().filter(|b| !billed.contains(&(b.account, b.month.clone(), b.currency))));
                }
                month = month.next();
            }
        }
        bills.sort_by(|a, b| (a.account, &a.month, a.currency).cmp(&(b.account, &b.month, b.currency)));
        Ok(bills)
    }

    /// The bills of one month not closed, computed from its usage as a
    /// close would bill it now (lines, no settlements).
    async fn month_so_far(&self, tenant: &Tenant, accounts: &[AccountId], month: Month, currency: Option<Currency>) -> ServiceResult<Vec<BillView>> {
        let mut bills = Vec::new();
        let month_text = month.to_string();
        let products = self.products(tenant).await?;
        let tariffs = self.tariff_book(tenant).await?;
        let rows = store_bills::month_rows(&self.store, tenant.id, accounts, &month_text).await?;
        // Late usage of closed months lands on the next bill that closes:
        // this month's only when every earlier month with usage is closed.
        let next_to_close = store_bills::unclosed_months_with_usage(&self.store, tenant.id, &month.previous().to_string()).await?.is_empty();
        let (late, previous) = if next_to_close {
            (store_bills::late_rows(&self.store, tenant.id, accounts, &month_text).await?, store_bills::previous_billed(&self.store, tenant.id, accounts, &month_text).await?)
        } else {
            (Vec::new(), Vec::new())
        };
        let (start, end) = tenant.timezone.month_bounds(month);
        let subscriptions = store_subscriptions::of_accounts(&self.store, tenant.id, accounts, start.as_microsecond(), end.as_microsecond()).await?;
        let catalog = Catalog { products: &products, tariffs: &tariffs, timezone: &tenant.timezone };
        let computed = match catalog.bill_lines(&month_text, rows, late, previous, &subscriptions) {
            Ok(computed) => computed,
            Err(error) => return Err(self.close_error(tenant, error).await),
        };
        for ((account, bill_currency), lines) in computed.into_iter().filter(|((_, c), _)| currency.is_none_or(|wanted| wanted == *c)) {
            let total_cents = match bill_total(account, &month_text, &lines) {
                Ok(total) => total,
                Err(unbillable) => return Err(self.unbillable_error(tenant, unbillable).await),
            };
            let lines = lines.into_iter().map(LineView::from).collect();
            bills.push(BillView { account, month: month_text.clone(), currency: bill_currency, closed: false, total_cents, lines, settlements: Vec::new() });
        }
        Ok(bills)
    }

    /// A page of the tenant's accounts (or the one named) with their bills in
    /// `range`. `month_to_date` says which accounts also see the months not
    /// closed yet, as they stand. An unknown username is `NotFound(Account)`.
    pub async fn bills_page(
        &self,
        tenant: &Tenant,
        username: Option<&str>,
        page: Page,
        range: BillRange,
        month_to_date: impl Fn(&Account) -> bool,
    ) -> ServiceResult<(i64, Vec<(Account, Vec<BillView>)>)> {
        let found = self.list_accounts(tenant, username, page).await?;
        if username.is_some() && found.total == 0 {
            return Err(ServiceError::NotFound(Resource::Account));
        }
        let ids: Vec<AccountId> = found.accounts.iter().map(|row| row.account.id).collect();
        let any_to_date = found.accounts.iter().any(|row| month_to_date(&row.account));
        let mut bills = self.bills(tenant, &ids, range.from, range.to, any_to_date, range.currency).await?;
        let accounts = found
            .accounts
            .into_iter()
            .map(|row| {
                let shows_to_date = month_to_date(&row.account);
                let mine: Vec<BillView> = bills.extract_if(.., |b| b.account == row.account.id).filter(|b| b.closed || shows_to_date).collect();
                (row.account, mine)
            })
            .collect();
        Ok((found.total, accounts))
    }

    /// Every bill of a month (all accounts): the closed month's bills or, with
    /// `month_to_date`, a month not closed yet as it stands. For exports and the CLI.
    pub async fn month_bills(&self, tenant: &Tenant, month: Month, month_to_date: bool) -> ServiceResult<Vec<(String, BillView)>> {
        let accounts = subledger_storage::accounts::all_ids(&self.store, tenant.id).await?;
        let ids: Vec<AccountId> = accounts.iter().map(|(id, _)| *id).collect();
        let names: HashMap<AccountId, String> = accounts.into_iter().collect();
        let mut all = Vec::new();
        for chunk in ids.chunks(5_000) {
            for bill in self.bills(tenant, chunk, month, month, month_to_date, None).await? {
                let name = names.get(&bill.account).cloned().ok_or_else(|| StorageError::Corrupt(format!("a bill of account {}, which the tenant does not have", bill.account)))?;
                all.push((name, bill));
            }
        }
        Ok(all)
    }

    /// The tenant's closed months, oldest first.
    pub async fn closed_months(&self, tenant: &Tenant) -> ServiceResult<Vec<Month>> {
        Ok(store_bills::closed_months(&self.store, tenant.id).await?)
    }
}

/// Widest range of days one daily view may span.
pub const DAILY_RANGE_DAYS_MAX: i64 = 93;

/// One product's usage on one day.
#[derive(Debug, Clone)]
pub struct DayLine {
    pub product_code: String,
    pub order_type: i64,
    pub description: String,
    pub unit: String,
    pub quantity: Quantity,
    /// What money paid for.
    pub billable: Quantity,
    /// Minutes time cards covered, beside `billable`.
    pub card: Quantity,
    pub events: i64,
    /// Exact rated cost (what the usage added to its month's cost).
    pub rated_micros: i64,
    /// Debited in real time (prepaid accounts).
    pub charged_cents: i64,
}

/// One account's usage on one day in one currency: the daily bill view.
#[derive(Debug, Clone)]
pub struct DayBill {
    pub day: subledger_domain::calendar::Day,
    /// The currency of its lines' products, which every amount is in.
    pub currency: Currency,
    /// The day's rated cost over all lines, rounded once to the cent (the
    /// same figure the telephony dialect shows as that day's consumption).
    pub total_cents: i64,
    pub charged_cents: i64,
    pub lines: Vec<DayLine>,
}

impl Services {
    /// Daily bills of one account for the days `from..=to` that had usage,
    /// one per day and currency.
    pub async fn daily_bills(&self, tenant: &Tenant, username: &str, from: subledger_domain::calendar::Day, to: subledger_domain::calendar::Day) -> ServiceResult<Vec<DayBill>> {
        let span = to.0.since(from.0).map(|d| d.get_days() as i64).unwrap_or(i64::MAX);
        if from > to || span >= DAILY_RANGE_DAYS_MAX {
            return Err(ServiceError::Invalid { field: "to", reason: format!("the range must run forward and span at most {DAILY_RANGE_DAYS_MAX} days") });
        }
        let account = self.account(tenant, username).await?;
        self.account_days(tenant, account.id, from, to).await
    }

    /// An account's days with usage in `from..=to`, unbounded, one per day
    /// and currency: the daily bill view and the telephony dialect's
    /// consumption figures both come from here.
    pub(crate) async fn account_days(&self, tenant: &Tenant, account: AccountId, from: subledger_domain::calendar::Day, to: subledger_domain::calendar::Day) -> ServiceResult<Vec<DayBill>> {
        let products = self.products(tenant).await?;
        let rows = store_bills::daily(&self.store, tenant.id, account, &from.to_string(), &to.to_string()).await?;
        let mut days: BTreeMap<(String, Currency), Vec<DayLine>> = BTreeMap::new();
        for row in rows {
            let product = line_product(&products, &row.product_code)?;
            days.entry((row.day, product.currency)).or_default().push(DayLine {
                order_type: product.order_type,
                description: product.name,
                unit: product.unit,
                product_code: row.product_code,
                quantity: row.quantity,
                billable: row.billable,
                card: row.card,
                events: row.events,
                rated_micros: row.rated_micros,
                charged_cents: row.charged_cents,
            });
        }
        days.into_iter()
            .map(|((day, currency), lines)| {
                let day = subledger_domain::calendar::Day(day.parse().map_err(|e| ServiceError::Storage(StorageError::Corrupt(format!("usage day {day:?}: {e}"))))?);
                Ok(DayBill {
                    day,
                    currency,
                    total_cents: sum_to_cents(lines.iter().map(|l| l.rated_micros), "a day's usage")?,
                    charged_cents: checked_sum(lines.iter().map(|l| l.charged_cents), "a day's charges")?,
                    lines,
                })
            })
            .collect()
    }
}
