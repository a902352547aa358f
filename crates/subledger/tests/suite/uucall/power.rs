//! Tag `power`: notices, the operation log, roles, sub-users and their grants.

use jiff::tz::TimeZone;
use reqwest::Method;
use serde_json::json;

use super::*;
use crate::on_both_backends;

on_both_backends!(oplog_lists_changes_with_filters);

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
