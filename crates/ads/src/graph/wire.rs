//! Graph's wire format: its error object, its cursor pages, and Meta's
//! objects read into the model. Pure functions, no I/O.
//!
//! Types as the `facebook-business` SDK declares them: `AdAccount.spend_cap`,
//! `amount_spent` and `balance` are strings of the account's minor unit
//! (cents for USD); `created_time` and `AdAccountCreationRequest.time_created`
//! are datetimes, which Graph writes `2024-05-01T10:00:00+0000`;
//! `account_status`, `disable_reason` and `timezone_id` are unsigned ints.

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Map, Value};

use crate::{AdAccount, Business, CreationRequest, InsightsRow, Pixel, PlatformError, PlatformResult};

/// Meta's error object (`{"error": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphError {
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub is_transient: bool,
}

/// Graph's error codes that mean "too many calls": application (4),
/// user (17), Pages (32), custom (613) and the business use case limits
/// (80000–80014).
pub(crate) fn is_rate_limit_code(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 613 | 80_000..=80_014)
}

impl GraphError {
    /// Reads the error object of an answer, if it has one.
    pub fn from_body(body: &Value) -> Option<GraphError> {
        let error = body.get("error")?.as_object()?;
        Some(GraphError {
            code: error.get("code").and_then(int_of).unwrap_or(0),
            subcode: error.get("error_subcode").and_then(int_of),
            message: error.get("message").and_then(Value::as_str).unwrap_or("").to_owned(),
            is_transient: error.get("is_transient").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// Object does not exist, or the token may not see it (code 100, subcode 33).
    pub fn is_not_found(&self) -> bool {
        self.code == 100 && self.subcode == Some(33)
    }

    pub fn is_rate_limit(&self) -> bool {
        is_rate_limit_code(self.code)
    }

    /// Meta's "unknown error" (1) and "service temporarily unavailable" (2),
    /// or an error Meta itself marks transient.
    pub fn is_transient(&self) -> bool {
        self.is_transient || matches!(self.code, 1 | 2)
    }
}

/// One page of a Graph edge: `{"data": [...], "paging": {"cursors": {"after"}, "next"}}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Page {
    pub data: Vec<Value>,
    /// Where the next page starts; `None` on the last page.
    pub more: Option<More>,
}

/// How to ask for the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum More {
    /// `paging.cursors.after`.
    After(String),
    /// `paging.next`, when it comes without a cursor (edges that page by offset).
    Next(String),
}

impl Page {
    pub fn from_body(body: Value) -> PlatformResult<Page> {
        let Value::Object(mut body) = body else { return Err(malformed("a list answer is not an object")) };
        let data = match body.remove("data") {
            Some(Value::Array(data)) => data,
            _ => return Err(malformed("a list answer has no data array")),
        };
        Ok(Page { data, more: body.get("paging").and_then(more) })
    }
}

/// Only a page that has `paging.next` has a successor (Graph sends
/// `cursors.after` on the last page too).
fn more(paging: &Value) -> Option<More> {
    let next = paging.get("next").and_then(Value::as_str)?;
    match paging.pointer("/cursors/after").and_then(Value::as_str) {
        Some(after) if !after.is_empty() => Some(More::After(after.to_owned())),
        _ => Some(More::Next(next.to_owned())),
    }
}

pub(crate) fn malformed(what: &str) -> PlatformError {
    PlatformError::Malformed(what.to_owned())
}

fn int_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn object(value: Value, what: &str) -> PlatformResult<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(PlatformError::Malformed(format!("{what} is not an object"))),
    }
}

fn text<'a>(object: &'a Map<String, Value>, field: &str) -> &'a str {
    object.get(field).and_then(Value::as_str).unwrap_or("")
}

/// An integer field: absent means Meta has no value for it (Graph leaves out
/// empty fields), anything else must be an integer.
fn integer(object: &Map<String, Value>, field: &str, what: &str) -> PlatformResult<i64> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => int_of(value).ok_or_else(|| PlatformError::Malformed(format!("{what}: {field} is not an integer"))),
    }
}

/// Money as Graph reads it: a string (or number) of whole minor units.
pub(crate) fn cents(object: &Map<String, Value>, field: &str, what: &str) -> PlatformResult<i64> {
    let cents = integer(object, field, what)?;
    if cents < 0 {
        return Err(PlatformError::Malformed(format!("{what}: {field} is negative")));
    }
    Ok(cents)
}

/// `spend_cap` as Graph writes it: the amount in the account's currency, so
/// cents / 100 with two decimals (`12345` → `"123.45"`). Only currencies of
/// 100 minor units (USD, the only one resold) are meant.
pub(crate) fn dollars(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A Graph datetime (`2024-05-01T10:00:00+0000`, RFC 3339 too, or seconds
/// since the epoch) as microseconds since the epoch.
pub(crate) fn instant_us(value: &Value) -> Option<i64> {
    let timestamp = match value {
        Value::Number(n) => Timestamp::from_second(n.as_i64()?).ok()?,
        Value::String(s) => jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%z", s).and_then(|t| t.to_timestamp()).or_else(|_| s.parse::<Timestamp>()).ok()?,
        _ => return None,
    };
    Some(timestamp.as_microsecond())
}

fn instant_field(object: &Map<String, Value>, field: &str, what: &str) -> PlatformResult<i64> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => instant_us(value).ok_or_else(|| PlatformError::Malformed(format!("{what}: {field} is not a datetime"))),
    }
}

/// The digits of an ad account id (`act_123` → `123`).
pub(crate) fn account_digits(id: &str) -> &str {
    id.strip_prefix("act_").unwrap_or(id)
}

/// An `AdAccount` as read with [`crate::AD_ACCOUNT_FIELDS`].
pub(crate) fn ad_account(value: Value) -> PlatformResult<AdAccount> {
    let fields = object(value, "an ad account")?;
    let account_id = match fields.get("account_id").and_then(Value::as_str) {
        Some(digits) => digits.to_owned(),
        None => account_digits(text(&fields, "id")).to_owned(),
    };
    if account_id.is_empty() || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("an ad account has no numeric id"));
    }
    let what = "ad account";
    Ok(AdAccount {
        name: text(&fields, "name").to_owned(),
        account_status: integer(&fields, "account_status", what)?,
        disable_reason: integer(&fields, "disable_reason", what)?,
        currency: text(&fields, "currency").to_owned(),
        spend_cap_cents: cents(&fields, "spend_cap", what)?,
        amount_spent_cents: cents(&fields, "amount_spent", what)?,
        created_time_us: instant_field(&fields, "created_time", what)?,
        timezone_id: integer(&fields, "timezone_id", what)?,
        account_id,
        fields,
    })
}

/// The fields read of every creation request (`AdAccountCreationRequest` in
/// the SDK: no `vertical_v2`/`subvertical_v2` there, `vertical`/`subvertical`
/// are its names); the ad accounts it issued are expanded beside them.
pub(crate) const CREATION_REQUEST_FIELDS: &str = "id,oe_request_id,status,time_created,ad_accounts_currency,ad_accounts_info,contact,disapproval_reasons,request_change_reasons,appeal_reason,\
legal_entity_name_in_local_language,address_in_local_language,chinese_legal_entity_name,address_in_chinese,english_legal_entity_name,address_in_english,\
official_website_url,promotable_page_ids,promotable_app_ids,promotable_urls,business_registration_id,vertical,subvertical,additional_comment,is_smb,is_test,\
advertiser_business,planning_agency_business";

/// The fields of the ad accounts a creation request issued.
pub(crate) const ISSUED_ACCOUNT_FIELDS: &str = "id,account_id,name";

/// A creation request, and where the rest of its expanded `adaccounts` edge
/// starts when Graph put only its first page inline.
pub(crate) fn creation_request(value: Value) -> PlatformResult<(CreationRequest, Option<More>)> {
    let fields = object(value, "a creation request")?;
    let id = text(&fields, "id").to_owned();
    if id.is_empty() {
        return Err(malformed("a creation request has no id"));
    }
    let what = "creation request";
    let time_created_us = instant_field(&fields, "time_created", what)?;
    // Meta gives no update time; the newest `time_*` it does give stands in.
    let time_updated_us = fields.iter().filter(|(name, _)| name.starts_with("time_")).filter_map(|(_, value)| instant_us(value)).fold(time_created_us, i64::max);
    let oe_request_id = match text(&fields, "oe_request_id") {
        "" => id.clone(),
        oe => oe.to_owned(),
    };
    let legal_entity_name = ["legal_entity_name_in_local_language", "chinese_legal_entity_name", "english_legal_entity_name"]
        .iter()
        .map(|field| text(&fields, field))
        .find(|name| !name.is_empty())
        .unwrap_or("")
        .to_owned();
    let (ad_accounts, more) = match fields.get("adaccounts") {
        Some(edge) => {
            let page = Page::from_body(edge.clone())?;
            (page.data.into_iter().map(issued_account).collect::<PlatformResult<Vec<_>>>()?, page.more)
        }
        None => (Vec::new(), None),
    };
    let request = CreationRequest {
        oe_request_id,
        // The SDK's enum is upper case (`APPROVED`), the model's lower case.
        status: text(&fields, "status").to_ascii_lowercase(),
        time_created_us,
        time_updated_us,
        legal_entity_name,
        ad_accounts,
        id,
        fields,
    };
    Ok((request, more))
}

/// One ad account a creation request issued: (account id, name).
pub(crate) fn issued_account(value: Value) -> PlatformResult<(String, String)> {
    let fields = object(value, "an issued ad account")?;
    let id = match text(&fields, "account_id") {
        "" => account_digits(text(&fields, "id")),
        digits => digits,
    };
    if id.is_empty() {
        return Err(malformed("an issued ad account has no id"));
    }
    Ok((id.to_owned(), text(&fields, "name").to_owned()))
}

/// A Business of `/act_{id}/agencies` (`id`, `name`, `permitted_tasks`).
pub(crate) fn business(value: Value) -> PlatformResult<Business> {
    let fields = object(value, "a business")?;
    let id = text(&fields, "id").to_owned();
    if id.is_empty() {
        return Err(malformed("a business has no id"));
    }
    let permitted_tasks = match fields.get("permitted_tasks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tasks)) => tasks.iter().map(|task| task.as_str().map(str::to_owned).ok_or_else(|| malformed("a permitted task is not a string"))).collect::<PlatformResult<_>>()?,
        Some(_) => return Err(malformed("permitted_tasks is not a list")),
    };
    Ok(Business { id, name: text(&fields, "name").to_owned(), permitted_tasks })
}

/// An `AdsPixel` (`id`, `name`).
pub(crate) fn pixel(value: Value) -> PlatformResult<Pixel> {
    let fields = object(value, "a pixel")?;
    let id = text(&fields, "id").to_owned();
    if id.is_empty() {
        return Err(malformed("a pixel has no id"));
    }
    Ok(Pixel { id, name: text(&fields, "name").to_owned() })
}

/// An `AdsInsights` row of one day: the day from `date_start`, the values
/// without `date_start` and `date_stop`.
pub(crate) fn insights_row(value: Value) -> PlatformResult<InsightsRow> {
    let mut values = object(value, "an insights row")?;
    let day = values.get("date_start").and_then(Value::as_str).and_then(|day| day.parse::<Date>().ok()).ok_or_else(|| malformed("an insights row has no date_start"))?;
    values.remove("date_start");
    values.remove("date_stop");
    Ok(InsightsRow { day, values })
}

/// Whether a write's answer says it was done (`{"success": true}`; a few
/// edges answer the object instead, which counts as done too).
pub(crate) fn write_succeeded(body: &Value) -> bool {
    match body.get("success") {
        Some(success) => success.as_bool() == Some(true),
        None => body.is_object(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dollars_have_two_decimals() {
        assert_eq!(dollars(0), "0.00");
        assert_eq!(dollars(1), "0.01");
        assert_eq!(dollars(12_345), "123.45");
        assert_eq!(dollars(100_000_000), "1000000.00");
    }

    #[test]
    fn graph_datetimes_are_read() {
        assert_eq!(instant_us(&json!("2024-05-01T10:00:00+0000")), Some(1_714_557_600_000_000));
        assert_eq!(instant_us(&json!("2024-05-01T12:00:00+0200")), Some(1_714_557_600_000_000));
        assert_eq!(instant_us(&json!("2024-05-01T10:00:00Z")), Some(1_714_557_600_000_000));
        assert_eq!(instant_us(&json!(1_714_557_600)), Some(1_714_557_600_000_000));
        assert_eq!(instant_us(&json!("yesterday")), None);
    }

    #[test]
    fn an_ad_account_is_read_with_its_money_in_cents() {
        let account = ad_account(json!({
            "id": "act_42", "account_id": "42", "name": "Shop", "account_status": 1, "currency": "USD",
            "spend_cap": "150000", "amount_spent": "2599", "created_time": "2024-05-01T10:00:00+0000", "timezone_id": 1
        }))
        .unwrap();
        assert_eq!((account.account_id.as_str(), account.spend_cap_cents, account.amount_spent_cents), ("42", 150_000, 2599));
        assert_eq!(account.created_time_us, 1_714_557_600_000_000);
        assert_eq!(account.disable_reason, 0);
        assert_eq!(account.fields["spend_cap"], "150000");
        assert!(matches!(ad_account(json!({"id": "act_42", "spend_cap": "lots"})), Err(PlatformError::Malformed(_))));
        assert!(matches!(ad_account(json!({"name": "no id"})), Err(PlatformError::Malformed(_))));
    }

    #[test]
    fn a_creation_request_falls_back_on_meta_ids_and_times() {
        let (request, more) = creation_request(json!({
            "id": "9001", "status": "APPROVED", "time_created": "2024-05-01T10:00:00+0000",
            "legal_entity_name_in_local_language": "某某公司",
            "adaccounts": {"data": [{"id": "act_7", "account_id": "7", "name": "A"}], "paging": {"cursors": {"after": "x"}, "next": "https://graph/next"}}
        }))
        .unwrap();
        assert_eq!((request.oe_request_id.as_str(), request.status.as_str(), request.legal_entity_name.as_str()), ("9001", "approved", "某某公司"));
        assert_eq!(request.time_updated_us, request.time_created_us);
        assert_eq!(request.ad_accounts, vec![("7".to_owned(), "A".to_owned())]);
        assert_eq!(more, Some(More::After("x".to_owned())));
    }

    #[test]
    fn only_a_page_with_next_has_a_successor() {
        let last = Page::from_body(json!({"data": [1], "paging": {"cursors": {"before": "a", "after": "b"}}})).unwrap();
        assert_eq!(last.more, None);
        let middle = Page::from_body(json!({"data": [1], "paging": {"cursors": {"after": "b"}, "next": "u"}})).unwrap();
        assert_eq!(middle.more, Some(More::After("b".to_owned())));
        let offset = Page::from_body(json!({"data": [], "paging": {"next": "u"}})).unwrap();
        assert_eq!(offset.more, Some(More::Next("u".to_owned())));
        assert!(Page::from_body(json!({"error": 1})).is_err());
    }

    #[test]
    fn graph_errors_are_classified() {
        let error = GraphError::from_body(&json!({"error": {"message": "gone", "type": "GraphMethodException", "code": 100, "error_subcode": 33, "fbtrace_id": "x"}})).unwrap();
        assert!(error.is_not_found() && !error.is_transient() && !error.is_rate_limit());
        let limited = GraphError::from_body(&json!({"error": {"message": "slow down", "code": 80004}})).unwrap();
        assert!(limited.is_rate_limit());
        let transient = GraphError::from_body(&json!({"error": {"message": "oops", "code": 190, "is_transient": true}})).unwrap();
        assert!(transient.is_transient());
        assert_eq!(GraphError::from_body(&json!({"data": []})), None);
    }

    #[test]
    fn insights_rows_lose_their_dates() {
        let row = insights_row(json!({"date_start": "2024-05-02", "date_stop": "2024-05-02", "spend": "1.50", "country": "US"})).unwrap();
        assert_eq!(row.day, Date::constant(2024, 5, 2));
        assert_eq!(row.values, json!({"spend": "1.50", "country": "US"}).as_object().unwrap().clone());
    }
}
