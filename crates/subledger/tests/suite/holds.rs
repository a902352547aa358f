//! Two-phase transfers over the native API: `/v1/holds` reserves money, then
//! posts it (possibly less) or voids it; a hold voids itself at its timeout,
//! in a running server and after a crash.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, Harness, Tenant, TestServer, sql};

on_both_backends!(
    a_hold_reserves_then_posts_part_and_gives_back_the_rest,
    a_voided_hold_gives_back_everything_once,
    concurrent_holds_never_reserve_more_than_the_funds,
    a_hold_expires_at_its_timeout_even_after_a_crash,
    verify_finds_a_reservation_that_no_hold_explains,
);

/// A tenant with 100.00 and an account `alice` with none.
async fn funded(h: &Harness, name: &str) -> Tenant {
    let tenant = h.create_tenant(name).await;
    h.deposit(&tenant, "100.00").await;
    let (status, body) = h.post_json("/v1/accounts", &tenant.api_token, &json!({"username": "alice"})).await;
    assert_eq!(status, 201, "{body}");
    tenant
}

async fn open_hold(h: &Harness, tenant: &Tenant, key: &str, amount: &str, timeout_seconds: u32) -> (u16, Value, bool) {
    let body = json!({"from": {}, "to": {"username": "alice"}, "amount": amount, "timeout_seconds": timeout_seconds, "memo": "spend cap"});
    let response = h.http.post(h.url("/v1/holds")).bearer_auth(&tenant.api_token).header("Idempotency-Key", key).json(&body).send().await.expect("hold request");
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"), replayed)
}

async fn post_hold(h: &Harness, tenant: &Tenant, hold_id: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = h.http.post(h.url(&format!("/v1/holds/{hold_id}/post"))).bearer_auth(&tenant.api_token).header("Idempotency-Key", key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("post request");
    (response.status().as_u16(), response.json().await.expect("a JSON body"))
}

/// The tenant's primary wallet and alice's, as listed.
async fn wallets(h: &Harness, tenant: &Tenant) -> (Value, Value) {
    let (_, own) = h.get_json("/v1/wallets", &tenant.api_token).await;
    let (_, alice) = h.get_json("/v1/wallets?username=alice", &tenant.api_token).await;
    let primary = |list: &Value| list["items"].as_array().expect("items").iter().find(|w| w["purpose"] == "primary").expect("a primary wallet").clone();
    (primary(&own), primary(&alice))
}

async fn a_hold_reserves_then_posts_part_and_gives_back_the_rest(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = funded(&h, "holds-post").await;

    let (status, hold, replayed) = open_hold(&h, &tenant, "h-1", "60.00", 600).await;
    assert_eq!((status, replayed), (201, false), "{hold}");
    assert_eq!((hold["state"].as_str(), hold["amount_minor"].as_i64(), hold["kind"].as_str()), (Some("pending"), Some(6_000), Some("allocation")));
    let id = hold["hold_id"].as_str().expect("hold_id").to_owned();
    let (own, _) = wallets(&h, &tenant).await;
    assert_eq!((own["balance_minor"].as_i64(), own["reserved_minor"].as_i64(), own["available_minor"].as_i64()), (Some(10_000), Some(6_000), Some(4_000)), "{own}");

    // Reserved money is not spendable: not by a transfer, not by another hold.
    let (status, body) = h.post_json_keyed("/v1/transfers", &tenant.api_token, "t-1", &json!({"from": {}, "to": {"username": "alice"}, "amount": "40.01"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("insufficient_funds")), "{body}");
    let (status, body, _) = open_hold(&h, &tenant, "h-2", "40.01", 600).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("insufficient_funds")), "{body}");

    // Its key replays it; reused for another amount, it is refused.
    let (status, again, replayed) = open_hold(&h, &tenant, "h-1", "60.00", 600).await;
    assert_eq!((status, replayed, again["hold_id"].as_str()), (201, true, Some(id.as_str())), "{again}");
    let (status, body, _) = open_hold(&h, &tenant, "h-1", "61.00", 600).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("idempotency_key_reused")), "{body}");

    // Posted for 25.00 of its 60.00: 25.00 moves, 35.00 is given back.
    let (status, posted) = post_hold(&h, &tenant, &id, "p-1", Some(json!({"amount": "25.00", "memo": "spent"}))).await;
    assert_eq!(status, 200, "{posted}");
    assert_eq!((posted["hold"]["state"].as_str(), posted["hold"]["posted_amount_minor"].as_i64()), (Some("posted"), Some(2_500)), "{posted}");
    assert_eq!((posted["transfer"]["amount_minor"].as_i64(), posted["transfer"]["debit_balance_after_minor"].as_i64()), (Some(2_500), Some(7_500)), "{posted}");
    assert_eq!(posted["hold"]["posted_transfer_id"], posted["transfer"]["transfer_id"]);
    let (own, alice) = wallets(&h, &tenant).await;
    assert_eq!((own["balance_minor"].as_i64(), own["reserved_minor"].as_i64(), own["available_minor"].as_i64()), (Some(7_500), Some(0), Some(7_500)), "{own}");
    assert_eq!(alice["balance_minor"].as_i64(), Some(2_500), "{alice}");
    let (status, transfer) = h.get_json(&format!("/v1/transfers/{}", posted["transfer"]["transfer_id"].as_str().unwrap()), &tenant.api_token).await;
    assert_eq!((status, transfer["memo"].as_str(), transfer["status"].as_str()), (200, Some("spent"), Some("posted")), "{transfer}");

    // The posting's key replays it; a second posting is refused.
    let (status, replay) = post_hold(&h, &tenant, &id, "p-1", Some(json!({"amount": "25.00"}))).await;
    assert_eq!((status, replay["hold"]["replayed"].as_bool(), replay["transfer"]["transfer_id"].clone()), (200, Some(true), posted["transfer"]["transfer_id"].clone()), "{replay}");
    let (status, body) = post_hold(&h, &tenant, &id, "p-2", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("hold_not_pending")), "{body}");
    let (status, body) = post_hold(&h, &tenant, &id, "p-1", Some(json!({"amount": "20.00"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("idempotency_key_reused")), "{body}");
    let (status, body) = h.post_json(&format!("/v1/holds/{id}/void"), &tenant.api_token, &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("hold_not_pending")), "a posted hold cannot be voided: {body}");

    // A posting above the reservation is refused and leaves the hold pending;
    // no body posts it all.
    let (_, small, _) = open_hold(&h, &tenant, "h-3", "10.00", 600).await;
    let small_id = small["hold_id"].as_str().unwrap().to_owned();
    let (status, body) = post_hold(&h, &tenant, &small_id, "p-3", Some(json!({"amount": "10.01"}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, whole) = post_hold(&h, &tenant, &small_id, "p-4", None).await;
    assert_eq!((status, whole["transfer"]["amount_minor"].as_i64()), (200, Some(1_000)), "{whole}");

    // Reads: one hold, a page, another tenant's and unknown ids.
    let (status, shown) = h.get_json(&format!("/v1/holds/{id}"), &tenant.api_token).await;
    assert_eq!((status, shown["state"].as_str(), shown["memo"].as_str()), (200, Some("posted"), Some("spend cap")), "{shown}");
    let (status, page) = h.get_json("/v1/holds?state=posted&limit=1", &tenant.api_token).await;
    assert_eq!((status, page["items"].as_array().map(Vec::len), page["items"][0]["hold_id"].as_str()), (200, Some(1), Some(small_id.as_str())), "{page}");
    let next = page["next_before"].as_str().expect("a next page").to_owned();
    let (_, rest) = h.get_json(&format!("/v1/holds?state=posted&before={next}"), &tenant.api_token).await;
    assert_eq!(rest["items"].as_array().map(|items| items.iter().map(|i| i["hold_id"].clone()).collect::<Vec<_>>()), Some(vec![json!(id)]), "{rest}");
    let (status, body) = h.get_json("/v1/holds?state=lost", &tenant.api_token).await;
    assert_eq!(status, 400, "{body}");
    let other = h.create_tenant("holds-other").await;
    let (status, body) = h.get_json(&format!("/v1/holds/{id}"), &other.api_token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("hold_not_found")), "{body}");
    let (status, body) = post_hold(&h, &other, &id, "p-5", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("hold_not_found")), "{body}");
    let (status, body) = h.get_json("/v1/holds/not-a-number", &tenant.api_token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_hold_id")), "{body}");
    h.assert_ledger_sound().await;
}

async fn a_voided_hold_gives_back_everything_once(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = funded(&h, "holds-void").await;
    let (_, hold, _) = open_hold(&h, &tenant, "v-1", "70.00", 600).await;
    let id = hold["hold_id"].as_str().unwrap().to_owned();
    let (status, voided) = h.post_json(&format!("/v1/holds/{id}/void"), &tenant.api_token, &json!({})).await;
    assert_eq!((status, voided["state"].as_str(), voided["replayed"].as_bool()), (200, Some("voided"), Some(false)), "{voided}");
    assert!(voided["resolved_at"].is_string(), "{voided}");
    let (status, again) = h.post_json(&format!("/v1/holds/{id}/void"), &tenant.api_token, &json!({})).await;
    assert_eq!((status, again["state"].as_str(), again["replayed"].as_bool()), (200, Some("voided"), Some(true)), "{again}");
    let (status, body) = post_hold(&h, &tenant, &id, "v-post", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("hold_not_pending")), "{body}");
    let (own, alice) = wallets(&h, &tenant).await;
    assert_eq!((own["balance_minor"].as_i64(), own["reserved_minor"].as_i64(), alice["balance_minor"].as_i64()), (Some(10_000), Some(0), Some(0)));
    // All of it is spendable again.
    let (status, body) = h.post_json_keyed("/v1/transfers", &tenant.api_token, "v-t", &json!({"from": {}, "to": {"username": "alice"}, "amount": "100.00"})).await;
    assert_eq!(status, 201, "{body}");
    h.assert_ledger_sound().await;
}

async fn concurrent_holds_never_reserve_more_than_the_funds(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = funded(&h, "holds-race").await;
    // 24 holds of 10.00 at once on 100.00: exactly 10 are granted.
    let h = std::sync::Arc::new(h);
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..24 {
        let (h, tenant) = (h.clone(), tenant.clone());
        attempts.spawn(async move { open_hold(&h, &tenant, &format!("race-{i}"), "10.00", 600).await });
    }
    let outcomes = attempts.join_all().await;
    let granted = outcomes.iter().filter(|(status, _, _)| *status == 201).count();
    let refused = outcomes.iter().filter(|(status, body, _)| *status == 422 && body["error"]["code"] == "insufficient_funds").count();
    assert_eq!((granted, refused), (10, 14), "{outcomes:?}");
    let (own, _) = wallets(&h, &tenant).await;
    assert_eq!((own["reserved_minor"].as_i64(), own["available_minor"].as_i64()), (Some(10_000), Some(0)), "{own}");
    let (_, page) = h.get_json("/v1/holds?state=rejected&limit=500", &tenant.api_token).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(14), "refusals under a key are kept, to replay: {page}");

    // One hold, posted and voided by 12 racing callers: it resolves once.
    let id = outcomes.iter().find(|(status, _, _)| *status == 201).expect("a granted hold").1["hold_id"].as_str().unwrap().to_owned();
    let mut steps = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (h, tenant, id) = (h.clone(), tenant.clone(), id.clone());
        steps.spawn(async move {
            if i % 2 == 0 { post_hold(&h, &tenant, &id, &format!("race-post-{i}"), None).await } else { h.post_json(&format!("/v1/holds/{id}/void"), &tenant.api_token, &json!({})).await }
        });
    }
    let steps = steps.join_all().await;
    let posted = steps.iter().filter(|(status, body)| *status == 200 && body["hold"]["state"] == "posted").count();
    let voided_first = steps.iter().filter(|(status, body)| *status == 200 && body["state"] == "voided" && body["replayed"] == false).count();
    assert_eq!(posted + voided_first, 1, "{steps:?}");
    assert!(steps.iter().all(|(status, _)| [200, 409].contains(status)), "{steps:?}");
    let (own, alice) = wallets(&h, &tenant).await;
    assert_eq!(own["reserved_minor"].as_i64(), Some(9_000), "{own}");
    assert_eq!(own["balance_minor"].as_i64().unwrap() + alice["balance_minor"].as_i64().unwrap(), 10_000);
    h.assert_ledger_sound().await;
}

/// Polls a hold until it leaves `pending`, for at most `limit`.
async fn state_within(h: &Harness, tenant: &Tenant, id: &str, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let (status, hold) = h.get_json(&format!("/v1/holds/{id}"), &tenant.api_token).await;
        assert_eq!(status, 200, "{hold}");
        let state = hold["state"].as_str().unwrap_or_default().to_owned();
        if state != "pending" || started.elapsed() > limit {
            return (state, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_hold_expires_at_its_timeout_even_after_a_crash(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let tenant = funded(&h, "holds-expiry").await;

    // In a running server, within about a second of its timeout.
    let (_, hold, _) = open_hold(&h, &tenant, "e-1", "30.00", 1).await;
    let id = hold["hold_id"].as_str().unwrap().to_owned();
    let (state, waited) = state_within(&h, &tenant, &id, Duration::from_secs(10)).await;
    assert_eq!(state, "expired", "after {waited:?}");
    let (own, _) = wallets(&h, &tenant).await;
    assert_eq!((own["balance_minor"].as_i64(), own["reserved_minor"].as_i64()), (Some(10_000), Some(0)), "{own}");

    // Timed out while no server ran: the next one expires it, and a posting
    // that comes first finds it expired.
    let (_, first, _) = open_hold(&h, &tenant, "e-2", "20.00", 2).await;
    let (_, second, _) = open_hold(&h, &tenant, "e-3", "20.00", 2).await;
    h.server.kill_hard().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    h.server = TestServer::start(&h.db, &[]).await;
    let (status, body) = post_hold(&h, &tenant, second["hold_id"].as_str().unwrap(), "late-post", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("hold_not_pending")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("expired"), "{body}");
    let (state, waited) = state_within(&h, &tenant, first["hold_id"].as_str().unwrap(), Duration::from_secs(10)).await;
    assert_eq!(state, "expired", "after {waited:?}");
    let (own, alice) = wallets(&h, &tenant).await;
    assert_eq!((own["balance_minor"].as_i64(), own["reserved_minor"].as_i64(), alice["balance_minor"].as_i64()), (Some(10_000), Some(0), Some(0)), "{own}");
    let (_, page) = h.get_json("/v1/holds?state=expired", &tenant.api_token).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(3), "{page}");
    // This process expired the two that timed out while no server ran (one of them by the late post).
    let metrics = h.http.get(h.url("/metrics")).send().await.expect("GET /metrics").text().await.expect("text");
    assert!(metrics.lines().any(|line| line == "subledger_ledger_holds_expired_total 2"), "{metrics}");
    // Timeouts out of bounds are refused.
    for timeout in [0, 2_592_001] {
        let (status, body, _) = open_hold(&h, &tenant, &format!("e-bad-{timeout}"), "1.00", timeout).await;
        assert_eq!(status, 400, "{body}");
    }
    h.assert_ledger_sound().await;
}

async fn verify_finds_a_reservation_that_no_hold_explains(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let tenant = funded(&h, "holds-verify").await;
    let (status, _, _) = open_hold(&h, &tenant, "x-1", "10.00", 600).await;
    assert_eq!(status, 201);
    h.assert_ledger_sound().await;
    sql(&h.db, "UPDATE wallets SET reserved_minor = reserved_minor + 1 WHERE reserved_minor > 0").await;
    let (ok, stdout, _) = h.cli(&["ledger", "verify", "--json"]).await;
    let report: Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert!(!ok, "{report}");
    assert_eq!(report["wallets_off_their_holds"], 1, "{report}");
    sql(&h.db, "UPDATE wallets SET reserved_minor = reserved_minor - 1 WHERE reserved_minor > 0").await;
    // No server runs to expire it: the audit sees a hold outliving its timeout.
    h.server.kill_hard().await;
    sql(&h.db, "UPDATE holds SET timeout_at_us = 1000 WHERE state = 'pending'").await;
    let (ok, stdout, _) = h.cli(&["ledger", "verify", "--json"]).await;
    let report: Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert!(!ok && report["holds_outliving_timeout"] == 1, "{report}");
}
