//! Access control through `/v1`: sub-user logins, sessions and locks, the
//! permission of every endpoint, tenant isolation of roles, notices and
//! sub-users, the operation log's one entry per change, and rate limits.

use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{Backend, Harness, Tenant, sql, sql_i64, status_and_json};

on_both_backends!(
    sessions_log_in_out_expire_and_lock,
    disabled_and_cancelled_sub_users_cannot_log_in,
    every_endpoint_needs_its_application,
    other_tenants_ids_answer_like_missing_ones,
    notices_reach_their_targets,
    every_change_leaves_one_entry_with_its_actor,
    rate_limits_answer_429_with_retry_after,
    the_cli_manages_roles_sub_users_notices_and_reads_the_log,
);

const PASSWORD: &str = "Secret123";

/// Any request, with a JSON body if given; (status, body, Retry-After).
async fn call(h: &Harness, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value, Option<String>) {
    let mut request = h.http.request(method, h.url(path)).header("Idempotency-Key", format!("key-{path}-{}", rand_suffix()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("a request");
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = status_and_json(response).await;
    (status, body, retry_after)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn login(h: &Harness, tenant: &Tenant, username: &str, password: &str) -> (u16, Value, Option<String>) {
    call(h, Method::POST, "/v1/sessions", None, Some(&json!({"tenant": tenant.tenant_id, "username": username, "password": password}))).await
}

/// Logs in and returns the session token.
async fn session(h: &Harness, tenant: &Tenant, username: &str) -> String {
    let (status, body, _) = login(h, tenant, username, PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("a token").to_owned()
}

/// Creates a sub-user (with the tenant's token) and returns its account id.
async fn sub_user(h: &Harness, tenant: &Tenant, username: &str) -> i64 {
    let (status, body) = h.post_json("/v1/subusers", &tenant.api_token, &json!({"username": username, "password": PASSWORD, "person_name": "张三", "job_number": username})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().expect("an id")
}

/// Sets a sub-user's own grants to exactly `apps` (revoking every other leaf).
async fn grant_exactly(h: &Harness, tenant: &Tenant, username: &str, apps: &[i64]) {
    let everything: Vec<i64> = leaves(h, tenant).await.into_iter().filter(|id| !apps.contains(id)).collect();
    let (status, body, _) = call(h, Method::PUT, &format!("/v1/accounts/{username}/apps"), Some(&tenant.api_token), Some(&json!({"grant": apps, "revoke": everything}))).await;
    assert_eq!(status, 200, "{body}");
}

async fn leaves(h: &Harness, tenant: &Tenant) -> Vec<i64> {
    let (status, tree) = h.get_json("/v1/apps", &tenant.api_token).await;
    assert_eq!(status, 200, "{tree}");
    tree["apps"].as_array().unwrap().iter().filter(|a| a["leaf"] == true).map(|a| a["id"].as_i64().unwrap()).collect()
}

async fn operations(h: &Harness, token: &str) -> Vec<Value> {
    let (status, body) = h.get_json("/v1/operations?limit=500", token).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn sessions_log_in_out_expire_and_lock(backend: Backend) {
    let h = Harness::start_with(backend, &["--login-failures-max", "3", "--login-lock-seconds", "2"]).await;
    let tenant = h.create_tenant("Call center").await;
    let amy = sub_user(&h, &tenant, "amy_seat").await;

    // A wrong tenant, username or password all answer alike.
    for (reference, username, password) in [("tn_nobody", "amy_seat", PASSWORD), (tenant.tenant_id.as_str(), "nobody1", PASSWORD), (tenant.tenant_id.as_str(), "amy_seat", "Wrong123")] {
        let (status, body, _) = call(&h, Method::POST, "/v1/sessions", None, Some(&json!({"tenant": reference, "username": username, "password": password}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{reference} {username}: {body}");
    }
    // The app id names the tenant too; the token lasts 12 hours by default.
    let (status, body, _) = call(&h, Method::POST, "/v1/sessions", None, Some(&json!({"tenant": tenant.app_id, "username": "amy_seat", "password": PASSWORD}))).await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sls_") && body["account"]["id"] == amy, "{body}");
    let expires: jiff::Timestamp = body["expires_at"].as_str().unwrap().parse().unwrap();
    let hours = (expires.as_second() - jiff::Timestamp::now().as_second()) as f64 / 3600.0;
    assert!((11.9..=12.0).contains(&hours), "{hours}");
    let stored: i64 = sql_i64(&h.db, &format!("SELECT COUNT(*) FROM sessions WHERE token_sha256 = '{token}'")).await;
    assert_eq!(stored, 0, "only the token's digest is stored");

    let (status, me) = h.get_json("/v1/me", &token).await;
    assert_eq!((status, me["actor"].as_str(), me["account"]["username"].as_str()), (200, Some("sub_user"), Some("amy_seat")), "{me}");
    assert_eq!(me["apps"], json!([]), "a new sub-user holds nothing");
    let (status, login_count) = h.get_json("/v1/accounts/amy_seat", &tenant.api_token).await;
    assert_eq!((status, login_count["seat"]["logins"].as_i64()), (200, Some(1)), "{login_count}");

    // Logout ends it; a second logout finds nothing; the tenant's token is no session.
    assert_eq!(call(&h, Method::DELETE, "/v1/sessions/current", Some(&token), None).await.0, 204);
    assert_eq!(h.get_json("/v1/me", &token).await.0, 401);
    assert_eq!(call(&h, Method::DELETE, "/v1/sessions/current", Some(&token), None).await.0, 401);
    assert_eq!(call(&h, Method::DELETE, "/v1/sessions/current", Some(&tenant.api_token), None).await.0, 400);

    // An expired session stops working.
    let token = session(&h, &tenant, "amy_seat").await;
    assert_eq!(h.get_json("/v1/me", &token).await.0, 200);
    sql(&h.db, "UPDATE sessions SET expires_at_us = 1").await;
    assert_eq!(h.get_json("/v1/me", &token).await.0, 401);

    // Three wrong passwords lock the account: then even the right one waits, and a live session stops.
    let token = session(&h, &tenant, "amy_seat").await;
    for _ in 0..3 {
        assert_eq!(login(&h, &tenant, "amy_seat", "Wrong123").await.0, 401);
    }
    let (status, body, retry_after) = login(&h, &tenant, "amy_seat", PASSWORD).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(h.get_json("/v1/me", &token).await.0, 401, "a locked sub-user's session stops working");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let token = session(&h, &tenant, "amy_seat").await;
    assert_eq!(h.get_json("/v1/me", &token).await.0, 200);

    // Each counted failure and the lock are logged as refused logins of the sub-user.
    let entries = operations(&h, &tenant.api_token).await;
    let logins: Vec<(&str, Option<&str>)> = entries.iter().filter(|e| e["kind"] == "session.login").map(|e| (e["outcome"].as_str().unwrap(), e["reason"].as_str())).collect();
    assert_eq!(
        logins,
        [
            ("done", None),
            ("refused", Some("locked")),
            ("refused", Some("wrong_password")),
            ("refused", Some("wrong_password")),
            ("done", None),
            ("done", None),
            ("done", None),
            ("refused", Some("wrong_password"))
        ],
        "newest first"
    );
    assert!(entries.iter().filter(|e| e["kind"].as_str().unwrap().starts_with("session.")).all(|e| e["actor"] == "sub_user" && e["actor_username"] == "amy_seat"));
}

async fn disabled_and_cancelled_sub_users_cannot_log_in(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Call center").await;
    sub_user(&h, &tenant, "bob_seat").await;
    let token = session(&h, &tenant, "bob_seat").await;
    let patch = |body: Value| {
        let (h, tenant) = (&h, &tenant);
        async move { call(h, Method::PATCH, "/v1/accounts/bob_seat", Some(&tenant.api_token), Some(&body)).await }
    };
    let (status, body, _) = patch(json!({"access": "disabled"})).await;
    assert_eq!((status, body["access"].as_str()), (200, Some("disabled")), "{body}");
    assert_eq!(h.get_json("/v1/me", &token).await.0, 401, "disabling ends its sessions");
    assert_eq!(login(&h, &tenant, "bob_seat", PASSWORD).await.0, 401);
    assert_eq!(patch(json!({"access": "enabled"})).await.0, 200);
    let token = session(&h, &tenant, "bob_seat").await;
    // A new password ends the sessions too.
    assert_eq!(patch(json!({"password": "Newpass456"})).await.0, 200);
    assert_eq!(h.get_json("/v1/me", &token).await.0, 401);
    assert_eq!(login(&h, &tenant, "bob_seat", PASSWORD).await.0, 401);
    assert_eq!(login(&h, &tenant, "bob_seat", "Newpass456").await.0, 201);

    let (status, body, _) = patch(json!({"access": "cancelled"})).await;
    assert_eq!((status, body["access"].as_str()), (200, Some("cancelled")), "{body}");
    assert_eq!(login(&h, &tenant, "bob_seat", "Newpass456").await.0, 401);
    let (status, body, _) = patch(json!({"access": "enabled"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "a cancelled sub-user stays cancelled: {body}");
    // Kept, never deleted.
    let (status, list) = h.get_json("/v1/subusers?access=cancelled", &tenant.api_token).await;
    assert_eq!((status, list["total"].as_i64()), (200, Some(1)), "{list}");
}

/// One endpoint for each leaf application that has `/v1` endpoints: it
/// succeeds with the application and answers 403 without it.
fn matrix(target: &str) -> Vec<(&'static str, Method, String, Option<Value>, u16)> {
    vec![
        ("accounts.view", Method::GET, "/v1/accounts".to_owned(), None, 200),
        ("accounts.manage", Method::PUT, format!("/v1/accounts/{target}/quota"), Some(json!({"daily_quota": 10})), 200),
        ("funds.view", Method::GET, "/v1/wallets".to_owned(), None, 200),
        ("funds.move", Method::PUT, format!("/v1/accounts/{target}/overdraft"), Some(json!({"limit": "0"})), 200),
        ("billing.view", Method::GET, "/v1/bills?from=2024-01".to_owned(), None, 200),
        ("billing.manage", Method::POST, "/v1/usage".to_owned(), Some(json!({"events": [{"id": "e1", "account": target, "product": "sms", "quantity": 1}]})), 200),
        ("rates.view", Method::GET, "/v1/products".to_owned(), None, 200),
        ("rates.manage", Method::PUT, format!("/v1/accounts/{target}/billing"), Some(json!({"mode": "postpaid"})), 204),
        ("notices.view", Method::GET, "/v1/notices".to_owned(), None, 200),
        ("notices.manage", Method::POST, "/v1/notices".to_owned(), Some(json!({"title": "t", "content": "c"})), 201),
        ("roles.view", Method::GET, "/v1/roles".to_owned(), None, 200),
        ("roles.manage", Method::POST, "/v1/roles".to_owned(), Some(json!({"name": format!("role-{}", rand_suffix())})), 201),
        ("oplog.view", Method::GET, "/v1/operations".to_owned(), None, 200),
        ("settings.view", Method::GET, "/v1/tenant".to_owned(), None, 200),
    ]
}

async fn every_endpoint_needs_its_application(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Matrix").await;
    for name in ["holder1", "lacker1", "target1"] {
        sub_user(&h, &tenant, name).await;
    }
    let (_, tree) = h.get_json("/v1/apps", &tenant.api_token).await;
    let id_of = |code: &str| tree["apps"].as_array().unwrap().iter().find(|a| a["code"] == code).unwrap_or_else(|| panic!("{code}"))["id"].as_i64().unwrap();
    let (holder, lacker) = (session(&h, &tenant, "holder1").await, session(&h, &tenant, "lacker1").await);
    let all = leaves(&h, &tenant).await;
    for (code, method, path, body, success) in matrix("target1") {
        let app = id_of(code);
        grant_exactly(&h, &tenant, "holder1", &[app]).await;
        let others: Vec<i64> = all.iter().copied().filter(|id| *id != app).collect();
        grant_exactly(&h, &tenant, "lacker1", &others).await;
        let (status, answer, _) = call(&h, method.clone(), &path, Some(&lacker), body.as_ref()).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{code}: {method} {path} without it: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(code), "{answer}");
        let (status, answer, _) = call(&h, method.clone(), &path, Some(&holder), body.as_ref()).await;
        assert_eq!(status, success, "{code}: {method} {path} with it: {answer}");
        // A revocation takes effect on the next call.
        grant_exactly(&h, &tenant, "holder1", &[]).await;
        assert_eq!(call(&h, method.clone(), &path, Some(&holder), body.as_ref()).await.0, 403, "{code}: after revocation");
    }
    // A role's template grants too, and `role_template: false` turns it off.
    let (status, role) = h.post_json("/v1/roles", &tenant.api_token, &json!({"name": "viewers"})).await;
    assert_eq!(status, 201, "{role}");
    let role_id = role["id"].as_i64().unwrap();
    let (status, apps, _) = call(&h, Method::PUT, &format!("/v1/roles/{role_id}/apps"), Some(&tenant.api_token), Some(&json!({"grant": [id_of("accounts")]}))).await;
    assert_eq!(status, 200, "{apps}");
    let codes: Vec<&str> = apps["apps"].as_array().unwrap().iter().map(|a| a["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["accounts", "accounts.view", "accounts.manage"], "a parent grants its subtree");
    // The lacker's own revocation of accounts.view beats the role.
    let patch = |body: Value| {
        let (h, tenant) = (&h, &tenant);
        async move { call(h, Method::PATCH, "/v1/accounts/holder1", Some(&tenant.api_token), Some(&body)).await.0 }
    };
    assert_eq!(patch(json!({"role_id": role_id})).await, 200);
    let (status, _) = h.get_json("/v1/accounts", &holder).await;
    assert_eq!(status, 403, "holder1's own revocations (from grant_exactly) beat its role");
    let (status, _, _) = call(&h, Method::PUT, "/v1/accounts/holder1/apps", Some(&tenant.api_token), Some(&json!({"grant": [id_of("accounts.view")]}))).await;
    assert_eq!(status, 200);
    assert_eq!(h.get_json("/v1/accounts", &holder).await.0, 200);
    assert_eq!(patch(json!({"role_template": false})).await, 200);
    assert_eq!(h.get_json("/v1/accounts", &holder).await.0, 200, "its own grant stays");
    // Managing accounts is not enough to hand out a role.
    grant_exactly(&h, &tenant, "lacker1", &[id_of("accounts.manage")]).await;
    let (status, body, _) = call(&h, Method::PATCH, "/v1/accounts/lacker1", Some(&lacker), Some(&json!({"role_id": role_id}))).await;
    assert_eq!((status, body["error"]["message"].as_str().map(|m| m.contains("roles.manage"))), (403, Some(true)), "{body}");
    // Admin endpoints stay the admin's.
    let (status, _) = h.get_json("/v1/tenants", &holder).await;
    assert_eq!(status, 401);
}

async fn other_tenants_ids_answer_like_missing_ones(backend: Backend) {
    let h = Harness::start(backend).await;
    let (ours, theirs) = (h.create_tenant("Ours").await, h.create_tenant("Theirs").await);
    let stranger = sub_user(&h, &theirs, "stranger").await;
    let (_, role) = h.post_json("/v1/roles", &theirs.api_token, &json!({"name": "agents"})).await;
    let (_, notice) = h.post_json("/v1/notices", &theirs.api_token, &json!({"title": "theirs", "content": "c"})).await;
    let (role, notice) = (role["id"].as_i64().unwrap(), notice["id"].as_i64().unwrap());
    let token = Some(ours.api_token.as_str());
    for (id, missing, code) in [(role, 999_999, "role_not_found"), (notice, 999_998, "notice_not_found")] {
        let kind = if code == "role_not_found" { "roles" } else { "notices" };
        for probe in [id, missing] {
            for (method, path, body) in [
                (Method::GET, format!("/v1/{kind}/{probe}"), None),
                (Method::PATCH, format!("/v1/{kind}/{probe}"), Some(if kind == "roles" { json!({"name": "x"}) } else { json!({"title": "x"}) })),
                (Method::DELETE, format!("/v1/{kind}/{probe}"), None),
            ] {
                let (status, answer, _) = call(&h, method.clone(), &path, token, body.as_ref()).await;
                assert_eq!((status, answer["error"]["code"].as_str()), (404, Some(code)), "{method} {path}: {answer}");
            }
        }
    }
    for probe in [role, 999_999] {
        for method in [Method::GET, Method::PUT] {
            let (status, answer, _) = call(&h, method.clone(), &format!("/v1/roles/{probe}/apps"), token, Some(&json!({"grant": [101]}))).await;
            assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("role_not_found")), "{method} role {probe} apps: {answer}");
        }
    }
    for path in ["/v1/accounts/stranger/apps", "/v1/accounts/nobody1/apps"] {
        let (status, answer) = h.get_json(path, &ours.api_token).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("account_not_found")), "{path}: {answer}");
    }
    let (status, answer, _) = call(&h, Method::PATCH, "/v1/accounts/stranger", token, Some(&json!({"note": "mine"}))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("account_not_found")), "{answer}");
    // Their role cannot be given, nor their sub-user be a target.
    sub_user(&h, &ours, "our_seat").await;
    let (status, answer, _) = call(&h, Method::PATCH, "/v1/accounts/our_seat", token, Some(&json!({"role_id": role}))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("role_not_found")), "{answer}");
    let (status, answer) = h.post_json("/v1/notices", &ours.api_token, &json!({"title": "t", "content": "c", "targets": [stranger]})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_request")), "{answer}");
    let (status, list) = h.get_json(&format!("/v1/subusers?id={stranger}"), &ours.api_token).await;
    assert_eq!((status, list["total"].as_i64()), (200, Some(0)), "{list}");
    let (_, roles) = h.get_json("/v1/roles", &ours.api_token).await;
    assert_eq!(roles["items"], json!([]));
    // Nothing of theirs changed.
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM roles").await, 1);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM notices").await, 1);
}

async fn notices_reach_their_targets(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Notices").await;
    let amy = sub_user(&h, &tenant, "amy_seat").await;
    sub_user(&h, &tenant, "bob_seat").await;
    let (_, tree) = h.get_json("/v1/apps", &tenant.api_token).await;
    let view = tree["apps"].as_array().unwrap().iter().find(|a| a["code"] == "notices.view").unwrap()["id"].as_i64().unwrap();
    for name in ["amy_seat", "bob_seat"] {
        grant_exactly(&h, &tenant, name, &[view]).await;
    }
    let post = |body: Value| {
        let (h, tenant) = (&h, &tenant);
        async move {
            let (status, notice) = h.post_json("/v1/notices", &tenant.api_token, &body).await;
            assert_eq!(status, 201, "{notice}");
            notice["id"].as_i64().unwrap()
        }
    };
    let everyone = post(json!({"title": "全员公告", "content": "第一行\n第二行"})).await;
    let for_amy = post(json!({"title": "for amy", "content": "c", "targets": [amy, amy]})).await;
    let (amy_token, bob_token) = (session(&h, &tenant, "amy_seat").await, session(&h, &tenant, "bob_seat").await);
    let ids = |list: &Value| list["items"].as_array().unwrap().iter().map(|n| n["id"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&h.get_json("/v1/notices", &amy_token).await.1), [for_amy, everyone]);
    assert_eq!(ids(&h.get_json("/v1/notices", &bob_token).await.1), [everyone]);
    assert_eq!(ids(&h.get_json("/v1/notices", &tenant.api_token).await.1), [for_amy, everyone]);
    assert_eq!(h.get_json(&format!("/v1/notices/{for_amy}"), &bob_token).await.0, 404, "not aimed at bob");
    let (status, notice) = h.get_json(&format!("/v1/notices/{for_amy}"), &amy_token).await;
    assert_eq!((status, notice["targets"].clone()), (200, json!([amy])), "{notice}");
    assert_eq!(ids(&h.get_json("/v1/notices?title=%E5%85%A8%E5%91%98", &tenant.api_token).await.1), [everyone]);
    // Retargeted to everyone, bob sees it.
    let (status, _, _) = call(&h, Method::PATCH, &format!("/v1/notices/{for_amy}"), Some(&tenant.api_token), Some(&json!({"targets": []}))).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&h.get_json("/v1/notices", &bob_token).await.1), [for_amy, everyone]);
    let (status, answer) = h.post_json("/v1/notices", &tenant.api_token, &json!({"title": "", "content": "c"})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_title")), "{answer}");
    let (status, answer) = h.post_json("/v1/notices", &tenant.api_token, &json!({"title": "t", "content": "c".repeat(5_001)})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_content")), "{answer}");
}

async fn every_change_leaves_one_entry_with_its_actor(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Audited").await;
    let all = leaves(&h, &tenant).await;
    sub_user(&h, &tenant, "boss_seat").await;
    grant_exactly(&h, &tenant, "boss_seat", &all).await;
    let boss = session(&h, &tenant, "boss_seat").await;
    let count = || sql_i64(&h.db, "SELECT COUNT(*) FROM operations");

    // (who, method, path, body, expected status, expected kind)
    let changes: Vec<(&str, Method, String, Value, u16, &str)> = vec![
        ("tenant", Method::POST, "/v1/roles".into(), json!({"name": "agents", "level": 2}), 201, "role.create"),
        ("boss", Method::POST, "/v1/roles".into(), json!({"name": "leads"}), 201, "role.create"),
        ("boss", Method::PATCH, "/v1/roles/ROLE".into(), json!({"level": 5}), 200, "role.update"),
        ("tenant", Method::PUT, "/v1/roles/ROLE/apps".into(), json!({"grant": [101], "revoke": []}), 200, "role.grants"),
        ("boss", Method::POST, "/v1/subusers".into(), json!({"username": "new_seat", "password": PASSWORD, "role_id": "ROLE"}), 201, "account.create"),
        ("boss", Method::PATCH, "/v1/accounts/new_seat".into(), json!({"note": "night shift", "extension": 8001}), 200, "account.update"),
        ("tenant", Method::PATCH, "/v1/accounts/new_seat".into(), json!({"access": "disabled"}), 200, "account.disable"),
        ("boss", Method::PATCH, "/v1/accounts/new_seat".into(), json!({"access": "enabled"}), 200, "account.enable"),
        ("boss", Method::PATCH, "/v1/accounts/new_seat".into(), json!({"password": "Other789"}), 200, "account.password"),
        ("boss", Method::PUT, "/v1/accounts/new_seat/apps".into(), json!({"grant": [501]}), 200, "account.grants"),
        ("boss", Method::PUT, "/v1/accounts/new_seat/quota".into(), json!({"daily_quota": 7}), 200, "account.quota"),
        ("tenant", Method::POST, "/v1/notices".into(), json!({"title": "hello", "content": "world"}), 201, "notice.create"),
        ("boss", Method::PATCH, "/v1/notices/NOTICE".into(), json!({"content": "again"}), 200, "notice.update"),
        ("boss", Method::DELETE, "/v1/notices/NOTICE".into(), Value::Null, 204, "notice.delete"),
        ("boss", Method::PATCH, "/v1/accounts/new_seat".into(), json!({"role_id": 0}), 200, "account.update"),
        ("boss", Method::DELETE, "/v1/roles/ROLE".into(), Value::Null, 204, "role.delete"),
    ];
    let (mut role, mut notice) = (String::new(), String::new());
    for (who, method, path, mut body, expected, kind) in changes {
        let path = path.replace("ROLE", &role).replace("NOTICE", &notice);
        if body["role_id"] == "ROLE" {
            body["role_id"] = json!(role.parse::<i64>().unwrap());
        }
        let token = if who == "tenant" { tenant.api_token.as_str() } else { boss.as_str() };
        let before = count().await;
        let (status, answer, _) = call(&h, method.clone(), &path, Some(token), (!body.is_null()).then_some(&body)).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        if kind == "role.create" && who == "boss" {
            role = answer["id"].to_string();
        }
        if kind == "notice.create" {
            notice = answer["id"].to_string();
        }
        assert_eq!(count().await, before + 1, "{method} {path}: one entry");
        let newest = &operations(&h, &tenant.api_token).await[0];
        assert_eq!(newest["kind"], kind, "{method} {path}: {newest}");
        assert_eq!(newest["outcome"], "done");
        if who == "tenant" {
            assert_eq!((newest["actor"].as_str(), newest["actor_username"].as_str()), (Some("tenant"), None), "{newest}");
        } else {
            assert_eq!((newest["actor"].as_str(), newest["actor_username"].as_str()), (Some("sub_user"), Some("boss_seat")), "{newest}");
        }
        assert!(!newest["description"].as_str().unwrap().is_empty());
    }

    // Refused changes leave nothing.
    let refused: Vec<(Method, &str, Value, u16)> = vec![
        (Method::POST, "/v1/roles", json!({"name": "agents"}), 409),
        (Method::POST, "/v1/roles", json!({"name": "x", "level": -1}), 400),
        (Method::DELETE, "/v1/roles/999999", Value::Null, 404),
        (Method::POST, "/v1/subusers", json!({"username": "boss_seat", "password": PASSWORD}), 409),
        (Method::POST, "/v1/subusers", json!({"username": "bad name", "password": PASSWORD}), 400),
        (Method::PATCH, "/v1/accounts/new_seat", json!({}), 400),
        (Method::PUT, "/v1/accounts/new_seat/apps", json!({"grant": [101], "revoke": [101]}), 400),
        (Method::PUT, "/v1/accounts/new_seat/apps", json!({"grant": [99999]}), 400),
        (Method::POST, "/v1/notices", json!({"title": "t", "content": "c", "targets": [999999]}), 400),
        (Method::DELETE, "/v1/notices/999999", Value::Null, 404),
    ];
    for (method, path, body, expected) in refused {
        let before = count().await;
        let (status, answer, _) = call(&h, method.clone(), path, Some(&boss), (!body.is_null()).then_some(&body)).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert_eq!(count().await, before, "{method} {path} left an entry");
    }
    // A role still held cannot go.
    let (_, role) = h.post_json("/v1/roles", &tenant.api_token, &json!({"name": "held"})).await;
    let role = role["id"].as_i64().unwrap();
    assert_eq!(call(&h, Method::PATCH, "/v1/accounts/new_seat", Some(&boss), Some(&json!({"role_id": role}))).await.0, 200);
    let before = count().await;
    let (status, answer, _) = call(&h, Method::DELETE, &format!("/v1/roles/{role}"), Some(&boss), None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("conflict")), "{answer}");
    assert_eq!(count().await, before);
    // Logins and logouts are the sub-user's.
    let token = session(&h, &tenant, "boss_seat").await;
    assert_eq!(operations(&h, &tenant.api_token).await[0]["kind"], "session.login");
    assert_eq!(call(&h, Method::DELETE, "/v1/sessions/current", Some(&token), None).await.0, 204);
    let newest = &operations(&h, &tenant.api_token).await[0];
    assert_eq!((newest["kind"].as_str(), newest["actor_username"].as_str()), (Some("session.logout"), Some("boss_seat")));
    // Filters: by sub-user, by id, by time.
    let (_, mine) = h.get_json("/v1/operations?user=boss_seat&limit=500", &tenant.api_token).await;
    assert!(mine["items"].as_array().unwrap().iter().all(|e| e["actor_username"] == "boss_seat"));
    let id = newest["id"].as_i64().unwrap();
    let (_, one) = h.get_json(&format!("/v1/operations?id={id}"), &tenant.api_token).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let (_, none) = h.get_json("/v1/operations?until=2000-01-01T00:00:00Z", &tenant.api_token).await;
    assert_eq!(none["items"], json!([]));
    assert_eq!(h.get_json("/v1/operations?limit=501", &tenant.api_token).await.0, 400);
    assert_eq!(h.get_json("/v1/operations?from=yesterday", &tenant.api_token).await.0, 400);
}

async fn rate_limits_answer_429_with_retry_after(backend: Backend) {
    let h = Harness::start_with(backend, &["--rate-limit-tenant-per-second", "1", "--rate-limit-tenant-burst", "3", "--login-rate-per-username", "2", "--login-rate-per-address", "4"]).await;
    let tenant = h.create_tenant("Limited").await;
    let other = h.create_tenant("Other").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(call(&h, Method::GET, "/v1/tenant", Some(&tenant.api_token), None).await);
    }
    let (status, body, retry_after) = statuses.pop().unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(statuses.iter().all(|(status, _, _)| *status == 200));
    assert_eq!(h.get_json("/v1/tenant", &other.api_token).await.0, 200, "each tenant has its own bucket");
    // Logins at one username: the third attempt within a minute waits, right password or not.
    let (status, body) = h.post_json("/v1/subusers", &other.api_token, &json!({"username": "amy_seat", "password": PASSWORD})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(login(&h, &other, "amy_seat", "Wrong123").await.0, 401);
    assert_eq!(login(&h, &other, "amy_seat", PASSWORD).await.0, 201);
    let (status, _, retry_after) = login(&h, &other, "amy_seat", PASSWORD).await;
    assert_eq!(status, 429);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 20);
    // Per client address: the fifth attempt within a minute waits, whatever the username.
    assert_eq!(login(&h, &other, "nobody1", PASSWORD).await.0, 401);
    let (status, body, _) = login(&h, &other, "nobody2", PASSWORD).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    // A refused login attempt costs no entry beyond the counted failure.
    let refused = sql_i64(&h.db, "SELECT COUNT(*) FROM operations WHERE kind = 'session.login' AND outcome <> 'done'").await;
    assert_eq!(refused, 1);
}

async fn the_cli_manages_roles_sub_users_notices_and_reads_the_log(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Command line").await;
    let cli = |args: Vec<&str>| {
        let h = &h;
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, stdout, stderr) = h.cli(&args).await;
            assert!(ok, "{args:?}: {stderr}");
            serde_json::from_str::<Value>(&stdout).unwrap_or(Value::String(stdout))
        }
    };
    let t = tenant.tenant_id.as_str();
    let role = cli(vec!["role", "create", "--tenant", t, "--name", "坐席", "--level", "2", "--json"]).await;
    let role_id = role["id"].to_string();
    let apps = cli(vec!["role", "grant", "--tenant", t, &role_id, "--grant", "100,701", "--json"]).await;
    assert_eq!(apps.as_array().unwrap().iter().map(|a| a["code"].as_str().unwrap()).collect::<Vec<_>>(), ["accounts", "accounts.view", "accounts.manage", "oplog", "oplog.view"]);
    let seat = cli(vec!["subuser", "create", "--tenant", t, "--username", "cli_seat", "--password", PASSWORD, "--role", &role_id, "--job-number", "A-1", "--json"]).await;
    assert_eq!((seat["role_name"].as_str(), seat["job_number"].as_str()), (Some("坐席"), Some("A-1")), "{seat}");
    let apps = cli(vec!["subuser", "grant", "--tenant", t, "cli_seat", "--revoke", "102", "--json"]).await;
    assert!(!apps.as_array().unwrap().iter().any(|a| a["code"] == "accounts.manage"), "{apps}");
    cli(vec!["subuser", "update", "--tenant", t, "cli_seat", "--access", "disabled"]).await;
    let list = cli(vec!["subuser", "list", "--tenant", t, "--access", "disabled", "--json"]).await;
    assert_eq!(list["total"], 1, "{list}");
    let notice = cli(vec!["notice", "create", "--tenant", t, "--title", "hi", "--content", "there", "--targets", &seat["id"].to_string(), "--json"]).await;
    assert_eq!(notice["targets"], json!([seat["id"]]));
    cli(vec!["notice", "delete", "--tenant", t, &notice["id"].to_string()]).await;
    let log = cli(vec!["oplog", "list", "--tenant", t, "--json"]).await;
    let kinds: Vec<&str> = log.as_array().unwrap().iter().take(7).map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["notice.delete", "notice.create", "account.disable", "account.grants", "account.create", "role.grants", "role.create"]);
    assert!(log.as_array().unwrap().iter().take(7).all(|e| e["actor"] == "cli"), "{log}");
    // The CLI refuses like the API: a role still held cannot go.
    let (ok, _, stderr) = h.cli(&["role", "delete", "--tenant", t, &role_id]).await;
    assert!(!ok && stderr.contains("assigned"), "{stderr}");
}
