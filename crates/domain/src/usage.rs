//! Usage ingestion, computed in memory: given a batch of events and the state
//! read under lock (earlier outcomes, month-to-date rollups, today's quota
//! use, wallet balances), decide each event in order — duplicate, rejected,
//! or accepted with its charge — and return the changes to write.
//!
//! Charges telescope: an event costs what it adds to its month's exact cost
//! ([`rating::marginal_micros`]), and cents are rounded on the cumulative
//! month-to-date amount, so an account's real-time charges for a month add up
//! to that month's cost rounded once. A prepaid event the wallets cannot pay
//! is rejected; promo money is spent before primary money. Postpaid events are
//! charged at month close.
//!
//! An event is in its product's currency: it is charged from the account's
//! wallets of that currency to the tenant's revenue wallet of that currency,
//! and refused (`no_wallet_in_currency`) when the account has no wallets in
//! it. Every sum (what an account owes, what a revenue wallet receives) is
//! kept per currency.
//!
//! An account funded by its tenant (a seat) is charged from its tenant's
//! spendable wallets: the wallets in [`AccountTerms::wallets`] are whoever
//! pays, and what a batch owes is summed per paying wallet pair, so seats
//! sharing their tenant's wallets are checked together. A cancelled account
//! is charged nothing more: its events are refused (`account_cancelled`).
//!
//! Time cards ([`crate::timecards`]) cover the billable minutes of
//! per-minute voice products before money: an event's card minutes are
//! taken from the batch's [`CardBook`] only once the event is accepted, and
//! only its remaining minutes are rated and charged.
//!
//! Every amount is checked: an event whose rating, month rollup
//! ([`rating::MONTH_MICROS_MAX`], [`rating::MONTH_QUANTITY_MILLI_MAX`]), the
//! account's charges in the batch or the revenue wallet's balance
//! ([`AMOUNT_MINOR_MAX`]) would pass its limit is refused alone as
//! `amount_too_large`, and changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::BillCategory;
use crate::ids::{AccountId, WalletId};
use crate::ledger::{Book, DebitRule, TransferIntent};
use crate::money::{AMOUNT_MINOR_MAX, AmountTooLarge, Currency};
use crate::posting::promo_first;
use crate::rating::{self, MILLI, MONTH_CENTS_MAX, MONTH_MICROS_MAX, MONTH_QUANTITY_MILLI_MAX, MonthUsage, PriceModel, Quantity, micros_to_cents};
use crate::timecards::{self, CardBook, CardChange, Cover};

/// Why an event was refused. Stable snake_case codes in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageRejection {
    UnknownAccount,
    UnknownProduct,
    NoTariff,
    AccountFrozen,
    MissingAttribute,
    InvalidQuantity,
    InFuture,
    /// Older than the horizon for late usage.
    TooOld,
    QuotaExceeded,
    InsufficientFunds,
    /// Its cost, or its month's totals with it, would pass their limits.
    AmountTooLarge,
    /// The account has no wallets in the product's currency (they open with
    /// its first deposit, transfer or overdraft in that currency).
    NoWalletInCurrency,
    /// The account is cancelled (a sub-user deleted): kept for its history,
    /// it can no longer be charged.
    AccountCancelled,
    /// The product is a monthly fee (a function, a rental, the seat), billed
    /// by subscription at month close, not by events.
    NotMetered,
}

impl UsageRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageRejection::UnknownAccount => "unknown_account",
            UsageRejection::UnknownProduct => "unknown_product",
            UsageRejection::NoTariff => "no_tariff",
            UsageRejection::AccountFrozen => "account_frozen",
            UsageRejection::MissingAttribute => "missing_attribute",
            UsageRejection::InvalidQuantity => "invalid_quantity",
            UsageRejection::InFuture => "in_future",
            UsageRejection::TooOld => "too_old",
            UsageRejection::QuotaExceeded => "quota_exceeded",
            UsageRejection::InsufficientFunds => "insufficient_funds",
            UsageRejection::AmountTooLarge => "amount_too_large",
            UsageRejection::NoWalletInCurrency => "no_wallet_in_currency",
            UsageRejection::AccountCancelled => "account_cancelled",
            UsageRejection::NotMetered => "not_metered",
        }
    }

    pub fn parse(text: &str) -> Option<UsageRejection> {
        Some(match text {
            "unknown_account" => UsageRejection::UnknownAccount,
            "unknown_product" => UsageRejection::UnknownProduct,
            "no_tariff" => UsageRejection::NoTariff,
            "account_frozen" => UsageRejection::AccountFrozen,
            "missing_attribute" => UsageRejection::MissingAttribute,
            "invalid_quantity" => UsageRejection::InvalidQuantity,
            "in_future" => UsageRejection::InFuture,
            "too_old" => UsageRejection::TooOld,
            "quota_exceeded" => UsageRejection::QuotaExceeded,
            "insufficient_funds" => UsageRejection::InsufficientFunds,
            "amount_too_large" => UsageRejection::AmountTooLarge,
            "no_wallet_in_currency" => UsageRejection::NoWalletInCurrency,
            "account_cancelled" => UsageRejection::AccountCancelled,
            "not_metered" => UsageRejection::NotMetered,
            _ => return None,
        })
    }
}

/// The fate of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted(Accepted),
    Rejected(UsageRejection),
}

/// What an accepted event was charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub billable: Quantity,
    /// What the event added to its month's exact cost.
    pub rated_micros: i64,
    /// What was debited for it now (0 for postpaid accounts).
    pub charge_cents: i64,
    /// Billable minutes time cards covered (not in `billable`, which money paid for).
    pub card_minutes: i64,
}

/// The spendable wallets of one currency that pay an account's charges:
/// its own, or its tenant's for a tenant-funded account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpendableWallets {
    pub primary: WalletId,
    pub promo: WalletId,
}

/// An account as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountTerms {
    pub id: AccountId,
    pub active: bool,
    /// Cancelled (access state 3): refused, whatever else.
    pub cancelled: bool,
    /// Funded by its tenant: it is a seat, which may use the tenant's shared time cards.
    pub seat: bool,
    pub postpaid: bool,
    pub daily_quota: i64,
    /// The wallets that pay for it in the currencies the batch needs (those
    /// it has): its own, or its tenant's when it is tenant-funded.
    pub wallets: BTreeMap<Currency, SpendableWallets>,
}

/// One event, its references resolved by the service.
#[derive(Debug, Clone)]
pub struct EventInput {
    pub event_id: String,
    /// When it occurred: time cards cover it if valid at this instant.
    pub at_us: i64,
    /// Its product's bill category: cards cover voice categories only.
    pub category: BillCategory,
    /// `Err` when the event was refused before rating (unknown account, …).
    pub account: Result<AccountId, UsageRejection>,
    pub product: String,
    /// The product's currency.
    pub currency: Currency,
    pub quantity: Quantity,
    /// The tenant's calendar day and month of the event (`YYYY-MM-DD`, `YYYY-MM`).
    pub day: String,
    pub month: String,
    /// The grouping value (country id or item), or "".
    pub attr: String,
    pub country: Option<i64>,
    /// The tariff in force when the event occurred.
    pub model: Option<Arc<PriceModel>>,
}

/// Month-to-date usage of one (account, product, month), per grouping value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthRollup {
    pub by_attr: BTreeMap<String, RollupAmounts>,
}

/// The amounts a rollup row carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupAmounts {
    pub quantity_milli: i64,
    pub billable_milli: i64,
    pub events: i64,
    pub rated_micros: i64,
    pub charged_cents: i64,
    /// Minutes time cards covered, in thousandths (not in `billable_milli`).
    pub card_milli: i64,
}

impl RollupAmounts {
    /// Column by column, or `None` when a column would leave `i64`.
    pub fn checked_add(&self, other: &RollupAmounts) -> Option<RollupAmounts> {
        Some(RollupAmounts {
            quantity_milli: self.quantity_milli.checked_add(other.quantity_milli)?,
            billable_milli: self.billable_milli.checked_add(other.billable_milli)?,
            events: self.events.checked_add(other.events)?,
            rated_micros: self.rated_micros.checked_add(other.rated_micros)?,
            charged_cents: self.charged_cents.checked_add(other.charged_cents)?,
            card_milli: self.card_milli.checked_add(other.card_milli)?,
        })
    }

    /// Whether these are possible totals of one (account, product, month):
    /// within the month's limits, so every sum over its rows fits (see `rating`).
    pub fn within_month_limits(&self) -> bool {
        self.quantity_milli <= MONTH_QUANTITY_MILLI_MAX
            && self.billable_milli <= MONTH_QUANTITY_MILLI_MAX
            && self.card_milli <= MONTH_QUANTITY_MILLI_MAX
            && self.rated_micros <= MONTH_MICROS_MAX
            && self.charged_cents <= MONTH_CENTS_MAX
    }
}

impl MonthRollup {
    /// The month's totals over its grouping values, or [`AmountTooLarge`]
    /// when they pass the month's limits (stored rows never do: the engine
    /// refuses the event that would).
    pub fn totals(&self) -> Result<RollupAmounts, AmountTooLarge> {
        self.by_attr.values().try_fold(RollupAmounts::default(), |totals, amounts| totals.checked_add(amounts)).filter(RollupAmounts::within_month_limits).ok_or(AmountTooLarge("a month's usage"))
    }

    /// The month's usage as the rating engine reads it.
    pub fn usage(&self) -> Result<MonthUsage, AmountTooLarge> {
        let quantity = |milli| Quantity::from_milli(milli).ok_or(AmountTooLarge("a month's quantity"));
        Ok(MonthUsage {
            billable: quantity(self.totals()?.billable_milli)?,
            by_country: self
                .by_attr
                .iter()
                .filter_map(|(attr, a)| Some((attr.parse::<i64>().ok()?, a.billable_milli)))
                .map(|(country, milli)| Ok((country, quantity(milli)?)))
                .collect::<Result<_, AmountTooLarge>>()?,
            items: self.by_attr.keys().filter(|attr| !attr.is_empty()).cloned().collect(),
        })
    }
}

/// Key of a month rollup.
pub type MonthKey = (AccountId, String, String);
/// Key of a day rollup: account, product, day, grouping value.
pub type DayKey = (AccountId, String, String, String);

/// Everything read under lock for the batch.
pub struct BatchState {
    /// Earlier outcomes of the batch's event ids.
    pub earlier: HashMap<String, Outcome>,
    pub accounts: HashMap<AccountId, AccountTerms>,
    pub months: HashMap<MonthKey, MonthRollup>,
    /// Requests counted per (account, day).
    pub quota_used: HashMap<(AccountId, String), i64>,
    /// The accounts' wallets and the tenant's revenue wallets, locked.
    pub book: Book,
    /// The tenant's revenue wallet of each currency the batch uses.
    pub revenue: BTreeMap<Currency, WalletId>,
    /// The time cards the batch's accounts may use, locked.
    pub cards: CardBook,
}

/// The changes a batch makes.
#[derive(Debug, Default)]
pub struct BatchChanges {
    /// One per input event, in order; `true` when it repeats an earlier id.
    pub outcomes: Vec<(Outcome, bool)>,
    /// Additions to day rollups.
    pub days: HashMap<DayKey, RollupAmounts>,
    /// Additions to month rollups (per grouping value).
    pub months: HashMap<(AccountId, String, String, String), RollupAmounts>,
    /// Requests to add per (account, day).
    pub quota: HashMap<(AccountId, String), i64>,
    /// The charges to post: (from, to, amount), one per paying wallet, each
    /// in its wallets' currency.
    pub debits: Vec<TransferIntent>,
    /// The time cards consumed from.
    pub cards: Vec<CardChange>,
}

/// Decides every event of a batch, in order.
pub fn ingest<'a>(events: impl IntoIterator<Item = &'a EventInput>, state: &mut BatchState) -> BatchChanges {
    let events = events.into_iter();
    let mut changes = BatchChanges { outcomes: Vec::with_capacity(events.size_hint().0), ..BatchChanges::default() };
    let mut fresh: HashMap<&str, Outcome> = HashMap::new();
    let mut owed = Owed::default();

    for event in events {
        if let Some(first) = state.earlier.get(&event.event_id).or_else(|| fresh.get(event.event_id.as_str())) {
            changes.outcomes.push((first.clone(), true));
            continue;
        }
        let outcome = decide(event, state, &mut changes, &mut owed);
        fresh.insert(&event.event_id, outcome.clone());
        changes.outcomes.push((outcome, false));
    }

    // One debit per paying wallet: promo money first, then primary.
    for (&(currency, wallets), &cents) in owed.by_payer.iter().filter(|(_, cents)| **cents > 0) {
        // Every event was accepted only if its payer's wallets could pay it
        // on top of what they owed before (`decide`), so the whole is
        // payable, into the revenue wallet of that currency.
        let revenue = state.revenue.get(&currency).expect("accepted charges have a revenue wallet");
        let parts = promo_first(&state.book, wallets.promo, wallets.primary, cents).expect("accepted charges are payable");
        changes.debits.extend(parts.into_iter().map(|(wallet, amount)| TransferIntent { debit: wallet, credit: *revenue, amount, currency, debit_rule: DebitRule::ToFloor }));
    }
    changes.cards = state.cards.changes();
    changes
}

/// Cents the batch's accepted events owe so far: per paying wallet pair
/// (an account's own, or its tenant's, shared by its seats), and per
/// currency in all (all of it goes to that currency's revenue wallet).
#[derive(Debug, Default)]
struct Owed {
    by_payer: BTreeMap<(Currency, SpendableWallets), i64>,
    total: BTreeMap<Currency, i64>,
}

fn decide(event: &EventInput, state: &mut BatchState, changes: &mut BatchChanges, owed: &mut Owed) -> Outcome {
    let account = match event.account {
        Ok(account) => account,
        Err(reason) => return Outcome::Rejected(reason),
    };
    let Some(terms) = state.accounts.get(&account).cloned() else { return Outcome::Rejected(UsageRejection::UnknownAccount) };
    if terms.cancelled {
        return Outcome::Rejected(UsageRejection::AccountCancelled);
    }
    if !terms.active {
        return Outcome::Rejected(UsageRejection::AccountFrozen);
    }
    let Some(model) = &event.model else { return Outcome::Rejected(UsageRejection::NoTariff) };
    let (Some(wallets), Some(revenue)) = (terms.wallets.get(&event.currency).copied(), state.revenue.get(&event.currency).copied()) else {
        return Outcome::Rejected(UsageRejection::NoWalletInCurrency);
    };

    let quota_key = (account, event.day.clone());
    let used = state.quota_used.get(&quota_key).copied().unwrap_or(0) + changes.quota.get(&quota_key).copied().unwrap_or(0);
    if used >= terms.daily_quota {
        return Outcome::Rejected(UsageRejection::QuotaExceeded);
    }

    let month_key: MonthKey = (account, event.product.clone(), event.month.clone());
    let month = state.months.entry(month_key).or_default();
    // What time cards would cover: consumed only if the event is accepted.
    let cover = match model.billable(event.quantity) {
        Ok(billable) if timecards::covers(event.category, model) => state.cards.plan(account, terms.seat, event.at_us, billable.milli() / MILLI),
        _ => Cover::default(),
    };
    let Ok((billable, rated_micros, cents)) = rate(event, model, month, cover.minutes()) else { return Outcome::Rejected(UsageRejection::AmountTooLarge) };

    let owed_key = (event.currency, wallets);
    let charge_cents = if terms.postpaid {
        0
    } else {
        let pending = owed.by_payer.get(&owed_key).copied().unwrap_or(0);
        // What the batch owes stays a possible transfer, and what the revenue
        // wallet receives a possible balance (in i128: the balance is stored data).
        let received = owed.total.get(&event.currency).copied().unwrap_or(0);
        let revenue_after = i128::from(state.book.wallet(revenue).map_or(0, |w| w.balance_minor)) + i128::from(received) + i128::from(cents);
        if pending + cents > AMOUNT_MINOR_MAX || revenue_after > i128::from(AMOUNT_MINOR_MAX) {
            return Outcome::Rejected(UsageRejection::AmountTooLarge);
        }
        if cents > 0 && promo_first(&state.book, wallets.promo, wallets.primary, pending + cents).is_none() {
            return Outcome::Rejected(UsageRejection::InsufficientFunds);
        }
        cents
    };

    let card_milli = cover.minutes() * MILLI;
    let amounts = RollupAmounts { quantity_milli: event.quantity.milli(), billable_milli: billable.milli(), events: 1, rated_micros, charged_cents: charge_cents, card_milli };
    let month_row = (account, event.product.clone(), event.month.clone(), event.attr.clone());
    let day_row = (account, event.product.clone(), event.day.clone(), event.attr.clone());
    // All three sums first, so that a refusal leaves every one unchanged.
    let sum = |row: Option<&RollupAmounts>| row.copied().unwrap_or_default().checked_add(&amounts);
    let (Some(by_attr), Some(month_change), Some(day_change)) = (sum(month.by_attr.get(&event.attr)), sum(changes.months.get(&month_row)), sum(changes.days.get(&day_row))) else {
        return Outcome::Rejected(UsageRejection::AmountTooLarge);
    };
    month.by_attr.insert(event.attr.clone(), by_attr);
    changes.months.insert(month_row, month_change);
    changes.days.insert(day_row, day_change);
    *changes.quota.entry(quota_key).or_default() += 1;
    *owed.by_payer.entry(owed_key).or_default() += charge_cents;
    *owed.total.entry(event.currency).or_default() += charge_cents;
    state.cards.consume(&cover);
    Outcome::Accepted(Accepted { billable, rated_micros, charge_cents, card_minutes: cover.minutes() })
}

/// Rates an event against its month so far: (billable quantity money pays
/// for, what it adds to the month's exact cost, the cents that adds once the
/// month's cumulative amount is rounded), or [`AmountTooLarge`] when the
/// month with it would pass its limits. `card_minutes` of its billable
/// minutes are covered by time cards and neither billed nor rated.
fn rate(event: &EventInput, model: &PriceModel, month: &MonthRollup, card_minutes: i64) -> Result<(Quantity, i64, i64), AmountTooLarge> {
    let before = month.totals()?;
    let billable = model.billable(event.quantity)?;
    let billable = Quantity::from_milli(billable.milli() - card_minutes * MILLI).ok_or(AmountTooLarge("an event's quantity"))?;
    let item = (model.grouping() == rating::Grouping::Item).then_some(event.attr.as_str());
    let rated_micros = rating::marginal_micros(model, &month.usage()?, billable, event.country, item)?;
    let added = RollupAmounts { quantity_milli: event.quantity.milli(), billable_milli: billable.milli(), events: 1, rated_micros, charged_cents: 0, card_milli: card_minutes * MILLI };
    let after = before.checked_add(&added).filter(RollupAmounts::within_month_limits).ok_or(AmountTooLarge("a month's usage"))?;
    // Cents rounded on the cumulative amount, so the month's charges telescope.
    Ok((billable, rated_micros, micros_to_cents(after.rated_micros) - micros_to_cents(before.rated_micros)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::WalletState;
    use crate::rating::{Tier, UnitPrice};
    use proptest::prelude::*;

    const ACCOUNT: AccountId = AccountId(7);
    const PRIMARY: WalletId = WalletId(1);
    const PROMO: WalletId = WalletId(2);
    const REVENUE: WalletId = WalletId(3);

    fn state(primary: i64, promo: i64, quota: i64, postpaid: bool) -> BatchState {
        let wallet = |id, balance, floor| WalletState { id, currency: Currency::Cny, balance_minor: balance, floor_minor: floor, entry_seq: 0, reserved_minor: 0 };
        let wallets = [(Currency::Cny, SpendableWallets { primary: PRIMARY, promo: PROMO })].into();
        BatchState {
            earlier: HashMap::new(),
            accounts: [(ACCOUNT, AccountTerms { id: ACCOUNT, active: true, cancelled: false, seat: false, postpaid, daily_quota: quota, wallets })].into(),
            months: HashMap::new(),
            quota_used: HashMap::new(),
            book: Book::new([wallet(PRIMARY, primary, Some(0)), wallet(PROMO, promo, Some(0)), wallet(REVENUE, 0, None)]),
            revenue: [(Currency::Cny, REVENUE)].into(),
            cards: CardBook::default(),
        }
    }

    fn sms() -> Arc<PriceModel> {
        Arc::new(PriceModel::PerUnit { price: UnitPrice::parse("0.033").unwrap(), increment: Quantity::parse("1").unwrap() })
    }

    fn event(id: &str, model: Arc<PriceModel>) -> EventInput {
        EventInput {
            event_id: id.to_owned(),
            at_us: 1_000,
            category: BillCategory::Sms,
            account: Ok(ACCOUNT),
            product: "sms".into(),
            currency: Currency::Cny,
            quantity: Quantity::parse("1").unwrap(),
            day: "2026-11-23".into(),
            month: "2026-11".into(),
            attr: String::new(),
            country: None,
            model: Some(model),
        }
    }

    #[test]
    fn charges_round_on_the_cumulative_amount() {
        let mut s = state(10_000, 0, 1_000, false);
        let events: Vec<_> = (0..10).map(|i| event(&format!("e{i}"), sms())).collect();
        let changes = ingest(&events, &mut s);
        let charged: Vec<i64> = changes
            .outcomes
            .iter()
            .map(|(o, _)| match o {
                Outcome::Accepted(a) => a.charge_cents,
                Outcome::Rejected(r) => panic!("{r:?}"),
            })
            .collect();
        // 0.033 each: 3, 4, 3, 3, 4, 3, 3, 3, 4, 3 cents — 33 in all, exactly 10 × 0.033.
        assert_eq!(charged.iter().sum::<i64>(), 33);
        assert!(charged.iter().all(|c| *c == 3 || *c == 4));
        assert_eq!(changes.debits.len(), 1);
        assert_eq!(changes.debits[0].amount.minor(), 33);
        assert_eq!(changes.quota[&(ACCOUNT, "2026-11-23".to_owned())], 10);
    }

    #[test]
    fn duplicates_replay_and_refusals_cover_every_reason() {
        let mut s = state(5, 3, 3, false);
        let mut unknown = event("u", sms());
        unknown.account = Err(UsageRejection::UnknownAccount);
        let mut untariffed = event("t", sms());
        untariffed.model = None;
        let events = vec![event("a", sms()), event("a", sms()), unknown, untariffed, event("b", sms()), event("c", sms()), event("d", sms())];
        let changes = ingest(&events, &mut s);
        let reasons: Vec<String> = changes
            .outcomes
            .iter()
            .map(|(o, dup)| {
                format!(
                    "{}{}",
                    if *dup { "dup:" } else { "" },
                    match o {
                        Outcome::Accepted(a) => format!("ok{}", a.charge_cents),
                        Outcome::Rejected(r) => r.as_str().to_owned(),
                    }
                )
            })
            .collect();
        // 8 cents available (5 primary + 3 promo): the third message (3 more cents) cannot be paid.
        assert_eq!(reasons, ["ok3", "dup:ok3", "unknown_account", "no_tariff", "ok4", "insufficient_funds", "insufficient_funds"]);
        // Promo money goes first.
        let debits: Vec<(WalletId, i64)> = changes.debits.iter().map(|d| (d.debit, d.amount.minor())).collect();
        assert_eq!(debits, [(PROMO, 3), (PRIMARY, 4)]);
    }

    const USD_PRIMARY: WalletId = WalletId(11);
    const USD_PROMO: WalletId = WalletId(12);
    const USD_REVENUE: WalletId = WalletId(13);

    /// [`state`] with USD wallets beside the CNY ones.
    fn two_currencies(cny_primary: i64, usd_primary: i64, usd_promo: i64) -> BatchState {
        let mut s = state(cny_primary, 0, 1_000, false);
        let usd = |id, balance, floor| WalletState { id, currency: Currency::Usd, balance_minor: balance, floor_minor: floor, entry_seq: 0, reserved_minor: 0 };
        let cny: Vec<WalletState> = [PRIMARY, PROMO, REVENUE].iter().map(|id| s.book.wallet(*id).unwrap().clone()).collect();
        s.book = Book::new(cny.into_iter().chain([usd(USD_PRIMARY, usd_primary, Some(0)), usd(USD_PROMO, usd_promo, Some(0)), usd(USD_REVENUE, 0, None)]));
        s.accounts.get_mut(&ACCOUNT).unwrap().wallets.insert(Currency::Usd, SpendableWallets { primary: USD_PRIMARY, promo: USD_PROMO });
        s.revenue.insert(Currency::Usd, USD_REVENUE);
        s
    }

    fn in_usd(id: &str, model: Arc<PriceModel>) -> EventInput {
        EventInput { product: "clicks".into(), currency: Currency::Usd, ..event(id, model) }
    }

    /// Each event is charged in its product's currency, from the account's
    /// wallets of that currency to the revenue wallet of that currency; what
    /// one currency cannot pay does not hold up the other.
    #[test]
    fn each_currency_is_charged_from_its_own_wallets() {
        let mut s = two_currencies(3, 50, 4);
        let events = [event("cny-1", sms()), in_usd("usd-1", sms()), event("cny-2", sms()), in_usd("usd-2", sms())];
        let changes = ingest(&events, &mut s);
        assert_eq!(reasons(&changes), ["accepted", "accepted", "insufficient_funds", "accepted"], "3 fen pay one message; the dollars pay both");
        let debits: Vec<(WalletId, WalletId, i64, Currency)> = changes.debits.iter().map(|d| (d.debit, d.credit, d.amount.minor(), d.currency)).collect();
        // 0.033 + 0.033 = 0.066 → 7 US cents: promo (4) first, then primary (3).
        assert_eq!(debits, [(PRIMARY, REVENUE, 3, Currency::Cny), (USD_PROMO, USD_REVENUE, 4, Currency::Usd), (USD_PRIMARY, USD_REVENUE, 3, Currency::Usd)]);
        for debit in &changes.debits {
            assert!(s.book.apply(debit).is_ok(), "every charge is within one currency");
        }
        assert_eq!(s.book.totals_by_currency()[&Currency::Usd], 50 + 4);
    }

    /// An account without wallets in the product's currency cannot be
    /// charged, prepaid or postpaid: the event is refused, uses no quota
    /// and adds nothing to its month.
    #[test]
    fn a_currency_without_wallets_is_refused() {
        for postpaid in [false, true] {
            let mut s = state(10_000, 0, 1, postpaid);
            s.revenue.insert(Currency::Usd, USD_REVENUE);
            let changes = ingest(&[in_usd("usd", sms()), event("cny", sms())], &mut s);
            assert_eq!(reasons(&changes), ["no_wallet_in_currency", "accepted"], "postpaid: {postpaid}");
            assert!(changes.months.keys().all(|(_, product, _, _)| product == "sms"));
            assert_eq!(changes.quota[&(ACCOUNT, "2026-11-23".to_owned())], 1);
        }
        // Nor without a revenue wallet of that currency to receive the charge.
        let mut s = two_currencies(0, 100, 0);
        s.revenue.remove(&Currency::Usd);
        assert_eq!(reasons(&ingest(&[in_usd("usd", sms())], &mut s)), ["no_wallet_in_currency"]);
        assert_eq!(UsageRejection::parse("no_wallet_in_currency"), Some(UsageRejection::NoWalletInCurrency));
        assert_eq!(UsageRejection::NoWalletInCurrency.as_str(), "no_wallet_in_currency");
    }

    /// The revenue limit holds per currency: a nearly full CNY revenue
    /// wallet refuses CNY charges, not USD ones.
    #[test]
    fn revenue_limits_are_per_currency() {
        let mut s = two_currencies(10_000, 10_000, 0);
        let full = WalletState { id: REVENUE, currency: Currency::Cny, balance_minor: AMOUNT_MINOR_MAX - 3, floor_minor: None, entry_seq: 0, reserved_minor: 0 };
        let others: Vec<WalletState> = [PRIMARY, PROMO, USD_PRIMARY, USD_PROMO, USD_REVENUE].iter().map(|id| s.book.wallet(*id).unwrap().clone()).collect();
        s.book = Book::new(others.into_iter().chain([full]));
        let changes = ingest(&[event("a", sms()), event("b", sms()), in_usd("c", sms()), in_usd("d", sms())], &mut s);
        assert_eq!(reasons(&changes), ["accepted", "amount_too_large", "accepted", "accepted"]);
    }

    const SEAT_TWO: AccountId = AccountId(8);

    /// Two seats funded by their tenant pay from the same wallets: what the
    /// batch owes is checked per paying wallet, so together they cannot
    /// spend more than those wallets hold.
    #[test]
    fn seats_share_their_tenants_wallets() {
        let mut s = state(5, 0, 100, false);
        let mut seat = s.accounts[&ACCOUNT].clone();
        seat.id = SEAT_TWO;
        seat.seat = true;
        s.accounts.get_mut(&ACCOUNT).unwrap().seat = true;
        s.accounts.insert(SEAT_TWO, seat);
        let changes = ingest(&[event("a", sms()), EventInput { account: Ok(SEAT_TWO), ..event("b", sms()) }], &mut s);
        assert_eq!(reasons(&changes), ["accepted", "insufficient_funds"], "3 + 4 cents from 5");
        assert_eq!(changes.debits.len(), 1);
        assert_eq!(changes.months.keys().map(|(account, ..)| *account).collect::<Vec<_>>(), [ACCOUNT], "usage stays the account's own");
    }

    #[test]
    fn cancelled_accounts_are_refused_before_anything_else() {
        let mut s = state(10_000, 0, 100, false);
        let terms = s.accounts.get_mut(&ACCOUNT).unwrap();
        terms.cancelled = true;
        terms.active = false;
        let changes = ingest(&[event("a", sms())], &mut s);
        assert_eq!(reasons(&changes), ["account_cancelled"]);
        assert!(changes.quota.is_empty() && changes.months.is_empty());
        assert_eq!(UsageRejection::parse("account_cancelled"), Some(UsageRejection::AccountCancelled));
    }

    fn per_minute(price: &str) -> Arc<PriceModel> {
        Arc::new(PriceModel::PerUnit { price: UnitPrice::parse(price).unwrap(), increment: Quantity::parse("60").unwrap() })
    }

    fn call(id: &str, seconds: i64, at_us: i64) -> EventInput {
        EventInput { product: "pstn_one_way".into(), category: BillCategory::CallOut, quantity: Quantity::units(seconds).unwrap(), at_us, ..event(id, per_minute("0.10")) }
    }

    fn with_cards(primary: i64, cards: Vec<timecards::Card>) -> BatchState {
        BatchState { cards: CardBook::new(cards), ..state(primary, 0, 1_000, false) }
    }

    fn card(id: i64, minutes: i64, from: i64, until: i64) -> timecards::Card {
        timecards::Card { id: crate::ids::TimeCardId(id), account: Some(ACCOUNT), minutes_left: minutes, effective_at_us: from, expires_at_us: until, status: timecards::CardStatus::Active }
    }

    /// A 150 s call is 3 billable minutes: a card with 2 left covers 2, money
    /// pays the third; the next call is all money.
    #[test]
    fn cards_cover_minutes_before_money() {
        let mut s = with_cards(1_000, vec![card(1, 2, 0, 10_000)]);
        let changes = ingest(&[call("c1", 150, 500), call("c2", 60, 600)], &mut s);
        let accepted: Vec<(i64, i64, i64)> =
            changes.outcomes.iter().map(|(o, _)| if let Outcome::Accepted(a) = o { (a.card_minutes, a.billable.milli() / 1_000, a.charge_cents) } else { panic!("{o:?}") }).collect();
        assert_eq!(accepted, [(2, 1, 10), (0, 1, 10)]);
        let month = &changes.months[&(ACCOUNT, "pstn_one_way".to_owned(), "2026-11".to_owned(), String::new())];
        assert_eq!((month.card_milli, month.billable_milli, month.quantity_milli, month.rated_micros), (2_000, 2_000, 210_000, 200_000));
        assert_eq!(changes.cards, [CardChange { id: crate::ids::TimeCardId(1), minutes_left_read: 2, minutes_left: 0 }]);
        // SMS and other increments are never covered.
        let mut s = with_cards(1_000, vec![card(1, 2, 0, 10_000)]);
        let six_seconds = EventInput { model: Some(Arc::new(PriceModel::PerUnit { price: UnitPrice::parse("0.01").unwrap(), increment: Quantity::parse("6").unwrap() })), ..call("c3", 60, 500) };
        let changes = ingest(&[event("sms", sms()), six_seconds], &mut s);
        assert!(changes.cards.is_empty());
    }

    /// An event refused after its cover was planned consumes nothing; an
    /// expired card covers nothing.
    #[test]
    fn a_refused_or_late_call_consumes_no_minutes() {
        let mut s = with_cards(0, vec![card(1, 1, 0, 1_000)]);
        // 2 minutes: the card covers 1, money cannot pay the other.
        let changes = ingest(&[call("c1", 120, 500)], &mut s);
        assert_eq!(reasons(&changes), ["insufficient_funds"]);
        assert!(changes.cards.is_empty());
        let changes = ingest(&[call("c2", 60, 999)], &mut s);
        assert_eq!(reasons(&changes), ["accepted"]);
        assert_eq!(changes.cards.len(), 1, "the last microsecond of the card");
        let mut s = with_cards(0, vec![card(1, 5, 0, 1_000)]);
        assert_eq!(reasons(&ingest(&[call("c3", 60, 1_000)], &mut s)), ["insufficient_funds"], "expired at its expiry instant");
    }

    proptest! {
        /// Per accepted call, card minutes + money minutes = its billable
        /// minutes; cards give no more than they held; refused calls take nothing.
        #[test]
        fn card_and_money_minutes_make_the_billable_usage(
            primary in 0i64..200,
            cards in proptest::collection::vec((0i64..5, 0i64..100, 1i64..100), 0..4),
            calls in proptest::collection::vec((1i64..400, 0i64..200), 0..30),
        ) {
            let cards: Vec<_> = cards.iter().enumerate().map(|(i, (minutes, from, length))| card(i as i64 + 1, *minutes, *from, from + length)).collect();
            let held: i64 = cards.iter().map(|c| c.minutes_left).sum();
            let mut s = with_cards(primary, cards);
            let events: Vec<_> = calls.iter().enumerate().map(|(i, (seconds, at))| call(&format!("c{i}"), *seconds, *at)).collect();
            let changes = ingest(&events, &mut s);
            let mut card_total = 0;
            for ((outcome, _), (seconds, _)) in changes.outcomes.iter().zip(&calls) {
                if let Outcome::Accepted(a) = outcome {
                    let minutes = (seconds + 59) / 60;
                    prop_assert_eq!(a.card_minutes + a.billable.milli() / 1_000, minutes);
                    prop_assert_eq!(a.billable.milli() % 1_000, 0);
                    card_total += a.card_minutes;
                }
            }
            let consumed: i64 = changes.cards.iter().map(|c| c.minutes_left_read - c.minutes_left).sum();
            prop_assert_eq!(consumed, card_total);
            prop_assert!(consumed <= held);
            prop_assert!(changes.cards.iter().all(|c| c.minutes_left >= 0));
            let debited: i64 = changes.debits.iter().map(|d| d.amount.minor()).sum();
            prop_assert!(debited <= primary);
        }
    }

    #[test]
    fn only_accepted_events_use_the_daily_quota() {
        let mut s = state(10_000, 0, 2, false);
        s.quota_used.insert((ACCOUNT, "2026-11-23".into()), 1);
        let mut yesterday = event("y", sms());
        yesterday.day = "2026-11-22".into();
        let changes = ingest(&[event("a", sms()), event("b", sms()), yesterday], &mut s);
        let outcomes: Vec<_> = changes.outcomes.iter().map(|(o, _)| o.clone()).collect();
        assert!(matches!(outcomes[0], Outcome::Accepted(_)));
        assert_eq!(outcomes[1], Outcome::Rejected(UsageRejection::QuotaExceeded));
        assert!(matches!(outcomes[2], Outcome::Accepted(_)), "another day has its own quota");
    }

    #[test]
    fn postpaid_accrues_and_frozen_is_refused() {
        let mut s = state(0, 0, 10, true);
        let changes = ingest(&[event("p", sms())], &mut s);
        assert!(matches!(changes.outcomes[0].0, Outcome::Accepted(Accepted { charge_cents: 0, rated_micros: 33_000, .. })));
        assert!(changes.debits.is_empty());
        s.accounts.get_mut(&ACCOUNT).unwrap().active = false;
        let changes = ingest(&[event("q", sms())], &mut s);
        assert_eq!(changes.outcomes[0].0, Outcome::Rejected(UsageRejection::AccountFrozen));
    }

    #[test]
    fn graduated_marginal_charges_the_flat_fee_once() {
        let model = Arc::new(PriceModel::Graduated {
            tiers: vec![
                Tier { min: Quantity::parse("0").unwrap(), max: Some(Quantity::parse("2").unwrap()), unit: Quantity::parse("0").unwrap(), price: UnitPrice::parse("7.99").unwrap() },
                Tier { min: Quantity::parse("2").unwrap(), max: None, unit: Quantity::parse("1").unwrap(), price: UnitPrice::parse("0.06").unwrap() },
            ],
        });
        let mut s = state(10_000, 0, 100, false);
        let events: Vec<_> = (0..4).map(|i| event(&format!("g{i}"), model.clone())).collect();
        let changes = ingest(&events, &mut s);
        let charged: Vec<i64> = changes.outcomes.iter().map(|(o, _)| if let Outcome::Accepted(a) = o { a.charge_cents } else { -1 }).collect();
        assert_eq!(charged, [799, 0, 6, 6]);
    }

    use crate::rating::{MICROS_PER_CENT, PRICE_MICROS_MAX, QUANTITY_MILLI_MAX};

    fn per_unit(price_micros: i64) -> Arc<PriceModel> {
        Arc::new(PriceModel::PerUnit { price: UnitPrice::from_micros(price_micros).unwrap(), increment: Quantity::parse("1").unwrap() })
    }

    fn sized(id: &str, model: Arc<PriceModel>, quantity_milli: i64) -> EventInput {
        EventInput { quantity: Quantity::from_milli(quantity_milli).unwrap(), ..event(id, model) }
    }

    fn reasons(changes: &BatchChanges) -> Vec<&'static str> {
        changes.outcomes.iter().map(|(o, _)| if let Outcome::Rejected(r) = o { r.as_str() } else { "accepted" }).collect()
    }

    #[test]
    fn amount_too_large_names_itself() {
        assert_eq!(UsageRejection::parse("amount_too_large"), Some(UsageRejection::AmountTooLarge));
        assert_eq!(UsageRejection::AmountTooLarge.as_str(), "amount_too_large");
    }

    /// 10^12 units at the largest price: refused alone, with nothing of it
    /// counted, while the batch's other events go through.
    #[test]
    fn the_largest_event_is_refused_alone() {
        let mut s = state(AMOUNT_MINOR_MAX, AMOUNT_MINOR_MAX, 1_000, false);
        let events = [event("small", sms()), sized("huge", per_unit(PRICE_MICROS_MAX), QUANTITY_MILLI_MAX), event("after", sms())];
        let changes = ingest(&events, &mut s);
        assert_eq!(reasons(&changes), ["accepted", "amount_too_large", "accepted"]);
        let month = &changes.months[&(ACCOUNT, "sms".to_owned(), "2026-11".to_owned(), String::new())];
        assert_eq!((month.events, month.quantity_milli, month.rated_micros), (2, 2_000, 66_000), "the refused event adds nothing");
        assert_eq!(changes.quota[&(ACCOUNT, "2026-11-23".to_owned())], 2, "nor counts against the quota");
        assert_eq!(changes.debits.iter().map(|d| d.amount.minor()).sum::<i64>(), 7);
    }

    /// Postpaid events at a high price fill the month up to its limit; the
    /// event that would pass it is refused, and the month stays exact.
    #[test]
    fn a_month_fills_up_to_its_limit() {
        let mut s = state(0, 0, 1_000, true);
        // 10^4 units at 10^6 each: 10^10 per event, so the month holds ten.
        let dear = per_unit(PRICE_MICROS_MAX);
        let events: Vec<_> = (0..12).map(|i| sized(&format!("d{i}"), dear.clone(), 10_000 * 1_000)).collect();
        let changes = ingest(&events, &mut s);
        assert_eq!(reasons(&changes).iter().filter(|r| **r == "accepted").count(), 10);
        assert_eq!(&reasons(&changes)[10..], ["amount_too_large", "amount_too_large"]);
        let month = &changes.months[&(ACCOUNT, "sms".to_owned(), "2026-11".to_owned(), String::new())];
        assert_eq!(month.rated_micros, MONTH_MICROS_MAX);
        assert!(month.within_month_limits());
        // A cheap event still fits the month's quantity, but not its cost.
        let changes = ingest(&[event("one-more", sms())], &mut s);
        assert_eq!(reasons(&changes), ["amount_too_large"]);
    }

    #[test]
    fn a_month_holds_at_most_the_largest_quantity() {
        let mut s = state(0, 0, 1_000, true);
        let cheapest = per_unit(1);
        let changes = ingest(&[sized("all", cheapest.clone(), QUANTITY_MILLI_MAX), sized("more", cheapest.clone(), 1)], &mut s);
        assert_eq!(reasons(&changes), ["accepted", "amount_too_large"]);
        // Billing per thousandth multiplies the quantity past what a month holds.
        let per_thousandth = Arc::new(PriceModel::PerUnit { price: UnitPrice::from_micros(1).unwrap(), increment: Quantity::parse("0.001").unwrap() });
        let mut fresh = state(0, 0, 1_000, true);
        let changes = ingest(&[sized("fine", per_thousandth.clone(), QUANTITY_MILLI_MAX / 1_000), sized("billable-too-large", per_thousandth, QUANTITY_MILLI_MAX / 1_000 + 1)], &mut fresh);
        assert_eq!(reasons(&changes), ["accepted", "amount_too_large"]);
    }

    /// What one account owes in a batch stays one possible transfer, and what
    /// the revenue wallet receives a possible balance.
    #[test]
    fn batch_charges_stay_within_one_transfer_and_one_balance() {
        let mut s = state(AMOUNT_MINOR_MAX, AMOUNT_MINOR_MAX, 1_000, false);
        // Each event costs a whole month's limit, in months of its own: 10^13 cents each.
        let dear = per_unit(PRICE_MICROS_MAX);
        let events: Vec<_> = (0..101).map(|i| EventInput { month: format!("m{i:03}"), day: format!("m{i:03}-01"), ..sized(&format!("e{i}"), dear.clone(), 100_000 * 1_000) }).collect();
        let changes = ingest(&events, &mut s);
        assert_eq!(reasons(&changes).iter().filter(|r| **r == "accepted").count(), 100);
        assert_eq!(reasons(&changes)[100], "amount_too_large");
        let debited: i64 = changes.debits.iter().map(|d| d.amount.minor()).sum();
        assert_eq!(debited, AMOUNT_MINOR_MAX);
        for debit in &changes.debits {
            assert!(s.book.apply(debit).is_ok(), "the engine's charges post");
        }

        let mut nearly_full = state(10_000, 0, 1_000, false);
        let revenue = WalletState { id: REVENUE, currency: Currency::Cny, balance_minor: AMOUNT_MINOR_MAX - 5, floor_minor: None, entry_seq: 0, reserved_minor: 0 };
        nearly_full.book = Book::new([nearly_full.book.wallet(PRIMARY).unwrap().clone(), nearly_full.book.wallet(PROMO).unwrap().clone(), revenue]);
        let changes = ingest(&[event("a", sms()), event("b", sms())], &mut nearly_full);
        assert_eq!(reasons(&changes), ["accepted", "amount_too_large"], "3 cents fit the revenue wallet, 7 do not");
    }

    /// Stored rollups past the limits (never written by this engine) refuse
    /// the event instead of overflowing.
    #[test]
    fn stored_totals_past_the_limits_refuse_the_event() {
        let mut s = state(0, 0, 1_000, true);
        let full = RollupAmounts { quantity_milli: 1, billable_milli: 1, events: i64::MAX, rated_micros: 0, charged_cents: 0, card_milli: 0 };
        s.months.insert((ACCOUNT, "sms".to_owned(), "2026-11".to_owned()), MonthRollup { by_attr: [(String::new(), full)].into() });
        assert_eq!(reasons(&ingest(&[event("x", sms())], &mut s)), ["amount_too_large"]);
    }

    /// An event anywhere in the accepted ranges: quantity up to 10^12 units,
    /// price up to 10^6 per unit, any billing increment, any wallet balance.
    fn extreme_event() -> impl Strategy<Value = (i64, i64, i64, usize)> {
        (
            prop_oneof![Just(QUANTITY_MILLI_MAX), 1..=QUANTITY_MILLI_MAX, 1i64..100_000],
            prop_oneof![Just(PRICE_MICROS_MAX), 0..=PRICE_MICROS_MAX, 0i64..1_000_000],
            prop_oneof![Just(1i64), Just(1_000), 1..=QUANTITY_MILLI_MAX],
            0usize..3,
        )
    }

    proptest! {
        /// At the limits of every input: never a panic; every event accepted
        /// with a consistent charge or refused (`amount_too_large` among the
        /// reasons); each month within its limits; the charges post, and per
        /// month they add up to the month's rated cost rounded once.
        #[test]
        fn extreme_batches_stay_consistent(
            primary in prop_oneof![Just(AMOUNT_MINOR_MAX), 0..=AMOUNT_MINOR_MAX],
            promo in prop_oneof![Just(0i64), 0..=AMOUNT_MINOR_MAX],
            postpaid in any::<bool>(),
            events in proptest::collection::vec(extreme_event(), 1..40),
        ) {
            let mut s = state(primary, promo, 1_000, postpaid);
            let inputs: Vec<_> = events
                .iter()
                .enumerate()
                .map(|(i, (quantity, price, increment, month))| EventInput {
                    month: format!("2026-0{}", month + 1),
                    day: format!("2026-0{}-01", month + 1),
                    model: Some(Arc::new(PriceModel::PerUnit { price: UnitPrice::from_micros(*price).unwrap(), increment: Quantity::from_milli(*increment).unwrap() })),
                    ..sized(&format!("e{i}"), sms(), *quantity)
                })
                .collect();
            let changes = ingest(&inputs, &mut s);
            let mut rated_by_month: BTreeMap<&str, i64> = BTreeMap::new();
            for ((outcome, duplicate), input) in changes.outcomes.iter().zip(&inputs) {
                prop_assert!(!duplicate);
                match outcome {
                    Outcome::Accepted(a) => {
                        prop_assert!(a.rated_micros >= 0 && a.charge_cents >= 0);
                        *rated_by_month.entry(input.month.as_str()).or_default() += a.rated_micros;
                    }
                    Outcome::Rejected(reason) => prop_assert!(matches!(reason, UsageRejection::AmountTooLarge | UsageRejection::InsufficientFunds), "{:?}", reason),
                }
            }
            for amounts in changes.months.values() {
                prop_assert!(amounts.within_month_limits(), "{:?}", amounts);
            }
            let debited: i64 = changes.debits.iter().map(|d| d.amount.minor()).sum();
            prop_assert!(debited <= AMOUNT_MINOR_MAX);
            let expected: i64 = if postpaid { 0 } else { rated_by_month.values().map(|micros| micros_to_cents(*micros)).sum() };
            prop_assert_eq!(debited, expected);
            prop_assert!(rated_by_month.values().all(|micros| *micros <= MONTH_MICROS_MAX));
            prop_assert!(MONTH_MICROS_MAX / MICROS_PER_CENT == MONTH_CENTS_MAX);
            for debit in &changes.debits {
                prop_assert!(s.book.apply(debit).is_ok());
            }
        }
    }

    proptest! {
        /// Whatever arrives, prepaid charges never exceed what the wallets
        /// held, and they equal the month's cost of the accepted usage.
        #[test]
        fn charges_stay_covered_and_add_up(primary in 0i64..500, promo in 0i64..500, quantities in proptest::collection::vec(1i64..20, 0..80)) {
            let mut s = state(primary, promo, 1_000, false);
            let events: Vec<_> = quantities.iter().enumerate().map(|(i, q)| EventInput { quantity: Quantity::units(*q).unwrap(), ..event(&format!("e{i}"), sms()) }).collect();
            let changes = ingest(&events, &mut s);
            let debited: i64 = changes.debits.iter().map(|d| d.amount.minor()).sum();
            prop_assert!(debited <= primary + promo);
            let accepted_micros: i64 = changes.outcomes.iter().filter_map(|(o, _)| if let Outcome::Accepted(a) = o { Some(a.rated_micros) } else { None }).sum();
            prop_assert_eq!(debited, micros_to_cents(accepted_micros));
            // The debits apply to the book without breaking a floor.
            for debit in &changes.debits {
                prop_assert!(s.book.apply(debit).is_ok());
            }
        }
    }
}
