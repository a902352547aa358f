//! The parameters of a UUCall request: the query string and, for POST and
//! PUT, a JSON object of the spec's model; a field of the body beats the
//! query parameter of the same name. Accessors parse them into domain values
//! or refuse with a 424 that names the parameter.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use subledger_domain::calendar::Month;
use subledger_domain::paging::Page;
use subledger_domain::text::check_json_text;
use subledger_service::tenants::Tenant;

use super::error::Refusal;

/// Largest JSON body (the spec's models are a few fields).
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Most parameters a request may carry, query and body together.
const PARAMS_MAX: usize = 64;
/// Longest parameter name and value, in bytes; fields with a tighter rule
/// (names, titles) check their own.
const NAME_BYTES_MAX: usize = 64;
pub const VALUE_BYTES_MAX: usize = 16 * 1024;
/// `pageSize` when not given, and its largest value.
pub const PAGE_SIZE_DEFAULT: i64 = 10;
pub const PAGE_SIZE_MAX: i64 = 200;

/// Every parameter of a request by name. Empty values read as absent: a
/// client that sends `time=` sets no filter.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Refusal;
    async fn from_request(request: Request, state: &S) -> Result<Self, Refusal> {
        let query = request.uri().query().unwrap_or_default().to_owned();
        let body = Bytes::from_request(request, state).await.map_err(|_| Refusal::invalid("body", format!("the body must be at most {BODY_BYTES_MAX} bytes")))?;
        let mut params = Params::from_query(&query)?;
        params.merge_body(&body)?;
        Ok(params)
    }
}

impl Params {
    fn insert(&mut self, name: String, value: String, from_body: bool) -> Result<(), Refusal> {
        if name.len() > NAME_BYTES_MAX {
            return Err(Refusal::Invalid { field: None, message: format!("parameter names are at most {NAME_BYTES_MAX} bytes") });
        }
        if value.len() > VALUE_BYTES_MAX {
            return Err(Refusal::invalid(&name, format!("at most {VALUE_BYTES_MAX} bytes")));
        }
        if !from_body && self.0.contains_key(&name) {
            return Err(Refusal::invalid(&name, "given more than once"));
        }
        self.0.insert(name, value);
        if self.0.len() > PARAMS_MAX {
            return Err(Refusal::Invalid { field: None, message: format!("at most {PARAMS_MAX} parameters") });
        }
        Ok(())
    }

    /// The query's parameters (already checked for valid UTF-8 and NUL by the router).
    pub fn from_query(query: &str) -> Result<Params, Refusal> {
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
        let mut params = Params::default();
        for (name, value) in pairs {
            params.insert(name, value, false)?;
        }
        Ok(params)
    }

    /// Adds a JSON object body's fields, each beating a query parameter of
    /// its name. Strings and numbers are values; `null` leaves the parameter
    /// as the query gave it; anything else is refused.
    fn merge_body(&mut self, body: &[u8]) -> Result<(), Refusal> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        check_json_text(body).map_err(|e| Refusal::invalid("body", format!("the body {e}")))?;
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).map_err(|_| Refusal::invalid("body", "the body must be a JSON object of the operation's model"))?;
        for (name, value) in object {
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(text) => text,
                serde_json::Value::Number(number) => number.to_string(),
                _ => return Err(Refusal::invalid(&name, "must be a string or a number")),
            };
            self.insert(name, text, true)?;
        }
        Ok(())
    }

    /// A parameter's text, if given and not empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, Refusal> {
        self.text(name).ok_or_else(|| Refusal::invalid(name, "is required"))
    }

    /// A parameter's text if given, even empty (`targets=` clears a list).
    pub fn given(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A whole number (`int64` in the spec).
    pub fn int64(&self, name: &str) -> Result<Option<i64>, Refusal> {
        self.text(name).map(|text| parse_int64(name, text)).transpose()
    }

    /// `page` (1-based, default 1) and `pageSize` (default 10, at most 200).
    pub fn page(&self) -> Result<Page, Refusal> {
        let page = self.int64("page")?.unwrap_or(1);
        let size = self.int64("pageSize")?.unwrap_or(PAGE_SIZE_DEFAULT);
        if !(1..=PAGE_SIZE_MAX).contains(&size) {
            return Err(Refusal::invalid("pageSize", format!("must be from 1 to {PAGE_SIZE_MAX}")));
        }
        let offset = page.checked_sub(1).filter(|p| *p >= 0).and_then(|p| p.checked_mul(size));
        let offset = offset.filter(|o| *o <= Page::OFFSET_MAX).ok_or_else(|| Refusal::invalid("page", format!("must be from 1 to {}", Page::OFFSET_MAX / size + 1)))?;
        Ok(Page { offset, limit: size })
    }

    /// Checks `uid` (the enterprise's numeric id) against the caller's
    /// enterprise: another enterprise's is 403. `required` where the spec
    /// lists it as required.
    pub fn check_uid(&self, tenant: &Tenant, required: bool) -> Result<(), Refusal> {
        match self.int64("uid")? {
            None if required => Err(Refusal::invalid("uid", "is required")),
            None => Ok(()),
            Some(uid) => check_uid(tenant, uid),
        }
    }
}

impl Params {
    /// Checks the required `uidName` (the enterprise's name, compared
    /// exactly: a looser match could name another enterprise), and `uid`
    /// when it is given too. Another enterprise's is 403.
    pub fn check_uid_name(&self, tenant: &Tenant) -> Result<(), Refusal> {
        if self.required("uidName")? != tenant.name {
            return Err(Refusal::Forbidden("uidName is not the caller's enterprise".to_owned()));
        }
        self.check_uid(tenant, false)
    }

    /// `time`, a month `yyyy-MM`; when absent, the current month in the
    /// enterprise's time zone.
    pub fn month(&self, tenant: &Tenant) -> Result<Month, Refusal> {
        match self.text("time") {
            None => Ok(tenant.timezone.month_of(jiff::Timestamp::now())),
            Some(text) => Month::parse_dashed(text).map_err(|e| Refusal::invalid("time", e.to_string())),
        }
    }
}

/// The enterprise a `uid` names must be the caller's.
pub fn check_uid(tenant: &Tenant, uid: i64) -> Result<(), Refusal> {
    if uid == tenant.id.0 { Ok(()) } else { Err(Refusal::Forbidden("uid is not the caller's enterprise".to_owned())) }
}

/// A whole number: optional sign and digits only, within `i64`.
pub fn parse_int64(name: &str, text: &str) -> Result<i64, Refusal> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::invalid(name, "must be a whole number"));
    }
    text.parse().map_err(|_| Refusal::invalid(name, "must be a whole number within int64"))
}

/// The `name=value` pairs of a query string, percent-decoded (`+` is a space).
fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, Refusal> {
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        if pairs.len() >= PARAMS_MAX {
            return Err(Refusal::Invalid { field: None, message: format!("at most {PARAMS_MAX} parameters") });
        }
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

fn decode(text: &str) -> Result<String, Refusal> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().map(|c| c.into_owned()).map_err(|_| Refusal::Invalid { field: None, message: "the query must be UTF-8".to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(refusal: Refusal) -> Option<String> {
        match refusal {
            Refusal::Invalid { field, .. } => field,
            other => panic!("not a 424: {other:?}"),
        }
    }

    #[test]
    fn the_body_beats_the_query() {
        let mut params = Params::from_query("name=q&title=%E5%85%AC+x&page=2").unwrap();
        params.merge_body(br#"{"name": "b", "level": 3, "targets": null}"#).unwrap();
        assert_eq!(params.text("name"), Some("b"));
        assert_eq!(params.text("title"), Some("公 x"));
        assert_eq!(params.int64("level").unwrap(), Some(3));
        assert_eq!(params.text("targets"), None);
        assert_eq!(field(Params::from_query("a=1").unwrap().merge_body(b"[1]").unwrap_err()), Some("body".to_owned()));
        assert_eq!(field(Params::from_query("").unwrap().merge_body(br#"{"x": [1]}"#).unwrap_err()), Some("x".to_owned()));
        assert_eq!(field(Params::from_query("page=1&page=2").unwrap_err()), Some("page".to_owned()));
    }

    #[test]
    fn pages_are_one_based_and_bounded() {
        let page = |q: &str| Params::from_query(q).unwrap().page();
        assert_eq!(page("").unwrap(), Page { offset: 0, limit: 10 });
        assert_eq!(page("page=3&pageSize=200").unwrap(), Page { offset: 400, limit: 200 });
        for (query, bad) in
            [("pageSize=201", "pageSize"), ("pageSize=0", "pageSize"), ("page=0", "page"), ("page=-1", "page"), ("page=x", "page"), ("page=99999999999", "page"), ("pageSize=1.5", "pageSize")]
        {
            assert_eq!(field(page(query).unwrap_err()), Some(bad.to_owned()), "{query}");
        }
    }

    #[test]
    fn whole_numbers_are_strict() {
        assert_eq!(parse_int64("id", "-12").unwrap(), -12);
        for bad in ["", "+1", "1e3", " 1", "99999999999999999999", "-"] {
            assert!(parse_int64("id", bad).is_err(), "{bad}");
        }
    }
}
