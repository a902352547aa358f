//! Money is exact: integer minor units (cents, 分) of a known currency.
//!
//! No floating point touches an amount anywhere in subledger. Decimal strings
//! from the wire are parsed here, once, into minor units; rendering back to a
//! decimal string is also here, so every dialect shows the same digits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::decimal::{ScaledError, parse_scaled};

/// Largest amount any single balance or transfer may hold, in minor units.
///
/// 10^15 cents = 10 trillion yuan. Far above any real balance, far below
/// `i64::MAX` (9.2 × 10^18), so sums of a few thousand amounts cannot overflow.
pub const AMOUNT_MINOR_MAX: i64 = 1_000_000_000_000_000;

/// Digits of the minor unit of every supported currency (cents, 分).
pub const MINOR_DIGITS: u32 = 2;

/// A computed amount or quantity that would pass its limit (or leave `i64`).
/// Refused as a value, never saturated or wrapped; names what overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is too large")]
pub struct AmountTooLarge(pub &'static str);

/// The sum of `amounts`, or [`AmountTooLarge`]`(what)` when it would leave `i64`.
pub fn checked_sum(amounts: impl IntoIterator<Item = i64>, what: &'static str) -> Result<i64, AmountTooLarge> {
    amounts.into_iter().try_fold(0i64, i64::checked_add).ok_or(AmountTooLarge(what))
}

/// A currency that wallets can hold. Every supported currency has two minor digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    /// Chinese yuan, minor unit 分 (fen).
    Cny,
    /// US dollar, minor unit cent (the ad dialect's 美分).
    Usd,
}

impl Currency {
    pub const ALL: [Currency; 2] = [Currency::Cny, Currency::Usd];

    pub fn code(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
            Currency::Usd => "USD",
        }
    }

    /// Digits after the decimal point of the minor unit.
    pub fn minor_digits(self) -> u32 {
        MINOR_DIGITS
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency {0:?} (expected CNY or USD)")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "CNY" => Ok(Currency::Cny),
            "USD" => Ok(Currency::Usd),
            _ => Err(UnknownCurrency(s.to_owned())),
        }
    }
}

/// Why a decimal amount string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    #[error("amount is empty")]
    Empty,
    #[error("amount must be a plain decimal number such as 100 or 100.00")]
    Malformed,
    #[error("amount has more than two decimal places")]
    TooPrecise,
    #[error("amount is too large")]
    TooLarge,
}

/// Parses a plain non-negative decimal string (`"105"`, `"654.00"`, `"0.5"`) into minor units.
///
/// Refuses signs, exponents, thousands separators, surrounding blanks and more
/// than two decimals: a money field that is not exactly a decimal is a client bug
/// and is reported, never guessed at. Trailing zeros beyond the minor unit carry
/// no value (`"1.000"` is 1.00).
pub fn parse_amount_minor(text: &str) -> Result<i64, AmountParseError> {
    if text.is_empty() {
        return Err(AmountParseError::Empty);
    }
    parse_scaled(text, MINOR_DIGITS, AMOUNT_MINOR_MAX).map_err(|error| match error {
        ScaledError::Malformed => AmountParseError::Malformed,
        ScaledError::TooPrecise => AmountParseError::TooPrecise,
        ScaledError::TooLarge => AmountParseError::TooLarge,
    })
}

/// Renders minor units as a decimal with exactly two places: `-1234` → `"-12.34"`.
pub fn format_minor(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

/// A strictly positive amount of minor units, bounded by [`AMOUNT_MINOR_MAX`]:
/// the only kind of amount a transfer can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PositiveAmount(i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PositiveAmountError {
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount is too large")]
    TooLarge,
}

impl PositiveAmount {
    pub fn new(minor: i64) -> Result<Self, PositiveAmountError> {
        if minor <= 0 {
            Err(PositiveAmountError::NotPositive)
        } else if minor > AMOUNT_MINOR_MAX {
            Err(PositiveAmountError::TooLarge)
        } else {
            Ok(PositiveAmount(minor))
        }
    }

    pub fn minor(self) -> i64 {
        self.0
    }
}

impl fmt::Display for PositiveAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_minor(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_spec_formats() {
        assert_eq!(parse_amount_minor("100.00"), Ok(10_000));
        assert_eq!(parse_amount_minor("105"), Ok(10_500));
        assert_eq!(parse_amount_minor("654.00"), Ok(65_400));
        assert_eq!(parse_amount_minor("0.5"), Ok(50));
        assert_eq!(parse_amount_minor("1.000"), Ok(100));
        assert_eq!(parse_amount_minor("007.10"), Ok(710));
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for bad in ["-1", "+1", "1e3", "1,000", " 1", "1 ", ".5", "5.", "abc", "1.2.3", "NaN", "１"] {
            assert_eq!(parse_amount_minor(bad), Err(AmountParseError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_amount_minor(""), Err(AmountParseError::Empty));
        assert_eq!(parse_amount_minor("1.001"), Err(AmountParseError::TooPrecise));
        assert_eq!(parse_amount_minor("99999999999999999999999"), Err(AmountParseError::TooLarge));
        assert_eq!(parse_amount_minor("10000000000000.01"), Err(AmountParseError::TooLarge));
    }

    #[test]
    fn formats_with_two_decimals() {
        assert_eq!(format_minor(0), "0.00");
        assert_eq!(format_minor(52_100), "521.00");
        assert_eq!(format_minor(-1_234), "-12.34");
        assert_eq!(format_minor(5), "0.05");
    }

    #[test]
    fn sums_refuse_to_wrap() {
        assert_eq!(checked_sum([1, 2, 3], "total"), Ok(6));
        assert_eq!(checked_sum([], "total"), Ok(0));
        assert_eq!(checked_sum([i64::MAX, 1], "total"), Err(AmountTooLarge("total")));
        assert_eq!(checked_sum([i64::MIN, -1], "total"), Err(AmountTooLarge("total")));
        assert_eq!(AmountTooLarge("a month's cost").to_string(), "a month's cost is too large");
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(minor in 0i64..=AMOUNT_MINOR_MAX) {
            prop_assert_eq!(parse_amount_minor(&format_minor(minor)), Ok(minor));
        }
    }
}
