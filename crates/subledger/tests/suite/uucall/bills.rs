//! Tag `account`: charge bills, basic and function bills by day, their
//! downloads, the billing account, monthly rates and time cards, checked
//! against a month of a tenant-funded seat and against the other views
//! (telephony statements, the ledger).

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use reqwest::Method;
use serde_json::json;

use super::*;
use crate::billing::{at, dashed, month_start, per_unit, tariff, usage};
use crate::on_both_backends;

on_both_backends!(a_seats_month_agrees_in_every_view, bill_operations_answer_every_status, rates_cards_and_the_billing_account_answer_every_status, a_charge_bill_file_streams_every_sub_user);

const NAME: &str = "UU 呼叫中心";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn recurring(price: &str) -> Value {
    json!({"model": "recurring", "price": price})
}

async fn product(h: &Harness, e: &Enterprise, code: &str, name: &str, kind: &str) {
    let body = json!({"code": code, "name": name, "unit": "个", "order_type": 70, "kind": kind});
    let (status, answer) = h.post_json("/v1/products", e.token(), &body).await;
    assert_eq!(status, 201, "{answer}");
}

async fn put_json(h: &Harness, path: &str, token: &str, body: &Value) -> (u16, Value) {
    status_and_json(h.http.put(h.url(path)).bearer_auth(token).json(body).send().await.unwrap()).await
}

async fn card(h: &Harness, e: &Enterprise, body: Value) -> i64 {
    let (status, answer) = h.post_json("/v1/time-cards", e.token(), &body).await;
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_i64().unwrap()
}

/// Epoch milliseconds of an RFC 3339 instant.
fn ms(instant: &str) -> i64 {
    instant.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// The `daily_symbol` of a day: `yyyyMMdd`.
fn symbol(day: Date) -> i64 {
    i64::from(day.year()) * 10_000 + i64::from(day.month()) * 100 + i64::from(day.day())
}

fn sum(rows: &Value, field: &str) -> i64 {
    rows.as_array().unwrap().iter().map(|r| r[field].as_i64().unwrap_or_else(|| panic!("{field} is a whole number: {r}"))).sum()
}

/// Yuan as the dialect writes them in JSON: `20.55`, `0.00`.
fn yuan(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A file download: (status, content type, `Content-Disposition`, bytes).
async fn download(h: &Harness, e: &Enterprise, path: &str) -> (u16, String, String, Vec<u8>) {
    let response = h.http.get(h.url(&format!("/rest{path}"))).bearer_auth(e.token()).send().await.unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    (response.status().as_u16(), content_type, disposition, response.bytes().await.unwrap().to_vec())
}

/// A JSON value as the file writes its cell: text, whole numbers, or yuan with two decimals.
fn cell_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(n) if n.is_i64() => n.to_string(),
        Value::Number(n) => format!("{:.2}", n.as_f64().unwrap()),
        other => panic!("no cell holds {other}"),
    }
}

/// Checks that a view's JSON rows and both of its files hold the same rows,
/// in the same order, under the model's field names.
async fn assert_files_match(h: &Harness, e: &Enterprise, file_path: &str, stem: &str, sheet: &str, rows: &Value, columns: &[&str]) {
    let expected: Vec<Vec<String>> = rows.as_array().unwrap().iter().map(|row| columns.iter().map(|c| cell_text(&row[*c])).collect()).collect();

    let (status, content_type, disposition, bytes) = download(h, e, &format!("{file_path}&format=csv")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert_eq!(disposition, format!("attachment; filename=\"{stem}.csv\""));
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), columns);
    let csv_rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    assert_eq!(csv_rows, expected, "{file_path}: the CSV holds the JSON view's rows");

    // XLSX is the default format.
    let (status, content_type, disposition, bytes) = download(h, e, file_path).await;
    assert_eq!((status, content_type.as_str()), (200, XLSX));
    assert_eq!(disposition, format!("attachment; filename=\"{stem}.xlsx\""));
    assert!(bytes.starts_with(b"PK\x03\x04"), "an XLSX file is a zip");
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).expect("a readable workbook");
    let range = book.worksheet_range(sheet).expect("the sheet");
    let cells: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(cells[0], columns.iter().map(|c| Data::String((*c).to_owned())).collect::<Vec<_>>());
    assert_eq!(cells.len() - 1, expected.len(), "{file_path}: one row per item");
    for (row, want) in cells[1..].iter().zip(&expected) {
        let got: Vec<String> = row
            .iter()
            .zip(want)
            .map(|(cell, want)| match cell {
                Data::String(text) => text.clone(),
                // Whole numbers and money are number cells; written as the CSV writes them.
                Data::Float(number) if want.contains('.') => format!("{number:.2}"),
                Data::Float(number) => format!("{number}"),
                Data::Int(number) => number.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(&got, want, "{file_path}: the XLSX holds the JSON view's rows");
    }
}

/// One month of a tenant-funded seat: calls covered by its own card, then
/// paid, then covered by the enterprise's shared card; SMS; the seat fee
/// from the 11th and a function fee all month; closed. Then the current
/// month so far. Every UUCall view, its file, the telephony statement and
/// the billing account agree to the cent, and the ledger holds.
async fn a_seats_month_agrees_in_every_view(backend: Backend) {
    let h = Harness::start(backend).await;
    let e = Enterprise::create(&h, NAME).await;
    let token = e.token();
    let uid_name = encode(NAME);
    h.deposit(&e.tenant, "1000.00").await;
    tariff(&h, token, "pstn_one_way", per_unit("0.10", "60")).await;
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    tariff(&h, token, "seat", recurring("30.00")).await;
    product(&h, &e, "recording", "通话录音", "function").await;
    tariff(&h, token, "recording", recurring("20.00")).await;
    product(&h, &e, "line_rent", "线路租用", "rental").await;
    tariff(&h, token, "line_rent", recurring("50.00")).await;

    let (last, this, next) = (month_start(1), month_start(0), month_start(-1));
    let (month, current) = (dashed(last), dashed(this));
    let day = |first: Date, n: i8| first.with().day(n).build().unwrap();
    // agent001 pays its own way at first: the seat fee from the 11th of last
    // month and the recording function all month, then it becomes a seat.
    create_account(&h, &e, "agent001").await;
    for (product, from) in [("seat", at(last, 11, 0)), ("recording", at(last, 1, 0))] {
        let (status, body) = h.post_json("/v1/accounts/agent001/subscriptions", token, &json!({"product": product, "from": from})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = put_json(&h, "/v1/accounts/agent001/funding", token, &json!({"funding": "tenant"})).await;
    assert_eq!(status, 200, "{body}");

    // Its own card (4 minutes, through the 25th of last month), the
    // enterprise's shared one (10 minutes from the 15th), one that starts
    // next month, and one cancelled.
    let own = card(&h, &e, json!({"name": "新人卡", "username": "agent001", "minutes": 4, "effective_at": at(last, 1, 0), "expires_on": day(last, 25).to_string(), "note": "入职赠送"})).await;
    let shared = card(&h, &e, json!({"name": "企业卡", "minutes": 10, "effective_at": at(last, 15, 0), "expires_at": at(next, 1, 0)})).await;
    let pending = card(&h, &e, json!({"name": "下月卡", "minutes": 30, "effective_at": at(next, 1, 0), "expires_at": at(month_start(-2), 1, 0)})).await;
    let cancelled = card(&h, &e, json!({"name": "作废卡", "minutes": 5, "expires_at": at(next, 1, 0)})).await;
    let (status, body) = h.post_json(&format!("/v1/time-cards/{cancelled}/cancel"), token, &json!({})).await;
    assert_eq!(status, 200, "{body}");

    let event = |id: &str, product: &str, quantity: i64, at: String| json!({"id": id, "account": "agent001", "product": product, "quantity": quantity, "occurred_at": at});
    let now = jiff::Timestamp::now().to_string();
    let answer = usage(
        &h,
        token,
        json!([
            event("c1", "pstn_one_way", 150, at(last, 10, 10)), // 3 min: own card 3
            event("s1", "sms", 2, at(last, 10, 11)),            // 0.10
            event("c2", "pstn_one_way", 245, at(last, 12, 10)), // 5 min: own card 1, shared not yet in effect: money 4 (0.40)
            event("s2", "sms", 1, at(last, 12, 11)),            // 0.05
            event("c3", "pstn_one_way", 120, at(last, 20, 10)), // 2 min: own card used up, shared 2
            event("c4", "pstn_one_way", 65, now.clone()),       // this month, 2 min: own card expired, shared 2
            event("s3", "sms", 1, now),                         // this month, 0.05
        ]),
    )
    .await;
    let got: Vec<(i64, i64)> = answer["results"].as_array().unwrap().iter().map(|r| (r["card_minutes"].as_i64().unwrap(), r["charge_minor"].as_i64().unwrap())).collect();
    assert_eq!(got, [(3, 0), (0, 10), (1, 40), (0, 5), (2, 0), (2, 0), (0, 5)], "card minutes before money: {answer}");
    // Ended, not closed yet: shown as its close would bill it.
    let unclosed = ok(get(&h, &e, &format!("/account/chargebill?uidName={uid_name}&time={month}")).await);
    let (status, body) = h.post_json("/v1/bills/close", token, &json!({"month": month})).await;
    assert_eq!(status, 200, "{body}");

    let month_days = i64::from(last.days_in_month());
    let seat_cents = (3_000 * (month_days - 10) * 2 + month_days) / (2 * month_days); // 30.00 × days / month, half-up
    let basic_cents = 55 + seat_cents;
    let total_cents = basic_cents + 2_000;
    let id = ok(get(&h, &e, &format!("/power/subuser?uid={}&account=agent001", e.uid)).await).body[0]["id"].as_i64().unwrap();

    // chargebill: the seat's month, in yuan.
    let query = format!("uidName={uid_name}&time={month}");
    let charge = ok(get(&h, &e, &format!("/account/chargebill?{query}")).await);
    assert_eq!(charge.total, Some(1));
    assert_keys(&charge.body[0], &["subUserName", "time", "basicBill", "functionBill", "total"]);
    let want = format!(r#"[{{"subUserName":"agent001","time":"{month}","basicBill":{},"functionBill":20.00,"total":{}}}]"#, yuan(basic_cents), yuan(total_cents));
    assert_eq!(charge.raw, want, "yuan with two decimals, as numbers");
    assert_eq!(unclosed.raw, want, "before its close, the ended month showed what its close billed");
    assert_eq!(ok(get(&h, &e, &format!("/account/chargebill?{query}&account=agent001")).await).raw, want);

    // basicbill: every day with anything, in fen; the columns add up to the charge bill.
    let basic = ok(get(&h, &e, &format!("/account/chargebill/basicbill?{query}&subUserName=agent001&pageSize=200")).await);
    let days = basic.body.as_array().unwrap();
    for row in days {
        assert_keys(row, &["id", "daily_symbol", "day_seat", "day_callin", "day_callout", "day_intvoice", "day_sms", "total"]);
        assert_eq!(row["id"], json!(id), "the sub-user's id");
        let parts = ["day_seat", "day_callin", "day_callout", "day_intvoice", "day_sms"].iter().map(|f| row[*f].as_i64().unwrap()).sum::<i64>();
        assert_eq!(row["total"].as_i64().unwrap(), parts, "{row}");
    }
    // The 10th (SMS only) and every day of the seat, from the 11th.
    assert_eq!((basic.total, days.len() as i64), (Some(month_days - 9), month_days - 9));
    let symbols: Vec<i64> = days.iter().map(|d| d["daily_symbol"].as_i64().unwrap()).collect();
    assert_eq!(symbols, (10..=month_days).map(|n| symbol(day(last, n as i8))).collect::<Vec<_>>(), "yyyyMMdd, in order");
    assert_eq!((days[0]["day_sms"].as_i64(), days[0]["day_callout"].as_i64(), days[0]["day_seat"].as_i64()), (Some(10), Some(0), Some(0)), "the 10th: the calls were on cards");
    assert_eq!((days[2]["day_callout"].as_i64(), days[2]["day_sms"].as_i64()), (Some(40), Some(5)), "the 12th");
    assert_eq!(days[10]["day_callout"], 0, "the 20th: on the shared card");
    assert_eq!((sum(&basic.body, "day_seat"), sum(&basic.body, "day_callout"), sum(&basic.body, "day_sms"), sum(&basic.body, "day_callin")), (seat_cents, 40, 15, 0));
    assert_eq!(sum(&basic.body, "total"), basic_cents, "the basic bill of the charge bill");
    let page = ok(get(&h, &e, &format!("/account/chargebill/basicbill?{query}&subUserName=agent001&page=2&pageSize=5")).await);
    assert_eq!((page.total, page.body.as_array().unwrap().as_slice()), (Some(month_days - 9), &days[5..10]));

    // funbill: the function fee spread over the month's days.
    let fun = ok(get(&h, &e, &format!("/account/chargebill/funbill?{query}&subUserName=agent001&pageSize=200")).await);
    assert_eq!(fun.total, Some(month_days));
    for (n, row) in fun.body.as_array().unwrap().iter().enumerate() {
        assert_keys(row, &["id", "daily_symbol", "name", "day_account"]);
        assert_eq!((row["id"].as_i64(), row["daily_symbol"].as_i64(), row["name"].as_str()), (Some(id), Some(symbol(day(last, n as i8 + 1))), Some("通话录音")));
    }
    assert_eq!(sum(&fun.body, "day_account"), 2_000, "the function bill of the charge bill");

    // The files hold the same rows.
    let uid = e.uid;
    assert_files_match(
        &h,
        &e,
        &format!("/account/file/chargebill?{query}"),
        &format!("chargebill-{uid}-{month}"),
        &format!("chargebill {month}"),
        &charge.body,
        &["subUserName", "time", "basicBill", "functionBill", "total"],
    )
    .await;
    let basic_columns = ["id", "daily_symbol", "day_seat", "day_callin", "day_callout", "day_intvoice", "day_sms", "total"];
    let path = format!("/account/file/chargebill/basicbill?{query}&subUserName=agent001");
    assert_files_match(&h, &e, &path, &format!("basicbill-agent001-{month}"), &format!("basicbill {month}"), &basic.body, &basic_columns).await;
    let path = format!("/account/file/chargebill/funbill?{query}&subUserName=agent001");
    assert_files_match(&h, &e, &path, &format!("funbill-agent001-{month}"), &format!("funbill {month}"), &fun.body, &["id", "daily_symbol", "name", "day_account"]).await;
    let (status, _, disposition, _) = download(&h, &e, &format!("/account/file/chargebill?{query}&account=agent001&format=csv")).await;
    assert_eq!((status, disposition), (200, format!("attachment; filename=\"chargebill-{uid}-agent001-{month}.csv\"")));

    // The telephony statement of the month: the same calls (money minutes only) and messages.
    let (status, statement) = h.get_json(&format!("/balance/getConsumerInfo/agent001/{month}"), token).await;
    assert_eq!(status, 200, "{statement}");
    let cents = |v: &Value| (v.as_f64().unwrap() * 100.0).round() as i64;
    let groups = statement["data"].as_array().unwrap();
    let one_way = &groups[0]["items"][0];
    assert_eq!((one_way["number"].as_i64(), cents(&one_way["price"])), (Some(4), 40), "{statement}");
    let sms = &groups[2]["items"][0];
    assert_eq!((sms["number"].as_i64(), cents(&sms["price"])), (Some(3), 15), "{statement}");
    assert_eq!(groups.iter().map(|g| cents(&g["total"])).sum::<i64>(), basic_cents - seat_cents, "the statement is the basic bill without the seat");

    // The current month so far: both fees for the whole month, one SMS; the call was on the shared card.
    let so_far = ok(get(&h, &e, &format!("/account/chargebill?uidName={uid_name}")).await);
    assert_eq!(so_far.raw, format!(r#"[{{"subUserName":"agent001","time":"{current}","basicBill":30.05,"functionBill":20.00,"total":50.05}}]"#));
    let basic_now = ok(get(&h, &e, &format!("/account/chargebill/basicbill?uidName={uid_name}&subUserName=agent001&pageSize=200")).await);
    assert_eq!((basic_now.total, sum(&basic_now.body, "day_seat"), sum(&basic_now.body, "day_sms"), sum(&basic_now.body, "total")), (Some(i64::from(this.days_in_month())), 3_000, 5, 3_005));
    let today = symbol(jiff::Timestamp::now().to_zoned(TimeZone::get("Asia/Shanghai").unwrap()).date());
    let today_row = basic_now.body.as_array().unwrap().iter().find(|d| d["daily_symbol"] == today).expect("today").clone();
    assert_eq!((today_row["day_sms"].as_i64(), today_row["day_callout"].as_i64()), (Some(5), Some(0)));
    let fun_now = ok(get(&h, &e, &format!("/account/chargebill/funbill?uidName={uid_name}&subUserName=agent001&time={current}&pageSize=200")).await);
    assert_eq!(sum(&fun_now.body, "day_account"), 2_000);
    let path = format!("/account/file/chargebill/basicbill?uidName={uid_name}&subUserName=agent001");
    assert_files_match(&h, &e, &path, &format!("basicbill-agent001-{current}"), &format!("basicbill {current}"), &basic_now.body, &basic_columns).await;
    let (_, statement) = h.get_json(&format!("/balance/getConsumerInfo/agent001/{current}"), token).await;
    let groups = statement["data"].as_array().unwrap();
    assert_eq!((groups[0]["items"][0]["number"].as_i64(), cents(&groups[0]["total"]), cents(&groups[2]["total"])), (Some(0), 0, 5), "{statement}");

    // The enterprise paid everything: the usage in real time, last month's fees at close.
    let paid = 60 + seat_cents + 2_000;
    let account = ok(get(&h, &e, &format!("/account/{uid}")).await);
    assert_keys(&account.body, &["balance", "overdraft", "name", "state", "account", "note", "advance", "consume"]);
    assert_eq!(account.body, json!({"balance": 100_000 - paid, "overdraft": 0, "name": NAME, "state": 1, "account": uid, "note": "正常", "advance": 100_000, "consume": paid}));

    // The cards: minutes issued and left, epoch milliseconds, states as strings.
    let cards = ok(get(&h, &e, &format!("/account/{uid}/giftrate")).await);
    assert_eq!(cards.total, Some(4));
    for row in cards.body.as_array().unwrap() {
        assert_keys(row, &["id", "name", "giftTime", "ruleGiftTime", "effectiveTime", "expirationTime", "state", "notie"]);
    }
    let end_of_25th = day(last, 26).at(0, 0, 0, 0).to_zoned(TimeZone::get("Asia/Shanghai").unwrap()).unwrap().timestamp().as_millisecond();
    assert_eq!(
        cards.body[0],
        json!({"id": own, "name": "新人卡", "giftTime": 4, "ruleGiftTime": 0, "effectiveTime": ms(&at(last, 1, 0)), "expirationTime": end_of_25th, "state": "expired", "notie": "入职赠送"})
    );
    let brief = |row: &Value| (row["id"].as_i64().unwrap(), row["giftTime"].as_i64().unwrap(), row["ruleGiftTime"].as_i64().unwrap(), row["state"].as_str().unwrap().to_owned());
    let states: Vec<_> = cards.body.as_array().unwrap().iter().map(brief).collect();
    assert_eq!(states, [(own, 4, 0, "expired".into()), (shared, 10, 6, "valid".into()), (pending, 30, 30, "pending".into()), (cancelled, 5, 5, "cancelled".into())]);
    assert_eq!(cards.body[1]["expirationTime"], json!(ms(&at(next, 1, 0))));
    let second = ok(get(&h, &e, &format!("/account/{uid}/giftrate?page=2&pageSize=3")).await);
    assert_eq!((second.total, second.body.as_array().unwrap().len(), second.body[0]["id"].as_i64()), (Some(4), 1, Some(cancelled)));

    // Monthly rates, written as baserate writes a recurring price; charged next at the start of next month.
    let next_ms = ms(&at(next, 1, 0));
    let funrate = ok(get(&h, &e, &format!("/account/{uid}/funrate?uid={uid}")).await);
    assert_eq!(funrate.raw, format!(r#"[{{"name":"通话录音","nextRateTime":{next_ms},"chargeUnit":"20元/个/月"}}]"#));
    let hirerate = ok(get(&h, &e, &format!("/account/{uid}/hirerate?uid={uid}")).await);
    assert_eq!(hirerate.raw, format!(r#"[{{"name":"线路租用","nextRateTime":{next_ms},"chargeUnit":"50元/个/月"}}]"#));
    let base = ok(get(&h, &e, &format!("/account/{uid}/baserate?uid={uid}")).await);
    assert!(base.body.as_array().unwrap().iter().any(|r| r["chargeUnit"] == "30元/个/月"), "the seat fee in the same words: {}", base.raw);

    h.assert_ledger_sound().await;
}

/// Every bill operation: 401, 403 (another enterprise's `uidName` or
/// `uid`), 405, and 424 for each parameter, with another enterprise's
/// sub-user answered like one that does not exist.
async fn bill_operations_answer_every_status(backend: Backend) {
    let h = Harness::start(backend).await;
    let alpha = Enterprise::create(&h, NAME).await;
    let beta = Enterprise::create(&h, "UU Beta").await;
    create_account(&h, &alpha, "agent001").await;
    create_account(&h, &beta, "agent009").await;
    let name = encode(NAME);
    let mine = format!("uidName={name}&subUserName=agent001");
    let paths =
        ["/account/chargebill", "/account/file/chargebill", "/account/chargebill/basicbill", "/account/chargebill/funbill", "/account/file/chargebill/basicbill", "/account/file/chargebill/funbill"];
    for path in paths {
        let per_user = path.ends_with("basicbill") || path.ends_with("funbill");
        let good = format!("{path}?{mine}");
        let answer = get(&h, &alpha, &good).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.raw);
        assert_auth_and_method(&h, Method::GET, &good, Method::POST).await;
        refused(&call(&h, Method::DELETE, &good, Some(alpha.token()), None).await, 405);
        // Another enterprise: its name, or its uid beside ours; names are exact.
        refused(&get(&h, &alpha, &format!("{path}?uidName=UU%20Beta&subUserName=agent001")).await, 403);
        refused(&get(&h, &alpha, &format!("{good}&uid={}", beta.uid)).await, 403);
        refused(&get(&h, &beta, &good).await, 403);
        refused(&get(&h, &alpha, &format!("{path}?uidName=uu%20%E5%91%BC%E5%8F%AB%E4%B8%AD%E5%BF%83&subUserName=agent001")).await, 403);
        assert_eq!(get(&h, &alpha, &format!("{good}&uid={}", alpha.uid)).await.status, 200);
        invalid(&get(&h, &alpha, &format!("{path}?subUserName=agent001")).await, "uidName");
        for time in ["2024-13", "2024-3", "202403", "2024-03-01", "x"] {
            invalid(&get(&h, &alpha, &format!("{good}&time={time}")).await, "time");
        }
        assert_eq!(get(&h, &alpha, &format!("{good}&time=2024-03")).await.status, 200);
        if per_user {
            invalid(&get(&h, &alpha, &format!("{path}?uidName={name}")).await, "subUserName");
            let unknown = get(&h, &alpha, &format!("{path}?uidName={name}&subUserName=nobody01")).await;
            invalid(&unknown, "subUserName");
            // Another enterprise's sub-user reads exactly like one that does not exist.
            let theirs = get(&h, &alpha, &format!("{path}?uidName={name}&subUserName=agent009")).await;
            assert_eq!((theirs.status, &theirs.body), (unknown.status, &unknown.body));
        } else {
            invalid(&get(&h, &alpha, &format!("{path}?uidName={name}&account=nobody01")).await, "account");
            invalid(&get(&h, &alpha, &format!("{path}?uidName={name}&account=agent009")).await, "account");
        }
        if path.contains("/file/") {
            invalid(&get(&h, &alpha, &format!("{good}&format=pdf")).await, "format");
        } else {
            invalid(&get(&h, &alpha, &format!("{good}&pageSize=201")).await, "pageSize");
            invalid(&get(&h, &alpha, &format!("{good}&page=0")).await, "page");
        }
    }
    // A month without anything: the sub-user's zero bill, no days.
    let empty = ok(get(&h, &alpha, &format!("/account/chargebill?uidName={name}&time=2024-03")).await);
    assert_eq!((empty.total, empty.raw.as_str()), (Some(1), r#"[{"subUserName":"agent001","time":"2024-03","basicBill":0.00,"functionBill":0.00,"total":0.00}]"#));
    assert_eq!(ok(get(&h, &alpha, &format!("/account/chargebill/basicbill?{mine}&time=2024-03")).await).raw, "[]");
    let (status, _, _, bytes) = download(&h, &alpha, &format!("/account/file/chargebill/funbill?{mine}&time=2024-03&format=csv")).await;
    assert_eq!((status, String::from_utf8(bytes).unwrap()), (200, "id,daily_symbol,name,day_account\n".to_owned()));
}

/// `GET /account/{uid}` and its rates and cards: every status, and the
/// billing account of an enterprise that recharged and owes nothing.
async fn rates_cards_and_the_billing_account_answer_every_status(backend: Backend) {
    let h = Harness::start(backend).await;
    let alpha = Enterprise::create(&h, "UU Account").await;
    let beta = Enterprise::create(&h, "UU Account Other").await;
    let uid = alpha.uid;
    let empty = ok(get(&h, &alpha, &format!("/account/{uid}")).await);
    assert_eq!(empty.body, json!({"balance": 0, "overdraft": 0, "name": "UU Account", "state": 3, "account": uid, "note": "余额不足", "advance": 0, "consume": 0}));
    h.deposit(&alpha.tenant, "12.34").await;
    let (status, body) = put_json(&h, &format!("/v1/tenants/{}/overdraft", alpha.tenant.tenant_id), ADMIN_TOKEN, &json!({"limit": "50.00"})).await;
    assert_eq!(status, 200, "{body}");
    let account = ok(get(&h, &alpha, &format!("/account/{uid}?uid={uid}")).await);
    assert_eq!(account.body, json!({"balance": 1234, "overdraft": 5000, "name": "UU Account", "state": 1, "account": uid, "note": "正常", "advance": 1234, "consume": 0}));
    for path in ["", "/funrate", "/hirerate", "/giftrate"] {
        let good = format!("/account/{uid}{path}");
        assert_eq!(get(&h, &alpha, &good).await.status, 200, "{good}");
        assert_auth_and_method(&h, Method::GET, &good, Method::POST).await;
        refused(&call(&h, Method::PUT, &good, Some(alpha.token()), None).await, 405);
        refused(&get(&h, &alpha, &format!("/account/{}{path}", beta.uid)).await, 403);
        refused(&get(&h, &alpha, &format!("{good}?uid={}", beta.uid)).await, 403);
        refused(&get(&h, &beta, &good).await, 403);
        invalid(&get(&h, &alpha, &format!("/account/12x{path}")).await, "uid");
        invalid(&get(&h, &alpha, &format!("{good}?uid=x")).await, "uid");
    }
    assert_eq!(ok(get(&h, &alpha, &format!("/account/{uid}/funrate")).await).raw, "[]");
    assert_eq!(ok(get(&h, &alpha, &format!("/account/{uid}/giftrate")).await).raw, "[]");
    invalid(&get(&h, &alpha, &format!("/account/{uid}/giftrate?pageSize=0")).await, "pageSize");
}

/// More sub-users than one page of the service: the CSV file is sent a page
/// at a time and holds each of them exactly once, as many as the list counts.
async fn a_charge_bill_file_streams_every_sub_user(backend: Backend) {
    let h = Harness::start(backend).await;
    let e = Enterprise::create(&h, NAME).await;
    let count = subledger_service::seat_bills::CHARGE_BILL_PAGE_MAX as usize * 2 + 5;
    for n in 0..count {
        create_account(&h, &e, &format!("seat{n:04}")).await;
    }
    let query = format!("uidName={}&time={}", encode(NAME), dashed(month_start(0)));
    let listed = ok(get(&h, &e, &format!("/account/chargebill?{query}")).await);
    assert_eq!(listed.total, Some(count as i64));
    let (status, content_type, _, bytes) = download(&h, &e, &format!("/account/file/chargebill?{query}&format=csv")).await;
    assert_eq!((status, content_type.as_str()), (200, "text/csv; charset=utf-8"));
    let text = String::from_utf8(bytes).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("subUserName,time,basicBill,functionBill,total"));
    let mut names: Vec<&str> = lines.map(|line| line.split(',').next().unwrap()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, (0..count).map(|n| format!("seat{n:04}")).collect::<Vec<_>>(), "every sub-user once, across pages");
}
