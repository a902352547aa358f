//! The parameters of an ad-account request: a JSON object body (also on GET,
//! as the spec shows) and the query string; a field of the body beats the
//! query parameter of the same name. Query values are text: `fields` as a
//! JSON array or comma-separated, `time_range` and `req_header` as JSON
//! text, `search_id` also directly. Accessors parse into values or refuse
//! with the code the spec gives the parameter.

use std::collections::HashMap;

use http::Uri;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use subledger_domain::text::check_json_text;
use subledger_service::ads::{AD_ID_CHARS_MAX, SEARCH_ID_CHARS_MAX};

use super::error::{Refusal, code};

/// Largest body (the spec's requests are a few fields).
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Most parameters a request may carry, query and body each.
const PARAMS_MAX: usize = 64;
/// Most names in `fields`, and the longest name.
const FIELDS_MAX: usize = 100;
const FIELD_BYTES_MAX: usize = 64;

/// One parameter as it arrived.
#[derive(Debug)]
enum Param {
    /// From the query string.
    Text(String),
    /// A field of the JSON body, as written.
    Json(Box<RawValue>),
}

/// Every parameter of a request by name.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, Param>);

/// A parameter's value read as text.
enum Text {
    Absent,
    Given(String),
    /// Given as JSON that is neither a string nor a number.
    Other,
}

impl Params {
    /// The query's and the body's parameters. The query was checked for
    /// valid UTF-8 and NUL by the router; the body is checked here.
    pub fn parse(uri: &Uri, body: &[u8]) -> Result<Params, Refusal> {
        let mut params = Params::default();
        if uri.query().is_some() {
            let axum::extract::Query(pairs) = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|_| Refusal::input("the query string is malformed"))?;
            if pairs.len() > PARAMS_MAX {
                return Err(Refusal::input(format!("at most {PARAMS_MAX} query parameters")));
            }
            for (name, value) in pairs {
                if params.0.insert(name.clone(), Param::Text(value)).is_some() {
                    return Err(Refusal::input(format!("the query parameter {} is given more than once", shown(&name))));
                }
            }
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        check_json_text(body).map_err(|e| Refusal::input(format!("the body {e}")))?;
        let object: HashMap<String, Box<RawValue>> = serde_json::from_slice(body).map_err(|_| Refusal::input("the body must be a JSON object of the operation's parameters"))?;
        if object.len() > PARAMS_MAX {
            return Err(Refusal::input(format!("at most {PARAMS_MAX} parameters in the body")));
        }
        for (name, value) in object {
            // `null` leaves the parameter as the query gave it.
            if value.get() != "null" {
                params.0.insert(name, Param::Json(value));
            }
        }
        Ok(params)
    }

    fn text(&self, name: &str) -> Text {
        let text = match self.0.get(name) {
            None => return Text::Absent,
            Some(Param::Text(text)) => text.clone(),
            Some(Param::Json(raw)) => match serde_json::from_str::<Value>(raw.get()) {
                Ok(Value::String(text)) => text,
                // The number as written: `1500.00` stays `1500.00`.
                Ok(Value::Number(_)) => raw.get().to_owned(),
                _ => return Text::Other,
            },
        };
        if text.is_empty() { Text::Absent } else { Text::Given(text) }
    }

    /// A parameter's JSON value: a body field as it is, a query value (or a
    /// body string) parsed as JSON text. `None` when absent or empty.
    fn json(&self, name: &str) -> Result<Option<Value>, ()> {
        let value = match self.0.get(name) {
            None => return Ok(None),
            Some(Param::Text(text)) => Value::String(text.clone()),
            Some(Param::Json(raw)) => serde_json::from_str(raw.get()).map_err(drop)?,
        };
        match value {
            Value::String(text) if text.trim().is_empty() => Ok(None),
            Value::String(text) => serde_json::from_str(&text).map(Some).map_err(drop),
            other => Ok(Some(other)),
        }
    }

    /// Every parameter as one JSON object: body fields as they are, query
    /// values as strings (the domain's query parsers read both).
    pub fn to_object(&self) -> Value {
        let object: Map<String, Value> = self
            .0
            .iter()
            .filter_map(|(name, param)| {
                let value = match param {
                    Param::Text(text) => Value::String(text.clone()),
                    Param::Json(raw) => serde_json::from_str(raw.get()).ok()?,
                };
                Some((name.clone(), value))
            })
            .collect();
        Value::Object(object)
    }

    /// A required id-like text: `missing` when absent or empty, `invalid`
    /// when not text or too long.
    pub fn required_id(&self, name: &str, missing: i64, invalid: i64) -> Result<String, Refusal> {
        match self.text(name) {
            Text::Absent => Err(Refusal::new(missing, format!("{name} is required"))),
            Text::Other => Err(Refusal::new(invalid, format!("{name} must be a string"))),
            Text::Given(text) if text.chars().count() > AD_ID_CHARS_MAX => Err(Refusal::new(invalid, format!("{name} is at most {AD_ID_CHARS_MAX} characters"))),
            Text::Given(text) => Ok(text),
        }
    }

    /// `id` (1002 missing, 1003 invalid).
    pub fn id(&self) -> Result<String, Refusal> {
        self.required_id("id", code::ID_MISSING, code::ID_INVALID)
    }

    /// `id` of an ad account: digits as Meta gives `account_id`; Graph's
    /// `act_` prefix (its `id` field) is accepted too.
    pub fn account_id(&self) -> Result<String, Refusal> {
        let id = self.id()?;
        Ok(id.strip_prefix("act_").map(str::to_owned).unwrap_or(id))
    }

    /// `amount_usd` as written (US cents), for `SpendCap::parse`: 1004
    /// missing, 1005 neither a string nor a number.
    pub fn amount_usd(&self) -> Result<String, Refusal> {
        match self.text("amount_usd") {
            Text::Absent => Err(Refusal::new(code::AMOUNT_MISSING, "amount_usd is required")),
            Text::Other => Err(Refusal::new(code::AMOUNT_INVALID, "amount_usd must be a number of US cents")),
            Text::Given(text) => Ok(text),
        }
    }

    /// `fields`: `None` when absent; the names (maybe none: the caller
    /// decides whether that is 1009) otherwise. A JSON array of strings, or
    /// its text, or names separated by commas. 1010 for anything else.
    pub fn fields(&self) -> Result<Option<Vec<String>>, Refusal> {
        let invalid = |why: &str| Refusal::new(code::FIELDS_INVALID, format!("fields {why}"));
        // The forms a list arrives in are the domain's rule (`insights::name_list`), shared with insights.
        let value: Value = match self.0.get("fields") {
            None => return Ok(None),
            Some(Param::Json(raw)) => serde_json::from_str(raw.get()).map_err(|_| invalid("must be a list of field names"))?,
            Some(Param::Text(text)) => Value::String(text.clone()),
        };
        let names = subledger_domain::insights::name_list(Some(&value)).map_err(|_| invalid("must be a list of field names"))?;
        if names.len() > FIELDS_MAX {
            return Err(invalid(&format!("holds at most {FIELDS_MAX} names")));
        }
        if let Some(long) = names.iter().find(|name| name.len() > FIELD_BYTES_MAX) {
            return Err(invalid(&format!("has no field {}", shown(long))));
        }
        Ok(Some(names))
    }

    /// A JSON object parameter (`time_range`): `None` when absent; `invalid`
    /// when it is not an object (or its JSON text).
    pub fn object(&self, name: &str, invalid: i64) -> Result<Option<Map<String, Value>>, Refusal> {
        match self.json(name) {
            Ok(None) => Ok(None),
            Ok(Some(Value::Object(object))) => Ok(Some(object)),
            _ => Err(Refusal::new(invalid, format!("{name} must be a JSON object"))),
        }
    }

    /// An optional text parameter; `invalid` when it is not text.
    pub fn optional_text(&self, name: &str, invalid: i64) -> Result<Option<String>, Refusal> {
        match self.text(name) {
            Text::Absent => Ok(None),
            Text::Other => Err(Refusal::new(invalid, format!("{name} must be a string"))),
            Text::Given(text) => Ok(Some(text)),
        }
    }

    /// An optional whole number (a JSON number or its text); `invalid` otherwise.
    pub fn whole_number(&self, name: &str, invalid: i64) -> Result<Option<i64>, Refusal> {
        match self.optional_text(name, invalid)? {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| Refusal::new(invalid, format!("{name} must be a whole number"))),
        }
    }

    /// The request's `search_id`: `req_header.search_id` (the body's, or
    /// the query's `req_header` as JSON text), else a `search_id` query
    /// parameter. A string or a number; at most [`SEARCH_ID_CHARS_MAX`] characters.
    pub fn search_id(&self) -> Result<Option<String>, Refusal> {
        let malformed = || Refusal::input("req_header must be a JSON object whose search_id is a string");
        let from_header = match self.json("req_header").map_err(|()| malformed())? {
            None => None,
            Some(Value::Object(mut header)) => match header.remove("search_id") {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => Some(text),
                Some(Value::Number(number)) => Some(number.to_string()),
                Some(_) => return Err(malformed()),
            },
            Some(_) => return Err(malformed()),
        };
        let search_id = match from_header {
            Some(text) => Some(text),
            None => match self.text("search_id") {
                Text::Given(text) => Some(text),
                Text::Absent => None,
                Text::Other => return Err(malformed()),
            },
        };
        match search_id {
            Some(text) if text.chars().count() > SEARCH_ID_CHARS_MAX => Err(Refusal::input(format!("search_id is at most {SEARCH_ID_CHARS_MAX} characters"))),
            Some(text) if text.is_empty() => Ok(None),
            other => Ok(other),
        }
    }

    /// `access_token`, if given as a parameter.
    pub fn access_token(&self) -> Option<String> {
        match self.text("access_token") {
            Text::Given(token) => Some(token),
            Text::Absent | Text::Other => None,
        }
    }
}

/// A name from the input, quoted and cut short for a message.
fn shown(name: &str) -> String {
    format!("{:?}", name.chars().take(40).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str, body: &str) -> Params {
        Params::parse(&format!("/api/v1/x?{query}").parse().unwrap(), body.as_bytes()).unwrap()
    }

    fn refused(result: Result<impl std::fmt::Debug, Refusal>) -> i64 {
        result.expect_err("a refusal").code
    }

    #[test]
    fn the_body_beats_the_query() {
        let p = params("id=q&business_id=b1", r#"{"id": "123", "access_token": "slt_x", "nothing": null}"#);
        assert_eq!(p.id().unwrap(), "123");
        assert_eq!(p.required_id("business_id", code::BUSINESS_ID_MISSING, code::SYSTEM).unwrap(), "b1");
        assert_eq!(p.access_token().as_deref(), Some("slt_x"));
        assert_eq!(params("id=act_42", "").account_id().unwrap(), "42");
        assert_eq!(params("", r#"{"id": 42}"#).id().unwrap(), "42", "a number is its text");
    }

    #[test]
    fn ids_are_required_and_bounded() {
        assert_eq!(refused(params("", "").id()), code::ID_MISSING);
        assert_eq!(refused(params("id=", "").id()), code::ID_MISSING);
        assert_eq!(refused(params("", r#"{"id": ""}"#).id()), code::ID_MISSING);
        assert_eq!(refused(params("", r#"{"id": ["1"]}"#).id()), code::ID_INVALID);
        assert_eq!(refused(params(&format!("id={}", "9".repeat(65)), "").id()), code::ID_INVALID);
    }

    #[test]
    fn amounts_keep_their_text() {
        assert_eq!(params("", r#"{"amount_usd": 1500.00}"#).amount_usd().unwrap(), "1500.00");
        assert_eq!(params("amount_usd=12", "").amount_usd().unwrap(), "12");
        assert_eq!(refused(params("", "{}").amount_usd()), code::AMOUNT_MISSING);
        assert_eq!(refused(params("", r#"{"amount_usd": true}"#).amount_usd()), code::AMOUNT_INVALID);
    }

    #[test]
    fn fields_arrive_as_arrays_json_text_or_commas() {
        let names = |p: Params| p.fields().unwrap();
        let expected = Some(vec!["id".to_owned(), "name".to_owned()]);
        assert_eq!(names(params("", r#"{"fields": ["id", "name"]}"#)), expected);
        assert_eq!(names(params("fields=%5B%22id%22%2C%22name%22%5D", "")), expected);
        assert_eq!(names(params("fields=id,+name", "")), expected);
        assert_eq!(names(params("", r#"{"fields": "id,name"}"#)), expected);
        assert_eq!(names(params("", "")), None);
        assert_eq!(names(params("", r#"{"fields": []}"#)), Some(vec![]));
        assert_eq!(names(params("fields=", "")), Some(vec![]));
        assert_eq!(refused(params("", r#"{"fields": [1]}"#).fields()), code::FIELDS_INVALID);
        assert_eq!(refused(params("fields=%5Bid", "").fields()), code::FIELDS_INVALID);
        assert_eq!(refused(params("", r#"{"fields": {"id": 1}}"#).fields()), code::FIELDS_INVALID);
    }

    #[test]
    fn search_ids_come_from_the_header_or_the_query() {
        assert_eq!(params("", r#"{"req_header": {"search_id": "s-1"}}"#).search_id().unwrap().as_deref(), Some("s-1"));
        assert_eq!(params("req_header=%7B%22search_id%22%3A%22s-2%22%7D", "").search_id().unwrap().as_deref(), Some("s-2"));
        assert_eq!(params("search_id=s-3", "").search_id().unwrap().as_deref(), Some("s-3"));
        assert_eq!(params("search_id=s-3", r#"{"req_header": {"search_id": 7}}"#).search_id().unwrap().as_deref(), Some("7"));
        assert_eq!(params("", r#"{"req_header": {}}"#).search_id().unwrap(), None);
        assert_eq!(refused(params("", r#"{"req_header": "x"}"#).search_id()), code::SYSTEM);
        assert_eq!(refused(params("", r#"{"req_header": {"search_id": [1]}}"#).search_id()), code::SYSTEM);
        assert_eq!(refused(params(&format!("search_id={}", "s".repeat(129)), "").search_id()), code::SYSTEM);
    }

    #[test]
    fn objects_and_numbers() {
        let p = params("time_range=%7B%22since%22%3A%222024-05-01%22%7D&page_num=2", r#"{"page_size": 100, "limit": "x"}"#);
        assert_eq!(p.object("time_range", code::TIME_RANGE).unwrap().unwrap()["since"], "2024-05-01");
        assert_eq!(p.whole_number("page_num", code::PAGING).unwrap(), Some(2));
        assert_eq!(p.whole_number("page_size", code::PAGING).unwrap(), Some(100));
        assert_eq!(refused(p.whole_number("limit", code::LIMIT)), code::LIMIT);
        assert_eq!(refused(params("time_range=x", "").object("time_range", code::TIME_RANGE)), code::TIME_RANGE);
        assert_eq!(params("", "").object("time_range", code::TIME_RANGE).unwrap(), None);
        assert_eq!(p.to_object(), serde_json::json!({"time_range": "{\"since\":\"2024-05-01\"}", "page_num": "2", "page_size": 100, "limit": "x"}));
    }

    #[test]
    fn malformed_input_is_refused_with_1001() {
        let parse = |query: &str, body: &str| Params::parse(&format!("/x?{query}").parse().unwrap(), body.as_bytes());
        assert_eq!(refused(parse("", "[1]")), code::SYSTEM);
        assert_eq!(refused(parse("", "{")), code::SYSTEM);
        assert_eq!(refused(parse("", "{\"id\": \"a\\u0000\"}")), code::SYSTEM);
        assert_eq!(refused(parse("id=1&id=2", "")), code::SYSTEM);
        assert!(parse("", " \n").is_ok());
    }
}
