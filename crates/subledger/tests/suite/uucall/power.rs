//! Tag `power`: notices, the operation log, roles, sub-users and their grants.

use jiff::tz::TimeZone;
use reqwest::Method;
use serde_json::json;

use super::*;
use crate::on_both_backends;

on_both_backends!(oplog_lists_changes_with_filters, roles_and_their_applications, notices_aimed_at_sub_users, sub_users_with_roles_and_grants);

/// An instant as the enterprise's wall clock writes it (`yyyy-MM-dd HH:mm:ss`, Asia/Shanghai).
fn local(at: jiff::Timestamp) -> String {
    at.to_zoned(TimeZone::get("Asia/Shanghai").unwrap()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn encoded(text: &str) -> String {
    text.replace(' ', "%20").replace(':', "%3A")
}

async fn oplog_lists_changes_with_filters(backend: Backend) {
    let h = Harness::start(backend).await;
    let start = jiff::Timestamp::now();
    let alpha = Enterprise::create(&h, "UU Log").await;
    let beta = Enterprise::create(&h, "UU Log Other").await;
    for username in ["agent001", "agent002", "agent003"] {
        create_account(&h, &alpha, username).await;
    }
    create_account(&h, &beta, "agent009").await;
    let end = jiff::Timestamp::now();
    let path = format!("/power/oplog?uid={}", alpha.uid);

    let answer = ok(get(&h, &alpha, &path).await);
    assert_eq!(answer.total, None, "the log gives no total");
    let rows = answer.body.as_array().expect("an array of OpLogSubUser").clone();
    assert_eq!(rows.len(), 4, "{}", answer.raw);
    // Newest first, described in the enterprise's language (zh-CN): the
    // enterprise's token created three sub-users, after the administrator created it.
    let described = ["企业接口 新增子帐号 agent003", "企业接口 新增子帐号 agent002", "企业接口 新增子帐号 agent001", "管理员 创建企业 UU Log"];
    for (row, describe) in rows.iter().zip(described) {
        assert_keys(row, &["uid", "id", "time", "opdescribe", "subUserName"]);
        assert_eq!(row["uid"], json!(alpha.uid));
        assert_eq!(row["subUserName"], json!(null), "no sub-user acted");
        let time = row["time"].as_i64().unwrap();
        assert!((start.as_millisecond() - 1..=end.as_millisecond() + 1).contains(&time), "{row}");
        assert_eq!(row["opdescribe"], describe);
    }

    // Filters: one id, a time range in the enterprise's zone, a sub-user, paging.
    let id = rows[1]["id"].as_i64().unwrap();
    assert_eq!(ok(get(&h, &alpha, &format!("{path}&id={id}")).await).body, json!([rows[1]]));
    let window = format!("{path}&startTime={}&endTime={}", encoded(&local(start - jiff::SignedDuration::from_secs(1))), encoded(&local(end)));
    assert_eq!(ok(get(&h, &alpha, &window).await).body.as_array().unwrap().len(), 4);
    let earlier = format!("{path}&startTime=2020-01-01%2000%3A00%3A00&endTime=2020-01-02%2000%3A00%3A00");
    assert_eq!(ok(get(&h, &alpha, &earlier).await).raw, "[]");
    assert_eq!(ok(get(&h, &alpha, &format!("{path}&subUserName=agent001")).await).raw, "[]", "no sub-user acted");
    assert_eq!(ok(get(&h, &alpha, &format!("{path}&page=2&pageSize=3")).await).body, json!([rows[3]]));
    // Another enterprise's entry is answered like one that does not exist.
    let theirs = ok(get(&h, &beta, &format!("/power/oplog?uid={}", beta.uid)).await).body[0]["id"].as_i64().unwrap();
    assert_eq!(ok(get(&h, &alpha, &format!("{path}&id={theirs}")).await).raw, "[]");

    assert_auth_and_method(&h, Method::GET, &path, Method::PUT).await;
    refused(&get(&h, &alpha, &format!("/power/oplog?uid={}", beta.uid)).await, 403);
    invalid(&get(&h, &alpha, "/power/oplog").await, "uid");
    invalid(&get(&h, &alpha, &format!("{path}&startTime=2024-01-01")).await, "startTime");
    invalid(&get(&h, &alpha, &format!("{path}&endTime=2024-13-01%2000%3A00%3A00")).await, "endTime");
    invalid(&get(&h, &alpha, &format!("{path}&startTime=2024-01-02%2000%3A00%3A00&endTime=2024-01-01%2000%3A00%3A00")).await, "endTime");
    invalid(&get(&h, &alpha, &format!("{path}&id=x")).await, "id");
    invalid(&get(&h, &alpha, &format!("{path}&pageSize=500")).await, "pageSize");
}

/// A POST or PUT the way a UUCall client sends it: some parameters in the
/// query, the model in the JSON body.
async fn send(h: &Harness, e: &Enterprise, method: Method, path: &str, body: Value) -> Answer {
    call(h, method, path, Some(e.token()), Some(&body)).await
}

/// A 201 whose `Location` names the new resource; returns its id.
#[track_caller]
fn created_id(answer: &Answer, prefix: &str) -> i64 {
    assert_eq!(answer.status, 201, "{}", answer.raw);
    let location = answer.headers["location"].to_str().unwrap();
    location.strip_prefix(prefix).and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("{location}"))
}

async fn roles_and_their_applications(backend: Backend) {
    let h = Harness::start(backend).await;
    let alpha = Enterprise::create(&h, "UU Roles").await;
    let beta = Enterprise::create(&h, "UU Roles Other").await;
    let uid = alpha.uid;

    let agent = created_id(&send(&h, &alpha, Method::POST, &format!("/power/role?uid={uid}&name=%E5%9D%90%E5%B8%AD"), json!({"level": 2})).await, "/rest/power/role/");
    let lead = created_id(&send(&h, &alpha, Method::POST, &format!("/power/role?uid={uid}&name=ignored"), json!({"name": "班长", "level": 5})).await, "/rest/power/role/");
    let theirs = created_id(&send(&h, &beta, Method::POST, &format!("/power/role?uid={}", beta.uid), json!({"name": "坐席"})).await, "/rest/power/role/");

    let answer = ok(get(&h, &alpha, &format!("/power/role?uid={uid}")).await);
    assert_eq!(answer.total, Some(2));
    for row in answer.body.as_array().unwrap() {
        assert_keys(row, &["uid", "id", "level", "name"]);
    }
    let names: Vec<&str> = answer.body.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"坐席") && names.contains(&"班长"), "the body beats the query: {names:?}");
    let filtered = ok(get(&h, &alpha, &format!("/power/role?uid={uid}&name=%E7%8F%AD")).await);
    assert_eq!(filtered.body, json!([{"uid": uid, "id": lead, "level": 5, "name": "班长"}]));

    assert_eq!(send(&h, &alpha, Method::PUT, &format!("/power/role/{agent}"), json!({"name": "坐席A", "level": 3})).await.status, 200);
    let renamed = ok(get(&h, &alpha, &format!("/power/role?uid={uid}&name=%E5%9D%90%E5%B8%ADA")).await);
    assert_eq!(renamed.body, json!([{"uid": uid, "id": agent, "level": 3, "name": "坐席A"}]));

    // The role's template: grants and revocations as comma lists; parents of what is held listed too.
    assert_eq!(ok(get(&h, &alpha, &format!("/power/role/auth/{agent}?uid={uid}")).await).raw, "[]");
    let put = call(&h, Method::PUT, &format!("/power/role/auth/{agent}?authAppIds=101,201,301"), Some(alpha.token()), None).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    assert_eq!(call(&h, Method::PUT, &format!("/power/role/auth/{agent}?unAuthAppIds=301"), Some(alpha.token()), None).await.status, 200);
    let apps = ok(get(&h, &alpha, &format!("/power/role/auth/{agent}?uid={uid}")).await);
    for row in apps.body.as_array().unwrap() {
        assert_keys(row, &["uid", "id", "name", "pid"]);
    }
    assert_eq!(
        apps.body,
        json!([
            {"uid": uid, "id": 100, "name": "子帐号管理", "pid": 0},
            {"uid": uid, "id": 101, "name": "查看子帐号", "pid": 100},
            {"uid": uid, "id": 200, "name": "资金管理", "pid": 0},
            {"uid": uid, "id": 201, "name": "查看余额与充值记录", "pid": 200},
        ])
    );

    // Errors: unknown applications, another enterprise's role, wrong methods, bad values.
    invalid(&call(&h, Method::PUT, &format!("/power/role/auth/{agent}?authAppIds=101,99999"), Some(alpha.token()), None).await, "authAppIds");
    for answer in [
        get(&h, &alpha, &format!("/power/role/auth/{theirs}?uid={uid}")).await,
        call(&h, Method::PUT, &format!("/power/role/auth/{theirs}?authAppIds=101"), Some(alpha.token()), None).await,
        send(&h, &alpha, Method::PUT, &format!("/power/role/{theirs}"), json!({"name": "x"})).await,
        call(&h, Method::DELETE, &format!("/power/role/{theirs}"), Some(alpha.token()), None).await,
        call(&h, Method::DELETE, "/power/role/999999", Some(alpha.token()), None).await,
    ] {
        invalid(&answer, "roleId");
    }
    invalid(&send(&h, &alpha, Method::POST, &format!("/power/role?uid={uid}"), json!({"name": "班长"})).await, "name");
    invalid(&send(&h, &alpha, Method::POST, &format!("/power/role?uid={uid}"), json!({"level": 1})).await, "name");
    invalid(&send(&h, &alpha, Method::POST, &format!("/power/role?uid={uid}"), json!({"name": "x", "level": -1})).await, "level");
    invalid(&send(&h, &alpha, Method::POST, &format!("/power/role?uid={uid}"), json!({"name": ["x"]})).await, "name");
    refused(&send(&h, &alpha, Method::POST, &format!("/power/role?uid={}", beta.uid), json!({"name": "y"})).await, 403);
    refused(&call(&h, Method::GET, &format!("/power/role/{agent}"), Some(alpha.token()), None).await, 405);
    assert_auth_and_method(&h, Method::GET, &format!("/power/role?uid={uid}"), Method::DELETE).await;
    assert_auth_and_method(&h, Method::GET, &format!("/power/role/auth/{agent}?uid={uid}"), Method::POST).await;

    assert_eq!(call(&h, Method::DELETE, &format!("/power/role/{lead}"), Some(alpha.token()), None).await.status, 200);
    assert_eq!(ok(get(&h, &alpha, &format!("/power/role?uid={uid}")).await).total, Some(1));
    assert_eq!(ok(get(&h, &beta, &format!("/power/role?uid={}", beta.uid)).await).total, Some(1), "the other enterprise's role stays");
}

async fn create_sub_user(h: &Harness, e: &Enterprise, account: &str, extra: Value) -> i64 {
    let mut body = json!({"account": account, "name": "张三", "password": "Abc12345"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    created_id(&send(h, e, Method::POST, "/power/roleuser", body).await, "/rest/power/roleuser/")
}

async fn notices_aimed_at_sub_users(backend: Backend) {
    let h = Harness::start(backend).await;
    let alpha = Enterprise::create(&h, "UU Notices").await;
    let beta = Enterprise::create(&h, "UU Notices Other").await;
    let uid = alpha.uid;
    let agent = create_sub_user(&h, &alpha, "agent001", json!({})).await;
    let other = create_sub_user(&h, &alpha, "agent002", json!({})).await;
    let stranger = create_sub_user(&h, &beta, "agent003", json!({})).await;

    let before = jiff::Timestamp::now().as_millisecond();
    let all = created_id(&send(&h, &alpha, Method::POST, "/power/notice", json!({"uid": uid, "title": "停机维护", "content": "今晚22点", "targets": ""})).await, "/rest/power/notice/");
    let aimed = created_id(&send(&h, &alpha, Method::POST, "/power/notice", json!({"title": "培训", "content": "明天", "targets": format!("{agent},{other}")})).await, "/rest/power/notice/");
    let theirs = created_id(&send(&h, &beta, Method::POST, "/power/notice", json!({"title": "x", "content": "y"})).await, "/rest/power/notice/");

    let answer = ok(get(&h, &alpha, &format!("/power/notice?uid={uid}")).await);
    assert_eq!(answer.total, Some(2));
    for row in answer.body.as_array().unwrap() {
        assert_keys(row, &["uid", "createtime", "content", "id", "title", "targets"]);
        assert!(row["createtime"].as_i64().unwrap() >= before - 1);
    }
    let one = ok(get(&h, &alpha, &format!("/power/notice/{aimed}?uid={uid}")).await);
    assert_eq!((&one.body["title"], &one.body["targets"], &one.body["uid"]), (&json!("培训"), &json!(format!("{agent},{other}")), &json!(uid)));
    assert_eq!(ok(get(&h, &alpha, &format!("/power/notice?uid={uid}&id={all}")).await).body[0]["targets"], "");
    assert_eq!(ok(get(&h, &alpha, &format!("/power/notice?uid={uid}&title=%E5%9F%B9")).await).body.as_array().unwrap().len(), 1);

    assert_eq!(send(&h, &alpha, Method::PUT, &format!("/power/notice/{aimed}?uid={uid}"), json!({"content": "后天", "targets": format!("{agent}")})).await.status, 200);
    let changed = ok(get(&h, &alpha, &format!("/power/notice/{aimed}?uid={uid}")).await);
    assert_eq!((&changed.body["title"], &changed.body["content"], &changed.body["targets"]), (&json!("培训"), &json!("后天"), &json!(format!("{agent}"))));

    invalid(&send(&h, &alpha, Method::POST, "/power/notice", json!({"title": "", "content": "c"})).await, "title");
    invalid(&send(&h, &alpha, Method::POST, "/power/notice", json!({"title": "t"})).await, "content");
    invalid(&send(&h, &alpha, Method::POST, "/power/notice", json!({"title": "t", "content": "c", "targets": format!("{stranger}")})).await, "targets");
    invalid(&send(&h, &alpha, Method::POST, "/power/notice", json!({"title": "t", "content": "c", "targets": "a,b"})).await, "targets");
    for answer in [
        get(&h, &alpha, &format!("/power/notice/{theirs}?uid={uid}")).await,
        send(&h, &alpha, Method::PUT, &format!("/power/notice/{theirs}?uid={uid}"), json!({"title": "z"})).await,
        call(&h, Method::DELETE, &format!("/power/notice/{theirs}?uid={uid}"), Some(alpha.token()), None).await,
        get(&h, &alpha, &format!("/power/notice/999999?uid={uid}")).await,
    ] {
        invalid(&answer, "noticeId");
    }
    invalid(&get(&h, &alpha, &format!("/power/notice/abc?uid={uid}")).await, "noticeId");
    refused(&get(&h, &alpha, &format!("/power/notice?uid={}", beta.uid)).await, 403);
    assert_auth_and_method(&h, Method::GET, &format!("/power/notice?uid={uid}"), Method::PUT).await;
    assert_auth_and_method(&h, Method::GET, &format!("/power/notice/{all}?uid={uid}"), Method::POST).await;

    assert_eq!(call(&h, Method::DELETE, &format!("/power/notice/{all}?uid={uid}"), Some(alpha.token()), None).await.status, 200);
    invalid(&get(&h, &alpha, &format!("/power/notice/{all}?uid={uid}")).await, "noticeId");
    assert_eq!(ok(get(&h, &beta, &format!("/power/notice/{theirs}?uid={}", beta.uid)).await).body["id"], json!(theirs));
}

async fn sub_users_with_roles_and_grants(backend: Backend) {
    let h = Harness::start(backend).await;
    let alpha = Enterprise::create(&h, "UU Seats").await;
    let beta = Enterprise::create(&h, "UU Seats Other").await;
    let uid = alpha.uid;
    let role = created_id(&send(&h, &alpha, Method::POST, &format!("/power/role?uid={uid}"), json!({"name": "坐席"})).await, "/rest/power/role/");
    assert_eq!(call(&h, Method::PUT, &format!("/power/role/auth/{role}?authAppIds=501"), Some(alpha.token()), None).await.status, 200);

    // Created from the query and the body together; roleEnble 1 applies the role's template, 2 does not.
    let templated = created_id(
        &send(&h, &alpha, Method::POST, &format!("/power/roleuser?roleId={role}&roleEnble=1&jobnumber=J001"), json!({"account": "agent001", "name": "张三", "password": "Abc12345"})).await,
        "/rest/power/roleuser/",
    );
    let plain = create_sub_user(&h, &alpha, "agent002", json!({"roleId": role, "roleEnble": 2, "jobnumber": "J002"})).await;
    let theirs = create_sub_user(&h, &beta, "agent009", json!({})).await;

    let row = ok(get(&h, &alpha, &format!("/power/roleuser/{templated}")).await).body;
    assert_keys(&row, &["id", "jobnumber", "name", "state", "account", "roleName"]);
    assert_eq!(row, json!({"id": templated, "jobnumber": "J001", "name": "张三", "state": 1, "account": "agent001", "roleName": "坐席"}));
    let listed = ok(get(&h, &alpha, &format!("/power/roleuser?uid={uid}&roleName=%E5%9D%90%E5%B8%AD&pageSize=1")).await);
    assert_eq!((listed.total, listed.body.as_array().unwrap().len()), (Some(2), 1));
    assert_eq!(ok(get(&h, &alpha, &format!("/power/roleuser?uid={uid}&subUserName=agent002")).await).body[0]["id"], json!(plain));

    let apps = |body: &Value| body.as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(apps(&ok(get(&h, &alpha, &format!("/power/subuser/auth/{templated}")).await).body), vec![500, 501]);
    assert_eq!(ok(get(&h, &alpha, &format!("/power/subuser/auth/{plain}")).await).raw, "[]");
    assert_eq!(call(&h, Method::PUT, &format!("/power/subuser/auth/{templated}?authAppIds=701&unAuthAppIds=501"), Some(alpha.token()), None).await.status, 200);
    let granted = ok(get(&h, &alpha, &format!("/power/subuser/auth/{templated}")).await);
    for row in granted.body.as_array().unwrap() {
        assert_keys(row, &["uid", "id", "name", "pid"]);
    }
    assert_eq!(apps(&granted.body), vec![700, 701]);
    assert_eq!(apps(&ok(get(&h, &alpha, &format!("/power/subuser/auth/{templated}?pid=700")).await).body), vec![701]);

    // The sub-user as `SubUser`: every field of the model, the password never shown.
    let user = ok(get(&h, &alpha, &format!("/power/subuser/{templated}")).await).body;
    assert_keys(
        &user,
        &[
            "uid",
            "state",
            "login_ip",
            "password",
            "history_online_count",
            "id",
            "createtime",
            "jobnumber",
            "history_online_time",
            "login_time",
            "login_server",
            "email",
            "name",
            "account",
            "mphone",
            "dept",
            "login_version",
            "bind_ext",
            "note",
            "login_os_info",
        ],
    );
    assert_eq!((&user["uid"], &user["state"], &user["password"], &user["account"], &user["jobnumber"]), (&json!(uid), &json!(1), &json!(""), &json!("agent001"), &json!("J001")));

    let put = send(&h, &alpha, Method::PUT, &format!("/power/subuser/{templated}"), json!({"bind_ext": 8001, "dept": "客服部", "mphone": "13800138000", "state": 2})).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    let user = ok(get(&h, &alpha, &format!("/power/subuser/{templated}")).await).body;
    assert_eq!((&user["bind_ext"], &user["dept"], &user["mphone"], &user["state"]), (&json!(8001), &json!("客服部"), &json!("13800138000"), &json!(2)));
    let found = ok(get(&h, &alpha, &format!("/power/subuser?uid={uid}&bind_ext=8001&state=2")).await);
    assert_eq!((found.total, found.body[0]["id"].clone()), (Some(1), json!(templated)));

    // Delete cancels (state 3); the sub-user stays.
    assert_eq!(call(&h, Method::DELETE, &format!("/power/subuser/{plain}"), Some(alpha.token()), None).await.status, 200);
    assert_eq!(ok(get(&h, &alpha, &format!("/power/subuser/{plain}")).await).body["state"], 3);
    assert_eq!(ok(get(&h, &alpha, &format!("/power/subuser?uid={uid}&state=3")).await).total, Some(1));

    // Errors.
    invalid(&send(&h, &alpha, Method::POST, "/power/roleuser", json!({"account": "agent005", "name": "n", "password": "Abc1234567890123"})).await, "password");
    invalid(&send(&h, &alpha, Method::POST, "/power/roleuser", json!({"account": "agent005", "name": "n", "password": "Abc12345", "roleEnble": 3})).await, "roleEnble");
    invalid(&send(&h, &alpha, Method::POST, "/power/roleuser", json!({"account": "agent001", "name": "n", "password": "Abc12345"})).await, "account");
    invalid(&send(&h, &alpha, Method::POST, "/power/roleuser", json!({"name": "n", "password": "Abc12345"})).await, "account");
    invalid(&send(&h, &alpha, Method::POST, "/power/roleuser", json!({"account": "agent006", "name": "n", "password": "Abc12345", "roleId": 999999})).await, "roleId");
    invalid(&get(&h, &alpha, &format!("/power/subuser?uid={uid}&state=5")).await, "state");
    invalid(&send(&h, &alpha, Method::PUT, &format!("/power/subuser/{templated}"), json!({"state": 3})).await, "state");
    invalid(&call(&h, Method::PUT, &format!("/power/subuser/auth/{templated}?authAppIds=x"), Some(alpha.token()), None).await, "authAppIds");
    for answer in [
        get(&h, &alpha, &format!("/power/subuser/{theirs}")).await,
        get(&h, &alpha, &format!("/power/roleuser/{theirs}")).await,
        get(&h, &alpha, &format!("/power/subuser/auth/{theirs}")).await,
        send(&h, &alpha, Method::PUT, &format!("/power/subuser/{theirs}"), json!({"dept": "x"})).await,
        send(&h, &alpha, Method::PUT, &format!("/power/roleuser/{theirs}"), json!({"name": "x"})).await,
        call(&h, Method::PUT, &format!("/power/subuser/auth/{theirs}?authAppIds=101"), Some(alpha.token()), None).await,
        call(&h, Method::DELETE, &format!("/power/subuser/{theirs}"), Some(alpha.token()), None).await,
    ] {
        invalid(&answer, "subUserId");
    }
    assert_eq!(ok(get(&h, &beta, &format!("/power/subuser/{theirs}")).await).body["state"], 1, "untouched");
    refused(&get(&h, &alpha, &format!("/power/subuser?uid={}", beta.uid)).await, 403);
    assert_auth_and_method(&h, Method::GET, &format!("/power/subuser?uid={uid}"), Method::POST).await;
    assert_auth_and_method(&h, Method::GET, &format!("/power/roleuser?uid={uid}"), Method::DELETE).await;
    assert_auth_and_method(&h, Method::GET, &format!("/power/roleuser/{plain}"), Method::DELETE).await;
    assert_auth_and_method(&h, Method::GET, &format!("/power/subuser/{plain}"), Method::POST).await;
    assert_auth_and_method(&h, Method::GET, &format!("/power/subuser/auth/{plain}"), Method::DELETE).await;
}
