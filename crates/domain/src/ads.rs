//! Ad accounts resold on Meta: the reseller's rules, pure.
//!
//! An agency (a tenant) funds each ad account's spend cap from its USD wallet.
//! The rules here decide what the reseller API says about an account (its
//! status 1/2/3/4/7, whether it may be topped up now) and what money a spend
//! cap change moves; the service layer applies them to synced data.

use std::fmt;

use crate::decimal::{ScaledError, parse_scaled};
use crate::money::AMOUNT_MINOR_MAX;

/// Meta's `account_status` codes this module reads.
mod meta_status {
    pub const ACTIVE: i64 = 1;
    pub const PENDING_CLOSURE: i64 = 100;
    pub const CLOSED: i64 = 101;
    pub const ANY_CLOSED: i64 = 202;
}

/// An ad account's status as the reseller API gives it (`account_list.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdStatus {
    /// 1 正常: Meta has it active and it can spend.
    Normal,
    /// 2 已关闭: closed at Meta (or closing).
    Closed,
    /// 3 封户: disabled at Meta (or paused for review, unsettled, in grace), nothing left to return.
    Disabled,
    /// 4 空户: active, but nothing left to spend (the cap is used up or was never funded).
    Empty,
    /// 7 封户-清零中: disabled, and funded cap not spent yet, to be returned by a reset.
    DisabledZeroing,
}

impl AdStatus {
    /// The status from what Meta says and what remains of the funded cap.
    pub fn of(meta_status: i64, spend_cap_cents: i64, amount_spent_cents: i64) -> AdStatus {
        let remaining_cents = spend_cap_cents.saturating_sub(amount_spent_cents);
        match meta_status {
            meta_status::CLOSED | meta_status::PENDING_CLOSURE | meta_status::ANY_CLOSED => AdStatus::Closed,
            meta_status::ACTIVE if remaining_cents > RESET_REMAINDER_CENTS => AdStatus::Normal,
            meta_status::ACTIVE => AdStatus::Empty,
            // Disabled, unsettled, in risk review, pending settlement, in grace: it cannot spend.
            _ if remaining_cents > RESET_REMAINDER_CENTS => AdStatus::DisabledZeroing,
            _ => AdStatus::Disabled,
        }
    }

    pub fn code(self) -> i64 {
        match self {
            AdStatus::Normal => 1,
            AdStatus::Closed => 2,
            AdStatus::Disabled => 3,
            AdStatus::Empty => 4,
            AdStatus::DisabledZeroing => 7,
        }
    }

    /// Whether its spend cap may be raised or lowered: it must be active at Meta.
    pub fn accepts_cap_change(self) -> bool {
        matches!(self, AdStatus::Normal | AdStatus::Empty)
    }

    /// Whether it may be reset (its unspent cap returned): anything not closed
    /// and with something to return or spend counter to clear.
    pub fn accepts_reset(self) -> bool {
        !matches!(self, AdStatus::Closed)
    }
}

impl fmt::Display for AdStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdStatus::Normal => "normal",
            AdStatus::Closed => "closed",
            AdStatus::Disabled => "disabled",
            AdStatus::Empty => "empty",
            AdStatus::DisabledZeroing => "disabled, being zeroed",
        })
    }
}

/// Whether Meta's status lets an account spend at all.
pub fn meta_status_is_active(meta_status: i64) -> bool {
    meta_status == meta_status::ACTIVE
}

/// What a reset leaves of the cap: Meta sets it to $0.01.
pub const RESET_REMAINDER_CENTS: i64 = 1;

/// The highest spend cap subledger sets, in cents: $10 billion, far above any
/// real cap and within every sum the ledger checks.
pub const SPEND_CAP_CENTS_MAX: i64 = 1_000_000_000_000;
const _: () = assert!(SPEND_CAP_CENTS_MAX < AMOUNT_MINOR_MAX);

/// A spend cap asked for: a whole number of US cents, above 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpendCap(i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpendCapError {
    /// Not a number, fractions of a cent, or past [`SPEND_CAP_CENTS_MAX`] (1005).
    #[error("amount_usd must be a whole number of US cents up to {SPEND_CAP_CENTS_MAX}")]
    Invalid,
    /// Zero or below (1007): Meta reads a cap of 0 as no cap at all.
    #[error("amount_usd is too low: the spend cap must be above 0")]
    TooLow,
}

impl SpendCap {
    /// From the decimal text of `amount_usd` (cents): `1500`, `1500.00`, `-3`.
    pub fn parse(text: &str) -> Result<SpendCap, SpendCapError> {
        let text = text.trim();
        if let Some(magnitude) = text.strip_prefix('-') {
            // A well-formed negative amount is too low, not malformed.
            return match parse_scaled(magnitude, 0, SPEND_CAP_CENTS_MAX) {
                Ok(_) | Err(ScaledError::TooPrecise) if !magnitude.is_empty() => Err(SpendCapError::TooLow),
                _ => Err(SpendCapError::Invalid),
            };
        }
        match parse_scaled(text, 0, SPEND_CAP_CENTS_MAX) {
            Ok(0) => Err(SpendCapError::TooLow),
            Ok(cents) => Ok(SpendCap(cents)),
            Err(ScaledError::TooPrecise) => {
                // `1500.00` is whole; `1500.5` is not.
                let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
                if fraction.bytes().all(|b| b == b'0') { SpendCap::parse(whole) } else { Err(SpendCapError::Invalid) }
            }
            Err(_) => Err(SpendCapError::Invalid),
        }
    }

    pub fn cents(self) -> i64 {
        self.0
    }
}

/// A company's place on the blacklist (`account_list.blacklist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BlacklistLevel {
    /// 0 不在黑名单.
    None,
    /// 1 今日黑名单: until the end of the tenant's day.
    Today,
    /// 2 7天惩罚期.
    SevenDays,
    /// 3 14天惩罚期.
    FourteenDays,
    /// 4 永久惩罚期.
    Permanent,
}

impl BlacklistLevel {
    pub fn code(self) -> i64 {
        match self {
            BlacklistLevel::None => 0,
            BlacklistLevel::Today => 1,
            BlacklistLevel::SevenDays => 2,
            BlacklistLevel::FourteenDays => 3,
            BlacklistLevel::Permanent => 4,
        }
    }

    pub fn from_code(code: i64) -> Option<BlacklistLevel> {
        Some(match code {
            0 => BlacklistLevel::None,
            1 => BlacklistLevel::Today,
            2 => BlacklistLevel::SevenDays,
            3 => BlacklistLevel::FourteenDays,
            4 => BlacklistLevel::Permanent,
            _ => return None,
        })
    }

    /// When a penalty set at `since_us` ends (exclusive), given where the
    /// tenant's day containing `since_us` ends; `None` for no end.
    pub fn until_us(self, since_us: i64, end_of_day_us: i64) -> Option<i64> {
        const DAY_US: i64 = 86_400_000_000;
        match self {
            BlacklistLevel::None => Some(since_us),
            BlacklistLevel::Today => Some(end_of_day_us),
            BlacklistLevel::SevenDays => Some(since_us + 7 * DAY_US),
            BlacklistLevel::FourteenDays => Some(since_us + 14 * DAY_US),
            BlacklistLevel::Permanent => None,
        }
    }

    /// The level in force at `now_us` of a penalty that ends at `until_us`.
    pub fn in_force(self, until_us: Option<i64>, now_us: i64) -> BlacklistLevel {
        match until_us {
            Some(until) if now_us >= until => BlacklistLevel::None,
            _ => self,
        }
    }
}

/// Why an ad account cannot be topped up now (`account_recharge_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RechargeRefusal {
    /// The operator marked it a violation account (1020).
    Violation,
    /// Its opening company is on the blacklist (1021).
    Blacklisted(BlacklistLevel),
    /// Its status does not allow it (1013).
    Status(AdStatus),
}

impl fmt::Display for RechargeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RechargeRefusal::Violation => f.write_str("the ad account is marked as a violation account"),
            RechargeRefusal::Blacklisted(level) => write!(f, "the ad account's company is blacklisted (level {})", level.code()),
            RechargeRefusal::Status(status) => write!(f, "the ad account's status is {status} ({})", status.code()),
        }
    }
}

/// Whether an account may be topped up now; refusals in the order the API
/// reports them: violation, then blacklist, then status.
pub fn recharge_refusal(violation: bool, blacklist: BlacklistLevel, status: AdStatus) -> Option<RechargeRefusal> {
    if violation {
        Some(RechargeRefusal::Violation)
    } else if blacklist != BlacklistLevel::None {
        Some(RechargeRefusal::Blacklisted(blacklist))
    } else if !status.accepts_cap_change() {
        Some(RechargeRefusal::Status(status))
    } else {
        None
    }
}

/// Money a spend cap change moves, in cents: positive from the tenant to the
/// account's `ad_cap` wallet, negative back to the tenant. What the tenant
/// funded of an account since its last reset is its cap, so the movement is
/// the difference of caps, whatever Meta has spent meanwhile.
pub fn cap_change_cents(cap_before_cents: i64, cap_after_cents: i64) -> i64 {
    cap_after_cents - cap_before_cents
}

/// Money a reset moves, in cents (negative: back to the tenant). Before it,
/// the tenant funded `cap_before`, of which Meta spent `spent_before`, both
/// already accounted; after it, the account holds [`RESET_REMAINDER_CENTS`]
/// of cap and has spent nothing.
pub fn reset_cents(cap_before_cents: i64, spent_before_cents: i64) -> i64 {
    RESET_REMAINDER_CENTS - (cap_before_cents - spent_before_cents)
}

/// An account's cap and spend since its last reset, in cents: as subledger
/// funded it, or as Meta reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapAndSpend {
    pub spend_cap_cents: i64,
    pub amount_spent_cents: i64,
}

/// What brings subledger's books of an account in line with Meta's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconciliation {
    /// Meta's spend counter went back (a reset made outside subledger): spend
    /// counts from 0 again.
    pub was_reset: bool,
    /// Money to fund (positive, from the tenant) or return (negative) because
    /// the cap changed outside subledger (or a reset ended the old funding).
    pub funding_cents: i64,
    /// Spend to move from the account's `ad_cap` wallet to `ad_payable`.
    pub spent_cents: i64,
}

/// How subledger's books of an account (`local`) follow Meta's report
/// (`meta`): what the tenant funded since the last reset is the cap, so a cap
/// changed at Meta is funded by the difference, and new spend is moved out.
/// After a reset at Meta, the old cap's funding ends: what it had not spent
/// is returned (in `funding_cents`) and spend counts from 0. Applying both
/// leaves the `ad_cap` wallet at `meta` cap − spent.
pub fn reconcile(local: CapAndSpend, meta: CapAndSpend) -> Reconciliation {
    let was_reset = meta.amount_spent_cents < local.amount_spent_cents;
    let spent_base = if was_reset { 0 } else { local.amount_spent_cents };
    let funding_cents = meta.spend_cap_cents - local.spend_cap_cents + if was_reset { local.amount_spent_cents } else { 0 };
    Reconciliation { was_reset, funding_cents, spent_cents: meta.amount_spent_cents - spent_base }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What happens to an ad account, as a test drives it.
    #[derive(Debug, Clone)]
    enum Event {
        /// subledger changes the cap (funded by the difference of caps).
        ChangeCap(i64),
        /// Meta spends, never past the cap.
        Spend(i64),
        /// subledger resets (after moving the spend it knows of).
        Reset,
        /// Someone changes the cap at Meta; a sync follows.
        ExternalCap(i64),
        /// Someone resets at Meta; a sync follows.
        ExternalReset,
        /// A sync.
        Sync,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (1i64..100_000).prop_map(Event::ChangeCap),
            (0i64..50_000).prop_map(Event::Spend),
            Just(Event::Reset),
            (1i64..100_000).prop_map(Event::ExternalCap),
            Just(Event::ExternalReset),
            Just(Event::Sync),
        ]
    }

    proptest! {
        /// Whatever happens, after each sync: the `ad_cap` wallet holds the
        /// cap less the spend, the payable holds every cent Meta spent, and
        /// money is conserved between tenant, account and payable.
        #[test]
        fn funded_is_spent_plus_remaining_cap(events in proptest::collection::vec(event(), 1..60)) {
            let mut meta = CapAndSpend { spend_cap_cents: RESET_REMAINDER_CENTS, amount_spent_cents: 0 };
            let mut local = CapAndSpend { spend_cap_cents: 0, amount_spent_cents: 0 };
            let (mut tenant, mut cap_wallet, mut payable, mut spent_at_meta) = (10_000_000i64, 0i64, 0i64, 0i64);
            let sync = |meta: CapAndSpend, local: &mut CapAndSpend, tenant: &mut i64, cap_wallet: &mut i64, payable: &mut i64| {
                let r = reconcile(*local, meta);
                *tenant -= r.funding_cents;
                *cap_wallet += r.funding_cents - r.spent_cents;
                *payable += r.spent_cents;
                *local = meta;
            };
            sync(meta, &mut local, &mut tenant, &mut cap_wallet, &mut payable);
            for event in events {
                match event {
                    Event::ChangeCap(cap) if cap > meta.amount_spent_cents => {
                        let moved = cap_change_cents(local.spend_cap_cents, cap);
                        tenant -= moved;
                        cap_wallet += moved;
                        meta.spend_cap_cents = cap;
                        local.spend_cap_cents = cap;
                    }
                    Event::ChangeCap(_) => {}
                    Event::Spend(cents) => {
                        let cents = cents.min(meta.spend_cap_cents - meta.amount_spent_cents).max(0);
                        meta.amount_spent_cents += cents;
                        spent_at_meta += cents;
                    }
                    Event::Reset => {
                        sync(meta, &mut local, &mut tenant, &mut cap_wallet, &mut payable);
                        let moved = reset_cents(local.spend_cap_cents, local.amount_spent_cents);
                        tenant -= moved;
                        cap_wallet += moved;
                        meta = CapAndSpend { spend_cap_cents: RESET_REMAINDER_CENTS, amount_spent_cents: 0 };
                        local = meta;
                    }
                    Event::ExternalCap(cap) if cap > meta.amount_spent_cents => {
                        meta.spend_cap_cents = cap;
                        sync(meta, &mut local, &mut tenant, &mut cap_wallet, &mut payable);
                    }
                    Event::ExternalCap(_) => {}
                    Event::ExternalReset => {
                        // What Meta spent before the reset, if no sync saw it, is lost to the books: sync first.
                        sync(meta, &mut local, &mut tenant, &mut cap_wallet, &mut payable);
                        meta = CapAndSpend { spend_cap_cents: RESET_REMAINDER_CENTS, amount_spent_cents: 0 };
                        sync(meta, &mut local, &mut tenant, &mut cap_wallet, &mut payable);
                    }
                    Event::Sync => sync(meta, &mut local, &mut tenant, &mut cap_wallet, &mut payable),
                }
                prop_assert_eq!(tenant + cap_wallet + payable, 10_000_000, "money is conserved");
            }
            sync(meta, &mut local, &mut tenant, &mut cap_wallet, &mut payable);
            prop_assert_eq!(cap_wallet, meta.spend_cap_cents - meta.amount_spent_cents, "funded = spent + remaining cap");
            prop_assert_eq!(payable, spent_at_meta, "every cent Meta spent is payable, once");
        }
    }

    #[test]
    fn spend_caps_parse_whole_cents_above_zero() {
        assert_eq!(SpendCap::parse("1500").map(SpendCap::cents), Ok(1500));
        assert_eq!(SpendCap::parse("1500.00").map(SpendCap::cents), Ok(1500));
        assert_eq!(SpendCap::parse("0"), Err(SpendCapError::TooLow));
        assert_eq!(SpendCap::parse("0.00"), Err(SpendCapError::TooLow));
        assert_eq!(SpendCap::parse("-5"), Err(SpendCapError::TooLow));
        assert_eq!(SpendCap::parse("-5.5"), Err(SpendCapError::TooLow));
        assert_eq!(SpendCap::parse("1500.5"), Err(SpendCapError::Invalid));
        assert_eq!(SpendCap::parse("abc"), Err(SpendCapError::Invalid));
        assert_eq!(SpendCap::parse(""), Err(SpendCapError::Invalid));
        assert_eq!(SpendCap::parse("-"), Err(SpendCapError::Invalid));
        assert_eq!(SpendCap::parse("10000000000001"), Err(SpendCapError::Invalid));
    }

    #[test]
    fn statuses_follow_meta_and_the_remaining_cap() {
        assert_eq!(AdStatus::of(1, 10_000, 2_000), AdStatus::Normal);
        assert_eq!(AdStatus::of(1, 10_000, 10_000), AdStatus::Empty);
        assert_eq!(AdStatus::of(1, 0, 0), AdStatus::Empty);
        assert_eq!(AdStatus::of(101, 10_000, 0), AdStatus::Closed);
        assert_eq!(AdStatus::of(2, 10_000, 2_000), AdStatus::DisabledZeroing);
        assert_eq!(AdStatus::of(2, 1, 0), AdStatus::Disabled);
        assert!(AdStatus::Empty.accepts_cap_change() && !AdStatus::Disabled.accepts_cap_change());
    }

    #[test]
    fn penalties_expire() {
        let day = 86_400_000_000;
        let since = 1_000 * day;
        assert_eq!(BlacklistLevel::SevenDays.until_us(since, since + 10), Some(since + 7 * day));
        assert_eq!(BlacklistLevel::Today.until_us(since, since + 10), Some(since + 10));
        assert_eq!(BlacklistLevel::Today.in_force(Some(since + 10), since + 10), BlacklistLevel::None);
        assert_eq!(BlacklistLevel::Permanent.in_force(None, i64::MAX), BlacklistLevel::Permanent);
    }

    #[test]
    fn refusals_come_in_order() {
        assert_eq!(recharge_refusal(true, BlacklistLevel::Permanent, AdStatus::Closed), Some(RechargeRefusal::Violation));
        assert_eq!(recharge_refusal(false, BlacklistLevel::Today, AdStatus::Closed), Some(RechargeRefusal::Blacklisted(BlacklistLevel::Today)));
        assert_eq!(recharge_refusal(false, BlacklistLevel::None, AdStatus::Closed), Some(RechargeRefusal::Status(AdStatus::Closed)));
        assert_eq!(recharge_refusal(false, BlacklistLevel::None, AdStatus::Empty), None);
    }

    #[test]
    fn funding_follows_the_cap() {
        // Funded = spent + remaining: raising from 100 to 250 funds 150.
        assert_eq!(cap_change_cents(10_000, 25_000), 15_000);
        assert_eq!(cap_change_cents(25_000, 20_000), -5_000);
        // Cap 250, spent 100: a reset returns 150 but the cent Meta leaves.
        assert_eq!(reset_cents(25_000, 10_000), -14_999);
        // Fully spent: the cent Meta leaves is funded.
        assert_eq!(reset_cents(25_000, 25_000), 1);
    }
}
