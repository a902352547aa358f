//! Time cards (时长卡, UUCall `giftrate`): prepaid minutes of one account, or
//! shared by the tenant's seats. Issued and cancelled here; consumed by usage
//! batches (`subledger_domain::timecards` says which card covers what, in
//! which order), inside the batch's transaction.

use subledger_domain::account::parse_display_name;
use subledger_domain::calendar::{Day, from_unix_micros};
use subledger_domain::ids::{AccountId, TimeCardId};
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_domain::paging::Page;
use subledger_domain::timecards::{CARD_MINUTES_MAX, CardState};
use subledger_storage::timecards::{self as store_cards, NewTimeCard as StoredCard, TimeCardRecord};
use subledger_storage::{accounts as store_accounts, tenants as store_tenants};

use crate::Change;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::tenants::Tenant;
use crate::{Services, now_us};

/// Cards of one holder (an account, or the tenant's shared ones) that can
/// still cover something: what every usage batch of the holder reads, so it is bounded.
pub const TIME_CARDS_USABLE_MAX: i64 = 100;
/// Largest page of a card listing.
pub const TIME_CARD_PAGE_MAX: i64 = 200;
/// Longest card name and note, in characters.
pub const TIME_CARD_NAME_CHARS_MAX: usize = 100;
pub const TIME_CARD_NOTE_CHARS_MAX: usize = 500;

/// When a card stops covering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardExpiry {
    /// At this instant (microseconds; the first instant it covers nothing).
    At(i64),
    /// At the end of this day in the tenant's zone (its next midnight).
    EndOf(Day),
}

/// A card to issue.
#[derive(Debug, Clone)]
pub struct NewTimeCard {
    pub name: String,
    /// `None`: shared by the tenant's seats (tenant-funded accounts).
    pub account: Option<AccountId>,
    pub minutes: i64,
    /// From when it covers (default: now).
    pub effective_at_us: Option<i64>,
    pub expires: CardExpiry,
    pub note: String,
}

/// A card as every dialect sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCard {
    pub id: TimeCardId,
    pub name: String,
    /// `None`: shared by the tenant's seats.
    pub account: Option<AccountId>,
    /// UUCall `giftTime`.
    pub minutes_total: i64,
    /// UUCall `ruleGiftTime`.
    pub minutes_left: i64,
    pub effective_at_us: i64,
    /// The first instant it no longer covers.
    pub expires_at_us: i64,
    /// Its state now (`CardState::as_str` is the string UUCall shows).
    pub state: CardState,
    pub note: String,
    pub created_at_us: i64,
}

impl TimeCard {
    fn of(record: TimeCardRecord, now: i64) -> TimeCard {
        TimeCard {
            id: record.card.id,
            name: record.name,
            account: record.card.account,
            minutes_total: record.minutes_total,
            minutes_left: record.card.minutes_left,
            effective_at_us: record.card.effective_at_us,
            expires_at_us: record.card.expires_at_us,
            state: record.card.state_at(now),
            note: record.note,
            created_at_us: record.created_at_us,
        }
    }
}

impl Services {
    /// Issues a card. Its minutes cover the holder's per-minute calls from
    /// `effective_at_us` until its expiry; a holder may have at most
    /// [`TIME_CARDS_USABLE_MAX`] cards that can still cover something.
    pub async fn issue_time_card(&self, tenant: &Tenant, card: NewTimeCard, change: &Change) -> ServiceResult<TimeCard> {
        let invalid = |field: &'static str, reason: String| Err(ServiceError::Invalid { field, reason });
        let Ok(name) = parse_display_name(&card.name, TIME_CARD_NAME_CHARS_MAX) else {
            return invalid("name", format!("1 to {TIME_CARD_NAME_CHARS_MAX} characters without control characters"));
        };
        let note = card.note.trim();
        if note.chars().count() > TIME_CARD_NOTE_CHARS_MAX || note.chars().any(|c| c.is_control() && c != '\n') {
            return invalid("note", format!("at most {TIME_CARD_NOTE_CHARS_MAX} characters"));
        }
        if !(1..=CARD_MINUTES_MAX).contains(&card.minutes) {
            return invalid("minutes", format!("a card holds 1 to {CARD_MINUTES_MAX} minutes"));
        }
        let now = now_us();
        let effective_at_us = card.effective_at_us.unwrap_or(now);
        let expires_at_us = match card.expires {
            CardExpiry::At(at) => at,
            CardExpiry::EndOf(day) => subledger_domain::calendar::to_unix_micros(tenant.timezone.start_of_day(day.next())),
        };
        // An expiry in the past is allowed: usage of the past may still be reported (late usage).
        if expires_at_us <= effective_at_us {
            return invalid("expires", "a card expires after it takes effect".to_owned());
        }
        let mut tx = self.store.begin_write().await?;
        // The tenant row lock keeps the count below its limit until commit (PostgreSQL).
        store_tenants::lock(&mut tx, tenant.id).await?.ok_or(ServiceError::NotFound(Resource::Tenant))?;
        let holder = match card.account {
            Some(account) => Some(store_accounts::username_of(&self.store, tenant.id, account).await?.ok_or(ServiceError::NotFound(Resource::Account))?),
            None => None,
        };
        if store_cards::count_usable(&mut tx, tenant.id, card.account, now).await? >= TIME_CARDS_USABLE_MAX {
            return invalid("account", format!("a holder has at most {TIME_CARDS_USABLE_MAX} cards that can still cover calls"));
        }
        let stored = StoredCard { tenant: tenant.id, account: card.account, name: &name, minutes: card.minutes, effective_at_us, expires_at_us, note, now_us: now };
        let id = store_cards::insert(&mut tx, &stored).await?;
        let detail = format!("{} min, {} – {}{}", card.minutes, from_unix_micros(effective_at_us), from_unix_micros(expires_at_us), holder.map(|h| format!(", {h}")).unwrap_or_default());
        change.commit(tx, tenant.id, Operation::new(OperationKind::TimeCardIssue, name.as_str()).with_detail(detail)).await?;
        Ok(TimeCard {
            id,
            name,
            account: card.account,
            minutes_total: card.minutes,
            minutes_left: card.minutes,
            effective_at_us,
            expires_at_us,
            state: if effective_at_us > now { CardState::Pending } else { CardState::Valid },
            note: note.to_owned(),
            created_at_us: now,
        })
    }

    /// A page of the tenant's cards, by id, and how many there are: all of
    /// them, or with `account` those that can cover it (its own and the shared ones).
    pub async fn time_cards(&self, tenant: &Tenant, account: Option<AccountId>, page: Page) -> ServiceResult<(i64, Vec<TimeCard>)> {
        let now = now_us();
        let (total, records) = store_cards::list(&self.store, tenant.id, account, page.offset, page.limit.clamp(0, TIME_CARD_PAGE_MAX)).await?;
        Ok((total, records.into_iter().map(|r| TimeCard::of(r, now)).collect()))
    }

    /// Cancels a card: it covers nothing more (minutes already used stay
    /// used). Cancelling a cancelled card changes nothing but is logged.
    pub async fn cancel_time_card(&self, tenant: &Tenant, id: TimeCardId, change: &Change) -> ServiceResult<TimeCard> {
        let now = now_us();
        let mut tx = self.store.begin_write().await?;
        let record = store_cards::cancel(&mut tx, tenant.id, id, now).await?.ok_or(ServiceError::NotFound(Resource::TimeCard))?;
        change.commit(tx, tenant.id, Operation::new(OperationKind::TimeCardCancel, record.name.as_str()).with_detail(format!("#{id}, {} min left", record.card.minutes_left))).await?;
        Ok(TimeCard::of(record, now))
    }
}
