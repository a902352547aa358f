//! Amounts at the limits: an event whose cost cannot fit is refused alone
//! (`amount_too_large`) and moves no money, and a month that the tariff in
//! force at its end prices past the month's limit fails its close cleanly,
//! naming the account and product, and writes nothing.

use serde_json::{Value, json};

use crate::billing::{account, at, close, dashed, fund, month_start, outcome, per_unit, primary_cents, sendcloud_call, tariff, tariff_from, usage};
use crate::on_both_backends;
use crate::support::*;

on_both_backends!(the_largest_event_is_refused_alone, a_month_priced_past_its_limit_fails_its_close);

/// The largest price a tariff takes: 10^6 yuan per unit.
const PRICE_MAX: &str = "1000000";
/// The largest quantity an event carries: 10^12 units.
const QUANTITY_MAX: &str = "1000000000000";

async fn rows(h: &Harness, table: &str) -> i64 {
    sql_i64(&h.db, &format!("SELECT COUNT(*) FROM {table}")).await
}

async fn the_largest_event_is_refused_alone(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Largest Event").await;
    h.deposit(&tenant, "1000.00").await;
    let token = tenant.api_token.as_str();
    account(&h, token, "prepaid1", "sendcloud").await;
    account(&h, token, "postpd01", "sendcloud").await;
    fund(&h, token, "prepaid1", "100.00").await;
    let response = h.http.put(h.url("/v1/accounts/postpd01/billing")).bearer_auth(token).json(&json!({"mode": "postpaid"})).send().await.unwrap();
    assert_eq!(response.status(), 204);
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    tariff(&h, token, "mms", per_unit(PRICE_MAX, "1")).await;
    // Priced on the month's total: the largest quantity at the largest price per block of one.
    tariff(&h, token, "email", json!({"model": "graduated", "tiers": [{"min": "0", "max": null, "unit": "1", "price": PRICE_MAX}]})).await;

    let batch = json!([
        {"id": "small-1", "account": "prepaid1", "product": "sms", "quantity": 1},
        {"id": "huge-prepaid", "account": "prepaid1", "product": "mms", "quantity": QUANTITY_MAX},
        {"id": "huge-postpaid", "account": "postpd01", "product": "mms", "quantity": QUANTITY_MAX},
        {"id": "huge-monthly", "account": "postpd01", "product": "email", "quantity": QUANTITY_MAX},
        {"id": "small-2", "account": "prepaid1", "product": "sms", "quantity": 2},
    ]);
    let answer = usage(&h, token, batch.clone()).await;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(outcome(&results[0]), ("accepted", None, Some("0.05")));
    for huge in &results[1..4] {
        assert_eq!(outcome(huge), ("rejected", Some("amount_too_large"), None), "{huge}");
    }
    assert_eq!(outcome(&results[4]), ("accepted", None, Some("0.10")));
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64()), (Some(2), Some(3)), "{answer}");

    // No money moved for the refused events, and nothing of them was counted.
    assert_eq!(primary_cents(&h, token, "prepaid1").await, 10_000 - 15);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM usage_monthly WHERE product_code IN ('mms', 'email')").await, 0);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM usage_events WHERE status = 'rejected' AND rejection = 'amount_too_large'").await, 3);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM transfers WHERE kind = 'charge'").await, 1, "one charge for the batch's two small events");
    // The refusal is final for its id, as every rejection is.
    let replay = usage(&h, token, batch).await;
    assert_eq!(replay["duplicates"], 5, "{replay}");
    assert_eq!(replay["results"][1]["reason"], "amount_too_large", "{replay}");
    h.assert_ledger_sound().await;

    // Bills and the close still work.
    let current = dashed(month_start(0));
    let (status, bills) = h.get_json(&format!("/v1/bills?from={current}&month_to_date=true"), token).await;
    assert_eq!(status, 200, "{bills}");
    let prepaid = bills["items"].as_array().unwrap().iter().find(|b| b["username"] == "prepaid1").unwrap();
    assert_eq!(prepaid["total"], "0.15", "{prepaid}");
    let m1 = month_start(1);
    assert_eq!(usage(&h, token, json!([{"id": "last-month", "account": "prepaid1", "product": "sms", "quantity": 1, "occurred_at": at(m1, 2, 12)}])).await["accepted"], 1);
    let report = close(&h, token, &dashed(m1)).await;
    assert_eq!((report["months"][0]["bills"].as_u64(), close_amount(&report["months"][0], "CNY", "billed")), (Some(1), "0.05".to_owned()), "{report}");
    h.assert_ledger_sound().await;
}

async fn a_month_priced_past_its_limit_fails_its_close(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Unbillable Month").await;
    h.deposit(&tenant, "1000.00").await;
    let token = tenant.api_token.as_str();
    account(&h, token, "mailer01", "sendcloud").await;
    account(&h, token, "faxer001", "ifaxin").await;
    fund(&h, token, "mailer01", "100.00").await;
    fund(&h, token, "faxer001", "100.00").await;
    let graduated = |price: &str| json!({"model": "graduated", "tiers": [{"min": "0", "max": null, "unit": "1", "price": price}]});
    tariff(&h, token, "email", graduated("0.0001")).await;
    let m1 = month_start(1);
    // 200,000 e-mails at 0.0001: 20.00, charged in real time.
    assert_eq!(usage(&h, token, json!([{"id": "m1-email", "account": "mailer01", "product": "email", "quantity": 200000, "occurred_at": at(m1, 3, 12)}])).await["accepted"], 1);
    assert_eq!(primary_cents(&h, token, "mailer01").await, 10_000 - 2_000);

    // From the 20th the price is the largest there is: at the end of the month
    // the 200,000 e-mails cost 2 × 10^11, twice what one month may.
    tariff_from(&h, token, "email", graduated(PRICE_MAX), &at(m1, 20, 0)).await;
    let transfers_before = rows(&h, "transfers").await;
    let (status, body) = h.post_json("/v1/bills/close", token, &json!({ "month": dashed(m1) })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("amount_too_large")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("mailer01") && message.contains("email") && message.contains(&dashed(m1)), "the error names the account, product and month: {message}");
    for table in ["bills", "bill_lines", "settlements", "month_closes"] {
        assert_eq!(rows(&h, table).await, 0, "{table} after a refused close");
    }
    assert_eq!(rows(&h, "transfers").await, transfers_before, "no settlement moved money");
    assert_eq!(primary_cents(&h, token, "mailer01").await, 10_000 - 2_000);

    // A later version, still within the month, prices it again: the close goes through.
    tariff_from(&h, token, "email", graduated("0.0002"), &at(m1, 25, 0)).await;
    let report = close(&h, token, &dashed(m1)).await;
    let closed = &report["months"][0];
    assert_eq!(
        (close_amount(closed, "CNY", "billed"), close_amount(closed, "CNY", "settled")),
        ("40.00".to_owned(), "20.00".to_owned()),
        "re-rated at the month's end, the difference settled: {report}"
    );
    assert_eq!(primary_cents(&h, token, "mailer01").await, 10_000 - 4_000);
    h.assert_ledger_sound().await;

    // The month so far is priced the same way: a version in force at the end
    // of this month that prices it past the limit makes its bill unanswerable.
    let current = month_start(0);
    assert_eq!(usage(&h, token, json!([{"id": "now-fax", "account": "faxer001", "product": "email", "quantity": 200000}])).await["accepted"], 1);
    let month_end = current.last_of_month().at(23, 0, 0, 0).to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()).unwrap().timestamp().to_string();
    tariff_from(&h, token, "email", graduated(PRICE_MAX), &month_end).await;
    let (status, body) = h.get_json(&format!("/v1/bills?from={}&month_to_date=true", dashed(current)), token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("amount_too_large")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("faxer001"), "{body}");
    // SendCloud shows iFaxin accounts the month so far: its bad-request code.
    let month = format!("{:04}{:02}", current.year(), current.month());
    let reply: Value = sendcloud_call(&h, &tenant, "bill", &[("startMonth", month.clone()), ("endMonth", month)]).await;
    assert_code(&reply, 400, "请求失败");
}
