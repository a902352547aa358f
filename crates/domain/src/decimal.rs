//! Decimal text and rounding, each done one way for the whole of subledger:
//! [`parse_scaled`] is the one reader of decimal numbers (amounts, quantities,
//! prices), and [`div_round_half_up`] the one rounding rule. Each caller gives
//! the result its own type and its own error messages.

/// Most decimal places a number may be read with: 10^18 still fits `i64`.
pub const PLACES_MAX: u32 = 18;

/// Digits of the largest whole part worth reading: `i64::MAX` has 19, so
/// anything longer is too large whatever the scale.
const WHOLE_DIGITS_MAX: usize = 19;

/// Why a decimal text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaledError {
    /// Not plain digits with at most one `.` between digits (no sign,
    /// exponent, separator or blank).
    Malformed,
    /// More significant decimals than the scale holds.
    TooPrecise,
    /// Past the caller's largest value.
    TooLarge,
}

/// Reads a plain non-negative decimal (`"105"`, `"0.033"`, `"007.10"`) as an
/// integer scaled by 10^`places`, at most `max`. Trailing zeros past the
/// scale carry no value (`"1.000"` at two places is 100). Text that is not
/// exactly such a decimal is refused, never guessed at: a sign, an exponent,
/// a separator, a blank, `".5"` or `"5."` are [`ScaledError::Malformed`].
pub fn parse_scaled(text: &str, places: u32, max: i64) -> Result<i64, ScaledError> {
    assert!(places <= PLACES_MAX, "{places} decimal places do not fit i64");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || (text.contains('.') && fraction.is_empty()) {
        return Err(ScaledError::Malformed);
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > places as usize {
        return Err(ScaledError::TooPrecise);
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > WHOLE_DIGITS_MAX {
        return Err(ScaledError::TooLarge);
    }
    // At most 19 whole digits scaled by 10^18 and 18 fraction digits: within i128.
    let number = |digits: &str| if digits.is_empty() { 0 } else { digits.parse::<i128>().expect("ASCII digits within i128") };
    let value = number(whole) * 10i128.pow(places) + number(fraction) * 10i128.pow(places - fraction.len() as u32);
    i64::try_from(value).ok().filter(|value| *value <= max).ok_or(ScaledError::TooLarge)
}

/// `numerator / denominator` rounded half-up, that is to the nearest integer
/// and away from zero at exactly .5 (−1.5 is −2): the one rounding rule, for
/// cents of a charge, line or day, detail money in four decimals and average
/// prices alike. Dividing first leaves no intermediate value that could
/// overflow. `denominator` must be positive.
pub fn div_round_half_up(numerator: i128, denominator: i128) -> i128 {
    assert!(denominator > 0, "rounding divides by a positive number");
    let (quotient, rest) = (numerator / denominator, numerator % denominator);
    // |rest| < denominator ≤ i128::MAX, so twice it fits u128.
    if rest.unsigned_abs() * 2 >= denominator.unsigned_abs() { quotient + rest.signum() } else { quotient }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_plain_decimals_at_any_scale() {
        assert_eq!(parse_scaled("105", 2, i64::MAX), Ok(10_500));
        assert_eq!(parse_scaled("007.10", 2, i64::MAX), Ok(710));
        assert_eq!(parse_scaled("1.000", 2, i64::MAX), Ok(100));
        assert_eq!(parse_scaled("0.033", 6, i64::MAX), Ok(33_000));
        assert_eq!(parse_scaled("68913.63", 3, i64::MAX), Ok(68_913_630));
        assert_eq!(parse_scaled("9223372036854775807", 0, i64::MAX), Ok(i64::MAX));
        assert_eq!(parse_scaled("9.223372036854775807", 18, i64::MAX), Ok(i64::MAX));
        assert_eq!(parse_scaled("0000000000000000000000001", 0, i64::MAX), Ok(1), "leading zeros are no digits");
    }

    #[test]
    fn refuses_what_is_not_exactly_a_decimal() {
        for bad in ["", "-1", "+1", "1e3", "1,000", " 1", "1 ", ".5", "5.", "abc", "1.2.3", "NaN", "１", "1._"] {
            assert_eq!(parse_scaled(bad, 2, i64::MAX), Err(ScaledError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_scaled("1.001", 2, i64::MAX), Err(ScaledError::TooPrecise));
        assert_eq!(parse_scaled("1.0010", 3, 1_000), Err(ScaledError::TooLarge), "precise enough, past the largest value");
        assert_eq!(parse_scaled("10.01", 2, 1_000), Err(ScaledError::TooLarge));
        assert_eq!(parse_scaled("9223372036854775808", 0, i64::MAX), Err(ScaledError::TooLarge));
        assert_eq!(parse_scaled("99999999999999999999999", 2, i64::MAX), Err(ScaledError::TooLarge));
    }

    #[test]
    fn rounds_half_away_from_zero() {
        let cases = [(5_000, 10_000, 1), (4_999, 10_000, 0), (-5_000, 10_000, -1), (-4_999, 10_000, 0), (15_000, 10_000, 2), (-15_000, 10_000, -2), (1, 3, 0), (2, 3, 1), (-2, 3, -1), (7, 1, 7)];
        for (numerator, denominator, rounded) in cases {
            assert_eq!(div_round_half_up(numerator, denominator), rounded, "{numerator}/{denominator}");
        }
        assert_eq!(div_round_half_up(i128::MAX, i128::MAX), 1);
        assert_eq!(div_round_half_up(i128::MIN, 2), i128::MIN / 2);
        assert_eq!(div_round_half_up(i128::MAX - 1, i128::MAX), 1);
    }

    proptest! {
        /// Half-up is the nearest integer, ties away from zero, whatever the sign.
        #[test]
        fn rounding_is_the_nearest_integer(numerator in -1_000_000_000i128..1_000_000_000, denominator in 1i128..100_000) {
            let rounded = div_round_half_up(numerator, denominator);
            let distance = (numerator - rounded * denominator).abs() * 2;
            prop_assert!(distance <= denominator);
            if distance == denominator {
                prop_assert!(rounded.abs() * denominator > numerator.abs(), "a tie goes away from zero");
            }
        }

        #[test]
        fn printed_decimals_read_back(value in 0i64..=i64::MAX, places in 0u32..=6) {
            let scale = 10i64.pow(places);
            let text = if places == 0 { value.to_string() } else { format!("{}.{:0width$}", value / scale, value % scale, width = places as usize) };
            prop_assert_eq!(parse_scaled(&text, places, i64::MAX), Ok(value));
        }
    }
}
