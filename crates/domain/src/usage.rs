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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, WalletId};
use crate::ledger::{Book, DebitRule, TransferIntent, WalletState};
use crate::money::{Currency, PositiveAmount};
use crate::rating::{self, MonthUsage, PriceModel, Quantity, micros_to_cents};

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
}

/// An account as the engine needs it.
#[derive(Debug, Clone)]
pub struct AccountTerms {
    pub id: AccountId,
    pub active: bool,
    pub postpaid: bool,
    pub daily_quota: i64,
    pub primary: WalletId,
    pub promo: WalletId,
}

/// One event, its references resolved by the service.
#[derive(Debug, Clone)]
pub struct EventInput {
    pub event_id: String,
    /// `Err` when the event was refused before rating (unknown account, …).
    pub account: Result<AccountId, UsageRejection>,
    pub product: String,
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
}

impl RollupAmounts {
    pub fn add(&mut self, other: &RollupAmounts) {
        self.quantity_milli += other.quantity_milli;
        self.billable_milli += other.billable_milli;
        self.events += other.events;
        self.rated_micros += other.rated_micros;
        self.charged_cents += other.charged_cents;
    }
}

impl MonthRollup {
    pub fn totals(&self) -> RollupAmounts {
        let mut totals = RollupAmounts::default();
        for amounts in self.by_attr.values() {
            totals.add(amounts);
        }
        totals
    }

    /// The month's usage as the rating engine reads it.
    pub fn usage(&self) -> MonthUsage {
        let totals = self.totals();
        MonthUsage {
            billable: Quantity::from_milli(totals.billable_milli).unwrap_or_default(),
            by_country: self.by_attr.iter().filter_map(|(attr, a)| Some((attr.parse::<i64>().ok()?, Quantity::from_milli(a.billable_milli).unwrap_or_default()))).collect(),
            items: self.by_attr.keys().filter(|attr| !attr.is_empty()).cloned().collect(),
        }
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
    /// The accounts' wallets and the tenant's revenue wallet, locked.
    pub book: Book,
    pub revenue: WalletId,
    pub currency: Currency,
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
    /// The charges to post: (from, to, amount), one per account and wallet.
    pub debits: Vec<TransferIntent>,
}

/// Decides every event of a batch, in order.
pub fn ingest(events: &[EventInput], state: &mut BatchState) -> BatchChanges {
    let mut changes = BatchChanges { outcomes: Vec::with_capacity(events.len()), ..BatchChanges::default() };
    let mut fresh: HashMap<&str, Outcome> = HashMap::new();
    // Cents owed per account in this batch, and what its wallets can pay.
    let mut owed: HashMap<AccountId, i64> = HashMap::new();

    for event in events {
        if let Some(first) = state.earlier.get(&event.event_id).or_else(|| fresh.get(event.event_id.as_str())) {
            changes.outcomes.push((first.clone(), true));
            continue;
        }
        let outcome = decide(event, state, &mut changes, &mut owed);
        fresh.insert(&event.event_id, outcome.clone());
        changes.outcomes.push((outcome, false));
    }

    // One debit per account and wallet: promo money first, then primary.
    let mut accounts: Vec<(&AccountId, &i64)> = owed.iter().filter(|(_, cents)| **cents > 0).collect();
    accounts.sort();
    for (account, cents) in accounts {
        let terms = &state.accounts[account];
        let promo_available = available(&state.book, terms.promo);
        let from_promo = (*cents).min(promo_available);
        for (wallet, amount) in [(terms.promo, from_promo), (terms.primary, *cents - from_promo)] {
            if let Ok(amount) = PositiveAmount::new(amount) {
                changes.debits.push(TransferIntent { debit: wallet, credit: state.revenue, amount, currency: state.currency, debit_rule: DebitRule::ToFloor });
            }
        }
    }
    changes
}

/// What a wallet can still pay, down to its floor.
fn available(book: &Book, wallet: WalletId) -> i64 {
    book.wallet(wallet).map_or(0, |w: &WalletState| (w.balance_minor - w.floor_minor.unwrap_or(w.balance_minor)).max(0))
}

fn decide(event: &EventInput, state: &mut BatchState, changes: &mut BatchChanges, owed: &mut HashMap<AccountId, i64>) -> Outcome {
    let account = match event.account {
        Ok(account) => account,
        Err(reason) => return Outcome::Rejected(reason),
    };
    let Some(terms) = state.accounts.get(&account).cloned() else { return Outcome::Rejected(UsageRejection::UnknownAccount) };
    if !terms.active {
        return Outcome::Rejected(UsageRejection::AccountFrozen);
    }
    let Some(model) = &event.model else { return Outcome::Rejected(UsageRejection::NoTariff) };

    let quota_key = (account, event.day.clone());
    let used = state.quota_used.get(&quota_key).copied().unwrap_or(0) + changes.quota.get(&quota_key).copied().unwrap_or(0);
    if used >= terms.daily_quota {
        return Outcome::Rejected(UsageRejection::QuotaExceeded);
    }

    let month_key: MonthKey = (account, event.product.clone(), event.month.clone());
    let month = state.months.entry(month_key).or_default();
    let before = month.totals();
    let billable = model.billable(event.quantity);
    let item = (model.grouping() == rating::Grouping::Item).then_some(event.attr.as_str());
    let rated_micros = rating::marginal_micros(model, &month.usage(), billable, event.country, item);
    // Cents rounded on the cumulative amount, so the month's charges telescope.
    let cents = micros_to_cents(before.rated_micros + rated_micros) - micros_to_cents(before.rated_micros);

    let charge_cents = if terms.postpaid {
        0
    } else {
        let pending = owed.get(&account).copied().unwrap_or(0);
        if cents > 0 && available(&state.book, terms.promo) + available(&state.book, terms.primary) - pending < cents {
            return Outcome::Rejected(UsageRejection::InsufficientFunds);
        }
        cents
    };

    let amounts = RollupAmounts { quantity_milli: event.quantity.milli(), billable_milli: billable.milli(), events: 1, rated_micros, charged_cents: charge_cents };
    month.by_attr.entry(event.attr.clone()).or_default().add(&amounts);
    changes.months.entry((account, event.product.clone(), event.month.clone(), event.attr.clone())).or_default().add(&amounts);
    changes.days.entry((account, event.product.clone(), event.day.clone(), event.attr.clone())).or_default().add(&amounts);
    *changes.quota.entry(quota_key).or_default() += 1;
    *owed.entry(account).or_default() += charge_cents;
    Outcome::Accepted(Accepted { billable, rated_micros, charge_cents })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rating::{Tier, UnitPrice};
    use proptest::prelude::*;

    const ACCOUNT: AccountId = AccountId(7);
    const PRIMARY: WalletId = WalletId(1);
    const PROMO: WalletId = WalletId(2);
    const REVENUE: WalletId = WalletId(3);

    fn state(primary: i64, promo: i64, quota: i64, postpaid: bool) -> BatchState {
        let wallet = |id, balance, floor| WalletState { id, currency: Currency::Cny, balance_minor: balance, floor_minor: floor, entry_seq: 0 };
        BatchState {
            earlier: HashMap::new(),
            accounts: [(ACCOUNT, AccountTerms { id: ACCOUNT, active: true, postpaid, daily_quota: quota, primary: PRIMARY, promo: PROMO })].into(),
            months: HashMap::new(),
            quota_used: HashMap::new(),
            book: Book::new([wallet(PRIMARY, primary, Some(0)), wallet(PROMO, promo, Some(0)), wallet(REVENUE, 0, None)]),
            revenue: REVENUE,
            currency: Currency::Cny,
        }
    }

    fn sms() -> Arc<PriceModel> {
        Arc::new(PriceModel::PerUnit { price: UnitPrice::parse("0.033").unwrap(), increment: Quantity::parse("1").unwrap() })
    }

    fn event(id: &str, model: Arc<PriceModel>) -> EventInput {
        EventInput {
            event_id: id.to_owned(),
            account: Ok(ACCOUNT),
            product: "sms".into(),
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
        let charged: Vec<i64> = changes.outcomes.iter().map(|(o, _)| match o {
            Outcome::Accepted(a) => a.charge_cents,
            Outcome::Rejected(r) => panic!("{r:?}"),
        }).collect();
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
        let reasons: Vec<String> = changes.outcomes.iter().map(|(o, dup)| format!("{}{}", if *dup { "dup:" } else { "" }, match o {
            Outcome::Accepted(a) => format!("ok{}", a.charge_cents),
            Outcome::Rejected(r) => r.as_str().to_owned(),
        })).collect();
        // 8 cents available (5 primary + 3 promo): the third message (3 more cents) cannot be paid.
        assert_eq!(reasons, ["ok3", "dup:ok3", "unknown_account", "no_tariff", "ok4", "insufficient_funds", "insufficient_funds"]);
        // Promo money goes first.
        let debits: Vec<(WalletId, i64)> = changes.debits.iter().map(|d| (d.debit, d.amount.minor())).collect();
        assert_eq!(debits, [(PROMO, 3), (PRIMARY, 4)]);
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

    proptest! {
        /// Whatever arrives, prepaid charges never exceed what the wallets
        /// held, and they equal the month's cost of the accepted usage.
        #[test]
        fn charges_stay_covered_and_add_up(primary in 0i64..500, promo in 0i64..500, quantities in proptest::collection::vec(1i64..20, 0..80)) {
            let mut s = state(primary, promo, 1_000, false);
            let events: Vec<_> = quantities.iter().enumerate().map(|(i, q)| EventInput { quantity: Quantity::units(*q), ..event(&format!("e{i}"), sms()) }).collect();
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
