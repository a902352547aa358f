//! Reliability: concurrent transfers on one hot wallet, a crash in the middle
//! of a load, a graceful stop, and two server processes on one database.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    concurrent_transfers_never_overdraw,
    concurrent_replays_of_one_key_move_money_once,
    crash_keeps_every_acknowledged_transfer,
    graceful_stop_flushes_the_ledger,
    two_processes_share_one_database,
    crash_keeps_every_acknowledged_usage_event,
    concurrent_usage_batches_share_ids_once,
);

async fn accounts(h: &Harness, tenant: &Tenant, count: usize) -> Vec<String> {
    let mut names = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("load{i:05}");
        let (status, body) = h.post_json("/v1/accounts", &tenant.api_token, &json!({"username": name})).await;
        assert_eq!(status, 201, "{body}");
        names.push(name);
    }
    names
}

/// One signed `transferIn` of `money` to `username` at `base`; the reply's
/// status code and transfer id, or `None` when the server did not answer.
async fn transfer_in(http: &reqwest::Client, base: &str, tenant: &Tenant, username: &str, money: &str) -> Option<(u64, Option<String>, String)> {
    let body = signed_form(tenant, &[("username", username), ("money", money)], true);
    let signature = body.rsplit_once("signature=").map(|(_, s)| s.to_owned()).unwrap_or_default();
    let response = http.post(format!("{base}/api/subAccount/transferIn")).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await.ok()?;
    let reply: Value = response.json().await.ok()?;
    Some((reply["statusCode"].as_u64().unwrap_or_default(), reply["info"]["transferId"].as_str().map(str::to_owned), signature))
}

async fn primary_balance(h: &Harness, token: &str, username: Option<&str>) -> String {
    let path = username.map_or_else(|| "/v1/wallets".to_owned(), |u| format!("/v1/wallets?username={u}"));
    let (_, wallets) = h.get_json(&path, token).await;
    wallets["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary").unwrap()["balance"].as_str().unwrap().to_owned()
}

async fn concurrent_transfers_never_overdraw(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Hot wallet").await;
    h.deposit(&tenant, "1000.00").await;
    let names = accounts(&h, &tenant, 20).await;
    // 200 concurrent allocations of 10.00 against 1000.00: exactly 100 fit.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (http, base, tenant, name) = (h.http.clone(), h.server.base.clone(), tenant.clone(), names[i % names.len()].clone());
            tokio::spawn(async move { transfer_in(&http, &base, &tenant, &name, "10.00").await })
        })
        .collect();
    let mut ok = 0;
    let mut insufficient = 0;
    for task in tasks {
        match task.await.unwrap().expect("every request is answered").0 {
            200 => ok += 1,
            420 => insufficient += 1,
            other => panic!("unexpected code {other}"),
        }
    }
    assert_eq!((ok, insufficient), (100, 100));
    assert_eq!(primary_balance(&h, &tenant.api_token, None).await, "0.00");
    let report = h.assert_ledger_sound().await;
    assert_eq!(report["wallets_below_floor"], 0);
    // Batching really happened: fewer commits than transfers.
    let metrics = h.http.get(h.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let batches: f64 = metrics.lines().find_map(|l| l.strip_prefix("subledger_ledger_batch_transfers_count ")).unwrap().parse().unwrap();
    let transfers: f64 = metrics.lines().find_map(|l| l.strip_prefix("subledger_ledger_batch_transfers_sum ")).unwrap().parse().unwrap();
    assert!(transfers >= 201.0, "{transfers}");
    assert!(batches < transfers, "{batches} batches for {transfers} transfers");
}

async fn concurrent_replays_of_one_key_move_money_once(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Replays").await;
    h.deposit(&tenant, "100.00").await;
    accounts(&h, &tenant, 1).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let request = h
                .http
                .post(h.url("/v1/transfers"))
                .bearer_auth(&tenant.api_token)
                .header("Idempotency-Key", "the-one-key")
                .json(&json!({"from": {}, "to": {"username": "load00000"}, "amount": "30.00"}));
            tokio::spawn(async move { status_and_json(request.send().await.unwrap()).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
        ids.insert(body["transfer_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every replay answers with the first transfer");
    assert_eq!(primary_balance(&h, &tenant.api_token, None).await, "70.00");
    h.assert_ledger_sound().await;
}

/// Drives `transferIn` of 1.00 from `workers` concurrent clients until stopped;
/// returns the signatures sent and the transfer ids acknowledged.
struct Load {
    sent: Arc<Mutex<HashSet<String>>>,
    acknowledged: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(bases: Vec<String>, tenant: &Tenant, names: &[String], workers: usize) -> Load {
        let load = Load { sent: Arc::default(), acknowledged: Arc::default(), stop: Arc::default(), tasks: Vec::new() };
        let tasks = (0..workers)
            .map(|worker| {
                let (sent, acknowledged, stop) = (load.sent.clone(), load.acknowledged.clone(), load.stop.clone());
                let (tenant, names, base) = (tenant.clone(), names.to_vec(), bases[worker % bases.len()].clone());
                tokio::spawn(async move {
                    let http = client();
                    let mut i = worker;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let name = &names[i % names.len()];
                        i += workers;
                        let body = signed_form(&tenant, &[("username", name), ("money", "1.00")], true);
                        let signature = body.rsplit_once("signature=").unwrap().1.to_owned();
                        sent.lock().unwrap().insert(signature);
                        let request = http.post(format!("{base}/api/subAccount/transferIn")).header("Content-Type", "application/x-www-form-urlencoded").body(body);
                        let Ok(response) = request.send().await else { break };
                        let Ok(reply) = response.json::<Value>().await else { break };
                        match reply["statusCode"].as_u64() {
                            Some(200) => acknowledged.lock().unwrap().push(reply["info"]["transferId"].as_str().unwrap().to_owned()),
                            other => panic!("unexpected reply {other:?}: {reply}"),
                        }
                    }
                })
            })
            .collect();
        Load { tasks, ..load }
    }

    async fn finish(self) -> (HashSet<String>, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load worker");
        }
        let sent = self.sent.lock().unwrap().clone();
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        (sent, acknowledged)
    }
}

/// After a load: every acknowledged transfer is stored; every stored
/// allocation is one that was sent; the parent's balance matches; the ledger is sound.
async fn check_after_load(h: &Harness, tenant: &Tenant, funded_minor: i64, sent: &HashSet<String>, acknowledged: &[String]) {
    for id in acknowledged {
        let (status, transfer) = h.get_json(&format!("/v1/transfers/{id}"), &tenant.api_token).await;
        assert_eq!((status, transfer["status"].as_str()), (200, Some("posted")), "acknowledged transfer {id} is stored");
    }
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&h.db.url).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar("SELECT idempotency_key FROM transfers WHERE kind = 'allocation' AND status = 'posted'").fetch_all(&mut conn).await.unwrap();
    assert!(keys.len() >= acknowledged.len(), "{} stored < {} acknowledged", keys.len(), acknowledged.len());
    for key in &keys {
        let signature = key.strip_prefix("sendcloud:").and_then(|k| k.rsplit_once(':')).map(|(_, s)| s).expect("transferIn keys are sendcloud:TIMESTAMP:SIGNATURE");
        assert!(sent.contains(signature), "stored transfer {key} was never sent");
    }
    let stored: HashSet<&String> = keys.iter().collect();
    assert_eq!(stored.len(), keys.len(), "no transfer is stored twice");
    let expected = format_cents(funded_minor - keys.len() as i64 * 100);
    assert_eq!(primary_balance(h, &tenant.api_token, None).await, expected);
    h.assert_ledger_sound().await;
}

fn format_cents(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

async fn crash_keeps_every_acknowledged_transfer(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let tenant = h.create_tenant("Crash").await;
    h.deposit(&tenant, "1000000.00").await;
    let names = accounts(&h, &tenant, 50).await;
    let load = Load::start(vec![h.server.base.clone()], &tenant, &names, 16);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.server.kill_hard().await;
    let (sent, acknowledged) = load.finish().await;
    assert!(acknowledged.len() > 50, "the load ran before the crash ({} acknowledged)", acknowledged.len());
    // Restart on the same database: nothing to repair, everything acknowledged is there.
    h.server = TestServer::start(&h.db, &[]).await;
    check_after_load(&h, &tenant, 100_000_000, &sent, &acknowledged).await;
}

async fn graceful_stop_flushes_the_ledger(backend: Backend) {
    let mut h = Harness::start(backend).await;
    let tenant = h.create_tenant("Graceful").await;
    h.deposit(&tenant, "1000000.00").await;
    let names = accounts(&h, &tenant, 10).await;
    let load = Load::start(vec![h.server.base.clone()], &tenant, &names, 16);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(h.server.stop_gracefully().await, "SIGTERM ends the server with success");
    let (sent, acknowledged) = load.finish().await;
    h.server = TestServer::start(&h.db, &[]).await;
    check_after_load(&h, &tenant, 100_000_000, &sent, &acknowledged).await;
}

async fn two_processes_share_one_database(backend: Backend) {
    let h = Harness::start(backend).await;
    let second = TestServer::start(&h.db, &[]).await;
    let tenant = h.create_tenant("Two servers").await;
    h.deposit(&tenant, "300.00").await;
    let names = accounts(&h, &tenant, 10).await;
    // 600 requests of 1.00 against 300.00, split over both processes.
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let base = if i % 2 == 0 { h.server.base.clone() } else { second.base.clone() };
            let (http, tenant, name) = (h.http.clone(), tenant.clone(), names[i % names.len()].clone());
            tokio::spawn(async move { transfer_in(&http, &base, &tenant, &name, "1.00").await })
        })
        .collect();
    let mut ok = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        let (code, id, _) = task.await.unwrap().expect("answered");
        match code {
            200 => {
                ok += 1;
                ids.insert(id.unwrap());
            }
            420 => {}
            other => panic!("unexpected code {other}"),
        }
    }
    assert_eq!(ok, 300, "exactly what the parent could pay");
    assert_eq!(ids.len(), 300, "no transfer answered twice");
    assert_eq!(primary_balance(&h, &tenant.api_token, None).await, "0.00");
    let mut sum_minor = 0;
    for name in &names {
        let balance = primary_balance(&h, &tenant.api_token, Some(name)).await;
        sum_minor += parse_cents(&balance);
    }
    assert_eq!(sum_minor, 30_000, "no lost or doubled transfer");
    h.assert_ledger_sound().await;
}

fn parse_cents(text: &str) -> i64 {
    let (whole, fraction) = text.split_once('.').unwrap();
    whole.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap()
}

/// Usage batches from concurrent clients and a month close (in chunks of one
/// account), then SIGKILL: after a restart every acknowledged event is
/// stored and charged once, no event is stored that was not sent, the month
/// is closed with all its bills, or closing with the bills of the accounts
/// its progress names, or not begun; once closed, the month's usage is billed
/// exactly (late usage, for accounts billed before it came, waits for the
/// next close), and the ledger is sound.
async fn crash_keeps_every_acknowledged_usage_event(backend: Backend) {
    let mut h = Harness::start_with(backend, &["--close-chunk-accounts", "1"]).await;
    let tenant = h.create_tenant("Usage Crash").await;
    let token = tenant.api_token.clone();
    h.deposit(&tenant, "100000.00").await;
    let names = accounts(&h, &tenant, 20).await;
    for name in &names {
        let response = h
            .http
            .post(h.url("/v1/transfers"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("fund-{name}"))
            .json(&json!({"from": {}, "to": {"username": name}, "amount": "1000.00"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let (status, body) =
        h.post_json("/v1/tariffs", &token, &json!({"product": "sms", "model": {"model": "per_unit", "price": "0.01", "increment": "1"}, "effective_from": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(status, 201, "{body}");
    // Last month, so that it can be closed during the load.
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let this_month = jiff::Timestamp::now().to_zoned(zone.clone()).date().first_of_month();
    let last_month = this_month.checked_sub(jiff::ToSpan::months(1)).unwrap();
    let last_month_text = format!("{:04}-{:02}", last_month.year(), last_month.month());
    let in_last_month = last_month.at(12, 0, 0, 0).to_zoned(zone).unwrap().timestamp().to_string();

    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (acknowledged, sent, names, token, base, when) = (acknowledged.clone(), sent.clone(), names.clone(), token.clone(), h.server.base.clone(), in_last_month.clone());
            tokio::spawn(async move {
                let http = client();
                for batch in 0.. {
                    let events: Vec<Value> = (0..100)
                        .map(|i| {
                            let id = format!("w{worker}-{batch:05}-{i:03}");
                            let mut event = json!({"id": id, "account": names[(i + batch) % names.len()], "product": "sms", "quantity": 1});
                            if i % 2 == 0 {
                                event["occurred_at"] = json!(when);
                            }
                            event
                        })
                        .collect();
                    sent.lock().unwrap().extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
                    let Ok(response) = http.post(format!("{base}/v1/usage")).bearer_auth(&token).json(&json!({ "events": events })).send().await else { break };
                    let Ok(answer) = response.json::<Value>().await else { break };
                    assert_eq!(answer["accepted"], 100, "{answer}");
                    acknowledged.lock().unwrap().extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let close = {
        let (http, url, token, month) = (client(), h.url("/v1/bills/close"), token.clone(), last_month_text.clone());
        tokio::spawn(async move { http.post(url).bearer_auth(token).json(&json!({ "month": month })).send().await.map(|r| r.status().as_u16()) })
    };
    // The kill comes while the month is closing, if the test sees it so in time.
    for _ in 0..70 {
        if sql_i64(&h.db, "SELECT COUNT(*) FROM month_closings").await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.server.kill_hard().await;
    for worker in workers {
        worker.await.expect("a load worker");
    }
    let close_answer = close.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    assert!(acknowledged.len() >= 400, "the load ran before the crash ({} acknowledged)", acknowledged.len());

    h.server = TestServer::start(&h.db, &[]).await;
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&h.db.url).await.unwrap();
    let stored: HashSet<String> = sqlx::query_scalar::<_, String>("SELECT event_id FROM usage_events").fetch_all(&mut conn).await.unwrap().into_iter().collect();
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged event {id} is stored");
    }
    assert!(stored.is_subset(&sent), "only events that were sent are stored");
    // Charged once each: the accounts' money went to revenue, a cent per event.
    let mut balances = 0;
    for name in &names {
        let (_, wallets) = h.get_json(&format!("/v1/wallets?username={name}"), &token).await;
        balances += wallets["items"].as_array().unwrap().iter().map(|w| w["balance_minor"].as_i64().unwrap()).sum::<i64>();
    }
    assert_eq!(balances, 20 * 100_000 - stored.len() as i64, "each stored event charged exactly once");
    let counted = sql_i64(&h.db, "SELECT CAST(SUM(events) AS BIGINT) FROM usage_daily").await;
    assert_eq!(counted, stored.len() as i64, "rollups count every stored event once");
    // The month is closed with every bill, closing with the bills of the
    // accounts up to the last one its progress names, or not begun; then it
    // closes (resumes) now.
    let closed = sql_i64(&h.db, &format!("SELECT COUNT(*) FROM month_closes WHERE month = '{last_month_text}'")).await;
    let bills = sql_i64(&h.db, &format!("SELECT COUNT(*) FROM bills WHERE month = '{last_month_text}'")).await;
    let closing = sql_i64(&h.db, &format!("SELECT COUNT(*) FROM month_closings WHERE month = '{last_month_text}'")).await;
    let progress = format!("FROM month_closings WHERE month = '{last_month_text}'");
    let consistent = match (closed, closing) {
        (1, 0) => bills == 20,
        (0, 1) => {
            let beyond = sql_i64(&h.db, &format!("SELECT COUNT(*) FROM bills WHERE month = '{last_month_text}' AND account_id > (SELECT last_account_id {progress})")).await;
            bills == sql_i64(&h.db, &format!("SELECT bills {progress}")).await && beyond == 0
        }
        (0, 0) => bills == 0,
        _ => false,
    };
    assert!(consistent, "closed {closed}, closing {closing}, bills {bills} (close answered {close_answer:?})");
    let (status, report) = h.post_json("/v1/bills/close", &token, &json!({ "month": last_month_text })).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(sql_i64(&h.db, &format!("SELECT COUNT(*) FROM bills WHERE month = '{last_month_text}'")).await, 20);
    // Each rollup of the month is on its bill whole, or (late: usage that
    // came after its account's chunk) in part, the rest left for the next close.
    let misbilled = sql_i64(
        &h.db,
        &format!(
            "SELECT COUNT(*) FROM (SELECT u.late, u.quantity_milli,
                 COALESCE((SELECT SUM(l.quantity_milli) FROM bill_lines l WHERE l.account_id = u.account_id AND l.product_code = u.product_code AND l.for_month = u.month), 0) AS billed
               FROM usage_monthly u WHERE u.month = '{last_month_text}') AS r
             WHERE (r.late = 0 AND r.billed <> r.quantity_milli) OR (r.late = 1 AND r.billed >= r.quantity_milli)"
        ),
    )
    .await;
    assert_eq!(misbilled, 0, "the month's usage is billed exactly once");
    let unbalanced = sql_i64(&h.db, "SELECT COUNT(*) FROM bills b WHERE b.total_cents <> (SELECT COALESCE(SUM(l.money_cents), 0) FROM bill_lines l WHERE l.tenant_id = b.tenant_id AND l.account_id = b.account_id AND l.month = b.month AND l.currency = b.currency)").await;
    assert_eq!(unbalanced, 0, "every bill is the sum of its lines");
    // A replay of an acknowledged batch is all duplicates.
    let replay: Vec<Value> = acknowledged[..100].iter().map(|id| json!({"id": id, "account": names[0], "product": "sms", "quantity": 1})).collect();
    let (status, answer) = h.post_json("/v1/usage", &token, &json!({ "events": replay })).await;
    assert_eq!((status, answer["duplicates"].as_u64()), (200, Some(100)), "{answer}");
    h.assert_ledger_sound().await;
}

/// Concurrent batches that repeat each other's ids (the worker merges queued
/// batches into one transaction): every id is accepted once, by one batch,
/// and answered as a duplicate with the same charge in the others.
async fn concurrent_usage_batches_share_ids_once(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Merged Usage").await;
    let token = tenant.api_token.clone();
    h.deposit(&tenant, "10000.00").await;
    let names = accounts(&h, &tenant, 10).await;
    for name in &names {
        let response = h
            .http
            .post(h.url("/v1/transfers"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("fund-{name}"))
            .json(&json!({"from": {}, "to": {"username": name}, "amount": "100.00"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let (status, body) =
        h.post_json("/v1/tariffs", &token, &json!({"product": "sms", "model": {"model": "per_unit", "price": "0.01", "increment": "1"}, "effective_from": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(status, 201, "{body}");
    let rounds: Vec<_> = (0..16)
        .map(|caller| {
            let (http, url, token, names) = (client(), h.url("/v1/usage"), token.clone(), names.clone());
            tokio::spawn(async move {
                let events: Vec<Value> = (0..200)
                    .map(|i| {
                        // Half the ids are shared by every client, half are the client's own.
                        let id = if i % 2 == 0 { format!("shared-{i}") } else { format!("own-{caller}-{i}") };
                        json!({"id": id, "account": names[i % names.len()], "product": "sms", "quantity": 1})
                    })
                    .collect();
                let response = http.post(url).bearer_auth(token).json(&json!({ "events": events })).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut accepted_shared = HashSet::new();
    let mut accepted = 0;
    for round in rounds {
        let answer = round.await.unwrap();
        for result in answer["results"].as_array().unwrap() {
            let id = result["id"].as_str().unwrap();
            assert_eq!(result["charge"], "0.01", "{result}");
            match result["status"].as_str().unwrap() {
                "accepted" => {
                    accepted += 1;
                    if id.starts_with("shared-") {
                        assert!(accepted_shared.insert(id.to_owned()), "{id} accepted twice");
                    }
                }
                "duplicate" => assert!(id.starts_with("shared-"), "{result}"),
                other => panic!("{other}: {result}"),
            }
        }
    }
    assert_eq!(accepted_shared.len(), 100);
    assert_eq!(accepted, 100 + 16 * 100);
    let mut balances = 0;
    for name in &names {
        let (_, wallets) = h.get_json(&format!("/v1/wallets?username={name}"), &token).await;
        balances += wallets["items"].as_array().unwrap().iter().map(|w| w["balance_minor"].as_i64().unwrap()).sum::<i64>();
    }
    assert_eq!(balances, 10 * 10_000 - accepted, "a cent per accepted event, once");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM usage_events").await, accepted);
    h.assert_ledger_sound().await;
}
