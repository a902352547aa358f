//! Tenant isolation: another agency's token never sees or changes this
//! agency's requests, accounts, bindings or insights. Every operation that
//! names an id answers the other agency exactly as it answers an id that
//! does not exist (1003, same message), and nothing changes.

use serde_json::json;

use super::world::{Platform, World, day};
use super::*;
use crate::on_both_backends;

on_both_backends!(another_agency_sees_nothing_on_the_sandbox, another_agency_sees_nothing_on_graph);

async fn another_agency_sees_nothing_on_the_sandbox(backend: Backend) {
    another_agency_sees_nothing(&World::start(backend, Platform::Sandbox).await).await;
}

async fn another_agency_sees_nothing_on_graph(backend: Backend) {
    let w = World::start(backend, Platform::Graph).await;
    another_agency_sees_nothing(&w).await;
    let seen = w.fake().ad_account(&w.account).unwrap();
    assert_eq!(seen.spend_cap_cents, 0, "Meta was not asked to change it");
    assert!(w.fake().agencies(&w.account).len() <= 1);
}

async fn another_agency_sees_nothing(w: &World) {
    let (h, other) = (&w.h, &w.other);
    let (form_id, aac_id) = (&w.request.0, &w.request.1);
    let (balance, _) = w.usd_cents().await;
    let listed_before = w.listed(&w.account).await;
    let week = json!({"since": day(-6), "until": day(0)});
    // (method, path, parameters naming the agency's id, the same naming nothing).
    let operations: Vec<(&str, &str, Value, Value)> = vec![
        ("GET", "/api/v1/get_request_list", json!({"id": form_id}), json!({"id": "missing"})),
        ("GET", "/api/v1/get_request_detail", json!({"id": form_id}), json!({"id": "missing"})),
        ("GET", "/api/v1/get_aac_request_detail", json!({"ad_account_creation_request_id": aac_id}), json!({"ad_account_creation_request_id": "missing"})),
        ("POST", "/api/v1/change_spend_cap", json!({"id": w.account, "amount_usd": 10_000}), json!({"id": "1", "amount_usd": 10_000})),
        ("POST", "/api/v1/account_binding_bm", json!({"id": w.account, "business_id": "123456789"}), json!({"id": "1", "business_id": "123456789"})),
        ("POST", "/api/v1/account_remove_bm", json!({"id": w.account, "business_id": "123456789"}), json!({"id": "1", "business_id": "123456789"})),
        ("GET", "/api/v1/account_business_list", json!({"id": w.account}), json!({"id": "1"})),
        ("POST", "/api/v1/account_spend_cap_reset", json!({"id": w.account}), json!({"id": "1"})),
        ("GET", "/api/v1/account_info", json!({"id": w.account}), json!({"id": "1"})),
        ("GET", "/api/v1/account_insights", json!({"id": w.account, "time_range": week, "fields": ["spend"]}), json!({"id": "1", "time_range": week, "fields": ["spend"]})),
        (
            "GET",
            "/api/v1/account_insights_breakdowns",
            json!({"id": w.account, "time_range": week, "fields": ["spend"], "breakdowns": "country"}),
            json!({"id": "1", "time_range": week, "fields": ["spend"], "breakdowns": "country"}),
        ),
        ("GET", "/api/v1/account_recharge_status", json!({"id": w.account}), json!({"id": "1"})),
        ("POST", "/api/v1/account_binding_pixel", json!({"id": w.account, "pixel_id": "1"}), json!({"id": "1", "pixel_id": "1"})),
        ("POST", "/api/v1/account_remove_pixel", json!({"id": w.account, "pixel_id": "1"}), json!({"id": "1", "pixel_id": "1"})),
        ("POST", "/api/v1/account_pixel_list", json!({"id": w.account}), json!({"id": "1"})),
    ];
    for (i, (method, path, theirs, nothing)) in operations.into_iter().enumerate() {
        let search_id = format!("iso-{i}");
        let answer = other.call(h, method, path, &search_id, theirs).await;
        let message = refused(&answer, 1003, &search_id).to_owned();
        let unknown = other.call(h, method, path, &format!("none-{i}"), nothing).await;
        assert_eq!(refused(&unknown, 1003, &format!("none-{i}")), message, "{path}: the other agency cannot tell an id of this agency from no id");
    }
    // The other agency's lists hold nothing of this agency's.
    let requests = other.call(h, "GET", "/api/v1/get_request_list", "l", json!({})).await;
    assert!(!ok(&requests, "l")["list"].as_array().unwrap().contains(&json!(form_id)));
    assert!(other.accounts(h).await.iter().all(|a| a["id"] != json!(w.account)));
    // Nothing changed for this agency.
    assert_eq!(w.usd_cents().await, (balance, 0));
    assert_eq!(w.listed(&w.account).await, listed_before);
    let businesses = w.agency.call(h, "GET", "/api/v1/account_business_list", "b", json!({"id": w.account})).await;
    assert!(ok(&businesses, "b").as_array().unwrap().iter().all(|b| b["id"] != "123456789"));
}
