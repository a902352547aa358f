//! UUCall's billing views (charge bill, basic bill by day, function bill by
//! day, billing account), projected from the same bills, rollups and
//! ledger as every other view, so they agree to the cent with the SendCloud
//! bills and the telephony statements. All in yuan (`STATEMENT_CURRENCY`):
//! UUCall shows integer fen without a currency; other currencies are left
//! out, never added.
//!
//! - **Charge bill** (per account and month): the account's bill of the
//!   month in yuan (closed, or the current month so far), its lines split by
//!   their product's bill category: `function_cents` the function fees and
//!   rentals, `basic_cents` everything else (seat fee, calls, SMS, other
//!   products, supplements); `total_cents` the bill's total. An account
//!   without a bill (no usage, no fee; or a month ended but not closed yet)
//!   shows zeros.
//! - **Basic bill by day**: each product's rated usage of the month cut by
//!   day with the running total rounded ([`telescope`]), added up per bill
//!   category; the seat fee's line spread over its subscribed days
//!   ([`apportion`]). So each product's days add up to its bill line (for
//!   products priced per event: calls, messages), and the seat's days to
//!   its line. `card_minutes` are the minutes time cards covered that day.
//!   Days without anything are left out (at most 31 days).
//! - **Function bill by day**: each function or rental line spread over its
//!   subscribed days.
//! - **Billing account**: the tenant's spendable yuan wallets (primary and
//!   promo). `balance` their balances; `overdraft` the primary wallet's
//!   credit line; `advance` what was recharged into them (deposits) this
//!   month in the tenant's zone; `consume` what was charged from them this
//!   month (usage of its seats and its own, close settlements and fees)
//!   minus refunds into them; `state` 1 normal, 2 overdrawn (a negative
//!   balance on credit), 3 exhausted (nothing left to spend).

use std::collections::BTreeMap;

use subledger_domain::calendar::{Day, Month, to_unix_micros};
use subledger_domain::catalog::BillCategory;
use subledger_domain::ids::AccountId;
use subledger_domain::ledger::{TransferKind, WalletPurpose};
use subledger_domain::money::checked_sum;
use subledger_domain::paging::Page;
use subledger_domain::rating::{DetailLine, MILLI};
use subledger_domain::seats::{apportion, days_of_runs, telescope};
use subledger_storage::StorageError;
use subledger_storage::bills as store_bills;
use subledger_storage::statements as store_statements;
use subledger_storage::wallets::{self as store_wallets, WalletOwner, WalletRecord};

use crate::Services;
use crate::billing::{BillRange, BillView, LineView};
use crate::catalog::Product;
use crate::error::{ServiceError, ServiceResult};
use crate::statements::STATEMENT_CURRENCY;
use crate::tenants::Tenant;

/// Largest page of charge bills.
pub const CHARGE_BILL_PAGE_MAX: i64 = 200;

/// One account's charge bill of a month (UUCall `chargebill`), in fen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeBillRow {
    pub account: AccountId,
    pub username: String,
    pub month: Month,
    pub basic_cents: i64,
    pub function_cents: i64,
    pub total_cents: i64,
}

/// One day of an account's basic bill (UUCall `basicbill`), in fen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicBillDay {
    pub day: Day,
    pub seat_cents: i64,
    pub call_in_cents: i64,
    pub call_out_cents: i64,
    pub internal_voice_cents: i64,
    pub sms_cents: i64,
    /// Products of no column (category `other`): in the total only.
    pub other_cents: i64,
    pub total_cents: i64,
    /// Minutes time cards covered that day (not in any amount).
    pub card_minutes: i64,
}

/// One function fee or rental on one day (UUCall `funbill`), in fen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionBillDay {
    pub day: Day,
    pub product_code: String,
    pub name: String,
    pub amount_cents: i64,
}

/// The state of the tenant's billing account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingState {
    Normal,
    /// A negative balance, on credit.
    Overdrawn,
    /// Nothing left to spend (down to the overdraft's floor).
    Exhausted,
}

impl BillingState {
    /// UUCall `state`.
    pub fn code(self) -> i64 {
        match self {
            BillingState::Normal => 1,
            BillingState::Overdrawn => 2,
            BillingState::Exhausted => 3,
        }
    }
}

/// The tenant's billing account (UUCall `BillingAccount`), in fen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingAccountView {
    pub balance_cents: i64,
    pub overdraft_cents: i64,
    pub advance_cents: i64,
    pub consume_cents: i64,
    pub state: BillingState,
}

fn category_of(products: &[Product], code: &str) -> ServiceResult<BillCategory> {
    products.iter().find(|p| p.code == code).map(|p| p.category).ok_or_else(|| ServiceError::Storage(StorageError::Corrupt(format!("a bill line of {code:?}, which is not in the catalog"))))
}

/// (basic, function) cents of a bill's lines.
fn split(products: &[Product], lines: &[LineView]) -> ServiceResult<(i64, i64)> {
    let (mut basic, mut function) = (Vec::new(), Vec::new());
    for line in lines {
        if category_of(products, &line.product_code)? == BillCategory::Function { function.push(line.money_cents) } else { basic.push(line.money_cents) }
    }
    Ok((checked_sum(basic, "a bill's basic money")?, checked_sum(function, "a bill's function money")?))
}

/// A monthly fee line spread over its subscribed days.
fn fee_days(line: &LineView) -> ServiceResult<Vec<(Day, i64)>> {
    let Some(DetailLine::Subscription { periods, .. }) = line.detail.first() else { return Ok(Vec::new()) };
    let days = days_of_runs(periods).ok_or_else(|| ServiceError::Storage(StorageError::Corrupt(format!("the days of a {} line", line.product_code))))?;
    Ok(days.iter().copied().zip(apportion(line.money_cents, days.len())).collect())
}

impl Services {
    /// A page of the tenant's accounts (or the one named) with their charge
    /// bill of `month` in yuan, and how many accounts there are.
    pub async fn charge_bills(&self, tenant: &Tenant, month: Month, username: Option<&str>, page: Page) -> ServiceResult<(i64, Vec<ChargeBillRow>)> {
        let page = Page { offset: page.offset, limit: page.limit.clamp(0, CHARGE_BILL_PAGE_MAX) };
        let products = self.products(tenant).await?;
        let range = BillRange { from: month, to: month, currency: Some(STATEMENT_CURRENCY) };
        let (total, accounts) = self.bills_page(tenant, username, page, range, |_| true).await?;
        let rows = accounts
            .into_iter()
            .map(|(account, bills)| {
                let (basic_cents, function_cents, total_cents) = match bills.first() {
                    Some(bill) => {
                        let (basic, function) = split(&products, &bill.lines)?;
                        (basic, function, bill.total_cents)
                    }
                    None => (0, 0, 0),
                };
                Ok(ChargeBillRow { account: account.id, username: account.username.as_str().to_owned(), month, basic_cents, function_cents, total_cents })
            })
            .collect::<ServiceResult<_>>()?;
        Ok((total, rows))
    }

    /// The account's yuan bill of `month`: stored (closed), or computed (the current month).
    async fn yuan_bill(&self, tenant: &Tenant, account: AccountId, month: Month) -> ServiceResult<Option<BillView>> {
        let current = tenant.timezone.month_of(jiff::Timestamp::now());
        let bills = self.bills(tenant, &[account], month, month, month == current, Some(STATEMENT_CURRENCY)).await?;
        Ok(bills.into_iter().find(|b| b.month == month.to_string()))
    }

    /// An account's basic bill of `month`, one entry per day with anything, in order.
    pub async fn basic_bill_days(&self, tenant: &Tenant, account: AccountId, month: Month) -> ServiceResult<Vec<BasicBillDay>> {
        let products = self.products(tenant).await?;
        let first = month.first_day();
        let last = month.next().first_day().previous();
        let rows = store_bills::daily(&self.store, tenant.id, account, &first.to_string(), &last.to_string()).await?;
        // Per product, its days in order (the rows come by day): micros and card minutes.
        let mut by_product: BTreeMap<&str, Vec<(String, i64, i64)>> = BTreeMap::new();
        for row in &rows {
            let product = products
                .iter()
                .find(|p| p.code == row.product_code)
                .ok_or_else(|| ServiceError::Storage(StorageError::Corrupt(format!("usage of {:?}, which is not in the catalog", row.product_code))))?;
            if product.currency == STATEMENT_CURRENCY {
                by_product.entry(product.code.as_str()).or_default().push((row.day.clone(), row.rated_micros, row.card.milli() / MILLI));
            }
        }
        let mut days: BTreeMap<Day, BasicBillDay> = BTreeMap::new();
        let blank = |day: Day| BasicBillDay { day, seat_cents: 0, call_in_cents: 0, call_out_cents: 0, internal_voice_cents: 0, sms_cents: 0, other_cents: 0, total_cents: 0, card_minutes: 0 };
        let parse_day = |text: &str| text.parse().map(Day).map_err(|e| ServiceError::Storage(StorageError::Corrupt(format!("usage day {text:?}: {e}"))));
        for (code, product_days) in by_product {
            let category = category_of(&products, code)?;
            let cents = telescope(&product_days.iter().map(|(_, micros, _)| *micros).collect::<Vec<_>>())?;
            for ((day, _, card), cents) in product_days.iter().zip(cents) {
                let entry = days.entry(parse_day(day)?).or_insert_with_key(|d| blank(*d));
                entry.card_minutes += card;
                *match category {
                    BillCategory::Seat => &mut entry.seat_cents,
                    BillCategory::CallIn => &mut entry.call_in_cents,
                    BillCategory::CallOut => &mut entry.call_out_cents,
                    BillCategory::InternalVoice => &mut entry.internal_voice_cents,
                    BillCategory::Sms => &mut entry.sms_cents,
                    BillCategory::Function | BillCategory::Other => &mut entry.other_cents,
                } += cents;
            }
        }
        if let Some(bill) = self.yuan_bill(tenant, account, month).await? {
            for line in bill.lines.iter().filter(|l| l.product_code == subledger_domain::catalog::SEAT_PRODUCT) {
                for (day, cents) in fee_days(line)? {
                    days.entry(day).or_insert_with_key(|d| blank(*d)).seat_cents += cents;
                }
            }
        }
        days.into_values()
            .map(|mut day| {
                let parts = [day.seat_cents, day.call_in_cents, day.call_out_cents, day.internal_voice_cents, day.sms_cents, day.other_cents];
                day.total_cents = checked_sum(parts, "a day's basic bill")?;
                Ok(day)
            })
            .collect()
    }

    /// An account's function fees and rentals of `month`, per day and product, in order.
    pub async fn function_bill_days(&self, tenant: &Tenant, account: AccountId, month: Month) -> ServiceResult<Vec<FunctionBillDay>> {
        let products = self.products(tenant).await?;
        let Some(bill) = self.yuan_bill(tenant, account, month).await? else { return Ok(Vec::new()) };
        let mut days = Vec::new();
        for line in &bill.lines {
            if category_of(&products, &line.product_code)? != BillCategory::Function {
                continue;
            }
            for (day, amount_cents) in fee_days(line)? {
                days.push(FunctionBillDay { day, product_code: line.product_code.clone(), name: line.description.clone(), amount_cents });
            }
        }
        days.sort_by(|a, b| (a.day, &a.product_code).cmp(&(b.day, &b.product_code)));
        Ok(days)
    }

    /// The tenant's billing account now (see the module's documentation).
    pub async fn billing_account(&self, tenant: &Tenant) -> ServiceResult<BillingAccountView> {
        let owner = WalletOwner::Tenant(tenant.id);
        let mut wallets: Vec<WalletRecord> = Vec::new();
        for purpose in [WalletPurpose::Primary, WalletPurpose::Promo] {
            wallets.extend(store_wallets::find(&self.store, owner, purpose, STATEMENT_CURRENCY).await?);
        }
        let month_start = to_unix_micros(tenant.timezone.month_bounds(tenant.timezone.month_of(jiff::Timestamp::now())).0);
        let (mut advance, mut charged, mut refunded) = (Vec::new(), Vec::new(), Vec::new());
        for wallet in &wallets {
            for (kind, credited, debited) in store_statements::wallet_flows(&self.store, wallet.id, month_start).await? {
                match kind {
                    TransferKind::Deposit => advance.push(credited),
                    TransferKind::Charge => charged.push(debited),
                    TransferKind::Refund => refunded.push(credited),
                    _ => {}
                }
            }
        }
        let balance_cents = checked_sum(wallets.iter().map(|w| w.balance_minor), "the tenant's balance")?;
        let overdraft_cents = wallets.iter().find(|w| w.purpose == WalletPurpose::Primary).and_then(|w| w.floor_minor).map_or(0, |floor| -floor.min(0));
        let available = checked_sum(wallets.iter().map(|w| w.available_minor().unwrap_or(0)), "the tenant's available money")?;
        let state = if available <= 0 {
            BillingState::Exhausted
        } else if balance_cents < 0 {
            BillingState::Overdrawn
        } else {
            BillingState::Normal
        };
        let consume_cents =
            checked_sum(charged, "this month's charges")?.checked_sub(checked_sum(refunded, "this month's refunds")?).ok_or(subledger_domain::money::AmountTooLarge("this month's consumption"))?;
        Ok(BillingAccountView { balance_cents, overdraft_cents, advance_cents: checked_sum(advance, "this month's recharges")?, consume_cents, state })
    }
}
