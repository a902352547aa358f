//! Monthly fees of seats (function fees, rentals, the seat itself) and the
//! per-day projections of UUCall's basic and function bills. Pure.
//!
//! - **Pro-rated by day.** A subscription pays for the days of the month it
//!   is in force on, in the tenant's calendar: a day counts when the
//!   subscription is in force at any instant of it. A line's money is
//!   `price × days / days in the month`, rounded half-up to the cent once
//!   per line ([`prorated_cents`]): a seat added on the 16th of a 30-day
//!   month pays 15/30 of its price, a whole month the whole price.
//! - **Days of a month.** A line spread over its days ([`apportion`]) and a
//!   product's rated usage cut by day ([`telescope`]) are rounded on their
//!   running totals, so the days of a month add up to the line to the cent.

use crate::billing::{BillLine, LineKind, LineProduct};
use crate::calendar::{Day, Month, TenantTimeZone, to_unix_micros};
use crate::decimal::div_round_half_up;
use crate::money::AmountTooLarge;
use crate::rating::{DetailLine, MICROS_PER_CENT, Quantity, UnitPrice, micros_to_cents};

/// When a subscription is in force: from an instant until another
/// (`None`: until further notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from_us: i64,
    pub until_us: Option<i64>,
}

/// The days of `month` (in the tenant's zone) on which any of `periods` is in
/// force for some instant, in order, each once.
pub fn subscribed_days(timezone: &TenantTimeZone, month: Month, periods: &[Period]) -> Vec<Day> {
    let mut days = Vec::new();
    let mut day = month.first_day();
    while day.month() == month {
        let start = to_unix_micros(timezone.start_of_day(day));
        let end = to_unix_micros(timezone.start_of_day(day.next()));
        if periods.iter().any(|p| p.from_us < end && p.until_us.is_none_or(|until| until > start)) {
            days.push(day);
        }
        day = day.next();
    }
    days
}

/// The number of days of `month`.
pub fn days_in_month(month: Month) -> i64 {
    i64::from(month.first_day().0.days_in_month())
}

/// A month's price pro-rated to `days` of `month_days`, rounded half-up to
/// the cent once. At most the whole price (rounded).
pub fn prorated_cents(price: UnitPrice, days: i64, month_days: i64) -> i64 {
    assert!(month_days > 0 && (0..=month_days).contains(&days), "a month has 28 to 31 days");
    // price ≤ 10^12 micros, days ≤ 31: no overflow in i128.
    i64::try_from(div_round_half_up(i128::from(price.micros()) * i128::from(days), i128::from(month_days) * i128::from(MICROS_PER_CENT))).expect("at most the price")
}

/// The bill line of a monthly fee: `product` for `days` of `month` at `price`
/// a month; `None` when no day of the month is subscribed. Its quantity is
/// 1 (one subscription), its detail the days paid for.
pub fn fee_line(product: &LineProduct, month: Month, days: &[Day], price: UnitPrice) -> Result<Option<BillLine>, AmountTooLarge> {
    if days.is_empty() {
        return Ok(None);
    }
    let month_days = days_in_month(month);
    let count = i64::try_from(days.len()).map_err(|_| AmountTooLarge("a month's days"))?;
    let money_cents = prorated_cents(price, count, month_days);
    let money_micros = money_cents.checked_mul(MICROS_PER_CENT).ok_or(AmountTooLarge("a monthly fee"))?;
    Ok(Some(BillLine {
        kind: LineKind::Usage,
        product_code: product.code.clone(),
        currency: product.currency,
        order_type: product.order_type,
        description: product.name.clone(),
        unit: product.unit.clone(),
        for_month: month.to_string(),
        quantity: Quantity::units(1).expect("one"),
        card: Quantity::default(),
        money_micros,
        money_cents,
        previous: None,
        detail: vec![DetailLine::Subscription { periods: runs(days), days: count, month_days, price, money_micros }],
    }))
}

/// Consecutive days as (first, last) runs.
fn runs(days: &[Day]) -> Vec<(String, String)> {
    let mut runs: Vec<(Day, Day)> = Vec::new();
    for day in days {
        match runs.last_mut() {
            Some((_, last)) if last.next() == *day => *last = *day,
            _ => runs.push((*day, *day)),
        }
    }
    runs.into_iter().map(|(first, last)| (first.to_string(), last.to_string())).collect()
}

/// The days of a line's `periods` detail (first and last day of each run).
pub fn days_of_runs(periods: &[(String, String)]) -> Option<Vec<Day>> {
    let mut days = Vec::new();
    for (first, last) in periods {
        let (mut day, last): (Day, Day) = (Day(first.parse().ok()?), Day(last.parse().ok()?));
        while day <= last {
            days.push(day);
            day = day.next();
        }
    }
    Some(days)
}

/// `total_cents` spread over `n` days: day `k` (from 1) gets
/// `round(total × k / n) − round(total × (k − 1) / n)`, so the days add up to
/// the total exactly and differ from each other by at most a cent.
pub fn apportion(total_cents: i64, n: usize) -> Vec<i64> {
    let n = i128::try_from(n).expect("a count of days");
    let running = |k: i128| if n == 0 { 0 } else { i64::try_from(div_round_half_up(i128::from(total_cents) * k, n)).expect("within the total") };
    (1..=n).map(|k| running(k) - running(k - 1)).collect()
}

/// Cents per day of a product's rated usage (`micros` per day, in order):
/// the running total rounded, minus the running total before, so the days
/// add up to the month's rated amount rounded once (its bill line, for a
/// product priced per event).
pub fn telescope(micros: &[i64]) -> Result<Vec<i64>, AmountTooLarge> {
    let mut cents = Vec::with_capacity(micros.len());
    let mut running: i64 = 0;
    for amount in micros {
        let after = running.checked_add(*amount).ok_or(AmountTooLarge("a month's usage"))?;
        cents.push(micros_to_cents(after) - micros_to_cents(running));
        running = after;
    }
    Ok(cents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use proptest::prelude::*;

    fn shanghai() -> TenantTimeZone {
        TenantTimeZone::parse("Asia/Shanghai").unwrap()
    }

    fn at(text: &str) -> i64 {
        crate::calendar::parse_instant_us(text).unwrap()
    }

    fn price(text: &str) -> UnitPrice {
        UnitPrice::parse(text).unwrap()
    }

    #[test]
    fn pro_rating_rounds_half_up_once_per_line() {
        // 100.00 for 15 of 30 days: 50.00; 10 of 31 days: 32.258… → 32.26.
        assert_eq!(prorated_cents(price("100"), 15, 30), 5_000);
        assert_eq!(prorated_cents(price("100"), 10, 31), 3_226);
        assert_eq!(prorated_cents(price("100"), 31, 31), 10_000);
        assert_eq!(prorated_cents(price("100"), 0, 31), 0);
        // 0.31 for 1 of 31 days is exactly a cent; 0.155 for 1 of 31 is half a cent: up.
        assert_eq!(prorated_cents(price("0.31"), 1, 31), 1);
        assert_eq!(prorated_cents(price("0.155"), 1, 31), 1);
        assert_eq!(prorated_cents(price("0.154"), 1, 31), 0);
        // Rounded once on the exact fraction, never through micros first:
        // 29.999 / 30 × 1 = 0.99996… → 1.00, and 0.0149985 of a yuan → 0.01.
        assert_eq!(prorated_cents(price("29.999"), 1, 30), 100);
        assert_eq!(prorated_cents(price("0.449955"), 1, 30), 1);
    }

    #[test]
    fn days_are_cut_in_the_tenants_zone() {
        let tz = shanghai();
        let march = Month::new(2026, 3).unwrap();
        // From 16:00 UTC on 15 March = 00:00 on the 16th in Shanghai: 16 days.
        let days = subscribed_days(&tz, march, &[Period { from_us: at("2026-03-15T16:00:00Z"), until_us: None }]);
        assert_eq!(days.len(), 16);
        assert_eq!(days[0].to_string(), "2026-03-16");
        // One microsecond earlier is still the 15th there: 17 days.
        assert_eq!(subscribed_days(&tz, march, &[Period { from_us: at("2026-03-15T16:00:00Z") - 1, until_us: None }]).len(), 17);
        // Ended at midnight of the 11th (Shanghai): the 1st to the 10th.
        let ended = subscribed_days(&tz, march, &[Period { from_us: at("2026-01-01T00:00:00Z"), until_us: Some(at("2026-03-10T16:00:00Z")) }]);
        assert_eq!(ended.len(), 10);
        // Two periods on the same day count it once.
        let twice = [
            Period { from_us: at("2026-03-01T00:00:00+08:00"), until_us: Some(at("2026-03-01T10:00:00+08:00")) },
            Period { from_us: at("2026-03-01T12:00:00+08:00"), until_us: Some(at("2026-03-02T00:00:00+08:00")) },
        ];
        assert_eq!(subscribed_days(&tz, march, &twice).len(), 1);
        assert_eq!(days_in_month(Month::new(2028, 2).unwrap()), 29);
    }

    #[test]
    fn a_fee_line_shows_its_days() {
        let product = LineProduct {
            code: "recording".into(),
            order_type: 70,
            name: "通话录音".into(),
            unit: "个".into(),
            currency: Currency::Cny,
            supplement_order_type: 15,
            supplement_name: "人工补扣".into(),
            refund_order_type: None,
        };
        let tz = shanghai();
        let april = Month::new(2026, 4).unwrap();
        let days = subscribed_days(&tz, april, &[Period { from_us: at("2026-04-21T09:00:00+08:00"), until_us: None }]);
        let line = fee_line(&product, april, &days, price("30.00")).unwrap().unwrap();
        // 10 of 30 days of 30.00: 10.00.
        assert_eq!((line.money_cents, line.quantity.milli()), (1_000, 1_000));
        let DetailLine::Subscription { periods, days: count, month_days, .. } = &line.detail[0] else { panic!("{:?}", line.detail) };
        assert_eq!((periods.as_slice(), *count, *month_days), ([("2026-04-21".to_owned(), "2026-04-30".to_owned())].as_slice(), 10, 30));
        assert_eq!(days_of_runs(periods).unwrap(), days);
        assert!(fee_line(&product, april, &[], price("30.00")).unwrap().is_none());
    }

    #[test]
    fn spreading_and_telescoping_add_up() {
        assert_eq!(apportion(1_000, 3), [333, 334, 333]);
        assert_eq!(apportion(0, 3), [0, 0, 0]);
        assert!(apportion(5, 0).is_empty());
        // Ten messages at 0.033 on ten days: 3, 4, 3, 3, 4, 3, 3, 3, 4, 3 cents = 0.33.
        let days = telescope(&[33_000; 10]).unwrap();
        assert_eq!(days.iter().sum::<i64>(), 33);
        assert!(telescope(&[i64::MAX, 1]).is_err());
    }

    proptest! {
        #[test]
        fn apportioned_days_add_up_to_the_line(total in -1_000_000i64..1_000_000_000, n in 1usize..32) {
            let days = apportion(total, n);
            prop_assert_eq!(days.len(), n);
            prop_assert_eq!(days.iter().sum::<i64>(), total);
            let (lo, hi) = (days.iter().min().unwrap(), days.iter().max().unwrap());
            prop_assert!(hi - lo <= 1);
        }

        #[test]
        fn telescoped_days_add_up_to_the_month_rounded_once(micros in proptest::collection::vec(0i64..10_000_000_000, 0..31)) {
            let days = telescope(&micros).unwrap();
            prop_assert_eq!(days.iter().sum::<i64>(), micros_to_cents(micros.iter().sum()));
        }

        #[test]
        fn a_whole_month_costs_the_price_and_days_never_more(price_micros in 0i64..1_000_000_000_000, month_days in 28i64..=31, days in 0i64..=31) {
            let price = UnitPrice::from_micros(price_micros).unwrap();
            prop_assert_eq!(prorated_cents(price, month_days, month_days), micros_to_cents(price_micros));
            let days = days.min(month_days);
            prop_assert!(prorated_cents(price, days, month_days) <= prorated_cents(price, month_days, month_days));
        }
    }
}
