//! The SendCloud dialect, called the way its clients call it: signed form
//! posts, the spec's own examples, and every return code these endpoints can give.

use serde_json::json;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    spec_examples_work_end_to_end,
    list_pages_counts_and_filters,
    list_answers_get_and_post,
    authentication_codes,
    timestamp_window_and_replays,
    replays_are_refused_by_every_process_and_after_a_restart,
    replay_records_expire,
    transfer_in_needs_a_timestamp_unless_relaxed,
    create_validation_codes,
    account_limit_417,
    transfer_in_money_codes,
    transfer_in_balance_codes,
    unknown_usernames_423,
    quota_sets_and_validates,
    storage_failures_101_102_104,
    a_signed_change_and_its_replay_record_commit_together,
    bad_input_is_refused_cleanly,
    tenants_are_isolated,
    frozen_accounts_show_in_list,
);

async fn spec_examples_work_end_to_end(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Acme").await;
    h.deposit(&tenant, "1000.00").await;

    // create, exactly the spec's example request.
    let reply = h.sendcloud("create", &tenant, &[("username", "sdfwevsdf"), ("userType", "0"), ("companyName", "公司"), ("companyUrl", "https://www.baidu.com"), ("pwd", "321Abc")]).await;
    assert_code(&reply, 200, "请求成功");
    let api_user = reply["info"]["apiUser"].as_str().expect("apiUser for a SendCloud account");
    assert!(api_user.starts_with("sdfwevsdf_"), "{reply}");
    assert_eq!(reply["info"]["apiKey"].as_str().map(str::len), Some(16), "{reply}");

    // An iFaxin account gets no API credentials.
    let reply = h
        .sendcloud("create", &tenant, &[("username", "GuokaiNew"), ("userType", "1"), ("phone", "13307766289"), ("companyName", "公司"), ("companyUrl", "https://www.baidu.com"), ("pwd", "321Abc")])
        .await;
    assert_code(&reply, 200, "请求成功");
    assert_eq!(reply["info"], json!({}));

    // transferIn, the spec's example amount.
    let reply = h.sendcloud("transferIn", &tenant, &[("username", "sdfwevsdf"), ("money", "654.00")]).await;
    assert_code(&reply, 200, "请求成功");

    // quota, the spec's example.
    let reply = h.sendcloud("quota", &tenant, &[("username", "sdfwevsdf"), ("quota", "2500")]).await;
    assert_code(&reply, 200, "请求成功");
    assert_eq!(reply["info"], json!({"username": "sdfwevsdf", "quota": 2500, "todayUsedQuota": 0}));

    // list shows both, balances as numbers with two decimals.
    let response = h
        .http
        .post(h.url("/api/subAccount/list"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(signed_form(&tenant, &[("startNo", "0"), ("pageSize", "10")], true))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""balance":654.00"#), "money is written with two decimals: {text}");
    assert!(text.contains(r#""balance":0.00"#), "{text}");
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_code(&reply, 200, "请求成功");
    assert_eq!(reply["info"]["total"], 2);
    assert_eq!(reply["info"]["freeze"], 0);
    assert_eq!(reply["info"]["available"], 2);
    assert_eq!(reply["info"]["count"], 2);
    let first = &reply["info"]["list"][0];
    assert_eq!(first["username"], "sdfwevsdf");
    assert_eq!(first["userType"], 0);
    assert_eq!(first["status"], 1);
    assert_eq!(first["quota"], 2500);
    assert_eq!(first["todayUsedQuota"], 0);
    assert_eq!(reply["info"]["list"][1]["phone"], "13307766289");
    assert_eq!(reply["info"]["list"][1]["userType"], 1);

    // The stored effect: one allocation, the parent debited, the ledger sound.
    let (_, wallets) = h.get_json("/v1/wallets", &tenant.api_token).await;
    let primary = wallets["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary").unwrap();
    assert_eq!(primary["balance"], "346.00");
    let (_, entries) = h.get_json(&format!("/v1/wallets/{}/entries", primary["wallet_id"]), &tenant.api_token).await;
    assert_eq!(entries["items"][1]["kind"], "allocation");
    assert_eq!(entries["items"][1]["amount"], "-654.00");
    assert_eq!(entries["items"][1]["balance_after"], "346.00");
    h.assert_ledger_sound().await;
}

async fn list_pages_counts_and_filters(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Pages").await;
    for i in 0..12 {
        h.create_account(&tenant, &format!("user{i:04}")).await;
    }
    // Defaults: startNo 0, pageSize 10.
    let reply = h.sendcloud("list", &tenant, &[]).await;
    assert_eq!(reply["info"]["total"], 12);
    assert_eq!(reply["info"]["count"], 10);
    assert_eq!(reply["info"]["list"][0]["username"], "user0000");
    let reply = h.sendcloud("list", &tenant, &[("startNo", "10"), ("pageSize", "10")]).await;
    assert_eq!(reply["info"]["count"], 2);
    assert_eq!(reply["info"]["list"][1]["username"], "user0011");
    // pageSize 0 is inside [0, 200]: counts only.
    let reply = h.sendcloud("list", &tenant, &[("pageSize", "0")]).await;
    assert_code(&reply, 200, "请求成功");
    assert_eq!(reply["info"]["count"], 0);
    assert_eq!(reply["info"]["total"], 12);
    let reply = h.sendcloud("list", &tenant, &[("pageSize", "200")]).await;
    assert_eq!(reply["info"]["count"], 12);
    // Exact username filter.
    let reply = h.sendcloud("list", &tenant, &[("username", "user0007")]).await;
    assert_eq!(reply["info"]["total"], 1);
    assert_eq!(reply["info"]["list"][0]["username"], "user0007");
    // 424: paging out of range.
    for (name, value) in [("pageSize", "201"), ("pageSize", "-1"), ("pageSize", "ten"), ("startNo", "-1"), ("pageSize", "99999999999999999999")] {
        let reply = h.sendcloud("list", &tenant, &[(name, value)]).await;
        assert_code(&reply, 424, "查询条数限制");
    }
}

async fn list_answers_get_and_post(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Methods").await;
    h.create_account(&tenant, "wangbowen123").await;
    let reply = h.sendcloud_get("list", &signed_form(&tenant, &[("username", "wangbowen123")], true)).await;
    assert_code(&reply, 200, "请求成功");
    assert_eq!(reply["info"]["list"][0]["username"], "wangbowen123");
    // Mutations are POST only, as documented.
    for endpoint in ["create", "transferIn", "quota"] {
        let reply = h.sendcloud_get(endpoint, &signed_form(&tenant, &[("username", "wangbowen123"), ("quota", "1")], true)).await;
        assert_code(&reply, 400, "请求失败");
    }
    // Signed parameters may also come in the query string of a POST.
    let response = h.http.post(h.url(&format!("/api/subAccount/list?{}", signed_form(&tenant, &[], true)))).send().await.unwrap();
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_code(&reply, 200, "请求成功");
}

async fn authentication_codes(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Auth").await;
    // 401: no appId, or an empty one.
    assert_code(&h.sendcloud_raw_post("list", "pageSize=10").await, 401, "AppId不能为空");
    assert_code(&h.sendcloud_raw_post("list", "appId=&pageSize=10").await, 401, "AppId不能为空");
    // 402: an appId nobody has.
    let stranger = Tenant { app_id: "nosuchapp".into(), ..tenant.clone() };
    assert_code(&h.sendcloud("list", &stranger, &[]).await, 402, "找不到该appId");
    // 403: signature missing or not an MD5 hex digest.
    let unsigned = form(&[("appId".into(), tenant.app_id.clone()), ("timestamp".into(), fresh_timestamp_ms().to_string())]);
    assert_code(&h.sendcloud_raw_post("list", &unsigned).await, 403, "签名参数错误");
    assert_code(&h.sendcloud_raw_post("list", &format!("{unsigned}&signature=xyz")).await, 403, "签名参数错误");
    // 404: a well-formed signature that does not match, a wrong key, a tampered parameter.
    assert_code(&h.sendcloud_raw_post("list", &format!("{unsigned}&signature={}", "0".repeat(32))).await, 404, "签名错误");
    let wrong_key = Tenant { app_key: "not-the-key".into(), ..tenant.clone() };
    assert_code(&h.sendcloud("list", &wrong_key, &[]).await, 404, "签名错误");
    let tampered = signed_form(&tenant, &[("pageSize", "10")], true).replace("pageSize=10", "pageSize=20");
    assert_code(&h.sendcloud_raw_post("list", &tampered).await, 404, "签名错误");
    // Upper-case hex is the same signature.
    let signed = signed_form(&tenant, &[], true);
    let (head, signature) = signed.rsplit_once("signature=").unwrap();
    assert_code(&h.sendcloud_raw_post("list", &format!("{head}signature={}", signature.to_uppercase())).await, 200, "请求成功");
}

async fn timestamp_window_and_replays(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Time").await;
    h.deposit(&tenant, "100.00").await;
    h.create_account(&tenant, "alice001").await;
    let now = fresh_timestamp_ms();
    // 425: outside the default 6 s window either way, or not a number.
    for stale in [(now - 60_000).to_string(), (now + 60_000).to_string(), "yesterday".into(), "".into(), "1.5e12".into()] {
        let reply = h.sendcloud("list", &tenant, &[("timestamp", &stale)]).await;
        assert_code(&reply, 425, "时间戳无效");
    }
    // A signed request replayed within the window is refused, whatever the endpoint.
    let once = signed_form(&tenant, &[("username", "alice001"), ("money", "10.00")], true);
    assert_code(&h.sendcloud_raw_post("transferIn", &once).await, 200, "请求成功");
    assert_code(&h.sendcloud_raw_post("transferIn", &once).await, 425, "时间戳无效");
    let list = signed_form(&tenant, &[], true);
    assert_code(&h.sendcloud_raw_post("list", &list).await, 200, "请求成功");
    assert_code(&h.sendcloud_raw_post("list", &list).await, 425, "时间戳无效");
    // The replay moved nothing.
    let reply = h.sendcloud("list", &tenant, &[("username", "alice001")]).await;
    assert_eq!(reply["info"]["list"][0]["balance"], 10.0);
}

/// The replay guard lives in the database: a captured signed request is
/// refused by another server process, and by the same one after a restart.
async fn replays_are_refused_by_every_process_and_after_a_restart(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let tenant = h.create_tenant("Replays").await;
    h.deposit(&tenant, "100.00").await;
    h.create_account(&tenant, "alice001").await;
    let second = TestServer::start(&h.db, &[]).await;
    let (first_base, second_base) = (h.server.base.clone(), second.base.clone());

    let quota = signed_form(&tenant, &[("username", "alice001"), ("quota", "100")], true);
    assert_code(&sendcloud_post(&h.http, &first_base, "quota", &quota).await, 200, "请求成功");
    assert_code(&sendcloud_post(&h.http, &second_base, "quota", &quota).await, 425, "时间戳无效");

    let create = signed_form(&tenant, &[("username", "bob00001"), ("userType", "1"), ("companyName", "公司"), ("companyUrl", "https://www.example.com"), ("pwd", "321Abc")], true);
    assert_code(&sendcloud_post(&h.http, &second_base, "create", &create).await, 200, "请求成功");
    assert_code(&sendcloud_post(&h.http, &first_base, "create", &create).await, 425, "时间戳无效");

    let transfer = signed_form(&tenant, &[("username", "alice001"), ("money", "10.00")], true);
    assert_code(&sendcloud_post(&h.http, &second_base, "transferIn", &transfer).await, 200, "请求成功");
    assert_code(&sendcloud_post(&h.http, &first_base, "transferIn", &transfer).await, 425, "时间戳无效");

    let list = signed_form(&tenant, &[], true);
    assert_code(&sendcloud_post(&h.http, &first_base, "list", &list).await, 200, "请求成功");
    assert!(h.server.stop_gracefully().await, "the first server stops cleanly");
    h.server = TestServer::start(&h.db, &[]).await;
    for (endpoint, body) in [("list", &list), ("quota", &quota), ("create", &create), ("transferIn", &transfer)] {
        assert_code(&h.sendcloud_raw_post(endpoint, body).await, 425, "时间戳无效");
    }
    // Nothing was done twice.
    let reply = h.sendcloud("list", &tenant, &[]).await;
    assert_eq!(reply["info"]["total"], 2, "{reply}");
    let reply = h.sendcloud("list", &tenant, &[("username", "alice001")]).await;
    assert_eq!((reply["info"]["list"][0]["balance"].as_f64(), reply["info"]["list"][0]["quota"].as_i64()), (Some(10.0), Some(100)), "{reply}");
}

/// Records of signed requests are swept once their timestamp left the window,
/// so the guard's table stays about one window long.
async fn replay_records_expire(backend: Backend) {
    let h = Harness::start_with(backend, &["--sendcloud-timestamp-window-ms", "1000"]).await;
    let tenant = h.create_tenant("Expiry").await;
    for _ in 0..5 {
        assert_code(&h.sendcloud("list", &tenant, &[]).await, 200, "请求成功");
    }
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM signed_requests").await, 5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sql_i64(&h.db, "SELECT COUNT(*) FROM signed_requests").await > 0 {
        assert!(std::time::Instant::now() < deadline, "expired records are swept within a few windows");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn transfer_in_needs_a_timestamp_unless_relaxed(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Legacy").await;
    h.deposit(&tenant, "100.00").await;
    h.create_account(&tenant, "legacy01").await;
    let untimed = signed_form(&tenant, &[("username", "legacy01"), ("money", "5")], false);
    assert_code(&h.sendcloud_raw_post("transferIn", &untimed).await, 425, "时间戳无效");
    // Other endpoints accept untimed requests (the timestamp is optional in the spec).
    assert_code(&h.sendcloud_raw_post("list", &signed_form(&tenant, &[], false)).await, 200, "请求成功");
    drop(h);

    // The documented setting for legacy clients.
    let h = Harness::start_with(backend, &["--sendcloud-transfer-timestamp-optional"]).await;
    let tenant = h.create_tenant("Legacy").await;
    h.deposit(&tenant, "100.00").await;
    h.create_account(&tenant, "legacy01").await;
    let untimed = signed_form(&tenant, &[("username", "legacy01"), ("money", "5")], false);
    assert_code(&h.sendcloud_raw_post("transferIn", &untimed).await, 200, "请求成功");
    // Without a timestamp there is no replay protection: the same request is a second transfer.
    assert_code(&h.sendcloud_raw_post("transferIn", &untimed).await, 200, "请求成功");
    let reply = h.sendcloud("list", &tenant, &[("username", "legacy01")]).await;
    assert_eq!(reply["info"]["list"][0]["balance"], 10.0);
}

async fn create_validation_codes(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Create").await;
    let valid = [("username", "newuser01"), ("userType", "0"), ("companyName", "公司"), ("companyUrl", "https://www.baidu.com"), ("pwd", "321Abc")];
    let with = |name: &'static str, value: &'static str| -> Vec<(&'static str, &'static str)> {
        let mut params: Vec<_> = valid.iter().filter(|(k, _)| *k != name).copied().collect();
        params.push((name, value));
        params
    };
    let without = |name: &str| -> Vec<(&'static str, &'static str)> { valid.iter().filter(|(k, _)| *k != name).copied().collect() };
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (with("email", "not-an-email"), 405, "邮箱不能为空且确保格式正确"),
        (with("email", ""), 405, "邮箱不能为空且确保格式正确"),
        (with("phone", "184040713"), 406, "手机号不能为空且保证格式正确"),
        (with("phone", ""), 406, "手机号不能为空且保证格式正确"),
        (without("username"), 407, "用户名不能为空"),
        (with("username", ""), 407, "用户名不能为空"),
        (without("companyName"), 408, "公司名称不能为空"),
        (with("companyName", "   "), 408, "公司名称不能为空"),
        (without("companyUrl"), 409, "公司网址不能为空"),
        (without("pwd"), 410, "密码不能为空"),
        (with("pwd", "123456"), 413, "密码设置不符合规则"),
        (with("pwd", "abc"), 413, "密码设置不符合规则"),
        (with("companyUrl", "www.baidu.com"), 414, "公司网址无效"),
        (with("companyUrl", "javascript:alert(1)"), 414, "公司网址无效"),
        (with("userType", "2"), 415, "账户类型错误"),
        (without("userType"), 415, "账户类型错误"),
        (with("username", "1abc"), 426, "用户名格式不正确"),
        (with("username", "x' OR '1'='1"), 426, "用户名格式不正确"),
        (with("username", "用户名称"), 426, "用户名格式不正确"),
    ];
    for (params, code, message) in cases {
        let reply = h.sendcloud("create", &tenant, &params).await;
        assert_code(&reply, code, message);
    }
    // Nothing of the refused requests was stored.
    assert_eq!(h.sendcloud("list", &tenant, &[]).await["info"]["total"], 0);

    // 418 / 419: unique username and phone per tenant.
    let first = with("phone", "15172212992");
    assert_code(&h.sendcloud("create", &tenant, &first).await, 200, "请求成功");
    assert_code(&h.sendcloud("create", &tenant, &first).await, 418, "用户名已存在");
    let mut same_phone = with("phone", "15172212992");
    same_phone.retain(|(k, _)| *k != "username");
    same_phone.push(("username", "otheruser"));
    assert_code(&h.sendcloud("create", &tenant, &same_phone).await, 419, "手机号已存在");
    // Another tenant may use the same username and phone.
    let other = h.create_tenant("Other").await;
    assert_code(&h.sendcloud("create", &other, &first).await, 200, "请求成功");
}

async fn account_limit_417(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Capped").await;
    let (status, body) =
        h.http.patch(h.url(&format!("/v1/tenants/{}", tenant.tenant_id))).bearer_auth(ADMIN_TOKEN).json(&json!({"account_limit": 2})).send().await.map(|r| (r.status().as_u16(), r)).unwrap();
    assert_eq!(status, 200, "{:?}", body.text().await);
    h.create_account(&tenant, "capped01").await;
    h.create_account(&tenant, "capped02").await;
    let reply = h.sendcloud("create", &tenant, &[("username", "capped03"), ("userType", "0"), ("companyName", "公司"), ("companyUrl", "https://www.baidu.com"), ("pwd", "321Abc")]).await;
    assert_code(&reply, 417, "关联子账户超出限制");
    assert_eq!(h.sendcloud("list", &tenant, &[]).await["info"]["total"], 2);
}

async fn transfer_in_money_codes(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Money").await;
    h.deposit(&tenant, "20000.00").await;
    h.create_account(&tenant, "adf54654").await;
    for bad in ["", "abc", "1.001", "-5", "+5", "1e3", "1,000", "１００"] {
        let reply = h.sendcloud("transferIn", &tenant, &[("username", "adf54654"), ("money", bad)]).await;
        assert_code(&reply, 421, "分账金额错误");
    }
    let reply = h.sendcloud("transferIn", &tenant, &[("username", "adf54654")]).await;
    assert_code(&reply, 421, "分账金额错误");
    for out_of_range in ["0.99", "0", "10000.01", "99999999999999999999999999"] {
        let reply = h.sendcloud("transferIn", &tenant, &[("username", "adf54654"), ("money", out_of_range)]).await;
        assert_code(&reply, 422, "分账金额不正确");
    }
    // The bounds themselves and the spec's "105" format are fine.
    for good in ["1.00", "10000.00", "105"] {
        let reply = h.sendcloud("transferIn", &tenant, &[("username", "adf54654"), ("money", good)]).await;
        assert_code(&reply, 200, "请求成功");
    }
    let reply = h.sendcloud("list", &tenant, &[("username", "adf54654")]).await;
    assert_eq!(reply["info"]["list"][0]["balance"], 10106.0);
}

async fn transfer_in_balance_codes(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Balance").await;
    h.create_account(&tenant, "poorkid1").await;
    // 420: the parent has nothing.
    assert_code(&h.sendcloud("transferIn", &tenant, &[("username", "poorkid1"), ("money", "1.00")]).await, 420, "余额不足分账失败");
    h.deposit(&tenant, "100.00").await;
    assert_code(&h.sendcloud("transferIn", &tenant, &[("username", "poorkid1"), ("money", "100.01")]).await, 420, "余额不足分账失败");
    // With an overdraft the parent may go below zero once...
    let (status, _) =
        h.http.put(h.url(&format!("/v1/tenants/{}/overdraft", tenant.tenant_id))).bearer_auth(ADMIN_TOKEN).json(&json!({"limit": "500.00"})).send().await.map(|r| (r.status().as_u16(), ())).unwrap();
    assert_eq!(status, 200);
    assert_code(&h.sendcloud("transferIn", &tenant, &[("username", "poorkid1"), ("money", "300.00")]).await, 200, "请求成功");
    // ... and then, in the red, it must recharge first: 416.
    assert_code(&h.sendcloud("transferIn", &tenant, &[("username", "poorkid1"), ("money", "1.00")]).await, 416, "余额为负,请充值后再来");
    let (_, wallets) = h.get_json("/v1/wallets", &tenant.api_token).await;
    let primary = wallets["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary").unwrap().clone();
    assert_eq!(primary["balance"], "-200.00");
    assert_eq!(primary["floor_minor"], -50_000);
    h.assert_ledger_sound().await;
}

async fn unknown_usernames_423(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Unknown").await;
    h.deposit(&tenant, "100.00").await;
    assert_code(&h.sendcloud("transferIn", &tenant, &[("username", "nobody01"), ("money", "1.00")]).await, 423, "找不到该用户名");
    assert_code(&h.sendcloud("quota", &tenant, &[("username", "nobody01"), ("quota", "10")]).await, 423, "找不到该用户名");
    assert_code(&h.sendcloud("list", &tenant, &[("username", "nobody01")]).await, 423, "找不到该用户名");
    // A missing username is 407, a malformed one 426, on every endpoint that takes one.
    assert_code(&h.sendcloud("transferIn", &tenant, &[("money", "1.00")]).await, 407, "用户名不能为空");
    assert_code(&h.sendcloud("quota", &tenant, &[("username", "a b"), ("quota", "1")]).await, 426, "用户名格式不正确");
}

async fn quota_sets_and_validates(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Quota").await;
    h.create_account(&tenant, "quotauser").await;
    let reply = h.sendcloud("quota", &tenant, &[("username", "quotauser"), ("quota", "123")]).await;
    assert_eq!(reply["info"], json!({"username": "quotauser", "quota": 123, "todayUsedQuota": 0}));
    assert_eq!(h.sendcloud("list", &tenant, &[]).await["info"]["list"][0]["quota"], 123);
    for bad in ["", "-1", "1.5", "lots", "1000000001"] {
        let reply = h.sendcloud("quota", &tenant, &[("username", "quotauser"), ("quota", bad)]).await;
        assert_code(&reply, 400, "请求失败");
    }
    assert_eq!(h.sendcloud("list", &tenant, &[]).await["info"]["list"][0]["quota"], 123);
}

async fn storage_failures_101_102_104(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Faults").await;
    h.deposit(&tenant, "100.00").await;
    h.create_account(&tenant, "victim01").await;

    break_writes(&h.db, "accounts", "INSERT").await;
    let reply = h.sendcloud("create", &tenant, &[("username", "victim02"), ("userType", "1"), ("companyName", "公司"), ("companyUrl", "https://www.baidu.com"), ("pwd", "321Abc")]).await;
    assert_code(&reply, 101, "保存失败");
    heal_writes(&h.db, "accounts").await;

    break_writes(&h.db, "accounts", "UPDATE").await;
    assert_code(&h.sendcloud("quota", &tenant, &[("username", "victim01"), ("quota", "5")]).await, 102, "更新失败");
    heal_writes(&h.db, "accounts").await;

    break_writes(&h.db, "entries", "INSERT").await;
    assert_code(&h.sendcloud("transferIn", &tenant, &[("username", "victim01"), ("money", "5.00")]).await, 104, "分账失败");
    // No partial write: the failed batch left no transfer, no entry, no balance change.
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM transfers WHERE kind = 'allocation'").await, 0);
    let reply = h.sendcloud("list", &tenant, &[("username", "victim01")]).await;
    assert_eq!(reply["info"]["list"][0]["balance"], 0.0);
    assert_eq!(reply["info"]["list"][0]["quota"], 2500);
    h.assert_ledger_sound().await;
}

/// A mutating call's replay record commits with its change: a change that
/// failed leaves none, so the very same signed request can be sent again; a
/// change that committed refuses its replay, which changes nothing.
async fn a_signed_change_and_its_replay_record_commit_together(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Together").await;
    h.create_account(&tenant, "steady01").await;
    let create = signed_form(&tenant, &[("username", "retry001"), ("userType", "1"), ("companyName", "公司"), ("companyUrl", "https://www.baidu.com"), ("pwd", "321Abc")], true);
    let quota = signed_form(&tenant, &[("username", "steady01"), ("quota", "7")], true);

    break_writes(&h.db, "accounts", "INSERT").await;
    assert_code(&h.sendcloud_raw_post("create", &create).await, 101, "保存失败");
    heal_writes(&h.db, "accounts").await;
    break_writes(&h.db, "accounts", "UPDATE").await;
    assert_code(&h.sendcloud_raw_post("quota", &quota).await, 102, "更新失败");
    heal_writes(&h.db, "accounts").await;
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM signed_requests").await, 1, "only the successful create is recorded");

    // The same requests, byte for byte: they were never done, so they are not replays.
    assert_code(&h.sendcloud_raw_post("create", &create).await, 200, "请求成功");
    assert_code(&h.sendcloud_raw_post("quota", &quota).await, 200, "请求成功");
    // Done once, they are refused the second time and change nothing.
    assert_code(&h.sendcloud_raw_post("create", &create).await, 425, "时间戳无效");
    sql(&h.db, "UPDATE accounts SET daily_quota = 9 WHERE username = 'steady01'").await;
    assert_code(&h.sendcloud_raw_post("quota", &quota).await, 425, "时间戳无效");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM accounts WHERE username = 'retry001'").await, 1);
    assert_eq!(sql_i64(&h.db, "SELECT daily_quota FROM accounts WHERE username = 'steady01'").await, 9, "the replayed quota changed nothing");

    // Copies racing past the early check: the record written with the change
    // lets exactly one of them commit.
    let racing = signed_form(&tenant, &[("username", "steady01"), ("quota", "11")], true);
    let mut copies = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, base, body) = (h.http.clone(), h.server.base.clone(), racing.clone());
        copies.spawn(async move { sendcloud_post(&http, &base, "quota", &body).await });
    }
    let replies = copies.join_all().await;
    let codes: Vec<i64> = replies.iter().map(|r| r["statusCode"].as_i64().unwrap_or_default()).collect();
    assert_eq!((codes.iter().filter(|c| **c == 200).count(), codes.iter().filter(|c| **c == 425).count()), (1, 7), "{replies:?}");
}

async fn bad_input_is_refused_cleanly(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Garbage").await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        let request = h.http.post(h.url("/api/subAccount/create")).header("Content-Type", content_type).body(body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "a dialect error, never a 5xx");
            response.json::<serde_json::Value>().await.expect("a JSON envelope")
        }
    };
    // Invalid UTF-8, raw and percent-encoded.
    assert_code(&post(b"appId=\xff\xfe&username=x".to_vec(), "application/x-www-form-urlencoded").await, 400, "请求失败");
    assert_code(&post(b"appId=%ff%fe".to_vec(), "application/x-www-form-urlencoded").await, 400, "请求失败");
    // A body over the limit (64 KiB).
    assert_code(&post(format!("appId={}&pad={}", tenant.app_id, "x".repeat(100_000)).into_bytes(), "application/x-www-form-urlencoded").await, 400, "请求失败");
    // JSON where a form is expected.
    assert_code(&post(br#"{"appId": "x"}"#.to_vec(), "application/json").await, 400, "请求失败");
    // A repeated parameter would make the signature ambiguous.
    assert_code(&post(format!("appId={0}&appId={0}", tenant.app_id).into_bytes(), "application/x-www-form-urlencoded").await, 400, "请求失败");
    // Injection-looking and huge values come back as ordinary validation codes.
    let reply = h.sendcloud("transferIn", &tenant, &[("username", "a'; DROP TABLE accounts; --"), ("money", "1")]).await;
    assert_code(&reply, 426, "用户名格式不正确");
    let reply = h.sendcloud("list", &tenant, &[("startNo", "184467440737095516161844674407370955161")]).await;
    assert_code(&reply, 424, "查询条数限制");
    let reply = h.sendcloud("quota", &tenant, &[("username", "abcd"), ("quota", "99999999999999999999999999999")]).await;
    assert_code(&reply, 400, "请求失败");
    let reply = h.sendcloud("list", &tenant, &[("username", "<script>alert(1)</script>")]).await;
    assert_code(&reply, 423, "找不到该用户名");
    // Still alive, nothing stored.
    assert_eq!(h.sendcloud("list", &tenant, &[]).await["info"]["total"], 0);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM accounts").await, 0);
}

async fn tenants_are_isolated(backend: Backend) {
    let h = Harness::start(backend).await;
    let alpha = h.create_tenant("Alpha").await;
    let beta = h.create_tenant("Beta").await;
    h.deposit(&alpha, "100.00").await;
    h.deposit(&beta, "100.00").await;
    h.create_account(&alpha, "alphauser").await;
    // Beta sees none of Alpha's accounts and cannot touch them.
    assert_eq!(h.sendcloud("list", &beta, &[]).await["info"]["total"], 0);
    assert_code(&h.sendcloud("list", &beta, &[("username", "alphauser")]).await, 423, "找不到该用户名");
    assert_code(&h.sendcloud("transferIn", &beta, &[("username", "alphauser"), ("money", "5.00")]).await, 423, "找不到该用户名");
    assert_code(&h.sendcloud("quota", &beta, &[("username", "alphauser"), ("quota", "1")]).await, 423, "找不到该用户名");
    // Beta's key does not sign for Alpha's appId.
    let forged = Tenant { app_id: alpha.app_id.clone(), ..beta.clone() };
    assert_code(&h.sendcloud("list", &forged, &[]).await, 404, "签名错误");
    // The native API keeps them apart too.
    let (status, _) = h.get_json("/v1/accounts/alphauser", &beta.api_token).await;
    assert_eq!(status, 404);
    let (_, alpha_wallets) = h.get_json("/v1/wallets?username=alphauser", &alpha.api_token).await;
    let wallet_id = alpha_wallets["items"][0]["wallet_id"].as_i64().unwrap();
    let (status, _) = h.get_json(&format!("/v1/wallets/{wallet_id}/entries"), &beta.api_token).await;
    assert_eq!(status, 404);
    // Alpha's account kept its balance; Beta's money did not move.
    let reply = h.sendcloud("list", &alpha, &[]).await;
    assert_eq!(reply["info"]["list"][0]["balance"], 0.0);
    let (_, beta_wallets) = h.get_json("/v1/wallets", &beta.api_token).await;
    assert_eq!(beta_wallets["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary").unwrap()["balance"], "100.00");
}

async fn frozen_accounts_show_in_list(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Freeze").await;
    h.create_account(&tenant, "coldone1").await;
    h.create_account(&tenant, "warmone1").await;
    let (ok, _, stderr) = h.cli(&["account", "freeze", "--tenant", &tenant.app_id, "--username", "coldone1"]).await;
    assert!(ok, "{stderr}");
    let reply = h.sendcloud("list", &tenant, &[]).await;
    assert_eq!(reply["info"]["freeze"], 1);
    assert_eq!(reply["info"]["available"], 1);
    assert_eq!(reply["info"]["list"][0]["status"], -1);
    assert_eq!(reply["info"]["list"][1]["status"], 1);
    let (status, body) = h.post_json("/v1/accounts/coldone1/unfreeze", &tenant.api_token, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "active");
    assert_eq!(h.sendcloud("list", &tenant, &[]).await["info"]["freeze"], 0);
}
