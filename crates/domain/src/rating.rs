//! Rating: what usage costs under a tariff. Pure, exact, and tested against
//! the examples of the specs.
//!
//! Units:
//! - a [`Quantity`] is an integer of thousandths of the product's unit
//!   (1 e-mail = 1,000; 68,913.63 MB = 68,913,630);
//! - a [`UnitPrice`] is an integer of millionths of a currency unit per unit
//!   (0.033 yuan per message = 33,000);
//! - a rated amount is an integer of millionths of a currency unit
//!   ("micros"), rounded half-up to cents ([`micros_to_cents`]) only for
//!   charges, line totals and balances.
//!
//! Every model defines the exact cost of a month's usage. Real-time charges
//! are the increase of that cost that each event causes, so the sum of an
//! account's real-time charges for a month is that exact cost.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decimal::{ScaledError, div_round_half_up};
use crate::money::{AMOUNT_MINOR_MAX, AmountTooLarge, checked_sum};

/// Millionths of a currency unit per cent.
pub const MICROS_PER_CENT: i64 = 10_000;
/// Thousandths per whole unit of quantity.
pub const MILLI: i64 = 1_000;
/// Largest quantity one event may carry: 10^12 units.
pub const QUANTITY_MILLI_MAX: i64 = 1_000_000_000_000_000;
/// Largest unit price: 10^6 currency units per unit.
pub const PRICE_MICROS_MAX: i64 = 1_000_000_000_000;

// The limits of one month, per (account, product, month). One event at the
// largest quantity and price would cost 10^24 micros, far past `i64`; rating
// refuses whatever passes these limits (`amount_too_large`) instead of
// saturating or wrapping, and they are chosen so that every sum the code
// makes over stored rollups, bill lines and settlements stays within `i64`:
//
// - Rollup rows (`usage_daily`, `usage_monthly`) of one (account, product,
//   month) add up, over days and grouping values, to the month's totals,
//   which these limits bound. Every `SUM` within one month (the daily view,
//   the telephony month per product, what earlier bills counted for a month)
//   is therefore within them too.
// - The month's cost in cents is at most 10^13, so it fits one ledger
//   transfer a hundred times over ([`AMOUNT_MINOR_MAX`] is 10^15).
// - The close adds running totals per (account, product) over every month
//   ever billed (`SUM` of `bill_lines.money_cents`, `usage_monthly.charged_cents`
//   and `settlements.amount_cents`): each line is at most one month's cents,
//   so `i64` holds 922,337 of them, a usage line and fourteen supplements a
//   month (late usage is accepted for 400 days) for over 5,000 years.
// - Sums over several products (a bill's total, a day over every product) are
//   made with checked or wide arithmetic in the service and refused if they
//   do not fit.

/// Largest exact cost of one (account, product, month), in micros: 10^17,
/// which is 10^11 currency units or 10^13 cents.
pub const MONTH_MICROS_MAX: i64 = 100_000_000_000_000_000;
/// Largest quantity, raw or billable, of one (account, product, month), in
/// thousandths: as much as one event may carry, so a month's total is itself
/// a [`Quantity`] and the engine rates it without a wider type.
pub const MONTH_QUANTITY_MILLI_MAX: i64 = QUANTITY_MILLI_MAX;
/// Largest cents of one (account, product, month): [`MONTH_MICROS_MAX`] in cents.
pub const MONTH_CENTS_MAX: i64 = MONTH_MICROS_MAX / MICROS_PER_CENT;
const _: () = assert!(MONTH_CENTS_MAX <= AMOUNT_MINOR_MAX / 100, "a month's cost fits one transfer with room to spare");

/// A non-negative quantity with three decimals, in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(i64);

/// A non-negative unit price with up to six decimals, in millionths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnitPrice(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("{0} must be a plain non-negative decimal number")]
    Malformed(&'static str),
    #[error("{what} has more than {places} decimal places")]
    TooPrecise { what: &'static str, places: u32 },
    #[error("{0} is too large")]
    TooLarge(&'static str),
}

/// Reads a plain non-negative decimal scaled by 10^`places` ([`crate::decimal::parse_scaled`]),
/// refused as `what`.
fn parse_scaled(text: &str, places: u32, max: i64, what: &'static str) -> Result<i64, DecimalError> {
    crate::decimal::parse_scaled(text, places, max).map_err(|error| match error {
        ScaledError::Malformed => DecimalError::Malformed(what),
        ScaledError::TooPrecise => DecimalError::TooPrecise { what, places },
        ScaledError::TooLarge => DecimalError::TooLarge(what),
    })
}

/// Renders an integer scaled by 10^`places` as a decimal without trailing zeros.
pub fn format_scaled(value: i64, places: u32) -> String {
    let scale = 10i64.pow(places);
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    let whole = magnitude / scale as u64;
    let fraction = magnitude % scale as u64;
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let fraction = format!("{fraction:0width$}", width = places as usize);
    format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    pub fn from_milli(milli: i64) -> Option<Quantity> {
        (0..=QUANTITY_MILLI_MAX).contains(&milli).then_some(Quantity(milli))
    }

    /// Whole units, if they fit [`QUANTITY_MILLI_MAX`].
    pub fn units(units: i64) -> Option<Quantity> {
        units.checked_mul(MILLI).and_then(Quantity::from_milli)
    }

    /// The sum of two quantities, if it fits [`QUANTITY_MILLI_MAX`].
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0).and_then(Quantity::from_milli)
    }

    pub fn parse(text: &str) -> Result<Quantity, DecimalError> {
        parse_scaled(text, 3, QUANTITY_MILLI_MAX, "quantity").map(Quantity)
    }

    pub fn milli(self) -> i64 {
        self.0
    }

    /// Whole units, rounded up (a started unit counts).
    pub fn units_rounded_up(self) -> i64 {
        (self.0 + MILLI - 1) / MILLI
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_scaled(self.0, 3))
    }
}

impl UnitPrice {
    pub fn from_micros(micros: i64) -> Option<UnitPrice> {
        (0..=PRICE_MICROS_MAX).contains(&micros).then_some(UnitPrice(micros))
    }

    pub fn parse(text: &str) -> Result<UnitPrice, DecimalError> {
        parse_scaled(text, 6, PRICE_MICROS_MAX, "price").map(UnitPrice)
    }

    pub fn micros(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UnitPrice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_scaled(self.0, 6))
    }
}

macro_rules! decimal_serde {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            /// From a decimal string (`"0.033"`) or a JSON number written the same way.
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = DecimalText::deserialize(deserializer)?;
                $name::parse(&text.0).map_err(serde::de::Error::custom)
            }
        }
    };
}

decimal_serde!(Quantity);
decimal_serde!(UnitPrice);

/// A decimal as written in JSON, string or number, without going through a float.
struct DecimalText(String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DecimalText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number or a string holding one")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, _v: f64) -> Result<DecimalText, E> {
                Err(E::custom("write fractional numbers as strings, e.g. \"0.033\", so that no float rounding touches them"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `quantity × price` in micros, exactly, or [`AmountTooLarge`] past `i64`.
pub fn amount_micros(quantity: Quantity, price: UnitPrice) -> Result<i64, AmountTooLarge> {
    // At most 10^15 × 10^12: wide enough in i128.
    let exact = i128::from(quantity.milli()) * i128::from(price.micros()) / i128::from(MILLI);
    // Sub-micro remainders cannot arise with three-decimal quantities and
    // six-decimal prices except below a millionth of a cent; truncate them.
    i64::try_from(exact).map_err(|_| AmountTooLarge("an amount"))
}

/// Rounds micros half-up (away from zero at .5) to cents.
fn round_to_cents(micros: i128) -> i128 {
    div_round_half_up(micros, i128::from(MICROS_PER_CENT))
}

/// Rounds micros half-up (away from zero at .5) to cents. Total: any `i64`
/// of micros is ten thousand times fewer cents.
pub fn micros_to_cents(micros: i64) -> i64 {
    i64::try_from(round_to_cents(i128::from(micros))).expect("cents of i64 micros fit i64")
}

/// The sum of several amounts of micros, rounded to cents once (a day over
/// every product). Summed in i128, so only cents past `i64` are refused.
pub fn sum_to_cents(micros: impl IntoIterator<Item = i64>, what: &'static str) -> Result<i64, AmountTooLarge> {
    let total: i128 = micros.into_iter().map(i128::from).sum();
    i64::try_from(round_to_cents(total)).map_err(|_| AmountTooLarge(what))
}

/// One tier of a graduated price: the part of the month's quantity between
/// `min` and `max` costs either a flat fee (`unit` 0, charged once any of it
/// is used) or `price` per started block of `unit` items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub min: Quantity,
    /// `None`: unbounded.
    #[serde(default)]
    pub max: Option<Quantity>,
    /// Items per priced block; 0 makes the tier a flat fee.
    pub unit: Quantity,
    pub price: UnitPrice,
}

/// One country's price for a per-country model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountryPrice {
    pub country_id: i64,
    pub name: String,
    pub price: UnitPrice,
}

/// How a product is priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum PriceModel {
    /// Each event costs `price` per started `increment` of its quantity
    /// (calls per started minute: quantity in seconds, increment 60; messages:
    /// increment 1).
    PerUnit { price: UnitPrice, increment: Quantity },
    /// The month's total quantity is priced by consecutive tiers.
    Graduated { tiers: Vec<Tier> },
    /// Each event costs `price` of its country per unit; `default` for the rest.
    ByCountry {
        prices: Vec<CountryPrice>,
        #[serde(default)]
        default: Option<CountryPrice>,
    },
    /// `price` per distinct item (e.g. a dedicated IP) used in the month.
    Recurring { price: UnitPrice },
    /// The month's total beyond `free` costs `price` per unit.
    Allowance { free: Quantity, price: UnitPrice },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceModelError {
    #[error("a per-unit increment must be greater than zero")]
    ZeroIncrement,
    #[error("graduated tiers must start at 0, be contiguous (each min is the previous max) and only the last may be unbounded")]
    TierLayout,
    #[error("a graduated price needs at least one tier, and at most {0}")]
    TierCount(usize),
    #[error("a country appears twice")]
    DuplicateCountry,
    #[error("a per-country price needs at least one country, and at most {0}")]
    CountryCount(usize),
}

/// What the grouping attribute of an event means for its product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// No attribute matters for the price.
    None,
    /// The `country` attribute (a country id) picks the price.
    Country,
    /// The `item` attribute (e.g. an IP address) names what is rented.
    Item,
}

impl Grouping {
    /// The name used in the API, the CLI and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::None => "none",
            Grouping::Country => "country",
            Grouping::Item => "item",
        }
    }

    pub fn parse(text: &str) -> Option<Grouping> {
        [Grouping::None, Grouping::Country, Grouping::Item].into_iter().find(|g| g.as_str() == text)
    }
}

impl PriceModel {
    pub const TIERS_MAX: usize = 32;
    pub const COUNTRIES_MAX: usize = 400;

    /// Checks the model's own consistency.
    pub fn validate(&self) -> Result<(), PriceModelError> {
        match self {
            PriceModel::PerUnit { increment, .. } if increment.milli() == 0 => Err(PriceModelError::ZeroIncrement),
            PriceModel::Graduated { tiers } => {
                if tiers.is_empty() || tiers.len() > Self::TIERS_MAX {
                    return Err(PriceModelError::TierCount(Self::TIERS_MAX));
                }
                let mut expected_min = Quantity::ZERO;
                for (i, tier) in tiers.iter().enumerate() {
                    let last = i + 1 == tiers.len();
                    let bounded_ok = match tier.max {
                        Some(max) => max > tier.min,
                        None => last,
                    };
                    if tier.min != expected_min || !bounded_ok {
                        return Err(PriceModelError::TierLayout);
                    }
                    expected_min = tier.max.unwrap_or(Quantity::ZERO);
                }
                Ok(())
            }
            PriceModel::ByCountry { prices, .. } => {
                if prices.is_empty() || prices.len() > Self::COUNTRIES_MAX {
                    return Err(PriceModelError::CountryCount(Self::COUNTRIES_MAX));
                }
                let mut ids: Vec<i64> = prices.iter().map(|p| p.country_id).collect();
                ids.sort_unstable();
                if ids.windows(2).any(|w| w[0] == w[1]) {
                    return Err(PriceModelError::DuplicateCountry);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The grouping attribute this model needs.
    pub fn grouping(&self) -> Grouping {
        match self {
            PriceModel::ByCountry { .. } => Grouping::Country,
            PriceModel::Recurring { .. } => Grouping::Item,
            _ => Grouping::None,
        }
    }

    /// Whether the cost depends on the month's total (so it is settled on the
    /// total at close) rather than being a sum of per-event costs.
    pub fn is_monthly(&self) -> bool {
        matches!(self, PriceModel::Graduated { .. } | PriceModel::Recurring { .. } | PriceModel::Allowance { .. })
    }

    /// The price of one country (for [`PriceModel::ByCountry`]).
    pub fn country_price(&self, country_id: i64) -> Option<&CountryPrice> {
        match self {
            PriceModel::ByCountry { prices, default } => prices.iter().find(|p| p.country_id == country_id).or(default.as_ref()),
            _ => None,
        }
    }

    /// Billable quantity of one event: per-unit models round up to whole
    /// increments (in the increment's unit); others bill the quantity as is.
    /// An increment below one unit multiplies the quantity (0.001 per
    /// increment bills a thousand increments per unit), which may pass
    /// [`QUANTITY_MILLI_MAX`]: [`AmountTooLarge`].
    pub fn billable(&self, quantity: Quantity) -> Result<Quantity, AmountTooLarge> {
        match self {
            PriceModel::PerUnit { increment, .. } => {
                // A zero increment never passes `validate`; bill it as one thousandth rather than divide by zero.
                let increment = i128::from(increment.milli().max(1));
                let increments = (i128::from(quantity.milli()) + increment - 1) / increment;
                i64::try_from(increments * i128::from(MILLI)).ok().and_then(Quantity::from_milli).ok_or(AmountTooLarge("the billable quantity"))
            }
            _ => Ok(quantity),
        }
    }
}

/// A month's usage of one product, as the rollups keep it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthUsage {
    /// Total billable quantity.
    pub billable: Quantity,
    /// Billable quantity per country id (for per-country models).
    pub by_country: BTreeMap<i64, Quantity>,
    /// Distinct items used (for recurring models).
    pub items: Vec<String>,
}

/// One line of a rating's detail: what each part of the month costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DetailLine {
    Tier {
        level: usize,
        min: Quantity,
        max: Option<Quantity>,
        unit: Quantity,
        price: UnitPrice,
        count: Quantity,
        money_micros: i64,
    },
    Country {
        country_id: i64,
        name: String,
        price: UnitPrice,
        count: Quantity,
        money_micros: i64,
    },
    Item {
        item: String,
        price: UnitPrice,
        money_micros: i64,
    },
    Allowance {
        total: Quantity,
        free: Quantity,
        pay: Quantity,
        price: UnitPrice,
        money_micros: i64,
    },
    Units {
        count: Quantity,
        price: UnitPrice,
        money_micros: i64,
    },
    /// A monthly fee: `days` of the month's `month_days` subscribed, in
    /// `periods` (first and last day, both included), at `price` a month;
    /// `money_micros` is the pro-rated fee rounded once to the cent (see
    /// `seats::prorated_cents`).
    Subscription {
        periods: Vec<(String, String)>,
        days: i64,
        month_days: i64,
        price: UnitPrice,
        money_micros: i64,
    },
}

impl DetailLine {
    pub fn money_micros(&self) -> i64 {
        match self {
            DetailLine::Tier { money_micros, .. }
            | DetailLine::Country { money_micros, .. }
            | DetailLine::Item { money_micros, .. }
            | DetailLine::Allowance { money_micros, .. }
            | DetailLine::Units { money_micros, .. }
            | DetailLine::Subscription { money_micros, .. } => *money_micros,
        }
    }
}

/// The exact cost of a month's usage, with its breakdown. The total is the
/// sum of the detail lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthCost {
    pub total_micros: i64,
    pub detail: Vec<DetailLine>,
}

/// Count of a graduated tier: the part of `total` between its bounds.
fn tier_count(tier: &Tier, total: Quantity) -> Quantity {
    let upper = tier.max.map_or(total, |max| total.min(max));
    Quantity((upper.milli() - tier.min.milli()).max(0))
}

fn tier_money(tier: &Tier, count: Quantity) -> Result<i64, AmountTooLarge> {
    if count.milli() == 0 {
        return Ok(0);
    }
    if tier.unit.milli() == 0 {
        return Ok(tier.price.micros());
    }
    // At most 10^15 blocks × 10^12: wide enough in i128.
    let blocks = (i128::from(count.milli()) + i128::from(tier.unit.milli()) - 1) / i128::from(tier.unit.milli());
    i64::try_from(blocks * i128::from(tier.price.micros())).map_err(|_| AmountTooLarge("a tier's cost"))
}

/// Cost of the month's usage under a model, or [`AmountTooLarge`] when it
/// passes [`MONTH_MICROS_MAX`].
pub fn month_cost(model: &PriceModel, usage: &MonthUsage) -> Result<MonthCost, AmountTooLarge> {
    let detail: Vec<DetailLine> = match model {
        PriceModel::PerUnit { price, .. } => {
            vec![DetailLine::Units { count: usage.billable, price: *price, money_micros: amount_micros(usage.billable, *price)? }]
        }
        PriceModel::Graduated { tiers } => tiers
            .iter()
            .enumerate()
            .map(|(level, tier)| (level, tier, tier_count(tier, usage.billable)))
            .filter(|(_, _, count)| count.milli() > 0)
            .map(|(level, tier, count)| Ok(DetailLine::Tier { level, min: tier.min, max: tier.max, unit: tier.unit, price: tier.price, count, money_micros: tier_money(tier, count)? }))
            .collect::<Result<_, AmountTooLarge>>()?,
        PriceModel::ByCountry { .. } => usage
            .by_country
            .iter()
            .map(|(country_id, count)| {
                Ok(match model.country_price(*country_id) {
                    Some(price) => DetailLine::Country { country_id: *country_id, name: price.name.clone(), price: price.price, count: *count, money_micros: amount_micros(*count, price.price)? },
                    // Usage of a country the tariff no longer prices: free, but shown.
                    None => DetailLine::Country { country_id: *country_id, name: String::new(), price: UnitPrice(0), count: *count, money_micros: 0 },
                })
            })
            .collect::<Result<_, AmountTooLarge>>()?,
        PriceModel::Recurring { price } => usage.items.iter().map(|item| DetailLine::Item { item: item.clone(), price: *price, money_micros: price.micros() }).collect(),
        PriceModel::Allowance { free, price } => {
            let pay = Quantity((usage.billable.milli() - free.milli()).max(0));
            vec![DetailLine::Allowance { total: usage.billable, free: *free, pay, price: *price, money_micros: amount_micros(pay, *price)? }]
        }
    };
    let total_micros = checked_sum(detail.iter().map(DetailLine::money_micros), "a month's cost")?;
    if total_micros > MONTH_MICROS_MAX {
        return Err(AmountTooLarge("a month's cost"));
    }
    Ok(MonthCost { total_micros, detail })
}

/// What one event adds to the month's cost: the cost with it minus the cost
/// without it. `before` is the month-to-date usage (not including the event).
/// [`AmountTooLarge`] when the event's cost leaves `i64`, or the month with
/// it passes [`MONTH_QUANTITY_MILLI_MAX`] or [`MONTH_MICROS_MAX`] (for models
/// priced on the month; the usage engine bounds the others' sums).
pub fn marginal_micros(model: &PriceModel, before: &MonthUsage, billable: Quantity, country: Option<i64>, item: Option<&str>) -> Result<i64, AmountTooLarge> {
    match model {
        PriceModel::PerUnit { price, .. } => amount_micros(billable, *price),
        PriceModel::ByCountry { .. } => country.and_then(|c| model.country_price(c)).map_or(Ok(0), |p| amount_micros(billable, p.price)),
        PriceModel::Recurring { price } => Ok(match item {
            Some(item) if !before.items.iter().any(|i| i == item) => price.micros(),
            _ => 0,
        }),
        PriceModel::Graduated { .. } | PriceModel::Allowance { .. } => {
            let after = MonthUsage { billable: before.billable.checked_add(billable).ok_or(AmountTooLarge("a month's quantity"))?, ..MonthUsage::default() };
            let before_total = MonthUsage { billable: before.billable, ..MonthUsage::default() };
            // Both within [0, MONTH_MICROS_MAX]: the difference cannot overflow.
            Ok(month_cost(model, &after)?.total_micros - month_cost(model, &before_total)?.total_micros)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    fn p(text: &str) -> UnitPrice {
        UnitPrice::parse(text).unwrap()
    }

    fn spec_email_tiers() -> PriceModel {
        PriceModel::Graduated {
            tiers: vec![Tier { min: q("0"), max: Some(q("100000")), unit: q("0"), price: p("799.00") }, Tier { min: q("100000"), max: Some(q("10000000")), unit: q("1000"), price: p("6.00") }],
        }
    }

    #[test]
    fn parses_and_prints_decimals() {
        assert_eq!(q("68913.63").milli(), 68_913_630);
        assert_eq!(p("0.033").micros(), 33_000);
        assert_eq!(q("1.5").to_string(), "1.5");
        assert_eq!(p("799.00").to_string(), "799");
        assert!(Quantity::parse("1.0001").is_err());
        assert!(UnitPrice::parse("0.0000001").is_err());
        for bad in ["", "-1", "1e3", ".5", "abc"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Quantity>("1.5").is_err(), "floats are refused");
        assert_eq!(serde_json::from_str::<Quantity>("\"1.5\"").unwrap().milli(), 1_500);
        assert_eq!(serde_json::from_str::<Quantity>("42").unwrap().milli(), 42_000);
    }

    #[test]
    fn rounds_half_up_to_cents() {
        assert_eq!(micros_to_cents(1_372_338_000), 137_234);
        assert_eq!(micros_to_cents(135_894_820), 13_589);
        assert_eq!(micros_to_cents(5_000), 1);
        assert_eq!(micros_to_cents(4_999), 0);
        assert_eq!(micros_to_cents(-5_000), -1);
    }

    /// Spec 000, billDetail: 299,155 e-mails = 799.00 + 200 × 6.00 = 1,999.00.
    #[test]
    fn graduated_tiers_reproduce_the_spec_example() {
        let cost = month_cost(&spec_email_tiers(), &MonthUsage { billable: q("299155"), ..MonthUsage::default() }).unwrap();
        assert_eq!(micros_to_cents(cost.total_micros), 199_900);
        assert_eq!(cost.detail.len(), 2);
        assert!(matches!(cost.detail[0], DetailLine::Tier { level: 0, count, money_micros: 799_000_000, .. } if count == q("100000")));
        assert!(matches!(cost.detail[1], DetailLine::Tier { level: 1, count, money_micros: 1_200_000_000, .. } if count == q("199155")));
        // Nothing used: nothing owed, not even the flat fee.
        assert_eq!(month_cost(&spec_email_tiers(), &MonthUsage::default()).unwrap().total_micros, 0);
    }

    /// Spec 000: 3,235 messages to Malaysia at 0.34 = 1,099.90.
    #[test]
    fn per_country_reproduces_the_spec_example() {
        let model = PriceModel::ByCountry {
            prices: vec![CountryPrice { country_id: 170, name: "马来西亚".into(), price: p("0.34") }, CountryPrice { country_id: 208, name: "越南".into(), price: p("0.70") }],
            default: Some(CountryPrice { country_id: 213, name: "其它国家".into(), price: p("0.54") }),
        };
        let usage = MonthUsage { by_country: [(170, q("3235")), (208, q("2365"))].into(), ..MonthUsage::default() };
        let cost = month_cost(&model, &usage).unwrap();
        assert_eq!(cost.detail[0].money_micros(), 1_099_900_000);
        assert_eq!(cost.detail[1].money_micros(), 1_655_500_000);
        assert_eq!(micros_to_cents(cost.total_micros), 275_540);
        assert_eq!(marginal_micros(&model, &MonthUsage::default(), q("1"), Some(999), None), Ok(540_000), "the default price");
    }

    /// Spec 000: dedicated IPs at 500.00 each per month.
    #[test]
    fn recurring_per_item() {
        let model = PriceModel::Recurring { price: p("500.00") };
        let usage = MonthUsage { items: vec!["192.168.0.65".into(), "192.168.0.149".into()], ..MonthUsage::default() };
        assert_eq!(micros_to_cents(month_cost(&model, &usage).unwrap().total_micros), 100_000);
        assert_eq!(marginal_micros(&model, &usage, q("1"), None, Some("192.168.0.65")), Ok(0), "an IP already paid this month");
        assert_eq!(marginal_micros(&model, &usage, q("1"), None, Some("10.0.0.1")), Ok(500_000_000));
    }

    /// Spec 000: (68,913.63 − 966.22) MB at 0.002 = 135.89.
    #[test]
    fn allowance_reproduces_the_spec_example() {
        let model = PriceModel::Allowance { free: q("966.22"), price: p("0.002") };
        let cost = month_cost(&model, &MonthUsage { billable: q("68913.63"), ..MonthUsage::default() }).unwrap();
        assert_eq!(micros_to_cents(cost.total_micros), 13_589);
        assert!(matches!(cost.detail[0], DetailLine::Allowance { pay, .. } if pay == q("67947.41")));
    }

    /// Calls are billed per started minute; messages per message.
    #[test]
    fn per_unit_with_increment() {
        let per_minute = PriceModel::PerUnit { price: p("0.12"), increment: q("60") };
        assert_eq!(per_minute.billable(q("61")), Ok(q("2")));
        assert_eq!(per_minute.billable(q("60")), Ok(q("1")));
        assert_eq!(per_minute.billable(q("0.5")), Ok(q("1")));
        assert_eq!(per_minute.billable(q("0")), Ok(q("0")));
        assert_eq!(marginal_micros(&per_minute, &MonthUsage::default(), per_minute.billable(q("125")).unwrap(), None, None), Ok(360_000));
        let per_message = PriceModel::PerUnit { price: p("0.033"), increment: q("1") };
        let cost = month_cost(&per_message, &MonthUsage { billable: q("41586"), ..MonthUsage::default() }).unwrap();
        assert_eq!(cost.total_micros, 1_372_338_000, "spec 000: 41,586 at 0.033 = 1,372.338");
    }

    #[test]
    fn models_validate_their_shape() {
        assert!(spec_email_tiers().validate().is_ok());
        let gap = PriceModel::Graduated { tiers: vec![Tier { min: q("0"), max: Some(q("10")), unit: q("0"), price: p("1") }, Tier { min: q("11"), max: None, unit: q("1"), price: p("1") }] };
        assert_eq!(gap.validate(), Err(PriceModelError::TierLayout));
        let open_middle = PriceModel::Graduated { tiers: vec![Tier { min: q("0"), max: None, unit: q("0"), price: p("1") }, Tier { min: q("0"), max: None, unit: q("1"), price: p("1") }] };
        assert_eq!(open_middle.validate(), Err(PriceModelError::TierLayout));
        assert_eq!(PriceModel::PerUnit { price: p("1"), increment: q("0") }.validate(), Err(PriceModelError::ZeroIncrement));
        let json = r#"{"model":"graduated","tiers":[{"min":"0","max":"100000","unit":"0","price":"799.00"},{"min":"100000","max":"10000000","unit":"1000","price":"6.00"}]}"#;
        assert_eq!(serde_json::from_str::<PriceModel>(json).unwrap(), spec_email_tiers());
    }

    /// 10^12 units at the largest price would be 10^24 micros: refused at
    /// every step that could carry it, never saturated.
    #[test]
    fn the_largest_event_at_the_largest_price_is_refused() {
        let (most, dearest) = (Quantity(QUANTITY_MILLI_MAX), UnitPrice(PRICE_MICROS_MAX));
        assert_eq!(amount_micros(most, dearest), Err(AmountTooLarge("an amount")));
        let per_unit = PriceModel::PerUnit { price: dearest, increment: q("1") };
        assert_eq!(per_unit.billable(most), Ok(most));
        assert!(marginal_micros(&per_unit, &MonthUsage::default(), most, None, None).is_err());
        assert!(month_cost(&per_unit, &MonthUsage { billable: most, ..MonthUsage::default() }).is_err());
        let flat_then_dear =
            PriceModel::Graduated { tiers: vec![Tier { min: q("0"), max: Some(q("1")), unit: q("0"), price: dearest }, Tier { min: q("1"), max: None, unit: q("0.001"), price: dearest }] };
        assert_eq!(month_cost(&flat_then_dear, &MonthUsage { billable: most, ..MonthUsage::default() }), Err(AmountTooLarge("a tier's cost")));
        assert!(marginal_micros(&flat_then_dear, &MonthUsage::default(), most, None, None).is_err());
        let allowance = PriceModel::Allowance { free: q("0"), price: dearest };
        assert!(marginal_micros(&allowance, &MonthUsage::default(), most, None, None).is_err());
        // Up to the month's limit the cost is exact: 10^5 units at 10^6 each is 10^11 = MONTH_MICROS_MAX.
        assert_eq!(month_cost(&allowance, &MonthUsage { billable: q("100000"), ..MonthUsage::default() }).map(|c| c.total_micros), Ok(MONTH_MICROS_MAX));
        assert_eq!(month_cost(&allowance, &MonthUsage { billable: q("100000.001"), ..MonthUsage::default() }), Err(AmountTooLarge("a month's cost")));
    }

    #[test]
    fn billable_quantities_past_the_limit_are_refused() {
        let per_thousandth = PriceModel::PerUnit { price: p("0.000001"), increment: q("0.001") };
        // Billed per thousandth, a unit is a thousand billable units.
        assert_eq!(per_thousandth.billable(q("2")), Ok(q("2000")));
        assert_eq!(per_thousandth.billable(Quantity(QUANTITY_MILLI_MAX / MILLI)), Ok(Quantity(QUANTITY_MILLI_MAX)));
        assert_eq!(per_thousandth.billable(Quantity(QUANTITY_MILLI_MAX / MILLI + 1)), Err(AmountTooLarge("the billable quantity")));
        let graduated = PriceModel::Graduated { tiers: vec![Tier { min: q("0"), max: None, unit: q("1"), price: p("0.000001") }] };
        let full = MonthUsage { billable: Quantity(QUANTITY_MILLI_MAX), ..MonthUsage::default() };
        assert_eq!(marginal_micros(&graduated, &full, q("0.001"), None, None), Err(AmountTooLarge("a month's quantity")));
        assert_eq!(Quantity::units(QUANTITY_MILLI_MAX / MILLI), Some(Quantity(QUANTITY_MILLI_MAX)));
        assert_eq!(Quantity::units(i64::MAX), None);
        assert_eq!(Quantity(QUANTITY_MILLI_MAX).checked_add(q("0.001")), None);
    }

    #[test]
    fn sums_round_once_without_overflow() {
        assert_eq!(sum_to_cents([4_999, 1], "a day"), Ok(1));
        assert_eq!(sum_to_cents([i64::MAX, i64::MAX], "a day"), Ok(1_844_674_407_370_955));
        assert_eq!(sum_to_cents(std::iter::repeat_n(i64::MAX, 20_000), "a day"), Err(AmountTooLarge("a day")));
    }

    #[test]
    fn rounding_to_cents_is_total() {
        assert_eq!(micros_to_cents(i64::MAX), 922_337_203_685_478);
        assert_eq!(micros_to_cents(i64::MIN), -922_337_203_685_478);
        assert_eq!(micros_to_cents(-4_999), 0);
        assert_eq!(micros_to_cents(15_000), 2);
        assert_eq!(micros_to_cents(-15_000), -2);
    }

    /// A quantity anywhere in its range, with its edges and small values often.
    fn any_quantity() -> impl Strategy<Value = Quantity> {
        prop_oneof![Just(0), Just(QUANTITY_MILLI_MAX), Just(QUANTITY_MILLI_MAX - 1), 0..=QUANTITY_MILLI_MAX, 0i64..10_000_000].prop_map(Quantity)
    }

    fn any_price() -> impl Strategy<Value = UnitPrice> {
        prop_oneof![Just(0), Just(PRICE_MICROS_MAX), 0..=PRICE_MICROS_MAX, 0i64..10_000_000].prop_map(UnitPrice)
    }

    /// Up to [`PriceModel::TIERS_MAX`] tiers whose bounds and prices reach the limits.
    fn extreme_graduated_model() -> impl Strategy<Value = PriceModel> {
        proptest::collection::vec((any_quantity(), prop_oneof![Just(0i64), Just(1), 1..=QUANTITY_MILLI_MAX], any_price()), 1..=PriceModel::TIERS_MAX).prop_map(|mut tiers| {
            tiers.sort_by_key(|(bound, _, _)| *bound);
            let count = tiers.len();
            let mut min = Quantity::ZERO;
            let mut built = Vec::with_capacity(count);
            for (i, (bound, unit, price)) in tiers.into_iter().enumerate() {
                let max = (i + 1 < count).then_some(Quantity(bound.milli().max(min.milli() + 1).min(QUANTITY_MILLI_MAX)));
                if max == Some(min) {
                    break;
                }
                let last = i + 1 == count || max == Some(Quantity(QUANTITY_MILLI_MAX));
                let max = if last { None } else { max };
                built.push(Tier { min, max, unit: Quantity(unit), price });
                if last {
                    break;
                }
                min = max.expect("bounded");
            }
            PriceModel::Graduated { tiers: built }
        })
    }

    /// What a graduated month costs, computed in i128 without limits: the oracle.
    fn graduated_exact(model: &PriceModel, billable: Quantity) -> i128 {
        let PriceModel::Graduated { tiers } = model else { unreachable!("a graduated model") };
        tiers
            .iter()
            .map(|tier| {
                let count = i128::from(tier_count(tier, billable).milli());
                match (count, i128::from(tier.unit.milli())) {
                    (0, _) => 0,
                    (_, 0) => i128::from(tier.price.micros()),
                    (count, unit) => (count + unit - 1) / unit * i128::from(tier.price.micros()),
                }
            })
            .sum()
    }

    fn graduated_model() -> impl Strategy<Value = PriceModel> {
        proptest::collection::vec((1i64..5_000, 0i64..3, 0i64..5_000_000), 1..5).prop_map(|tiers| {
            let mut min = 0;
            let count = tiers.len();
            PriceModel::Graduated {
                tiers: tiers
                    .into_iter()
                    .enumerate()
                    .map(|(i, (width, unit, price))| {
                        let max = (i + 1 < count).then(|| min + width * MILLI);
                        let tier = Tier { min: Quantity(min), max: max.map(Quantity), unit: Quantity(unit * 10 * MILLI), price: UnitPrice(price) };
                        min = max.unwrap_or(min);
                        tier
                    })
                    .collect(),
            }
        })
    }

    proptest! {
        /// Charging each event its marginal cost adds up, exactly, to the
        /// month's cost: real-time charges need no correction at close.
        #[test]
        fn marginal_charges_add_up_to_the_month(model in graduated_model(), events in proptest::collection::vec(0i64..2_000_000, 0..60)) {
            prop_assert!(model.validate().is_ok());
            let mut usage = MonthUsage::default();
            let mut charged = 0i64;
            for milli in events {
                charged += marginal_micros(&model, &usage, Quantity(milli), None, None).unwrap();
                usage.billable = Quantity(usage.billable.milli() + milli);
            }
            let cost = month_cost(&model, &usage).unwrap();
            prop_assert_eq!(charged, cost.total_micros);
            prop_assert_eq!(cost.total_micros, cost.detail.iter().map(DetailLine::money_micros).sum::<i64>());
        }

        /// More usage never costs less, and a month's cost is never negative.
        #[test]
        fn cost_is_monotonic(model in graduated_model(), a in 0i64..50_000_000, b in 0i64..50_000_000) {
            let (low, high) = (a.min(b), a.max(b));
            let cost = |milli| month_cost(&model, &MonthUsage { billable: Quantity(milli), ..MonthUsage::default() }).unwrap().total_micros;
            prop_assert!(cost(low) >= 0);
            prop_assert!(cost(low) <= cost(high));
        }

        /// Any one event, at any quantity, price and increment: never a panic;
        /// either the exact cost or `AmountTooLarge`, never a saturated value.
        #[test]
        fn one_event_is_exact_or_refused(quantity in any_quantity(), price in any_price(), increment in prop_oneof![Just(1i64), Just(QUANTITY_MILLI_MAX), 1..=QUANTITY_MILLI_MAX, 1i64..100_000]) {
            let model = PriceModel::PerUnit { price, increment: Quantity(increment) };
            let increments = (i128::from(quantity.milli()) + i128::from(increment) - 1) / i128::from(increment);
            match model.billable(quantity) {
                Ok(billable) => prop_assert_eq!(i128::from(billable.milli()), increments * 1_000),
                Err(_) => prop_assert!(increments * 1_000 > i128::from(QUANTITY_MILLI_MAX)),
            }
            let exact = i128::from(quantity.milli()) * i128::from(price.micros()) / 1_000;
            match marginal_micros(&model, &MonthUsage::default(), quantity, None, None) {
                Ok(micros) => prop_assert_eq!(i128::from(micros), exact),
                Err(_) => prop_assert!(exact > i128::from(i64::MAX)),
            }
            let allowance = PriceModel::Allowance { free: Quantity::ZERO, price };
            match month_cost(&allowance, &MonthUsage { billable: quantity, ..MonthUsage::default() }) {
                Ok(cost) => prop_assert_eq!(i128::from(cost.total_micros), exact),
                Err(_) => prop_assert!(exact > i128::from(MONTH_MICROS_MAX)),
            }
        }

        /// Graduated months at the limits (32 tiers, the largest bounds and
        /// prices): the cost is the oracle's exactly, or refused exactly when
        /// the oracle passes the month's limit; and accepted marginal charges
        /// still add up to the month's cost.
        #[test]
        fn graduated_months_at_the_limits(model in extreme_graduated_model(), events in proptest::collection::vec(any_quantity(), 0..12)) {
            prop_assert!(model.validate().is_ok(), "{:?}", model);
            let mut usage = MonthUsage::default();
            let mut charged = 0i64;
            for quantity in events {
                match marginal_micros(&model, &usage, quantity, None, None) {
                    Ok(micros) => {
                        charged += micros;
                        usage.billable = usage.billable.checked_add(quantity).expect("an accepted event fits the month");
                    }
                    // Refused events change nothing.
                    Err(_) => prop_assert!(usage.billable.checked_add(quantity).is_none_or(|after| graduated_exact(&model, after) > i128::from(MONTH_MICROS_MAX))),
                }
            }
            let oracle = graduated_exact(&model, usage.billable);
            match month_cost(&model, &usage) {
                Ok(cost) => {
                    prop_assert_eq!(i128::from(cost.total_micros), oracle);
                    prop_assert_eq!(cost.total_micros, charged);
                    prop_assert_eq!(cost.total_micros, cost.detail.iter().map(DetailLine::money_micros).sum::<i64>());
                }
                Err(_) => prop_assert!(false, "the month of accepted events always prices: {:?} {:?}", model, usage),
            }
        }

        /// Allowance: marginal charges also telescope.
        #[test]
        fn allowance_charges_add_up(free in 0i64..1_000_000, price in 0i64..10_000_000, events in proptest::collection::vec(0i64..500_000, 0..40)) {
            let model = PriceModel::Allowance { free: Quantity(free), price: UnitPrice(price) };
            let mut usage = MonthUsage::default();
            let mut charged = 0;
            for milli in events {
                charged += marginal_micros(&model, &usage, Quantity(milli), None, None).unwrap();
                usage.billable = Quantity(usage.billable.milli() + milli);
            }
            prop_assert_eq!(charged, month_cost(&model, &usage).unwrap().total_micros);
        }
    }
}
