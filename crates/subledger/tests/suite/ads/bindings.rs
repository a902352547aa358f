//! Business Manager and pixel bindings: bind, list, unbind, replays by
//! `search_id`, the operator's switch that pauses unbinding (1022), Meta's
//! refusals passed on (1006), and every code of the six operations, on the
//! sandbox and on Graph.

use serde_json::json;

use super::world::{Platform, World, graph, put_json};
use super::*;
use crate::on_both_backends;

on_both_backends!(bindings_on_the_sandbox, bindings_on_graph);

const BIND_BM: &str = "/api/v1/account_binding_bm";
const REMOVE_BM: &str = "/api/v1/account_remove_bm";
const BM_LIST: &str = "/api/v1/account_business_list";
const BIND_PIXEL: &str = "/api/v1/account_binding_pixel";
const REMOVE_PIXEL: &str = "/api/v1/account_remove_pixel";
const PIXEL_LIST: &str = "/api/v1/account_pixel_list";

async fn bindings_on_the_sandbox(backend: Backend) {
    let w = World::start(backend, Platform::Sandbox).await;
    businesses(&w, "123456789012345").await;
    // Unbinding what is not bound (a new search_id): the sandbox refuses, as Meta may; its message.
    let message = refused(&w.agency.call(&w.h, "POST", REMOVE_BM, "rm-2", json!({"id": w.account, "business_id": "123456789012345"})).await, 1006, "rm-2").to_owned();
    assert!(message.contains("no access"), "{message}");
    pixel_codes(&w).await;
    // The sandbox refuses a pixel it does not own, as Meta would: 1006 with Meta's message.
    let message = refused(&w.agency.call(&w.h, "POST", BIND_PIXEL, "p", json!({"id": w.account, "pixel_id": "123"})).await, 1006, "p").to_owned();
    assert!(message.contains("pixel"), "{message}");
    assert_eq!(ok(&w.agency.call(&w.h, "POST", PIXEL_LIST, "pl", json!({"id": w.account})).await, "pl"), &json!([]));
}

async fn bindings_on_graph(backend: Backend) {
    let w = World::start(backend, Platform::Graph).await;
    businesses(&w, graph::PARTNER).await;
    assert!(!w.fake().agencies(graph::EMPTY).contains_key(graph::PARTNER), "Meta no longer shares it");
    pixel_codes(&w).await;
    let (h, agency, id) = (&w.h, &w.agency, graph::EMPTY);
    // A pixel of the agency's: bound at Meta, listed (POST as the spec, GET too), unbound.
    done(&agency.call(h, "POST", BIND_PIXEL, "px-1", json!({"id": id, "pixel_id": graph::PIXEL})).await, "px-1");
    assert_eq!(w.fake().pixel_accounts(graph::PIXEL), [id]);
    done(&agency.call(h, "POST", BIND_PIXEL, "px-1", json!({"id": id, "pixel_id": graph::PIXEL})).await, "px-1");
    let listed = json!([{"id": graph::PIXEL, "name": "Alpha Pixel"}]);
    assert_eq!(ok(&agency.call(h, "POST", PIXEL_LIST, "pl", json!({"id": id})).await, "pl"), &listed);
    assert_eq!(ok(&agency.call(h, "GET", PIXEL_LIST, "pl", json!({"id": id})).await, "pl"), &listed);
    done(&agency.call(h, "POST", REMOVE_PIXEL, "px-2", json!({"id": id, "pixel_id": graph::PIXEL})).await, "px-2");
    assert!(w.fake().pixel_accounts(graph::PIXEL).is_empty());
    assert_eq!(ok(&agency.call(h, "POST", PIXEL_LIST, "pl", json!({"id": id})).await, "pl"), &json!([]));
    // Another business's pixel: Meta refuses, the message is Meta's.
    let message = refused(&agency.call(h, "POST", BIND_PIXEL, "px-3", json!({"id": id, "pixel_id": graph::OTHER_PIXEL})).await, 1006, "px-3").to_owned();
    assert!(!message.is_empty() && !message.contains("system error"), "{message}");
    assert!(w.fake().pixel_accounts(graph::OTHER_PIXEL).is_empty());
}

/// Binds a Business Manager, lists it, unbinds it; 1008, 1022 and the ids' codes.
async fn businesses(w: &World, partner: &str) {
    let (h, agency, id) = (&w.h, &w.agency, w.account.as_str());
    let ids = |answer: &Answer| -> Vec<String> { ok(answer, "bl").as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_owned()).collect() };
    let before = ids(&agency.call(h, "GET", BM_LIST, "bl", json!({"id": id})).await);
    assert!(!before.contains(&partner.to_owned()));

    done(&agency.call(h, "POST", BIND_BM, "bm-1", json!({"id": id, "business_id": partner})).await, "bm-1");
    done(&agency.call(h, "POST", BIND_BM, "bm-1", json!({"id": id, "business_id": partner})).await, "bm-1");
    // The spec's example: id, name and permitted_tasks of each.
    let answer = agency.call(h, "GET", BM_LIST, "bl", json!({"id": id, "fields": ["id", "name", "permitted_tasks"]})).await;
    let list = ok(&answer, "bl").as_array().unwrap().clone();
    assert_eq!(list.len(), before.len() + 1);
    let bound = list.iter().find(|b| b["id"] == partner).unwrap_or_else(|| panic!("{partner} listed: {}", answer.raw));
    assert_keys(bound, &["id", "name", "permitted_tasks"]);
    assert!(bound["name"].is_string() && bound["permitted_tasks"].as_array().unwrap().iter().all(Value::is_string), "{bound}");
    let answer = agency.call(h, "GET", BM_LIST, "bl", json!({"id": id, "fields": "id"})).await;
    assert!(ok(&answer, "bl").as_array().unwrap().iter().all(|b| b.as_object().unwrap().len() == 1), "{}", answer.raw);
    // The spec lists no 1010 here: an unknown field is 1001, naming it.
    assert!(refused(&agency.call(h, "GET", BM_LIST, "bl10", json!({"id": id, "fields": ["owner"]})).await, 1001, "bl10").contains("owner"));

    refused(&agency.call(h, "POST", BIND_BM, "b8", json!({"id": id})).await, 1008, "b8");
    refused(&agency.call(h, "POST", BIND_BM, "b8", json!({"id": id, "business_id": ""})).await, 1008, "b8");
    refused(&agency.call(h, "POST", BIND_BM, "b2", json!({"business_id": partner})).await, 1002, "b2");
    refused(&agency.call(h, "POST", BIND_BM, "b3", json!({"id": "42", "business_id": partner})).await, 1003, "b3");
    refused(&agency.call(h, "POST", BIND_BM, "b3", json!({"id": w.other_account, "business_id": partner})).await, 1003, "b3");
    // Meta refuses what is no Business Manager: 1006, its message.
    let message = refused(&agency.call(h, "POST", BIND_BM, "b6", json!({"id": id, "business_id": "not-a-bm"})).await, 1006, "b6").to_owned();
    assert!(!message.contains("system error"), "{message}");
    refused(&agency.call(h, "GET", BM_LIST, "l2", json!({})).await, 1002, "l2");
    refused(&agency.call(h, "GET", BM_LIST, "l3", json!({"id": w.other_account})).await, 1003, "l3");

    // The operator pauses unbinding: 1022, and nothing is unbound.
    let (status, body) = put_json(h, "/v1/ads/settings", agency.token(), &json!({"unbind_business_paused": true})).await;
    assert_eq!(status, 204, "{body}");
    let message = refused(&agency.call(h, "POST", REMOVE_BM, "rm-paused", json!({"id": id, "business_id": partner})).await, 1022, "rm-paused").to_owned();
    assert!(message.contains("paused"), "{message}");
    assert!(ids(&agency.call(h, "GET", BM_LIST, "bl", json!({"id": id})).await).contains(&partner.to_owned()));
    put_json(h, "/v1/ads/settings", agency.token(), &json!({"unbind_business_paused": false})).await;

    refused(&agency.call(h, "POST", REMOVE_BM, "r8", json!({"id": id})).await, 1008, "r8");
    refused(&agency.call(h, "POST", REMOVE_BM, "r2", json!({"business_id": partner})).await, 1002, "r2");
    refused(&agency.call(h, "POST", REMOVE_BM, "r3", json!({"id": w.other_account, "business_id": partner})).await, 1003, "r3");
    done(&agency.call(h, "POST", REMOVE_BM, "rm-1", json!({"id": id, "business_id": partner})).await, "rm-1");
    done(&agency.call(h, "POST", REMOVE_BM, "rm-1", json!({"id": id, "business_id": partner})).await, "rm-1");
    assert_eq!(ids(&agency.call(h, "GET", BM_LIST, "bl", json!({"id": id})).await), before);
}

/// The ids' codes of the three pixel operations.
async fn pixel_codes(w: &World) {
    let (h, agency, id) = (&w.h, &w.agency, w.account.as_str());
    for path in [BIND_PIXEL, REMOVE_PIXEL] {
        refused(&agency.call(h, "POST", path, "p23", json!({"id": id})).await, 1023, "p23");
        refused(&agency.call(h, "POST", path, "p23", json!({"id": id, "pixel_id": null})).await, 1023, "p23");
        refused(&agency.call(h, "POST", path, "p2", json!({"pixel_id": "1"})).await, 1002, "p2");
        refused(&agency.call(h, "POST", path, "p3", json!({"id": "1", "pixel_id": "1"})).await, 1003, "p3");
        refused(&agency.call(h, "POST", path, "p3", json!({"id": w.other_account, "pixel_id": "1"})).await, 1003, "p3");
    }
    refused(&agency.call(h, "POST", PIXEL_LIST, "l2", json!({})).await, 1002, "l2");
    refused(&agency.call(h, "GET", PIXEL_LIST, "l3", json!({"id": "1"})).await, 1003, "l3");
    refused(&agency.call(h, "POST", PIXEL_LIST, "l3", json!({"id": w.other_account})).await, 1003, "l3");
}
