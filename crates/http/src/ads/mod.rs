//! The ad-account reseller dialect: `/api/v1/*` and `/lb/api/v1/account_list`.
//!
//! Every operation goes the same way ([`serve`]): read the parameters (a JSON
//! body, also on GET, and the query string: [`params::Params`]), take
//! `req_header.search_id` to echo it, authenticate `access_token` (a
//! parameter, or `Authorization: Bearer`) exactly as `/rest` does, apply
//! the caller's rate limits, check the application (`ads.view` to read,
//! `ads.manage` to write), run the operation, and answer in the envelope
//! `{"resp_header": {"code", "message", "search_id"}, "data"}`. A refusal
//! ([`error::Refusal`]) answers a code the spec lists for the operation, or
//! 1001. On writes, `search_id` is the idempotency key the service replays
//! by. No business rule lives here; the choices made where the spec is
//! silent are in `docs/ads.md`.

mod accounts;
mod bindings;
mod error;
mod insights;
mod params;
mod requests;

use std::future::Future;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use futures_util::future::BoxFuture;
use http::{HeaderValue, header};
use serde::Serialize;
use serde_json::value::RawValue;
use subledger_domain::access::{AppId, app};
use subledger_domain::calendar::TenantTimeZone;
use subledger_domain::text::TextError;
use subledger_service::access::Caller;
use subledger_service::ads::AdWrite;
use subledger_service::tenants::Tenant;

pub use error::Refusal;
use error::code;
use params::Params;

use crate::AppState;
use crate::input::{InvalidText, Part, Refuse, refuse_invalid_uri};

/// The message of every success.
pub const SUCCESS_MESSAGE: &str = "success";

/// The 16 operations at the spec's paths and methods (`account_pixel_list`,
/// POST in the spec, is a read and is served on GET too); any other method
/// of a known path is a 405 in the envelope.
pub fn router() -> Router<AppState> {
    let routes: [(&str, MethodRouter<AppState>); 16] = [
        ("/api/v1/get_request_list", get(read(requests::REQUEST_LIST, requests::request_list))),
        ("/api/v1/get_request_detail", get(read(requests::REQUEST_DETAIL, requests::request_detail))),
        ("/api/v1/get_aac_request_detail", get(read(requests::REQUEST_DETAIL, requests::aac_request_detail))),
        ("/api/v1/change_spend_cap", post(write(accounts::CHANGE_SPEND_CAP, accounts::change_spend_cap))),
        ("/api/v1/account_binding_bm", post(write(bindings::BIND_BUSINESS, bindings::bind_business))),
        ("/api/v1/account_remove_bm", post(write(bindings::UNBIND_BUSINESS, bindings::unbind_business))),
        ("/api/v1/account_business_list", get(read(bindings::BUSINESS_LIST, bindings::business_list))),
        ("/api/v1/account_spend_cap_reset", post(write(accounts::RESET_SPEND_CAP, accounts::reset_spend_cap))),
        ("/api/v1/account_info", get(read(accounts::ACCOUNT_INFO, accounts::account_info))),
        ("/api/v1/account_insights", get(read(insights::INSIGHTS, insights::insights))),
        ("/api/v1/account_insights_breakdowns", get(read(insights::BREAKDOWNS, insights::breakdowns))),
        ("/api/v1/account_recharge_status", get(read(accounts::RECHARGE_STATUS, accounts::recharge_status))),
        ("/api/v1/account_binding_pixel", post(write(bindings::PIXEL_WRITE, bindings::bind_pixel))),
        ("/api/v1/account_remove_pixel", post(write(bindings::PIXEL_WRITE, bindings::unbind_pixel))),
        ("/api/v1/account_pixel_list", post(read(bindings::PIXEL_LIST, bindings::pixel_list)).get(read(bindings::PIXEL_LIST, bindings::pixel_list))),
        ("/lb/api/v1/account_list", get(read(accounts::ACCOUNT_LIST, accounts::account_list))),
    ];
    routes
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| router.route(path, methods.fallback(method_not_allowed)))
        .layer(axum::middleware::from_fn_with_state(invalid_text as Refuse, refuse_invalid_uri))
}

/// An authenticated call of one operation: what its handler works with.
pub struct Call {
    pub state: AppState,
    pub tenant: Tenant,
    pub caller: Caller,
    pub params: Params,
    pub search_id: Option<String>,
}

impl Call {
    /// The write this call asks for: its `search_id` (the idempotency key)
    /// and who asks, for the operation log.
    pub fn write(&self) -> AdWrite {
        AdWrite { search_id: self.search_id.clone(), change: self.caller.change() }
    }
}

/// What an operation answers on success: `data`, or nothing (writes).
pub struct Reply(Option<Box<RawValue>>);

impl Reply {
    pub fn done() -> Result<Reply, Refusal> {
        Ok(Reply(None))
    }

    /// `data` as given, written once (exact decimals stay as they are).
    pub fn data(data: &impl Serialize) -> Result<Reply, Refusal> {
        match serde_json::value::to_raw_value(data) {
            Ok(raw) => Ok(Reply(Some(raw))),
            Err(error) => {
                tracing::error!(%error, "an ad-account answer could not be written");
                Err(Refusal::system())
            }
        }
    }
}

/// What a read or write operation is: the codes the spec lists for it
/// (others become 1001) and the application it needs.
type Codes = &'static [i64];

/// A read: needs `ads.view`.
fn read<F, Fut>(codes: Codes, handler: F) -> impl Fn(State<AppState>, Request) -> BoxFuture<'static, Response> + Clone + Send + Sync + 'static
where
    F: Fn(Call) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, Refusal>> + Send + 'static,
{
    serve(app::ADS_VIEW, codes, handler)
}

/// A write: needs `ads.manage`.
fn write<F, Fut>(codes: Codes, handler: F) -> impl Fn(State<AppState>, Request) -> BoxFuture<'static, Response> + Clone + Send + Sync + 'static
where
    F: Fn(Call) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, Refusal>> + Send + 'static,
{
    serve(app::ADS_MANAGE, codes, handler)
}

fn serve<F, Fut>(need: AppId, codes: Codes, handler: F) -> impl Fn(State<AppState>, Request) -> BoxFuture<'static, Response> + Clone + Send + Sync + 'static
where
    F: Fn(Call) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, Refusal>> + Send + 'static,
{
    move |State(state): State<AppState>, request: Request| {
        let handler = handler.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let Ok(body) = axum::body::to_bytes(body, params::BODY_BYTES_MAX).await else {
                return envelope("", Err(Refusal::input(format!("the body must be at most {} bytes", params::BODY_BYTES_MAX))));
            };
            let params = match Params::parse(&parts.uri, &body) {
                Ok(params) => params,
                Err(refusal) => return envelope("", Err(refusal)),
            };
            let search_id = match params.search_id() {
                Ok(search_id) => search_id,
                Err(refusal) => return envelope("", Err(refusal)),
            };
            let echo = search_id.clone().unwrap_or_default();
            let outcome = async {
                let token = params.access_token().or_else(|| crate::native::bearer(&parts).map(str::to_owned)).ok_or_else(Refusal::unauthenticated)?;
                let (tenant, caller) = state.services.authenticate_bearer(&token).await?.ok_or_else(Refusal::unauthenticated)?;
                state.limits.check_caller(&tenant, &caller)?;
                caller.require(need)?;
                handler(Call { state, tenant, caller, params, search_id }).await
            }
            .await;
            envelope(&echo, outcome.map_err(|refusal| refusal.within(codes)))
        })
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    resp_header: Header<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct Header<'a> {
    code: i64,
    message: &'a str,
    search_id: &'a str,
}

/// The answer in the envelope, with its HTTP status (and `Retry-After`).
fn envelope(search_id: &str, outcome: Result<Reply, Refusal>) -> Response {
    let (status, code, message, data, retry_after_s) = match &outcome {
        Ok(Reply(data)) => (http::StatusCode::OK, code::SUCCESS, SUCCESS_MESSAGE, data.as_deref(), None),
        Err(refusal) => (refusal.status, refusal.code, refusal.message.as_ref(), None, refusal.retry_after_s),
    };
    let mut response = (status, axum::Json(Envelope { resp_header: Header { code, message, search_id }, data })).into_response();
    if let Some(seconds) = retry_after_s {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

async fn method_not_allowed() -> Response {
    envelope("", Err(Refusal::method_not_allowed()))
}

/// A path or query that is not valid UTF-8 or holds NUL: 1001.
fn invalid_text(invalid: InvalidText) -> Response {
    let part = match invalid.part {
        Part::Path => "path",
        Part::Query => "query string",
        Part::Body => "body",
    };
    let rule = match invalid.error {
        TextError::NotUtf8 => "must be UTF-8",
        TextError::Nul => "must not hold NUL",
    };
    envelope("", Err(Refusal::input(format!("the {part} {rule}"))))
}

/// The answer to a request that outlived its deadline: 503, code 1001. A
/// write may still complete; sending it again with the same `search_id`
/// answers its outcome.
pub fn timed_out() -> Response {
    envelope("", Err(Refusal::unavailable("the request took too long; retry with the same search_id")))
}

/// The answer to a request beyond the in-flight cap: 503, code 1001; nothing was done.
pub fn busy() -> Response {
    envelope("", Err(Refusal::unavailable("the service is busy; nothing was done, retry")))
}

/// The names `fields` asks for, each one of `known`, in the order given and
/// without repeats; `default` when `fields` is absent. 1009 when it names
/// none, 1010 when it names one that is not known.
fn requested_fields<'k>(params: &Params, known: &[&'k str], default: &[&'k str]) -> Result<Vec<&'k str>, Refusal> {
    let Some(names) = params.fields()? else { return Ok(default.to_vec()) };
    if names.is_empty() {
        return Err(Refusal::new(code::FIELDS_EMPTY, "fields must name at least one field"));
    }
    let mut chosen: Vec<&'k str> = Vec::with_capacity(names.len());
    for name in &names {
        let known = known.iter().find(|k| **k == name).ok_or_else(|| Refusal::new(code::FIELDS_INVALID, format!("fields: unknown field {:?}; known: {}", name, known.join(", "))))?;
        if !chosen.contains(known) {
            chosen.push(known);
        }
    }
    Ok(chosen)
}

/// An instant as Graph writes times (`2024-05-01T10:00:00+0800`), in the tenant's zone.
fn graph_time(timezone: &TenantTimeZone, at_us: i64) -> String {
    let zone = jiff::tz::TimeZone::get(timezone.name()).unwrap_or(jiff::tz::TimeZone::UTC);
    subledger_domain::calendar::from_unix_micros(at_us).to_zoned(zone).strftime("%Y-%m-%dT%H:%M:%S%z").to_string()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn text(response: Response) -> (u16, Option<String>, String) {
        let status = response.status().as_u16();
        let retry = response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
        (status, retry, String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_envelope_echoes_the_search_id_and_leaves_data_out_of_refusals() {
        let data = Reply::data(&serde_json::json!({"list": ["1"]})).unwrap();
        assert_eq!(text(envelope("s-1", Ok(data))).await, (200, None, r#"{"resp_header":{"code":1,"message":"success","search_id":"s-1"},"data":{"list":["1"]}}"#.to_owned()));
        assert_eq!(text(envelope("", Reply::done())).await.2, r#"{"resp_header":{"code":1,"message":"success","search_id":""}}"#);
        let refused = envelope("s-2", Err(Refusal::new(code::ID_MISSING, "id is required")));
        assert_eq!(text(refused).await.2, r#"{"resp_header":{"code":1002,"message":"id is required","search_id":"s-2"}}"#);
        let (status, retry, body) = text(busy()).await;
        assert_eq!((status, retry.as_deref()), (503, Some("1")));
        assert!(body.starts_with(r#"{"resp_header":{"code":1001,"#), "{body}");
    }

    #[test]
    fn times_are_written_as_graph_writes_them_in_the_tenant_zone() {
        let at_us = "2024-05-01T02:00:00Z".parse::<jiff::Timestamp>().unwrap().as_microsecond();
        assert_eq!(graph_time(&TenantTimeZone::parse("Asia/Shanghai").unwrap(), at_us), "2024-05-01T10:00:00+0800");
        assert_eq!(graph_time(&TenantTimeZone::parse("America/Los_Angeles").unwrap(), at_us), "2024-04-30T19:00:00-0700");
    }
}
