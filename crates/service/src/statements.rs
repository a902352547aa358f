//! Statements for the telephony dialect: balances, consumption by day, group
//! and month, tariffs as shown to a developer account.
//!
//! Every amount here is read from the ledger (`entries`) or from the usage
//! rollups (`usage_daily`, `usage_monthly`), never from raw events. Days and
//! months are cut in the tenant's time zone. The rules, in one place:
//!
//! - **Consumption** is the rated cost of accepted usage (`rated_micros`),
//!   whether or not it was charged yet (postpaid accounts consume too).
//!   Per day it is the sum over every product, rounded half-up to cents once
//!   per day; a month to date is the sum of its rounded days, so a trend adds
//!   up to the month's consumption.
//! - **Per product**, a month is rounded once (as a bill line is); groups and
//!   overview categories add rounded product amounts, so the overview and the
//!   statement of the current month add up to the same total.
//! - **A wallet's month**: `amount` = opening balance + recharges, `deduction`
//!   = `amount` − balance, so `amount − deduction = balance` always holds.
//!   Recharges are the credits of [`RECHARGE_KINDS`]; for an account's wallet
//!   those are all the credits there can be, so `deduction` is everything
//!   that left the wallet (usage charges, settlements, reclaims, moves to
//!   the other wallet).
//! - **One currency**: the telephony dialect shows yuan. Its items are
//!   built-in products, priced in [`STATEMENT_CURRENCY`]; balances and
//!   consumption are those of that currency alone, so usage of a tenant's
//!   product priced in another currency is never added to yuan figures.

use std::collections::HashMap;

use subledger_domain::calendar::{Day, Month, TenantTimeZone, to_unix_micros};
use subledger_domain::catalog::{BUILTIN_CURRENCY, OVERVIEW_CATEGORIES, TelephonyGroup, TelephonyItem};
use subledger_domain::ids::AccountId;
use subledger_domain::ledger::{TransferKind, WalletPurpose};
use subledger_domain::money::{AmountTooLarge, Currency, checked_sum};
use subledger_domain::rating::{MILLI, PriceModel, Quantity, micros_to_cents};
use subledger_storage::statements::{self as store_statements, ProductMonth, WalletPeriod};
use subledger_storage::wallets::{self as store_wallets, WalletOwner};

use crate::catalog::{Product, TariffBook};
use crate::error::ServiceResult;
use crate::tenants::Tenant;
use crate::{Services, now_us};

/// Transfer kinds whose credits count as a wallet's recharges (充值) in a
/// month: recharges from outside, allocations from the tenant, moves between
/// the account's own wallets, and refunds (返账) of earlier charges.
pub const RECHARGE_KINDS: [TransferKind; 4] = [TransferKind::Deposit, TransferKind::Allocation, TransferKind::Internal, TransferKind::Refund];

/// The currency of every figure here: that of the telephony items, which
/// are built-in products.
pub const STATEMENT_CURRENCY: Currency = BUILTIN_CURRENCY;

/// The telephony items priced for an account, by group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeGroup {
    pub group: TelephonyGroup,
    /// Only items with a tariff in force that has a price per shown unit.
    pub items: Vec<ChargeItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeItem {
    pub product_code: String,
    pub item: TelephonyItem,
    /// Millionths of a yuan per the item's shown unit (`price_unit`: a minute, a message).
    pub price_micros: i64,
}

/// Balances and consumption of an account (`getAccountAmount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountAmounts {
    pub primary_minor: i64,
    pub promo_minor: i64,
    pub yesterday: Day,
    pub yesterday_cents: i64,
    pub month: Month,
    /// Month to date, today included.
    pub month_cents: i64,
}

/// A spendable wallet over the current month (`getAccountInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletMonth {
    pub purpose: WalletPurpose,
    pub month: Month,
    /// Balance at the month's first instant.
    pub opening_minor: i64,
    /// Credits of [`RECHARGE_KINDS`] since then.
    pub recharged_minor: i64,
    /// `opening_minor + recharged_minor`.
    pub amount_minor: i64,
    /// `amount_minor − balance_minor`.
    pub deduction_minor: i64,
    pub balance_minor: i64,
}

/// One telephony group of a month's statement (`getConsumerInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementGroup {
    pub group: TelephonyGroup,
    /// Sum of the items' cents.
    pub total_cents: i64,
    /// Every item of the group, used or not, in catalog order.
    pub items: Vec<StatementItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementItem {
    pub product_code: String,
    pub item: TelephonyItem,
    /// Billable quantity: whole increments for per-unit tariffs (started
    /// minutes of calls, messages).
    pub billable: Quantity,
    pub events: i64,
    /// The month's rated cost of the item, rounded once.
    pub cents: i64,
}

/// One day of a consumption trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayAmount {
    pub day: Day,
    pub cents: i64,
}

/// Quantity units in one shown unit: a call's quantity is seconds and its
/// price is shown per minute; everything else is shown per unit.
fn units_per_shown_unit(item: &TelephonyItem) -> i64 {
    if item.price_unit.ends_with("分钟") { 60 } else { 1 }
}

/// The price per shown unit, where the model has one price: per-unit models
/// (converted from their increment to the shown unit, e.g. 0.02 per 10 s is
/// 0.12 per minute) and allowances (the price beyond the free quantity).
/// Graduated, per-country and recurring (per item and month) models have no
/// price per minute or message.
pub(crate) fn shown_price_micros(model: &PriceModel, item: &TelephonyItem) -> Option<i64> {
    let (price, per_milli) = match model {
        PriceModel::PerUnit { price, increment } => (price.micros(), increment.milli()),
        PriceModel::Allowance { price, .. } => (price.micros(), MILLI),
        PriceModel::Graduated { .. } | PriceModel::ByCountry { .. } | PriceModel::Recurring { .. } => return None,
    };
    if per_milli <= 0 {
        return None;
    }
    let shown_milli = i128::from(units_per_shown_unit(item)) * i128::from(MILLI);
    let per_milli = i128::from(per_milli);
    // Rounded half-up to a millionth when the increment does not divide the shown unit.
    let micros = subledger_domain::decimal::div_round_half_up(i128::from(price) * shown_milli, per_milli);
    i64::try_from(micros).ok()
}

/// The telephony products of a group, in catalog order.
fn telephony_products(products: &[Product], group: TelephonyGroup) -> impl Iterator<Item = (&str, TelephonyItem)> {
    products.iter().filter_map(move |p| p.telephony.filter(|t| t.group == group).map(|t| (p.code.as_str(), t)))
}

fn charge_groups(products: &[Product], tariffs: &TariffBook, account: AccountId, at_us: i64) -> Vec<ChargeGroup> {
    TelephonyGroup::ALL
        .iter()
        .map(|&group| ChargeGroup {
            group,
            items: telephony_products(products, group)
                .filter_map(|(code, item)| {
                    let version = tariffs.in_force(code, account, at_us)?;
                    Some(ChargeItem { product_code: code.to_owned(), item, price_micros: shown_price_micros(&version.model, &item)? })
                })
                .collect(),
        })
        .collect()
}

fn statement_groups(products: &[Product], rows: &[ProductMonth]) -> Result<Vec<StatementGroup>, AmountTooLarge> {
    let by_code: HashMap<&str, &ProductMonth> = rows.iter().map(|r| (r.product_code.as_str(), r)).collect();
    TelephonyGroup::ALL
        .iter()
        .map(|&group| {
            let items: Vec<StatementItem> = telephony_products(products, group)
                .map(|(code, item)| {
                    let row = by_code.get(code);
                    StatementItem {
                        product_code: code.to_owned(),
                        item,
                        billable: row.map_or(Quantity::default(), |r| r.billable),
                        events: row.map_or(0, |r| r.events),
                        cents: row.map_or(0, |r| micros_to_cents(r.rated_micros)),
                    }
                })
                .collect();
            Ok(StatementGroup { group, total_cents: checked_sum(items.iter().map(|i| i.cents), "a group's consumption")?, items })
        })
        .collect()
}

fn overview(products: &[Product], rows: &[ProductMonth]) -> Result<Vec<(&'static str, i64)>, AmountTooLarge> {
    let overview_of: HashMap<&str, &str> = products.iter().filter_map(|p| Some((p.code.as_str(), p.telephony?.overview))).collect();
    OVERVIEW_CATEGORIES
        .iter()
        .map(|&category| {
            let cents = checked_sum(rows.iter().filter(|r| overview_of.get(r.product_code.as_str()) == Some(&category)).map(|r| micros_to_cents(r.rated_micros)), "a category's consumption")?;
            Ok((category, cents))
        })
        .collect()
}

/// Days from `first` through `last`, both included.
fn days(first: Day, last: Day) -> impl Iterator<Item = Day> {
    std::iter::successors(Some(first), |d| d.0.tomorrow().ok().map(Day)).take_while(move |d| *d <= last)
}

/// Today and the current month in the tenant's zone.
fn today(timezone: &TenantTimeZone) -> Day {
    timezone.day_of(jiff::Timestamp::now())
}

impl Services {
    /// The telephony items an account can use now, with their price per
    /// shown unit, in the three groups (kept even when empty). An item
    /// without a tariff in force is left out: usage of it would be refused
    /// (`no_tariff`).
    pub async fn telephony_charges(&self, tenant: &Tenant, username: &str) -> ServiceResult<Vec<ChargeGroup>> {
        let account = self.account(tenant, username).await?;
        let products = self.products(tenant).await?;
        let tariffs = self.tariff_book(tenant).await?;
        Ok(charge_groups(&products, &tariffs, account.id, now_us()))
    }

    /// The account's primary and promo balances in [`STATEMENT_CURRENCY`], its consumption on
    /// the tenant's yesterday and in the current month to date.
    pub async fn account_amounts(&self, tenant: &Tenant, username: &str) -> ServiceResult<AccountAmounts> {
        let account = self.account(tenant, username).await?;
        let today = today(&tenant.timezone);
        let yesterday = today.previous();
        let month = today.month();
        let by_day = self.consumption_by_day(tenant, account.id, yesterday.min(month.first_day()), today).await?;
        let wallets = store_wallets::of_owner(&self.store, WalletOwner::Account(tenant.id, account.id)).await?;
        let balance = |purpose: WalletPurpose| wallets.iter().find(|w| w.purpose == purpose && w.currency == STATEMENT_CURRENCY).map_or(0, |w| w.balance_minor);
        Ok(AccountAmounts {
            primary_minor: balance(WalletPurpose::Primary),
            promo_minor: balance(WalletPurpose::Promo),
            yesterday,
            yesterday_cents: by_day.get(&yesterday).copied().unwrap_or(0),
            month,
            month_cents: checked_sum(by_day.iter().filter(|(day, _)| day.month() == month).map(|(_, cents)| *cents), "the month's consumption")?,
        })
    }

    /// Month-to-date consumption of the telephony products, per overview
    /// category, in [`OVERVIEW_CATEGORIES`] order (all five, zeros included).
    pub async fn consumption_overview(&self, tenant: &Tenant, username: &str) -> ServiceResult<Vec<(&'static str, i64)>> {
        let account = self.account(tenant, username).await?;
        let products = self.products(tenant).await?;
        let month = today(&tenant.timezone).month();
        let rows = store_statements::month_by_product(&self.store, tenant.id, account.id, &month.to_string()).await?;
        Ok(overview(&products, &rows)?)
    }

    /// The account's primary and promo wallets in [`STATEMENT_CURRENCY`] over the current month.
    pub async fn wallet_months(&self, tenant: &Tenant, username: &str) -> ServiceResult<Vec<WalletMonth>> {
        let account = self.account(tenant, username).await?;
        let month = today(&tenant.timezone).month();
        let (start, _) = tenant.timezone.month_bounds(month);
        let owner = WalletOwner::Account(tenant.id, account.id);
        let mut months = Vec::with_capacity(2);
        for purpose in [WalletPurpose::Primary, WalletPurpose::Promo] {
            let period = match store_wallets::find(&self.store, owner, purpose, STATEMENT_CURRENCY).await? {
                Some(wallet) => store_statements::wallet_period(&self.store, wallet.id, to_unix_micros(start), &RECHARGE_KINDS).await?,
                None => WalletPeriod { opening_minor: 0, credited_minor: 0, balance_minor: 0 },
            };
            let amount_minor = period.opening_minor.checked_add(period.credited_minor).ok_or(AmountTooLarge("the month's recharges"))?;
            months.push(WalletMonth {
                purpose,
                month,
                opening_minor: period.opening_minor,
                recharged_minor: period.credited_minor,
                amount_minor,
                deduction_minor: amount_minor.checked_sub(period.balance_minor).ok_or(AmountTooLarge("the month's deductions"))?,
                balance_minor: period.balance_minor,
            });
        }
        Ok(months)
    }

    /// A month's telephony statement: every item of every group, with its
    /// billable quantity and cost.
    pub async fn telephony_statement(&self, tenant: &Tenant, username: &str, month: Month) -> ServiceResult<Vec<StatementGroup>> {
        let account = self.account(tenant, username).await?;
        let products = self.products(tenant).await?;
        let rows = store_statements::month_by_product(&self.store, tenant.id, account.id, &month.to_string()).await?;
        Ok(statement_groups(&products, &rows)?)
    }

    /// Consumption per day of the current month, from the 1st through today
    /// (zeros included).
    pub async fn consumption_trend(&self, tenant: &Tenant, username: &str) -> ServiceResult<Vec<DayAmount>> {
        let account = self.account(tenant, username).await?;
        let today = today(&tenant.timezone);
        let first = today.month().first_day();
        let by_day = self.consumption_by_day(tenant, account.id, first, today).await?;
        Ok(days(first, today).map(|day| DayAmount { day, cents: by_day.get(&day).copied().unwrap_or(0) }).collect())
    }

    /// Consumption in cents per day with usage in `[from, to]`: each day's
    /// rated cost over the products priced in [`STATEMENT_CURRENCY`], rounded once.
    async fn consumption_by_day(&self, tenant: &Tenant, account: AccountId, from: Day, to: Day) -> ServiceResult<HashMap<Day, i64>> {
        Ok(self.account_days(tenant, account, from, to).await?.into_iter().filter(|day| day.currency == STATEMENT_CURRENCY).map(|day| (day.day, day.total_cents)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subledger_domain::catalog::BUILTIN;
    use subledger_domain::rating::UnitPrice;

    fn item(code: &str) -> TelephonyItem {
        BUILTIN.iter().find(|p| p.code == code).and_then(|p| p.telephony).expect("a telephony item")
    }

    fn per_unit(price: &str, increment: &str) -> PriceModel {
        PriceModel::PerUnit { price: UnitPrice::parse(price).unwrap(), increment: Quantity::parse(increment).unwrap() }
    }

    #[test]
    fn prices_are_shown_per_minute_or_per_message() {
        let call = item("pstn_one_way");
        let sms = item("sms");
        assert_eq!(shown_price_micros(&per_unit("0.12", "60"), &call), Some(120_000));
        // Six-second billing at 0.012 per increment is 0.12 per minute.
        assert_eq!(shown_price_micros(&per_unit("0.012", "6"), &call), Some(120_000));
        assert_eq!(shown_price_micros(&per_unit("0.001", "1"), &call), Some(60_000));
        // 0.1 per 7 s: 0.857142857… per minute, rounded half-up to a millionth.
        assert_eq!(shown_price_micros(&per_unit("0.1", "7"), &call), Some(857_143));
        assert_eq!(shown_price_micros(&per_unit("0.05", "1"), &sms), Some(50_000));
        assert_eq!(shown_price_micros(&PriceModel::Allowance { free: Quantity::units(100).unwrap(), price: UnitPrice::parse("0.002").unwrap() }, &call), Some(120_000));
        assert_eq!(shown_price_micros(&PriceModel::Recurring { price: UnitPrice::parse("10").unwrap() }, &sms), None);
    }

    #[test]
    fn days_run_through_the_last() {
        let first = Day("2024-02-27".parse().unwrap());
        let listed: Vec<String> = days(first, Day("2024-03-01".parse().unwrap())).map(|d| d.to_string()).collect();
        assert_eq!(listed, ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]);
        assert_eq!(days(first, first).count(), 1);
    }
}
