//! `get_request_list`, `get_request_detail`, `get_aac_request_detail`: the
//! spec's fields with their types, Meta's fields mapped onto them, and
//! 1002/1003, on the sandbox and on Graph.

use serde_json::json;

use super::world::{Platform, World, graph};
use super::*;
use crate::on_both_backends;

on_both_backends!(requests_on_the_sandbox, requests_on_graph);

async fn requests_on_the_sandbox(backend: Backend) {
    requests(&World::start(backend, Platform::Sandbox).await).await;
}

async fn requests_on_graph(backend: Backend) {
    let w = World::start(backend, Platform::Graph).await;
    requests(&w).await;
    // Meta's fields as the Graph worlds seeded them.
    let detail = w.agency.call(&w.h, "GET", "/api/v1/get_request_detail", "g", json!({"id": graph::APPROVED.1})).await;
    let data = ok(&detail, "g");
    assert_eq!(data["chinese_legal_entity_name"], graph::COMPANY);
    assert_eq!(data["chinese_address"], "广东省深圳市南山区科技园1号");
    assert_eq!(data["contact"], "fang.wang@example.com");
    assert_eq!((&data["city"], &data["zip_code"]), (&json!("Shenzhen"), &json!("518000")));
    assert_eq!(data["ad_account_number"], 2);
    assert_eq!(data["ad_accounts_info"], json!([{"ad_account_name": "Alpha-01", "timezone_id": 1, "account_type": null}, {"ad_account_name": "Alpha-02", "timezone_id": 1, "account_type": null}]));
    assert_eq!((&data["vertical"], &data["subvertical"]), (&json!("ECOMMERCE"), &json!("APPAREL_AND_ACCESSORIES")));
    assert_eq!(data["time_created"], "2024-05-01T16:00:00+0800", "Meta's 08:00 UTC in the agency's zone");
    assert_eq!(data["disapprove_reason"], json!(null));
    let detail = w.agency.call(&w.h, "GET", "/api/v1/get_request_detail", "g", json!({"id": graph::DISAPPROVED.1})).await;
    let data = ok(&detail, "g");
    assert_eq!((&data["status"], &data["ad_account_creation_request_status"]), (&json!("disapproved"), &json!("disapproved")));
    assert_eq!(data["disapprove_reason"], "Website unreachable\nPage unpublished");
    let pending = w.agency.call(&w.h, "GET", "/api/v1/get_aac_request_detail", "g", json!({"ad_account_creation_request_id": graph::PENDING.0})).await;
    let data = ok(&pending, "g");
    assert_eq!((&data["status"], &data["adaccounts"]), (&json!("pending"), &json!({"data": []})));
    assert_eq!(data["contact"], json!({"name": "王芳", "email": "fang.wang@example.com"}));
    let disapproved = w.agency.call(&w.h, "GET", "/api/v1/get_aac_request_detail", "g", json!({"ad_account_creation_request_id": graph::DISAPPROVED.0})).await;
    assert_eq!(ok(&disapproved, "g")["disapproval_reasons"][0], json!({"reason": "Website unreachable", "note": "404"}));
    // The list in creation order: the agency's four, not the other's.
    let list = w.agency.call(&w.h, "GET", "/api/v1/get_request_list", "g", json!({})).await;
    let mut ids: Vec<&str> = ok(&list, "g")["list"].as_array().unwrap().iter().map(|id| id.as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["OE-1001", "OE-1002", "OE-1003", "OE-1004"]);
}

/// The spec's fields of `get_request_detail`.
const DETAIL_FIELDS: [&str; 40] = [
    "id",
    "ad_account_creation_request_id",
    "ad_account_creation_request_status",
    "ad_account_number",
    "ad_accounts_info",
    "business_manager_id",
    "business_registration",
    "business_registration_id",
    "chinese_address",
    "chinese_legal_entity_name",
    "city",
    "contact",
    "disapprove_reason",
    "official_website_url",
    "payment_type",
    "phone_number",
    "planning_agency_name",
    "promotable_page_ids",
    "promotable_pages",
    "promotable_app_ids",
    "promotable_urls",
    "request_changes_reason",
    "reviewed_user",
    "spend_limit",
    "status",
    "subvertical",
    "subvertical_v2",
    "time_created",
    "time_updated",
    "time_zone",
    "token",
    "user_id",
    "user_name",
    "used_reseller_link",
    "vertical",
    "vertical_v2",
    "viewed_by_reseller",
    "zip_code",
    "ad_account_limit",
    "org_ad_account_count",
];

/// The spec's fields of `get_aac_request_detail`.
const AAC_FIELDS: [&str; 15] = [
    "id",
    "status",
    "contact",
    "disapproval_reasons",
    "request_change_reasons",
    "official_website_url",
    "legal_entity_name_in_local_language",
    "address_in_local_language",
    "promotable_page_ids",
    "promotable_urls",
    "promotable_app_ids",
    "business_registration_id",
    "vertical_v2",
    "subvertical_v2",
    "adaccounts",
];

/// `YYYY-MM-DDTHH:MM:SS+0800`: Graph's format in the agency's zone.
#[track_caller]
pub fn assert_graph_time(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("a time: {value}"));
    assert_eq!(text.len(), 24, "{text}");
    assert!(text.ends_with("+0800") && text.as_bytes()[10] == b'T', "{text}");
    assert!(jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%z", text).is_ok(), "{text}");
}

async fn requests(w: &World) {
    let (h, agency) = (&w.h, &w.agency);
    let (form_id, aac_id) = (&w.request.0, &w.request.1);

    // The spec's example: all the request ids.
    let answer = agency.call(h, "GET", "/api/v1/get_request_list", "s-list", json!({})).await;
    let list: Vec<String> = ok(&answer, "s-list")["list"].as_array().unwrap().iter().map(|id| id.as_str().expect("ids are strings").to_owned()).collect();
    assert!(list.contains(form_id) && !list.contains(&w.other_request), "{list:?}");
    // With `id`: those created after it.
    let answer = agency.call(h, "GET", "/api/v1/get_request_list", "s-after", json!({"id": list[0]})).await;
    assert_eq!(ok(&answer, "s-after")["list"], json!(list[1..]));
    let last = list.last().unwrap();
    assert_eq!(ok(&agency.call(h, "GET", "/api/v1/get_request_list", "s", json!({"id": last})).await, "s")["list"], json!([]));
    refused(&agency.call(h, "GET", "/api/v1/get_request_list", "s-x", json!({"id": "no-such-request"})).await, 1003, "s-x");
    refused(&agency.call(h, "GET", "/api/v1/get_request_list", "s-o", json!({"id": w.other_request})).await, 1003, "s-o");

    // get_request_detail: every field of the spec, with its type.
    let answer = agency.call(h, "GET", "/api/v1/get_request_detail", "s-detail", json!({"id": form_id})).await;
    let data = ok(&answer, "s-detail");
    assert_keys(data, &DETAIL_FIELDS);
    assert_eq!(data["id"], json!(form_id));
    assert_eq!(data["ad_account_creation_request_id"], json!({"id": aac_id}));
    assert_eq!(data["status"], "approved");
    assert_eq!(data["ad_account_creation_request_status"], "approved");
    let info = data["ad_accounts_info"].as_array().unwrap();
    assert_eq!(data["ad_account_number"], json!(info.len()));
    assert!(!info.is_empty() && info.iter().all(|i| i["ad_account_name"].is_string() && i["timezone_id"].is_i64()), "{data}");
    assert_graph_time(&data["time_created"]);
    assert_graph_time(&data["time_updated"]);
    for list in ["promotable_page_ids", "promotable_app_ids", "promotable_urls"] {
        assert!(data[list].is_array(), "{list}: {data}");
    }
    assert!(data["chinese_legal_entity_name"].as_str().is_some_and(|name| !name.is_empty()));
    for absent in ["payment_type", "phone_number", "token", "reviewed_user", "spend_limit", "ad_account_limit", "org_ad_account_count"] {
        assert_eq!(data[absent], json!(null), "Meta has no {absent}");
    }
    refused(&agency.call(h, "GET", "/api/v1/get_request_detail", "s-1002", json!({})).await, 1002, "s-1002");
    refused(&agency.call(h, "GET", "/api/v1/get_request_detail", "s-1002", json!({"id": ""})).await, 1002, "s-1002");
    refused(&agency.call(h, "GET", "/api/v1/get_request_detail", "s-1003", json!({"id": "no-such-request"})).await, 1003, "s-1003");
    refused(&agency.call(h, "GET", "/api/v1/get_request_detail", "s-1003", json!({"id": w.other_request})).await, 1003, "s-1003");
    // The query string serves as well as the body.
    let answer = send(h, Method::GET, &format!("/api/v1/get_request_detail?access_token={}&id={form_id}&search_id=q", agency.token()), None).await;
    assert_eq!(ok(&answer, "q")["id"], json!(form_id));

    // get_aac_request_detail: by Meta's id, with the accounts it issued.
    let answer = agency.call(h, "GET", "/api/v1/get_aac_request_detail", "s-aac", json!({"ad_account_creation_request_id": aac_id})).await;
    let data = ok(&answer, "s-aac");
    assert_keys(data, &AAC_FIELDS);
    assert_eq!((&data["id"], &data["status"]), (&json!(aac_id), &json!("approved")));
    let issued = data["adaccounts"]["data"].as_array().unwrap();
    assert!(issued.iter().all(|a| a.as_object().unwrap().len() == 2 && a["name"].is_string() && a["account_id"].is_string()), "{data}");
    let listed = w.accounts.iter().find(|a| a["id"] == json!(w.account)).unwrap();
    assert!(issued.contains(&json!({"account_id": w.account, "name": listed["name"]})), "{data}");
    assert!(data["disapproval_reasons"].is_array() && data["request_change_reasons"].is_array());
    assert_eq!(data["legal_entity_name_in_local_language"], listed["company_name"]);
    refused(&agency.call(h, "GET", "/api/v1/get_aac_request_detail", "a-1002", json!({"id": aac_id})).await, 1002, "a-1002");
    refused(&agency.call(h, "GET", "/api/v1/get_aac_request_detail", "a-1003", json!({"ad_account_creation_request_id": "123"})).await, 1003, "a-1003");
    let others = w.other.call(h, "GET", "/api/v1/get_aac_request_detail", "a-o", json!({"ad_account_creation_request_id": aac_id})).await;
    refused(&others, 1003, "a-o");
}
