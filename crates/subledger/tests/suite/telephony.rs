//! The telephony dialect (spec 002): `/balance/*` with the tenant's bearer
//! token; tariffs, balances, consumption, monthly wallet figures, statements
//! and trends, and the envelope of every error.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(charges_list_priced_items_by_group, balances_statements_and_trends, errors_use_the_envelope);

const ENDPOINTS: [&str; 6] = [
    "/balance/charges?accountId={}",
    "/balance/getAccountAmount/{}",
    "/balance/getConsumerOverview/{}",
    "/balance/getAccountInfo/{}",
    "/balance/getConsumerInfo/{}/2024-03",
    "/balance/getConsumptionTrend/{}",
];

fn endpoint(template: &str, account: &str) -> String {
    template.replace("{}", account)
}

/// GET with an optional bearer token: (HTTP status, parsed body, raw body).
async fn get(h: &Harness, path: &str, token: Option<&str>) -> (u16, Value, String) {
    let mut request = h.http.get(h.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET request");
    let status = response.status().as_u16();
    let raw = response.text().await.expect("a body");
    let body = serde_json::from_str(&raw).unwrap_or_else(|_| panic!("{path}: not JSON: {raw}"));
    (status, body, raw)
}

/// A successful call: HTTP 200, code 200, 调用成功; returns (data, raw body).
#[track_caller]
fn ok(answer: (u16, Value, String)) -> (Value, String) {
    let (status, body, raw) = answer;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(body["code"], 200, "{raw}");
    assert_eq!(body["msg"], "调用成功", "{raw}");
    assert!(raw.starts_with(r#"{"code":200,"msg":"调用成功","data":"#), "{raw}");
    (body["data"].clone(), raw)
}

/// A failure: HTTP status = code, a message, `data: null`, nothing else.
#[track_caller]
fn failed(answer: (u16, Value, String), code: u16) -> String {
    let (status, body, raw) = answer;
    assert_eq!(status, code, "{raw}");
    assert_eq!(body["code"], code, "{raw}");
    assert!(body["data"].is_null() && body.as_object().is_some_and(|o| o.contains_key("data") && o.len() == 3), "{raw}");
    let msg = body["msg"].as_str().expect("a msg").to_owned();
    assert!(!msg.is_empty() && msg != "调用成功", "{raw}");
    msg
}

/// Cents as the dialect writes yuan: `0.24`, `146.55`, `0.00`.
fn yuan(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

async fn set_tariff(h: &Harness, token: &str, body: Value) {
    let (status, answer) = h.post_json("/v1/tariffs", token, &body).await;
    assert_eq!(status, 201, "{body}: {answer}");
}

fn per_unit(product: &str, price: &str, increment: &str) -> Value {
    json!({"product": product, "model": {"model": "per_unit", "price": price, "increment": increment}, "effective_from": "2020-01-01T00:00:00Z"})
}

async fn transfer(h: &Harness, token: &str, key: &str, body: Value) {
    let response = h.http.post(h.url("/v1/transfers")).bearer_auth(token).header("Idempotency-Key", key).json(&body).send().await.unwrap();
    let (status, answer) = status_and_json(response).await;
    assert_eq!(status, 201, "{body}: {answer}");
}

/// Posts usage events and returns each one's result.
async fn usage(h: &Harness, token: &str, events: Value) -> Vec<Value> {
    let (status, answer) = h.post_json("/v1/usage", token, &json!({ "events": events })).await;
    assert_eq!(status, 200, "{answer}");
    answer["results"].as_array().unwrap().clone()
}

async fn charges_list_priced_items_by_group(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Telephony Tariffs").await;
    let token = tenant.api_token.as_str();
    for username in ["alice001", "bob00001"] {
        let (status, body) = h.post_json("/v1/accounts", token, &json!({ "username": username })).await;
        assert_eq!(status, 201, "{body}");
    }

    // No tariff yet: the three groups, empty, in the spec's order.
    let (_, raw) = ok(get(&h, "/balance/charges?accountId=alice001", Some(token)).await);
    assert_eq!(raw, r#"{"code":200,"msg":"调用成功","data":{"pstn":[],"voip":[],"messages":[]}}"#);

    set_tariff(&h, token, per_unit("pstn_one_way", "0.12", "60")).await;
    set_tariff(&h, token, json!({"product": "pstn_one_way", "username": "alice001", "model": {"model": "per_unit", "price": "0.10", "increment": "60"}, "effective_from": "2021-01-01T00:00:00Z"}))
        .await;
    // Not in force yet: left out, and usage of it is refused.
    set_tariff(&h, token, json!({"product": "pstn_one_way_hidden", "model": {"model": "per_unit", "price": "0.2", "increment": "60"}, "effective_from": "2099-01-01T00:00:00Z"})).await;
    // Six-second billing, shown per minute.
    set_tariff(&h, token, per_unit("pstn_two_way_hidden", "0.012", "6")).await;
    set_tariff(&h, token, per_unit("voip", "0", "60")).await;
    set_tariff(&h, token, per_unit("sms", "0.08", "1")).await;
    set_tariff(&h, token, json!({"product": "sms", "model": {"model": "per_unit", "price": "0.050", "increment": "1"}, "effective_from": "2021-06-01T00:00:00Z"})).await;
    // No single price per message: left out.
    set_tariff(&h, token, json!({"product": "voice_code_shown", "model": {"model": "graduated", "tiers": [{"min": "0", "unit": "1", "price": "0.1"}]}, "effective_from": "2020-01-01T00:00:00Z"}))
        .await;

    let item = |name: &str, pay_type: &str, price: &str, unit: &str| json!({"name": name, "payType": pay_type, "price": price, "unit": unit});
    let expected = |one_way_price: &str| {
        json!({
            "pstn": [
                item("(国内)(运营商)单向外呼", "时长", one_way_price, "元/分钟"),
                item("(国内)(运营商)双向外呼（隐号）", "时长", "0.12", "元/分钟"),
            ],
            "voip": [item("互联网语音（IP呼入，PSTN呼出）", "时长", "0", "元/分钟")],
            "messages": [item("（国内）短信（下行）", "数量", "0.05", "元/条")],
        })
    };
    let (data, raw) = ok(get(&h, "/balance/charges?accountId=alice001", Some(token)).await);
    assert_eq!(data, expected("0.1"), "alice has her own price for one-way calls");
    let (pstn, voip, messages) = (raw.find(r#""pstn""#).unwrap(), raw.find(r#""voip""#).unwrap(), raw.find(r#""messages""#).unwrap());
    assert!(pstn < voip && voip < messages, "{raw}");
    let (data, _) = ok(get(&h, "/balance/charges?accountId=bob00001&other=ignored", Some(token)).await);
    assert_eq!(data, expected("0.12"), "bob pays the tenant's default");

    // An item that is not listed cannot be used.
    let results = usage(
        &h,
        token,
        json!([{"id": "h1", "account": "alice001", "product": "pstn_one_way_hidden", "quantity": 60}, {"id": "h2", "account": "alice001", "product": "pstn_two_way", "quantity": 60}]),
    )
    .await;
    for result in results {
        assert_eq!((result["status"].as_str(), result["reason"].as_str()), (Some("rejected"), Some("no_tariff")), "{result}");
    }
}

/// An allocation of `amount_minor` to the account's primary wallet, dated
/// `at_us` and written straight into the ledger tables exactly as the ledger
/// writes one (the API cannot backdate): the account's history before this month.
async fn backdated_allocation(h: &Harness, tenant: &Tenant, username: &str, amount_minor: i64, at_us: i64) {
    let tenant_id = sql_i64(&h.db, &format!("SELECT id FROM tenants WHERE public_id = '{}'", tenant.tenant_id)).await;
    let from = sql_i64(&h.db, &format!("SELECT id FROM wallets WHERE tenant_id = {tenant_id} AND account_id IS NULL AND purpose = 'primary' AND currency = 'CNY'")).await;
    let to = sql_i64(
        &h.db,
        &format!("SELECT w.id FROM wallets w JOIN accounts a ON a.id = w.account_id WHERE a.tenant_id = {tenant_id} AND a.username = '{username}' AND w.purpose = 'primary' AND w.currency = 'CNY'"),
    )
    .await;
    assert_eq!(sql_i64(&h.db, &format!("SELECT entry_seq FROM wallets WHERE id = {to}")).await, 0, "the account's first entry");
    let from_seq = sql_i64(&h.db, &format!("SELECT entry_seq FROM wallets WHERE id = {from}")).await + 1;
    let from_balance = sql_i64(&h.db, &format!("SELECT balance_minor FROM wallets WHERE id = {from}")).await - amount_minor;
    // Far above the ids either backend hands out in a test.
    let id = 1_000_000_000;
    sql(
        &h.db,
        &format!(
            "INSERT INTO transfers (id, tenant_id, idempotency_key, fingerprint, status, rejection, kind, debit_wallet_id, credit_wallet_id, amount_minor, currency, memo, created_at_us, debit_seq, credit_seq)
             VALUES ({id}, {tenant_id}, NULL, 'allocation:{from}>{to}:{amount_minor}:CNY', 'posted', NULL, 'allocation', {from}, {to}, {amount_minor}, 'CNY', NULL, {at_us}, {from_seq}, 1);
             INSERT INTO entries (wallet_id, seq, tenant_id, transfer_id, amount_minor, balance_after_minor, created_at_us)
             VALUES ({from}, {from_seq}, {tenant_id}, {id}, -{amount_minor}, {from_balance}, {at_us}), ({to}, 1, {tenant_id}, {id}, {amount_minor}, {amount_minor}, {at_us});
             UPDATE wallets SET balance_minor = {from_balance}, entry_seq = {from_seq} WHERE id = {from};
             UPDATE wallets SET balance_minor = {amount_minor}, entry_seq = 1 WHERE id = {to};"
        ),
    )
    .await;
}

fn month_of(date: Date) -> String {
    format!("{:04}-{:02}", date.year(), date.month())
}

async fn balances_statements_and_trends(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Telephony Statements").await;
    let token = tenant.api_token.as_str();
    h.deposit(&tenant, "1000.00").await;
    for username in ["alice001", "bob00001"] {
        let (status, body) = h.post_json("/v1/accounts", token, &json!({ "username": username })).await;
        assert_eq!(status, 201, "{body}");
    }
    // Days and months as the tenant (Asia/Shanghai, the default) cuts them.
    let zone = TimeZone::get("Asia/Shanghai").unwrap();
    let now = Timestamp::now();
    let day_of = |at: Timestamp| at.to_zoned(zone.clone()).date();
    let today = day_of(now);
    let yesterday_at = now - 24.hours();
    let yesterday = day_of(yesterday_at);
    let old_at = now - (35 * 24).hours();
    let (this_month, old_month) = (month_of(today), month_of(day_of(old_at)));
    let yesterday_in_month = month_of(yesterday) == this_month;

    // Last month alice received 50.00: her primary wallet opens this month at 50.00.
    backdated_allocation(&h, &tenant, "alice001", 5_000, (now - (40 * 24).hours()).as_microsecond()).await;

    set_tariff(&h, token, per_unit("pstn_one_way", "0.12", "60")).await;
    set_tariff(&h, token, per_unit("pstn_two_way", "0.12", "60")).await;
    set_tariff(&h, token, per_unit("sms", "0.05", "1")).await;
    transfer(&h, token, "fund-primary", json!({"from": {}, "to": {"username": "alice001"}, "amount": "100.00"})).await;
    transfer(&h, token, "fund-promo", json!({"from": {}, "to": {"username": "alice001", "wallet": "promo"}, "amount": "0.30"})).await;

    // Today: a 61-second call (2 started minutes × 0.12 = 0.24) and three
    // messages (0.15): 0.39, paid with the promo money first (0.30), then 0.09.
    let at = |t: Timestamp| t.to_string();
    let today_events = json!([
        {"id": "c1", "account": "alice001", "product": "pstn_one_way", "quantity": 61, "occurred_at": at(now)},
        {"id": "s1", "account": "alice001", "product": "sms", "quantity": 1, "occurred_at": at(now)},
        {"id": "s2", "account": "alice001", "product": "sms", "quantity": 1, "occurred_at": at(now)},
        {"id": "s3", "account": "alice001", "product": "sms", "quantity": 1, "occurred_at": at(now)},
    ]);
    let results = usage(&h, token, today_events).await;
    assert!(results.iter().all(|r| r["status"] == "accepted"), "{results:?}");
    assert_eq!(results[0]["charge"], "0.24");
    // Yesterday: a two-minute call (0.24); 35 days ago: a 30-second two-way call (0.12). From primary.
    let results = usage(
        &h,
        token,
        json!([
            {"id": "y1", "account": "alice001", "product": "pstn_one_way", "quantity": 120, "occurred_at": at(yesterday_at)},
            {"id": "o1", "account": "alice001", "product": "pstn_two_way", "quantity": 30, "occurred_at": at(old_at)},
        ]),
    )
    .await;
    assert!(results.iter().all(|r| r["status"] == "accepted"), "{results:?}");
    // Money leaving and moving: 1.00 back to the tenant, 2.00 from primary to promo.
    transfer(&h, token, "reclaim", json!({"from": {"username": "alice001"}, "to": {}, "amount": "1.00"})).await;
    transfer(&h, token, "to-promo", json!({"from": {"username": "alice001"}, "to": {"username": "alice001", "wallet": "promo"}, "amount": "2.00"})).await;
    // Bob is postpaid: his usage is consumption, charged only at month close.
    let response = h.http.put(h.url("/v1/accounts/bob00001/billing")).bearer_auth(token).json(&json!({"mode": "postpaid"})).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let results = usage(&h, token, json!([{"id": "b1", "account": "bob00001", "product": "sms", "quantity": 1, "occurred_at": at(now)}, {"id": "b2", "account": "bob00001", "product": "sms", "quantity": 1, "occurred_at": at(now)}])).await;
    assert!(results.iter().all(|r| r["status"] == "accepted" && r["charge"] == "0.00"), "{results:?}");

    // primary: 50.00 + 100.00 − 0.09 − 0.24 − 0.12 − 1.00 − 2.00 = 146.55; promo: 0.30 − 0.30 + 2.00 = 2.00.
    let (_, wallets) = h.get_json("/v1/wallets?username=alice001", token).await;
    let balance = |purpose: &str| wallets["items"].as_array().unwrap().iter().find(|w| w["purpose"] == purpose).unwrap()["balance"].clone();
    assert_eq!((balance("primary"), balance("promo")), (json!("146.55"), json!("2.00")), "{wallets}");

    // getAccountAmount: balances, yesterday's and this month's consumption.
    let month_cents = 39 + if yesterday_in_month { 24 } else { 0 };
    let (_, raw) = ok(get(&h, "/balance/getAccountAmount/alice001", Some(token)).await);
    assert_eq!(raw, format!(r#"{{"code":200,"msg":"调用成功","data":{{"primaryAmount":146.55,"deputeAmount":2.00,"consumptionYesterday":0.24,"consumptionMonth":{}}}}}"#, yuan(month_cents)));
    let (_, raw) = ok(get(&h, "/balance/getAccountAmount/bob00001", Some(token)).await);
    assert!(raw.ends_with(r#""data":{"primaryAmount":0.00,"deputeAmount":0.00,"consumptionYesterday":0.00,"consumptionMonth":0.10}}"#), "{raw}");

    // getConsumerOverview: the five categories, in the spec's order.
    let one_way = 24 + if yesterday_in_month { 24 } else { 0 };
    let (_, raw) = ok(get(&h, "/balance/getConsumerOverview/alice001", Some(token)).await);
    assert!(raw.ends_with(&format!(r#""data":{{"单项外呼":{},"互联网语音":0.00,"语音验证":0.00,"短信":0.15,"双项外呼":0.00}}}}"#, yuan(one_way))), "{raw}");

    // getAccountInfo: amount = opening + recharges, deduction = amount − balance.
    let (data, raw) = ok(get(&h, "/balance/getAccountInfo/alice001", Some(token)).await);
    assert!(
        raw.ends_with(r#""data":[{"name":"primary","amount":150.00,"deduction":3.45,"balance":146.55,"rechargeAmount":100.00},{"name":"depute","amount":2.30,"deduction":0.30,"balance":2.00,"rechargeAmount":2.30}]}"#),
        "{raw}"
    );
    for wallet in data.as_array().unwrap() {
        let cents = |key: &str| (wallet[key].as_f64().unwrap() * 100.0).round() as i64;
        assert_eq!(cents("amount") - cents("deduction"), cents("balance"), "{wallet}");
    }
    let (_, raw) = ok(get(&h, "/balance/getAccountInfo/bob00001", Some(token)).await);
    assert!(
        raw.ends_with(
            r#""data":[{"name":"primary","amount":0.00,"deduction":0.00,"balance":0.00,"rechargeAmount":0.00},{"name":"depute","amount":0.00,"deduction":0.00,"balance":0.00,"rechargeAmount":0.00}]}"#
        ),
        "{raw}"
    );

    // getConsumerInfo: every item of every group, with minutes or messages and money.
    let statement = |one_way: (i64, i64), two_way: (i64, i64), sms: (i64, i64)| {
        let line = |name: &str, pay_type: &str, (number, cents): (i64, i64)| format!(r#"{{"name":"{name}","payType":"{pay_type}","price":{},"number":{number}}}"#, yuan(cents));
        let zero = (0, 0);
        format!(
            r#""data":[{{"name":"PSTN语音","total":{},"items":[{},{},{},{}]}},{{"name":"VOIP服务","total":0.00,"items":[{}]}},{{"name":"短信、语音验证","total":{},"items":[{},{},{}]}}]}}"#,
            yuan(one_way.1 + two_way.1),
            line("(国内)(运营商)单向外呼", "时长", one_way),
            line("(国内)(运营商)单向外呼（隐号）", "时长", zero),
            line("(国内)(运营商)双向外呼", "时长", two_way),
            line("(国内)(运营商)双向外呼（隐号）", "时长", zero),
            line("互联网语音（IP呼入，PSTN呼出）", "时长", zero),
            yuan(sms.1),
            line("（国内）短信（下行）", "条数", sms),
            line("（标准）语音验证码（显号）", "条数", zero),
            line("（标准）语音验证码（隐号）", "条数", zero),
        )
    };
    let (_, raw) = ok(get(&h, &format!("/balance/getConsumerInfo/alice001/{this_month}"), Some(token)).await);
    let expected_one_way = if yesterday_in_month { (4, 48) } else { (2, 24) };
    assert!(raw.ends_with(&statement(expected_one_way, (0, 0), (3, 15))), "{raw}");
    let (_, compact) = ok(get(&h, &format!("/balance/getConsumerInfo/alice001/{}", this_month.replace('-', "")), Some(token)).await);
    assert_eq!(compact, raw, "yyyyMM names the same month");
    let (_, raw) = ok(get(&h, &format!("/balance/getConsumerInfo/alice001/{old_month}"), Some(token)).await);
    assert!(raw.ends_with(&statement((0, 0), (1, 12), (0, 0))), "{raw}");
    if !yesterday_in_month {
        let (_, raw) = ok(get(&h, &format!("/balance/getConsumerInfo/alice001/{}", month_of(yesterday)), Some(token)).await);
        assert!(raw.ends_with(&statement((2, 24), (0, 0), (0, 0))), "{raw}");
    }
    let (_, raw) = ok(get(&h, "/balance/getConsumerInfo/alice001/2020-01", Some(token)).await);
    assert!(raw.ends_with(&statement((0, 0), (0, 0), (0, 0))), "{raw}");

    // getConsumptionTrend: every day of the month through today, zeros included.
    let (data, raw) = ok(get(&h, "/balance/getConsumptionTrend/alice001", Some(token)).await);
    let days = data.as_array().unwrap();
    assert_eq!(days.len(), today.day() as usize, "{raw}");
    for (i, entry) in days.iter().enumerate() {
        let date = today.first_of_month().checked_add((i as i64).days()).unwrap();
        assert_eq!(entry["days"], date.to_string(), "{raw}");
        let cents = if date == today {
            39
        } else if date == yesterday {
            24
        } else {
            0
        };
        assert!(raw.contains(&format!(r#"{{"days":"{date}","amount":{}}}"#, yuan(cents))), "{date}: {raw}");
    }
    let (_, raw) = ok(get(&h, "/balance/getConsumptionTrend/bob00001", Some(token)).await);
    assert!(raw.ends_with(&format!(r#"{{"days":"{today}","amount":0.10}}]}}"#)), "{raw}");

    h.assert_ledger_sound().await;
}

async fn errors_use_the_envelope(backend: Backend) {
    let h = Harness::start(backend).await;
    let mine = h.create_tenant("Mine").await;
    let theirs = h.create_tenant("Theirs").await;
    let (status, body) = h.post_json("/v1/accounts", &mine.api_token, &json!({"username": "alice001"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = h.post_json("/v1/accounts", &theirs.api_token, &json!({"username": "carol001"})).await;
    assert_eq!(status, 201, "{body}");

    for template in ENDPOINTS {
        let path = endpoint(template, "alice001");
        ok(get(&h, &path, Some(&mine.api_token)).await);
        // No token, a wrong one, the admin token, another scheme: 401.
        failed(get(&h, &path, None).await, 401);
        failed(get(&h, &path, Some("slt_not_a_token")).await, 401);
        failed(get(&h, &path, Some(ADMIN_TOKEN)).await, 401);
        let response = h.http.get(h.url(&path)).header("Authorization", format!("Basic {}", mine.api_token)).send().await.unwrap();
        assert_eq!(response.status(), 401);
        // Unknown here, including another tenant's account: 404.
        assert_eq!(failed(get(&h, &endpoint(template, "nobody01"), Some(&mine.api_token)).await, 404), "账户不存在");
        assert_eq!(failed(get(&h, &endpoint(template, "carol001"), Some(&mine.api_token)).await, 404), "账户不存在");
        // Only GET.
        let response = h.http.post(h.url(&path)).bearer_auth(&mine.api_token).send().await.unwrap();
        let status = response.status().as_u16();
        let raw = response.text().await.unwrap();
        failed((status, serde_json::from_str(&raw).unwrap(), raw), 405);
    }
    // The other tenant sees its own account.
    ok(get(&h, "/balance/getAccountAmount/carol001", Some(&theirs.api_token)).await);

    for bad in ["2024-13", "202413", "2024-3", "24-03", "2024_03", "20240301", "abcdef", "1969-12"] {
        let msg = failed(get(&h, &format!("/balance/getConsumerInfo/alice001/{bad}"), Some(&mine.api_token)).await, 400);
        assert!(msg.contains("yyyy-MM"), "{bad}: {msg}");
    }
    for path in ["/balance/charges", "/balance/charges?accountId=", "/balance/charges?accountid=alice001"] {
        failed(get(&h, path, Some(&mine.api_token)).await, 400);
    }
    // Authentication comes first.
    failed(get(&h, "/balance/getConsumerInfo/alice001/2024-13", None).await, 401);
}
