//! The UUCall REST dialect (`/rest`): every operation called the way a UUCall
//! client calls it (bearer token, the spec's parameter names in the query
//! and the JSON body), the spec's field names checked in the raw JSON, and
//! each status an operation can answer triggered.

mod access;
mod account;
mod bills;
mod power;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// An enterprise as a UUCall client knows it: its token, `uid` and `uidName`.
pub struct Enterprise {
    pub tenant: Tenant,
    pub uid: i64,
}

impl Enterprise {
    pub async fn create(h: &Harness, name: &str) -> Enterprise {
        let tenant = h.create_tenant(name).await;
        let (status, body) = h.get_json("/v1/tenant", &tenant.api_token).await;
        assert_eq!(status, 200, "{body}");
        Enterprise { uid: body["uid"].as_i64().expect("the numeric uid"), tenant }
    }

    pub fn token(&self) -> &str {
        &self.tenant.api_token
    }
}

/// One answer: status, parsed body, raw body and `X-Total-Count`.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub raw: String,
    pub total: Option<i64>,
    pub headers: reqwest::header::HeaderMap,
}

/// A request to `/rest{path}` with an optional bearer token and JSON body.
pub async fn call(h: &Harness, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
    let mut request = h.http.request(method, h.url(&format!("/rest{path}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("a UUCall request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let total = headers.get("x-total-count").map(|v| v.to_str().unwrap().parse().expect("a whole X-Total-Count"));
    let raw = response.text().await.expect("a body");
    let body = if raw.is_empty() { Value::Null } else { serde_json::from_str(&raw).unwrap_or(Value::String(raw.clone())) };
    Answer { status, body, raw, total, headers }
}

pub async fn get(h: &Harness, e: &Enterprise, path: &str) -> Answer {
    call(h, Method::GET, path, Some(e.token()), None).await
}

/// A 200 with a JSON body; returns it.
#[track_caller]
pub fn ok(answer: Answer) -> Answer {
    assert_eq!(answer.status, 200, "{}", answer.raw);
    answer
}

/// A refusal: the status, `{"code": status, "message": …, "field": …}` and
/// nothing else; returns `field`.
#[track_caller]
pub fn refused(answer: &Answer, status: u16) -> Option<String> {
    assert_eq!(answer.status, status, "{}", answer.raw);
    let object = answer.body.as_object().unwrap_or_else(|| panic!("a JSON object: {}", answer.raw));
    assert_eq!(object.len(), 3, "{}", answer.raw);
    assert_eq!(object["code"], json!(status), "{}", answer.raw);
    assert!(object["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", answer.raw);
    assert!(answer.headers["content-type"].to_str().unwrap().starts_with("application/json"));
    object["field"].as_str().map(str::to_owned)
}

/// A 424 naming `field`.
#[track_caller]
pub fn invalid(answer: &Answer, field: &str) {
    assert_eq!(refused(answer, 424).as_deref(), Some(field), "{}", answer.raw);
}

/// The keys of a JSON object, sorted: the spec's field names, checked exactly.
#[track_caller]
pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap_or_else(|| panic!("an object: {value}")).keys().cloned().collect();
    keys.sort();
    keys
}

#[track_caller]
pub fn assert_keys(value: &Value, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(keys(value), expected, "{value}");
}

/// The common refusals of an operation: no token and a bad one (401), a
/// method the path does not serve (405).
pub async fn assert_auth_and_method(h: &Harness, method: Method, path: &str, wrong: Method) {
    refused(&call(h, method.clone(), path, None, None).await, 401);
    refused(&call(h, method.clone(), path, Some("slt_not_a_token"), None).await, 401);
    refused(&call(h, wrong, path, Some("slt_not_a_token"), None).await, 405);
}

pub async fn create_account(h: &Harness, e: &Enterprise, username: &str) {
    let (status, body) = h.post_json("/v1/accounts", e.token(), &json!({ "username": username })).await;
    assert_eq!(status, 201, "{body}");
}
