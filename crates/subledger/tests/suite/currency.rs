//! Multi-currency billing: a tenant with products in yuan and in dollars,
//! accounts funded in both, usage charged in each product's currency, one
//! bill per account, month and currency at close with settlements in it,
//! and usage in a currency an account holds no wallets in refused.

use serde_json::{Value, json};

use crate::billing::{account, at, close, dashed, month_start, outcome, per_unit, sendcloud_call, tariff, usage};
use crate::on_both_backends;
use crate::support::*;

on_both_backends!(each_currency_is_billed_on_its_own, usage_needs_wallets_in_the_products_currency);

/// A transfer from the tenant's primary wallet to an account's, in `currency`.
async fn fund_in(h: &Harness, token: &str, username: &str, amount: &str, currency: &str) {
    let response = h
        .http
        .post(h.url("/v1/transfers"))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("fund-{username}-{amount}-{currency}"))
        .json(&json!({"from": {}, "to": {"username": username}, "amount": amount, "currency": currency}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!((status, body["currency"].as_str()), (201, Some(currency)), "{body}");
}

/// A recharge of the tenant's primary wallet in `currency`.
async fn deposit_in(h: &Harness, tenant: &Tenant, amount: &str, currency: &str) {
    let response = h
        .http
        .post(h.url(&format!("/v1/tenants/{}/deposits", tenant.tenant_id)))
        .bearer_auth(ADMIN_TOKEN)
        .header("Idempotency-Key", format!("deposit-{amount}-{currency}"))
        .json(&json!({"amount": amount, "currency": currency}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
}

/// Balance in cents of a wallet of the tenant (no username) or of an account.
async fn balance(h: &Harness, token: &str, username: Option<&str>, purpose: &str, currency: &str) -> Option<i64> {
    let query = username.map(|u| format!("?username={u}")).unwrap_or_default();
    let (status, body) = h.get_json(&format!("/v1/wallets{query}"), token).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().iter().find(|w| w["purpose"] == purpose && w["currency"] == currency).map(|w| w["balance_minor"].as_i64().unwrap())
}

/// The tenant's catalog gains `ad_clicks`, priced in dollars, through the CLI.
async fn add_dollar_product(h: &Harness, tenant: &Tenant) {
    let args = ["product", "add", "--tenant", &tenant.tenant_id, "--code", "ad_clicks", "--name", "Ad clicks", "--unit", "click", "--order-type", "901", "--currency", "USD", "--json"];
    let (ok, stdout, stderr) = h.cli(&args).await;
    assert!(ok, "{stderr}");
    let added: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((added["code"].as_str(), added["currency"].as_str()), (Some("ad_clicks"), Some("USD")), "{added}");
}

async fn each_currency_is_billed_on_its_own(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Two Currencies").await;
    let token = tenant.api_token.as_str();
    h.deposit(&tenant, "1000.00").await;
    deposit_in(&h, &tenant, "500.00", "USD").await;
    add_dollar_product(&h, &tenant).await;
    let (_, products) = h.get_json("/v1/products", token).await;
    let currency_of = |code: &str| products["items"].as_array().unwrap().iter().find(|p| p["code"] == code).map(|p| p["currency"].clone());
    assert_eq!((currency_of("sms"), currency_of("ad_clicks")), (Some(json!("CNY")), Some(json!("USD"))), "built-in products are in yuan");
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    tariff(&h, token, "ad_clicks", per_unit("0.10", "1")).await;
    let (_, tariffs) = h.get_json("/v1/tariffs?product=ad_clicks", token).await;
    assert_eq!(tariffs["items"][0]["currency"], "USD", "a tariff prices in its product's currency: {tariffs}");

    // dual0001 pays as it goes, from wallets in both currencies; postpd01 pays
    // at close, and has dollar wallets through its dollar overdraft.
    account(&h, token, "dual0001", "sendcloud").await;
    account(&h, token, "postpd01", "sendcloud").await;
    fund_in(&h, token, "dual0001", "10.00", "CNY").await;
    fund_in(&h, token, "dual0001", "20.00", "USD").await;
    let response = h.http.put(h.url("/v1/accounts/postpd01/billing")).bearer_auth(token).json(&json!({"mode": "postpaid"})).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let response = h.http.put(h.url("/v1/accounts/postpd01/overdraft")).bearer_auth(token).json(&json!({"limit": "10.00", "currency": "USD"})).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let (m1, m2) = (month_start(2), month_start(1));
    let answer = usage(
        &h,
        token,
        json!([
            {"id": "d-sms", "account": "dual0001", "product": "sms", "quantity": 4, "occurred_at": at(m1, 3, 10)},
            {"id": "d-ads", "account": "dual0001", "product": "ad_clicks", "quantity": 3, "occurred_at": at(m1, 3, 11)},
            {"id": "p-sms", "account": "postpd01", "product": "sms", "quantity": 2, "occurred_at": at(m1, 4, 10)},
            {"id": "p-ads", "account": "postpd01", "product": "ad_clicks", "quantity": 5, "occurred_at": at(m1, 4, 11)},
        ]),
    )
    .await;
    let outcomes: Vec<_> = answer["results"].as_array().unwrap().iter().map(|r| (outcome(r), r["currency"].as_str())).collect();
    let expected = [
        (("accepted", None, Some("0.20")), Some("CNY")),
        (("accepted", None, Some("0.30")), Some("USD")),
        (("accepted", None, Some("0.00")), Some("CNY")),
        (("accepted", None, Some("0.00")), Some("USD")),
    ];
    assert_eq!(outcomes, expected, "each charge names its currency: {answer}");
    assert_eq!(balance(&h, token, Some("dual0001"), "primary", "CNY").await, Some(1000 - 20), "yuan usage is charged in yuan");
    assert_eq!(balance(&h, token, Some("dual0001"), "primary", "USD").await, Some(2000 - 30), "dollar usage is charged in dollars");

    // The daily view keeps the currencies apart: one entry per day and currency.
    let day = format!("{}-03", dashed(m1));
    let (status, daily) = h.get_json(&format!("/v1/accounts/dual0001/daily?from={day}&to={day}"), token).await;
    assert_eq!(status, 200, "{daily}");
    let days: Vec<(&str, &str)> = daily["items"].as_array().unwrap().iter().map(|d| (d["currency"].as_str().unwrap(), d["total"].as_str().unwrap())).collect();
    assert_eq!(days, [("CNY", "0.20"), ("USD", "0.30")], "{daily}");

    // The close: two bills per account, one per currency, settled in their currency.
    let report = close(&h, token, &dashed(m1)).await;
    let month = &report["months"][0];
    assert_eq!(month["bills"], 4, "{report}");
    let currencies: Vec<(&str, u64)> = month["currencies"].as_array().unwrap().iter().map(|c| (c["currency"].as_str().unwrap(), c["bills"].as_u64().unwrap())).collect();
    assert_eq!(currencies, [("CNY", 2), ("USD", 2)], "{report}");
    // postpd01 has no yuan to pay its 0.10 with: it stays outstanding, in yuan.
    let cny = (close_amount(month, "CNY", "billed"), close_amount(month, "CNY", "settled"), close_amount(month, "CNY", "outstanding"));
    assert_eq!(cny, ("0.30".to_owned(), "0.00".to_owned(), "0.10".to_owned()), "{report}");
    assert_eq!((close_amount(month, "USD", "billed"), close_amount(month, "USD", "settled")), ("0.80".to_owned(), "0.50".to_owned()), "{report}");
    let (_, bills) = h.get_json(&format!("/v1/bills?from={}", dashed(m1)), token).await;
    let listed: Vec<(&str, &str, &str, Vec<&str>)> = bills["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (b["username"].as_str().unwrap(), b["currency"].as_str().unwrap(), b["total"].as_str().unwrap(), b["lines"].as_array().unwrap().iter().map(|l| l["product"].as_str().unwrap()).collect())
        })
        .collect();
    assert_eq!(
        listed,
        [("dual0001", "CNY", "0.20", vec!["sms"]), ("dual0001", "USD", "0.30", vec!["ad_clicks"]), ("postpd01", "CNY", "0.10", vec!["sms"]), ("postpd01", "USD", "0.50", vec!["ad_clicks"])],
        "{bills}"
    );
    let postpaid_usd = &bills["items"][3];
    assert_eq!(
        postpaid_usd["settlements"],
        json!([{"product": "ad_clicks", "order_type": 15, "amount": "0.50", "amount_minor": 50, "status": "posted", "transfer_id": postpaid_usd["settlements"][0]["transfer_id"]}])
    );
    let settled = postpaid_usd["settlements"][0]["transfer_id"].as_i64().unwrap();
    let (_, transfer) = h.get_json(&format!("/v1/transfers/{settled}"), token).await;
    assert_eq!((transfer["currency"].as_str(), transfer["amount"].as_str(), transfer["kind"].as_str()), (Some("USD"), Some("0.50"), Some("charge")), "{transfer}");
    assert_eq!(balance(&h, token, Some("postpd01"), "primary", "USD").await, Some(-50), "the dollar settlement uses the dollar overdraft");
    assert_eq!(balance(&h, token, Some("postpd01"), "primary", "CNY").await, Some(0), "the yuan settlement is outstanding");
    assert_eq!(bills["items"][2]["settlements"][0]["status"], "outstanding", "{bills}");
    assert_eq!(balance(&h, token, None, "revenue", "USD").await, Some(30 + 50));
    assert_eq!(balance(&h, token, None, "revenue", "CNY").await, Some(20));
    let (_, usd_only) = h.get_json(&format!("/v1/bills?from={}&currency=usd", dashed(m1)), token).await;
    assert_eq!(usd_only["items"].as_array().unwrap().iter().map(|b| b["currency"].as_str().unwrap()).collect::<Vec<_>>(), ["USD", "USD"], "{usd_only}");
    let (status, refused) = h.get_json(&format!("/v1/bills?from={}&currency=EUR", dashed(m1)), token).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("invalid_currency")), "{refused}");

    // SendCloud shows yuan: only the yuan bill.
    let compact = |first: jiff::civil::Date| format!("{:04}{:02}", first.year(), first.month());
    let reply = sendcloud_call(&h, &tenant, "bill", &[("startMonth", compact(m1)), ("endMonth", compact(m1)), ("username", "dual0001".to_owned())]).await;
    assert_eq!(reply["statusCode"], 200, "{reply}");
    let bill_data = reply["info"]["list"][0]["billData"].as_array().unwrap();
    assert_eq!(bill_data.len(), 1, "{reply}");
    assert_eq!((bill_data[0]["totalMoney"].to_string(), bill_data[0]["consumeOrders"].as_array().map(Vec::len)), ("0.2".to_owned(), Some(1)), "{reply}");

    // Late dollar usage of the closed month lands on the next dollar bill.
    let late = usage(&h, token, json!([{"id": "d-late", "account": "dual0001", "product": "ad_clicks", "quantity": 2, "occurred_at": at(m1, 20, 10)}])).await;
    assert_eq!(outcome(&late["results"][0]), ("accepted", None, Some("0.20")), "{late}");
    let report = close(&h, token, &dashed(m2)).await;
    let month = &report["months"][0];
    assert_eq!((month["bills"].as_u64(), close_amount(month, "USD", "billed"), close_amount(month, "CNY", "billed")), (Some(2), "0.20".to_owned(), "0.00".to_owned()), "{report}");
    let (_, bills) = h.get_json(&format!("/v1/bills?from={}&username=dual0001", dashed(m2)), token).await;
    let bill = &bills["items"][0];
    assert_eq!((bill["currency"].as_str(), bill["total"].as_str()), (Some("USD"), Some("0.20")), "{bills}");
    assert_eq!((bill["lines"][0]["kind"].as_str(), bill["lines"][0]["for_month"].as_str()), (Some("supplement"), Some(dashed(m1).as_str())), "{bills}");

    // The export names each bill's currency.
    let (ok, csv, stderr) = h.cli(&["bill", "export", "--tenant", &tenant.tenant_id, "--month", &dashed(m1), "--format", "csv", "--out", "-"]).await;
    assert!(ok, "{stderr}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<(String, String, String)> = reader.records().map(Result::unwrap).map(|r| (r[0].to_owned(), r[10].to_owned(), r[11].to_owned())).collect();
    let expected = [("dual0001", "0.20", "CNY"), ("dual0001", "0.30", "USD"), ("postpd01", "0.10", "CNY"), ("postpd01", "0.50", "USD")];
    assert_eq!(rows, expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())), "{csv}");

    // The telephony dialect shows yuan: this month's dollar usage is not consumption there.
    // (Sent through the CLI's import, which sums its charges per currency.)
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("now.csv");
    std::fs::write(&file, "id,account,product,quantity\nn-sms,dual0001,sms,2\nn-ads,dual0001,ad_clicks,7\n").unwrap();
    let (ok, stdout, stderr) = h.cli(&["usage", "import", "--tenant", &tenant.tenant_id, file.to_str().unwrap(), "--json"]).await;
    assert!(ok, "{stderr}");
    let imported: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((imported["accepted"].as_u64(), &imported["charged"]), (Some(2), &json!({"CNY": "0.10", "USD": "0.70"})), "{imported}");
    let response = h.http.get(h.url("/balance/getAccountAmount/dual0001")).bearer_auth(token).send().await.unwrap();
    let raw = response.text().await.unwrap();
    assert!(raw.ends_with(r#""data":{"primaryAmount":9.70,"deputeAmount":0.00,"consumptionYesterday":0.00,"consumptionMonth":0.10}}"#), "yuan balances and yuan usage only: {raw}");
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()).date();
    let response = h.http.get(h.url("/balance/getConsumptionTrend/dual0001")).bearer_auth(token).send().await.unwrap();
    let raw = response.text().await.unwrap();
    assert!(raw.ends_with(&format!(r#"{{"days":"{today}","amount":0.10}}]}}"#)), "{raw}");

    let report = h.assert_ledger_sound().await;
    assert_eq!(report["balance_sums"], json!([["CNY", 0], ["USD", 0]]), "{report}");
}

async fn usage_needs_wallets_in_the_products_currency(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Yuan Only Accounts").await;
    let token = tenant.api_token.as_str();
    h.deposit(&tenant, "100.00").await;
    add_dollar_product(&h, &tenant).await;
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    tariff(&h, token, "ad_clicks", per_unit("0.10", "1")).await;
    account(&h, token, "yuanonly", "sendcloud").await;
    account(&h, token, "postpd02", "sendcloud").await;
    fund_in(&h, token, "yuanonly", "10.00", "CNY").await;
    let response = h.http.put(h.url("/v1/accounts/postpd02/billing")).bearer_auth(token).json(&json!({"mode": "postpaid"})).send().await.unwrap();
    assert_eq!(response.status(), 204);

    let batch = json!([
        {"id": "y-ads", "account": "yuanonly", "product": "ad_clicks", "quantity": 1},
        {"id": "y-sms", "account": "yuanonly", "product": "sms", "quantity": 1},
        {"id": "p-ads", "account": "postpd02", "product": "ad_clicks", "quantity": 1},
    ]);
    let answer = usage(&h, token, batch.clone()).await;
    let outcomes: Vec<_> = answer["results"].as_array().unwrap().iter().map(outcome).collect();
    assert_eq!(
        outcomes,
        [("rejected", Some("no_wallet_in_currency"), None), ("accepted", None, Some("0.05")), ("rejected", Some("no_wallet_in_currency"), None)],
        "an account, prepaid or postpaid, is charged only in a currency it has wallets in: {answer}"
    );
    assert_eq!(balance(&h, token, Some("yuanonly"), "primary", "USD").await, None, "a refused event opens no wallet");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM usage_monthly WHERE product_code = 'ad_clicks'").await, 0, "nor counts as usage");
    let replay = usage(&h, token, batch).await;
    assert_eq!(replay["results"][0]["reason"], "no_wallet_in_currency", "a replay answers the first outcome: {replay}");

    // Funding it in dollars opens its dollar wallets: the next event goes through.
    deposit_in(&h, &tenant, "5.00", "USD").await;
    fund_in(&h, token, "yuanonly", "1.00", "USD").await;
    let answer = usage(&h, token, json!([{"id": "y-ads-2", "account": "yuanonly", "product": "ad_clicks", "quantity": 1}])).await;
    assert_eq!(outcome(&answer["results"][0]), ("accepted", None, Some("0.10")), "{answer}");
    assert_eq!(balance(&h, token, Some("yuanonly"), "primary", "USD").await, Some(90));

    // A product's currency is parsed where it enters.
    let (status, refused) = h.post_json("/v1/products", token, &json!({"code": "euro_thing", "name": "x", "unit": "x", "order_type": 902, "currency": "EUR"})).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("invalid_currency")), "{refused}");
    let (ok, _, stderr) = h.cli(&["product", "add", "--tenant", &tenant.tenant_id, "--code", "euro_thing", "--name", "x", "--unit", "x", "--order-type", "902", "--currency", "EUR"]).await;
    assert!(!ok && stderr.contains("EUR"), "{stderr}");
    h.assert_ledger_sound().await;
}
