//! Meta misbehaving, played by the fake Graph server, as the dialect answers
//! it: no answer in time, 5xx, its rate limit (1011), its refusals (1006,
//! with Meta's message, on every operation that calls Meta). Lost answers of
//! spend cap changes and `kill -9` are `ads_faults.rs`'s.

use std::time::{Duration, Instant};

use serde_json::json;
use subledger_fake_graph::Control;

use super::world::{GRAPH_TIMEOUT_MS, Platform, World, graph};
use super::*;
use crate::on_both_backends;

on_both_backends!(meta_failures_answer_1011_1006_or_its_message);

fn graph_error(code: i64, message: &str) -> Option<Value> {
    Some(json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}))
}

fn fail(path: String, status: u16, error: Option<Value>) -> Control {
    Control::Fail { path: Some(path), times: None, status, error }
}

async fn meta_failures_answer_1011_1006_or_its_message(backend: Backend) {
    let w = World::start(backend, Platform::Graph).await;
    let (h, agency, fake, id) = (&w.h, &w.agency, w.fake(), graph::EMPTY);
    let account_path = format!("act_{id}");

    // No answer in time: 1011 after the connector's deadline, not much later.
    fake.apply(Control::Hang { path: Some(account_path.clone()), times: None }).unwrap();
    let started = Instant::now();
    let message = refused(&agency.call(h, "GET", "/api/v1/account_info", "t", json!({"id": id})).await, 1011, "t").to_owned();
    assert!(started.elapsed() < Duration::from_millis(GRAPH_TIMEOUT_MS * 4), "{:?}", started.elapsed());
    assert!(message.contains("Facebook API"), "{message}");
    fake.apply(Control::ClearFaults).unwrap();

    // 5xx through every retry, and Meta's rate limit: 1011.
    fake.apply(fail(format!("{account_path}/agencies"), 503, None)).unwrap();
    refused(&agency.call(h, "GET", "/api/v1/account_business_list", "u", json!({"id": id})).await, 1011, "u");
    fake.apply(Control::ClearFaults).unwrap();
    fake.apply(fail(format!("{account_path}/adspixels"), 400, graph_error(17, "User request limit reached"))).unwrap();
    refused(&agency.call(h, "POST", "/api/v1/account_pixel_list", "r", json!({"id": id})).await, 1011, "r");
    fake.apply(Control::ClearFaults).unwrap();

    // Meta refuses: 1006 with its message, on the list the spec gives 1006 ...
    fake.apply(fail(format!("{account_path}/adspixels"), 400, graph_error(200, "(#200) Requires business_management permission to manage the object"))).unwrap();
    let answer = agency.call(h, "POST", "/api/v1/account_pixel_list", "m", json!({"id": id})).await;
    assert_eq!(refused(&answer, 1006, "m"), "(#200) Requires business_management permission to manage the object");
    fake.apply(Control::ClearFaults).unwrap();
    // ... and on every other operation that calls Meta.
    fake.apply(fail(format!("{account_path}/agencies"), 400, graph_error(200, "(#200) Permissions error"))).unwrap();
    let answer = agency.call(h, "POST", "/api/v1/account_binding_bm", "m2", json!({"id": id, "business_id": graph::PARTNER})).await;
    assert_eq!(refused(&answer, 1006, "m2"), "(#200) Permissions error");
    let answer = agency.call(h, "GET", "/api/v1/account_business_list", "m5", json!({"id": id})).await;
    assert_eq!(refused(&answer, 1006, "m5"), "(#200) Permissions error");
    fake.apply(Control::ClearFaults).unwrap();
    // A refused raise moved nothing.
    let (balance, _) = w.usd_cents().await;
    fake.apply(fail(account_path.clone(), 400, graph_error(100, "(#100) Invalid spend_cap"))).unwrap();
    let answer = agency.call(h, "POST", "/api/v1/change_spend_cap", "m3", json!({"id": id, "amount_usd": 10_000})).await;
    assert_eq!(refused(&answer, 1006, "m3"), "(#100) Invalid spend_cap");
    fake.apply(Control::ClearFaults).unwrap();
    assert_eq!(w.usd_cents().await, (balance, 0));
    assert_eq!(fake.ad_account(id).unwrap().spend_cap_cents, 0);

    // Meta answering again: everything works, and the refused raise replays as refused.
    refused(&agency.call(h, "POST", "/api/v1/change_spend_cap", "m3", json!({"id": id, "amount_usd": 10_000})).await, 1006, "m3");
    done(&agency.call(h, "POST", "/api/v1/change_spend_cap", "m4", json!({"id": id, "amount_usd": 10_000})).await, "m4");
    assert_eq!(w.usd_cents().await, (balance - 10_000, 0));
    assert_eq!(fake.ad_account(id).unwrap().spend_cap_cents, 10_000);
    assert!(!h.server.log().await.contains("panicked"));
    h.assert_ledger_sound().await;
}
