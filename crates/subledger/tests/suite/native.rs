//! The native API (`/v1`): auth, tenants, accounts, deposits, transfers,
//! idempotency, entries, errors, and the operational endpoints.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    tokens_are_required_and_scoped,
    tenant_administration_and_secret_rotation,
    accounts_through_the_native_api,
    deposits_are_idempotent,
    transfers_between_wallets,
    entries_page_through_history,
    malformed_requests_get_json_errors,
    operational_endpoints,
    usd_wallets_open_on_first_use,
);

fn primary(wallets: &Value) -> Value {
    wallets["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary" && w["currency"] == "CNY").cloned().expect("a primary CNY wallet")
}

async fn tokens_are_required_and_scoped(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Scoped").await;
    let response = h.http.get(h.url("/v1/accounts")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, _) = h.get_json("/v1/accounts", "slt_wrong").await;
    assert_eq!(status, 401);
    // A tenant token is no admin token, and the admin token is no tenant token.
    let (status, _) = h.get_json("/v1/tenants", &tenant.api_token).await;
    assert_eq!(status, 401);
    let (status, _) = h.get_json("/v1/accounts", ADMIN_TOKEN).await;
    assert_eq!(status, 401);
    let (status, body) = h.get_json("/v1/tenant", &tenant.api_token).await;
    assert_eq!(status, 200);
    assert_eq!(body["tenant_id"], tenant.tenant_id.as_str());
    assert!(body.get("app_key").is_none() && body.get("api_token").is_none(), "secrets are shown once only: {body}");
}

async fn tenant_administration_and_secret_rotation(backend: Backend) {
    let h = Harness::start(backend).await;
    let (status, body) = h.admin_post("/v1/tenants", &json!({"name": "Tokyo Reseller", "timezone": "Asia/Tokyo"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["timezone"], "Asia/Tokyo");
    assert_eq!(body["account_limit"], 10_000);
    let (status, body) = h.admin_post("/v1/tenants", &json!({"name": "x", "timezone": "Mars/Olympus"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_timezone")));
    let (status, body) = h.admin_post("/v1/tenants", &json!({"name": ""})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_name")));

    let tenant = h.create_tenant("Rotating").await;
    let (status, list) = h.get_json("/v1/tenants?limit=1", ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, shown) = h.get_json(&format!("/v1/tenants/{}", tenant.app_id), ADMIN_TOKEN).await;
    assert_eq!((status, shown["tenant_id"].as_str()), (200, Some(tenant.tenant_id.as_str())));
    let (status, _) = h.get_json("/v1/tenants/tn_nobody", ADMIN_TOKEN).await;
    assert_eq!(status, 404);
    for bad in ["limit=201", "offset=-1", "limit=x"] {
        let (status, body) = h.get_json(&format!("/v1/tenants?{bad}"), ADMIN_TOKEN).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    let (status, rotated) = h.admin_post(&format!("/v1/tenants/{}/rotate-secrets", tenant.tenant_id), &json!({})).await;
    assert_eq!(status, 200);
    let new_token = rotated["api_token"].as_str().unwrap();
    assert_ne!(new_token, tenant.api_token);
    let (status, _) = h.get_json("/v1/tenant", &tenant.api_token).await;
    assert_eq!(status, 401, "the old token stops working");
    let (status, _) = h.get_json("/v1/tenant", new_token).await;
    assert_eq!(status, 200);
    // The old signing key too.
    assert_code(&h.sendcloud("list", &tenant, &[]).await, 404, "签名错误");
    let renewed = Tenant { app_key: rotated["app_key"].as_str().unwrap().to_owned(), ..tenant };
    assert_code(&h.sendcloud("list", &renewed, &[]).await, 200, "请求成功");
}

async fn accounts_through_the_native_api(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Native").await;
    let token = &tenant.api_token;
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "nativeone", "phone": "15172212992", "daily_quota": 100})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_type"], "sendcloud");
    assert_eq!(body["status"], "active");
    assert_eq!(body["daily_quota"], 100);
    assert_eq!(body["api_key"].as_str().map(str::len), Some(16));
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "nativeone"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("username_taken")));
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "nativetwo", "phone": "15172212992"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("phone_taken")));
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "no"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_username")));
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "nativetwo", "user_type": "ifaxin", "password": "weak"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_password")));
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "nativetwo", "user_type": "ifaxin"})).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["api_key"].is_null());

    let (status, body) = h.get_json("/v1/accounts/nativeone", token).await;
    assert_eq!((status, body["phone"].as_str()), (200, Some("15172212992")));
    let (status, body) = h.get_json("/v1/accounts/nobody", token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("account_not_found")));

    let response = h.http.put(h.url("/v1/accounts/nativeone/quota")).bearer_auth(token).json(&json!({"daily_quota": 7})).send().await.unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!((status, body["daily_quota"].as_i64()), (200, Some(7)));
    let (status, body) = h.post_json("/v1/accounts/nativeone/freeze", token, &json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("frozen")));

    let (status, list) = h.get_json("/v1/accounts?limit=1", token).await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 2);
    assert_eq!(list["frozen"], 1);
    assert_eq!(list["items"][0]["username"], "nativeone");
    assert_eq!(list["items"][0]["balance"], "0.00");
    let (status, _) = h.get_json("/v1/accounts?limit=201", token).await;
    assert_eq!(status, 400);
}

async fn deposits_are_idempotent(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Deposits").await;
    let deposit = |key: &'static str, body: Value| {
        let request = h.http.post(h.url(&format!("/v1/tenants/{}/deposits", tenant.tenant_id))).bearer_auth(ADMIN_TOKEN).header("Idempotency-Key", key).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let replayed = response.headers().get("idempotent-replayed").is_some();
            let (status, body) = status_and_json(response).await;
            (status, body, replayed)
        }
    };
    let (status, first, replayed) = deposit("recharge-1", json!({"amount": "1000.00", "note": "bank transfer 42"})).await;
    assert_eq!(status, 201, "{first}");
    assert!(!replayed);
    assert_eq!(first["kind"], "deposit");
    assert_eq!(first["credit_balance_after_minor"], 100_000);
    let (status, again, replayed) = deposit("recharge-1", json!({"amount": "1000.00", "note": "bank transfer 42"})).await;
    assert_eq!(status, 201);
    assert!(replayed);
    assert_eq!(again["transfer_id"], first["transfer_id"]);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["credit_balance_after_minor"], 100_000, "the first outcome, not a second deposit");
    let (status, body, _) = deposit("recharge-1", json!({"amount": "999.00"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("idempotency_key_reused")));
    // Without a key, a money-moving call is refused.
    let response = h.http.post(h.url(&format!("/v1/tenants/{}/deposits", tenant.tenant_id))).bearer_auth(ADMIN_TOKEN).json(&json!({"amount": "1.00"})).send().await.unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("idempotency_key_required")));
    for bad in ["0", "-1.00", "1.234", "abc", "100000000000000000"] {
        let (status, body, _) = deposit("bad-amount", json!({"amount": bad})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_amount")), "{bad}");
    }
    let (status, body, _) = deposit("promo-1", json!({"amount": "50.00", "wallet": "promo"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = deposit("bad-wallet", json!({"amount": "50.00", "wallet": "revenue"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_wallet")));

    let (_, wallets) = h.get_json("/v1/wallets", &tenant.api_token).await;
    assert_eq!(primary(&wallets)["balance"], "1000.00");
    let world = wallets["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "world").unwrap();
    assert_eq!(world["balance"], "-1050.00", "the outside world's wallet mirrors every deposit");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM transfers WHERE kind = 'deposit'").await, 2);
    h.assert_ledger_sound().await;
}

async fn transfers_between_wallets(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Transfers").await;
    let token = &tenant.api_token;
    h.deposit(&tenant, "100.00").await;
    h.post_json("/v1/accounts", token, &json!({"username": "receiver1"})).await;
    let transfer = |key: &'static str, body: Value| {
        let request = h.http.post(h.url("/v1/transfers")).bearer_auth(token).header("Idempotency-Key", key).json(&body);
        async move { status_and_json(request.send().await.unwrap()).await }
    };
    let (status, body) = transfer("t1", json!({"from": {}, "to": {"username": "receiver1"}, "amount": "60.00", "memo": "monthly budget"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["kind"], "allocation");
    assert_eq!(body["debit_balance_after_minor"], 4_000);
    assert_eq!(body["credit_balance_after_minor"], 6_000);
    let (status, body) = transfer("t2", json!({"from": {"username": "receiver1"}, "to": {}, "amount": "10.00"})).await;
    assert_eq!((status, body["kind"].as_str()), (201, Some("reclaim")));
    let (status, body) = transfer("t3", json!({"from": {"username": "receiver1"}, "to": {"username": "receiver1", "wallet": "promo"}, "amount": "5.00"})).await;
    assert_eq!((status, body["kind"].as_str()), (201, Some("internal")));
    // Refusals: 422 with the ledger's reason; the replayed key answers the same.
    let (status, body) = transfer("t4", json!({"from": {}, "to": {"username": "receiver1"}, "amount": "50.01"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("insufficient_funds")));
    let (status, body) = transfer("t4", json!({"from": {}, "to": {"username": "receiver1"}, "amount": "50.01"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("insufficient_funds")));
    let (status, body) = transfer("t5", json!({"from": {}, "to": {}, "amount": "1.00"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("same_wallet")));
    let (status, body) = transfer("t6", json!({"from": {}, "to": {"username": "ghost001"}, "amount": "1.00"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("account_not_found")));
    let (status, body) = transfer("t7", json!({"from": {}, "to": {"username": "receiver1"}, "amount": "1.00", "currency": "EUR"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_currency")));

    let (status, shown) = h.get_json(&format!("/v1/transfers/{}", first_allocation_id(&h, token).await), token).await;
    assert_eq!(status, 200);
    assert_eq!(shown["memo"], "monthly budget");
    let (status, _) = h.get_json("/v1/transfers/not-a-uuid", token).await;
    assert_eq!(status, 400);

    let (_, wallets) = h.get_json("/v1/wallets", token).await;
    assert_eq!(primary(&wallets)["balance"], "50.00");
    let (_, wallets) = h.get_json("/v1/wallets?username=receiver1", token).await;
    assert_eq!(primary(&wallets)["balance"], "45.00");
    h.assert_ledger_sound().await;
}

/// The id of the tenant's first allocation, read from its primary wallet's history.
async fn first_allocation_id(h: &Harness, token: &str) -> String {
    let (_, wallets) = h.get_json("/v1/wallets", token).await;
    let (_, entries) = h.get_json(&format!("/v1/wallets/{}/entries", primary(&wallets)["wallet_id"]), token).await;
    entries["items"].as_array().unwrap().iter().find(|e| e["kind"] == "allocation").unwrap()["transfer_id"].as_str().unwrap().to_owned()
}

async fn entries_page_through_history(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("History").await;
    for _ in 0..5 {
        h.deposit(&tenant, "1.00").await;
    }
    let (_, wallets) = h.get_json("/v1/wallets", &tenant.api_token).await;
    let wallet_id = primary(&wallets)["wallet_id"].as_i64().unwrap();
    let (status, page) = h.get_json(&format!("/v1/wallets/{wallet_id}/entries?limit=2"), &tenant.api_token).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(page["next_after_seq"], 2);
    let (_, page) = h.get_json(&format!("/v1/wallets/{wallet_id}/entries?limit=2&after_seq=4"), &tenant.api_token).await;
    assert_eq!(page["items"][0]["seq"], 5);
    assert_eq!(page["items"][0]["balance_after"], "5.00");
    assert!(page["next_after_seq"].is_null());
    assert_eq!(page["wallet"]["entry_count"], 5);
    for bad in ["limit=0", "limit=501", "limit=x", "after_seq=-x"] {
        let (status, body) = h.get_json(&format!("/v1/wallets/{wallet_id}/entries?{bad}"), &tenant.api_token).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = h.get_json("/v1/wallets/999999/entries", &tenant.api_token).await;
    assert_eq!(status, 404);
    // A malformed path parameter is answered in the API's own error format.
    let (status, body) = h.get_json("/v1/wallets/abc/entries", &tenant.api_token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_path")), "{body}");
}

async fn malformed_requests_get_json_errors(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Malformed").await;
    let send = |body: Vec<u8>, content_type: &'static str| {
        let request = h.http.post(h.url("/v1/accounts")).bearer_auth(&tenant.api_token).header("Content-Type", content_type).body(body);
        async move { status_and_json(request.send().await.unwrap()).await }
    };
    let (status, body) = send(b"{not json".to_vec(), "application/json").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")));
    let (status, body) = send(br#"{"username": "okname01", "surprise": 1}"#.to_vec(), "application/json").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")), "unknown fields are refused");
    let (status, body) = send(br#"{"username": 12}"#.to_vec(), "application/json").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")));
    let (status, body) = send(b"{\"username\": \"\xff\xfe\"}".to_vec(), "application/json").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")));
    let (status, body) = send(br#"username=x"#.to_vec(), "application/x-www-form-urlencoded").await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_media_type")));
    let huge = format!(r#"{{"username": "{}"}}"#, "a".repeat(300_000));
    let (status, body) = send(huge.into_bytes(), "application/json").await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")));
    let (status, body) = send(br#"{"username": "okname01", "daily_quota": 99999999999999999999999}"#.to_vec(), "application/json").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM accounts").await, 0);
}

async fn operational_endpoints(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Ops").await;
    h.deposit(&tenant, "10.00").await;
    let text = |path: &'static str| {
        let request = h.http.get(h.url(path));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(text("/healthz").await, (200, "ok".to_owned()));
    assert_eq!(text("/readyz").await, (200, "ready".to_owned()));
    let (status, metrics) = text("/metrics").await;
    assert_eq!(status, 200);
    for series in [
        r#"subledger_http_requests_total{method="POST",route="/v1/tenants/{tenant}/deposits",status="201"} 1"#,
        "subledger_http_request_seconds_bucket",
        "subledger_ledger_batch_transfers_count 1",
        "subledger_ledger_commit_seconds_sum",
        "subledger_ledger_transfers_posted_total 1",
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    let (status, document) = text("/openapi.json").await;
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for path in ["/v1/tenants", "/v1/accounts", "/v1/transfers", "/v1/wallets/{wallet_id}/entries", "/v1/tenants/{tenant}/deposits"] {
        assert!(document["paths"].get(path).is_some(), "{path} is documented");
    }
    assert!(document["components"]["securitySchemes"].get("api_token").is_some());
    assert!(document["components"]["schemas"].get("TransferView").is_some());
}

async fn usd_wallets_open_on_first_use(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Dollars").await;
    let response = h
        .http
        .post(h.url(&format!("/v1/tenants/{}/deposits", tenant.tenant_id)))
        .bearer_auth(ADMIN_TOKEN)
        .header("Idempotency-Key", "usd-1")
        .json(&json!({"amount": "250.00", "currency": "USD"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!((status, body["currency"].as_str()), (201, Some("USD")), "{body}");
    let (_, wallets) = h.get_json("/v1/wallets", &tenant.api_token).await;
    let usd: Vec<&Value> = wallets["items"].as_array().unwrap().iter().filter(|w| w["currency"] == "USD").collect();
    assert_eq!(usd.len(), 4, "primary, promo, world and revenue in USD");
    let report = h.assert_ledger_sound().await;
    assert_eq!(report["balance_sums"], json!([["CNY", 0], ["USD", 0]]));
}
