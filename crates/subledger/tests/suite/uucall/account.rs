//! Tag `account`: recharges, bills, rates.

use reqwest::Method;
use serde_json::json;

use super::*;
use crate::on_both_backends;

on_both_backends!(cashlog_lists_the_enterprise_recharges, baserate_lists_the_tariffs_in_force);

async fn deposit(h: &Harness, e: &Enterprise, key: &str, body: Value) {
    let (status, answer) = h.post_json_keyed(&format!("/v1/tenants/{}/deposits", e.tenant.tenant_id), ADMIN_TOKEN, key, &body).await;
    assert_eq!(status, 201, "{answer}");
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn cashlog_lists_the_enterprise_recharges(backend: Backend) {
    let h = Harness::start(backend).await;
    let alpha = Enterprise::create(&h, "UU Alpha").await;
    let beta = Enterprise::create(&h, "UU Beta").await;
    create_account(&h, &alpha, "agent001").await;
    let before = now_ms();
    deposit(&h, &alpha, "dep-1", json!({"amount": "100.00", "note": "首充"})).await;
    deposit(&h, &alpha, "dep-2", json!({"amount": "20.05", "wallet": "promo"})).await;
    // Not the enterprise's: an account's own recharge, another currency, another enterprise.
    deposit(&h, &alpha, "dep-3", json!({"amount": "5.00", "username": "agent001"})).await;
    deposit(&h, &alpha, "dep-4", json!({"amount": "3.00", "currency": "USD"})).await;
    deposit(&h, &beta, "dep-5", json!({"amount": "1.00"})).await;
    let after = now_ms();

    let answer = ok(get(&h, &alpha, &format!("/account/cashlog?uid={}", alpha.uid)).await);
    assert_eq!(answer.total, Some(2), "{}", answer.raw);
    let rows = answer.body.as_array().expect("an array of CashLog");
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_keys(row, &["id", "account_time", "money", "type", "note", "serial_number"]);
        let at = row["account_time"].as_i64().unwrap();
        assert!((before - 1..=after + 1).contains(&at), "{row}: epoch milliseconds");
    }
    // Newest first; money in fen; type 2 is the promo wallet.
    assert_eq!((&rows[0]["money"], &rows[0]["type"], &rows[0]["note"], &rows[0]["serial_number"]), (&json!(2005), &json!(2), &json!(null), &json!("dep-2")));
    assert_eq!((&rows[1]["money"], &rows[1]["type"], &rows[1]["note"], &rows[1]["serial_number"]), (&json!(10000), &json!(1), &json!("首充"), &json!("dep-1")));
    assert!(rows[0]["id"].as_i64().unwrap() > rows[1]["id"].as_i64().unwrap());
    assert!(answer.raw.contains(r#""serial_number":"dep-1""#), "{}", answer.raw);

    // Pages are 1-based; the body names the model only, the total is in the header.
    let second = ok(get(&h, &alpha, &format!("/account/cashlog?uid={}&page=2&pageSize=1", alpha.uid)).await);
    assert_eq!((second.total, second.body.as_array().unwrap().len()), (Some(2), 1));
    assert_eq!(second.body[0]["serial_number"], "dep-1");
    let beyond = ok(get(&h, &alpha, &format!("/account/cashlog?uid={}&page=3&pageSize=1", alpha.uid)).await);
    assert_eq!((beyond.total, beyond.raw.as_str()), (Some(2), "[]"));
    let theirs = ok(get(&h, &beta, &format!("/account/cashlog?uid={}", beta.uid)).await);
    assert_eq!((theirs.total, theirs.body[0]["money"].clone()), (Some(1), json!(100)));

    // Every status the operation answers.
    let path = format!("/account/cashlog?uid={}", alpha.uid);
    assert_auth_and_method(&h, Method::GET, &path, Method::POST).await;
    refused(&get(&h, &alpha, &format!("/account/cashlog?uid={}", beta.uid)).await, 403);
    refused(&get(&h, &beta, &path).await, 403);
    invalid(&get(&h, &alpha, "/account/cashlog").await, "uid");
    invalid(&get(&h, &alpha, "/account/cashlog?uid=abc").await, "uid");
    for (query, field) in [("pageSize=201", "pageSize"), ("pageSize=0", "pageSize"), ("page=0", "page"), ("page=x", "page")] {
        invalid(&get(&h, &alpha, &format!("{path}&{query}")).await, field);
    }
    invalid(&get(&h, &alpha, &format!("{path}&x=%FF")).await, "query");
}

async fn set_tariff(h: &Harness, e: &Enterprise, body: Value) -> i64 {
    let (status, answer) = h.post_json("/v1/tariffs", e.token(), &body).await;
    assert_eq!(status, 201, "{body}: {answer}");
    answer["tariff_id"].as_i64().unwrap_or_else(|| panic!("a tariff id: {answer}"))
}

async fn baserate_lists_the_tariffs_in_force(backend: Backend) {
    let h = Harness::start(backend).await;
    let alpha = Enterprise::create(&h, "UU Rates").await;
    let beta = Enterprise::create(&h, "UU Other").await;
    create_account(&h, &alpha, "agent001").await;
    let path = format!("/account/{}/baserate", alpha.uid);
    assert_eq!(ok(get(&h, &alpha, &path).await).raw, "[]");

    let per_unit =
        |product: &str, price: &str, increment: &str, from: &str| json!({"product": product, "model": {"model": "per_unit", "price": price, "increment": increment}, "effective_from": from});
    set_tariff(&h, &alpha, per_unit("pstn_one_way", "0.10", "60", "2020-01-01T00:00:00Z")).await;
    let call_rule = set_tariff(&h, &alpha, per_unit("pstn_one_way", "0.02", "10", "2021-01-01T00:00:00Z")).await;
    let sms_rule = set_tariff(&h, &alpha, per_unit("sms", "0.05", "1", "2020-01-01T00:00:00Z")).await;
    // Not the enterprise's standard: a sub-user's override, a future price, another enterprise's.
    let mut override_tariff = per_unit("email", "0.01", "1", "2020-01-01T00:00:00Z");
    override_tariff["username"] = json!("agent001");
    set_tariff(&h, &alpha, override_tariff).await;
    set_tariff(&h, &alpha, per_unit("mms", "0.2", "1", "2099-01-01T00:00:00Z")).await;
    set_tariff(&h, &beta, per_unit("email", "0.01", "1", "2020-01-01T00:00:00Z")).await;

    let answer = ok(get(&h, &alpha, &format!("{path}?uid={}", alpha.uid)).await);
    let rows = answer.body.as_array().expect("an array of RuleRate");
    for row in rows {
        assert_keys(row, &["name", "ruleId", "chargeUnit"]);
    }
    assert_eq!(
        answer.body,
        json!([
            {"name": "短信费用", "ruleId": sms_rule, "chargeUnit": "0.05元/条"},
            {"name": "(国内)(运营商)单向外呼", "ruleId": call_rule, "chargeUnit": "0.12元/分钟"},
        ])
    );
    // The same price the telephony dialect lists.
    let (status, charges) = h.get_json("/balance/charges?accountId=agent001", alpha.token()).await;
    assert_eq!(status, 200, "{charges}");
    assert_eq!(charges["data"]["pstn"][0]["price"], "0.12");

    assert_auth_and_method(&h, Method::GET, &path, Method::DELETE).await;
    refused(&get(&h, &alpha, &format!("/account/{}/baserate", beta.uid)).await, 403);
    refused(&get(&h, &alpha, &format!("{path}?uid={}", beta.uid)).await, 403);
    refused(&get(&h, &beta, &path).await, 403);
    invalid(&get(&h, &alpha, "/account/abc/baserate").await, "uid");
    invalid(&get(&h, &alpha, &format!("{path}?uid=1.5")).await, "uid");
}
