//! The ad-account reseller dialect (`/api/v1/*`, `/lb/api/v1/account_list`):
//! every operation called the way the spec shows (a JSON body, also on GET,
//! with `access_token` and `req_header.search_id`), or with query
//! parameters; the spec's field names and types checked in the raw JSON;
//! each code an operation can answer triggered.

mod accounts;
mod bindings;
mod envelope;
mod faults;
mod insights;
mod isolation;
mod money;
mod requests;
mod world;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// Every operation: its path and the method the spec gives it.
pub const OPERATIONS: [(&str, &str); 16] = [
    ("GET", "/api/v1/get_request_list"),
    ("GET", "/api/v1/get_request_detail"),
    ("GET", "/api/v1/get_aac_request_detail"),
    ("POST", "/api/v1/change_spend_cap"),
    ("POST", "/api/v1/account_binding_bm"),
    ("POST", "/api/v1/account_remove_bm"),
    ("GET", "/api/v1/account_business_list"),
    ("POST", "/api/v1/account_spend_cap_reset"),
    ("GET", "/api/v1/account_info"),
    ("GET", "/api/v1/account_insights"),
    ("GET", "/api/v1/account_insights_breakdowns"),
    ("GET", "/api/v1/account_recharge_status"),
    ("POST", "/api/v1/account_binding_pixel"),
    ("POST", "/api/v1/account_remove_pixel"),
    ("POST", "/api/v1/account_pixel_list"),
    ("GET", "/lb/api/v1/account_list"),
];

/// One answer: HTTP status, parsed body, raw body, headers.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub raw: String,
    pub headers: reqwest::header::HeaderMap,
}

/// A request with a raw body (`None`: no body).
pub async fn send(h: &Harness, method: Method, path_and_query: &str, body: Option<Vec<u8>>) -> Answer {
    let mut request = h.http.request(method, h.url(path_and_query));
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body);
    }
    let response = request.send().await.expect("an ad-account request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.text().await.expect("a body");
    let body = serde_json::from_str(&raw).unwrap_or(Value::String(raw.clone()));
    Answer { status, body, raw, headers }
}

/// A call as the spec shows it: the parameters as a JSON body.
pub async fn call(h: &Harness, method: &str, path: &str, params: &Value) -> Answer {
    send(h, method.parse().expect("a method"), path, Some(serde_json::to_vec(params).unwrap())).await
}

/// An agency: a tenant, known to the dialect by its `access_token`.
pub struct Agency {
    pub tenant: Tenant,
}

impl Agency {
    pub async fn create(h: &Harness, name: &str) -> Agency {
        Agency { tenant: h.create_tenant(name).await }
    }

    pub fn token(&self) -> &str {
        &self.tenant.api_token
    }

    /// The operation's parameters with this agency's `access_token` and `search_id`.
    pub fn params(&self, search_id: &str, params: Value) -> Value {
        let mut params = params;
        params["access_token"] = json!(self.token());
        params["req_header"] = json!({ "search_id": search_id });
        params
    }

    pub async fn call(&self, h: &Harness, method: &str, path: &str, search_id: &str, params: Value) -> Answer {
        call(h, method, path, &self.params(search_id, params)).await
    }
}

/// Asserts the envelope's header: the code, a message, the echoed
/// `search_id`, and that `code` is a JSON integer.
#[track_caller]
pub fn assert_header(answer: &Answer, status: u16, code: i64, search_id: &str) {
    assert_eq!(answer.status, status, "{}", answer.raw);
    assert!(answer.headers["content-type"].to_str().unwrap().starts_with("application/json"), "{:?}", answer.headers);
    let header = answer.body["resp_header"].as_object().unwrap_or_else(|| panic!("an envelope: {}", answer.raw));
    assert_eq!(header.len(), 3, "{}", answer.raw);
    assert!(header["code"].is_i64(), "code is an integer: {}", answer.raw);
    assert_eq!(header["code"], json!(code), "{}", answer.raw);
    assert!(header["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", answer.raw);
    assert_eq!(header["search_id"], json!(search_id), "{}", answer.raw);
}

/// A success (code 1, "success"); returns `data` (`Null` when absent).
#[track_caller]
pub fn ok<'a>(answer: &'a Answer, search_id: &str) -> &'a Value {
    assert_header(answer, 200, 1, search_id);
    assert_eq!(answer.body["resp_header"]["message"], "success", "{}", answer.raw);
    &answer.body["data"]
}

/// A success without `data` (a write).
#[track_caller]
pub fn done(answer: &Answer, search_id: &str) {
    ok(answer, search_id);
    assert_eq!(answer.body.as_object().unwrap().len(), 1, "no data on a write: {}", answer.raw);
}

/// A refusal with HTTP 200, `code`, and no `data`; returns the message.
#[track_caller]
pub fn refused<'a>(answer: &'a Answer, code: i64, search_id: &str) -> &'a str {
    refused_with(answer, 200, code, search_id)
}

/// A refusal with the given HTTP status; returns the message.
#[track_caller]
pub fn refused_with<'a>(answer: &'a Answer, status: u16, code: i64, search_id: &str) -> &'a str {
    assert_header(answer, status, code, search_id);
    assert!(answer.body.get("data").is_none(), "no data on a refusal: {}", answer.raw);
    answer.body["resp_header"]["message"].as_str().unwrap()
}

/// The keys of a JSON object, sorted.
#[track_caller]
pub fn assert_keys(value: &Value, expected: &[&str]) {
    let mut keys: Vec<&str> = value.as_object().unwrap_or_else(|| panic!("an object: {value}")).keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{value}");
}
