//! What every operation shares: the paths and methods, the envelope,
//! `access_token` wherever the spec allows it, `search_id` echoed, 401,
//! 403 for a sub-user's session without the application, 405, 429, and
//! malformed input answered in the envelope, never with a 500.

use reqwest::Method;
use serde_json::json;

use super::*;
use crate::on_both_backends;

on_both_backends!(
    every_operation_authenticates_and_answers_in_the_envelope,
    the_token_and_the_parameters_arrive_in_the_body_or_the_query,
    malformed_input_is_answered_in_the_envelope,
    sub_user_sessions_read_with_ads_view_and_write_with_ads_manage,
    requests_over_the_rate_limit_answer_429,
);

async fn every_operation_authenticates_and_answers_in_the_envelope(backend: Backend) {
    let h = Harness::start(backend).await;
    let agency = Agency::create(&h, "Ads Envelope").await;
    for (method, path) in OPERATIONS {
        // No token: 401, code 1001, the search_id echoed.
        let answer = call(&h, method, path, &json!({"id": "1", "req_header": {"search_id": "s-401"}})).await;
        assert_eq!(refused_with(&answer, 401, 1001, "s-401"), "invalid access_token", "{path}");
        // A token of nobody's, in the body or as a bearer header.
        let answer = call(&h, method, path, &json!({"access_token": "slt_not_a_token", "req_header": {"search_id": "s-x"}})).await;
        refused_with(&answer, 401, 1001, "s-x");
        let answer = h.http.request(method.parse().unwrap(), h.url(path)).bearer_auth("sls_not_a_session").send().await.unwrap();
        assert_eq!(answer.status(), 401, "{path}");
        // Another method: 405 in the envelope, whoever asks.
        for wrong in [Method::PUT, Method::DELETE, Method::PATCH] {
            let answer = send(&h, wrong, path, Some(serde_json::to_vec(&agency.params("s-405", json!({}))).unwrap())).await;
            let message = refused_with(&answer, 405, 1001, "");
            assert!(message.contains("method"), "{message}");
        }
        let other = if method == "GET" { "POST" } else { "GET" };
        let served_on_both = path.ends_with("account_pixel_list");
        let answer = agency.call(&h, other, path, "s-other", json!({})).await;
        if served_on_both {
            refused(&answer, 1002, "s-other");
        } else {
            refused_with(&answer, 405, 1001, "");
        }
    }
    // An unknown path of the dialect is no operation.
    assert_eq!(agency.call(&h, "GET", "/api/v1/nothing_here", "s", json!({})).await.status, 404);
}

async fn the_token_and_the_parameters_arrive_in_the_body_or_the_query(backend: Backend) {
    let h = Harness::start(backend).await;
    let agency = Agency::create(&h, "Ads Params").await;
    let token = agency.token().to_owned();
    let list = "/lb/api/v1/account_list";
    // The body, as the spec shows it (also on GET).
    let answer = agency.call(&h, "GET", list, "s-body", json!({"page_num": 1, "page_size": 10})).await;
    assert!(ok(&answer, "s-body")["list"].is_array(), "{}", answer.raw);
    // The query: access_token, req_header as JSON text, or search_id directly.
    let req_header = encode(r#"{"search_id":"s-query"}"#);
    let answer = send(&h, Method::GET, &format!("{list}?access_token={token}&req_header={req_header}&page_num=1&page_size=10"), None).await;
    ok(&answer, "s-query");
    let answer = send(&h, Method::GET, &format!("{list}?access_token={token}&search_id=s-direct"), None).await;
    ok(&answer, "s-direct");
    // A bearer header instead of access_token.
    let response = h.http.get(h.url(&format!("{list}?search_id=s-bearer"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["resp_header"], json!({"code": 1, "message": "success", "search_id": "s-bearer"}));
    // The body beats the query: a bad page size in the query is overridden.
    let answer = send(&h, Method::GET, &format!("{list}?page_size=9999"), Some(serde_json::to_vec(&agency.params("s-beats", json!({"page_size": 5}))).unwrap())).await;
    ok(&answer, "s-beats");
    let answer = send(&h, Method::GET, &format!("{list}?access_token={token}&page_size=9999&search_id=s-bad"), None).await;
    refused(&answer, 1027, "s-bad");
    // Without search_id, an empty one is echoed.
    let answer = call(&h, "GET", list, &json!({"access_token": token})).await;
    ok(&answer, "");
    // A numeric search_id is echoed as its text.
    let answer = call(&h, "GET", list, &json!({"access_token": token, "req_header": {"search_id": 42}})).await;
    ok(&answer, "42");
}

async fn malformed_input_is_answered_in_the_envelope(backend: Backend) {
    let h = Harness::start(backend).await;
    let agency = Agency::create(&h, "Ads Malformed").await;
    let token = agency.token().to_owned();
    let list = "/lb/api/v1/account_list";
    let bodies: [(&[u8], &str); 5] =
        [(b"{", "body"), (b"[1, 2]", "body"), (br#"{"access_token": "a\u0000b"}"#, "NUL"), (br#"{"req_header": "s"}"#, "req_header"), (br#"{"req_header": {"search_id": {"a": 1}}}"#, "req_header")];
    for (body, named) in bodies {
        let answer = send(&h, Method::GET, list, Some(body.to_vec())).await;
        let message = refused(&answer, 1001, "");
        assert!(message.contains(named), "{message}");
    }
    let too_long = "s".repeat(129);
    let answer = call(&h, "GET", list, &json!({"access_token": token, "req_header": {"search_id": too_long}})).await;
    assert!(refused(&answer, 1001, "").contains("search_id"), "{}", answer.raw);
    let big = json!({"access_token": token, "padding": "x".repeat(70 * 1024)});
    let answer = call(&h, "GET", list, &big).await;
    assert!(refused(&answer, 1001, "").contains("bytes"), "{}", answer.raw);
    for query in ["id=%00", "id=%FF", "page_num=1&page_num=2"] {
        let answer = send(&h, Method::GET, &format!("{list}?access_token={token}&{query}"), None).await;
        refused(&answer, 1001, "");
    }
    // Every operation, fed every kind of wrong value, answers an envelope with HTTP 200.
    let garbage = [
        json!({"id": {"a": 1}, "fields": 5, "amount_usd": [1], "business_id": true, "pixel_id": 1.5, "time_range": 7, "page_num": "x", "limit": "many", "breakdowns": [[]], "sort": {}, "time_increment": [], "create_start_date": 20240101}),
        json!({"id": "act_", "fields": ["'; DROP TABLE ad_accounts; --"], "amount_usd": "1e999", "time_range": {"since": "2024-13-45", "until": null}, "page_size": -1, "limit": 1e30}),
        json!({"id": "9".repeat(65), "fields": "", "amount_usd": "-0.001", "time_range": "{", "create_start_date": "2024-02-30"}),
    ];
    for (method, path) in OPERATIONS {
        for (i, params) in garbage.iter().enumerate() {
            let answer = agency.call(&h, method, path, &format!("g-{i}"), params.clone()).await;
            assert_eq!(answer.status, 200, "{path} {params}: {}", answer.raw);
            let code = answer.body["resp_header"]["code"].as_i64().unwrap_or_else(|| panic!("{path}: {}", answer.raw));
            assert_ne!(code, 1, "{path} {params}: {}", answer.raw);
            let message = answer.body["resp_header"]["message"].as_str().unwrap();
            for leak in ["SELECT", "sqlx", "panicked", "/src/", "Error {"] {
                assert!(!message.contains(leak), "{path}: {message}");
            }
        }
    }
    assert!(!h.server.log().await.contains("panicked"));
}

const PASSWORD: &str = "Secret123";

/// A sub-user of the agency holding exactly `apps`, and its session token.
async fn session_with(h: &Harness, agency: &Agency, username: &str, apps: &str) -> String {
    let response = h.http.post(h.url("/rest/power/roleuser")).bearer_auth(agency.token()).json(&json!({"account": username, "name": username, "password": PASSWORD})).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let id = response.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    if !apps.is_empty() {
        let response = h.http.put(h.url(&format!("/rest/power/subuser/auth/{id}?authAppIds={apps}"))).bearer_auth(agency.token()).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = h.http.post(h.url("/v1/sessions")).json(&json!({"tenant": agency.tenant.tenant_id, "username": username, "password": PASSWORD})).send().await.unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn sub_user_sessions_read_with_ads_view_and_write_with_ads_manage(backend: Backend) {
    let h = Harness::start(backend).await;
    let agency = Agency::create(&h, "Ads Sessions").await;
    let nothing = session_with(&h, &agency, "ads000", "").await;
    let viewer = session_with(&h, &agency, "ads801", "801").await;
    let manager = session_with(&h, &agency, "ads800", "800").await;
    for (method, path) in OPERATIONS {
        let writes = method == "POST" && !path.ends_with("account_pixel_list");
        let as_session = |token: &str| json!({"access_token": token, "req_header": {"search_id": "s-session"}});
        let answer = call(&h, method, path, &as_session(&nothing)).await;
        assert!(refused_with(&answer, 403, 1001, "s-session").contains(if writes { "ads.manage" } else { "ads.view" }), "{}", answer.raw);
        let answer = call(&h, method, path, &as_session(&viewer)).await;
        if writes {
            assert!(refused_with(&answer, 403, 1001, "s-session").contains("ads.manage"), "{}", answer.raw);
        } else {
            assert_eq!(answer.status, 200, "{path}: {}", answer.raw);
        }
        // `ads` (800) holds both.
        let answer = call(&h, method, path, &as_session(&manager)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.raw);
    }
}

async fn requests_over_the_rate_limit_answer_429(backend: Backend) {
    let h = Harness::start_with(backend, &["--rate-limit-tenant-per-second", "1", "--rate-limit-tenant-burst", "3"]).await;
    let agency = Agency::create(&h, "Ads Limited").await;
    let mut answers = Vec::new();
    for i in 0..6 {
        answers.push(agency.call(&h, "GET", "/lb/api/v1/account_list", &format!("r-{i}"), json!({})).await);
    }
    let limited = answers.iter().position(|a| a.status == 429).unwrap_or_else(|| panic!("no 429 in {:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>()));
    assert!(limited >= 1 && answers[..limited].iter().all(|a| a.status == 200));
    let answer = &answers[limited];
    refused_with(answer, 429, 1001, &format!("r-{limited}"));
    let retry: u64 = answer.headers["retry-after"].to_str().unwrap().parse().expect("whole seconds");
    assert!((1..=2).contains(&retry), "{retry}");
}
