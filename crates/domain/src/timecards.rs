//! Time cards (时长卡, UUCall `giftrate`): prepaid minutes that rating uses
//! before any money. Pure: the usage engine reads the cards of a batch's
//! accounts under the batch's lock into a [`CardBook`], plans each event's
//! cover, consumes it only once the event is accepted, and hands storage the
//! changes ([`CardChange`]) to write in the batch's transaction.
//!
//! The rules, in one place:
//!
//! - **What a card covers.** The billable minutes of a call: an event of a
//!   product in a voice category (call-in, call-out, internal voice) whose
//!   tariff in force is `per_unit` by the minute (an increment of 60 s, so a
//!   billable unit is a started minute; see [`covers`]). Counted items
//!   (messages, verification codes) and other increments are never covered:
//!   a card holds minutes, and only a per-minute tariff says what a minute is.
//! - **Whose cards.** An account's own cards, and the cards its tenant shares
//!   (no account) when the account is a seat (tenant-funded): the tenant's
//!   minutes go where the tenant's money would go.
//! - **Valid.** Active (not cancelled), `effective_at_us <= at < expires_at_us`
//!   for the instant the event occurred, and minutes left.
//! - **Order.** Earliest expiry first; at equal expiry the account's own card
//!   before a shared one (its own cannot serve anyone else, a shared one can);
//!   then the older card (smaller id).
//! - **Whole minutes.** A card gives whole minutes; what its cards cannot
//!   cover of a call is rated and charged as money. Card minutes plus money
//!   minutes are the call's billable minutes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::BillCategory;
use crate::ids::{AccountId, TimeCardId};
use crate::rating::{MILLI, PriceModel};

/// Seconds in a minute: the increment of a per-minute tariff, in thousandths.
const MINUTE_MILLI: i64 = 60 * MILLI;

/// Largest number of minutes one card may hold (about 19 years of talk).
pub const CARD_MINUTES_MAX: i64 = 10_000_000;

/// Whether cards can cover an event of a product of `category` rated by
/// `model`: a voice product priced per started minute.
pub fn covers(category: BillCategory, model: &PriceModel) -> bool {
    category.is_voice() && matches!(model, PriceModel::PerUnit { increment, .. } if increment.milli() == MINUTE_MILLI)
}

/// A card as stored: `Active` until cancelled (then it covers nothing more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    Active,
    Cancelled,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Active => "active",
            CardStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<CardStatus> {
        [CardStatus::Active, CardStatus::Cancelled].into_iter().find(|s| s.as_str() == text)
    }
}

/// A card's state as shown at an instant (UUCall `state` is a string: this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// Not in effect yet.
    Pending,
    /// In effect with minutes left.
    Valid,
    /// In effect, every minute used.
    UsedUp,
    /// Past its expiry.
    Expired,
    Cancelled,
}

impl CardState {
    pub fn as_str(self) -> &'static str {
        match self {
            CardState::Pending => "pending",
            CardState::Valid => "valid",
            CardState::UsedUp => "used_up",
            CardState::Expired => "expired",
            CardState::Cancelled => "cancelled",
        }
    }
}

/// What the engine knows of a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Card {
    pub id: TimeCardId,
    /// `None`: shared by the tenant's seats.
    pub account: Option<AccountId>,
    pub minutes_left: i64,
    pub effective_at_us: i64,
    /// The first instant it no longer covers.
    pub expires_at_us: i64,
    pub status: CardStatus,
}

impl Card {
    /// Its state at `at_us`.
    pub fn state_at(&self, at_us: i64) -> CardState {
        match self.status {
            CardStatus::Cancelled => CardState::Cancelled,
            CardStatus::Active if at_us >= self.expires_at_us => CardState::Expired,
            CardStatus::Active if at_us < self.effective_at_us => CardState::Pending,
            CardStatus::Active if self.minutes_left == 0 => CardState::UsedUp,
            CardStatus::Active => CardState::Valid,
        }
    }

    fn usable(&self, account: AccountId, shared: bool, at_us: i64) -> bool {
        let holder = match self.account {
            Some(owner) => owner == account,
            None => shared,
        };
        holder && self.status == CardStatus::Active && self.effective_at_us <= at_us && at_us < self.expires_at_us && self.minutes_left > 0
    }

    /// Consumption order: earliest expiry, then own before shared, then oldest.
    fn order(&self) -> (i64, bool, TimeCardId) {
        (self.expires_at_us, self.account.is_none(), self.id)
    }
}

/// Minutes taken from each card for one event, in consumption order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cover {
    pub parts: Vec<(TimeCardId, i64)>,
}

impl Cover {
    /// Minutes covered in all.
    pub fn minutes(&self) -> i64 {
        self.parts.iter().map(|(_, minutes)| minutes).sum()
    }
}

/// A card a batch consumed from: minutes left as read, and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardChange {
    pub id: TimeCardId,
    pub minutes_left_read: i64,
    pub minutes_left: i64,
}

/// The cards of one batch, read under its lock, and what it consumed.
#[derive(Debug, Clone, Default)]
pub struct CardBook {
    /// In consumption order.
    cards: Vec<Card>,
    read: BTreeMap<TimeCardId, i64>,
}

impl CardBook {
    pub fn new(cards: impl IntoIterator<Item = Card>) -> CardBook {
        let mut cards: Vec<Card> = cards.into_iter().collect();
        cards.sort_by_key(Card::order);
        cards.dedup_by_key(|c| c.id);
        let read = cards.iter().map(|c| (c.id, c.minutes_left)).collect();
        CardBook { cards, read }
    }

    /// What the cards would cover of `minutes` billable minutes of
    /// `account` at `at_us` (`shared`: it may use the tenant's shared
    /// cards). Changes nothing: [`CardBook::consume`] does, once the event
    /// is accepted.
    pub fn plan(&self, account: AccountId, shared: bool, at_us: i64, minutes: i64) -> Cover {
        let mut wanted = minutes.max(0);
        let mut parts = Vec::new();
        for card in self.cards.iter().filter(|c| c.usable(account, shared, at_us)) {
            if wanted == 0 {
                break;
            }
            let take = wanted.min(card.minutes_left);
            parts.push((card.id, take));
            wanted -= take;
        }
        Cover { parts }
    }

    /// Takes a planned cover's minutes off its cards. A plan is made against
    /// the current minutes left, so it always fits.
    pub fn consume(&mut self, cover: &Cover) {
        for (id, minutes) in &cover.parts {
            let card = self.cards.iter_mut().find(|c| c.id == *id).expect("a plan names the book's cards");
            assert!(*minutes <= card.minutes_left, "a plan takes at most what a card has left");
            card.minutes_left -= minutes;
        }
    }

    /// Minutes left on a card now.
    pub fn left(&self, id: TimeCardId) -> Option<i64> {
        self.cards.iter().find(|c| c.id == id).map(|c| c.minutes_left)
    }

    /// The cards consumed from, with their minutes left as read and now.
    pub fn changes(&self) -> Vec<CardChange> {
        let mut changes: Vec<CardChange> =
            self.cards.iter().filter(|c| self.read[&c.id] != c.minutes_left).map(|c| CardChange { id: c.id, minutes_left_read: self.read[&c.id], minutes_left: c.minutes_left }).collect();
        changes.sort_by_key(|c| c.id);
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rating::{Quantity, UnitPrice};
    use proptest::prelude::*;

    const SEAT: AccountId = AccountId(1);
    const OTHER: AccountId = AccountId(2);

    fn card(id: i64, account: Option<AccountId>, minutes: i64, from: i64, until: i64) -> Card {
        Card { id: TimeCardId(id), account, minutes_left: minutes, effective_at_us: from, expires_at_us: until, status: CardStatus::Active }
    }

    #[test]
    fn only_per_minute_voice_is_covered() {
        let per = |increment: &str| PriceModel::PerUnit { price: UnitPrice::parse("0.10").unwrap(), increment: Quantity::parse(increment).unwrap() };
        assert!(covers(BillCategory::CallOut, &per("60")));
        assert!(covers(BillCategory::CallIn, &per("60")));
        assert!(covers(BillCategory::InternalVoice, &per("60")));
        assert!(!covers(BillCategory::CallOut, &per("6")), "six-second billing has no minutes");
        assert!(!covers(BillCategory::Sms, &per("60")));
        assert!(!covers(BillCategory::Other, &per("60")));
        assert!(!covers(BillCategory::CallOut, &PriceModel::Recurring { price: UnitPrice::parse("1").unwrap() }));
    }

    #[test]
    fn earliest_expiry_first_and_own_before_shared_at_equal_expiry() {
        let book = CardBook::new([card(1, None, 10, 0, 500), card(2, Some(SEAT), 10, 0, 500), card(3, Some(SEAT), 10, 0, 900), card(4, None, 10, 0, 300)]);
        let cover = book.plan(SEAT, true, 100, 35);
        assert_eq!(cover.parts, [(TimeCardId(4), 10), (TimeCardId(2), 10), (TimeCardId(1), 10), (TimeCardId(3), 5)]);
        // Without shared cards (an account paying its own way), only its own.
        assert_eq!(book.plan(SEAT, false, 100, 35).parts, [(TimeCardId(2), 10), (TimeCardId(3), 10)]);
        // Another account's card is never used.
        assert_eq!(book.plan(OTHER, false, 100, 5).minutes(), 0);
    }

    #[test]
    fn a_card_covers_from_its_effective_instant_until_just_before_its_expiry() {
        let book = CardBook::new([card(1, Some(SEAT), 10, 1_000, 2_000)]);
        assert_eq!(book.plan(SEAT, false, 999, 1).minutes(), 0, "not yet in effect");
        assert_eq!(book.plan(SEAT, false, 1_000, 1).minutes(), 1);
        assert_eq!(book.plan(SEAT, false, 1_999, 1).minutes(), 1, "the last microsecond");
        assert_eq!(book.plan(SEAT, false, 2_000, 1).minutes(), 0, "expired at its expiry instant");
        let c = card(1, Some(SEAT), 10, 1_000, 2_000);
        assert_eq!([c.state_at(999), c.state_at(1_000), c.state_at(2_000)], [CardState::Pending, CardState::Valid, CardState::Expired]);
        assert_eq!(Card { minutes_left: 0, ..c }.state_at(1_500), CardState::UsedUp);
        assert_eq!(Card { status: CardStatus::Cancelled, ..c }.state_at(1_500), CardState::Cancelled);
        let cancelled = CardBook::new([Card { status: CardStatus::Cancelled, ..c }]);
        assert_eq!(cancelled.plan(SEAT, false, 1_500, 1).minutes(), 0);
    }

    #[test]
    fn a_plan_changes_nothing_until_consumed() {
        let mut book = CardBook::new([card(1, Some(SEAT), 3, 0, 100)]);
        let cover = book.plan(SEAT, false, 10, 5);
        assert_eq!(cover.minutes(), 3);
        assert!(book.changes().is_empty());
        book.consume(&cover);
        assert_eq!(book.left(TimeCardId(1)), Some(0));
        assert_eq!(book.changes(), [CardChange { id: TimeCardId(1), minutes_left_read: 3, minutes_left: 0 }]);
        assert_eq!(book.plan(SEAT, false, 10, 5).minutes(), 0, "used up");
    }

    fn cards() -> impl Strategy<Value = Vec<Card>> {
        proptest::collection::vec((1i64..20, prop::option::of(1i64..3), 0i64..30, 0i64..50, 1i64..60, any::<bool>()), 0..8).prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (_, account, minutes, from, length, cancelled))| Card {
                    id: TimeCardId(i as i64 + 1),
                    account: account.map(AccountId),
                    minutes_left: minutes,
                    effective_at_us: from,
                    expires_at_us: from + length,
                    status: if cancelled { CardStatus::Cancelled } else { CardStatus::Active },
                })
                .collect()
        })
    }

    proptest! {
        /// Whatever the cards and calls: a card gives only minutes it has,
        /// only while valid, only to its holder; no minute is given twice;
        /// minutes left never go negative; and per call, card minutes plus
        /// money minutes are its billable minutes.
        #[test]
        fn no_minute_is_consumed_twice_or_after_expiry(
            cards in cards(),
            calls in proptest::collection::vec((1i64..3, any::<bool>(), 0i64..80, 0i64..40, any::<bool>()), 0..40),
        ) {
            let mut book = CardBook::new(cards.clone());
            let mut taken: BTreeMap<TimeCardId, i64> = BTreeMap::new();
            for (account, shared, at, minutes, accepted) in calls {
                let account = AccountId(account);
                let cover = book.plan(account, shared, at, minutes);
                let covered = cover.minutes();
                let money = minutes - covered;
                prop_assert!(covered >= 0 && money >= 0);
                prop_assert_eq!(covered + money, minutes);
                for (id, part) in &cover.parts {
                    let card = cards.iter().find(|c| c.id == *id).unwrap();
                    prop_assert!(*part > 0);
                    prop_assert!(card.status == CardStatus::Active);
                    prop_assert!(card.effective_at_us <= at && at < card.expires_at_us, "card {:?} used at {} outside its validity", id, at);
                    prop_assert!(card.account.map_or(shared, |owner| owner == account));
                    prop_assert!(*part <= book.left(*id).unwrap());
                }
                // A rejected event's plan is dropped: it consumes nothing.
                if accepted {
                    book.consume(&cover);
                    for (id, part) in &cover.parts {
                        *taken.entry(*id).or_default() += part;
                    }
                }
            }
            for card in &cards {
                let left = book.left(card.id).unwrap();
                prop_assert!(left >= 0);
                prop_assert_eq!(card.minutes_left - left, taken.get(&card.id).copied().unwrap_or(0));
            }
            for change in book.changes() {
                prop_assert_eq!(change.minutes_left_read - change.minutes_left, taken[&change.id]);
            }
        }
    }
}
