//! Days and months are cut in the tenant's time zone; instants are UTC.

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

/// A tenant's IANA time zone (default `Asia/Shanghai`), keeping its name for display.
#[derive(Debug, Clone)]
pub struct TenantTimeZone {
    name: String,
    zone: TimeZone,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?} (expected an IANA name such as Asia/Shanghai)")]
pub struct UnknownTimeZone(pub String);

impl TenantTimeZone {
    pub const DEFAULT: &'static str = "Asia/Shanghai";

    pub fn parse(name: &str) -> Result<Self, UnknownTimeZone> {
        let zone = TimeZone::get(name).map_err(|_| UnknownTimeZone(name.to_owned()))?;
        Ok(TenantTimeZone { name: name.to_owned(), zone })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant's calendar day at an instant.
    pub fn day_of(&self, at: Timestamp) -> Day {
        Day(at.to_zoned(self.zone.clone()).date())
    }

    /// The tenant's calendar month at an instant.
    pub fn month_of(&self, at: Timestamp) -> Month {
        let date = at.to_zoned(self.zone.clone()).date();
        Month { year: date.year(), month: date.month() }
    }

    /// The first instant of a day in this zone.
    pub fn start_of_day(&self, day: Day) -> Timestamp {
        day.0.to_zoned(self.zone.clone()).and_then(|z| z.start_of_day()).map(|z| z.timestamp()).expect("dates within the supported range have a start")
    }

    /// A wall-clock time written `yyyy-MM-dd HH:mm:ss` (UUCall `startTime`),
    /// read in this zone, as microseconds since the epoch. A time that a
    /// daylight-saving change skips or repeats reads as the earlier instant.
    pub fn parse_local_time(&self, text: &str) -> Result<i64, LocalTimeError> {
        let error = || LocalTimeError(text.chars().take(40).collect());
        // jiff's strptime accepts one-digit fields; the wire format has fixed widths.
        let shape = text.len() == 19
            && text.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b' ',
                13 | 16 => b == b':',
                _ => b.is_ascii_digit(),
            });
        if !shape {
            return Err(error());
        }
        let local = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", text).map_err(|_| error())?;
        let zoned = local.to_zoned(self.zone.clone()).map_err(|_| error())?;
        Ok(zoned.timestamp().as_microsecond())
    }

    /// `[start, end)` of a month in this zone.
    pub fn month_bounds(&self, month: Month) -> (Timestamp, Timestamp) {
        (self.start_of_day(month.first_day()), self.start_of_day(month.next().first_day()))
    }
}

/// A local time that is not `yyyy-MM-dd HH:mm:ss` or not a real time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a time written yyyy-MM-dd HH:mm:ss")]
pub struct LocalTimeError(pub String);

/// A calendar day (no zone attached: it was cut in the tenant's zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Day(pub Date);

impl Day {
    pub fn previous(self) -> Day {
        Day(self.0.checked_sub(1.day()).expect("dates stay far from the minimum"))
    }

    pub fn next(self) -> Day {
        Day(self.0.checked_add(1.day()).expect("dates stay far from the maximum"))
    }

    pub fn month(self) -> Month {
        Month { year: self.0.year(), month: self.0.month() }
    }
}

impl fmt::Display for Day {
    /// `YYYY-MM-DD`, which is also how days are stored (and sort as text).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0.year(), self.0.month(), self.0.day())
    }
}

impl Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    year: i16,
    month: i8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("month must be a real month written {expected}")]
pub struct MonthParseError {
    pub expected: &'static str,
}

impl Month {
    pub fn new(year: i16, month: i8) -> Option<Month> {
        ((1970..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Month { year, month })
    }

    pub fn year(self) -> i16 {
        self.year
    }

    pub fn month(self) -> i8 {
        self.month
    }

    /// SendCloud's `yyyyMM`, e.g. `202304`.
    pub fn parse_compact(text: &str) -> Result<Month, MonthParseError> {
        let error = MonthParseError { expected: "yyyyMM" };
        if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error);
        }
        Month::new(text[..4].parse().map_err(|_| error.clone())?, text[4..].parse().map_err(|_| error.clone())?).ok_or(error)
    }

    /// `yyyy-MM`, e.g. `2023-04` (CLI, native API, UUCall).
    pub fn parse_dashed(text: &str) -> Result<Month, MonthParseError> {
        let error = MonthParseError { expected: "yyyy-MM" };
        let Some((year, month)) = text.split_once('-') else { return Err(error) };
        if year.len() != 4 || month.len() != 2 || !year.bytes().chain(month.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(error);
        }
        Month::new(year.parse().map_err(|_| error.clone())?, month.parse().map_err(|_| error.clone())?).ok_or(error)
    }

    pub fn first_day(self) -> Day {
        Day(Date::new(self.year, self.month, 1).expect("validated at construction"))
    }

    pub fn next(self) -> Month {
        if self.month == 12 { Month { year: self.year + 1, month: 1 } } else { Month { year: self.year, month: self.month + 1 } }
    }

    pub fn previous(self) -> Month {
        if self.month == 1 { Month { year: self.year - 1, month: 12 } } else { Month { year: self.year, month: self.month - 1 } }
    }

    /// Months from `self` to `last`, both included, oldest first.
    pub fn through(self, last: Month) -> impl Iterator<Item = Month> {
        std::iter::successors(Some(self), move |m| (*m < last).then(|| m.next())).take_while(move |m| *m <= last)
    }
}

impl fmt::Display for Month {
    /// `YYYY-MM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An RFC 3339 instant (`2024-03-01T08:00:00+08:00`), as microseconds since the epoch.
pub fn parse_instant_us(text: &str) -> Result<i64, String> {
    text.parse::<Timestamp>().map(|t| t.as_microsecond()).map_err(|e| format!("{text:?} is not an RFC 3339 instant: {e}"))
}

/// Microseconds since the Unix epoch: how instants are stored.
pub fn to_unix_micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

pub fn from_unix_micros(micros: i64) -> Timestamp {
    Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_cut_in_the_tenant_zone() {
        let shanghai = TenantTimeZone::parse("Asia/Shanghai").unwrap();
        // 2023-04-06T16:30Z is already April 7th in Shanghai (UTC+8).
        let at: Timestamp = "2023-04-06T16:30:00Z".parse().unwrap();
        assert_eq!(shanghai.day_of(at).to_string(), "2023-04-07");
        let utc = TenantTimeZone::parse("UTC").unwrap();
        assert_eq!(utc.day_of(at).to_string(), "2023-04-06");
        let (start, end) = shanghai.month_bounds(Month::new(2023, 4).unwrap());
        assert_eq!(start.to_string(), "2023-03-31T16:00:00Z");
        assert_eq!(end.to_string(), "2023-04-30T16:00:00Z");
        assert!(TenantTimeZone::parse("Mars/Base").is_err());
    }

    #[test]
    fn local_times_are_read_in_the_tenant_zone() {
        let shanghai = TenantTimeZone::parse("Asia/Shanghai").unwrap();
        let at = shanghai.parse_local_time("2024-03-01 08:00:00").unwrap();
        assert_eq!(from_unix_micros(at).to_string(), "2024-03-01T00:00:00Z");
        for bad in ["2024-3-01 08:00:00", "2024-03-01T08:00:00", "2024-02-30 08:00:00", "2024-03-01 24:00:00", "2024-03-01 08:00", "", "２０２４-03-01 08:00:00"] {
            assert!(shanghai.parse_local_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn months_parse_strictly_and_iterate() {
        assert_eq!(Month::parse_compact("202304").unwrap().to_string(), "2023-04");
        assert_eq!(Month::parse_dashed("2023-12").unwrap().next().to_string(), "2024-01");
        for bad in ["20234", "202313", "202300", "2023-04", "abcdef", "2023041"] {
            assert!(Month::parse_compact(bad).is_err(), "{bad}");
        }
        for bad in ["202304", "2023-4", "2023-13", "23-04"] {
            assert!(Month::parse_dashed(bad).is_err(), "{bad}");
        }
        let months: Vec<String> = Month::new(2022, 11).unwrap().through(Month::new(2023, 2).unwrap()).map(|m| m.to_string()).collect();
        assert_eq!(months, ["2022-11", "2022-12", "2023-01", "2023-02"]);
        assert_eq!(Month::new(2023, 2).unwrap().through(Month::new(2023, 1).unwrap()).count(), 0);
    }
}
