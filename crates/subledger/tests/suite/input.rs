//! Text that holds NUL or is not valid UTF-8, sent to every string input of
//! every dialect (path and query parameters, JSON fields, SendCloud form
//! values in the body and in the query string) and to the CLI's usage files.
//! Each is refused in its dialect's own format, never with a 5xx, the same
//! way on both backends, and nothing is written. Also the rule for other
//! control characters: refused in keys and names, kept in free text.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    native_refuses_invalid_text_everywhere,
    telephony_refuses_invalid_text_everywhere,
    sendcloud_refuses_invalid_text_everywhere,
    usage_import_reports_invalid_text_by_line,
    control_characters_in_keys_and_names,
);

/// Where a case puts its bad text.
const MARK: &str = "§";
const TENANT_NAME: &str = "Inputs";

/// The two ways text breaks the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    Nul,
    NotUtf8,
}

const BAD: [Bad; 2] = [Bad::Nul, Bad::NotUtf8];

impl Bad {
    /// In a URI or a form: percent-encoded.
    fn percent_encoded(self) -> &'static str {
        match self {
            Bad::Nul => "%00",
            Bad::NotUtf8 => "%FF",
        }
    }

    /// Inside a JSON string: the escape `\u0000`, or a raw byte that is no UTF-8.
    fn in_json(self) -> &'static [u8] {
        match self {
            Bad::Nul => b"\\u0000",
            Bad::NotUtf8 => b"\xFF",
        }
    }
}

/// A tenant with an account `alice001` that has money, a tariff, usage and a
/// transfer: so that every input, were it let through, names something real.
async fn world(h: &Harness) -> Tenant {
    let tenant = h.create_tenant(TENANT_NAME).await;
    h.deposit(&tenant, "100.00").await;
    let token = tenant.api_token.as_str();
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "alice001"})).await;
    assert_eq!(status, 201, "{body}");
    let response = h
        .http
        .post(h.url("/v1/transfers"))
        .bearer_auth(token)
        .header("Idempotency-Key", "fund-alice")
        .json(&json!({"from": {}, "to": {"username": "alice001"}, "amount": "10.00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let tariff = json!({"product": "sms", "effective_from": "2020-01-01T00:00:00Z", "model": {"model": "per_unit", "price": "0.05", "increment": "1"}});
    let (status, body) = h.post_json("/v1/tariffs", token, &tariff).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = h.post_json("/v1/usage", token, &json!({"events": [{"id": "e1", "account": "alice001", "product": "sms", "quantity": 1}]})).await;
    assert_eq!((status, body["accepted"].as_i64()), (200, Some(1)), "{body}");
    tenant
}

/// What a refused request must leave as it was: row counts of every table a
/// request can write, and the values an update would change.
async fn stored_state(h: &Harness, tenant: &Tenant) -> Vec<(String, i64)> {
    let tables = ["tenants", "accounts", "wallets", "transfers", "entries", "products", "tariffs", "usage_events", "usage_daily", "quota_usage", "month_closes", "bills"];
    let mut queries: Vec<String> = tables.iter().map(|table| format!("SELECT COUNT(*) FROM {table}")).collect();
    queries.extend([
        format!("SELECT COUNT(*) FROM tenants WHERE name = '{TENANT_NAME}' AND timezone = 'Asia/Shanghai' AND app_key = '{}'", tenant.app_key),
        "SELECT CAST(SUM(account_limit + default_daily_quota) AS BIGINT) FROM tenants".to_owned(),
        "SELECT CAST(SUM(daily_quota + status) AS BIGINT) FROM accounts".to_owned(),
        "SELECT COUNT(*) FROM accounts WHERE billing_mode = 'postpaid'".to_owned(),
        "SELECT CAST(SUM(ABS(balance_minor) + COALESCE(floor_minor, 0) + entry_seq) AS BIGINT) FROM wallets".to_owned(),
    ]);
    let mut state = Vec::with_capacity(queries.len());
    for query in queries {
        let value = sql_i64(&h.db, &query).await;
        state.push((query, value));
    }
    state
}

/// A refusal of bad input is no failure of the server: nothing may be logged
/// as an error (a storage failure is, at error level).
async fn assert_no_error_logged(h: &Harness) {
    let log = h.server.log().await;
    assert!(!log.lines().any(|line| line.contains("ERROR")), "the server logged an error:\n{log}");
}

/// Who may call a native route.
#[derive(Clone, Copy)]
enum Caller {
    Admin,
    Tenant,
}

/// One native input: a request whose path, query or JSON body holds [`MARK`]
/// where the bad text goes.
struct NativeCase {
    method: &'static str,
    caller: Caller,
    path: String,
    body: Option<String>,
}

fn case(method: &'static str, caller: Caller, path: impl Into<String>, body: Option<&str>) -> NativeCase {
    NativeCase { method, caller, path: path.into(), body: body.map(str::to_owned) }
}

/// Every string input of the native API: each path parameter, each query
/// parameter, each string field of each JSON body.
fn native_cases(tenant_id: &str, wallet_id: i64) -> Vec<NativeCase> {
    use Caller::{Admin, Tenant};
    let t = tenant_id;
    let mut cases = vec![
        // Path parameters.
        case("GET", Admin, format!("/v1/tenants/{t}§"), None),
        case("PATCH", Admin, format!("/v1/tenants/{t}§"), Some(r#"{"name": "Renamed"}"#)),
        case("POST", Admin, format!("/v1/tenants/{t}§/rotate-secrets"), None),
        case("POST", Admin, format!("/v1/tenants/{t}§/deposits"), Some(r#"{"amount": "1.00"}"#)),
        case("PUT", Admin, format!("/v1/tenants/{t}§/overdraft"), Some(r#"{"limit": "5.00"}"#)),
        case("GET", Tenant, "/v1/accounts/alice§001", None),
        case("PUT", Tenant, "/v1/accounts/alice§001/quota", Some(r#"{"daily_quota": 7}"#)),
        case("POST", Tenant, "/v1/accounts/alice§001/freeze", None),
        case("POST", Tenant, "/v1/accounts/alice§001/unfreeze", None),
        case("PUT", Tenant, "/v1/accounts/alice§001/overdraft", Some(r#"{"limit": "5.00"}"#)),
        case("PUT", Tenant, "/v1/accounts/alice§001/billing", Some(r#"{"mode": "postpaid"}"#)),
        case("GET", Tenant, "/v1/accounts/alice§001/daily?from=2024-01-01&to=2024-01-31", None),
        case("GET", Tenant, format!("/v1/wallets/{wallet_id}§/entries"), None),
        case("GET", Tenant, "/v1/transfers/1§", None),
        // Query parameters.
        case("GET", Admin, "/v1/tenants?offset=0§", None),
        case("GET", Admin, "/v1/tenants?limit=5§", None),
        case("GET", Tenant, "/v1/accounts?username=alice§001", None),
        case("GET", Tenant, "/v1/accounts?offset=0§", None),
        case("GET", Tenant, "/v1/accounts?limit=5§", None),
        case("GET", Tenant, "/v1/wallets?username=alice§001", None),
        case("GET", Tenant, format!("/v1/wallets/{wallet_id}/entries?after_seq=0§"), None),
        case("GET", Tenant, format!("/v1/wallets/{wallet_id}/entries?limit=5§"), None),
        case("GET", Tenant, "/v1/tariffs?product=s§ms", None),
        case("GET", Tenant, "/v1/bills?from=2024-01§", None),
        case("GET", Tenant, "/v1/bills?from=2024-01&to=2024-01§", None),
        case("GET", Tenant, "/v1/bills?from=2024-01&username=alice§001", None),
        case("GET", Tenant, "/v1/bills?from=2024-01&month_to_date=true§", None),
        case("GET", Tenant, "/v1/bills?from=2024-01&offset=0§", None),
        case("GET", Tenant, "/v1/bills?from=2024-01&limit=5§", None),
        case("GET", Tenant, "/v1/bills/export?month=2024-01§", None),
        case("GET", Tenant, "/v1/bills/export?month=2024-01&format=c§sv", None),
        case("GET", Tenant, "/v1/accounts/alice001/daily?from=2024-01-01§&to=2024-01-31", None),
        case("GET", Tenant, "/v1/accounts/alice001/daily?from=2024-01-01&to=2024-01-31§", None),
    ];
    // JSON bodies: every string field.
    let bodies: [(&str, Caller, String, &[&str]); 12] = [
        ("POST", Admin, "/v1/tenants".to_owned(), &[r#"{"name": "Ne§w"}"#, r#"{"name": "New", "timezone": "Asia/Shang§hai"}"#]),
        ("PATCH", Admin, format!("/v1/tenants/{t}"), &[r#"{"name": "Ren§amed"}"#, r#"{"timezone": "U§TC"}"#]),
        (
            "POST",
            Admin,
            format!("/v1/tenants/{t}/deposits"),
            &[
                r#"{"amount": "1.0§0"}"#,
                r#"{"amount": "1.00", "currency": "CN§Y"}"#,
                r#"{"amount": "1.00", "wallet": "pri§mary"}"#,
                r#"{"amount": "1.00", "username": "alice§001"}"#,
                r#"{"amount": "1.00", "note": "a gift§"}"#,
            ],
        ),
        ("PUT", Admin, format!("/v1/tenants/{t}/overdraft"), &[r#"{"limit": "5.0§0"}"#, r#"{"limit": "5.00", "currency": "CN§Y"}"#, r#"{"limit": "5.00", "username": "alice§001"}"#]),
        (
            "POST",
            Tenant,
            "/v1/accounts".to_owned(),
            &[
                r#"{"username": "bob§00001"}"#,
                r#"{"username": "bob00001", "user_type": "if§axin"}"#,
                r#"{"username": "bob00001", "phone": "133077§66289"}"#,
                r#"{"username": "bob00001", "email": "bob§@example.com"}"#,
                r#"{"username": "bob00001", "company_name": "Bob§ Ltd"}"#,
                r#"{"username": "bob00001", "company_url": "https://www.exa§mple.com"}"#,
                r#"{"username": "bob00001", "password": "321A§bc"}"#,
            ],
        ),
        ("PUT", Tenant, "/v1/accounts/alice001/overdraft".to_owned(), &[r#"{"limit": "5.0§0"}"#, r#"{"limit": "5.00", "currency": "CN§Y"}"#]),
        ("PUT", Tenant, "/v1/accounts/alice001/billing".to_owned(), &[r#"{"mode": "post§paid"}"#]),
        (
            "POST",
            Tenant,
            "/v1/transfers".to_owned(),
            &[
                r#"{"from": {"username": "alice§001"}, "to": {}, "amount": "1.00"}"#,
                r#"{"from": {"wallet": "pri§mary"}, "to": {"username": "alice001"}, "amount": "1.00"}"#,
                r#"{"from": {}, "to": {"username": "alice§001"}, "amount": "1.00"}"#,
                r#"{"from": {}, "to": {"username": "alice001", "wallet": "pro§mo"}, "amount": "1.00"}"#,
                r#"{"from": {}, "to": {"username": "alice001"}, "amount": "1.0§0"}"#,
                r#"{"from": {}, "to": {"username": "alice001"}, "amount": "1.00", "currency": "CN§Y"}"#,
                r#"{"from": {}, "to": {"username": "alice001"}, "amount": "1.00", "memo": "for§ you"}"#,
            ],
        ),
        (
            "POST",
            Tenant,
            "/v1/products".to_owned(),
            &[
                r#"{"code": "fa§x", "name": "Fax", "unit": "page", "order_type": 90}"#,
                r#"{"code": "fax", "name": "Fa§x", "unit": "page", "order_type": 90}"#,
                r#"{"code": "fax", "name": "Fax", "unit": "pa§ge", "order_type": 90}"#,
                r#"{"code": "fax", "name": "Fax", "unit": "page", "order_type": 90, "grouping": "no§ne"}"#,
                r#"{"code": "fax", "name": "Fax", "unit": "page", "order_type": 90, "quantity_meaning": "pa§ges"}"#,
            ],
        ),
        (
            "POST",
            Tenant,
            "/v1/tariffs".to_owned(),
            &[
                r#"{"product": "s§ms", "model": {"model": "per_unit", "price": "0.06", "increment": "1"}}"#,
                r#"{"product": "sms", "username": "alice§001", "model": {"model": "per_unit", "price": "0.06", "increment": "1"}}"#,
                r#"{"product": "sms", "effective_from": "2030-01-01T00:00:00Z§", "model": {"model": "per_unit", "price": "0.06", "increment": "1"}}"#,
                r#"{"product": "intl_sms", "model": {"model": "by_country", "prices": [{"country_id": 1, "name": "US§A", "price": "0.25"}]}}"#,
            ],
        ),
        (
            "POST",
            Tenant,
            "/v1/usage".to_owned(),
            // A good event first: the batch is refused whole.
            &[
                r#"{"events": [{"id": "g1", "account": "alice001", "product": "sms", "quantity": 1}, {"id": "b§1", "account": "alice001", "product": "sms", "quantity": 1}]}"#,
                r#"{"events": [{"id": "g1", "account": "alice001", "product": "sms", "quantity": 1}, {"id": "b1", "account": "alice§001", "product": "sms", "quantity": 1}]}"#,
                r#"{"events": [{"id": "g1", "account": "alice001", "product": "sms", "quantity": 1}, {"id": "b1", "account": "alice001", "product": "s§ms", "quantity": 1}]}"#,
                r#"{"events": [{"id": "g1", "account": "alice001", "product": "sms", "quantity": 1}, {"id": "b1", "account": "alice001", "product": "sms", "quantity": "1§"}]}"#,
                r#"{"events": [{"id": "g1", "account": "alice001", "product": "sms", "quantity": 1}, {"id": "b1", "account": "alice001", "product": "sms", "quantity": 1, "occurred_at": "2024-01-01T00:00:00Z§"}]}"#,
                r#"{"events": [{"id": "g1", "account": "alice001", "product": "sms", "quantity": 1}, {"id": "b1", "account": "alice001", "product": "sms", "quantity": 1, "attributes": {"no§te": "x"}}]}"#,
                r#"{"events": [{"id": "g1", "account": "alice001", "product": "sms", "quantity": 1}, {"id": "b1", "account": "alice001", "product": "sms", "quantity": 1, "attributes": {"note": "x§"}}]}"#,
            ],
        ),
        ("POST", Tenant, "/v1/bills/close".to_owned(), &[r#"{"month": "2024-01§"}"#]),
    ];
    for (method, caller, path, templates) in bodies {
        for body in templates {
            cases.push(case(method, caller, path.clone(), Some(body)));
        }
    }
    cases
}

async fn native_refuses_invalid_text_everywhere(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = world(&h).await;
    let (_, wallets) = h.get_json("/v1/wallets", &tenant.api_token).await;
    let wallet_id = wallets["items"][0]["wallet_id"].as_i64().expect("a wallet id");
    let before = stored_state(&h, &tenant).await;
    let cases = native_cases(&tenant.tenant_id, wallet_id);
    assert_eq!(cases.len(), 79, "every string input of the native API");

    for (n, case) in cases.iter().enumerate() {
        assert_eq!(case.path.matches(MARK).count() + case.body.as_deref().map_or(0, |b| b.matches(MARK).count()), 1, "{}", case.path);
        for bad in BAD {
            let path = case.path.replace(MARK, bad.percent_encoded());
            let mut request = h.http.request(case.method.parse().unwrap(), h.url(&path)).header("Idempotency-Key", format!("input-{n}-{bad:?}"));
            request = request.bearer_auth(match case.caller {
                Caller::Admin => ADMIN_TOKEN,
                Caller::Tenant => &tenant.api_token,
            });
            let mut in_body = false;
            if let Some(body) = &case.body {
                in_body = body.contains(MARK);
                let bytes = body.replace(MARK, "\u{1}").into_bytes();
                let bytes: Vec<u8> = bytes.iter().flat_map(|b| if *b == 1 { bad.in_json().to_vec() } else { vec![*b] }).collect();
                request = request.header("Content-Type", "application/json").body(bytes);
            }
            let (status, answer) = status_and_json(request.send().await.unwrap()).await;
            // A body that is not UTF-8 is not JSON (RFC 8259): the parser refuses it.
            let expected = if in_body && bad == Bad::NotUtf8 { "invalid_body" } else { "invalid_text" };
            assert_eq!((status, answer["error"]["code"].as_str()), (400, Some(expected)), "{} {path} {:?} ({bad:?}): {answer}", case.method, case.body);
            assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
        }
    }
    assert_eq!(stored_state(&h, &tenant).await, before, "a refused request writes nothing");
    assert_no_error_logged(&h).await;
    // The path and query are checked before the credentials: the answer does not depend on them.
    let (status, answer) = status_and_json(h.http.get(h.url("/v1/accounts?username=%00")).send().await.unwrap()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_text")), "{answer}");
    // The API still works for the same tenant: its token and key were not rotated.
    let (status, body) = h.get_json("/v1/accounts/alice001", &tenant.api_token).await;
    assert_eq!((status, body["daily_quota"].as_i64()), (200, Some(2500)), "{body}");
}

async fn telephony_refuses_invalid_text_everywhere(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = world(&h).await;
    let before = stored_state(&h, &tenant).await;
    let cases = [
        "/balance/charges?accountId=alice§001",
        "/balance/getAccountAmount/alice§001",
        "/balance/getConsumerOverview/alice§001",
        "/balance/getAccountInfo/alice§001",
        "/balance/getConsumerInfo/alice§001/2024-03",
        "/balance/getConsumerInfo/alice001/2024-03§",
        "/balance/getConsumptionTrend/alice§001",
        // A query parameter no endpoint reads is still part of the request.
        "/balance/getAccountAmount/alice001?from=x§",
    ];
    for case in cases {
        for bad in BAD {
            let path = case.replace(MARK, bad.percent_encoded());
            let response = h.http.get(h.url(&path)).bearer_auth(&tenant.api_token).send().await.unwrap();
            let (status, answer) = status_and_json(response).await;
            let part = if case.split('?').next().unwrap().contains(MARK) { "路径参数错误" } else { "查询参数错误" };
            let rule = match bad {
                Bad::Nul => "不得包含NUL字符",
                Bad::NotUtf8 => "请使用UTF-8编码",
            };
            assert_eq!(status, 400, "{path}: {answer}");
            assert_eq!(answer, json!({"code": 400, "msg": format!("{part}：{rule}"), "data": null}), "{path}");
        }
    }
    // The text is checked before the credentials: the answer does not depend on them.
    let response = h.http.get(h.url("/balance/getAccountAmount/alice%00001")).send().await.unwrap();
    assert_eq!(status_and_json(response).await, (400, json!({"code": 400, "msg": "路径参数错误：不得包含NUL字符", "data": null})));
    // Clean text that is still no query of `charges`.
    let response = h.http.get(h.url("/balance/charges?accountId=alice001&accountId=bob00001")).bearer_auth(&tenant.api_token).send().await.unwrap();
    assert_eq!(status_and_json(response).await, (400, json!({"code": 400, "msg": "查询参数错误", "data": null})));
    assert_eq!(stored_state(&h, &tenant).await, before);
    assert_no_error_logged(&h).await;
}

/// The endpoints of the SendCloud dialect with a valid value for each of their parameters.
fn sendcloud_endpoints() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let bills = vec![("startMonth", "202401"), ("endMonth", "202401"), ("username", "alice001"), ("startNo", "0"), ("pageSize", "10")];
    vec![
        ("list", vec![("username", "alice001"), ("startNo", "0"), ("pageSize", "10")]),
        (
            "create",
            vec![
                ("username", "carol001"),
                ("userType", "1"),
                ("phone", "13307766289"),
                ("email", "carol@example.com"),
                ("companyName", "公司"),
                ("companyUrl", "https://www.example.com"),
                ("pwd", "321Abc"),
            ],
        ),
        ("transferIn", vec![("username", "alice001"), ("money", "1.00")]),
        ("quota", vec![("username", "alice001"), ("quota", "7")]),
        ("bill", bills.clone()),
        ("billDetail", bills),
    ]
}

/// A signed form whose parameter `bad_param` breaks the rule. With NUL the
/// request is signed over the NUL itself, as a client would sign it; invalid
/// UTF-8 cannot be held in a Rust string, so its bytes replace a mark after
/// encoding.
fn form_with_bad(tenant: &Tenant, params: &[(&str, &str)], bad_param: &str, bad: Bad) -> String {
    let broken = |value: &str| {
        let at = value.chars().next().map_or(0, char::len_utf8);
        let inserted = match bad {
            Bad::Nul => "\0",
            Bad::NotUtf8 => MARK,
        };
        format!("{}{inserted}{}", &value[..at], &value[at..])
    };
    let timestamp = fresh_timestamp_ms().to_string();
    let mut all: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    all.push(("appId", tenant.app_id.clone()));
    if bad_param == "timestamp" {
        all.push(("timestamp", timestamp));
    }
    for (name, value) in &mut all {
        if *name == bad_param {
            *value = broken(value);
        }
    }
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut form = signed_form(tenant, &refs, true);
    if bad_param == "signature" {
        form = form.replace("signature=", &format!("signature={}", bad.percent_encoded()));
    }
    let encoded_mark: String = MARK.bytes().map(|b| format!("%{b:02X}")).collect();
    let form = form.replace(&encoded_mark, Bad::NotUtf8.percent_encoded());
    assert!(form.contains(bad.percent_encoded()), "{form}");
    form
}

async fn sendcloud_refuses_invalid_text_everywhere(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = world(&h).await;
    let before = stored_state(&h, &tenant).await;
    let mut inputs = 0;
    for (endpoint, params) in sendcloud_endpoints() {
        let names: Vec<&str> = params.iter().map(|(name, _)| *name).chain(["appId", "timestamp", "signature"]).collect();
        for name in names {
            inputs += 1;
            for bad in BAD {
                // In the body, then in the query string (a request of its own, signed afresh).
                let reply = h.sendcloud_raw_post(endpoint, &form_with_bad(&tenant, &params, name, bad)).await;
                assert_code(&reply, 400, "请求失败");
                let path = format!("/api/subAccount/{endpoint}?{}", form_with_bad(&tenant, &params, name, bad));
                let response = h.http.post(h.url(&path)).header("Content-Type", "application/x-www-form-urlencoded").send().await.unwrap();
                assert_eq!(response.status(), 200, "{path}");
                assert_code(&response.json().await.unwrap(), 400, "请求失败");
            }
        }
    }
    assert_eq!(inputs, 42, "every parameter of every SendCloud endpoint");
    assert_eq!(stored_state(&h, &tenant).await, before);
    assert_no_error_logged(&h).await;
    // The same request without the bad byte goes through: the refusals above were the text's.
    let reply = h.sendcloud("quota", &tenant, &[("username", "alice001"), ("quota", "7")]).await;
    assert_code(&reply, 200, "请求成功");
}

async fn usage_import_reports_invalid_text_by_line(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = world(&h).await;
    let dir = tempfile::tempdir().unwrap();
    let import = |path: std::path::PathBuf| {
        let tenant_id = tenant.tenant_id.clone();
        let h = &h;
        async move {
            let (ok, stdout, stderr) = h.cli(&["usage", "import", "--tenant", &tenant_id, path.to_str().unwrap(), "--json"]).await;
            assert!(ok, "{stdout} {stderr}");
            serde_json::from_str::<Value>(&stdout).unwrap_or_else(|_| panic!("JSON: {stdout}"))
        }
    };
    let malformed = |report: &Value| -> Vec<(u64, String)> { report["malformed"].as_array().unwrap().iter().map(|m| (m["line"].as_u64().unwrap(), m["error"].as_str().unwrap().to_owned())).collect() };

    let csv = dir.path().join("usage.csv");
    let mut text = b"id,account,product,quantity,note\nc1,alice001,sms,1,\n".to_vec();
    text.extend_from_slice(b"c2,alice\x00001,sms,1,\n");
    text.extend_from_slice(b"c3,alice001,sms,1,\"a\0b\"\n");
    text.extend_from_slice(b"c4,alice001,sms,1,\xFF\n");
    text.extend_from_slice(b"c5,alice001,sms,1,\n");
    std::fs::write(&csv, text).unwrap();
    let report = import(csv).await;
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(2), Some(3)), "{report}");
    assert_eq!(malformed(&report), [(3, "the line holds a NUL character".to_owned()), (4, "the line holds a NUL character".to_owned()), (5, "the line is not valid UTF-8".to_owned())], "{report}");

    let jsonl = dir.path().join("usage.jsonl");
    let lines = [
        r#"{"id": "j1", "account": "alice001", "product": "sms", "quantity": 1}"#,
        r#"{"id": "j2", "account": "alice\u0000001", "product": "sms", "quantity": 1}"#,
        r#"{"id": "j3", "account": "alice001", "product": "sms", "quantity": 1, "attributes": {"note": "\u0000"}}"#,
        r#"{"id": "j4", "account": "alice001", "product": "sms", "quantity": 1, "attributes": {"note": "\\u0000 is six characters here"}}"#,
    ];
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let report = import(jsonl).await;
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(2), Some(2)), "{report}");
    assert_eq!(malformed(&report), [(2, "the line holds a NUL character".to_owned()), (3, "the line holds a NUL character".to_owned())], "{report}");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM usage_events").await, 5, "e1, c1, c5, j1, j4");

    // A price model given on the command line is JSON text too.
    let model = r#"{"model":"by_country","prices":[{"country_id":1,"name":"US\u0000A","price":"0.25"}]}"#;
    let (ok, _, stderr) = h.cli(&["tariff", "set", "--tenant", &tenant.tenant_id, "--product", "intl_sms", "--model", model]).await;
    assert!(!ok && stderr.contains("holds a NUL character"), "{stderr}");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM tariffs").await, 1);
}

async fn control_characters_in_keys_and_names(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = world(&h).await;
    let token = tenant.api_token.as_str();
    let before = stored_state(&h, &tenant).await;

    // Product names and units are shown on bills and exports, as company names are.
    for product in [
        json!({"code": "fax", "name": "Fax\tpages", "unit": "page", "order_type": 90}),
        json!({"code": "fax", "name": "Fax", "unit": "pa\u{7}ge", "order_type": 90}),
        json!({"code": "fax", "name": "Fax", "unit": "page", "order_type": 90, "quantity_meaning": "one\npage"}),
    ] {
        let (status, body) = h.post_json("/v1/products", token, &product).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{product}: {body}");
    }
    // Attribute names are keys, like event ids: the batch is refused whole.
    for attributes in [json!({"no\rte": "x"}), json!({"\u{1b}[31mnote": "x"}), json!({"item\u{85}": "10.0.0.1"})] {
        let events =
            json!({"events": [{"id": "g1", "account": "alice001", "product": "sms", "quantity": 1}, {"id": "b1", "account": "alice001", "product": "sms", "quantity": 1, "attributes": attributes}]});
        let (status, body) = h.post_json("/v1/usage", token, &events).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{attributes}: {body}");
    }
    assert_eq!(stored_state(&h, &tenant).await, before);

    // Free text keeps its tabs and line breaks: memos, attribute values.
    let events = json!({"events": [{"id": "n1", "account": "alice001", "product": "sms", "quantity": 1, "attributes": {"note": "two\r\nlines\tand a tab"}}]});
    let (status, body) = h.post_json("/v1/usage", token, &events).await;
    assert_eq!((status, body["accepted"].as_i64()), (200, Some(1)), "{body}");
    let response = h
        .http
        .post(h.url("/v1/transfers"))
        .bearer_auth(token)
        .header("Idempotency-Key", "memo-with-a-tab")
        .json(&json!({"from": {}, "to": {"username": "alice001"}, "amount": "1.00", "memo": "invoice\t42\nthanks"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 201, "{body}");
    let (_, transfer) = h.get_json(&format!("/v1/transfers/{}", body["transfer_id"].as_str().unwrap()), token).await;
    assert_eq!(transfer["memo"], "invoice\t42\nthanks");
    let (status, body) = h.post_json("/v1/products", token, &json!({"code": "fax", "name": "Fax  ", "unit": "page", "order_type": 90, "quantity_meaning": "页数"})).await;
    assert_eq!((status, body["name"].as_str(), body["quantity_meaning"].as_str()), (201, Some("Fax"), Some("页数")), "{body}");
}
