//! The rules of the double-entry ledger, computed in memory.
//!
//! Storage locks the wallets a batch touches and loads them into a [`Book`];
//! every transfer of the batch is applied here, in order; what is posted is
//! then written back. Nothing in this module does I/O, so the invariants are
//! checked by property tests over millions of random transfers:
//!
//! 1. a transfer moves the same amount out of one wallet and into another, so
//!    per currency the sum of all balances never changes (and starts at zero);
//! 2. no wallet ever goes below its floor (its overdraft limit), counting the
//!    money it has reserved: balance − reserved ≥ floor;
//! 3. a rejected transfer changes nothing.
//!
//! Two-phase transfers (TigerBeetle's model): a pending transfer reserves its
//! amount on the debit wallet ([`Book::reserve`]) without moving it; it is
//! later posted, for its amount or less ([`Book::post_reserved`]), or voided
//! ([`Book::release`]), which gives the reservation back.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::WalletId;
use crate::money::{AMOUNT_MINOR_MAX, Currency, PositiveAmount};

/// What a wallet is for. Tenants and accounts own `primary` and `promo`
/// wallets; `world` and `revenue` are the tenant's system wallets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalletPurpose {
    /// Recharged money (充值账户).
    Primary,
    /// Bonus money (优惠/赠送账户); spent after nothing else, never withdrawn.
    Promo,
    /// The outside world: recharges come from here, so its balance is minus
    /// everything ever deposited. Unbounded below.
    World,
    /// Where usage charges go. Refunds flow back out of it.
    Revenue,
    /// One per ad account: what the tenant funded of the account's spend cap
    /// and Meta has not spent yet. Unbounded below, like every system wallet:
    /// Meta's reports of spend are facts.
    AdCap,
    /// The tenant's: what Meta reported as spent on its ad accounts, owed
    /// upstream. Unbounded.
    AdPayable,
}

impl WalletPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            WalletPurpose::Primary => "primary",
            WalletPurpose::Promo => "promo",
            WalletPurpose::World => "world",
            WalletPurpose::Revenue => "revenue",
            WalletPurpose::AdCap => "ad_cap",
            WalletPurpose::AdPayable => "ad_payable",
        }
    }

    /// Whether people can hold money in it (as opposed to a system wallet).
    pub fn is_spendable(self) -> bool {
        matches!(self, WalletPurpose::Primary | WalletPurpose::Promo)
    }
}

impl fmt::Display for WalletPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown wallet {0:?} (expected primary or promo)")]
pub struct UnknownWalletPurpose(pub String);

impl FromStr for WalletPurpose {
    type Err = UnknownWalletPurpose;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary" => Ok(WalletPurpose::Primary),
            "promo" => Ok(WalletPurpose::Promo),
            "world" => Ok(WalletPurpose::World),
            "revenue" => Ok(WalletPurpose::Revenue),
            "ad_cap" => Ok(WalletPurpose::AdCap),
            "ad_payable" => Ok(WalletPurpose::AdPayable),
            _ => Err(UnknownWalletPurpose(s.to_owned())),
        }
    }
}

/// Why money moves. Stored with every transfer and shown in entry listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    /// From the outside world into a tenant's or account's wallet (充值).
    Deposit,
    /// From a tenant's wallet to one of its accounts (分账, `transferIn`).
    Allocation,
    /// Back from an account to its tenant.
    Reclaim,
    /// Any other move among a tenant's own wallets and its accounts' (promo
    /// to primary of one owner, or from one account to another).
    Internal,
    /// A usage charge, to revenue.
    Charge,
    /// A refund, from revenue.
    Refund,
    /// Raising an ad account's spend cap: from the tenant's wallet to the
    /// account's `ad_cap` wallet.
    AdFunding,
    /// Lowering or resetting a spend cap: what Meta had not spent, back from
    /// `ad_cap` to the tenant.
    AdReturn,
    /// What Meta reported as spent: from `ad_cap` to `ad_payable`.
    AdSpend,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Deposit => "deposit",
            TransferKind::Allocation => "allocation",
            TransferKind::Reclaim => "reclaim",
            TransferKind::Internal => "internal",
            TransferKind::Charge => "charge",
            TransferKind::Refund => "refund",
            TransferKind::AdFunding => "ad_funding",
            TransferKind::AdReturn => "ad_return",
            TransferKind::AdSpend => "ad_spend",
        }
    }
}

impl FromStr for TransferKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "deposit" => TransferKind::Deposit,
            "allocation" => TransferKind::Allocation,
            "reclaim" => TransferKind::Reclaim,
            "internal" => TransferKind::Internal,
            "charge" => TransferKind::Charge,
            "refund" => TransferKind::Refund,
            "ad_funding" => TransferKind::AdFunding,
            "ad_return" => TransferKind::AdReturn,
            "ad_spend" => TransferKind::AdSpend,
            _ => return Err(()),
        })
    }
}

/// How far the debited wallet may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DebitRule {
    /// Down to the wallet's floor (0, or minus its overdraft limit).
    ToFloor,
    /// As `ToFloor`, and the wallet must not already be in the red: a tenant
    /// that has used its overdraft must recharge before funding anyone
    /// (SendCloud 416 余额为负,请充值后再来).
    ToFloorFromNonNegative,
}

/// One wallet as the ledger sees it while applying a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletState {
    pub id: WalletId,
    pub currency: Currency,
    pub balance_minor: i64,
    /// The lowest balance allowed; `None` for system wallets, which are unbounded.
    pub floor_minor: Option<i64>,
    /// Sequence number of the wallet's last entry (0 when it has none).
    pub entry_seq: i64,
    /// Money reserved by pending transfers that debit this wallet: not
    /// spendable until they are posted or voided.
    pub reserved_minor: i64,
}

impl WalletState {
    /// What the wallet can still pay, down to its floor, reservations
    /// deducted; `None` for a system wallet (no floor: it pays only by
    /// explicit transfers). At most [`AMOUNT_MINOR_MAX`]: exact for every
    /// amount a transfer can carry, and two of them add up without overflow.
    pub fn available_minor(&self) -> Option<i64> {
        let floor = self.floor_minor?;
        let available = (i128::from(self.balance_minor) - i128::from(self.reserved_minor) - i128::from(floor)).clamp(0, i128::from(AMOUNT_MINOR_MAX));
        Some(i64::try_from(available).expect("clamped into i64"))
    }
}

/// A request to move money, already resolved to wallets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferIntent {
    pub debit: WalletId,
    pub credit: WalletId,
    pub amount: PositiveAmount,
    pub currency: Currency,
    pub debit_rule: DebitRule,
}

/// Why the ledger refused a transfer. A refused transfer moves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum TransferRejection {
    #[error("a transfer needs two different wallets")]
    SameWallet,
    #[error("the wallets hold a different currency than the transfer")]
    CurrencyMismatch,
    #[error("the paying wallet has a negative balance")]
    NegativeBalance,
    #[error("the paying wallet has insufficient funds")]
    InsufficientFunds,
    #[error("the receiving wallet would exceed the largest allowed balance")]
    BalanceLimit,
}

impl TransferRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferRejection::SameWallet => "same_wallet",
            TransferRejection::CurrencyMismatch => "currency_mismatch",
            TransferRejection::NegativeBalance => "negative_balance",
            TransferRejection::InsufficientFunds => "insufficient_funds",
            TransferRejection::BalanceLimit => "balance_limit",
        }
    }
}

impl FromStr for TransferRejection {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "same_wallet" => TransferRejection::SameWallet,
            "currency_mismatch" => TransferRejection::CurrencyMismatch,
            "negative_balance" => TransferRejection::NegativeBalance,
            "insufficient_funds" => TransferRejection::InsufficientFunds,
            "balance_limit" => TransferRejection::BalanceLimit,
            _ => return Err(()),
        })
    }
}

/// One side of a posted transfer: the entry appended to a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLine {
    pub wallet: WalletId,
    pub seq: i64,
    /// Signed: negative on the debited side.
    pub amount_minor: i64,
    pub balance_after_minor: i64,
}

/// The two entries a posted transfer appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostedEntries {
    pub debit: EntryLine,
    pub credit: EntryLine,
}

/// The wallets of one batch, with their balances as the batch goes along.
#[derive(Debug, Clone, Default)]
pub struct Book {
    wallets: HashMap<WalletId, WalletState>,
}

impl Book {
    pub fn new(wallets: impl IntoIterator<Item = WalletState>) -> Self {
        Book { wallets: wallets.into_iter().map(|w| (w.id, w)).collect() }
    }

    pub fn wallet(&self, id: WalletId) -> Option<&WalletState> {
        self.wallets.get(&id)
    }

    pub fn wallets(&self) -> impl Iterator<Item = &WalletState> {
        self.wallets.values()
    }

    /// Applies one transfer, or refuses it and leaves the book unchanged.
    ///
    /// # Panics
    /// If a wallet of the intent is not in the book: the caller loads every
    /// wallet its batch names before applying, so a missing one is a bug.
    pub fn apply(&mut self, intent: &TransferIntent) -> Result<PostedEntries, TransferRejection> {
        if intent.debit == intent.credit {
            return Err(TransferRejection::SameWallet);
        }
        let amount = intent.amount.minor();
        let debit = &self.wallets[&intent.debit];
        let credit = &self.wallets[&intent.credit];
        if debit.currency != intent.currency || credit.currency != intent.currency {
            return Err(TransferRejection::CurrencyMismatch);
        }
        if intent.debit_rule == DebitRule::ToFloorFromNonNegative && debit.balance_minor < 0 {
            return Err(TransferRejection::NegativeBalance);
        }
        // Checked: balances come from storage, and a wrapped sum must never pass the bounds.
        let debit_floor = debit.floor_minor.unwrap_or(-AMOUNT_MINOR_MAX);
        let debit_after = debit.balance_minor.checked_sub(amount).ok_or(TransferRejection::InsufficientFunds)?;
        // Reserved money is spoken for: it counts against the floor.
        if debit_after.checked_sub(debit.reserved_minor).is_none_or(|unreserved| unreserved < debit_floor) {
            return Err(TransferRejection::InsufficientFunds);
        }
        let credit_after = credit.balance_minor.checked_add(amount).filter(|after| *after <= AMOUNT_MINOR_MAX).ok_or(TransferRejection::BalanceLimit)?;

        let debit = self.wallets.get_mut(&intent.debit).expect("checked above");
        debit.balance_minor = debit_after;
        debit.entry_seq += 1;
        let debit_line = EntryLine { wallet: debit.id, seq: debit.entry_seq, amount_minor: -amount, balance_after_minor: debit_after };

        let credit = self.wallets.get_mut(&intent.credit).expect("checked above");
        credit.balance_minor = credit_after;
        credit.entry_seq += 1;
        let credit_line = EntryLine { wallet: credit.id, seq: credit.entry_seq, amount_minor: amount, balance_after_minor: credit_after };

        debug_assert!(debit_line.amount_minor + credit_line.amount_minor == 0);
        Ok(PostedEntries { debit: debit_line, credit: credit_line })
    }

    /// Reserves `intent`'s amount on its debit wallet: the first phase of a
    /// two-phase transfer. Checked as [`Book::apply`] checks a transfer (the
    /// credit side too, so that posting it later cannot pass the balance
    /// limit unless other money arrived meanwhile); nothing moves, and a
    /// refusal changes nothing.
    pub fn reserve(&mut self, intent: &TransferIntent) -> Result<(), TransferRejection> {
        let mut trial = Book { wallets: [intent.debit, intent.credit].iter().filter_map(|id| self.wallets.get(id).map(|w| (*id, w.clone()))).collect() };
        trial.apply(intent)?;
        let debit = self.wallets.get_mut(&intent.debit).expect("checked by the trial");
        debit.reserved_minor += intent.amount.minor();
        Ok(())
    }

    /// Gives back `amount_minor` reserved on `wallet`: a pending transfer
    /// voided, or about to be posted.
    ///
    /// # Panics
    /// If the wallet is not in the book, or has less reserved: a hold is
    /// released once, for what it reserved; anything else is a bug.
    pub fn release(&mut self, wallet: WalletId, amount_minor: i64) {
        let state = self.wallets.get_mut(&wallet).expect("a released wallet is in the book");
        assert!(amount_minor > 0 && state.reserved_minor >= amount_minor, "released more than was reserved on {wallet}");
        state.reserved_minor -= amount_minor;
    }

    /// Posts a pending transfer: releases what `reserved` reserved, then
    /// applies `intent`, whose amount is at most the reservation. Refused, it
    /// changes nothing (the reservation stays).
    pub fn post_reserved(&mut self, reserved: &TransferIntent, intent: &TransferIntent) -> Result<PostedEntries, TransferRejection> {
        assert!(intent.amount.minor() <= reserved.amount.minor() && intent.debit == reserved.debit, "a pending transfer posts at most what it reserved, from the same wallet");
        self.release(reserved.debit, reserved.amount.minor());
        self.apply(intent).inspect_err(|_| {
            self.wallets.get_mut(&reserved.debit).expect("released above").reserved_minor += reserved.amount.minor();
        })
    }

    /// What a wallet can still pay ([`WalletState::available_minor`]): 0 for
    /// a system wallet or one not in the book.
    pub fn available_minor(&self, id: WalletId) -> i64 {
        self.wallets.get(&id).and_then(WalletState::available_minor).unwrap_or(0)
    }

    /// Sum of balances per currency. Zero for every currency of a complete ledger.
    pub fn totals_by_currency(&self) -> HashMap<Currency, i128> {
        let mut totals = HashMap::new();
        for wallet in self.wallets.values() {
            *totals.entry(wallet.currency).or_insert(0) += i128::from(wallet.balance_minor);
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wallet(id: i64, currency: Currency, floor: Option<i64>) -> WalletState {
        WalletState { id: WalletId(id), currency, balance_minor: 0, floor_minor: floor, entry_seq: 0, reserved_minor: 0 }
    }

    fn intent(debit: i64, credit: i64, amount: i64, rule: DebitRule) -> TransferIntent {
        TransferIntent { debit: WalletId(debit), credit: WalletId(credit), amount: PositiveAmount::new(amount).unwrap(), currency: Currency::Cny, debit_rule: rule }
    }

    #[test]
    fn deposit_then_allocation_moves_money_and_numbers_entries() {
        let mut book = Book::new([wallet(1, Currency::Cny, None), wallet(2, Currency::Cny, Some(0)), wallet(3, Currency::Cny, Some(0))]);
        let posted = book.apply(&intent(1, 2, 100_000, DebitRule::ToFloor)).unwrap();
        assert_eq!(posted.debit, EntryLine { wallet: WalletId(1), seq: 1, amount_minor: -100_000, balance_after_minor: -100_000 });
        assert_eq!(posted.credit, EntryLine { wallet: WalletId(2), seq: 1, amount_minor: 100_000, balance_after_minor: 100_000 });
        let posted = book.apply(&intent(2, 3, 65_400, DebitRule::ToFloorFromNonNegative)).unwrap();
        assert_eq!(posted.debit.balance_after_minor, 34_600);
        assert_eq!(posted.debit.seq, 2);
        assert_eq!(book.totals_by_currency()[&Currency::Cny], 0);
    }

    #[test]
    fn refusals_change_nothing() {
        let mut book = Book::new([wallet(1, Currency::Cny, None), wallet(2, Currency::Cny, Some(-5_000)), wallet(3, Currency::Cny, Some(0)), wallet(4, Currency::Usd, Some(0))]);
        book.apply(&intent(1, 2, 1_000, DebitRule::ToFloor)).unwrap();
        let before: Vec<_> = {
            let mut w: Vec<_> = book.wallets().cloned().collect();
            w.sort_by_key(|w| w.id);
            w
        };
        assert_eq!(book.apply(&intent(2, 3, 6_001, DebitRule::ToFloor)), Err(TransferRejection::InsufficientFunds));
        assert_eq!(book.apply(&intent(2, 2, 1, DebitRule::ToFloor)), Err(TransferRejection::SameWallet));
        assert_eq!(book.apply(&intent(2, 4, 1, DebitRule::ToFloor)), Err(TransferRejection::CurrencyMismatch));
        let mut after: Vec<_> = book.wallets().cloned().collect();
        after.sort_by_key(|w| w.id);
        assert_eq!(before, after);
        // The overdraft floor allows going to -50.00, and then no further allocation.
        book.apply(&intent(2, 3, 6_000, DebitRule::ToFloor)).unwrap();
        assert_eq!(book.wallet(WalletId(2)).unwrap().balance_minor, -5_000);
        assert_eq!(book.apply(&intent(1, 2, 1, DebitRule::ToFloor)).map(|p| p.credit.balance_after_minor), Ok(-4_999));
        assert_eq!(book.apply(&intent(2, 3, 1, DebitRule::ToFloorFromNonNegative)), Err(TransferRejection::NegativeBalance));
    }

    #[test]
    fn balances_are_bounded() {
        let mut book = Book::new([wallet(1, Currency::Cny, None), wallet(2, Currency::Cny, Some(0))]);
        book.apply(&intent(1, 2, AMOUNT_MINOR_MAX, DebitRule::ToFloor)).unwrap();
        assert_eq!(book.apply(&intent(1, 2, 1, DebitRule::ToFloor)), Err(TransferRejection::InsufficientFunds));
    }

    #[test]
    fn stored_extremes_are_refused_not_wrapped() {
        let extreme = |id, balance, floor| WalletState { id: WalletId(id), currency: Currency::Cny, balance_minor: balance, floor_minor: floor, entry_seq: 0, reserved_minor: 0 };
        let mut book = Book::new([extreme(1, i64::MIN + 1, Some(i64::MIN)), extreme(2, i64::MAX - 1, Some(0)), extreme(3, 10, Some(0)), extreme(4, i64::MAX, Some(i64::MIN))]);
        // i64::MIN + 1 − 5 and i64::MAX − 1 + 5 would wrap.
        assert_eq!(book.apply(&intent(1, 3, 5, DebitRule::ToFloor)), Err(TransferRejection::InsufficientFunds));
        assert_eq!(book.apply(&intent(3, 2, 5, DebitRule::ToFloor)), Err(TransferRejection::BalanceLimit));
        assert_eq!(book.wallet(WalletId(3)).unwrap().balance_minor, 10, "refusals change nothing");
        assert_eq!(book.available_minor(WalletId(4)), AMOUNT_MINOR_MAX, "capped, not wrapped");
        assert_eq!(book.available_minor(WalletId(1)), 1);
        assert_eq!(book.available_minor(WalletId(3)), 10);
        assert_eq!(book.available_minor(WalletId(9)), 0);
    }

    #[derive(Debug, Clone)]
    struct RandomTransfer {
        debit: i64,
        credit: i64,
        amount: i64,
        non_negative: bool,
    }

    fn random_transfer(wallet_count: i64) -> impl Strategy<Value = RandomTransfer> {
        (0..wallet_count, 0..wallet_count, 1i64..=50_000, any::<bool>()).prop_map(|(debit, credit, amount, non_negative)| RandomTransfer { debit, credit, amount, non_negative })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The three invariants of the module documentation, over random
        /// transfers between wallets of two currencies with random floors.
        #[test]
        fn invariants_hold_for_any_sequence_of_transfers(
            floors in proptest::collection::vec(prop_oneof![Just(None), (0i64..=20_000).prop_map(|o| Some(-o))], 2..12),
            transfers in proptest::collection::vec(random_transfer(12), 0..200),
        ) {
            let wallet_count = floors.len() as i64;
            let mut book = Book::new(floors.iter().enumerate().map(|(i, floor)| {
                let currency = if i % 5 == 4 { Currency::Usd } else { Currency::Cny };
                wallet(i as i64, currency, *floor)
            }));
            for t in transfers.iter().filter(|t| t.debit < wallet_count && t.credit < wallet_count) {
                let before = book.clone();
                let rule = if t.non_negative { DebitRule::ToFloorFromNonNegative } else { DebitRule::ToFloor };
                let currency = book.wallet(WalletId(t.debit)).unwrap().currency;
                let intent = TransferIntent { currency, ..intent(t.debit, t.credit, t.amount, rule) };
                match book.apply(&intent) {
                    Ok(posted) => {
                        prop_assert_eq!(posted.debit.amount_minor, -t.amount);
                        prop_assert_eq!(posted.credit.amount_minor, t.amount);
                        prop_assert_eq!(book.wallet(intent.debit).unwrap().balance_minor, posted.debit.balance_after_minor);
                        prop_assert_eq!(book.wallet(intent.credit).unwrap().balance_minor, posted.credit.balance_after_minor);
                        prop_assert_eq!(posted.debit.seq, before.wallet(intent.debit).unwrap().entry_seq + 1);
                    }
                    Err(_) => {
                        for w in before.wallets() {
                            prop_assert_eq!(book.wallet(w.id), Some(w));
                        }
                    }
                }
                for total in book.totals_by_currency().values() {
                    prop_assert_eq!(*total, 0);
                }
                for w in book.wallets() {
                    prop_assert!(w.balance_minor >= w.floor_minor.unwrap_or(-AMOUNT_MINOR_MAX), "{:?} below its floor", w);
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Transfer(RandomTransfer),
        Reserve(RandomTransfer),
        /// Posts the open hold at this index (modulo), for this share of it (1–100%).
        Post(usize, i64),
        Void(usize),
    }

    fn random_step(wallet_count: i64) -> impl Strategy<Value = Step> {
        prop_oneof![
            random_transfer(wallet_count).prop_map(Step::Transfer),
            random_transfer(wallet_count).prop_map(Step::Reserve),
            (any::<usize>(), 1i64..=100).prop_map(|(i, share)| Step::Post(i, share)),
            any::<usize>().prop_map(Step::Void),
        ]
    }

    #[test]
    fn reservations_count_against_the_floor_and_post_or_void_once() {
        let mut book = Book::new([wallet(1, Currency::Cny, None), wallet(2, Currency::Cny, Some(0)), wallet(3, Currency::Cny, Some(0))]);
        book.apply(&intent(1, 2, 1_000, DebitRule::ToFloor)).unwrap();
        let hold = intent(2, 3, 700, DebitRule::ToFloor);
        book.reserve(&hold).unwrap();
        assert_eq!(book.available_minor(WalletId(2)), 300);
        assert_eq!(book.apply(&intent(2, 3, 301, DebitRule::ToFloor)), Err(TransferRejection::InsufficientFunds), "reserved money is not spendable");
        assert_eq!(book.reserve(&intent(2, 3, 301, DebitRule::ToFloor)), Err(TransferRejection::InsufficientFunds));
        // Posted for less than reserved: the rest is free again.
        let posted = book.post_reserved(&hold, &intent(2, 3, 500, DebitRule::ToFloor)).unwrap();
        assert_eq!(posted.debit.balance_after_minor, 500);
        assert_eq!(book.wallet(WalletId(2)).unwrap().reserved_minor, 0);
        assert_eq!(book.available_minor(WalletId(2)), 500);
        let voided = intent(2, 3, 200, DebitRule::ToFloor);
        book.reserve(&voided).unwrap();
        book.release(WalletId(2), 200);
        assert_eq!(book.available_minor(WalletId(2)), 500);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// With pending transfers in the mix: balances still sum to zero per
        /// currency, no wallet's unreserved balance goes below its floor, and a
        /// wallet's reservation is exactly the sum of its open holds.
        #[test]
        fn invariants_hold_with_pending_transfers(
            floors in proptest::collection::vec(prop_oneof![Just(None), (0i64..=20_000).prop_map(|o| Some(-o))], 2..8),
            steps in proptest::collection::vec(random_step(8), 0..200),
        ) {
            let wallet_count = floors.len() as i64;
            let mut book = Book::new(floors.iter().enumerate().map(|(i, floor)| wallet(i as i64, Currency::Cny, *floor)));
            let mut open: Vec<TransferIntent> = Vec::new();
            for step in steps {
                let before = book.clone();
                let outcome = match step {
                    Step::Transfer(t) | Step::Reserve(t) if t.debit >= wallet_count || t.credit >= wallet_count => continue,
                    Step::Transfer(t) => book.apply(&intent(t.debit, t.credit, t.amount, DebitRule::ToFloor)).map(|_| ()),
                    Step::Reserve(t) => {
                        let hold = intent(t.debit, t.credit, t.amount, DebitRule::ToFloor);
                        book.reserve(&hold).map(|()| open.push(hold))
                    }
                    Step::Post(_, _) | Step::Void(_) if open.is_empty() => continue,
                    Step::Post(i, share) => {
                        let hold = open.remove(i % open.len());
                        let amount = (hold.amount.minor() * share / 100).max(1);
                        let outcome = book.post_reserved(&hold, &TransferIntent { amount: PositiveAmount::new(amount).unwrap(), ..hold });
                        if outcome.is_err() {
                            open.push(hold);
                        }
                        outcome.map(|_| ())
                    }
                    Step::Void(i) => {
                        let hold = open.remove(i % open.len());
                        book.release(hold.debit, hold.amount.minor());
                        Ok(())
                    }
                };
                if outcome.is_err() {
                    for w in before.wallets() {
                        prop_assert_eq!(book.wallet(w.id), Some(w), "a refusal changes nothing");
                    }
                }
                prop_assert_eq!(book.totals_by_currency()[&Currency::Cny], 0);
                for w in book.wallets() {
                    let holds: i64 = open.iter().filter(|h| h.debit == w.id).map(|h| h.amount.minor()).sum();
                    prop_assert_eq!(w.reserved_minor, holds);
                    if let Some(floor) = w.floor_minor {
                        prop_assert!(w.balance_minor - w.reserved_minor >= floor, "{:?} reserves past its floor", w);
                    }
                }
            }
        }
    }
}
