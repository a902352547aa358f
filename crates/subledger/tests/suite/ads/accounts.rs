//! `/lb/api/v1/account_list`, `account_info`, `account_recharge_status`: the
//! spec's fields and types (money as the spec says: Int cents in
//! `account_info`, Float dollars with two decimals in `account_list`),
//! paging and day filters, `fields`, the operator's violation and blacklist
//! marks, and every code of these operations, on the sandbox and on Graph.

use serde_json::json;

use super::requests::assert_graph_time;
use super::world::{Platform, World, graph, put_json};
use super::*;
use crate::on_both_backends;

on_both_backends!(accounts_on_the_sandbox, accounts_on_graph);

async fn accounts_on_the_sandbox(backend: Backend) {
    let w = World::start(backend, Platform::Sandbox).await;
    accounts(&w).await;
    // The spec's example asks for May 2024: the sandbox opened its accounts today.
    let answer = w.agency.call(&w.h, "GET", "/lb/api/v1/account_list", "ex", json!({"page_num": 1, "page_size": 100, "create_start_date": "2024-05-01", "create_end_date": "2024-05-31"})).await;
    assert_eq!(ok(&answer, "ex"), &json!({"list": [], "total_count": 0}));
}

async fn accounts_on_graph(backend: Backend) {
    let w = World::start(backend, Platform::Graph).await;
    accounts(&w).await;
    // The spec's example: the four accounts Meta opened on 2024-05-10.
    let answer = w.agency.call(&w.h, "GET", "/lb/api/v1/account_list", "ex", json!({"page_num": 1, "page_size": 100, "create_start_date": "2024-05-01", "create_end_date": "2024-05-31"})).await;
    assert_eq!(ok(&answer, "ex")["total_count"], 4);
    let spending = w.listed(graph::SPENDING).await;
    assert_eq!(
        spending,
        json!({"id": graph::SPENDING, "name": "Alpha-02", "created_time": "2024-05-10T18:00:00+0800", "status": 1, "spend_cap": 500.0, "amount_spent": 120.0, "total_spend": 120.0,
               "company_name": graph::COMPANY, "request_id": "OE-1001", "violation": false, "violation_reason": "", "blacklist": 0})
    );
    let statuses: Vec<(String, i64)> = w.accounts.iter().map(|a| (a["id"].as_str().unwrap().to_owned(), a["status"].as_i64().unwrap())).collect();
    for (id, status) in [(graph::EMPTY, 4), (graph::SPENDING, 1), (graph::DISABLED, 7), (graph::CLOSED, 2)] {
        assert!(statuses.contains(&(id.to_owned(), status)), "{id} {status}: {statuses:?}");
    }
    assert_eq!(w.listed(graph::DISABLED).await["company_name"], graph::DISABLED_COMPANY);
    // account_info reads Meta now.
    let answer = w.agency.call(&w.h, "GET", "/api/v1/account_info", "i", json!({"id": graph::SPENDING, "fields": ["spend_cap", "amount_spent", "account_status", "currency", "timezone_name"]})).await;
    assert_eq!(ok(&answer, "i"), &json!({"spend_cap": 50_000, "amount_spent": 12_000, "account_status": 1, "currency": "USD", "timezone_name": "America/Los_Angeles"}));
    let answer = w.agency.call(&w.h, "GET", "/api/v1/account_info", "i", json!({"id": graph::DISABLED, "fields": "account_status,disable_reason"})).await;
    assert_eq!(ok(&answer, "i"), &json!({"account_status": 2, "disable_reason": 1}));
    // Recharge status: a disabled or closed account cannot be topped up, and says why.
    for id in [graph::DISABLED, graph::CLOSED] {
        let answer = w.agency.call(&w.h, "GET", "/api/v1/account_recharge_status", "r", json!({"id": id})).await;
        let data = ok(&answer, "r");
        assert_eq!(data["status"], false, "{data}");
        assert!(data["reason"].as_str().unwrap().contains("status"), "{data}");
    }
}

/// The spec's fields of an `account_list` item.
const LIST_FIELDS: [&str; 12] = ["id", "name", "created_time", "status", "spend_cap", "amount_spent", "total_spend", "company_name", "request_id", "violation", "violation_reason", "blacklist"];
/// Every field `account_info` knows (`subledger_ads::AD_ACCOUNT_FIELDS`).
const INFO_FIELDS: [&str; 14] =
    ["id", "account_id", "name", "account_status", "disable_reason", "currency", "spend_cap", "amount_spent", "balance", "created_time", "timezone_id", "timezone_name", "business", "owner"];

/// The money fields of `account_list` as written: numbers with exactly two decimals.
#[track_caller]
fn assert_dollars_with_two_decimals(raw: &str) {
    for field in ["\"spend_cap\":", "\"amount_spent\":", "\"total_spend\":"] {
        let mut seen = 0;
        for (at, _) in raw.match_indices(field) {
            let number: String = raw[at + field.len()..].chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-').collect();
            let (_, decimals) = number.split_once('.').unwrap_or_else(|| panic!("{field} {number} has no decimals"));
            assert_eq!(decimals.len(), 2, "{field} {number}");
            seen += 1;
        }
        assert!(seen > 0, "{field} in {raw}");
    }
}

async fn accounts(w: &World) {
    let (h, agency) = (&w.h, &w.agency);
    let list = "/lb/api/v1/account_list";

    // Every item has the spec's fields and types.
    let answer = agency.call(h, "GET", list, "l", json!({"page_num": 1, "page_size": 500})).await;
    let data = ok(&answer, "l");
    assert_keys(data, &["list", "total_count"]);
    let items = data["list"].as_array().unwrap();
    assert_eq!(data["total_count"], json!(items.len()));
    assert!(!items.is_empty());
    for item in items {
        assert_keys(item, &LIST_FIELDS);
        for text in ["id", "name", "company_name", "request_id", "violation_reason"] {
            assert!(item[text].is_string(), "{text}: {item}");
        }
        assert_graph_time(&item["created_time"]);
        assert!([1, 2, 3, 4, 7].contains(&item["status"].as_i64().unwrap()), "{item}");
        assert!(item["spend_cap"].is_f64() && item["amount_spent"].is_f64() && item["total_spend"].is_f64(), "{item}");
        assert!(item["violation"].is_boolean() && item["blacklist"].is_i64(), "{item}");
    }
    assert_dollars_with_two_decimals(&answer.raw);
    // Newest first, a page at a time; total_count counts them all.
    let created: Vec<&str> = items.iter().map(|a| a["created_time"].as_str().unwrap()).collect();
    assert!(created.windows(2).all(|pair| pair[0] >= pair[1]), "{created:?}");
    let answer = agency.call(h, "GET", list, "p", json!({"page_num": 2, "page_size": 1})).await;
    assert_eq!(ok(&answer, "p"), &json!({"list": [items[1]], "total_count": items.len()}));
    let answer = agency.call(h, "GET", list, "p", json!({"page_num": 1000, "page_size": 500})).await;
    assert_eq!(ok(&answer, "p"), &json!({"list": [], "total_count": items.len()}));
    // Days in the agency's zone, both included, either optional.
    let first_day = &items[0]["created_time"].as_str().unwrap()[..10];
    let on_the_day = agency.call(h, "GET", list, "d", json!({"create_start_date": first_day, "create_end_date": first_day})).await;
    let on_the_day = ok(&on_the_day, "d")["list"].as_array().unwrap().clone();
    assert!(on_the_day.contains(&items[0]) && on_the_day.iter().all(|a| a["created_time"].as_str().unwrap().starts_with(first_day)));
    let from = agency.call(h, "GET", list, "d", json!({"create_start_date": first_day})).await;
    assert!(ok(&from, "d")["list"].as_array().unwrap().contains(&items[0]));
    let until_before = agency.call(h, "GET", list, "d", json!({"create_end_date": "2000-01-01"})).await;
    assert_eq!(ok(&until_before, "d")["total_count"], 0);
    for (start, end) in [("2024-5-1", "2024-05-31"), ("2024-02-30", "2024-03-01"), ("2024-05-31", "2024-05-01"), ("2024/05/01", ""), ("", "tomorrow")] {
        let answer = agency.call(h, "GET", list, "d15", json!({"create_start_date": start, "create_end_date": end})).await;
        refused(&answer, 1015, "d15");
    }
    refused(&agency.call(h, "GET", list, "d15", json!({"create_start_date": 20240501})).await, 1015, "d15");
    for (num, size) in
        [(json!(0), json!(10)), (json!(1), json!(0)), (json!(1), json!(501)), (json!("x"), json!(10)), (json!(1), json!(2.5)), (json!(-1), json!(10)), (json!(1_000_000_000_000_i64), json!(500))]
    {
        let answer = agency.call(h, "GET", list, "p27", json!({"page_num": num, "page_size": size})).await;
        refused(&answer, 1027, "p27");
    }

    // account_info: every field it knows without `fields`.
    let info = "/api/v1/account_info";
    let answer = agency.call(h, "GET", info, "i", json!({"id": w.account})).await;
    let data = ok(&answer, "i");
    assert_keys(data, &INFO_FIELDS);
    assert_eq!((&data["account_id"], &data["id"]), (&json!(w.account), &json!(format!("act_{}", w.account))));
    for whole in ["spend_cap", "amount_spent", "account_status", "disable_reason"] {
        assert!(data[whole].is_i64(), "{whole} is an Int: {data}");
    }
    assert_graph_time(&data["created_time"]);
    let listed = items.iter().find(|a| a["id"] == json!(w.account)).unwrap();
    assert_eq!((&data["name"], &data["created_time"]), (&listed["name"], &listed["created_time"]));
    // The spec's example: the fields asked, only those; as a list, its text, or commas; `act_` ids too.
    let answer = agency.call(h, "GET", info, "i", json!({"id": w.account, "fields": ["id", "account_id", "name"]})).await;
    assert_keys(ok(&answer, "i"), &["id", "account_id", "name"]);
    let answer = agency.call(h, "GET", info, "i", json!({"id": format!("act_{}", w.account), "fields": "[\"spend_cap\",\"spend_cap\"]"})).await;
    assert_keys(ok(&answer, "i"), &["spend_cap"]);
    let answer = send(h, Method::GET, &format!("{info}?access_token={}&id={}&fields=name,currency&search_id=q", agency.token(), w.account), None).await;
    assert_keys(ok(&answer, "q"), &["name", "currency"]);
    for empty in [json!([]), json!(""), json!(" ")] {
        refused(&agency.call(h, "GET", info, "i9", json!({"id": w.account, "fields": empty})).await, 1009, "i9");
    }
    for unknown in [json!(["id", "password"]), json!([1]), json!({"id": true}), json!("[id")] {
        let answer = agency.call(h, "GET", info, "i10", json!({"id": w.account, "fields": unknown})).await;
        refused(&answer, 1010, "i10");
    }
    refused(&agency.call(h, "GET", info, "i2", json!({"fields": ["id"]})).await, 1002, "i2");
    refused(&agency.call(h, "GET", info, "i3", json!({"id": "123"})).await, 1003, "i3");
    refused(&agency.call(h, "GET", info, "i3", json!({"id": w.other_account})).await, 1003, "i3");

    // account_recharge_status: true, then the operator's marks refuse it (1020, 1021) until lifted.
    let status = "/api/v1/account_recharge_status";
    let answer = agency.call(h, "GET", status, "r", json!({"id": w.account})).await;
    assert_eq!(ok(&answer, "r"), &json!({"status": true, "reason": ""}));
    let violation = format!("/v1/ads/accounts/{}/violation", w.account);
    let (code, body) = put_json(h, &violation, agency.token(), &json!({"violation": true, "reason": "fake traffic"})).await;
    assert_eq!(code, 204, "{body}");
    assert!(refused(&agency.call(h, "GET", status, "r20", json!({"id": w.account})).await, 1020, "r20").contains("violation"));
    let marked = w.listed(&w.account).await;
    assert_eq!((&marked["violation"], &marked["violation_reason"]), (&json!(true), &json!("fake traffic")));
    put_json(h, &violation, agency.token(), &json!({"violation": false})).await;
    let company = listed["company_name"].as_str().unwrap();
    let blacklist = format!("/v1/ads/blacklist/{}", encode(company));
    let (code, body) = put_json(h, &blacklist, agency.token(), &json!({"level": 2, "reason": "chargebacks"})).await;
    assert_eq!(code, 204, "{body}");
    assert!(refused(&agency.call(h, "GET", status, "r21", json!({"id": w.account})).await, 1021, "r21").contains("blacklist"));
    assert_eq!(w.listed(&w.account).await["blacklist"], 2);
    // Another agency's blacklist is its own.
    let others = w.other.call(h, "GET", status, "o", json!({"id": w.other_account})).await;
    assert_eq!(ok(&others, "o")["status"], true);
    put_json(h, &blacklist, agency.token(), &json!({"level": 0})).await;
    assert_eq!(ok(&agency.call(h, "GET", status, "r", json!({"id": w.account})).await, "r")["status"], true);
    assert_eq!(w.listed(&w.account).await["blacklist"], 0);
    refused(&agency.call(h, "GET", status, "r2", json!({})).await, 1002, "r2");
    refused(&agency.call(h, "GET", status, "r3", json!({"id": "act_1"})).await, 1003, "r3");
    refused(&agency.call(h, "GET", status, "r3", json!({"id": w.other_account})).await, 1003, "r3");
}
