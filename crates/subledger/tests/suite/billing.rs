//! Metering, rating and billing over HTTP: usage batches answered per event,
//! quotas, real-time charges, month close with exact bills and settlements,
//! late usage as supplementary lines (补扣, or 返账 when the month gets
//! cheaper), SendCloud `bill`/`billDetail`, exports
//! read back with reader crates, and daily bills.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    usage_is_answered_per_event,
    quotas_count_per_tenant_day,
    month_close_bills_exactly,
    sendcloud_bills_follow_the_spec,
    exports_read_back,
    close_is_all_or_nothing,
    months_close_by_themselves,
    catalog_and_effective_tariffs,
    an_earlier_month_closes_after_a_later_one,
    outstanding_settlements_are_retried,
    late_usage_that_lowers_a_closed_month_is_refunded
);

const ZONE: &str = "Asia/Shanghai";

/// The first day of the month `back` months before the current one, in the tenant's zone.
pub(crate) fn month_start(back: i64) -> Date {
    let today = Timestamp::now().to_zoned(TimeZone::get(ZONE).unwrap()).date();
    today.first_of_month().checked_sub(back.months()).unwrap()
}

/// `YYYY-MM` and SendCloud's `yyyyMM` of a month.
pub(crate) fn dashed(first: Date) -> String {
    format!("{:04}-{:02}", first.year(), first.month())
}

fn compact(first: Date) -> String {
    format!("{:04}{:02}", first.year(), first.month())
}

/// An RFC 3339 instant `day` days and `hour` hours into a month, in the tenant's zone.
pub(crate) fn at(first: Date, day: i8, hour: i8) -> String {
    first.with().day(day).build().unwrap().at(hour, 0, 0, 0).to_zoned(TimeZone::get(ZONE).unwrap()).unwrap().timestamp().to_string()
}

pub(crate) async fn account(h: &Harness, token: &str, username: &str, user_type: &str) {
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": username, "user_type": user_type})).await;
    assert_eq!(status, 201, "{body}");
}

pub(crate) async fn fund(h: &Harness, token: &str, username: &str, amount: &str) {
    let response = h
        .http
        .post(h.url("/v1/transfers"))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("fund-{username}-{amount}"))
        .json(&json!({"from": {}, "to": {"username": username}, "amount": amount}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 201, "{body}");
}

pub(crate) async fn tariff(h: &Harness, token: &str, product: &str, model: Value) {
    tariff_from(h, token, product, model, "2020-01-01T00:00:00Z").await;
}

/// A tariff version in force from an RFC 3339 instant on.
pub(crate) async fn tariff_from(h: &Harness, token: &str, product: &str, model: Value, effective_from: &str) {
    let body = json!({"product": product, "model": model, "effective_from": effective_from});
    let (status, answer) = h.post_json("/v1/tariffs", token, &body).await;
    assert_eq!(status, 201, "{body}: {answer}");
}

pub(crate) fn per_unit(price: &str, increment: &str) -> Value {
    json!({"model": "per_unit", "price": price, "increment": increment})
}

/// Posts a batch and returns the whole answer.
pub(crate) async fn usage(h: &Harness, token: &str, events: Value) -> Value {
    let (status, answer) = h.post_json("/v1/usage", token, &json!({ "events": events })).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// The primary balance of an account, in cents.
pub(crate) async fn primary_cents(h: &Harness, token: &str, username: &str) -> i64 {
    let (status, body) = h.get_json(&format!("/v1/wallets?username={username}"), token).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary" && w["currency"] == "CNY").unwrap()["balance_minor"].as_i64().unwrap()
}

/// JSON with every number as a float, so `799`, `799.0` and `799.0000` compare equal.
fn floats(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(floats).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, floats(v))).collect()),
        other => other,
    }
}

/// A signed SendCloud call with owned parameters.
pub(crate) async fn sendcloud_call(h: &Harness, tenant: &Tenant, endpoint: &str, params: &[(&str, String)]) -> Value {
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.sendcloud(endpoint, tenant, &borrowed).await
}

#[track_caller]
pub(crate) fn outcome(result: &Value) -> (&str, Option<&str>, Option<&str>) {
    (result["status"].as_str().unwrap(), result["reason"].as_str(), result["charge"].as_str())
}

async fn usage_is_answered_per_event(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Usage Outcomes").await;
    h.deposit(&tenant, "1000.00").await;
    let token = tenant.api_token.as_str();
    for username in ["alice001", "bob00001", "carol001", "frozen01"] {
        account(&h, token, username, "sendcloud").await;
    }
    fund(&h, token, "alice001", "10.00").await;
    fund(&h, token, "bob00001", "0.05").await;
    let (status, _) = h.post_json("/v1/accounts/frozen01/freeze", token, &json!({})).await;
    assert_eq!(status, 200);
    let response = h.http.put(h.url("/v1/accounts/carol001/billing")).bearer_auth(token).json(&json!({"mode": "postpaid"})).send().await.unwrap();
    assert_eq!(response.status(), 204);
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    tariff(&h, token, "voice", per_unit("0.12", "60")).await;
    tariff(&h, token, "intl_sms", json!({"model": "by_country", "prices": [{"country_id": 170, "name": "马来西亚", "price": "0.34"}]})).await;

    let tomorrow = (Timestamp::now() + 24.hours()).to_string();
    let batch = json!([
        {"id": "e01", "account": "alice001", "product": "sms", "quantity": 1},
        {"id": "e02", "account": "alice001", "product": "voice", "quantity": "61", "attributes": {"callee": "13800000000"}},
        {"id": "e03", "account": "nobody01", "product": "sms", "quantity": 1},
        {"id": "e04", "account": "alice001", "product": "no_such_product", "quantity": 1},
        {"id": "e05", "account": "alice001", "product": "mms", "quantity": 1},
        {"id": "e06", "account": "alice001", "product": "intl_sms", "quantity": 1},
        {"id": "e07", "account": "alice001", "product": "sms", "quantity": "0"},
        {"id": "e08", "account": "alice001", "product": "sms", "quantity": 1, "occurred_at": tomorrow},
        {"id": "e09", "account": "bob00001", "product": "sms", "quantity": 2},
        {"id": "e10", "account": "frozen01", "product": "sms", "quantity": 1},
        {"id": "e11", "account": "carol001", "product": "sms", "quantity": 3},
        {"id": "e12", "account": "alice001", "product": "intl_sms", "quantity": 2, "attributes": {"country": 170}},
        {"id": "e01", "account": "alice001", "product": "sms", "quantity": 1},
        {"id": "e13", "account": "alice001", "product": "intl_sms", "quantity": 1, "attributes": {"country": 999}},
        {"id": "e14", "account": "alice001", "product": "sms", "quantity": 1, "occurred_at": "2020-01-01T00:00:00Z"},
    ]);
    let answer = usage(&h, token, batch.clone()).await;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 15);
    assert_eq!(outcome(&results[14]), ("rejected", Some("too_old"), None), "more than 400 days old");
    assert_eq!(outcome(&results[13]), ("rejected", Some("no_tariff"), None), "a country without a price is not free");
    assert_eq!(outcome(&results[0]), ("accepted", None, Some("0.05")));
    assert_eq!(results[0]["billable"], "1");
    assert_eq!(outcome(&results[1]), ("accepted", None, Some("0.24")), "61 s bill as two started minutes");
    assert_eq!(results[1]["billable"], "2", "billable counts started increments (minutes)");
    let reasons: Vec<_> = results[2..10].iter().map(|r| (r["id"].as_str().unwrap(), outcome(r).1.unwrap())).collect();
    assert_eq!(
        reasons,
        [
            ("e03", "unknown_account"),
            ("e04", "unknown_product"),
            ("e05", "no_tariff"),
            ("e06", "missing_attribute"),
            ("e07", "invalid_quantity"),
            ("e08", "in_future"),
            ("e09", "insufficient_funds"),
            ("e10", "account_frozen"),
        ]
    );
    assert_eq!(outcome(&results[10]), ("accepted", None, Some("0.00")), "postpaid accounts are charged at close");
    assert_eq!(results[10]["rated"], "0.15");
    assert_eq!(outcome(&results[11]), ("accepted", None, Some("0.68")));
    assert_eq!((results[12]["status"].as_str(), results[12]["first_status"].as_str(), results[12]["charge"].as_str()), (Some("duplicate"), Some("accepted"), Some("0.05")));
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64(), answer["duplicates"].as_u64()), (Some(4), Some(10), Some(1)));
    assert_eq!(primary_cents(&h, token, "alice001").await, 1000 - 5 - 24 - 68);
    assert_eq!(primary_cents(&h, token, "bob00001").await, 5, "a refused event charges nothing");
    assert_eq!(primary_cents(&h, token, "carol001").await, 0);

    // Replaying the batch charges nothing twice and answers the first outcomes.
    let replay = usage(&h, token, batch).await;
    assert_eq!((replay["accepted"].as_u64(), replay["rejected"].as_u64(), replay["duplicates"].as_u64()), (Some(0), Some(0), Some(15)));
    for (first, again) in results.iter().zip(replay["results"].as_array().unwrap()) {
        assert_eq!(again["status"], "duplicate");
        assert_eq!(again["reason"], first["reason"], "{again}");
        assert_eq!(again["charge"], first["charge"], "{again}");
    }
    assert_eq!(primary_cents(&h, token, "alice001").await, 903);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM usage_events").await, 14);

    // Whole-batch refusals: nothing of the batch is recorded.
    let too_many: Vec<Value> = (0..1001).map(|i| json!({"id": format!("big{i}"), "account": "alice001", "product": "sms", "quantity": 1})).collect();
    let (status, body) = h.post_json("/v1/usage", token, &json!({ "events": too_many })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("batch_too_large")), "{body}");
    let (status, body) = h.post_json("/v1/usage", token, &json!({"events": [{"id": "x1", "account": "alice001", "product": "sms", "quantity": "-1"}]})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = h.post_json("/v1/usage", token, &json!({"events": [{"id": "x2", "account": "alice001", "product": "sms", "quantity": 1, "occurred_at": "yesterday"}]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_time")), "{body}");
    let (status, body) = h.post_json("/v1/usage", token, &json!({"events": [{"id": "x3", "account": "alice001", "product": "sms", "quantity": 1, "attributes": {"country": [1]}}]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_attribute")), "{body}");
    // Over the 2 MiB body limit of /v1/usage (a thousand events with long attributes).
    let bulky: Vec<Value> = (0..1000).map(|i| json!({"id": format!("bulky{i}"), "account": "alice001", "product": "sms", "quantity": 1, "attributes": {"note": "x".repeat(2200)}})).collect();
    let (status, body) = h.post_json("/v1/usage", token, &json!({ "events": bulky })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    let (status, _) = h.post_json("/v1/usage", "slt_wrong", &json!({"events": []})).await;
    assert_eq!(status, 401);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM usage_events").await, 14);
    // Within that limit, a batch past the 256 KiB of the other routes is taken (each event answered).
    let large: Vec<Value> = (0..400).map(|i| json!({"id": format!("large{i}"), "account": "nobody01", "product": "sms", "quantity": 1, "attributes": {"a": "x".repeat(250), "b": "x".repeat(250), "c": "x".repeat(250), "d": "x".repeat(250)}})).collect();
    let answer = usage(&h, token, json!(large)).await;
    assert_eq!(answer["results"].as_array().map(Vec::len), Some(400), "{answer}");

    // The rollups hold what was accepted; the daily view shows it.
    let today = Timestamp::now().to_zoned(TimeZone::get(ZONE).unwrap()).date().to_string();
    let (status, daily) = h.get_json(&format!("/v1/accounts/alice001/daily?from={today}&to={today}"), token).await;
    assert_eq!(status, 200, "{daily}");
    let day = &daily["items"][0];
    assert_eq!((day["day"].as_str(), day["total"].as_str(), day["charged"].as_str()), (Some(today.as_str()), Some("0.97"), Some("0.97")), "{daily}");
    let products: Vec<_> = day["lines"].as_array().unwrap().iter().map(|l| (l["product"].as_str().unwrap(), l["events"].as_i64().unwrap(), l["rated"].as_str().unwrap())).collect();
    assert_eq!(products, [("intl_sms", 1, "0.68"), ("sms", 1, "0.05"), ("voice", 1, "0.24")]);
    let (status, body) = h.get_json("/v1/accounts/alice001/daily?from=2026-01-01&to=2026-12-31", token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, _) = h.get_json(&format!("/v1/accounts/nobody01/daily?from={today}&to={today}"), token).await;
    assert_eq!(status, 404);
    h.assert_ledger_sound().await;
}

async fn quotas_count_per_tenant_day(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Quotas").await;
    h.deposit(&tenant, "100.00").await;
    let token = tenant.api_token.as_str();
    account(&h, token, "quota001", "sendcloud").await;
    fund(&h, token, "quota001", "10.00").await;
    tariff(&h, token, "sms", per_unit("0.01", "1")).await;
    let reply = h.sendcloud("quota", &tenant, &[("username", "quota001"), ("quota", "3")]).await;
    assert_code(&reply, 200, "请求成功");

    // Yesterday's usage counts against yesterday, not today.
    let yesterday = (Timestamp::now() - 24.hours()).to_string();
    let events: Vec<Value> = (0..3).map(|i| json!({"id": format!("y{i}"), "account": "quota001", "product": "sms", "quantity": 1, "occurred_at": yesterday})).collect();
    assert_eq!(usage(&h, token, json!(events)).await["accepted"], 3);
    let events: Vec<Value> = (0..4).map(|i| json!({"id": format!("t{i}"), "account": "quota001", "product": "sms", "quantity": 1})).collect();
    let answer = usage(&h, token, json!(events)).await;
    let statuses: Vec<_> = answer["results"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap_or("accepted")).collect();
    assert_eq!(statuses, ["accepted", "accepted", "accepted", "quota_exceeded"]);
    // Refused events do not count; SendCloud shows today's real count.
    let reply = h.sendcloud("quota", &tenant, &[("username", "quota001"), ("quota", "5")]).await;
    assert_eq!(reply["info"], json!({"username": "quota001", "quota": 5, "todayUsedQuota": 3}), "{reply}");
    let list = h.sendcloud("list", &tenant, &[("username", "quota001")]).await;
    assert_eq!(list["info"]["list"][0]["todayUsedQuota"], 3, "{list}");
    assert_eq!(list["info"]["list"][0]["quota"], 5, "{list}");
    let (_, accounts) = h.get_json("/v1/accounts?username=quota001", token).await;
    assert_eq!(accounts["items"][0]["used_today"], 3, "{accounts}");
    // Raising the quota lets the next event in.
    let answer = usage(&h, token, json!([{"id": "t9", "account": "quota001", "product": "sms", "quantity": 1}])).await;
    assert_eq!(answer["accepted"], 1);
    assert_eq!(primary_cents(&h, token, "quota001").await, 1000 - 7);
}

/// Usage of two months ago (M1) and last month (M2) for a spread of pricing
/// models, closed, checked to the cent against spec 000's examples.
async fn seed_two_months(h: &Harness, tenant: &Tenant) -> (Date, Date) {
    let token = tenant.api_token.as_str();
    h.deposit(tenant, "10000.00").await;
    account(h, token, "mailer01", "sendcloud").await;
    account(h, token, "faxer001", "ifaxin").await;
    account(h, token, "postpd01", "sendcloud").await;
    account(h, token, "idle0001", "sendcloud").await;
    fund(h, token, "mailer01", "6000.00").await;
    fund(h, token, "faxer001", "10.00").await;
    fund(h, token, "postpd01", "1.00").await;
    let response = h.http.put(h.url("/v1/accounts/postpd01/billing")).bearer_auth(token).json(&json!({"mode": "postpaid"})).send().await.unwrap();
    assert_eq!(response.status(), 204);
    tariff(
        h,
        token,
        "email",
        json!({"model": "graduated", "tiers": [{"min": "0", "max": "100000", "unit": "0", "price": "799.00"}, {"min": "100000", "max": "10000000", "unit": "1000", "price": "6.00"}]}),
    )
    .await;
    tariff(h, token, "intl_sms", json!({"model": "by_country", "prices": [{"country_id": 170, "name": "马来西亚", "price": "0.34"}, {"country_id": 208, "name": "越南", "price": "0.7"}]})).await;
    tariff(h, token, "ip", json!({"model": "recurring", "price": "500.00"})).await;
    tariff(h, token, "email_traffic", json!({"model": "allowance", "free": "966.22", "price": "0.002"})).await;
    tariff(h, token, "sms", per_unit("0.05", "1")).await;

    let (m1, m2) = (month_start(2), month_start(1));
    let answer = usage(
        h,
        token,
        json!([
            {"id": "m1-email-1", "account": "mailer01", "product": "email", "quantity": 100000, "occurred_at": at(m1, 3, 10)},
            {"id": "m1-email-2", "account": "mailer01", "product": "email", "quantity": 150000, "occurred_at": at(m1, 12, 10)},
            {"id": "m1-email-3", "account": "mailer01", "product": "email", "quantity": 49155, "occurred_at": at(m1, 20, 10)},
            {"id": "m1-intl-my", "account": "mailer01", "product": "intl_sms", "quantity": 3235, "attributes": {"country": "170"}, "occurred_at": at(m1, 5, 9)},
            {"id": "m1-intl-vn", "account": "mailer01", "product": "intl_sms", "quantity": 2365, "attributes": {"country": "208"}, "occurred_at": at(m1, 6, 9)},
            {"id": "m1-ip-1", "account": "mailer01", "product": "ip", "quantity": 1, "attributes": {"item": "192.168.0.65", "type": "国内"}, "occurred_at": at(m1, 1, 1)},
            {"id": "m1-ip-2", "account": "mailer01", "product": "ip", "quantity": 1, "attributes": {"item": "192.168.0.149", "type": "国内"}, "occurred_at": at(m1, 1, 2)},
            {"id": "m1-ip-1b", "account": "mailer01", "product": "ip", "quantity": 1, "attributes": {"item": "192.168.0.65", "type": "国内"}, "occurred_at": at(m1, 15, 2)},
            {"id": "m1-traffic", "account": "mailer01", "product": "email_traffic", "quantity": "68913.63", "occurred_at": at(m1, 28, 23)},
            {"id": "m1-fax-sms", "account": "faxer001", "product": "sms", "quantity": 4, "occurred_at": at(m1, 2, 0)},
            {"id": "m1-post-sms", "account": "postpd01", "product": "sms", "quantity": 10, "occurred_at": at(m1, 9, 0)},
        ]),
    )
    .await;
    assert_eq!(answer["accepted"], 11, "{answer}");
    (m1, m2)
}

pub(crate) async fn close(h: &Harness, token: &str, month: &str) -> Value {
    let (status, body) = h.post_json("/v1/bills/close", token, &json!({ "month": month })).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Every bill's total is the sum of its lines, and each line's money the sum of its detail.
#[track_caller]
fn assert_bills_add_up(bills: &Value) {
    for bill in bills["items"].as_array().unwrap() {
        let lines = bill["lines"].as_array().unwrap();
        assert_eq!(bill["total_minor"].as_i64().unwrap(), lines.iter().map(|l| l["money_minor"].as_i64().unwrap()).sum::<i64>(), "{bill}");
    }
}

async fn month_close_bills_exactly(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Month Close").await;
    let token = tenant.api_token.as_str();
    let (m1, m2) = seed_two_months(&h, &tenant).await;
    // Real time: telescoped charges of the graduated e-mail price add up to the month.
    assert_eq!(primary_cents(&h, token, "mailer01").await, 600_000 - 199_900 - 275_540 - 100_000 - 13_589);

    // The current month cannot close; a bad month is refused.
    let current = dashed(month_start(0));
    let (status, body) = h.post_json("/v1/bills/close", token, &json!({ "month": current })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, body) = h.post_json("/v1/bills/close", token, &json!({ "month": "2024-13" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_month")), "{body}");

    let report = close(&h, token, &dashed(m1)).await;
    assert_eq!(report["months"].as_array().unwrap().len(), 1, "{report}");
    let first = &report["months"][0];
    assert_eq!((first["already_closed"].as_bool(), first["bills"].as_u64()), (Some(false), Some(3)), "{report}");
    assert_eq!(close_amount(first, "CNY", "billed"), "5890.99", "{report}");
    assert_eq!((close_amount(first, "CNY", "settled"), close_amount(first, "CNY", "outstanding")), ("0.50".to_owned(), "0.00".to_owned()), "only the postpaid account is settled: {report}");

    let (status, bills) = h.get_json(&format!("/v1/bills?from={}", dashed(m1)), token).await;
    assert_eq!(status, 200, "{bills}");
    assert_bills_add_up(&bills);
    assert_eq!(bills["total_accounts"], 4);
    let mailer = bills["items"].as_array().unwrap().iter().find(|b| b["username"] == "mailer01").unwrap();
    let lines: Vec<_> = mailer["lines"].as_array().unwrap().iter().map(|l| (l["order_type"].as_i64().unwrap(), l["quantity"].as_str().unwrap(), l["money"].as_str().unwrap())).collect();
    assert_eq!(lines, [(1, "299155", "1999.00"), (2, "2", "1000.00"), (12, "5600", "2755.40"), (30, "68913.63", "135.89")], "{mailer}");
    assert_eq!(mailer["total"], "5890.29", "{mailer}");
    assert!(mailer["settlements"].as_array().unwrap().is_empty(), "real-time charges were exact: {mailer}");
    let postpaid = bills["items"].as_array().unwrap().iter().find(|b| b["username"] == "postpd01").unwrap();
    assert_eq!(postpaid["total"], "0.50");
    assert_eq!(
        postpaid["settlements"],
        json!([{"product": "sms", "order_type": 14, "amount": "0.50", "amount_minor": 50, "status": "posted", "transfer_id": postpaid["settlements"][0]["transfer_id"]}])
    );
    assert_eq!(primary_cents(&h, token, "postpd01").await, 50, "the postpaid account paid at close");

    // Closing again changes nothing.
    let again = close(&h, token, &dashed(m1)).await;
    assert_eq!(again["months"][0]["already_closed"], true, "{again}");
    let (_, unchanged) = h.get_json(&format!("/v1/bills?from={}", dashed(m1)), token).await;
    assert_eq!(unchanged, bills);
    assert_eq!(primary_cents(&h, token, "postpd01").await, 50);

    // Late usage for the closed month lands on the next bill as 补扣, with what was billed before.
    let late = usage(
        &h,
        token,
        json!([
            {"id": "late-email", "account": "mailer01", "product": "email", "quantity": 5486, "occurred_at": at(m1, 30i8.min(m1.days_in_month()), 20)},
            {"id": "late-intl", "account": "mailer01", "product": "intl_sms", "quantity": 23, "attributes": {"country": "208"}, "occurred_at": at(m1, 7, 7)},
            {"id": "m2-sms", "account": "mailer01", "product": "sms", "quantity": 7, "occurred_at": at(m2, 4, 4)},
        ]),
    )
    .await;
    assert_eq!(late["accepted"], 3, "{late}");
    let report = close(&h, token, &dashed(m2)).await;
    assert_eq!(report["months"].as_array().unwrap().len(), 1, "{report}");
    let (_, bills) = h.get_json(&format!("/v1/bills?from={}&username=mailer01", dashed(m2)), token).await;
    assert_bills_add_up(&bills);
    let bill = &bills["items"][0];
    let lines: Vec<_> = bill["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["kind"].as_str().unwrap(), l["for_month"].as_str().unwrap(), l["order_type"].as_i64().unwrap(), l["quantity"].as_str().unwrap(), l["money"].as_str().unwrap()))
        .collect();
    let m1_text = dashed(m1);
    assert_eq!(lines, [("usage", dashed(m2).as_str(), 10, "7", "0.35"), ("supplement", m1_text.as_str(), 5, "5486", "30.00"), ("supplement", m1_text.as_str(), 33, "23", "16.10"),], "{bill}");
    let email = &bill["lines"][1];
    assert_eq!((email["previous_quantity"].as_str(), email["previous_money"].as_str()), (Some("299155"), Some("1999.00")));
    let details: Vec<_> = email["detail"].as_array().unwrap().iter().map(|d| (d["count"].as_str().unwrap(), d["money_micros"].as_i64().unwrap())).collect();
    assert_eq!(details, [("100000", 799_000_000), ("204641", 1_230_000_000)], "the month re-rated in full: {email}");

    // Late usage for last month shows on this month's bill so far.
    let current = dashed(month_start(0));
    assert_eq!(usage(&h, token, json!([{"id": "late-m2", "account": "mailer01", "product": "sms", "quantity": 3, "occurred_at": at(m2, 20, 1)}])).await["accepted"], 1);
    let (_, so_far) = h.get_json(&format!("/v1/bills?from={current}&username=mailer01&month_to_date=true"), token).await;
    assert_bills_add_up(&so_far);
    let bill = &so_far["items"][0];
    assert_eq!((bill["month"].as_str(), bill["closed"].as_bool()), (Some(current.as_str()), Some(false)), "{so_far}");
    let line = &bill["lines"][0];
    assert_eq!(
        (line["kind"].as_str(), line["for_month"].as_str(), line["order_type"].as_i64(), line["quantity"].as_str(), line["money"].as_str(), line["previous_quantity"].as_str()),
        (Some("supplement"), Some(dashed(m2).as_str()), Some(14), Some("3"), Some("0.15"), Some("7")),
        "{so_far}"
    );
    let (_, closed_only) = h.get_json(&format!("/v1/bills?from={current}&username=mailer01"), token).await;
    assert_eq!(closed_only["items"], json!([]));
    h.assert_ledger_sound().await;
}

async fn sendcloud_bills_follow_the_spec(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("SendCloud Bills").await;
    let token = tenant.api_token.as_str();
    let (m1, m2) = seed_two_months(&h, &tenant).await;
    close(&h, token, &dashed(m1)).await;
    // This month so far, for the iFaxin account.
    assert_eq!(usage(&h, token, json!([{"id": "now-fax", "account": "faxer001", "product": "sms", "quantity": 2}])).await["accepted"], 1);
    let current = month_start(0);
    let params = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        [("startMonth", compact(m1)), ("endMonth", compact(current))].into_iter().chain(extra.iter().map(|(k, v)| (*k, (*v).to_owned()))).collect()
    };
    let reply = sendcloud_call(&h, &tenant, "bill", &params(&[("pageSize", "200")])).await;
    assert_code(&reply, 200, "请求成功");
    assert_eq!((reply["info"]["total"].as_i64(), reply["info"]["count"].as_i64()), (Some(4), Some(4)), "{reply}");
    let list = reply["info"]["list"].as_array().unwrap();
    let of = |name: &str| list.iter().find(|a| a["username"] == name).unwrap_or_else(|| panic!("{name} listed: {reply}")).clone();
    let mailer = of("mailer01");
    assert_eq!(mailer["userType"], 0);
    assert_eq!(mailer["billData"].as_array().unwrap().len(), 1, "SendCloud accounts see closed months only: {mailer}");
    let bill = &mailer["billData"][0];
    assert_eq!(bill["date"], dashed(m1));
    assert_eq!(bill["totalMoney"].to_string(), "5890.29");
    assert_eq!(floats(bill["consumeOrders"][0].clone()), floats(json!({"orderType": 1, "desc": "邮件费用", "remark": 299155, "component": "封", "orderMoney": 1999})));
    let fax = of("faxer001");
    assert_eq!(fax["userType"], 1);
    let dates: Vec<_> = fax["billData"].as_array().unwrap().iter().map(|b| b["date"].as_str().unwrap().to_owned()).collect();
    assert_eq!(dates, [dashed(current), dashed(m1)], "iFaxin accounts also see the month to date, newest first: {fax}");
    assert_eq!(fax["billData"][0]["totalMoney"].to_string(), "0.1");
    assert_eq!(of("idle0001")["billData"], json!([]));

    // billDetail: the spec's info shapes per kind of line.
    let reply = sendcloud_call(&h, &tenant, "billDetail", &params(&[("username", "mailer01")])).await;
    assert_code(&reply, 200, "请求成功");
    assert_eq!((reply["info"]["total"].as_i64(), reply["info"]["count"].as_i64()), (Some(1), Some(1)));
    let detail = reply["info"]["list"][0]["billDetail"].as_array().unwrap().clone();
    let by_type = |order_type: i64| detail.iter().find(|d| d["orderType"] == order_type).unwrap_or_else(|| panic!("orderType {order_type}: {detail:?}")).clone();
    assert_eq!(
        floats(by_type(1)["info"].clone()),
        floats(json!([
            {"level": 0, "price": 799, "unit": 0, "minValue": 0, "maxValue": 100000, "count": 100000, "money": 799},
            {"level": 1, "price": 6, "unit": 1000, "minValue": 100000, "maxValue": 10000000, "count": 199155, "money": 1200},
        ]))
    );
    let intl = by_type(12);
    assert_eq!(intl["remark"], 5600);
    assert_eq!(
        floats(intl["info"].clone()),
        floats(json!([
            {"money": 1099.9, "price": 0.34, "count": 3235, "countryName": "马来西亚", "countryId": 170},
            {"money": 1655.5, "price": 0.7, "count": 2365, "countryName": "越南", "countryId": 208},
        ]))
    );
    let ips = by_type(2);
    assert_eq!((ips["orderMoney"].as_f64(), ips["remark"].as_i64()), (Some(1000.0), Some(2)), "{ips}");
    let mut ip_info = ips["info"].as_array().unwrap().clone();
    ip_info.sort_by_key(|i| i["ip"].as_str().unwrap().to_owned());
    assert_eq!(floats(json!(ip_info)), floats(json!([{"money": 500, "price": 500, "ip": "192.168.0.149", "type": "国内"}, {"money": 500, "price": 500, "ip": "192.168.0.65", "type": "国内"}])));
    assert_eq!(floats(by_type(30)["info"].clone()), floats(json!({"payEmailDataCount": 67947.41, "money": 135.8948, "price": 0.002, "totalEmailDataCount": 68913.63, "freeEmailDataCount": 966.22})));
    // iFaxin accounts are listed without detail (spec note 2).
    let reply = sendcloud_call(&h, &tenant, "billDetail", &params(&[("username", "faxer001")])).await;
    assert_eq!(reply["info"]["list"], json!([{"username": "faxer001", "userType": 1, "billDetail": []}]), "{reply}");

    // The spec's codes: bad months, reversed or too wide ranges (400), pages over 200 (424), unknown usernames (423).
    for endpoint in ["bill", "billDetail"] {
        for (start, end) in [("2024-01", "202402"), ("202413", "202401"), ("202402", "202401"), ("", "202401"), ("200001", "202401")] {
            let reply = h.sendcloud(endpoint, &tenant, &[("startMonth", start), ("endMonth", end)]).await;
            assert_code(&reply, 400, "请求失败");
        }
        let reply = h.sendcloud(endpoint, &tenant, &[("startMonth", "202401"), ("endMonth", "202402"), ("pageSize", "201")]).await;
        assert_code(&reply, 424, "查询条数限制");
        let reply = h.sendcloud(endpoint, &tenant, &[("startMonth", "202401"), ("endMonth", "202402"), ("username", "nobody01")]).await;
        assert_code(&reply, 423, "找不到该用户名");
    }
    // Paging runs over sub-accounts.
    let reply = sendcloud_call(&h, &tenant, "bill", &params(&[("startNo", "1"), ("pageSize", "2")])).await;
    assert_eq!((reply["info"]["total"].as_i64(), reply["info"]["count"].as_i64()), (Some(4), Some(2)), "{reply}");

    // A supplement (补扣) line: the spec's object with what was billed before, money with two decimals.
    assert_eq!(usage(&h, token, json!([{"id": "late-email", "account": "mailer01", "product": "email", "quantity": 5486, "occurred_at": at(m1, 25, 1)}])).await["accepted"], 1);
    close(&h, token, &dashed(m2)).await;
    let body = signed_form(&tenant, &[("startMonth", &compact(m2)), ("endMonth", &compact(m2)), ("username", "mailer01")], true);
    let response = h.http.post(h.url("/api/subAccount/billDetail")).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await.unwrap();
    let raw = response.text().await.unwrap();
    let reply: Value = serde_json::from_str(&raw).unwrap();
    let detail = reply["info"]["list"][0]["billDetail"].as_array().unwrap();
    let supplement = detail.iter().find(|d| d["orderType"] == 5).unwrap_or_else(|| panic!("a 邮件补扣 line: {raw}"));
    assert_eq!((supplement["desc"].as_str(), supplement["remark"].as_i64(), supplement["orderMoney"].as_f64()), (Some("上月邮件补扣"), Some(5486), Some(30.0)), "{raw}");
    assert_eq!(supplement["info"]["lastMonthAmount"], 299155);
    assert!(raw.contains(r#""lastMonthMoney":1999.00"#), "{raw}");
    assert_eq!(supplement["info"]["list"].as_array().unwrap().len(), 2, "the month re-rated by tier: {raw}");
}

async fn exports_read_back(backend: Backend) {
    use std::io::Cursor;

    use calamine::{Data, DataType, Reader, Xlsx};

    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Exports").await;
    let token = tenant.api_token.as_str();
    let (m1, _) = seed_two_months(&h, &tenant).await;
    let month = dashed(m1);
    let (status, body) = h.get_json(&format!("/v1/bills/export?month={month}&format=csv"), token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "an open month cannot be exported: {body}");
    close(&h, token, &month).await;
    let (status, body) = h.get_json(&format!("/v1/bills/export?month={month}&format=pdf"), token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_format")), "{body}");

    let response = h.http.get(h.url(&format!("/v1/bills/export?month={month}&format=csv"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains(&format!("bills-{month}.csv")));
    let csv_bytes = response.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv_bytes.as_ref());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, ["username", "month", "line", "kind", "for_month", "order_type", "description", "quantity", "unit", "money", "bill_total", "currency"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6, "four lines for mailer01, one each for faxer001 and postpd01");
    let mailer: Vec<_> = rows.iter().filter(|r| &r[0] == "mailer01").collect();
    assert_eq!(mailer.iter().map(|r| (&r[5], &r[7], &r[9])).collect::<Vec<_>>(), [("1", "299155", "1999.00"), ("2", "2", "1000.00"), ("12", "5600", "2755.40"), ("30", "68913.63", "135.89")]);
    assert!(mailer.iter().all(|r| &r[10] == "5890.29" && !r[6].is_empty() && r[1] == *month && &r[11] == "CNY"));

    let response = h.http.get(h.url(&format!("/v1/bills/export?month={month}&format=xlsx"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let bytes = response.bytes().await.unwrap();
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec())).expect("a readable workbook");
    let sheet = book.worksheet_range(&format!("bills {month}")).expect("the month's sheet");
    let cells: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(cells.len(), 7, "a header and six lines");
    assert_eq!(cells[0][0], Data::String("username".into()));
    let money: f64 = cells[1..].iter().filter(|r| r[0] == Data::String("mailer01".into())).map(|r| r[9].as_f64().unwrap()).sum();
    assert!((money - 5890.29).abs() < 1e-6, "{money}");
    // CSV and XLSX carry the same lines.
    for (row, record) in cells[1..].iter().zip(&rows) {
        assert_eq!(row[0], Data::String(record[0].to_owned()));
        assert_eq!(format!("{:.2}", row[9].as_f64().unwrap()), record[9]);
        assert_eq!(row[11], Data::String(record[11].to_owned()));
    }
}

/// A close that fails at its last write leaves nothing behind; run again, it completes.
async fn close_is_all_or_nothing(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Atomic Close").await;
    let token = tenant.api_token.as_str();
    let (m1, _) = seed_two_months(&h, &tenant).await;
    let before = primary_cents(&h, token, "postpd01").await;
    break_writes(&h.db, "month_closes", "INSERT").await;
    let (status, body) = h.post_json("/v1/bills/close", token, &json!({ "month": dashed(m1) })).await;
    assert!(status >= 500, "{status} {body}");
    for table in ["bills", "bill_lines", "settlements", "month_closes"] {
        assert_eq!(sql_i64(&h.db, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table} after a failed close");
    }
    assert_eq!(primary_cents(&h, token, "postpd01").await, before, "no settlement was posted");
    heal_writes(&h.db, "month_closes").await;
    let report = close(&h, token, &dashed(m1)).await;
    assert_eq!(report["months"][0]["bills"], 3, "{report}");
    assert_eq!(primary_cents(&h, token, "postpd01").await, before - 50);

    // A batch that fails to commit records nothing; replayed, it is charged once.
    break_writes(&h.db, "usage_daily", "INSERT").await;
    let batch = json!([{"id": "fail-1", "account": "mailer01", "product": "sms", "quantity": 3}]);
    let (status, _) = h.post_json("/v1/usage", token, &json!({ "events": batch })).await;
    assert!(status >= 500);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM usage_events WHERE event_id = 'fail-1'").await, 0);
    heal_writes(&h.db, "usage_daily").await;
    let mailer_before = primary_cents(&h, token, "mailer01").await;
    assert_eq!(usage(&h, token, batch.clone()).await["accepted"], 1);
    assert_eq!(usage(&h, token, batch).await["duplicates"], 1);
    assert_eq!(primary_cents(&h, token, "mailer01").await, mailer_before - 15);
    h.assert_ledger_sound().await;
}

/// The server closes ended months after the grace period, on its own, once.
async fn months_close_by_themselves(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let tenant = h.create_tenant("Automatic Close").await;
    let token = tenant.api_token.as_str();
    let (m1, m2) = seed_two_months(&h, &tenant).await;
    assert_eq!(usage(&h, token, json!([{"id": "m2", "account": "faxer001", "product": "sms", "quantity": 1, "occurred_at": at(m2, 2, 2)}])).await["accepted"], 1);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM month_closes").await, 0, "automatic close is off in tests by default");
    assert!(h.server.stop_gracefully().await);

    // A grace period that the older month is past and last month is not: only the older one closes.
    let hours_since_m2 = (Timestamp::now().as_second() - month_start(0).to_zoned(TimeZone::get(ZONE).unwrap()).unwrap().timestamp().as_second()) / 3600;
    let too_long = (hours_since_m2 + 2).to_string();
    h.server = TestServer::start(&h.db, &["--auto-close-after-hours", &too_long]).await;
    assert_eq!(closed_months(&h, 1).await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sql_i64(&h.db, &format!("SELECT COUNT(*) FROM month_closes WHERE month = '{}'", dashed(m1))).await, 1);
    assert!(h.server.stop_gracefully().await);

    // One hour of grace: both months close at start, oldest first, once.
    h.server = TestServer::start(&h.db, &["--auto-close-after-hours", "1"]).await;
    assert_eq!(closed_months(&h, 2).await, 2);
    let (_, bills) = h.get_json(&format!("/v1/bills?from={}&to={}", dashed(m1), dashed(m2)), token).await;
    let months: Vec<_> = bills["items"].as_array().unwrap().iter().filter(|b| b["username"] == "faxer001").map(|b| b["month"].as_str().unwrap().to_owned()).collect();
    assert_eq!(months, [dashed(m1), dashed(m2)]);
    let (_, again) = h.post_json("/v1/bills/close", token, &json!({"month": dashed(m2)})).await;
    assert_eq!(again["months"][0]["already_closed"], true, "{again}");
    h.assert_ledger_sound().await;
}

/// Waits up to ten seconds for `expected` closed months; returns the count.
async fn closed_months(h: &Harness, expected: i64) -> i64 {
    let mut closed = 0;
    for _ in 0..100 {
        closed = sql_i64(&h.db, "SELECT COUNT(*) FROM month_closes").await;
        if closed >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    closed
}

#[track_caller]
fn refused(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!((answer.0, answer.1["error"]["code"].as_str()), (status, Some(code)), "{}", answer.1);
}

/// Products and tariffs through the API: the built-in catalog, a tenant's
/// own product, every refusal, and which tariff version prices what.
async fn catalog_and_effective_tariffs(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Catalog").await;
    h.deposit(&tenant, "100.00").await;
    let token = tenant.api_token.as_str();
    for username in ["plain001", "vip00001"] {
        account(&h, token, username, "sendcloud").await;
        fund(&h, token, username, "10.00").await;
    }

    let (status, products) = h.get_json("/v1/products", token).await;
    assert_eq!(status, 200);
    let email = products["items"].as_array().unwrap().iter().find(|p| p["code"] == "email").unwrap();
    assert_eq!((email["order_type"].as_i64(), email["unit"].as_str(), email["builtin"].as_bool()), (Some(1), Some("封"), Some(true)));
    let voip = products["items"].as_array().unwrap().iter().find(|p| p["code"] == "voip").unwrap();
    assert_eq!(voip["telephony_group"], "voip");

    let fax = json!({"code": "fax_page", "name": "传真费用", "unit": "页", "order_type": 900});
    let (status, created) = h.post_json("/v1/products", token, &fax).await;
    assert_eq!((status, created["builtin"].as_bool(), created["grouping"].as_str()), (201, Some(false), Some("none")), "{created}");
    assert_eq!((created["supplement_order_type"].as_i64(), created["refund_order_type"].as_i64()), (Some(15), None), "人工补扣 by default: {created}");
    let (status, own) = h
        .post_json(
            "/v1/products",
            token,
            &json!({"code": "fax_cover", "name": "传真封面费用", "unit": "页", "order_type": 910, "supplement_order_type": 911, "refund_order_type": 912, "quantity_meaning": "cover pages sent"}),
        )
        .await;
    assert_eq!((status, own["supplement_order_type"].as_i64(), own["refund_order_type"].as_i64(), own["quantity_meaning"].as_str()), (201, Some(911), Some(912), Some("cover pages sent")), "{own}");
    refused(h.post_json("/v1/products", token, &json!({"code": "fax_bad", "name": "x", "unit": "页", "order_type": 913, "supplement_order_type": 0})).await, 400, "invalid_request");
    refused(h.post_json("/v1/products", token, &fax).await, 409, "conflict");
    refused(h.post_json("/v1/products", token, &json!({"code": "email", "name": "x", "unit": "封", "order_type": 1})).await, 409, "conflict");
    refused(h.post_json("/v1/products", token, &json!({"code": "Bad Code", "name": "x", "unit": "页", "order_type": 900})).await, 400, "invalid_request");
    refused(h.post_json("/v1/products", token, &json!({"code": "fax2", "name": "x", "unit": "页", "order_type": 900, "grouping": "weird"})).await, 400, "invalid_grouping");
    refused(h.post_json("/v1/products", token, &json!({"code": "fax3", "name": "x", "unit": "页"})).await, 400, "invalid_body");
    let (status, _) = h.post_json("/v1/products", "slt_nope", &fax).await;
    assert_eq!(status, 401);

    let tariff_for = |product: &str, model: Value| json!({"product": product, "model": model, "effective_from": "2020-01-01T00:00:00Z"});
    refused(h.post_json("/v1/tariffs", token, &tariff_for("no_such_product", per_unit("1", "1"))).await, 404, "product_not_found");
    refused(h.post_json("/v1/tariffs", token, &tariff_for("fax_page", json!({"model": "graduated", "tiers": [{"min": "5", "unit": "0", "price": "1"}]}))).await, 400, "invalid_model");
    refused(h.post_json("/v1/tariffs", token, &tariff_for("fax_page", json!({"model": "per_unit", "price": "1", "increment": "0"}))).await, 400, "invalid_model");
    refused(h.post_json("/v1/tariffs", token, &tariff_for("fax_page", json!({"model": "per_unit", "price": "0.1234567", "increment": "1"}))).await, 400, "invalid_model");
    let mut bad = tariff_for("fax_page", per_unit("0.1", "1"));
    bad["username"] = json!("no body");
    refused(h.post_json("/v1/tariffs", token, &bad).await, 400, "invalid_username");
    bad["username"] = json!("ghost001");
    refused(h.post_json("/v1/tariffs", token, &bad).await, 404, "account_not_found");
    let mut bad = tariff_for("fax_page", per_unit("0.1", "1"));
    bad["effective_from"] = json!("soon");
    refused(h.post_json("/v1/tariffs", token, &bad).await, 400, "invalid_time");
    // Two versions of one tariff cannot start at the same instant.
    tariff(&h, token, "mms", per_unit("0.10", "1")).await;
    refused(h.post_json("/v1/tariffs", token, &tariff_for("mms", per_unit("0.20", "1"))).await, 409, "conflict");

    // 0.10 a page until this month, 0.20 from its first instant; vip pays 0.05 throughout.
    tariff(&h, token, "fax_page", per_unit("0.10", "1")).await;
    let this_month = month_start(0);
    let (status, body) = h.post_json("/v1/tariffs", token, &json!({"product": "fax_page", "model": per_unit("0.20", "1"), "effective_from": at(this_month, 1, 0)})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = h.post_json("/v1/tariffs", token, &json!({"product": "fax_page", "username": "vip00001", "model": per_unit("0.05", "1"), "effective_from": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(status, 201, "{body}");
    let (_, versions) = h.get_json("/v1/tariffs?product=fax_page", token).await;
    let prices: Vec<_> = versions["items"].as_array().unwrap().iter().map(|v| (v["username"].as_str(), v["model"]["price"].as_str().unwrap())).collect();
    assert_eq!(prices, [(None, "0.1"), (None, "0.2"), (Some("vip00001"), "0.05")], "defaults first, then overrides: {versions}");

    let last_month = month_start(1);
    let answer = usage(
        &h,
        token,
        json!([
            {"id": "old", "account": "plain001", "product": "fax_page", "quantity": 1, "occurred_at": at(last_month, 10, 10)},
            {"id": "new", "account": "plain001", "product": "fax_page", "quantity": 1},
            {"id": "vip", "account": "vip00001", "product": "fax_page", "quantity": 1},
        ]),
    )
    .await;
    let charges: Vec<_> = answer["results"].as_array().unwrap().iter().map(|r| r["charge"].as_str().unwrap().to_owned()).collect();
    assert_eq!(charges, ["0.10", "0.20", "0.05"], "each event pays the version in force when it occurred");
    // The bill of last month uses last month's price: it matches the charge, no settlement.
    let report = close(&h, token, &dashed(last_month)).await;
    assert_eq!((close_amount(&report["months"][0], "CNY", "billed"), close_amount(&report["months"][0], "CNY", "settled")), ("0.10".to_owned(), "0.00".to_owned()), "{report}");

    refused(status_and_json(h.http.put(h.url("/v1/accounts/plain001/billing")).bearer_auth(token).json(&json!({"mode": "weekly"})).send().await.unwrap()).await, 400, "invalid_mode");
    refused(status_and_json(h.http.put(h.url("/v1/accounts/ghost001/billing")).bearer_auth(token).json(&json!({"mode": "postpaid"})).send().await.unwrap()).await, 404, "account_not_found");
    refused(h.get_json("/v1/bills?from=2024-13", token).await, 400, "invalid_month");
    refused(h.get_json("/v1/bills?from=2024-05&to=2024-01", token).await, 400, "invalid_range");
    refused(h.get_json("/v1/bills?from=2020-01&to=2024-01", token).await, 400, "invalid_range");
    refused(h.get_json("/v1/bills?from=2024-01&limit=500", token).await, 400, "invalid_page");
    refused(h.get_json("/v1/bills?from=2024-01&username=ghost001", token).await, 404, "account_not_found");
    refused(h.get_json("/v1/accounts/plain001/daily?from=2024-02-30&to=2024-03-01", token).await, 400, "invalid_day");
}

/// Usage for a month that had none when a later month closed: that month
/// closes afterwards, and the later month's bill and charges do not make it
/// settle anything twice.
async fn an_earlier_month_closes_after_a_later_one(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Out Of Order").await;
    h.deposit(&tenant, "100.00").await;
    let token = tenant.api_token.as_str();
    account(&h, token, "sender01", "sendcloud").await;
    fund(&h, token, "sender01", "10.00").await;
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    let (m1, m2) = (month_start(2), month_start(1));
    assert_eq!(usage(&h, token, json!([{"id": "m2", "account": "sender01", "product": "sms", "quantity": 10, "occurred_at": at(m2, 5, 5)}])).await["accepted"], 1);
    let report = close(&h, token, &dashed(m2)).await;
    assert_eq!(report["months"].as_array().unwrap().len(), 1, "{report}");

    assert_eq!(usage(&h, token, json!([{"id": "m1", "account": "sender01", "product": "sms", "quantity": 4, "occurred_at": at(m1, 5, 5)}])).await["accepted"], 1);
    assert_eq!(primary_cents(&h, token, "sender01").await, 1000 - 50 - 20);
    let report = close(&h, token, &dashed(m2)).await;
    let months: Vec<_> =
        report["months"].as_array().unwrap().iter().map(|m| (m["month"].as_str().unwrap().to_owned(), m["already_closed"].as_bool().unwrap(), close_amount(m, "CNY", "settled"))).collect();
    assert_eq!(months, [(dashed(m1), false, "0.00".to_owned()), (dashed(m2), true, "0.00".to_owned())], "{report}");
    assert_eq!(primary_cents(&h, token, "sender01").await, 1000 - 50 - 20, "nothing charged twice");
    let (_, bills) = h.get_json(&format!("/v1/bills?from={}&to={}", dashed(m1), dashed(m2)), token).await;
    let totals: Vec<_> = bills["items"].as_array().unwrap().iter().map(|b| (b["month"].as_str().unwrap().to_owned(), b["total"].as_str().unwrap().to_owned())).collect();
    assert_eq!(totals, [(dashed(m1), "0.20".to_owned()), (dashed(m2), "0.50".to_owned())]);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM settlements").await, 0);
    h.assert_ledger_sound().await;
}

/// A postpaid account that cannot pay at close owes the amount (outstanding);
/// the next close, once it has money, takes it, and shows it on a bill.
async fn outstanding_settlements_are_retried(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Outstanding").await;
    h.deposit(&tenant, "100.00").await;
    let token = tenant.api_token.as_str();
    account(&h, token, "later001", "sendcloud").await;
    let response = h.http.put(h.url("/v1/accounts/later001/billing")).bearer_auth(token).json(&json!({"mode": "postpaid"})).send().await.unwrap();
    assert_eq!(response.status(), 204);
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    let (m1, m2) = (month_start(2), month_start(1));
    assert_eq!(usage(&h, token, json!([{"id": "m1", "account": "later001", "product": "sms", "quantity": 10, "occurred_at": at(m1, 5, 5)}])).await["accepted"], 1);

    let report = close(&h, token, &dashed(m1)).await;
    assert_eq!((close_amount(&report["months"][0], "CNY", "settled"), close_amount(&report["months"][0], "CNY", "outstanding")), ("0.00".to_owned(), "0.50".to_owned()), "{report}");
    let (_, bills) = h.get_json(&format!("/v1/bills?from={}", dashed(m1)), token).await;
    assert_eq!(bills["items"][0]["settlements"][0]["status"], "outstanding", "{bills}");
    assert_eq!(primary_cents(&h, token, "later001").await, 0);

    fund(&h, token, "later001", "1.00").await;
    let report = close(&h, token, &dashed(m2)).await;
    assert_eq!((close_amount(&report["months"][0], "CNY", "settled"), close_amount(&report["months"][0], "CNY", "outstanding")), ("0.50".to_owned(), "0.00".to_owned()), "{report}");
    assert_eq!(primary_cents(&h, token, "later001").await, 50);
    let (_, bills) = h.get_json(&format!("/v1/bills?from={}", dashed(m2)), token).await;
    let bill = &bills["items"][0];
    assert_eq!((bill["month"].as_str(), bill["total"].as_str(), bill["lines"].as_array().map(Vec::len)), (Some(dashed(m2).as_str()), Some("0.00"), Some(0)), "{bills}");
    assert_eq!((bill["settlements"][0]["amount"].as_str(), bill["settlements"][0]["status"].as_str()), (Some("0.50"), Some("posted")), "{bills}");
    // SendCloud lists that month too: 0.00 without lines.
    let reply = sendcloud_call(&h, &tenant, "bill", &[("startMonth", compact(m2)), ("endMonth", compact(m2)), ("username", "later001".to_owned())]).await;
    assert_eq!(reply["info"]["list"][0]["billData"], json!([{"date": dashed(m2), "totalMoney": 0.0, "consumeOrders": []}]), "{reply}");
    h.assert_ledger_sound().await;
}

/// Late usage re-rates a closed month under a cheaper tariff version dated
/// back into it: the next bill shows a 返账 line (spec 000's 6 邮件返账, a
/// negative amount), a product without a 返账 code a negative 补扣, and the
/// close refunds what real-time charges took beyond the bills.
async fn late_usage_that_lowers_a_closed_month_is_refunded(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Late Refunds").await;
    h.deposit(&tenant, "5000.00").await;
    let token = tenant.api_token.as_str();
    account(&h, token, "mailer01", "sendcloud").await;
    fund(&h, token, "mailer01", "3000.00").await;
    let fax = json!({"code": "fax_page", "name": "传真费用", "unit": "页", "order_type": 900});
    let (status, body) = h.post_json("/v1/products", token, &fax).await;
    assert_eq!(status, 201, "{body}");
    // Spec 000's 补扣 example: 1,399.00 for the first 200,000 e-mails, then 5.00 per started 1,000.
    let email = |flat: &str| json!({"model": "graduated", "tiers": [{"min": "0", "max": "200000", "unit": "0", "price": flat}, {"min": "200000", "unit": "1000", "price": "5.00"}]});
    let pages = |flat: &str| json!({"model": "graduated", "tiers": [{"min": "0", "max": "100", "unit": "0", "price": flat}, {"min": "100", "unit": "1", "price": "0.10"}]});
    tariff(&h, token, "email", email("1399.00")).await;
    tariff(&h, token, "fax_page", pages("5.00")).await;

    let (m1, m2) = (month_start(2), month_start(1));
    let events = json!([
        {"id": "m1-email", "account": "mailer01", "product": "email", "quantity": 290466, "occurred_at": at(m1, 3, 10)},
        {"id": "m1-fax", "account": "mailer01", "product": "fax_page", "quantity": 100, "occurred_at": at(m1, 4, 10)},
    ]);
    assert_eq!(usage(&h, token, events).await["accepted"], 2);
    let report = close(&h, token, &dashed(m1)).await;
    assert_eq!((close_amount(&report["months"][0], "CNY", "billed"), close_amount(&report["months"][0], "CNY", "settled")), ("1859.00".to_owned(), "0.00".to_owned()), "{report}");

    // Cheaper versions dated back into the closed month, then late usage for it.
    tariff_from(&h, token, "email", email("1299.00"), &at(m1, 1, 0)).await;
    tariff_from(&h, token, "fax_page", pages("4.00"), &at(m1, 1, 0)).await;
    let late = json!([
        {"id": "late-email", "account": "mailer01", "product": "email", "quantity": 5486, "occurred_at": at(m1, 25, 1)},
        {"id": "late-fax", "account": "mailer01", "product": "fax_page", "quantity": 1, "occurred_at": at(m1, 25, 2)},
    ]);
    let answer = usage(&h, token, late).await;
    let charges: Vec<_> = answer["results"].as_array().unwrap().iter().map(|r| r["charge"].as_str().unwrap().to_owned()).collect();
    assert_eq!(charges, ["25.00", "0.10"], "marginal prices under the versions now in force: {answer}");

    // 295,952 e-mails now cost 1,299.00 + 96 × 5.00 = 1,779.00, billed 1,854.00 before: −75.00.
    // 101 pages cost 4.00 + 0.10 = 4.10, billed 5.00 before: −0.90 under 人工补扣 (no 返账 code).
    let report = close(&h, token, &dashed(m2)).await;
    let month = &report["months"][0];
    assert_eq!((close_amount(month, "CNY", "billed"), close_amount(month, "CNY", "settled")), ("-75.90".to_owned(), "-101.00".to_owned()), "{report}");
    let (_, bills) = h.get_json(&format!("/v1/bills?from={}&username=mailer01", dashed(m2)), token).await;
    assert_bills_add_up(&bills);
    let bill = &bills["items"][0];
    let lines: Vec<_> = bill["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["kind"].as_str().unwrap(), l["order_type"].as_i64().unwrap(), l["description"].as_str().unwrap(), l["quantity"].as_str().unwrap(), l["money"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, [("supplement", 6, "上月邮件返账", "5486", "-75.00"), ("supplement", 15, "上月人工补扣", "1", "-0.90")], "{bill}");
    assert_eq!(bill["total"], "-75.90", "{bill}");
    // Billed 1,779.00 + 4.10, charged 1,879.00 + 5.10: the refunds take the lines' codes.
    let settlements: Vec<_> = bill["settlements"].as_array().unwrap().iter().map(|s| (s["product"].as_str().unwrap(), s["order_type"].as_i64().unwrap(), s["amount"].as_str().unwrap())).collect();
    assert_eq!(settlements, [("email", 6, "-100.00"), ("fax_page", 15, "-1.00")], "{bill}");
    assert_eq!(primary_cents(&h, token, "mailer01").await, 300_000 - 185_400 - 500 - 2_500 - 10 + 10_000 + 100);

    // SendCloud shows the 返账 line as the spec's table has it: orderType 6, a negative amount.
    let params = [("startMonth", compact(m2)), ("endMonth", compact(m2)), ("username", "mailer01".to_owned())];
    let reply = sendcloud_call(&h, &tenant, "bill", &params).await;
    assert_code(&reply, 200, "请求成功");
    let bill = &reply["info"]["list"][0]["billData"][0];
    assert_eq!(bill["totalMoney"].to_string(), "-75.9", "{reply}");
    assert_eq!(floats(bill["consumeOrders"][0].clone()), floats(json!({"orderType": 6, "desc": "上月邮件返账", "remark": 5486, "component": "封", "orderMoney": -75})));
    let body = signed_form(&tenant, &[("startMonth", &compact(m2)), ("endMonth", &compact(m2)), ("username", "mailer01")], true);
    let response = h.http.post(h.url("/api/subAccount/billDetail")).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await.unwrap();
    let raw = response.text().await.unwrap();
    assert!(raw.contains(r#""orderMoney":-75.00"#) && raw.contains(r#""lastMonthMoney":1854.00"#), "{raw}");
    let reply: Value = serde_json::from_str(&raw).unwrap();
    let refund = &reply["info"]["list"][0]["billDetail"][0];
    assert_eq!((refund["orderType"].as_i64(), refund["info"]["lastMonthAmount"].as_i64()), (Some(6), Some(290466)), "{raw}");
    let tiers: Vec<_> = refund["info"]["list"].as_array().unwrap().iter().map(|t| (t["count"].as_i64().unwrap(), t["money"].as_f64().unwrap())).collect();
    assert_eq!(tiers, [(200000, 1299.0), (95952, 480.0)], "the whole month, re-rated: {raw}");
    h.assert_ledger_sound().await;
}
