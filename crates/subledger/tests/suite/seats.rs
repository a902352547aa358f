//! Seats paid by their tenant: usage and fees charged from the tenant's
//! wallets while bills stay per seat; time cards covering minutes before
//! money (earliest expiry first, exactly until their expiry); function fees
//! and the seat fee charged at close, pro-rated by day; and UUCall's views
//! (charge bill, basic and function bills by day, billing account) agreeing
//! to the cent with the bills and the telephony statements.

use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::billing::{at, dashed, month_start, per_unit, tariff, usage};
use crate::on_both_backends;
use crate::support::*;

on_both_backends!(a_seats_month_agrees_to_the_cent, an_expiring_card_stops_covering_at_its_expiry, seats_from_the_cli, two_processes_never_consume_a_minute_twice);

fn recurring(price: &str) -> Value {
    json!({"model": "recurring", "price": price})
}

async fn product(h: &Harness, token: &str, code: &str, name: &str, kind: &str) {
    let body = json!({"code": code, "name": name, "unit": "个", "order_type": 70, "kind": kind});
    let (status, answer) = h.post_json("/v1/products", token, &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!((answer["kind"].as_str(), answer["bill_category"].as_str()), (Some(kind), Some("function")), "{answer}");
}

async fn put_json(h: &Harness, path: &str, token: &str, body: &Value) -> (u16, Value) {
    status_and_json(h.http.put(h.url(path)).bearer_auth(token).json(body).send().await.unwrap()).await
}

fn sum(items: &Value, field: &str) -> i64 {
    items.as_array().unwrap().iter().map(|d| d[field].as_i64().unwrap()).sum()
}

fn line<'a>(bill: &'a Value, product: &str) -> &'a Value {
    bill["lines"].as_array().unwrap().iter().find(|l| l["product"] == product).unwrap_or_else(|| panic!("no {product} line: {bill}"))
}

/// One month of a tenant-funded seat: calls covered by its own card, then
/// by the enterprise's shared card, then paid; an inbound call and SMS
/// paid; a function fee for the whole month and the seat fee from the
/// 11th. Everything is paid from the tenant's wallet, the bill is the seat's,
/// and every view agrees with it to the cent.
async fn a_seats_month_agrees_to_the_cent(backend: Backend) {
    let h = Harness::start(backend).await;
    let t = h.create_tenant("call-center").await;
    let token = t.api_token.as_str();
    h.deposit(&t, "1000.00").await;
    tariff(&h, token, "pstn_one_way", per_unit("0.10", "60")).await;
    tariff(&h, token, "call_in", per_unit("0.05", "60")).await;
    tariff(&h, token, "sms", per_unit("0.04", "1")).await;
    tariff(&h, token, "seat", recurring("30.00")).await;
    product(&h, token, "recording", "通话录音", "function").await;
    tariff(&h, token, "recording", recurring("20.00")).await;
    product(&h, token, "line_rent", "线路租用", "rental").await;
    tariff(&h, token, "line_rent", recurring("50.00")).await;

    let last = month_start(1);
    let month = dashed(last);
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "agent01", "user_type": "ifaxin"})).await;
    assert_eq!(status, 201, "{body}");
    // The seat fee from the 11th, the recording function all month; then it becomes a seat.
    let (status, body) = h.post_json("/v1/accounts/agent01/subscriptions", token, &json!({"product": "seat", "from": at(last, 11, 0)})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = h.post_json("/v1/accounts/agent01/subscriptions", token, &json!({"product": "recording", "from": at(last, 1, 0)})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = h.post_json("/v1/accounts/agent01/subscriptions", token, &json!({"product": "recording", "from": at(last, 2, 0)})).await;
    assert_eq!(status, 409, "one subscription at a time: {body}");
    let (status, body) = h.post_json("/v1/accounts/agent01/subscriptions", token, &json!({"product": "sms"})).await;
    assert_eq!(status, 400, "a metered product is not subscribed to: {body}");
    let (status, body) = put_json(&h, "/v1/accounts/agent01/funding", token, &json!({"funding": "tenant"})).await;
    assert_eq!((status, body["funding"].as_str()), (200, Some("tenant")), "{body}");
    let (status, _) = put_json(&h, "/v1/accounts/agent01/funding", token, &json!({"funding": "parent"})).await;
    assert_eq!(status, 400);

    // Its own card (2 minutes, until the end of the 5th) and the enterprise's shared one (5 minutes).
    let fifth = last.with().day(5).build().unwrap().to_string();
    let (status, own) = h.post_json("/v1/time-cards", token, &json!({"name": "新人卡", "username": "agent01", "minutes": 2, "effective_at": at(last, 1, 0), "expires_on": fifth})).await;
    assert_eq!(status, 201, "{own}");
    let next = month_start(-1);
    let (status, shared) = h.post_json("/v1/time-cards", token, &json!({"name": "企业卡", "minutes": 5, "effective_at": at(last, 1, 0), "expires_at": at(next, 1, 0), "note": "Q1"})).await;
    assert_eq!(status, 201, "{shared}");
    assert!(shared["username"].is_null(), "{shared}");

    let call = |id: &str, product: &str, seconds: i64, day: i8| json!({"id": id, "account": "agent01", "product": product, "quantity": seconds, "occurred_at": at(last, day, 10)});
    let events = json!([
        call("c1", "pstn_one_way", 150, 3), // 3 min: own card 2, shared 1
        call("c2", "pstn_one_way", 125, 6), // 3 min: own card expired; shared 3
        call("c3", "pstn_one_way", 200, 10), // 4 min: shared 1, money 3 (0.30)
        call("c4", "call_in", 61, 10), // 2 min, money (0.10)
        {"id": "s1", "account": "agent01", "product": "sms", "quantity": 3, "occurred_at": at(last, 12, 9)}, // 0.12
        {"id": "r1", "account": "agent01", "product": "recording", "quantity": 1, "occurred_at": at(last, 12, 9)},
    ]);
    let answer = usage(&h, token, events).await;
    let results = answer["results"].as_array().unwrap();
    let got: Vec<(Option<i64>, Option<i64>, Option<&str>)> = results.iter().map(|r| (r["card_minutes"].as_i64(), r["charge_minor"].as_i64(), r["reason"].as_str())).collect();
    assert_eq!(
        got,
        [(Some(3), Some(0), None), (Some(3), Some(0), None), (Some(1), Some(30), None), (Some(0), Some(10), None), (Some(0), Some(12), None), (None, None, Some("not_metered"))],
        "{answer}"
    );

    // The tenant paid, the seat's own wallet did not move; the cards are used up.
    assert_eq!(crate::billing::primary_cents(&h, token, "agent01").await, 0);
    let (_, account) = h.get_json("/v1/billing-account", token).await;
    assert_eq!(account["balance_minor"], 100_000 - 52, "{account}");
    let (_, cards) = h.get_json("/v1/time-cards", token).await;
    let left: Vec<(i64, &str)> = cards["items"].as_array().unwrap().iter().map(|c| (c["minutes_left"].as_i64().unwrap(), c["state"].as_str().unwrap())).collect();
    assert_eq!(left, [(0, "expired"), (0, "used_up")], "{cards}");

    let (status, body) = h.post_json("/v1/bills/close", token, &json!({"month": month})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = h.post_json("/v1/accounts/agent01/subscriptions", token, &json!({"product": "line_rent", "from": at(last, 20, 0)})).await;
    assert_eq!(status, 400, "a closed month's bill never changes: {body}");

    // The bill is the seat's: calls with the minutes cards covered, fees pro-rated by day.
    let (_, bills) = h.get_json(&format!("/v1/bills?from={month}&username=agent01"), token).await;
    let bill = &bills["items"][0];
    let month_days = i64::from(last.days_in_month());
    let seat_cents = (3_000 * (month_days - 10) * 2 + month_days) / (2 * month_days); // 30.00 × days / month, half-up
    let pstn = line(bill, "pstn_one_way");
    assert_eq!((pstn["quantity"].as_str(), pstn["card_minutes"].as_str(), pstn["money_minor"].as_i64()), (Some("3"), Some("7"), Some(30)), "{bill}");
    assert_eq!(line(bill, "call_in")["money_minor"], 10);
    assert_eq!(line(bill, "sms")["money_minor"], 12);
    assert_eq!(line(bill, "recording")["money_minor"], 2_000);
    assert_eq!(line(bill, "seat")["money_minor"], seat_cents, "{bill}");
    let total = 52 + 2_000 + seat_cents;
    assert_eq!(bill["total_minor"], total, "{bill}");

    // The fees were settled from the tenant's wallet at close.
    let (_, account) = h.get_json("/v1/billing-account", token).await;
    assert_eq!(
        (account["balance_minor"].as_i64(), account["advance_minor"].as_i64(), account["consume_minor"].as_i64(), account["state"].as_i64()),
        (Some(100_000 - total), Some(100_000), Some(total), Some(1)),
        "{account}"
    );
    assert_eq!(crate::billing::primary_cents(&h, token, "agent01").await, 0);

    // Charge bill, basic bill by day, function bill by day.
    let (status, charge) = h.get_json(&format!("/v1/charge-bills?month={month}&username=agent01"), token).await;
    assert_eq!(status, 200, "{charge}");
    let row = &charge["items"][0];
    assert_eq!((row["basic_minor"].as_i64(), row["function_minor"].as_i64(), row["total_minor"].as_i64()), (Some(52 + seat_cents), Some(2_000), Some(total)), "{charge}");
    let (_, basic) = h.get_json(&format!("/v1/accounts/agent01/basic-bill?month={month}"), token).await;
    let days = &basic["items"];
    assert_eq!(sum(days, "total_minor"), 52 + seat_cents, "{basic}");
    assert_eq!(sum(days, "seat_minor"), seat_cents);
    assert_eq!((sum(days, "call_out_minor"), sum(days, "call_in_minor"), sum(days, "sms_minor"), sum(days, "card_minutes")), (30, 10, 12, 7), "{basic}");
    let day = |n: i8| days.as_array().unwrap().iter().find(|d| d["day"] == last.with().day(n).build().unwrap().to_string()).cloned().unwrap_or_else(|| panic!("day {n}: {basic}"));
    assert_eq!((day(3)["card_minutes"].as_i64(), day(3)["total_minor"].as_i64()), (Some(3), Some(0)));
    assert_eq!((day(10)["call_out_minor"].as_i64(), day(10)["call_in_minor"].as_i64(), day(10)["card_minutes"].as_i64()), (Some(30), Some(10), Some(1)));
    assert_eq!(days.as_array().unwrap().iter().filter(|d| d["seat_minor"].as_i64() > Some(0)).count() as i64, month_days - 10, "the seat's days: {basic}");
    let (_, function) = h.get_json(&format!("/v1/accounts/agent01/function-bill?month={month}"), token).await;
    assert_eq!(function["items"].as_array().unwrap().len() as i64, month_days, "{function}");
    assert_eq!(sum(&function["items"], "amount_minor"), 2_000, "{function}");

    // The telephony statement of the month shows the same money for the same items.
    let response = h.http.get(h.url(&format!("/balance/getConsumerInfo/agent01/{month}"))).bearer_auth(token).send().await.unwrap();
    let statement: Value = response.json().await.unwrap();
    let item = |group: usize, item: usize| statement["data"][group]["items"][item]["price"].as_f64().unwrap();
    assert_eq!(((item(0, 0) * 100.0).round() as i64, (item(2, 0) * 100.0).round() as i64), (30, 12), "{statement}");

    // Rates in force.
    let (_, functions) = h.get_json("/v1/rates/functions", token).await;
    assert_eq!(functions["items"][0]["product"], "recording", "{functions}");
    assert_eq!(functions["items"][0]["price"], "20", "{functions}");
    let (_, rentals) = h.get_json("/v1/rates/rentals", token).await;
    assert_eq!((rentals["items"][0]["product"].as_str(), rentals["items"][0]["charge_unit"].as_str()), (Some("line_rent"), Some("个/月")), "{rentals}");

    // Another tenant sees none of it.
    let other = h.create_tenant("other").await;
    let (status, _) = h.post_json(&format!("/v1/time-cards/{}/cancel", shared["id"]), &other.api_token, &json!({})).await;
    assert_eq!(status, 404);
    let (_, cards) = h.get_json("/v1/time-cards", &other.api_token).await;
    assert_eq!(cards["total"], 0);

    h.assert_ledger_sound().await;
}

fn instant(us: i64) -> String {
    Timestamp::from_microsecond(us).unwrap().to_string()
}

/// A card covers a call at the last microsecond before its expiry and none
/// at its expiry; a cancelled card covers nothing; the tenant's shared card
/// covers seats only.
async fn an_expiring_card_stops_covering_at_its_expiry(backend: Backend) {
    let h = Harness::start(backend).await;
    let t = h.create_tenant("expiry").await;
    let token = t.api_token.as_str();
    h.deposit(&t, "10.00").await;
    tariff(&h, token, "pstn_one_way", per_unit("0.10", "60")).await;
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "seat01", "user_type": "ifaxin", "funding": "tenant"})).await;
    assert_eq!(status, 201, "{body}");
    crate::billing::account(&h, token, "own01", "ifaxin").await;
    crate::billing::fund(&h, token, "own01", "1.00").await;

    let now = Timestamp::now().as_microsecond();
    let expiry = now + 120_000_000;
    let (status, card) =
        h.post_json("/v1/time-cards", token, &json!({"name": "短卡", "username": "seat01", "minutes": 10, "effective_at": instant(now - 3_600_000_000), "expires_at": instant(expiry)})).await;
    assert_eq!(status, 201, "{card}");
    assert_eq!(card["state"], "valid");
    let (status, shared) = h.post_json("/v1/time-cards", token, &json!({"name": "共享", "minutes": 10, "effective_at": instant(now - 3_600_000_000), "expires_at": instant(expiry)})).await;
    assert_eq!(status, 201, "{shared}");
    let (status, body) = h.post_json("/v1/time-cards", token, &json!({"name": "坏卡", "minutes": 0, "expires_at": instant(expiry)})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = h.post_json("/v1/time-cards", token, &json!({"name": "坏卡", "minutes": 1})).await;
    assert_eq!(status, 400, "{body}");

    let event = |id: &str, account: &str, at_us: i64| json!({"id": id, "account": account, "product": "pstn_one_way", "quantity": 60, "occurred_at": instant(at_us)});
    let answer = usage(&h, token, json!([event("last", "seat01", expiry - 1), event("expired", "seat01", expiry), event("own", "own01", expiry - 1)])).await;
    let got: Vec<(i64, i64)> = answer["results"].as_array().unwrap().iter().map(|r| (r["card_minutes"].as_i64().unwrap(), r["charge_minor"].as_i64().unwrap())).collect();
    // The seat's own card first (equal expiry: own before shared); at the expiry instant, money.
    // An account paying its own way never uses the tenant's shared minutes.
    assert_eq!(got, [(1, 0), (0, 10), (0, 10)], "{answer}");

    let (status, cancelled) = h.post_json(&format!("/v1/time-cards/{}/cancel", card["id"]), token, &json!({})).await;
    assert_eq!((status, cancelled["state"].as_str(), cancelled["minutes_left"].as_i64()), (200, Some("cancelled"), Some(9)), "{cancelled}");
    let answer = usage(&h, token, json!([event("after-cancel", "seat01", now)])).await;
    assert_eq!(answer["results"][0]["card_minutes"], 1, "the shared card now: {answer}");
    let (_, cards) = h.get_json("/v1/time-cards?username=seat01", token).await;
    let left: Vec<i64> = cards["items"].as_array().unwrap().iter().map(|c| c["minutes_left"].as_i64().unwrap()).collect();
    assert_eq!(left, [9, 9], "{cards}");
    let (status, _) = h.get_json("/v1/time-cards?limit=201", token).await;
    assert_eq!(status, 400);
    h.assert_ledger_sound().await;
}

/// The CLI issues, lists and cancels cards, sets funding, subscribes, and lists rates.
async fn seats_from_the_cli(backend: Backend) {
    let h = Harness::start(backend).await;
    let t = h.create_tenant("cli-seats").await;
    crate::billing::account(&h, &t.api_token, "agent02", "ifaxin").await;
    let (ok, out, err) = h.cli(&["account", "funding", "--tenant", &t.tenant_id, "--username", "agent02", "--funding", "tenant", "--json"]).await;
    assert!(ok, "{out} {err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["funding"], "tenant");
    let expires = (Timestamp::now() + 48.hours()).to_string();
    let (ok, out, err) = h.cli(&["card", "issue", "--tenant", &t.tenant_id, "--username", "agent02", "--name", "卡", "--minutes", "30", "--expires-at", &expires, "--json"]).await;
    assert!(ok, "{out} {err}");
    let card: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((card["minutes_left"].as_i64(), card["username"].as_str()), (Some(30), Some("agent02")), "{out}");
    let (ok, out, _) = h.cli(&["card", "list", "--tenant", &t.tenant_id, "--json"]).await;
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["total"], 1);
    let (ok, out, err) = h.cli(&["card", "cancel", "--tenant", &t.tenant_id, "--id", &card["id"].to_string(), "--json"]).await;
    assert!(ok, "{out} {err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["state"], "cancelled");
    let (ok, _, err) = h.cli(&["card", "cancel", "--tenant", &t.tenant_id, "--id", "999999"]).await;
    assert!(!ok && err.contains("error"), "{err}");

    let (ok, out, err) = h.cli(&["product", "add", "--tenant", &t.tenant_id, "--code", "ivr", "--name", "IVR", "--unit", "个", "--order-type", "71", "--kind", "function"]).await;
    assert!(ok, "{out} {err}");
    let (status, body) = h.post_json("/v1/tariffs", &t.api_token, &json!({"product": "ivr", "model": per_unit("1", "1")})).await;
    assert_eq!(status, 400, "a monthly fee is priced per month: {body}");
    tariff(&h, &t.api_token, "ivr", recurring("15.00")).await;
    let (ok, out, err) = h.cli(&["function", "subscribe", "--tenant", &t.tenant_id, "--username", "agent02", "--product", "ivr", "--json"]).await;
    assert!(ok, "{out} {err}");
    let (ok, out, err) = h.cli(&["function", "unsubscribe", "--tenant", &t.tenant_id, "--username", "agent02", "--product", "ivr", "--json"]).await;
    assert!(ok, "{out} {err}");
    assert!(!serde_json::from_str::<Value>(&out).unwrap()["until"].is_null(), "{out}");
    let (ok, out, err) = h.cli(&["function", "rates", "--tenant", &t.tenant_id, "--json"]).await;
    assert!(ok, "{out} {err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["items"][0]["product"], "ivr", "{out}");
    let (_, subscriptions) = h.get_json("/v1/subscriptions?username=agent02", &t.api_token).await;
    // The seat fee (opened by the funding change) and the ended IVR.
    assert_eq!(subscriptions["total"], 2, "{subscriptions}");

    // Cancelling the seat ends what it still paid for, in the same change.
    let (ok, out, err) = h.cli(&["function", "subscribe", "--tenant", &t.tenant_id, "--username", "agent02", "--product", "ivr", "--json"]).await;
    assert!(ok, "{out} {err}");
    let response = h.http.patch(h.url("/v1/accounts/agent02")).bearer_auth(&t.api_token).json(&json!({"access": "cancelled"})).send().await.unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    let (_, subscriptions) = h.get_json("/v1/subscriptions?username=agent02", &t.api_token).await;
    let items = subscriptions["items"].as_array().unwrap_or_else(|| panic!("{subscriptions}"));
    assert_eq!(items.len(), 3, "{subscriptions}");
    assert!(items.iter().all(|s| !s["until"].is_null()), "a cancelled seat pays for nothing after: {subscriptions}");
}

/// Two server processes on one database, many concurrent batches of four
/// seats drawing on one shared card of 50 minutes and on the tenant's
/// wallet: exactly 50 minutes are covered, the rest is paid, and the
/// tenant's wallet lost exactly what the answers charged.
async fn two_processes_never_consume_a_minute_twice(backend: Backend) {
    let h = Harness::start(backend).await;
    let second = TestServer::start(&h.db, &[]).await;
    let t = h.create_tenant("race").await;
    let token = t.api_token.clone();
    h.deposit(&t, "100.00").await;
    tariff(&h, &token, "pstn_one_way", per_unit("0.10", "60")).await;
    for n in 0..4 {
        let (status, body) = h.post_json("/v1/accounts", &token, &json!({"username": format!("seat{n}"), "user_type": "ifaxin", "funding": "tenant"})).await;
        assert_eq!(status, 201, "{body}");
    }
    let now = Timestamp::now().as_microsecond();
    let (status, card) = h.post_json("/v1/time-cards", &token, &json!({"name": "共享", "minutes": 50, "effective_at": instant(now - 3_600_000_000), "expires_at": instant(now + 3_600_000_000)})).await;
    assert_eq!(status, 201, "{card}");

    // 40 batches of 2 events of 2 minutes each: 160 minutes wanted, 50 on the card.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let base = if i % 2 == 0 { h.server.base.clone() } else { second.base.clone() };
            let (http, token) = (h.http.clone(), token.clone());
            let events =
                json!({"events": (0..2).map(|j| json!({"id": format!("e{i}-{j}"), "account": format!("seat{}", (i + j) % 4), "product": "pstn_one_way", "quantity": 120})).collect::<Vec<_>>()});
            tokio::spawn(async move { status_and_json(http.post(format!("{base}/v1/usage")).bearer_auth(token).json(&events).send().await.unwrap()).await })
        })
        .collect();
    let (mut covered, mut charged) = (0, 0);
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        for result in answer["results"].as_array().unwrap() {
            assert_eq!(result["status"], "accepted", "{answer}");
            covered += result["card_minutes"].as_i64().unwrap();
            charged += result["charge_minor"].as_i64().unwrap();
        }
    }
    assert_eq!((covered, charged), (50, 110 * 10), "every minute once: on the card or paid");
    let (_, cards) = h.get_json("/v1/time-cards", &token).await;
    assert_eq!(cards["items"][0]["minutes_left"], 0, "{cards}");
    let (_, account) = h.get_json("/v1/billing-account", &token).await;
    assert_eq!(account["balance_minor"], 10_000 - charged, "{account}");
    h.assert_ledger_sound().await;
}
