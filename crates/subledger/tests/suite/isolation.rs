//! One tenant must never make another tenant's requests fail: tenant B sends
//! bad and racing requests while tenant A's transfer load runs, and A sees
//! no failure at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(a_request_the_database_refuses_fails_alone, overdraft_changes_race_spending_safely, nothing_tenant_b_sends_fails_tenant_a);

/// Tenant A's steady load: signed SendCloud `transferIn` of 0.01 from a few
/// concurrent clients, until stopped.
struct SteadyLoad {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<(u64, Vec<String>)>>,
}

impl SteadyLoad {
    const CLIENTS: usize = 8;

    async fn start(h: &Harness, name: &str) -> SteadyLoad {
        let tenant = h.create_tenant(name).await;
        h.deposit(&tenant, "100000.00").await;
        let mut names = Vec::new();
        for i in 0..Self::CLIENTS {
            let name = format!("steady{i:02}");
            h.create_account(&tenant, &name).await;
            names.push(name);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let workers = names
            .into_iter()
            .map(|name| {
                let (http, base, tenant, stop) = (h.http.clone(), h.server.base.clone(), tenant.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut ok, mut failures) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        let body = signed_form(&tenant, &[("username", &name), ("money", "1.00")], true);
                        let reply = http.post(format!("{base}/api/subAccount/transferIn")).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await;
                        match reply {
                            Ok(response) => {
                                let reply: Value = response.json().await.unwrap_or(Value::Null);
                                if reply["statusCode"] == 200 { ok += 1 } else { failures.push(reply.to_string()) }
                            }
                            Err(error) => failures.push(error.to_string()),
                        }
                    }
                    (ok, failures)
                })
            })
            .collect();
        SteadyLoad { stop, workers }
    }

    /// Stops the load; returns the transfers that succeeded and every failure.
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut ok, mut failures) = (0, Vec::new());
        for worker in self.workers {
            let (o, f) = worker.await.expect("a load client");
            ok += o;
            failures.extend(f);
        }
        (ok, failures)
    }
}

/// A transfer the database refuses (here a trigger stands in for any value
/// the database cannot store) fails its ledger batch; the batch is committed
/// in halves until that request fails alone, so tenant A's transfers and B's
/// own good ones batched beside it all commit.
async fn a_request_the_database_refuses_fails_alone(backend: Backend) {
    let h = Harness::start(backend).await;
    let b = h.create_tenant("B").await;
    h.deposit(&b, "1000.00").await;
    h.create_account(&b, "bravo001").await;
    poison_writes(&h.db, "transfers", "memo", "poison").await;

    let load = SteadyLoad::start(&h, "A").await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (h_http, base, token) = (h.http.clone(), h.server.base.clone(), b.api_token.clone());
            tokio::spawn(async move {
                let memo = if i % 2 == 0 { "poison" } else { "fine" };
                let response = h_http
                    .post(format!("{base}/v1/transfers"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("b-{i}"))
                    .json(&json!({"from": {}, "to": {"username": "bravo001"}, "amount": "1.00", "memo": memo}))
                    .send()
                    .await
                    .expect("a transfer request");
                (memo, response.status().as_u16())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let (ok, failures) = load.finish().await;
    assert!(failures.is_empty(), "tenant A saw {} failures beside {ok} transfers, e.g. {:?}", failures.len(), failures.first());
    assert!(ok > 0);
    for (memo, status) in &outcomes {
        match *memo {
            "poison" => assert!(*status >= 500, "the refused request fails: {status}"),
            _ => assert_eq!(*status, 201, "B's good transfers commit beside the bad ones"),
        }
    }
    let (_, wallets) = h.get_json("/v1/wallets?username=bravo001", &b.api_token).await;
    let primary = wallets["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary").unwrap().clone();
    assert_eq!(primary["balance"], "100.00", "exactly the 100 good transfers landed");
    heal_writes_named(&h.db, "transfers", "poisoned").await;
    h.assert_ledger_sound().await;
}

/// Tenant B toggles its overdraft while spending around zero. On PostgreSQL
/// an optimistic batch that read the old floor must not write a balance below
/// the new one (the CHECK would fail the whole batch, A's transfers with it).
async fn overdraft_changes_race_spending_safely(backend: Backend) {
    let h = Harness::start(backend).await;
    let b = h.create_tenant("B").await;
    h.create_account(&b, "bravo001").await;
    h.deposit(&b, "20.00").await;
    let load = SteadyLoad::start(&h, "A").await;

    let stop = Arc::new(AtomicBool::new(false));
    let toggler = {
        let (http, base, tenant, stop) = (h.http.clone(), h.server.base.clone(), b.tenant_id.clone(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut on = false;
            while !stop.load(Ordering::Relaxed) {
                on = !on;
                let limit = if on { "50.00" } else { "0" };
                let response = http.put(format!("{base}/v1/tenants/{tenant}/overdraft")).bearer_auth(ADMIN_TOKEN).json(&json!({"limit": limit})).send().await.expect("overdraft");
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    };
    let mut spent = Vec::new();
    for round in 0..60 {
        // Spend a little more than is there, so the balance keeps crossing zero.
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let (http, base, token) = (h.http.clone(), h.server.base.clone(), b.api_token.clone());
                tokio::spawn(async move {
                    let response = http
                        .post(format!("{base}/v1/transfers"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", format!("spend-{round}-{i}"))
                        .json(&json!({"from": {}, "to": {"username": "bravo001"}, "amount": "4.00"}))
                        .send()
                        .await
                        .expect("a transfer");
                    status_and_json(response).await
                })
            })
            .collect();
        for task in tasks {
            spent.push(task.await.unwrap());
        }
        // Money flows back so the tenant's balance hovers around zero.
        let (status, body) = native_back(&h, &b, round).await;
        assert!(status == 201 || status == 422, "{status} {body}");
    }
    stop.store(true, Ordering::Relaxed);
    let toggles = toggler.await.unwrap();
    let (ok, failures) = load.finish().await;
    assert!(failures.is_empty(), "tenant A saw {} failures beside {ok} transfers, e.g. {:?}", failures.len(), failures.first());
    for (status, body) in &spent {
        assert!(
            *status == 201 || (*status == 422 && ["insufficient_funds", "negative_balance"].contains(&body["error"]["code"].as_str().unwrap_or_default())),
            "B's spending is posted or refused by a rule, never failed: {status} {body}"
        );
    }
    assert!(toggles.iter().all(|s| *s == 200 || *s == 400), "{toggles:?}");
    h.assert_ledger_sound().await;
}

/// Moves what bravo001 holds back to tenant B, so B keeps spending around zero.
async fn native_back(h: &Harness, b: &Tenant, round: usize) -> (u16, Value) {
    let response = h
        .http
        .post(h.url("/v1/transfers"))
        .bearer_auth(&b.api_token)
        .header("Idempotency-Key", format!("back-{round}"))
        .json(&json!({"from": {"username": "bravo001"}, "to": {}, "amount": "24.00"}))
        .send()
        .await
        .expect("a transfer");
    status_and_json(response).await
}

/// A raw request of tenant B; returns the HTTP status (0 when the server did
/// not answer at all).
async fn raw(http: &reqwest::Client, request: reqwest::RequestBuilder) -> u16 {
    let _ = http;
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

/// Tenant B sends every kind of bad, oversized, overflowing and racing
/// request it can think of while tenant A's transfers run: A sees no failure,
/// B never gets a 5xx (its requests are refused, in its dialect's words),
/// and the ledger stays sound.
async fn nothing_tenant_b_sends_fails_tenant_a(backend: Backend) {
    let h = Harness::start(backend).await;
    let b = h.create_tenant("B").await;
    h.deposit(&b, "50.00").await;
    h.create_account(&b, "bravo001").await;
    let price = json!({"model": "per_unit", "price": "1000000", "increment": "1"});
    let (status, body) = h.post_json("/v1/tariffs", &b.api_token, &json!({"product": "sms", "model": price, "effective_from": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(status, 201, "{body}");
    let load = SteadyLoad::start(&h, "A").await;

    let (http, base, token) = (h.http.clone(), h.server.base.clone(), b.api_token.clone());
    let now = jiff::Timestamp::now().to_string();
    let mut statuses: Vec<(String, u16)> = Vec::new();
    for round in 0..4 {
        let key = |what: &str| format!("{what}-{round}");
        let transfer = |memo: &str, key: String| {
            http.post(format!("{base}/v1/transfers")).bearer_auth(&token).header("Idempotency-Key", key).json(&json!({"from": {}, "to": {"username": "bravo001"}, "amount": "1.00", "memo": memo}))
        };
        let requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
            ("NUL memo", transfer("a\u{0}b", key("nul-memo"))),
            (
                "NUL deposit note",
                http.post(format!("{base}/v1/tenants/{}/deposits", b.tenant_id))
                    .bearer_auth(ADMIN_TOKEN)
                    .header("Idempotency-Key", key("nul-note"))
                    .json(&json!({"amount": "1.00", "note": "x\u{0}y"})),
            ),
            ("NUL path", http.put(format!("{base}/v1/accounts/a%00b/quota")).bearer_auth(&token).json(&json!({"quota": 5}))),
            ("NUL telephony path", http.get(format!("{base}/balance/getAccountAmount/%00")).bearer_auth(&token)),
            ("invalid UTF-8 query", http.get(format!("{base}/v1/accounts?username=%FF%FE")).bearer_auth(&token)),
            (
                "NUL usage",
                http.post(format!("{base}/v1/usage"))
                    .bearer_auth(&token)
                    .json(&json!({"events": [{"id": key("nul-usage"), "account": "bravo\u{0}", "product": "sms", "quantity": 1, "occurred_at": now}]})),
            ),
            (
                "overflowing usage",
                http.post(format!("{base}/v1/usage"))
                    .bearer_auth(&token)
                    .json(&json!({"events": [{"id": key("huge"), "account": "bravo001", "product": "sms", "quantity": "1000000000000", "occurred_at": now}]})),
            ),
            (
                "oversized JSON",
                http.post(format!("{base}/v1/transfers"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", key("big"))
                    .header("Content-Type", "application/json")
                    .body(format!("{{\"memo\":\"{}\"}}", "x".repeat(400 * 1024))),
            ),
            (
                "oversized form",
                http.post(format!("{base}/api/subAccount/transferIn")).header("Content-Type", "application/x-www-form-urlencoded").body(format!("appId={}&x={}", b.app_id, "y".repeat(100 * 1024))),
            ),
            (
                "bad signature",
                http.post(format!("{base}/api/subAccount/transferIn")).header("Content-Type", "application/x-www-form-urlencoded").body(format!(
                    "appId={}&username=bravo001&money=1.00&timestamp=1&signature={}",
                    b.app_id,
                    "0".repeat(32)
                )),
            ),
            ("another tenant's account", transfer("steal", key("steal")).json(&json!({"from": {}, "to": {"username": "steady00"}, "amount": "1.00"}))),
            ("overdraw", transfer("overdraw", key("overdraw")).json(&json!({"from": {}, "to": {"username": "bravo001"}, "amount": "99999999.00"}))),
            ("huge page", http.get(format!("{base}/v1/accounts?offset=99999999999&limit=999999")).bearer_auth(&token)),
            ("close this month", http.post(format!("{base}/v1/bills/close")).bearer_auth(&token).json(&json!({"month": &now[..7]}))),
            ("made-up method", http.request(reqwest::Method::from_bytes(format!("X{}", "Y".repeat(200)).as_bytes()).unwrap(), format!("{base}/v1/accounts")).bearer_auth(&token)),
        ];
        let replays: Vec<_> = (0..8).map(|_| ("replayed key", transfer("same", key("replayed")))).collect();
        let overdrafts: Vec<_> = ["50.00", "0", "50.00", "0"]
            .into_iter()
            .map(|limit| ("overdraft toggle", http.put(format!("{base}/v1/tenants/{}/overdraft", b.tenant_id)).bearer_auth(ADMIN_TOKEN).json(&json!({"limit": limit}))))
            .collect();
        let tasks: Vec<_> = requests
            .into_iter()
            .chain(replays)
            .chain(overdrafts)
            .map(|(what, request)| {
                let http = http.clone();
                tokio::spawn(async move { (what.to_owned(), raw(&http, request).await) })
            })
            .collect();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
    }
    let (ok, failures) = load.finish().await;
    assert!(failures.is_empty(), "tenant A saw {} failures beside {ok} transfers, e.g. {:?}", failures.len(), failures.first());
    assert!(ok > 0);
    let server_errors: Vec<_> = statuses.iter().filter(|(_, status)| *status == 0 || *status >= 500).collect();
    assert!(server_errors.is_empty(), "B's bad requests are refused, never failed: {server_errors:?}");
    h.assert_ledger_sound().await;
}
