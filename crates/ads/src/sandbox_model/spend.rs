//! Spend: each ad account accrues spend continuously at a seeded daily rate,
//! never past its spend cap, and only while it is active.
//!
//! An account's history is a sequence of [`Segment`]s, one per write (a cap
//! change or a reset): from its instant on, the account spends under its cap,
//! having spent so much since its last reset and so much in its life. The
//! first segment (never stored) starts at the account's creation with a cap
//! of [`RESET_SPEND_CAP_CENTS`]. Within a segment, spend at instant `t` is
//! what the account accrued since the segment began, added to what it had
//! spent then, capped: an exact integer function of `t`.
//!
//! Accrual is cut in days of the account's time zone: day `d` has a rate of
//! `rate(d)` cents, accrued linearly over the day's length (23, 24 or 25
//! hours), floored to whole cents. What accrued up to `t` is the sum of the
//! rates of the whole days before `t`'s day plus that floored share of it.

use std::sync::LazyLock;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::draw::{Draw, about};
use crate::RESET_SPEND_CAP_CENTS;

/// A day in microseconds (of UTC; local days vary).
pub const DAY_US: i64 = 86_400_000_000;

/// The time zones ad accounts are requested in: Meta's `timezone_id`, the
/// zone's name, and how often it is chosen (per mille).
const ZONES: [(i64, &str, u32); 5] = [(42, "Asia/Shanghai", 450), (1, "America/Los_Angeles", 380), (7, "America/New_York", 100), (8, "Asia/Dubai", 40), (47, "Europe/Berlin", 30)];

static TIME_ZONES: LazyLock<Vec<TimeZone>> = LazyLock::new(|| ZONES.iter().map(|(_, name, _)| TimeZone::get(name).unwrap_or(TimeZone::UTC)).collect());

/// An ad account's time zone, in which its days (insights, spend rates) are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(usize);

impl Zone {
    pub(crate) fn draw(draw: &mut Draw) -> Zone {
        let weights: Vec<u32> = ZONES.iter().map(|(_, _, w)| *w).collect();
        Zone(draw.weighted(&weights))
    }

    /// Meta's `timezone_id`.
    pub fn timezone_id(self) -> i64 {
        ZONES[self.0].0
    }

    /// The IANA name (Meta's `timezone_name`).
    pub fn name(self) -> &'static str {
        ZONES[self.0].1
    }

    fn time_zone(self) -> &'static TimeZone {
        &TIME_ZONES[self.0]
    }

    /// The local day (days since 1970-01-01) of an instant.
    pub fn local_day(self, at_us: i64) -> i64 {
        match Timestamp::from_microsecond(at_us) {
            Ok(timestamp) => day_number(self.time_zone().to_datetime(timestamp).date()),
            Err(_) => at_us.div_euclid(DAY_US),
        }
    }

    /// The first instant of a local day.
    pub fn day_start_us(self, day: i64) -> i64 {
        date_of_day(day).and_then(|date| date.to_zoned(self.time_zone().clone()).ok()).map_or(day * DAY_US, |start| start.timestamp().as_microsecond())
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn day_number(date: Date) -> i64 {
    let (month, day) = (i64::from(date.month()), i64::from(date.day()));
    let year = i64::from(date.year()) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date of a day number; `None` outside the years jiff knows.
pub fn date_of_day(day: i64) -> Option<Date> {
    let shifted = day.checked_add(719_468)?;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    Date::new(i16::try_from(year).ok()?, month as i8, day as i8).ok()
}

/// An account's spend from an instant on: what it had spent (since its last
/// reset, and in its life) at `at_us`, and the cap it spends under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Writes so far: 0 for the first segment, which is never written.
    pub seq: i64,
    pub at_us: i64,
    /// The local day of `at_us`.
    pub local_day: i64,
    pub cap_cents: i64,
    /// At `at_us`, since the last reset; at most `cap_cents`.
    pub amount_spent_cents: i64,
    /// At `at_us`, in the account's life.
    pub lifetime_spent_cents: i64,
}

/// What an account has spent at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// Since the last reset (Graph's `amount_spent`).
    pub amount_spent_cents: i64,
    /// In the account's life (the sum of its daily insights' `spend`).
    pub lifetime_spent_cents: i64,
}

/// Weekday factors of the daily rate, Monday first (per mille): shoppers buy
/// more at the weekend.
const WEEKDAY_PER_MILLE: [i64; 7] = [960, 980, 1000, 1020, 1060, 1120, 1080];

/// How an account spends: where, since when, until when, how fast.
#[derive(Debug, Clone)]
pub(crate) struct Spender {
    pub zone: Zone,
    pub created_us: i64,
    /// When it was disabled: it spends nothing after.
    pub stops_us: Option<i64>,
    /// Its average daily rate, in cents.
    pub base_cents_per_day: i64,
    seed: u64,
    key: u64,
}

impl Spender {
    pub(crate) fn new(seed: u64, key: u64, zone: Zone, created_us: i64, stops_us: Option<i64>, base_cents_per_day: i64) -> Spender {
        Spender { zone, created_us, stops_us, base_cents_per_day, seed, key }
    }

    /// The rate of one local day, in cents: the base rate, the weekday's
    /// factor, and a seeded factor of the day between 0.75 and 1.25.
    pub(crate) fn rate_cents(&self, day: i64) -> i64 {
        let noise = Draw::new(self.seed, &[about::SPEND_DAY, self.key, day as u64]).between(750, 1_250);
        let weekday = WEEKDAY_PER_MILLE[(day + 3).rem_euclid(7) as usize];
        (i128::from(self.base_cents_per_day) * i128::from(weekday) * i128::from(noise) / 1_000_000) as i64
    }

    /// The account's first segment: created with a cap of one cent.
    pub(crate) fn first_segment(&self) -> Segment {
        Segment { seq: 0, at_us: self.created_us, local_day: self.zone.local_day(self.created_us), cap_cents: RESET_SPEND_CAP_CENTS, amount_spent_cents: 0, lifetime_spent_cents: 0 }
    }

    /// Accrual up to the end of `last_day` (and a little past), with the
    /// rates summed once.
    pub(crate) fn accrual(&self, last_day: i64) -> Accrual<'_> {
        let first_day = self.zone.local_day(self.created_us);
        let mut prefix = Vec::with_capacity((last_day - first_day + 2).clamp(1, 100_000) as usize);
        let mut sum = 0i64;
        prefix.push(0);
        for day in first_day..=last_day {
            sum = sum.saturating_add(self.rate_cents(day));
            prefix.push(sum);
        }
        Accrual { spender: self, first_day, prefix }
    }

    /// What the account has spent at `at_us` in `segment` (the segment in
    /// force then). Before the segment's instant, what it had spent at it.
    pub(crate) fn spent_at(&self, accrual: &Accrual<'_>, segment: &Segment, at_us: i64) -> Spent {
        let at_us = at_us.max(segment.at_us);
        let accrued = (accrual.at(at_us) - accrual.at(segment.at_us)).max(0);
        let amount = segment.amount_spent_cents.saturating_add(accrued).min(segment.cap_cents).max(segment.amount_spent_cents);
        Spent { amount_spent_cents: amount, lifetime_spent_cents: segment.lifetime_spent_cents + (amount - segment.amount_spent_cents) }
    }
}

/// An account's raw accrual (spend with no cap) since the start of its first
/// local day, at any instant: rates summed per day, the last day's share floored.
pub(crate) struct Accrual<'s> {
    spender: &'s Spender,
    first_day: i64,
    /// `prefix[i]`: accrued at the start of day `first_day + i`.
    prefix: Vec<i64>,
}

impl Accrual<'_> {
    /// Accrued at the start of a local day (from the account's first day).
    pub(crate) fn at_day_start(&self, day: i64) -> i64 {
        let index = (day - self.first_day).max(0) as usize;
        match self.prefix.get(index) {
            Some(accrued) => *accrued,
            None => {
                let last = self.prefix.len() - 1;
                ((self.first_day + last as i64)..day).fold(self.prefix[last], |sum, d| sum.saturating_add(self.spender.rate_cents(d)))
            }
        }
    }

    /// Accrued at an instant, counting only while the account is active
    /// (from its creation until it is disabled).
    pub(crate) fn at(&self, at_us: i64) -> i64 {
        let at_us = at_us.max(self.spender.created_us).min(self.spender.stops_us.unwrap_or(i64::MAX));
        let zone = self.spender.zone;
        let day = zone.local_day(at_us);
        let start = zone.day_start_us(day);
        let length = (zone.day_start_us(day + 1) - start).max(1);
        let share = i128::from(self.spender.rate_cents(day)) * i128::from(at_us - start) / i128::from(length);
        self.at_day_start(day).saturating_add(share as i64)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn day_numbers_agree_with_jiff(day in -100_000i64..200_000) {
            let date = date_of_day(day).unwrap();
            prop_assert_eq!(day_number(date), day);
            let epoch = Date::constant(1970, 1, 1);
            prop_assert_eq!(i64::from(epoch.until(date).unwrap().get_days()), day);
        }
    }

    #[test]
    fn local_days_are_cut_in_the_account_s_zone() {
        let shanghai = Zone(0);
        let los_angeles = Zone(1);
        assert_eq!((shanghai.name(), shanghai.timezone_id()), ("Asia/Shanghai", 42));
        // 2024-03-10 is 23 hours long in Los Angeles (daylight saving starts).
        let day = day_number(Date::constant(2024, 3, 10));
        assert_eq!(los_angeles.day_start_us(day + 1) - los_angeles.day_start_us(day), 23 * 3_600_000_000);
        assert_eq!(shanghai.day_start_us(day + 1) - shanghai.day_start_us(day), DAY_US);
        // Midnight in Shanghai is 16:00 UTC the day before.
        let start = shanghai.day_start_us(day);
        assert_eq!(start, (day * DAY_US) - 8 * 3_600_000_000);
        assert_eq!(shanghai.local_day(start), day);
        assert_eq!(shanghai.local_day(start - 1), day - 1);
    }

    #[test]
    fn accrual_is_monotone_and_whole_days_sum_their_rates() {
        let created = 1_700_000_000_000_000;
        let spender = Spender::new(9, 1, Zone(1), created, None, 20_000);
        let first = spender.zone.local_day(created);
        let accrual = spender.accrual(first + 40);
        let mut last = accrual.at(created);
        for hour in 0..(40 * 24) {
            let now = accrual.at(created + hour * 3_600_000_000);
            assert!(now >= last);
            last = now;
        }
        for day in first + 1..first + 40 {
            let start = spender.zone.day_start_us(day);
            assert_eq!(accrual.at(start), accrual.at_day_start(day));
            assert_eq!(accrual.at_day_start(day + 1) - accrual.at_day_start(day), spender.rate_cents(day));
        }
        // Past the table, the sum goes on.
        assert_eq!(accrual.at_day_start(first + 45) - accrual.at_day_start(first + 44), spender.rate_cents(first + 44));
    }

    #[test]
    fn rates_stay_near_the_base() {
        let spender = Spender::new(1, 2, Zone(0), 0, None, 10_000);
        for day in 0..1_000 {
            let rate = spender.rate_cents(day);
            assert!((7_000..=14_000).contains(&rate), "{rate}");
        }
    }
}
