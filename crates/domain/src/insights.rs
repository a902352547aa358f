//! Ad insights (Meta's `AdsInsights`), pure: the queries of the reseller
//! API's `account_insights` and `account_insights_breakdowns` parsed into
//! values that can only be valid, and their answers computed from the daily
//! rows the sync job stored, so that a read never waits for Meta.
//!
//! The model is Meta's insights edge, with its parameter and field names as
//! the `facebook-business` SDK spells them: `time_range` (or `date_preset`,
//! ignored when `time_range` is given), `fields`, `time_increment`,
//! `breakdowns`, `sort` and `limit`.
//!
//! What a row holds, and how it is computed from the days of its window:
//! - summed: `spend` (kept in cents), `impressions`, `clicks`, `reach`,
//!   `inline_link_clicks`, `total_postbacks`, and the per-action-type lists
//!   `actions`, `action_values`, `conversions`, `conversion_values`;
//! - derived from those sums: `cpc` (spend / clicks), `cpm` (spend per 1,000
//!   impressions), `ctr` (clicks per 100 impressions), `frequency`
//!   (impressions / reach), `cost_per_action_type` (spend / actions of each
//!   type) and `purchase_roas` (value of each purchase action type / spend);
//! - `account_id`, `account_name`, `account_currency` from the account;
//!   `date_start` and `date_stop`, the window, are in every row (as Graph
//!   always gives them), asked for or not.
//!
//! Reach is not additive: the same person reached on two days counts once in
//! Meta's reach of both days together, and daily rows cannot tell. A window's
//! reach here is the sum of its daily reach: exact for a one-day window, an
//! upper bound for longer ones (and so `frequency` a lower bound). Meta's own
//! figure would need one more upstream call per window asked, which is what
//! answering from synced data avoids.
//!
//! How values are written, one rule each, as Graph writes them (strings):
//! money summed (`spend`) with exactly two decimals (`"12.30"`); counts as
//! integers (`"1500"`); the values of the per-action-type lists as decimals
//! without trailing zeros (`"3"`, `"12.5"`, kept to hundredths); derived
//! ratios with six decimals, rounded half-up (`"0.253333"`). A ratio whose
//! denominator is zero is left out of its row, and so is an empty list, as
//! Graph leaves them out.

use std::collections::BTreeMap;

use jiff::ToSpan;
use jiff::civil::Date;
use serde_json::{Map, Value};

use crate::calendar::Day;
use crate::decimal::{ScaledError, div_round_half_up, parse_scaled};
use crate::money::{AMOUNT_MINOR_MAX, AmountTooLarge, format_minor};

/// The breakdowns synced for every account and so the only ones a
/// breakdowns query can ask for. A copy of `subledger_ads::SYNCED_BREAKDOWNS`
/// (the domain depends on no connector); a test of the service layer checks
/// that both lists are the same.
pub const SYNCED_BREAKDOWNS: [&str; 6] = ["country", "region", "age", "gender", "age,gender", "publisher_platform"];

/// How far back a query may start: Meta keeps insights for 37 months (1016).
pub const HISTORY_MONTHS_MAX: i32 = 37;

/// The longest range rows by day (`time_increment` = N days) may span (1025).
/// 90: a quarter, and Meta's own largest `time_increment`, so any one window
/// fits; at one day per row it bounds an answer, which has no pages, to 90
/// rows per account. Longer ranges are asked `monthly` or `all_days`, whose
/// rows the 37-month rule bounds.
pub const DAILY_ROWS_DAYS_MAX: i64 = 90;

/// The largest `time_increment` in days (1024), as Meta allows.
pub const TIME_INCREMENT_DAYS_MAX: i64 = 90;

/// The largest `limit` of a breakdowns query (1026), as the spec says. A
/// query without `limit` gets this many rows: the dialect has no cursor to
/// fetch more, so Meta's default page of 25 would hide the rest for good.
pub const LIMIT_MAX: i64 = 200;

/// The most names `fields` may list: more is not a query but an attack.
pub const FIELDS_GIVEN_MAX: usize = 100;

/// The largest value one day may report of a metric (cents of spend, or a
/// count): a billion dollars or a quadrillion impressions a day is far beyond
/// anything real, and 37 months of such days still sum within `i64`.
pub const DAILY_VALUE_MAX: i64 = AMOUNT_MINOR_MAX;

/// The longest action type kept (Meta's are a few dozen characters).
const ACTION_TYPE_CHARS_MAX: usize = 200;

/// How much of a caller's text an error message repeats.
const ECHO_CHARS_MAX: usize = 60;

/// Why a query was refused: one variant per code of the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsightsError {
    /// 1009: `fields` is missing or names nothing.
    #[error("fields is empty: name at least one field, e.g. [\"spend\"]")]
    FieldsEmpty,
    /// 1010: `fields` names a field not supported, or is not a list of names.
    #[error("fields is invalid: {0}")]
    FieldsInvalid(String),
    /// 1015: neither a valid `time_range` nor (without one) a valid
    /// `date_preset`, or `since` after `until`.
    #[error("time range is missing or invalid: {0}")]
    TimeRange(String),
    /// 1016: the range starts more than 37 months before today.
    #[error("time_range.since {since} is more than {HISTORY_MONTHS_MAX} months before today: the earliest day is {earliest}")]
    TooFarBack { since: Day, earliest: Day },
    /// 1017: `total_postbacks` asked with other fields.
    #[error("total_postbacks can only be asked alone")]
    PostbacksNotAlone,
    /// 1018: `breakdowns` is missing or not a supported breakdown.
    #[error("breakdowns is missing or invalid: {0}")]
    Breakdowns(String),
    /// 1019: `sort` is not `{field}_ascending` / `{field}_descending` of a sortable field.
    #[error("sort is invalid: {0}")]
    Sort(String),
    /// 1024: `time_increment` is not 1 to 90, `monthly` or `all_days`.
    #[error("time_increment is invalid: {0}")]
    TimeIncrement(String),
    /// 1025: rows by day over more than [`DAILY_ROWS_DAYS_MAX`] days.
    #[error("rows by day may span at most {DAILY_ROWS_DAYS_MAX} days, this range has {days}: ask monthly or all_days for longer ranges")]
    DailyRangeTooLong { days: i64 },
    /// 1026: `limit` above [`LIMIT_MAX`], below 1, or not a whole number.
    #[error("limit is invalid: {0}")]
    Limit(String),
}

/// The raw parameters of `account_insights`, as the dialect decoded them
/// from JSON (a body, or query parameters as strings). Absent, `null` and
/// blank strings all mean "not given".
#[derive(Debug, Clone, Copy, Default)]
pub struct InsightsParams<'a> {
    pub fields: Option<&'a Value>,
    pub time_range: Option<&'a Value>,
    pub date_preset: Option<&'a Value>,
    pub time_increment: Option<&'a Value>,
}

impl<'a> InsightsParams<'a> {
    /// The parameters of a JSON object (a request body), by their names.
    pub fn of(object: &'a Value) -> InsightsParams<'a> {
        InsightsParams { fields: object.get("fields"), time_range: object.get("time_range"), date_preset: object.get("date_preset"), time_increment: object.get("time_increment") }
    }
}

/// The raw parameters of `account_insights_breakdowns` (see [`InsightsParams`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct BreakdownsParams<'a> {
    pub fields: Option<&'a Value>,
    pub time_range: Option<&'a Value>,
    pub date_preset: Option<&'a Value>,
    pub breakdowns: Option<&'a Value>,
    pub sort: Option<&'a Value>,
    pub limit: Option<&'a Value>,
}

impl<'a> BreakdownsParams<'a> {
    /// The parameters of a JSON object (a request body), by their names.
    pub fn of(object: &'a Value) -> BreakdownsParams<'a> {
        BreakdownsParams {
            fields: object.get("fields"),
            time_range: object.get("time_range"),
            date_preset: object.get("date_preset"),
            breakdowns: object.get("breakdowns"),
            sort: object.get("sort"),
            limit: object.get("limit"),
        }
    }
}

/// An `account_insights` query: rows per window of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsightsQuery {
    range: TimeRange,
    fields: FieldSet,
    increment: TimeIncrement,
}

impl InsightsQuery {
    /// Parses the parameters; `today` is the caller's day (in the tenant's
    /// zone), which `date_preset` and the 37-month rule are counted from.
    /// Checked in the spec's order: fields (1009, 1010, 1017), time range
    /// (1015, 1016), time_increment (1024), the daily span (1025).
    pub fn parse(params: &InsightsParams<'_>, today: Day) -> Result<InsightsQuery, InsightsError> {
        let fields = FieldSet::parse(params.fields, FieldUse::Insights)?;
        let range = TimeRange::parse(params.time_range, params.date_preset, today)?;
        let increment = TimeIncrement::parse(params.time_increment)?;
        if matches!(increment, TimeIncrement::Days(_)) && range.days() > DAILY_ROWS_DAYS_MAX {
            return Err(InsightsError::DailyRangeTooLong { days: range.days() });
        }
        Ok(InsightsQuery { range, fields, increment })
    }

    pub fn range(&self) -> TimeRange {
        self.range
    }

    pub fn fields(&self) -> FieldSet {
        self.fields
    }

    pub fn increment(&self) -> TimeIncrement {
        self.increment
    }

    /// Whether the answer needs the days' per-action-type lists.
    pub fn needs_action_lists(&self) -> bool {
        self.fields.needs_action_lists()
    }
}

/// An `account_insights_breakdowns` query: one row per breakdown value over
/// the whole range, sorted, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakdownsQuery {
    range: TimeRange,
    fields: FieldSet,
    breakdown: Breakdown,
    sort: Option<Sort>,
    limit: usize,
}

impl BreakdownsQuery {
    /// Parses the parameters (see [`InsightsQuery::parse`]). Checked in the
    /// spec's order: fields (1009, 1010, 1017), time range (1015, 1016),
    /// breakdowns (1018), sort (1019), limit (1026).
    pub fn parse(params: &BreakdownsParams<'_>, today: Day) -> Result<BreakdownsQuery, InsightsError> {
        let fields = FieldSet::parse(params.fields, FieldUse::Breakdowns)?;
        let range = TimeRange::parse(params.time_range, params.date_preset, today)?;
        let breakdown = Breakdown::parse(params.breakdowns)?;
        let sort = Sort::parse(params.sort, breakdown)?;
        let limit = parse_limit(params.limit)?;
        Ok(BreakdownsQuery { range, fields, breakdown, sort, limit })
    }

    pub fn range(&self) -> TimeRange {
        self.range
    }

    pub fn fields(&self) -> FieldSet {
        self.fields
    }

    pub fn breakdown(&self) -> Breakdown {
        self.breakdown
    }

    pub fn sort(&self) -> Option<&Sort> {
        self.sort.as_ref()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the answer needs the days' per-action-type lists: to show
    /// them, or to sort by an action type.
    pub fn needs_action_lists(&self) -> bool {
        self.fields.needs_action_lists() || matches!(&self.sort, Some(Sort { key: SortKey::ActionType { .. }, .. }))
    }
}

// ---------------------------------------------------------------- fields

/// A field of an insights row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    AccountId,
    AccountName,
    AccountCurrency,
    Spend,
    Impressions,
    Clicks,
    Reach,
    Frequency,
    Cpc,
    Cpm,
    Ctr,
    InlineLinkClicks,
    Actions,
    ActionValues,
    Conversions,
    ConversionValues,
    CostPerActionType,
    PurchaseRoas,
    TotalPostbacks,
    DateStart,
    DateStop,
}

impl Field {
    pub const ALL: [Field; 21] = [
        Field::AccountId,
        Field::AccountName,
        Field::AccountCurrency,
        Field::Spend,
        Field::Impressions,
        Field::Clicks,
        Field::Reach,
        Field::Frequency,
        Field::Cpc,
        Field::Cpm,
        Field::Ctr,
        Field::InlineLinkClicks,
        Field::Actions,
        Field::ActionValues,
        Field::Conversions,
        Field::ConversionValues,
        Field::CostPerActionType,
        Field::PurchaseRoas,
        Field::TotalPostbacks,
        Field::DateStart,
        Field::DateStop,
    ];

    /// The name, as Graph's `AdsInsights` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Field::AccountId => "account_id",
            Field::AccountName => "account_name",
            Field::AccountCurrency => "account_currency",
            Field::Spend => "spend",
            Field::Impressions => "impressions",
            Field::Clicks => "clicks",
            Field::Reach => "reach",
            Field::Frequency => "frequency",
            Field::Cpc => "cpc",
            Field::Cpm => "cpm",
            Field::Ctr => "ctr",
            Field::InlineLinkClicks => "inline_link_clicks",
            Field::Actions => "actions",
            Field::ActionValues => "action_values",
            Field::Conversions => "conversions",
            Field::ConversionValues => "conversion_values",
            Field::CostPerActionType => "cost_per_action_type",
            Field::PurchaseRoas => "purchase_roas",
            Field::TotalPostbacks => "total_postbacks",
            Field::DateStart => "date_start",
            Field::DateStop => "date_stop",
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.name() == name)
    }

    /// Whether `sort` can name it: the single numbers of a row.
    fn sortable(self) -> bool {
        matches!(self, Field::Spend | Field::Impressions | Field::Clicks | Field::Reach | Field::Frequency | Field::Cpc | Field::Cpm | Field::Ctr | Field::InlineLinkClicks)
    }

    /// The per-action-type list it is, if it is one.
    fn action_list(self) -> Option<ActionList> {
        ActionList::ALL.into_iter().find(|list| list.field() == self)
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// Which operation fields are parsed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldUse {
    Insights,
    /// `total_postbacks` is synced for the account as a whole only.
    Breakdowns,
}

/// The fields a query asked for (never empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSet(u32);

impl FieldSet {
    fn parse(raw: Option<&Value>, usage: FieldUse) -> Result<FieldSet, InsightsError> {
        let names = name_list(raw).map_err(|shape| InsightsError::FieldsInvalid(format!("fields {shape}")))?;
        if names.is_empty() {
            return Err(InsightsError::FieldsEmpty);
        }
        if names.len() > FIELDS_GIVEN_MAX {
            return Err(InsightsError::FieldsInvalid(format!("fields lists {} names, at most {FIELDS_GIVEN_MAX} are read", names.len())));
        }
        let mut set = FieldSet(0);
        for name in &names {
            let field = Field::parse(name).ok_or_else(|| InsightsError::FieldsInvalid(format!("{} is not a supported field; supported: {}", echo(name), supported_fields())))?;
            set.0 |= field.bit();
        }
        // `date_start` and `date_stop` are in every row anyway.
        let always = Field::DateStart.bit() | Field::DateStop.bit();
        if set.contains(Field::TotalPostbacks) && set.0 & !always != Field::TotalPostbacks.bit() {
            return Err(InsightsError::PostbacksNotAlone);
        }
        if set.contains(Field::TotalPostbacks) && usage == FieldUse::Breakdowns {
            return Err(InsightsError::FieldsInvalid("total_postbacks is not available by breakdown".to_owned()));
        }
        Ok(set)
    }

    pub fn contains(self, field: Field) -> bool {
        self.0 & field.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |field| self.contains(*field))
    }

    /// Whether the answer needs the per-action-type lists of the days (so
    /// storage reads them; they are the only costly part of a row).
    pub fn needs_action_lists(self) -> bool {
        [Field::Actions, Field::ActionValues, Field::Conversions, Field::ConversionValues, Field::CostPerActionType, Field::PurchaseRoas].into_iter().any(|field| self.contains(field))
    }

    /// Whether the answer needs the account's name or currency.
    pub fn needs_account_details(self) -> bool {
        self.contains(Field::AccountName) || self.contains(Field::AccountCurrency)
    }
}

fn supported_fields() -> String {
    Field::ALL.iter().map(|field| field.name()).collect::<Vec<_>>().join(", ")
}

/// Names given as a JSON array of strings, a string holding one (`"[\"a\"]"`,
/// as a query parameter carries it) or a comma-separated string (`"a,b"`);
/// blanks around names and empty names are dropped. Not given: no names.
/// The error says what the value is instead.
pub fn name_list(raw: Option<&Value>) -> Result<Vec<String>, &'static str> {
    let names: Vec<String> = match given(raw) {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(|item| item.as_str().map(str::to_owned).ok_or("must be a list of names")).collect::<Result<_, _>>()?,
        Some(Value::String(text)) if text.trim_start().starts_with('[') => serde_json::from_str::<Vec<String>>(text).map_err(|_| "must be a list of names")?,
        Some(Value::String(text)) => text.split(',').map(str::to_owned).collect(),
        Some(_) => return Err("must be a list of names"),
    };
    Ok(names.into_iter().map(|name| name.trim().to_owned()).filter(|name| !name.is_empty()).collect())
}

/// A parameter that was given: not absent, not `null`, not a blank string.
fn given(raw: Option<&Value>) -> Option<&Value> {
    raw.filter(|value| match value {
        Value::Null => false,
        Value::String(text) => !text.trim().is_empty(),
        _ => true,
    })
}

/// A caller's text in a message: quoted, and cut short.
fn echo(text: &str) -> String {
    let mut shown: String = text.chars().take(ECHO_CHARS_MAX).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

// ---------------------------------------------------------------- time

/// The days a query covers, both included: `since` ≤ `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    since: Day,
    until: Day,
}

impl TimeRange {
    /// `since..=until`, if `since` is not after `until`.
    pub fn new(since: Day, until: Day) -> Option<TimeRange> {
        (since <= until).then_some(TimeRange { since, until })
    }

    pub fn since(self) -> Day {
        self.since
    }

    pub fn until(self) -> Day {
        self.until
    }

    /// How many days it has.
    pub fn days(self) -> i64 {
        days_between(self.since.0, self.until.0) + 1
    }

    pub fn contains(self, day: Day) -> bool {
        self.since <= day && day <= self.until
    }

    /// `time_range` if given (it must then be valid: a malformed range is a
    /// client's mistake, not a request for its `date_preset`), else
    /// `date_preset` resolved against `today`; then the 37-month rule.
    fn parse(time_range: Option<&Value>, date_preset: Option<&Value>, today: Day) -> Result<TimeRange, InsightsError> {
        let range = match (given(time_range), given(date_preset)) {
            (Some(range), _) => TimeRange::from_value(range)?,
            (None, Some(Value::String(preset))) => {
                DatePreset::parse(preset.trim()).ok_or_else(|| InsightsError::TimeRange(format!("date_preset {} is not one of {}", echo(preset), DatePreset::names())))?.resolve(today)
            }
            (None, Some(_)) => return Err(InsightsError::TimeRange("date_preset must be a string".to_owned())),
            (None, None) => return Err(InsightsError::TimeRange("give time_range {\"since\": \"YYYY-MM-DD\", \"until\": \"YYYY-MM-DD\"} or date_preset".to_owned())),
        };
        let earliest = earliest_day(today);
        if range.since < earliest {
            return Err(InsightsError::TooFarBack { since: range.since, earliest });
        }
        Ok(range)
    }

    /// `{"since": "YYYY-MM-DD", "until": "YYYY-MM-DD"}`, as an object or as
    /// its JSON text (a query parameter).
    fn from_value(value: &Value) -> Result<TimeRange, InsightsError> {
        let invalid = |reason: String| InsightsError::TimeRange(reason);
        let parsed;
        let object = match value {
            Value::Object(object) => object,
            Value::String(text) => {
                parsed = serde_json::from_str::<Map<String, Value>>(text).map_err(|_| invalid("time_range must be an object {\"since\", \"until\"}".to_owned()))?;
                &parsed
            }
            _ => return Err(invalid("time_range must be an object {\"since\", \"until\"}".to_owned())),
        };
        let day = |key: &str| -> Result<Day, InsightsError> {
            match object.get(key) {
                Some(Value::String(text)) => parse_day(text).ok_or_else(|| invalid(format!("time_range.{key} {} is not a date written YYYY-MM-DD", echo(text)))),
                None | Some(Value::Null) => Err(invalid(format!("time_range.{key} is missing"))),
                Some(_) => Err(invalid(format!("time_range.{key} must be a date written YYYY-MM-DD"))),
            }
        };
        let (since, until) = (day("since")?, day("until")?);
        TimeRange::new(since, until).ok_or_else(|| invalid(format!("time_range.since {since} is after time_range.until {until}")))
    }

    /// Every window of the range at `increment`, oldest first: they tile it.
    pub fn windows(self, increment: TimeIncrement) -> Vec<Window> {
        let mut windows = Vec::new();
        let mut start = self.since;
        loop {
            let window = self.window_of(increment, start);
            windows.push(window);
            if window.stop == self.until {
                return windows;
            }
            start = window.stop.next();
        }
    }

    /// The window of the range at `increment` that holds `day` (a day of the range).
    pub fn window_of(self, increment: TimeIncrement, day: Day) -> Window {
        match increment {
            TimeIncrement::AllDays => Window { start: self.since, stop: self.until },
            TimeIncrement::Monthly => Window { start: Day(day.0.first_of_month()).max(self.since), stop: Day(day.0.last_of_month()).min(self.until) },
            TimeIncrement::Days(days) => {
                let days = i64::from(days);
                let offset = days_between(self.since.0, day.0) / days * days;
                let start = add_days(self.since, offset);
                Window { start, stop: add_days(start, days - 1).min(self.until) }
            }
        }
    }
}

/// The days one row covers, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    pub start: Day,
    pub stop: Day,
}

/// The earliest day a query may start on: 37 months before today.
pub fn earliest_day(today: Day) -> Day {
    Day(today.0.checked_sub(HISTORY_MONTHS_MAX.months()).expect("dates stay far from the minimum"))
}

/// A date written exactly `YYYY-MM-DD`, and a real one (as the API takes
/// dates, and as days are stored).
pub fn parse_day(text: &str) -> Option<Day> {
    let shape = text.len() == 10 && text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !shape {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<i16>().ok();
    Date::new(number(0..4)?, i8::try_from(number(5..7)?).ok()?, i8::try_from(number(8..10)?).ok()?).ok().map(Day)
}

fn days_between(from: Date, to: Date) -> i64 {
    i64::from((to - from).get_days())
}

fn add_days(day: Day, days: i64) -> Day {
    Day(day.0.checked_add(days.days()).expect("dates stay far from the maximum"))
}

/// Meta's `date_preset` values (`AdsInsights.DatePreset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePreset {
    Today,
    Yesterday,
    ThisMonth,
    LastMonth,
    ThisQuarter,
    LastQuarter,
    ThisYear,
    LastYear,
    /// The N days before today (today not included), as Meta counts `last_Nd`.
    LastDays(i64),
    ThisWeekMonToday,
    ThisWeekSunToday,
    LastWeekMonSun,
    LastWeekSunSat,
    /// As far back as Meta keeps data: 37 months to today (`maximum`, `data_maximum`).
    Maximum,
}

impl DatePreset {
    const NAMES: [(&'static str, DatePreset); 20] = [
        ("today", DatePreset::Today),
        ("yesterday", DatePreset::Yesterday),
        ("this_month", DatePreset::ThisMonth),
        ("last_month", DatePreset::LastMonth),
        ("this_quarter", DatePreset::ThisQuarter),
        ("last_quarter", DatePreset::LastQuarter),
        ("this_year", DatePreset::ThisYear),
        ("last_year", DatePreset::LastYear),
        ("last_3d", DatePreset::LastDays(3)),
        ("last_7d", DatePreset::LastDays(7)),
        ("last_14d", DatePreset::LastDays(14)),
        ("last_28d", DatePreset::LastDays(28)),
        ("last_30d", DatePreset::LastDays(30)),
        ("last_90d", DatePreset::LastDays(90)),
        ("this_week_mon_today", DatePreset::ThisWeekMonToday),
        ("this_week_sun_today", DatePreset::ThisWeekSunToday),
        ("last_week_mon_sun", DatePreset::LastWeekMonSun),
        ("last_week_sun_sat", DatePreset::LastWeekSunSat),
        ("maximum", DatePreset::Maximum),
        ("data_maximum", DatePreset::Maximum),
    ];

    pub fn parse(name: &str) -> Option<DatePreset> {
        DatePreset::NAMES.iter().find(|(known, _)| *known == name).map(|(_, preset)| *preset)
    }

    fn names() -> String {
        DatePreset::NAMES.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
    }

    /// The days the preset names, seen from `today`.
    pub fn resolve(self, today: Day) -> TimeRange {
        let t = today.0;
        let range = |since: Date, until: Date| TimeRange { since: Day(since), until: Day(until) };
        let quarter_start = |date: Date| Date::new(date.year(), (date.month() - 1) / 3 * 3 + 1, 1).expect("a quarter's first day exists");
        let shift = |date: Date, span: jiff::Span| date.checked_add(span).expect("dates stay far from the limits");
        let monday = shift(t, (-i64::from(t.weekday().to_monday_zero_offset())).days());
        let sunday = shift(t, (-i64::from(t.weekday().to_sunday_zero_offset())).days());
        match self {
            DatePreset::Today => range(t, t),
            DatePreset::Yesterday => range(shift(t, (-1).days()), shift(t, (-1).days())),
            DatePreset::ThisMonth => range(t.first_of_month(), t),
            DatePreset::LastMonth => {
                let last = shift(t.first_of_month(), (-1).days());
                range(last.first_of_month(), last)
            }
            DatePreset::ThisQuarter => range(quarter_start(t), t),
            DatePreset::LastQuarter => {
                let last = shift(quarter_start(t), (-1).days());
                range(quarter_start(last), last)
            }
            DatePreset::ThisYear => range(t.first_of_year(), t),
            DatePreset::LastYear => {
                let last = shift(t.first_of_year(), (-1).days());
                range(last.first_of_year(), last)
            }
            DatePreset::LastDays(days) => range(shift(t, (-days).days()), shift(t, (-1).days())),
            DatePreset::ThisWeekMonToday => range(monday, t),
            DatePreset::ThisWeekSunToday => range(sunday, t),
            DatePreset::LastWeekMonSun => range(shift(monday, (-7).days()), shift(monday, (-1).days())),
            DatePreset::LastWeekSunSat => range(shift(sunday, (-7).days()), shift(sunday, (-1).days())),
            DatePreset::Maximum => range(earliest_day(today).0, t),
        }
    }
}

/// How a range is cut into rows (`time_increment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeIncrement {
    /// One row for the whole range (`all_days`, the default).
    AllDays,
    /// One row per calendar month, clipped to the range (`monthly`).
    Monthly,
    /// Rows of N consecutive days from `since` (1 to 90), the last one clipped to `until`.
    Days(u8),
}

impl TimeIncrement {
    fn parse(raw: Option<&Value>) -> Result<TimeIncrement, InsightsError> {
        let invalid = |shown: String| InsightsError::TimeIncrement(format!("{shown} is not 1 to {TIME_INCREMENT_DAYS_MAX} (days), monthly or all_days"));
        let days = |number: Option<i64>, shown: String| match number {
            Some(days @ 1..=TIME_INCREMENT_DAYS_MAX) => Ok(TimeIncrement::Days(u8::try_from(days).expect("at most 90"))),
            _ => Err(invalid(shown)),
        };
        match given(raw) {
            None => Ok(TimeIncrement::AllDays),
            Some(Value::String(text)) => match text.trim() {
                "all_days" => Ok(TimeIncrement::AllDays),
                "monthly" => Ok(TimeIncrement::Monthly),
                digits => days(digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse::<i64>().ok()).flatten(), echo(text)),
            },
            Some(Value::Number(number)) => days(number.as_i64(), number.to_string()),
            Some(_) => Err(InsightsError::TimeIncrement(format!("time_increment must be 1 to {TIME_INCREMENT_DAYS_MAX} (days), monthly or all_days"))),
        }
    }
}

// ---------------------------------------------------------------- breakdowns, sort, limit

/// One of [`SYNCED_BREAKDOWNS`]: the columns a breakdowns row adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breakdown(usize);

impl Breakdown {
    /// Every synced breakdown.
    pub fn all() -> impl Iterator<Item = Breakdown> {
        (0..SYNCED_BREAKDOWNS.len()).map(Breakdown)
    }

    /// A breakdown by its key as synced (`"age,gender"`).
    pub fn from_key(key: &str) -> Option<Breakdown> {
        SYNCED_BREAKDOWNS.iter().position(|known| *known == key).map(Breakdown)
    }

    /// Its key: the columns joined with commas, as Graph's `breakdowns` takes them.
    pub fn key(self) -> &'static str {
        SYNCED_BREAKDOWNS[self.0]
    }

    /// Its columns, in the key's order (`age`, then `gender`).
    pub fn columns(self) -> impl Iterator<Item = &'static str> + Clone {
        self.key().split(',')
    }

    pub fn column_count(self) -> usize {
        self.columns().count()
    }

    /// `breakdowns` as a name (`"country"`), a comma-separated pair
    /// (`"age,gender"`) or a list (`["age", "gender"]`), in any order.
    fn parse(raw: Option<&Value>) -> Result<Breakdown, InsightsError> {
        let names = name_list(raw).map_err(|shape| InsightsError::Breakdowns(format!("breakdowns {shape}")))?;
        if names.is_empty() {
            return Err(InsightsError::Breakdowns("breakdowns is missing".to_owned()));
        }
        let mut asked: Vec<&str> = names.iter().map(String::as_str).collect();
        asked.sort_unstable();
        Breakdown::all()
            .find(|breakdown| {
                let mut columns: Vec<&str> = breakdown.columns().collect();
                columns.sort_unstable();
                columns == asked
            })
            .ok_or_else(|| InsightsError::Breakdowns(format!("{} is not a supported breakdown; supported: {}", echo(&names.join(",")), SYNCED_BREAKDOWNS.join(" | "))))
    }
}

/// A per-action-type list of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionList {
    Actions,
    ActionValues,
    Conversions,
    ConversionValues,
}

impl ActionList {
    pub const ALL: [ActionList; 4] = [ActionList::Actions, ActionList::ActionValues, ActionList::Conversions, ActionList::ConversionValues];

    pub fn field(self) -> Field {
        match self {
            ActionList::Actions => Field::Actions,
            ActionList::ActionValues => Field::ActionValues,
            ActionList::Conversions => Field::Conversions,
            ActionList::ConversionValues => Field::ConversionValues,
        }
    }
}

/// What `sort` orders breakdown rows by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// One of the single numbers of a row (`spend`, `cpc` …).
    Metric(Field),
    /// One action type of a list field (`actions:link_click`), or of
    /// `cost_per_action_type` / `purchase_roas`; 0 where the type is absent.
    ActionType { field: Field, action_type: String },
    /// A breakdown column of the query (`country`), by its position.
    Column(usize),
}

/// A `sort`: a key and a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Sort {
    /// `{field}_ascending` or `{field}_descending` (a bare field ascends, as
    /// Meta's default direction), given as a string or a list of one (Meta
    /// takes at most one). Not given: the default order, by the breakdown's
    /// columns.
    fn parse(raw: Option<&Value>, breakdown: Breakdown) -> Result<Option<Sort>, InsightsError> {
        let keys = name_list(raw).map_err(|shape| InsightsError::Sort(format!("sort {shape}")))?;
        let key = match keys.as_slice() {
            [] => return Ok(None),
            [key] => key,
            _ => return Err(InsightsError::Sort("sort takes one key".to_owned())),
        };
        let (name, descending) = match (key.strip_suffix("_descending"), key.strip_suffix("_ascending")) {
            (Some(name), _) => (name, true),
            (None, Some(name)) => (name, false),
            (None, None) => (key.as_str(), false),
        };
        let unsortable = || {
            let columns: Vec<&str> = breakdown.columns().collect();
            let metrics: Vec<&str> = Field::ALL.into_iter().filter(|f| f.sortable()).map(Field::name).collect();
            InsightsError::Sort(format!(
                "{} cannot be sorted by; write {{field}}_ascending or {{field}}_descending with a field of {}, {}, or actions:{{action_type}} (also action_values, conversions, conversion_values, cost_per_action_type, purchase_roas)",
                echo(key),
                metrics.join(", "),
                columns.join(", ")
            ))
        };
        let key = if let Some((field, action_type)) = name.split_once(':') {
            let field = Field::parse(field).filter(|f| f.action_list().is_some() || matches!(f, Field::CostPerActionType | Field::PurchaseRoas)).ok_or_else(unsortable)?;
            if action_type.is_empty() || action_type.chars().count() > ACTION_TYPE_CHARS_MAX {
                return Err(unsortable());
            }
            SortKey::ActionType { field, action_type: action_type.to_owned() }
        } else if let Some(field) = Field::parse(name).filter(|f| f.sortable()) {
            SortKey::Metric(field)
        } else {
            SortKey::Column(breakdown.columns().position(|column| column == name).ok_or_else(unsortable)?)
        };
        Ok(Some(Sort { key, descending }))
    }
}

/// `limit`: a whole number from 1 to [`LIMIT_MAX`], as a number or its text.
fn parse_limit(raw: Option<&Value>) -> Result<usize, InsightsError> {
    let number = match given(raw) {
        None => return Ok(LIMIT_MAX as usize),
        Some(Value::Number(number)) => number.as_i64(),
        Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match number {
        Some(limit @ 1..=LIMIT_MAX) => Ok(usize::try_from(limit).expect("at most 200")),
        Some(limit) if limit > LIMIT_MAX => Err(InsightsError::Limit(format!("limit {limit} is above the largest, {LIMIT_MAX}"))),
        Some(limit) => Err(InsightsError::Limit(format!("limit {limit} is below 1"))),
        None => Err(InsightsError::Limit(format!("limit must be a whole number from 1 to {LIMIT_MAX}"))),
    }
}

// ---------------------------------------------------------------- daily rows

/// Why a value Graph reported for a day could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("insights value {0}")]
pub struct GraphValueError(pub String);

/// An action type or value that no list may hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionStatError {
    #[error("an action type must be 1 to {ACTION_TYPE_CHARS_MAX} characters without control characters")]
    Type,
    #[error("an action type's value must be from 0 to {DAILY_VALUE_MAX} hundredths")]
    Value,
}

/// Per action type, a value in hundredths (a count, or money of the
/// account's currency): sorted by type, one entry per type, each type 1 to
/// 200 characters without control characters, each value from 0 to
/// [`DAILY_VALUE_MAX`]. Stored as `[["link_click", 2000], …]`, and read
/// back through [`ActionStats::new`], so a stored list obeys the same rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<(String, i64)>")]
pub struct ActionStats(Vec<(String, i64)>);

impl TryFrom<Vec<(String, i64)>> for ActionStats {
    type Error = ActionStatError;

    fn try_from(entries: Vec<(String, i64)>) -> Result<ActionStats, ActionStatError> {
        ActionStats::new(entries)
    }
}

impl ActionStats {
    /// From (type, hundredths) pairs; a type given twice adds up.
    pub fn new(entries: impl IntoIterator<Item = (String, i64)>) -> Result<ActionStats, ActionStatError> {
        let mut merged: BTreeMap<String, i64> = BTreeMap::new();
        for (action_type, hundredths) in entries {
            if action_type.is_empty() || action_type.chars().count() > ACTION_TYPE_CHARS_MAX || action_type.chars().any(char::is_control) {
                return Err(ActionStatError::Type);
            }
            let sum = merged.entry(action_type).or_default();
            *sum = sum.checked_add(hundredths).filter(|sum| (0..=DAILY_VALUE_MAX).contains(sum) && hundredths >= 0).ok_or(ActionStatError::Value)?;
        }
        Ok(ActionStats(merged.into_iter().collect()))
    }

    pub fn entries(&self) -> &[(String, i64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Graph's `[{"action_type", "value"}]`.
    fn from_graph(name: &str, value: &Value) -> Result<ActionStats, GraphValueError> {
        let malformed = || GraphValueError(format!("{name} is not a list of {{action_type, value}}"));
        let items = value.as_array().ok_or_else(malformed)?;
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let action_type = item.get("action_type").and_then(Value::as_str).ok_or_else(malformed)?;
            let hundredths = graph_hundredths(item.get("value").ok_or_else(malformed)?, name)?;
            entries.push((action_type.to_owned(), hundredths));
        }
        ActionStats::new(entries).map_err(|e| GraphValueError(format!("{name}: {e}")))
    }
}

/// The per-action-type lists of a day. Stored as an object of the lists
/// that are not empty (`{"actions": [["link_click", 2000]]}`, `{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActionLists {
    #[serde(default, skip_serializing_if = "ActionStats::is_empty")]
    pub actions: ActionStats,
    #[serde(default, skip_serializing_if = "ActionStats::is_empty")]
    pub action_values: ActionStats,
    #[serde(default, skip_serializing_if = "ActionStats::is_empty")]
    pub conversions: ActionStats,
    #[serde(default, skip_serializing_if = "ActionStats::is_empty")]
    pub conversion_values: ActionStats,
}

impl ActionLists {
    pub fn get(&self, list: ActionList) -> &ActionStats {
        match list {
            ActionList::Actions => &self.actions,
            ActionList::ActionValues => &self.action_values,
            ActionList::Conversions => &self.conversions,
            ActionList::ConversionValues => &self.conversion_values,
        }
    }

    fn get_mut(&mut self, list: ActionList) -> &mut ActionStats {
        match list {
            ActionList::Actions => &mut self.actions,
            ActionList::ActionValues => &mut self.action_values,
            ActionList::Conversions => &mut self.conversions,
            ActionList::ConversionValues => &mut self.conversion_values,
        }
    }

    /// The lists of a Graph row; absent lists are empty, other members are
    /// not looked at.
    pub fn from_graph(values: &Map<String, Value>) -> Result<ActionLists, GraphValueError> {
        let mut lists = ActionLists::default();
        for list in ActionList::ALL {
            let name = list.field().name();
            if let Some(value) = values.get(name).filter(|v| !v.is_null()) {
                *lists.get_mut(list) = ActionStats::from_graph(name, value)?;
            }
        }
        Ok(lists)
    }
}

/// What one day (of the account, or of one breakdown value) reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyMetrics {
    /// In cents (hundredths) of the account's currency.
    pub spend_cents: i64,
    pub impressions: i64,
    pub clicks: i64,
    pub reach: i64,
    pub inline_link_clicks: i64,
    pub total_postbacks: i64,
    pub action_lists: ActionLists,
}

impl DailyMetrics {
    /// The metrics of a Graph insights row (`spend` as a decimal string,
    /// counts as strings, the lists as `[{action_type, value}]`; numbers are
    /// read too). A metric the row does not have is 0. Every value must be
    /// a non-negative decimal of at most [`DAILY_VALUE_MAX`].
    pub fn from_graph(values: &Map<String, Value>) -> Result<DailyMetrics, GraphValueError> {
        let count = |name: &str| -> Result<i64, GraphValueError> {
            match values.get(name).filter(|v| !v.is_null()) {
                None => Ok(0),
                Some(value) => graph_number(value, name, 0),
            }
        };
        let spend_cents = match values.get("spend").filter(|v| !v.is_null()) {
            None => 0,
            Some(value) => graph_hundredths(value, "spend")?,
        };
        Ok(DailyMetrics {
            spend_cents,
            impressions: count("impressions")?,
            clicks: count("clicks")?,
            reach: count("reach")?,
            inline_link_clicks: count("inline_link_clicks")?,
            total_postbacks: count("total_postbacks")?,
            action_lists: ActionLists::from_graph(values)?,
        })
    }
}

/// One stored day: of the account (no breakdown values) or of one value of
/// a breakdown (one value per column of the breakdown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyRow {
    pub day: Day,
    pub breakdown_values: Vec<String>,
    pub metrics: DailyMetrics,
}

impl DailyRow {
    /// A row of a Graph answer for `day`: its metrics, and the values of the
    /// breakdown's columns (strings; Graph writes them so).
    pub fn from_graph(day: Day, breakdown: Option<Breakdown>, values: &Map<String, Value>) -> Result<DailyRow, GraphValueError> {
        let breakdown_values = match breakdown {
            None => Vec::new(),
            Some(breakdown) => breakdown
                .columns()
                .map(|column| match values.get(column) {
                    // No control character: storage joins the values of several columns with one.
                    Some(Value::String(value)) if !value.chars().any(char::is_control) => Ok(value.clone()),
                    _ => Err(GraphValueError(format!("breakdown column {column} is missing, not text, or holds a control character"))),
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(DailyRow { day, breakdown_values, metrics: DailyMetrics::from_graph(values)? })
    }
}

/// A count (`places` 0) or an amount in hundredths (`places` 2) from a Graph
/// value: a string or a number, a plain non-negative decimal. Hundredths
/// with more decimals are rounded half-up (Graph's floats sometimes have them).
fn graph_number(value: &Value, name: &str, places: u32) -> Result<i64, GraphValueError> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return Err(GraphValueError(format!("{name} is not a number"))),
    };
    let bad = |why: &str| GraphValueError(format!("{name} {} {why}", echo(&text)));
    let scaled = match parse_scaled(&text, places, DAILY_VALUE_MAX) {
        // Counts are whole; hundredths may come with more decimals from Graph's floats.
        Err(ScaledError::TooPrecise) if places > 0 => {
            // Read to 10^-8 and round to the scale.
            const EXTRA_PLACES: u32 = 8;
            let fine = parse_scaled(&text, places + EXTRA_PLACES, i64::MAX).map_err(|_| bad("is too large or too precise"))?;
            i64::try_from(div_round_half_up(i128::from(fine), 10i128.pow(EXTRA_PLACES))).expect("smaller than its input")
        }
        Err(ScaledError::Malformed) => return Err(bad("is not a non-negative decimal")),
        Err(ScaledError::TooPrecise) => return Err(bad("is not a whole number")),
        Err(ScaledError::TooLarge) => return Err(bad("is too large")),
        Ok(scaled) => scaled,
    };
    if scaled > DAILY_VALUE_MAX {
        return Err(bad("is too large"));
    }
    Ok(scaled)
}

fn graph_hundredths(value: &Value, name: &str) -> Result<i64, GraphValueError> {
    graph_number(value, name, 2)
}

// ---------------------------------------------------------------- answers

/// What the answer says of the account itself. The name and currency are
/// needed only when [`FieldSet::needs_account_details`]; a field whose
/// value is `None` is left out.
#[derive(Debug, Clone, Copy)]
pub struct AccountFacts<'a> {
    pub account_id: &'a str,
    pub name: Option<&'a str>,
    pub currency: Option<&'a str>,
}

/// A window's sums.
#[derive(Debug, Clone, Default)]
struct Totals {
    spend_cents: i64,
    impressions: i64,
    clicks: i64,
    reach: i64,
    inline_link_clicks: i64,
    total_postbacks: i64,
    lists: [BTreeMap<String, i64>; 4],
}

impl Totals {
    fn add(&mut self, day: &DailyMetrics) -> Result<(), AmountTooLarge> {
        let add = |sum: &mut i64, value: i64, what: &'static str| -> Result<(), AmountTooLarge> {
            *sum = sum.checked_add(value).ok_or(AmountTooLarge(what))?;
            Ok(())
        };
        add(&mut self.spend_cents, day.spend_cents, "spend")?;
        add(&mut self.impressions, day.impressions, "impressions")?;
        add(&mut self.clicks, day.clicks, "clicks")?;
        add(&mut self.reach, day.reach, "reach")?;
        add(&mut self.inline_link_clicks, day.inline_link_clicks, "inline_link_clicks")?;
        add(&mut self.total_postbacks, day.total_postbacks, "total_postbacks")?;
        for (index, list) in ActionList::ALL.into_iter().enumerate() {
            for (action_type, hundredths) in day.action_lists.get(list).entries() {
                match self.lists[index].get_mut(action_type.as_str()) {
                    Some(sum) => add(sum, *hundredths, "an action type's value")?,
                    None => {
                        self.lists[index].insert(action_type.clone(), *hundredths);
                    }
                }
            }
        }
        Ok(())
    }

    fn list(&self, list: ActionList) -> &BTreeMap<String, i64> {
        &self.lists[list as usize]
    }

    /// A single number of the row, in millionths for ratios, as stored for
    /// sums; `None` for a ratio over zero.
    fn metric(&self, field: Field) -> Option<i128> {
        let (spend, impressions, clicks, reach) = (i128::from(self.spend_cents), i128::from(self.impressions), i128::from(self.clicks), i128::from(self.reach));
        match field {
            Field::Spend => Some(spend),
            Field::Impressions => Some(impressions),
            Field::Clicks => Some(clicks),
            Field::Reach => Some(reach),
            Field::InlineLinkClicks => Some(i128::from(self.inline_link_clicks)),
            Field::TotalPostbacks => Some(i128::from(self.total_postbacks)),
            // Dollars per click: cents / 100 / clicks, in millionths.
            Field::Cpc => ratio_micros(spend * 10_000, clicks),
            // Dollars per 1,000 impressions.
            Field::Cpm => ratio_micros(spend * 10_000 * 1_000, impressions),
            // Clicks per 100 impressions.
            Field::Ctr => ratio_micros(clicks * 100 * MICROS, impressions),
            Field::Frequency => ratio_micros(impressions * MICROS, reach),
            _ => None,
        }
    }

    /// `cost_per_action_type`: spend / count of each action type, per type
    /// with a count above zero (in millionths of the currency).
    fn cost_per_action_type(&self) -> impl Iterator<Item = (&str, i128)> {
        // (cents / 100) / (hundredths / 100) = cents / hundredths.
        self.list(ActionList::Actions).iter().filter_map(|(action_type, count)| Some((action_type.as_str(), ratio_micros(i128::from(self.spend_cents) * MICROS, i128::from(*count))?)))
    }

    /// `purchase_roas`: the value of each purchase action type / spend
    /// (a ratio, in millionths); nothing when nothing was spent.
    fn purchase_roas(&self) -> impl Iterator<Item = (&str, i128)> {
        self.list(ActionList::ActionValues)
            .iter()
            .filter(|(action_type, _)| is_purchase(action_type))
            .filter_map(|(action_type, value)| Some((action_type.as_str(), ratio_micros(i128::from(*value) * MICROS, i128::from(self.spend_cents))?)))
    }

    fn sort_value<'a>(&'a self, key: &SortKey, values: &'a [String]) -> SortValue<'a> {
        let of_type = |mut entries: Box<dyn Iterator<Item = (&str, i128)> + '_>, wanted: &str| entries.find(|(action_type, _)| *action_type == wanted).map(|(_, value)| value);
        match key {
            SortKey::Metric(field) => SortValue::Number(self.metric(*field)),
            SortKey::ActionType { field: Field::CostPerActionType, action_type } => SortValue::Number(of_type(Box::new(self.cost_per_action_type()), action_type)),
            SortKey::ActionType { field: Field::PurchaseRoas, action_type } => SortValue::Number(of_type(Box::new(self.purchase_roas()), action_type)),
            SortKey::ActionType { field, action_type } => {
                let list = field.action_list().expect("parsed as a list field");
                SortValue::Number(Some(i128::from(self.list(list).get(action_type.as_str()).copied().unwrap_or(0))))
            }
            SortKey::Column(index) => SortValue::Text(values.get(*index).map_or("", String::as_str)),
        }
    }

    /// The row: `date_start`, `date_stop`, the breakdown's columns and the
    /// fields asked for.
    fn render(&self, fields: FieldSet, account: &AccountFacts<'_>, window: Window, columns: impl Iterator<Item = (&'static str, String)>) -> Map<String, Value> {
        let mut row = Map::new();
        row.insert(Field::DateStart.name().to_owned(), Value::String(window.start.to_string()));
        row.insert(Field::DateStop.name().to_owned(), Value::String(window.stop.to_string()));
        for (column, value) in columns {
            row.insert(column.to_owned(), Value::String(value));
        }
        for field in fields.iter() {
            let value = match field {
                Field::DateStart | Field::DateStop => continue,
                Field::AccountId => Some(Value::String(account.account_id.to_owned())),
                Field::AccountName => account.name.map(|name| Value::String(name.to_owned())),
                Field::AccountCurrency => account.currency.map(|currency| Value::String(currency.to_owned())),
                Field::Spend => Some(Value::String(format_minor(self.spend_cents))),
                Field::Impressions | Field::Clicks | Field::Reach | Field::InlineLinkClicks | Field::TotalPostbacks => self.metric(field).map(|count| Value::String(count.to_string())),
                Field::Cpc | Field::Cpm | Field::Ctr | Field::Frequency => self.metric(field).map(|micros| Value::String(format_micros(micros))),
                Field::Actions | Field::ActionValues | Field::Conversions | Field::ConversionValues => {
                    let list = field.action_list().expect("a list field");
                    list_value(self.list(list).iter().map(|(action_type, hundredths)| action_stat(action_type, format_hundredths(*hundredths))))
                }
                Field::CostPerActionType => list_value(self.cost_per_action_type().map(|(action_type, micros)| action_stat(action_type, format_micros(micros)))),
                Field::PurchaseRoas => list_value(self.purchase_roas().map(|(action_type, micros)| action_stat(action_type, format_micros(micros)))),
            };
            if let Some(value) = value {
                row.insert(field.name().to_owned(), value);
            }
        }
        row
    }
}

const MICROS: i128 = 1_000_000;

fn ratio_micros(numerator: i128, denominator: i128) -> Option<i128> {
    (denominator > 0).then(|| div_round_half_up(numerator, denominator))
}

/// Whether an action type is a purchase (`purchase`, `omni_purchase`,
/// `offsite_conversion.fb_pixel_purchase`, `app_custom_event.fb_mobile_purchase` …),
/// which `purchase_roas` reports.
fn is_purchase(action_type: &str) -> bool {
    action_type == "purchase" || action_type.ends_with("_purchase")
}

/// A row's value to sort by; `None` (a ratio over zero) before any number.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue<'a> {
    Number(Option<i128>),
    Text(&'a str),
}

fn action_stat(action_type: &str, value: String) -> Value {
    let mut stat = Map::new();
    stat.insert("action_type".to_owned(), Value::String(action_type.to_owned()));
    stat.insert("value".to_owned(), Value::String(value));
    Value::Object(stat)
}

/// A list, or nothing when it is empty (Graph leaves empty lists out).
fn list_value(stats: impl Iterator<Item = Value>) -> Option<Value> {
    let stats: Vec<Value> = stats.collect();
    (!stats.is_empty()).then_some(Value::Array(stats))
}

/// Millionths with six decimals, rounded already: `253333` → `"0.253333"`.
fn format_micros(micros: i128) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let magnitude = micros.unsigned_abs();
    format!("{sign}{}.{:06}", magnitude / 1_000_000, magnitude % 1_000_000)
}

/// Hundredths without trailing zeros: `300` → `"3"`, `1250` → `"12.5"`, `1234` → `"12.34"`.
fn format_hundredths(hundredths: i64) -> String {
    if hundredths % 100 == 0 {
        return (hundredths / 100).to_string();
    }
    let text = format_minor(hundredths);
    text.trim_end_matches('0').to_owned()
}

/// The rows of `account_insights`: one per window of the query's range that
/// has at least one stored day (Graph gives no row for a window without
/// delivery), oldest first. `days` are the account's stored days (without
/// breakdown); days outside the range are not counted. A row of `days` may
/// also be the sums of several days of one window, dated by one of them:
/// sums add up alike (storage adds up in the database what needs no list).
pub fn insights_rows(query: &InsightsQuery, account: &AccountFacts<'_>, days: &[DailyRow]) -> Result<Vec<Map<String, Value>>, AmountTooLarge> {
    let mut windows: BTreeMap<Window, Totals> = BTreeMap::new();
    for day in days.iter().filter(|day| query.range.contains(day.day)) {
        windows.entry(query.range.window_of(query.increment, day.day)).or_default().add(&day.metrics)?;
    }
    Ok(windows.into_iter().map(|(window, totals)| totals.render(query.fields, account, window, std::iter::empty())).collect())
}

/// The rows of `account_insights_breakdowns`: one per breakdown value with
/// at least one stored day in the range, summed over the range, sorted by
/// the query's `sort` (ties, and no `sort`, by the breakdown's columns
/// ascending), at most `limit`. `days` are the account's stored days of the
/// query's breakdown, or sums of several of them per value (as for
/// [`insights_rows`]); days outside the range are not counted.
pub fn breakdown_rows(query: &BreakdownsQuery, account: &AccountFacts<'_>, days: &[DailyRow]) -> Result<Vec<Map<String, Value>>, AmountTooLarge> {
    let mut groups: BTreeMap<&[String], Totals> = BTreeMap::new();
    for day in days.iter().filter(|day| query.range.contains(day.day)) {
        groups.entry(day.breakdown_values.as_slice()).or_default().add(&day.metrics)?;
    }
    let mut rows: Vec<(&[String], Totals)> = groups.into_iter().collect();
    if let Some(sort) = &query.sort {
        // Stable: rows that tie keep the columns' order.
        rows.sort_by(|(a_values, a), (b_values, b)| {
            let order = a.sort_value(&sort.key, a_values).cmp(&b.sort_value(&sort.key, b_values));
            if sort.descending { order.reverse() } else { order }
        });
    }
    rows.truncate(query.limit);
    let window = Window { start: query.range.since, stop: query.range.until };
    Ok(rows.into_iter().map(|(values, totals)| totals.render(query.fields, account, window, query.breakdown.columns().zip(values.iter().cloned()))).collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn day(text: &str) -> Day {
        parse_day(text).unwrap_or_else(|| panic!("{text} is a day"))
    }

    /// A Wednesday.
    fn today() -> Day {
        day("2024-05-15")
    }

    fn insights(params: Value) -> Result<InsightsQuery, InsightsError> {
        InsightsQuery::parse(&InsightsParams::of(&params), today())
    }

    fn breakdowns(params: Value) -> Result<BreakdownsQuery, InsightsError> {
        BreakdownsQuery::parse(&BreakdownsParams::of(&params), today())
    }

    fn may() -> Value {
        json!({"since": "2024-05-01", "until": "2024-05-10"})
    }

    fn fields_of(query: &InsightsQuery) -> Vec<&'static str> {
        query.fields().iter().map(Field::name).collect()
    }

    #[test]
    fn fields_are_read_from_a_list_its_json_text_or_commas() {
        for fields in [json!(["spend", " clicks ", "spend"]), json!("[\"spend\",\"clicks\"]"), json!("spend, clicks,,"), json!(["clicks", "", "spend"])] {
            let query = insights(json!({"fields": fields, "time_range": may()})).unwrap();
            assert_eq!(fields_of(&query), ["spend", "clicks"], "{fields}");
        }
        let every: Vec<&str> = Field::ALL.iter().filter(|f| **f != Field::TotalPostbacks).map(|f| f.name()).collect();
        assert_eq!(fields_of(&insights(json!({"fields": every, "time_range": may()})).unwrap()).len(), Field::ALL.len() - 1);
    }

    #[test]
    fn parameters_are_picked_from_a_body_by_name() {
        let body = json!({"fields": ["spend"], "time_range": may(), "date_preset": "today", "time_increment": 7, "breakdowns": "age", "sort": "spend", "limit": 5, "id": "1"});
        let p = InsightsParams::of(&body);
        assert_eq!((p.fields, p.time_range, p.date_preset, p.time_increment), (body.get("fields"), body.get("time_range"), body.get("date_preset"), body.get("time_increment")));
        let p = BreakdownsParams::of(&body);
        assert_eq!((p.breakdowns, p.sort, p.limit), (body.get("breakdowns"), body.get("sort"), body.get("limit")));
        // Not an object: nothing given.
        assert_eq!(InsightsQuery::parse(&InsightsParams::of(&json!(["spend"])), today()).unwrap_err(), InsightsError::FieldsEmpty);
    }

    #[test]
    fn fields_missing_or_empty_are_1009() {
        for params in [json!({}), json!({"fields": null}), json!({"fields": ""}), json!({"fields": "  "}), json!({"fields": []}), json!({"fields": [""]}), json!({"fields": ", ,"})] {
            let mut params = params;
            params["time_range"] = may();
            assert_eq!(insights(params.clone()).unwrap_err(), InsightsError::FieldsEmpty, "{params}");
        }
    }

    #[test]
    fn fields_unknown_or_not_names_are_1010() {
        let error = insights(json!({"fields": ["spend", "name"], "time_range": may()})).unwrap_err();
        assert!(matches!(&error, InsightsError::FieldsInvalid(why) if why.contains("\"name\"") && why.contains("purchase_roas")), "{error}");
        for fields in [json!([1]), json!(true), json!({"spend": 1}), json!("[1, 2]"), json!(["Spend"]), json!(["id"])] {
            assert!(matches!(insights(json!({"fields": fields, "time_range": may()})), Err(InsightsError::FieldsInvalid(_))), "{fields}");
        }
        let many: Vec<String> = (0..=FIELDS_GIVEN_MAX).map(|_| "spend".to_owned()).collect();
        assert!(matches!(insights(json!({"fields": many, "time_range": may()})), Err(InsightsError::FieldsInvalid(why)) if why.contains("at most")));
        // A long unknown name is echoed cut short.
        let long = "x".repeat(500);
        let InsightsError::FieldsInvalid(why) = insights(json!({"fields": [long], "time_range": may()})).unwrap_err() else { panic!() };
        assert!(why.len() < 700 && why.contains('…'), "{why}");
    }

    #[test]
    fn total_postbacks_only_alone_1017() {
        let query = insights(json!({"fields": ["total_postbacks", "date_start", "date_stop"], "time_range": may()})).unwrap();
        assert!(query.fields().contains(Field::TotalPostbacks));
        for fields in [json!(["total_postbacks", "spend"]), json!(["account_id", "total_postbacks"])] {
            assert_eq!(insights(json!({"fields": fields, "time_range": may()})).unwrap_err(), InsightsError::PostbacksNotAlone);
            assert_eq!(breakdowns(json!({"fields": fields, "time_range": may(), "breakdowns": "country"})).unwrap_err(), InsightsError::PostbacksNotAlone);
        }
        // Alone, it is not available by breakdown: only the account's total is synced.
        assert!(matches!(breakdowns(json!({"fields": ["total_postbacks"], "time_range": may(), "breakdowns": "country"})), Err(InsightsError::FieldsInvalid(_))));
    }

    #[test]
    fn time_range_is_an_object_or_its_json_text() {
        for range in [may(), json!("{\"since\": \"2024-05-01\", \"until\": \"2024-05-10\"}"), json!({"since": "2024-05-01", "until": "2024-05-10", "other": 1})] {
            let query = insights(json!({"fields": ["spend"], "time_range": range})).unwrap();
            assert_eq!((query.range().since(), query.range().until(), query.range().days()), (day("2024-05-01"), day("2024-05-10"), 10));
        }
        // One day.
        assert_eq!(insights(json!({"fields": ["spend"], "time_range": {"since": "2024-05-01", "until": "2024-05-01"}})).unwrap().range().days(), 1);
    }

    #[test]
    fn time_range_missing_or_malformed_is_1015() {
        let cases = [
            json!({"fields": ["spend"]}),
            json!({"fields": ["spend"], "time_range": null, "date_preset": null}),
            json!({"fields": ["spend"], "time_range": {"since": "2024-05-01"}}),
            json!({"fields": ["spend"], "time_range": {"until": "2024-05-01"}}),
            json!({"fields": ["spend"], "time_range": {"since": "2024-5-01", "until": "2024-05-10"}}),
            json!({"fields": ["spend"], "time_range": {"since": "2024-02-30", "until": "2024-05-10"}}),
            json!({"fields": ["spend"], "time_range": {"since": "2024/05/01", "until": "2024-05-10"}}),
            json!({"fields": ["spend"], "time_range": {"since": 20240501, "until": "2024-05-10"}}),
            json!({"fields": ["spend"], "time_range": {"since": "2024-05-11", "until": "2024-05-10"}}),
            json!({"fields": ["spend"], "time_range": "2024-05-01"}),
            json!({"fields": ["spend"], "time_range": ["2024-05-01", "2024-05-10"]}),
            // A malformed range is not replaced by the preset.
            json!({"fields": ["spend"], "time_range": {"since": "x"}, "date_preset": "last_7d"}),
            json!({"fields": ["spend"], "date_preset": "last_2d"}),
            json!({"fields": ["spend"], "date_preset": 7}),
        ];
        for params in cases {
            assert!(matches!(insights(params.clone()), Err(InsightsError::TimeRange(_))), "{params}: {:?}", insights(params.clone()));
        }
        let InsightsError::TimeRange(why) = insights(json!({"fields": ["spend"], "time_range": {"since": "2024-05-11", "until": "2024-05-10"}})).unwrap_err() else { panic!() };
        assert!(why.contains("after"), "{why}");
        assert!(matches!(breakdowns(json!({"fields": ["spend"], "breakdowns": "country"})), Err(InsightsError::TimeRange(_))));
    }

    #[test]
    fn date_preset_is_ignored_when_time_range_is_given() {
        let query = insights(json!({"fields": ["spend"], "time_range": may(), "date_preset": "yesterday"})).unwrap();
        assert_eq!(query.range().since(), day("2024-05-01"));
        let query = insights(json!({"fields": ["spend"], "time_range": "", "date_preset": " yesterday "})).unwrap();
        assert_eq!((query.range().since(), query.range().until()), (day("2024-05-14"), day("2024-05-14")));
        let query = breakdowns(json!({"fields": ["spend"], "date_preset": "last_7d", "breakdowns": "age"})).unwrap();
        assert_eq!((query.range().since(), query.range().until()), (day("2024-05-08"), day("2024-05-14")));
    }

    #[test]
    fn date_presets_resolve_as_meta_counts_them() {
        let cases = [
            ("today", "2024-05-15", "2024-05-15"),
            ("yesterday", "2024-05-14", "2024-05-14"),
            ("this_month", "2024-05-01", "2024-05-15"),
            ("last_month", "2024-04-01", "2024-04-30"),
            ("this_quarter", "2024-04-01", "2024-05-15"),
            ("last_quarter", "2024-01-01", "2024-03-31"),
            ("this_year", "2024-01-01", "2024-05-15"),
            ("last_year", "2023-01-01", "2023-12-31"),
            ("last_3d", "2024-05-12", "2024-05-14"),
            ("last_7d", "2024-05-08", "2024-05-14"),
            ("last_14d", "2024-05-01", "2024-05-14"),
            ("last_28d", "2024-04-17", "2024-05-14"),
            ("last_30d", "2024-04-15", "2024-05-14"),
            ("last_90d", "2024-02-15", "2024-05-14"),
            ("this_week_mon_today", "2024-05-13", "2024-05-15"),
            ("this_week_sun_today", "2024-05-12", "2024-05-15"),
            ("last_week_mon_sun", "2024-05-06", "2024-05-12"),
            ("last_week_sun_sat", "2024-05-05", "2024-05-11"),
            ("maximum", "2021-04-15", "2024-05-15"),
            ("data_maximum", "2021-04-15", "2024-05-15"),
        ];
        assert_eq!(cases.len(), DatePreset::NAMES.len());
        for (name, since, until) in cases {
            let range = DatePreset::parse(name).unwrap().resolve(today());
            assert_eq!((range.since().to_string(), range.until().to_string()), (since.to_owned(), until.to_owned()), "{name}");
        }
        // Across a year's start, and on a Sunday and a Monday.
        let january = day("2024-01-10");
        let resolve = |name: &str, today: Day| {
            let range = DatePreset::parse(name).unwrap().resolve(today);
            (range.since().to_string(), range.until().to_string())
        };
        assert_eq!(resolve("last_month", january), ("2023-12-01".to_owned(), "2023-12-31".to_owned()));
        assert_eq!(resolve("last_quarter", january), ("2023-10-01".to_owned(), "2023-12-31".to_owned()));
        assert_eq!(resolve("this_week_sun_today", day("2024-05-12")), ("2024-05-12".to_owned(), "2024-05-12".to_owned()));
        assert_eq!(resolve("this_week_mon_today", day("2024-05-12")), ("2024-05-06".to_owned(), "2024-05-12".to_owned()));
        assert_eq!(resolve("last_week_mon_sun", day("2024-05-13")), ("2024-05-06".to_owned(), "2024-05-12".to_owned()));
    }

    #[test]
    fn a_start_more_than_37_months_back_is_1016() {
        assert_eq!(earliest_day(today()), day("2021-04-15"));
        // Month ends clamp: 37 months before 2027-03-31 is 2024-02-29.
        assert_eq!(earliest_day(day("2027-03-31")), day("2024-02-29"));
        let since = |since: &str| insights(json!({"fields": ["spend"], "time_range": {"since": since, "until": "2024-05-01"}}));
        assert!(since("2021-04-15").is_ok());
        assert_eq!(since("2021-04-14").unwrap_err(), InsightsError::TooFarBack { since: day("2021-04-14"), earliest: day("2021-04-15") });
        assert!(insights(json!({"fields": ["spend"], "date_preset": "maximum"})).is_ok());
        let error = breakdowns(json!({"fields": ["spend"], "breakdowns": "age", "time_range": {"since": "2020-01-01", "until": "2020-02-01"}})).unwrap_err();
        assert!(matches!(error, InsightsError::TooFarBack { .. }));
        assert!(error.to_string().contains("2021-04-15"), "{error}");
    }

    #[test]
    fn time_increment_is_days_monthly_or_all_days() {
        let increment = |value: Value| insights(json!({"fields": ["spend"], "time_range": may(), "time_increment": value})).map(|q| q.increment());
        assert_eq!(insights(json!({"fields": ["spend"], "time_range": may()})).unwrap().increment(), TimeIncrement::AllDays);
        for (value, expected) in [
            (json!(null), TimeIncrement::AllDays),
            (json!(""), TimeIncrement::AllDays),
            (json!("all_days"), TimeIncrement::AllDays),
            (json!("monthly"), TimeIncrement::Monthly),
            (json!(1), TimeIncrement::Days(1)),
            (json!("1"), TimeIncrement::Days(1)),
            (json!(" 7 "), TimeIncrement::Days(7)),
            (json!(90), TimeIncrement::Days(90)),
            (json!("90"), TimeIncrement::Days(90)),
        ] {
            assert_eq!(increment(value.clone()), Ok(expected), "{value}");
        }
        for value in [json!(0), json!(91), json!("91"), json!("0"), json!(-1), json!("-1"), json!(1.5), json!("1.5"), json!("daily"), json!("Monthly"), json!(true), json!([1])] {
            assert!(matches!(increment(value.clone()), Err(InsightsError::TimeIncrement(_))), "{value}");
        }
    }

    #[test]
    fn rows_by_day_span_at_most_90_days_1025() {
        let query = |until: &str, increment: Value| insights(json!({"fields": ["spend"], "time_range": {"since": "2024-01-01", "until": until}, "time_increment": increment}));
        // 2024-01-01 ..= 2024-03-30 is 90 days (a leap year).
        assert!(query("2024-03-30", json!(1)).is_ok());
        assert_eq!(query("2024-03-31", json!(1)).unwrap_err(), InsightsError::DailyRangeTooLong { days: 91 });
        assert_eq!(query("2024-03-31", json!(30)).unwrap_err(), InsightsError::DailyRangeTooLong { days: 91 });
        assert!(query("2024-05-14", json!("monthly")).is_ok());
        assert!(query("2024-05-14", json!("all_days")).is_ok());
        // An invalid increment is 1024 before the span is looked at.
        assert!(matches!(query("2024-05-14", json!(0)), Err(InsightsError::TimeIncrement(_))));
    }

    #[test]
    fn breakdowns_are_the_synced_ones_in_any_form() {
        let breakdown = |value: Value| breakdowns(json!({"fields": ["spend"], "time_range": may(), "breakdowns": value})).map(|q| q.breakdown().key());
        for (value, key) in [
            (json!("country"), "country"),
            (json!(["country"]), "country"),
            (json!("[\"region\"]"), "region"),
            (json!("age,gender"), "age,gender"),
            (json!("gender, age"), "age,gender"),
            (json!(["gender", "age"]), "age,gender"),
            (json!("publisher_platform"), "publisher_platform"),
        ] {
            assert_eq!(breakdown(value.clone()), Ok(key), "{value}");
        }
        for key in SYNCED_BREAKDOWNS {
            assert_eq!(Breakdown::from_key(key).unwrap().key(), key);
            assert_eq!(breakdown(json!(key)), Ok(key));
        }
        assert_eq!(Breakdown::from_key("age,gender").unwrap().columns().collect::<Vec<_>>(), ["age", "gender"]);
        for value in [json!(null), json!(""), json!([]), json!("device_platform"), json!("age,country"), json!(["age", "age"]), json!("age,gender,country"), json!(7), json!([1])] {
            assert!(matches!(breakdown(value.clone()), Err(InsightsError::Breakdowns(_))), "{value}");
        }
        let InsightsError::Breakdowns(why) = breakdown(json!("dma")).unwrap_err() else { panic!() };
        assert!(why.contains("publisher_platform"), "{why}");
    }

    #[test]
    fn sort_is_one_sortable_field_with_a_direction() {
        let sort = |value: Value, breakdown: &str| breakdowns(json!({"fields": ["spend"], "time_range": may(), "breakdowns": breakdown, "sort": value})).map(|q| q.sort().cloned());
        let some = |key: SortKey, descending: bool| Ok(Some(Sort { key, descending }));
        assert_eq!(sort(json!(null), "country"), Ok(None));
        assert_eq!(sort(json!(""), "country"), Ok(None));
        assert_eq!(sort(json!([]), "country"), Ok(None));
        assert_eq!(sort(json!("spend_descending"), "country"), some(SortKey::Metric(Field::Spend), true));
        assert_eq!(sort(json!(["reach_ascending"]), "country"), some(SortKey::Metric(Field::Reach), false));
        assert_eq!(sort(json!("[\"cpc_descending\"]"), "country"), some(SortKey::Metric(Field::Cpc), true));
        assert_eq!(sort(json!("impressions"), "country"), some(SortKey::Metric(Field::Impressions), false));
        assert_eq!(sort(json!("gender_descending"), "age,gender"), some(SortKey::Column(1), true));
        assert_eq!(sort(json!("actions:link_click_descending"), "country"), some(SortKey::ActionType { field: Field::Actions, action_type: "link_click".to_owned() }, true));
        assert_eq!(sort(json!("purchase_roas:omni_purchase_ascending"), "country"), some(SortKey::ActionType { field: Field::PurchaseRoas, action_type: "omni_purchase".to_owned() }, false));
        for value in [
            json!("country_descending"),
            json!("name_descending"),
            json!("account_id_descending"),
            json!("date_start_ascending"),
            json!("actions_descending"),
            json!("actions:_descending"),
            json!("spend:x_descending"),
            json!(["spend_descending", "reach_descending"]),
            json!(5),
            json!({"spend": "descending"}),
        ] {
            assert!(matches!(sort(value.clone(), "age"), Err(InsightsError::Sort(_))), "{value}");
        }
    }

    #[test]
    fn action_lists_are_read_only_when_needed() {
        assert!(!insights(json!({"fields": ["spend", "cpc", "account_name"], "time_range": may()})).unwrap().needs_action_lists());
        for field in ["actions", "action_values", "conversions", "conversion_values", "cost_per_action_type", "purchase_roas"] {
            assert!(insights(json!({"fields": ["spend", field], "time_range": may()})).unwrap().needs_action_lists(), "{field}");
        }
        let query = |sort: &str| breakdowns(json!({"fields": ["spend"], "time_range": may(), "breakdowns": "country", "sort": sort})).unwrap();
        assert!(!query("spend_descending").needs_action_lists());
        assert!(query("actions:link_click_descending").needs_action_lists());
        assert!(query("purchase_roas:omni_purchase").needs_action_lists());
        assert!(insights(json!({"fields": ["account_currency"], "time_range": may()})).unwrap().fields().needs_account_details());
        assert!(!insights(json!({"fields": ["account_id"], "time_range": may()})).unwrap().fields().needs_account_details());
    }

    #[test]
    fn limit_is_1_to_200_and_defaults_to_200() {
        let limit = |value: Value| breakdowns(json!({"fields": ["spend"], "time_range": may(), "breakdowns": "country", "limit": value})).map(|q| q.limit());
        assert_eq!(limit(json!(null)), Ok(200));
        assert_eq!(limit(json!(1)), Ok(1));
        assert_eq!(limit(json!("50")), Ok(50));
        assert_eq!(limit(json!(200)), Ok(200));
        for value in [json!(201), json!("201"), json!(0), json!(-5), json!(1.5), json!("abc"), json!(true), json!(1e30)] {
            assert!(matches!(limit(value.clone()), Err(InsightsError::Limit(_))), "{value}");
        }
        assert!(limit(json!(201)).unwrap_err().to_string().contains("200"));
    }

    #[test]
    fn errors_come_in_the_specs_order() {
        // Fields before the time range, the time range before the breakdowns, then sort, then limit.
        assert_eq!(breakdowns(json!({"limit": 0, "sort": 1})).unwrap_err(), InsightsError::FieldsEmpty);
        assert!(matches!(breakdowns(json!({"fields": ["spend"], "limit": 0, "sort": 1})), Err(InsightsError::TimeRange(_))));
        assert!(matches!(breakdowns(json!({"fields": ["spend"], "time_range": may(), "limit": 0, "sort": 1})), Err(InsightsError::Breakdowns(_))));
        assert!(matches!(breakdowns(json!({"fields": ["spend"], "time_range": may(), "breakdowns": "age", "limit": 0, "sort": 1})), Err(InsightsError::Sort(_))));
        assert!(matches!(breakdowns(json!({"fields": ["spend"], "time_range": may(), "breakdowns": "age", "limit": 0})), Err(InsightsError::Limit(_))));
        assert!(matches!(insights(json!({"fields": ["nope"], "time_increment": 0})), Err(InsightsError::FieldsInvalid(_))));
        assert!(matches!(insights(json!({"fields": ["spend"], "time_increment": 0})), Err(InsightsError::TimeRange(_))));
    }

    // ------------------------------------------------------------ Graph rows

    #[test]
    fn graph_rows_are_read_as_graph_writes_them() {
        let values = json!({
            "spend": "12.34", "impressions": "1000", "clicks": 25, "reach": "800", "inline_link_clicks": "20",
            "actions": [{"action_type": "link_click", "value": "20"}, {"action_type": "omni_purchase", "value": "2", "7d_click": "2"}, {"action_type": "link_click", "value": "1.5"}],
            "action_values": [{"action_type": "omni_purchase", "value": "99.90"}],
            "date_start": "2024-05-01", "date_stop": "2024-05-01", "country": "US"
        });
        let row = DailyRow::from_graph(day("2024-05-01"), Breakdown::from_key("country"), values.as_object().unwrap()).unwrap();
        assert_eq!(row.breakdown_values, ["US"]);
        let m = &row.metrics;
        assert_eq!((m.spend_cents, m.impressions, m.clicks, m.reach, m.inline_link_clicks, m.total_postbacks), (1234, 1000, 25, 800, 20, 0));
        assert_eq!(m.action_lists.actions.entries(), [("link_click".to_owned(), 2150), ("omni_purchase".to_owned(), 200)]);
        assert_eq!(m.action_lists.action_values.entries(), [("omni_purchase".to_owned(), 9990)]);
        assert!(m.action_lists.conversions.is_empty());
        // What storage keeps reads back the same.
        let stored = serde_json::to_string(&m.action_lists).unwrap();
        assert_eq!(stored, r#"{"actions":[["link_click",2150],["omni_purchase",200]],"action_values":[["omni_purchase",9990]]}"#);
        assert_eq!(serde_json::from_str::<ActionLists>(&stored).unwrap(), m.action_lists);
        assert_eq!(serde_json::to_string(&ActionLists::default()).unwrap(), "{}");
        // A stored list obeys the rules of any list.
        for bad in [r#"{"actions":[["",1]]}"#, r#"{"actions":[["x",-1]]}"#, r#"{"actions":[["x",1000000000000001]]}"#, r#"{"actions":[["x\n",1]]}"#, r#"{"actions":{"x":1}}"#] {
            assert!(serde_json::from_str::<ActionLists>(bad).is_err(), "{bad}");
        }
        // More than cents is rounded half-up; numbers are read like strings.
        let rounded = DailyMetrics::from_graph(json!({"spend": "0.125", "impressions": 3.0}).as_object().unwrap()).unwrap();
        assert_eq!((rounded.spend_cents, rounded.impressions), (13, 3));
        assert_eq!(DailyMetrics::from_graph(&Map::new()).unwrap(), DailyMetrics::default());
    }

    #[test]
    fn graph_values_that_are_not_plain_decimals_are_refused() {
        for values in [
            json!({"spend": "abc"}),
            json!({"spend": "-1.00"}),
            json!({"spend": "1e3"}),
            json!({"spend": true}),
            json!({"impressions": "1.5"}),
            json!({"clicks": "10000000000000000000"}),
            json!({"spend": "10000000000000.01"}),
            json!({"actions": "link_click"}),
            json!({"actions": [{"action_type": "link_click"}]}),
            json!({"actions": [{"value": "1"}]}),
            json!({"actions": [{"action_type": "", "value": "1"}]}),
            json!({"conversion_values": [{"action_type": "x", "value": "-1"}]}),
            json!({"actions": [{"action_type": "x", "value": "6000000000000"}, {"action_type": "x", "value": "6000000000000"}]}),
        ] {
            assert!(DailyMetrics::from_graph(values.as_object().unwrap()).is_err(), "{values}");
        }
        let no_column = DailyRow::from_graph(day("2024-05-01"), Breakdown::from_key("age,gender"), json!({"age": "18-24", "spend": "1"}).as_object().unwrap());
        assert!(no_column.unwrap_err().to_string().contains("gender"));
        for country in [json!(1), json!("U\u{1f}S"), json!("US\n")] {
            assert!(DailyRow::from_graph(day("2024-05-01"), Breakdown::from_key("country"), json!({ "country": country }).as_object().unwrap()).is_err(), "{country}");
        }
    }

    // ------------------------------------------------------------ answers

    fn metrics(spend_cents: i64, impressions: i64, clicks: i64, reach: i64) -> DailyMetrics {
        DailyMetrics { spend_cents, impressions, clicks, reach, inline_link_clicks: clicks / 2, ..DailyMetrics::default() }
    }

    fn plain(on: &str, metrics: DailyMetrics) -> DailyRow {
        DailyRow { day: day(on), breakdown_values: Vec::new(), metrics }
    }

    fn by(on: &str, values: &[&str], metrics: DailyMetrics) -> DailyRow {
        DailyRow { day: day(on), breakdown_values: values.iter().map(|v| (*v).to_owned()).collect(), metrics }
    }

    fn account() -> AccountFacts<'static> {
        AccountFacts { account_id: "1234567890", name: Some("Shop A"), currency: Some("USD") }
    }

    fn stats(entries: &[(&str, i64)]) -> ActionStats {
        ActionStats::new(entries.iter().map(|(t, v)| ((*t).to_owned(), *v))).unwrap()
    }

    #[test]
    fn a_window_sums_its_days_and_derives_ratios_from_the_sums() {
        let mut first = metrics(1000, 1500, 30, 1000);
        first.action_lists.actions = stats(&[("link_click", 2000), ("omni_purchase", 200)]);
        first.action_lists.action_values = stats(&[("omni_purchase", 5000), ("lead", 300)]);
        first.total_postbacks = 4;
        let mut second = metrics(234, 500, 0, 500);
        second.action_lists.actions = stats(&[("omni_purchase", 100)]);
        second.action_lists.conversions = stats(&[("purchase", 100)]);
        second.action_lists.conversion_values = stats(&[("purchase", 1999)]);
        let days = [plain("2024-05-01", first), plain("2024-05-03", second), plain("2024-04-30", metrics(99_999, 1, 1, 1))];
        let every: Vec<&str> = Field::ALL.iter().filter(|f| **f != Field::TotalPostbacks).map(|f| f.name()).collect();
        let query = insights(json!({"fields": every, "time_range": may()})).unwrap();
        let rows = insights_rows(&query, &account(), &days).unwrap();
        assert_eq!(
            rows,
            [json!({
                "account_id": "1234567890", "account_name": "Shop A", "account_currency": "USD",
                "date_start": "2024-05-01", "date_stop": "2024-05-10",
                "spend": "12.34", "impressions": "2000", "clicks": "30", "reach": "1500", "inline_link_clicks": "15",
                // 12.34 / 30; 12.34 / 2 per 1,000; 30 / 2000 × 100; 2000 / 1500.
                "cpc": "0.411333", "cpm": "6.170000", "ctr": "1.500000", "frequency": "1.333333",
                "actions": [{"action_type": "link_click", "value": "20"}, {"action_type": "omni_purchase", "value": "3"}],
                "action_values": [{"action_type": "lead", "value": "3"}, {"action_type": "omni_purchase", "value": "50"}],
                "conversions": [{"action_type": "purchase", "value": "1"}],
                "conversion_values": [{"action_type": "purchase", "value": "19.99"}],
                // 12.34 / 20 and 12.34 / 3.
                "cost_per_action_type": [{"action_type": "link_click", "value": "0.617000"}, {"action_type": "omni_purchase", "value": "4.113333"}],
                // 50 / 12.34: only purchase types.
                "purchase_roas": [{"action_type": "omni_purchase", "value": "4.051864"}],
            })
            .as_object()
            .unwrap()
            .clone()]
        );
        let postbacks = insights(json!({"fields": ["total_postbacks"], "time_range": may()})).unwrap();
        assert_eq!(insights_rows(&postbacks, &account(), &days).unwrap()[0]["total_postbacks"], json!("4"));
    }

    #[test]
    fn ratios_over_zero_and_empty_lists_are_left_out() {
        let query = insights(
            json!({"fields": ["spend", "clicks", "cpc", "cpm", "ctr", "frequency", "actions", "cost_per_action_type", "purchase_roas", "account_name", "account_currency"], "time_range": may()}),
        )
        .unwrap();
        let mut zero = metrics(0, 0, 0, 0);
        zero.action_lists.action_values = stats(&[("omni_purchase", 100)]);
        let facts = AccountFacts { account_id: "1", name: None, currency: None };
        let rows = insights_rows(&query, &facts, &[plain("2024-05-02", zero)]).unwrap();
        assert_eq!(rows, [json!({"date_start": "2024-05-01", "date_stop": "2024-05-10", "spend": "0.00", "clicks": "0"}).as_object().unwrap().clone()]);
        // No stored day in the range: no row at all, as Graph answers.
        assert!(insights_rows(&query, &facts, &[plain("2024-04-02", metrics(1, 1, 1, 1))]).unwrap().is_empty());
    }

    #[test]
    fn windows_follow_the_increment_and_skip_windows_without_days() {
        let days: Vec<DailyRow> = ["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-29", "2024-04-02"].iter().map(|on| plain(on, metrics(100, 10, 1, 5))).collect();
        let rows = |increment: Value| {
            let query = insights(json!({"fields": ["spend"], "time_range": {"since": "2024-01-31", "until": "2024-04-02"}, "time_increment": increment})).unwrap();
            insights_rows(&query, &account(), &days)
                .unwrap()
                .iter()
                .map(|row| format!("{}..{} {}", row["date_start"].as_str().unwrap(), row["date_stop"].as_str().unwrap(), row["spend"].as_str().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(json!("all_days")), ["2024-01-31..2024-04-02 4.00"]);
        assert_eq!(rows(json!("monthly")), ["2024-01-31..2024-01-31 1.00", "2024-02-01..2024-02-29 2.00", "2024-04-01..2024-04-02 1.00"]);
        assert_eq!(rows(json!(30)), ["2024-01-31..2024-02-29 3.00", "2024-03-31..2024-04-02 1.00"]);
        assert_eq!(rows(json!(1)).len(), 4);
    }

    #[test]
    fn breakdown_rows_are_grouped_sorted_and_cut() {
        let mut us = metrics(500, 1000, 10, 900);
        us.action_lists.actions = stats(&[("link_click", 500)]);
        let days = [
            by("2024-05-01", &["US"], us.clone()),
            by("2024-05-02", &["US"], us),
            by("2024-05-01", &["DE"], metrics(2000, 100, 4, 90)),
            by("2024-05-01", &["FR"], metrics(1000, 3000, 0, 100)),
            by("2024-05-02", &["BR"], metrics(1000, 50, 1, 50)),
            by("2024-06-02", &["JP"], metrics(1_000_000, 50, 1, 50)),
        ];
        let run = |sort: Value, limit: Value| {
            let query = breakdowns(json!({"fields": ["spend", "account_id"], "time_range": may(), "breakdowns": "country", "sort": sort, "limit": limit})).unwrap();
            breakdown_rows(&query, &account(), &days).unwrap().iter().map(|row| format!("{} {}", row["country"].as_str().unwrap(), row["spend"].as_str().unwrap())).collect::<Vec<_>>()
        };
        assert_eq!(run(json!(null), json!(null)), ["BR 10.00", "DE 20.00", "FR 10.00", "US 10.00"]);
        // Ties keep the columns' order, whichever the direction.
        assert_eq!(run(json!("spend_descending"), json!(null)), ["DE 20.00", "BR 10.00", "FR 10.00", "US 10.00"]);
        assert_eq!(run(json!("spend_ascending"), json!(2)), ["BR 10.00", "FR 10.00"]);
        assert_eq!(run(json!("country_descending"), json!(null)), ["US 10.00", "FR 10.00", "DE 20.00", "BR 10.00"]);
        // No clicks: no cpc, which sorts before any.
        assert_eq!(run(json!("cpc_ascending"), json!(null)), ["FR 10.00", "US 10.00", "DE 20.00", "BR 10.00"]);
        assert_eq!(run(json!("actions:link_click_descending"), json!(1)), ["US 10.00"]);
        assert_eq!(run(json!("cost_per_action_type:link_click_descending"), json!(1)), ["US 10.00"]);
        let query = breakdowns(json!({"fields": ["spend", "account_id"], "time_range": may(), "breakdowns": "country", "limit": 1})).unwrap();
        assert_eq!(
            Value::Object(breakdown_rows(&query, &account(), &days).unwrap().remove(0)),
            json!({"country": "BR", "spend": "10.00", "account_id": "1234567890", "date_start": "2024-05-01", "date_stop": "2024-05-10"})
        );
    }

    #[test]
    fn two_column_breakdowns_give_both_columns() {
        let days = [by("2024-05-01", &["18-24", "female"], metrics(100, 10, 1, 10)), by("2024-05-01", &["18-24", "male"], metrics(300, 10, 1, 10))];
        let query = breakdowns(json!({"fields": ["impressions"], "time_range": may(), "breakdowns": ["gender", "age"], "sort": "spend_descending"})).unwrap();
        let rows = breakdown_rows(&query, &account(), &days).unwrap();
        assert_eq!(Value::Object(rows[0].clone()), json!({"age": "18-24", "gender": "male", "impressions": "10", "date_start": "2024-05-01", "date_stop": "2024-05-10"}));
        assert_eq!(rows[1]["gender"], json!("female"));
    }

    #[test]
    fn sums_past_i64_are_refused() {
        let query = insights(json!({"fields": ["spend"], "time_range": may()})).unwrap();
        let days = [plain("2024-05-01", metrics(i64::MAX, 0, 0, 0)), plain("2024-05-02", metrics(1, 0, 0, 0))];
        assert_eq!(insights_rows(&query, &account(), &days).unwrap_err(), AmountTooLarge("spend"));
    }

    #[test]
    fn numbers_are_written_one_way_each() {
        assert_eq!(format_micros(253_333), "0.253333");
        assert_eq!(format_micros(12_000_000), "12.000000");
        assert_eq!(format_hundredths(300), "3");
        assert_eq!(format_hundredths(1250), "12.5");
        assert_eq!(format_hundredths(1234), "12.34");
        assert_eq!(format_hundredths(5), "0.05");
        assert_eq!(format_hundredths(0), "0");
        assert!(is_purchase("offsite_conversion.fb_pixel_purchase") && is_purchase("purchase") && !is_purchase("purchases") && !is_purchase("add_to_cart"));
    }

    // ------------------------------------------------------------ properties

    fn any_day() -> impl Strategy<Value = Day> {
        (0i64..3_000).prop_map(|offset| add_days(day("2020-01-01"), offset))
    }

    fn any_increment() -> impl Strategy<Value = TimeIncrement> {
        prop_oneof![Just(TimeIncrement::AllDays), Just(TimeIncrement::Monthly), (1u8..=90).prop_map(TimeIncrement::Days)]
    }

    fn any_range() -> impl Strategy<Value = TimeRange> {
        (any_day(), 0i64..800).prop_map(|(since, length)| TimeRange::new(since, add_days(since, length)).unwrap())
    }

    proptest! {
        /// Windows cover the range, in order, without gap or overlap; monthly
        /// ones are calendar months clipped to it; N-day ones have N days but
        /// the last; and each day's window is the one that holds it.
        #[test]
        fn windows_tile_the_range(range in any_range(), increment in any_increment()) {
            let windows = range.windows(increment);
            prop_assert_eq!(windows[0].start, range.since());
            prop_assert_eq!(windows[windows.len() - 1].stop, range.until());
            for pair in windows.windows(2) {
                prop_assert_eq!(pair[0].stop.next(), pair[1].start);
            }
            for (index, window) in windows.iter().enumerate() {
                prop_assert!(window.start <= window.stop);
                match increment {
                    TimeIncrement::AllDays => prop_assert_eq!(windows.len(), 1),
                    TimeIncrement::Monthly => {
                        prop_assert_eq!(window.start.month(), window.stop.month());
                        prop_assert!(index == 0 || window.start.0.day() == 1);
                        prop_assert!(index == windows.len() - 1 || window.stop.0 == window.stop.0.last_of_month());
                    }
                    TimeIncrement::Days(days) => {
                        let length = TimeRange::new(window.start, window.stop).unwrap().days();
                        prop_assert!(length == i64::from(days) || (index == windows.len() - 1 && length < i64::from(days)));
                    }
                }
            }
            let mut at = range.since();
            for window in &windows {
                while at <= window.stop {
                    prop_assert_eq!(range.window_of(increment, at), *window);
                    at = at.next();
                }
            }
        }

        /// The spend of the rows adds up to the spend of the days in the range, whatever the increment.
        #[test]
        fn spend_over_windows_is_the_total(
            range in any_range(),
            increment in any_increment(),
            days in proptest::collection::btree_map(any_day(), 0i64..10_000_000, 0..60),
        ) {
            let rows: Vec<DailyRow> = days.iter().map(|(on, spend)| DailyRow { day: *on, breakdown_values: Vec::new(), metrics: metrics(*spend, 1, 1, 1) }).collect();
            let query = InsightsQuery { range, fields: FieldSet(Field::Spend.bit()), increment };
            let answer = insights_rows(&query, &account(), &rows).unwrap();
            let summed: i64 = answer.iter().map(|row| crate::money::parse_amount_minor(row["spend"].as_str().unwrap()).unwrap()).sum();
            let expected: i64 = days.iter().filter(|(on, _)| range.contains(**on)).map(|(_, spend)| spend).sum();
            prop_assert_eq!(summed, expected);
            // One row per window that has days, in order.
            let starts: Vec<&str> = answer.iter().map(|row| row["date_start"].as_str().unwrap()).collect();
            let mut sorted = starts.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(starts, sorted);
        }

        /// Breakdown rows are sorted as asked and, under the limit, hold all the spend.
        #[test]
        fn breakdown_rows_are_sorted_and_complete(
            days in proptest::collection::vec((0i64..10, 0usize..8, 0i64..1_000, 0i64..100), 0..80),
            descending in any::<bool>(),
            limit in 1usize..=10,
        ) {
            let rows: Vec<DailyRow> = days.iter().map(|(offset, value, spend, clicks)| DailyRow {
                day: add_days(day("2024-05-01"), *offset),
                breakdown_values: vec![format!("C{value}")],
                metrics: metrics(*spend, 100, *clicks, 10),
            }).collect();
            let range = TimeRange::new(day("2024-05-01"), day("2024-05-10")).unwrap();
            let breakdown = Breakdown::from_key("country").unwrap();
            let query = BreakdownsQuery { range, fields: FieldSet(Field::Spend.bit() | Field::Cpc.bit()), breakdown, sort: Some(Sort { key: SortKey::Metric(Field::Spend), descending }), limit };
            let answer = breakdown_rows(&query, &account(), &rows).unwrap();
            let groups: std::collections::BTreeSet<usize> = days.iter().map(|d| d.1).collect();
            prop_assert_eq!(answer.len(), groups.len().min(limit));
            let spends: Vec<i64> = answer.iter().map(|row| crate::money::parse_amount_minor(row["spend"].as_str().unwrap()).unwrap()).collect();
            for pair in spends.windows(2) {
                let ordered = if descending { pair[0] >= pair[1] } else { pair[0] <= pair[1] };
                prop_assert!(ordered, "{:?}", spends);
            }
            if groups.len() <= limit {
                prop_assert_eq!(spends.iter().sum::<i64>(), days.iter().map(|d| d.2).sum::<i64>());
            }
        }

        /// What storage writes of the lists reads back the same.
        #[test]
        fn action_lists_round_trip(entries in proptest::collection::btree_map("[a-z_.]{1,20}", 0i64..=DAILY_VALUE_MAX, 0..8)) {
            let lists = ActionLists { actions: ActionStats::new(entries.clone()).unwrap(), conversion_values: ActionStats::new(entries).unwrap(), ..ActionLists::default() };
            prop_assert_eq!(serde_json::from_str::<ActionLists>(&serde_json::to_string(&lists).unwrap()).unwrap(), lists);
        }

        /// Graph's decimals of the list values read back as written.
        #[test]
        fn list_values_read_as_written(hundredths in 0i64..=DAILY_VALUE_MAX) {
            prop_assert_eq!(graph_hundredths(&json!(format_hundredths(hundredths)), "value"), Ok(hundredths));
        }

        /// No parameter text makes the parsers panic.
        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}", number in any::<i64>()) {
            for value in [json!(text), json!(number), json!([text]), json!({"since": text, "until": text})] {
                let _ = insights(json!({"fields": value, "time_range": value, "date_preset": value, "time_increment": value}));
                let _ = insights(json!({"fields": ["spend"], "time_range": may(), "time_increment": value}));
                let _ = breakdowns(json!({"fields": ["spend"], "time_range": may(), "breakdowns": value, "sort": value, "limit": value}));
                let _ = breakdowns(json!({"fields": ["spend"], "time_range": may(), "breakdowns": "country", "sort": value}));
                let _ = DailyMetrics::from_graph(json!({"spend": value, "clicks": value, "actions": [{"action_type": "x", "value": value}]}).as_object().unwrap());
            }
        }
    }
}
