//! The fake over HTTP, as a process under test drives it: controls posted
//! to `/__control`, Graph's answers, cursors and errors on the wire.

use serde_json::{Value, json};
use subledger_fake_graph::FakeGraph;

async fn post_control(fake: &FakeGraph, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new().post(format!("{}/__control", fake.base_url())).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn controls_seed_and_steer_the_fake_over_http() {
    let fake = FakeGraph::start().await.unwrap();
    let seed = json!([
        {"op": "add_business", "id": "1001", "name": "Agency"},
        {"op": "add_token", "token": "T0K", "business_id": "1001"},
        {"op": "add_ad_account", "account_id": "2001", "business_id": "1001", "name": "A", "spend_cap_cents": 500},
        {"op": "add_ad_account", "account_id": "2002", "business_id": "1001", "name": "B"},
        {"op": "add_ad_account", "account_id": "2003", "business_id": "1001", "name": "C", "relation": "owned"}
    ]);
    assert_eq!(post_control(&fake, seed).await, (200, json!({"ok": true})));
    let root = format!("{}/v23.0", fake.base_url());

    // Two client accounts on pages of one: `next` carries the cursor (and, like Meta's, the token).
    let (status, first) = get(&format!("{root}/1001/client_ad_accounts?access_token=T0K&limit=1&fields=name,spend_cap")).await;
    assert_eq!(status, 200);
    assert_eq!(first["data"], json!([{"id": "act_2001", "name": "A", "spend_cap": "500"}]));
    let next = first["paging"]["next"].as_str().unwrap();
    assert!(next.contains("access_token=T0K") && next.contains(first["paging"]["cursors"]["after"].as_str().unwrap()));
    let (_, second) = get(next).await;
    assert_eq!(second["data"][0]["name"], "B");
    assert!(second["paging"].get("next").is_none());

    // Writes from a form body; the reset leaves $0.01.
    let client = reqwest::Client::new();
    let answer: Value = client.post(format!("{root}/act_2001")).form(&[("spend_cap", "12.34"), ("access_token", "T0K")]).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer, json!({"success": true}));
    assert_eq!(fake.ad_account("2001").unwrap().spend_cap_cents, 1_234);
    client.post(format!("{root}/act_2001")).form(&[("spend_cap_action", "reset"), ("access_token", "T0K")]).send().await.unwrap();
    let (_, account) = get(&format!("{root}/act_2001?access_token=T0K&fields=spend_cap,amount_spent")).await;
    assert_eq!(account, json!({"id": "act_2001", "spend_cap": "1", "amount_spent": "0"}));

    // Graph's errors for a missing token, a wrong one, and an object nobody has.
    let (status, missing) = get(&format!("{root}/act_2001")).await;
    assert_eq!((status, &missing["error"]["code"]), (400, &json!(104)));
    let (_, wrong) = get(&format!("{root}/act_2001?access_token=nope")).await;
    assert_eq!(wrong["error"]["code"], 190);
    let (_, absent) = get(&format!("{root}/act_9999?access_token=T0K")).await;
    assert_eq!((&absent["error"]["code"], &absent["error"]["error_subcode"]), (&json!(100), &json!(33)));

    // A failure knob with Meta's error object, and usage headers, for one call.
    let knobs = json!([
        {"op": "fail", "path": "act_2002", "times": 1, "status": 500, "error": {"message": "Please retry", "code": 2, "is_transient": true}},
        {"op": "send_headers", "headers": {"x-app-usage": "{\"call_count\":80}"}, "times": 1}
    ]);
    assert_eq!(post_control(&fake, knobs).await.0, 200);
    let response = reqwest::get(format!("{root}/act_2002?access_token=T0K")).await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(response.headers()["x-app-usage"], "{\"call_count\":80}");
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["message"], "Please retry");
    assert_eq!(get(&format!("{root}/act_2002?access_token=T0K")).await.0, 200);

    let (_, calls) = get(&format!("{}/__calls", fake.base_url())).await;
    assert_eq!(calls["paths"]["act_2002"], 2);
    assert_eq!(calls["paths"]["1001/client_ad_accounts"], 2);
    assert_eq!(get(&format!("{}/__account/2001", fake.base_url())).await.1["amount_spent_cents"], 0);

    // A control that does not apply is refused with the reason.
    let (status, refused) = post_control(&fake, json!({"op": "add_spend", "account_id": "7", "day": "2024-05-01", "cents": 1})).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("no ad account 7")));
    assert_eq!(post_control(&fake, json!({"op": "explode"})).await.0, 400);
}
