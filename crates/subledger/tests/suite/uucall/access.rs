//! Who may call `/rest`: a sub-user's session holds exactly its
//! applications (its own grants, its role's template), and a change to them
//! or to the session counts on the very next call; the enterprise's rate
//! limit answers 429 in this dialect's body.

use reqwest::Method;
use serde_json::json;

use super::*;
use crate::on_both_backends;

on_both_backends!(sub_user_sessions_hold_exactly_their_applications, requests_over_the_rate_limit_answer_429);

const PASSWORD: &str = "Secret123";

/// A session token of `username`, through `POST /v1/sessions`.
async fn login(h: &Harness, e: &Enterprise, username: &str) -> String {
    let response = h.http.post(h.url("/v1/sessions")).json(&json!({"tenant": e.tenant.tenant_id, "username": username, "password": PASSWORD})).send().await.unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("a session token").to_owned()
}

async fn as_session(h: &Harness, token: &str, path: &str) -> Answer {
    call(h, Method::GET, path, Some(token), None).await
}

/// A change of the enterprise's (grants, roles, states), which must succeed.
async fn change(h: &Harness, e: &Enterprise, method: Method, path: &str, body: Option<Value>) {
    let answer = call(h, method, path, Some(e.token()), body.as_ref()).await;
    assert!(answer.status == 200 || answer.status == 201, "{path}: {}", answer.raw);
}

async fn sub_user_sessions_hold_exactly_their_applications(backend: Backend) {
    let h = Harness::start(backend).await;
    let e = Enterprise::create(&h, "UU Access").await;
    let other = Enterprise::create(&h, "UU Access Other").await;
    let uid = e.uid;
    let created = call(&h, Method::POST, "/power/roleuser", Some(e.token()), Some(&json!({"account": "agent001", "name": "张三", "password": PASSWORD}))).await;
    assert_eq!(created.status, 201, "{}", created.raw);
    let id: i64 = created.headers["location"].to_str().unwrap().strip_prefix("/rest/power/roleuser/").unwrap().parse().unwrap();
    let session = login(&h, &e, "agent001").await;

    let bills = format!("/account/chargebill?uidName=UU%20Access&uid={uid}");
    let days = "/account/chargebill/basicbill?uidName=UU%20Access&subUserName=agent001".to_owned();
    let file = "/account/file/chargebill?uidName=UU%20Access&format=csv".to_owned();
    let account = format!("/account/{uid}");
    let cards = format!("/account/{uid}/giftrate");
    let billing_view = [&bills, &days, &file];
    // No role, no grant: nothing.
    for path in billing_view {
        let answer = as_session(&h, &session, path).await;
        refused(&answer, 403);
        assert!(answer.body["message"].as_str().unwrap().contains("301"), "names the application: {}", answer.raw);
    }
    refused(&as_session(&h, &session, &account).await, 403);
    refused(&as_session(&h, &session, &cards).await, 403);
    // Its own grant of billing.view (301): the bill views answer, the others still refuse.
    change(&h, &e, Method::PUT, &format!("/power/subuser/auth/{id}?authAppIds=301"), None).await;
    for path in billing_view {
        assert_eq!(as_session(&h, &session, path).await.status, 200, "{path}");
    }
    refused(&as_session(&h, &session, &account).await, 403);
    refused(&as_session(&h, &session, &cards).await, 403);
    // Its enterprise only, whatever it holds.
    refused(&as_session(&h, &session, &format!("/account/chargebill?uidName=UU%20Access&uid={}", other.uid)).await, 403);
    refused(&as_session(&h, &session, "/account/chargebill?uidName=UU%20Access%20Other").await, 403);
    change(&h, &e, Method::PUT, &format!("/power/subuser/auth/{id}?authAppIds=201,401"), None).await;
    assert_eq!(as_session(&h, &session, &account).await.status, 200);
    assert_eq!(as_session(&h, &session, &cards).await.status, 200);

    // A revocation counts on the next call.
    change(&h, &e, Method::PUT, &format!("/power/subuser/auth/{id}?unAuthAppIds=301"), None).await;
    for path in billing_view {
        refused(&as_session(&h, &session, path).await, 403);
    }
    assert_eq!(as_session(&h, &session, &account).await.status, 200, "the other grants stay");

    // Through a role: its template gives billing.view to a sub-user of the
    // role, and taking it from the role takes it from the sub-user.
    let role = call(&h, Method::POST, &format!("/power/role?uid={uid}"), Some(e.token()), Some(&json!({"name": "账单员"}))).await;
    assert_eq!(role.status, 201, "{}", role.raw);
    let role_id: i64 = role.headers["location"].to_str().unwrap().strip_prefix("/rest/power/role/").unwrap().parse().unwrap();
    change(&h, &e, Method::PUT, &format!("/power/role/auth/{role_id}?authAppIds=300"), None).await;
    change(&h, &e, Method::POST, "/power/roleuser", Some(json!({"account": "agent002", "name": "李四", "password": PASSWORD, "roleId": role_id, "roleEnble": 1}))).await;
    let clerk = login(&h, &e, "agent002").await;
    for path in billing_view {
        assert_eq!(as_session(&h, &clerk, path).await.status, 200, "{path}");
    }
    refused(&as_session(&h, &clerk, &account).await, 403);
    change(&h, &e, Method::PUT, &format!("/power/role/auth/{role_id}?unAuthAppIds=300"), None).await;
    for path in billing_view {
        refused(&as_session(&h, &clerk, path).await, 403);
    }

    // Disabling the sub-user ends its session at once: 401, not 403.
    change(&h, &e, Method::PUT, &format!("/power/subuser/{id}"), Some(json!({"state": 2}))).await;
    refused(&as_session(&h, &session, &account).await, 401);
    // Enabled again, a new login works; logging out ends that session.
    change(&h, &e, Method::PUT, &format!("/power/subuser/{id}"), Some(json!({"state": 1}))).await;
    let session = login(&h, &e, "agent001").await;
    assert_eq!(as_session(&h, &session, &account).await.status, 200);
    let response = h.http.delete(h.url("/v1/sessions/current")).bearer_auth(&session).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    refused(&as_session(&h, &session, &account).await, 401);
}

/// With one request a second and a burst of three per enterprise, the
/// fourth request in a row is refused with 429, `Retry-After` and the
/// dialect's body; another enterprise has its own bucket; after the wait
/// the enterprise is served again.
async fn requests_over_the_rate_limit_answer_429(backend: Backend) {
    let h = Harness::start_with(backend, &["--rate-limit-tenant-per-second", "1", "--rate-limit-tenant-burst", "3"]).await;
    let e = Enterprise::create(&h, "UU Limited").await;
    let other = Enterprise::create(&h, "UU Limited Other").await;
    let path = format!("/account/cashlog?uid={}", e.uid);
    // Unauthenticated requests take no token of anyone's bucket.
    for _ in 0..5 {
        refused(&call(&h, Method::GET, &path, Some("slt_not_a_token"), None).await, 401);
    }
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(get(&h, &e, &path).await);
    }
    let limited = answers.iter().position(|a| a.status == 429).unwrap_or_else(|| panic!("no 429 in {:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>()));
    assert!(answers[..limited].iter().all(|a| a.status == 200) && limited >= 1, "served until the bucket is empty");
    let answer = &answers[limited];
    refused(answer, 429);
    let retry: u64 = answer.headers["retry-after"].to_str().unwrap().parse().expect("whole seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(get(&h, &other, &format!("/account/cashlog?uid={}", other.uid)).await.status, 200, "each enterprise has its own bucket");
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    assert_eq!(get(&h, &e, &path).await.status, 200, "served again after Retry-After");
}
