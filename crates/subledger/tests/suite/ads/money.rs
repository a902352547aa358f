//! `change_spend_cap` and `account_spend_cap_reset`: a raise is funded from
//! the agency's USD wallet and a lowering or reset gives back what was not
//! spent; `search_id` makes every write happen once (a replay answers the
//! first outcome, moves nothing; concurrent replays too); every code of both
//! operations, on the sandbox and on Graph. The ledger's invariants hold after.

use serde_json::json;

use super::world::{Platform, World, graph, put_json};
use super::*;
use crate::on_both_backends;

on_both_backends!(spend_caps_on_the_sandbox, spend_caps_on_graph);

const CHANGE: &str = "/api/v1/change_spend_cap";
const RESET: &str = "/api/v1/account_spend_cap_reset";

async fn spend_caps_on_the_sandbox(backend: Backend) {
    let w = World::start(backend, Platform::Sandbox).await;
    spend_caps(&w).await;
    w.h.assert_ledger_sound().await;
}

async fn spend_caps_on_graph(backend: Backend) {
    let w = World::start(backend, Platform::Graph).await;
    spend_caps(&w).await;
    let (h, agency) = (&w.h, &w.agency);
    // Meta holds what was asked last: the reset cleared the spend, then $50.00 of cap.
    let seen = w.fake().ad_account(graph::EMPTY).unwrap();
    assert_eq!((seen.spend_cap_cents, seen.amount_spent_cents), (5_000, 0));
    // Not above what Meta has spent ($120 of $500): 1007; a status that forbids it: 1013.
    refused(&agency.call(h, "POST", CHANGE, "g7", json!({"id": graph::SPENDING, "amount_usd": 12_000})).await, 1007, "g7");
    let (balance, _) = w.usd_cents().await;
    done(&agency.call(h, "POST", CHANGE, "g-lower", json!({"id": graph::SPENDING, "amount_usd": 30_000})).await, "g-lower");
    assert_eq!(w.usd_cents().await.0, balance + 20_000, "lowering $500 to $300 gives $200 back");
    assert_eq!(w.fake().ad_account(graph::SPENDING).unwrap().spend_cap_cents, 30_000);
    let message = refused(&agency.call(h, "POST", CHANGE, "g13", json!({"id": graph::DISABLED, "amount_usd": 20_000})).await, 1013, "g13").to_owned();
    assert!(message.contains("status"), "{message}");
    refused(&agency.call(h, "POST", CHANGE, "g13c", json!({"id": graph::CLOSED, "amount_usd": 20_000})).await, 1013, "g13c");
    refused(&agency.call(h, "POST", RESET, "g13r", json!({"id": graph::CLOSED})).await, 1013, "g13r");
    // A disabled account is reset (zeroed): its $80 unspent come back, less the cent Meta keeps.
    let (balance, _) = w.usd_cents().await;
    done(&agency.call(h, "POST", RESET, "g-zero", json!({"id": graph::DISABLED})).await, "g-zero");
    assert_eq!(w.usd_cents().await.0, balance + 8_000 - 1);
    assert_eq!(w.listed(graph::DISABLED).await["status"], 3, "disabled, nothing left to zero");
    h.assert_ledger_sound().await;
}

/// US cents from `account_list`'s dollars.
fn cents(dollars: &Value) -> i64 {
    (dollars.as_f64().unwrap() * 100.0).round() as i64
}

async fn spend_caps(w: &World) {
    let (h, agency, id) = (&w.h, &w.agency, w.account.as_str());
    let (balance, reserved) = w.usd_cents().await;
    assert_eq!(reserved, 0);
    let cap_before = cents(&w.listed(id).await["spend_cap"]);

    // Refusals move nothing.
    refused(&agency.call(h, "POST", CHANGE, "c2", json!({"amount_usd": 1000})).await, 1002, "c2");
    refused(&agency.call(h, "POST", CHANGE, "c4", json!({"id": id})).await, 1004, "c4");
    refused(&agency.call(h, "POST", CHANGE, "c4", json!({"id": id, "amount_usd": ""})).await, 1004, "c4");
    for invalid in [json!("abc"), json!(1500.5), json!("15.005"), json!(10_000_000_000_001_i64), json!([1500]), json!("1e3"), json!(true)] {
        refused(&agency.call(h, "POST", CHANGE, "c5", json!({"id": id, "amount_usd": invalid})).await, 1005, "c5");
    }
    for too_low in [json!(0), json!("0.00"), json!(-500), json!("-0.5")] {
        let message = refused(&agency.call(h, "POST", CHANGE, "c7", json!({"id": id, "amount_usd": too_low})).await, 1007, "c7").to_owned();
        assert!(message.contains("too low"), "{message}");
    }
    refused(&agency.call(h, "POST", CHANGE, "c3", json!({"id": "999", "amount_usd": 1000})).await, 1003, "c3");
    refused(&agency.call(h, "POST", CHANGE, "c3", json!({"id": w.other_account, "amount_usd": 1000})).await, 1003, "c3");
    // More than the wallet holds: 1012, and a replay answers 1012 again even once the money is there.
    let message = refused(&agency.call(h, "POST", CHANGE, "poor", json!({"id": id, "amount_usd": 2_000_000})).await, 1012, "poor").to_owned();
    assert!(message.contains("USD wallet"), "{message}");
    assert_eq!(w.usd_cents().await, (balance, 0));

    // The spec's example: a raise to $200.00 (in cents), funded once.
    let raise = json!({"id": id, "amount_usd": 20_000});
    done(&agency.call(h, "POST", CHANGE, "raise-1", raise.clone()).await, "raise-1");
    let raised = balance - (20_000 - cap_before);
    assert_eq!(w.usd_cents().await, (raised, 0));
    assert_eq!(w.listed(id).await["spend_cap"], json!(200.0));
    let info = agency.call(h, "GET", "/api/v1/account_info", "i", json!({"id": id, "fields": ["spend_cap"]})).await;
    assert_eq!(ok(&info, "i")["spend_cap"], 20_000, "Meta has the cap");
    // The same search_id again, in the query form too: the first outcome, nothing moves.
    done(&agency.call(h, "POST", CHANGE, "raise-1", raise.clone()).await, "raise-1");
    let query = format!("{CHANGE}?access_token={}&id={id}&amount_usd=20000.00&search_id=raise-1", agency.token());
    done(&send(h, Method::POST, &query, None).await, "raise-1");
    assert_eq!(w.usd_cents().await, (raised, 0));
    // The same search_id for another request: refused, nothing moves.
    let message = refused(&agency.call(h, "POST", CHANGE, "raise-1", json!({"id": id, "amount_usd": 30_000})).await, 1001, "raise-1").to_owned();
    assert!(message.contains("search_id"), "{message}");
    refused(&agency.call(h, "POST", RESET, "raise-1", json!({"id": id})).await, 1001, "raise-1");
    assert_eq!(w.usd_cents().await, (raised, 0));

    // The refused request replayed once the money is there: still its first outcome.
    h.deposit_usd(&agency.tenant, "50000.00").await;
    let funded = raised + 5_000_000;
    refused(&agency.call(h, "POST", CHANGE, "poor", json!({"id": id, "amount_usd": 2_000_000})).await, 1012, "poor");
    assert_eq!(w.usd_cents().await, (funded, 0));

    // Two identical raises at once: one change; each answers success or "under way" (1011).
    let twice = json!({"id": id, "amount_usd": 40_000});
    let (first, second) = tokio::join!(agency.call(h, "POST", CHANGE, "raise-2", twice.clone()), agency.call(h, "POST", CHANGE, "raise-2", twice.clone()));
    for answer in [&first, &second] {
        let code = answer.body["resp_header"]["code"].as_i64().unwrap();
        assert!(code == 1 || code == 1011, "{}", answer.raw);
    }
    done(&agency.call(h, "POST", CHANGE, "raise-2", twice).await, "raise-2");
    assert_eq!(w.usd_cents().await, (funded - 20_000, 0), "raised from $200 to $400 once");

    // Lowering gives back the difference.
    done(&agency.call(h, "POST", CHANGE, "lower-1", json!({"id": id, "amount_usd": "30000.00"})).await, "lower-1");
    assert_eq!(w.usd_cents().await, (funded - 10_000, 0));

    // A reset gives back what was not spent (all but the cent Meta keeps, less what the account spent meanwhile).
    refused(&agency.call(h, "POST", RESET, "r2", json!({})).await, 1002, "r2");
    refused(&agency.call(h, "POST", RESET, "r3", json!({"id": "1"})).await, 1003, "r3");
    refused(&agency.call(h, "POST", RESET, "r3", json!({"id": w.other_account})).await, 1003, "r3");
    done(&agency.call(h, "POST", RESET, "reset-1", json!({"id": id})).await, "reset-1");
    let (after_reset, reserved) = w.usd_cents().await;
    assert_eq!(reserved, 0);
    let returned = after_reset - (funded - 10_000);
    assert!((1..=30_000 - 1).contains(&returned), "returned {returned}");
    let listed = w.listed(id).await;
    assert_eq!((&listed["spend_cap"], &listed["amount_spent"]), (&json!(0.01), &json!(0.0)));
    done(&agency.call(h, "POST", RESET, "reset-1", json!({"id": id})).await, "reset-1");
    assert_eq!(w.usd_cents().await.0, after_reset, "a replayed reset moves nothing");

    // The operator's marks refuse a raise (1020, 1021), not a reset.
    let violation = format!("/v1/ads/accounts/{id}/violation");
    put_json(h, &violation, agency.token(), &json!({"violation": true, "reason": "policy"})).await;
    refused(&agency.call(h, "POST", CHANGE, "v", json!({"id": id, "amount_usd": 5_000})).await, 1020, "v");
    put_json(h, &violation, agency.token(), &json!({"violation": false})).await;
    let blacklist = format!("/v1/ads/blacklist/{}", encode(listed["company_name"].as_str().unwrap()));
    put_json(h, &blacklist, agency.token(), &json!({"level": 4, "reason": "fraud"})).await;
    refused(&agency.call(h, "POST", CHANGE, "b", json!({"id": id, "amount_usd": 5_000})).await, 1021, "b");
    put_json(h, &blacklist, agency.token(), &json!({"level": 0})).await;
    assert_eq!(w.usd_cents().await, (after_reset, 0));
    done(&agency.call(h, "POST", CHANGE, "after-marks", json!({"id": id, "amount_usd": 5_000})).await, "after-marks");
    assert_eq!(w.usd_cents().await.0, after_reset - (5_000 - 1));
}
