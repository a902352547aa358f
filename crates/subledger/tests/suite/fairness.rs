//! The ledger worker under pressure: a full queue answers busy at once, in
//! each dialect's words, instead of holding callers until their deadline.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(a_full_ledger_queue_answers_busy_at_once);

/// Holds the worker still: SQLite's write lock, or the tenant's primary
/// wallet row on PostgreSQL, taken by a connection of the test's own.
enum Stall {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Stall {
    async fn start(db: &TestDb, tenant_public_id: &str) -> Stall {
        match db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("a connection");
                conn.execute("BEGIN IMMEDIATE").await.expect("the write lock");
                Stall::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("a connection");
                conn.execute("BEGIN").await.expect("begin");
                sqlx::query("SELECT 1 FROM wallets w JOIN tenants t ON t.id = w.tenant_id WHERE t.public_id = $1 AND w.account_id IS NULL AND w.purpose = 'primary' FOR UPDATE")
                    .bind(tenant_public_id)
                    .execute(&mut conn)
                    .await
                    .expect("the wallet's row lock");
                Stall::Postgres(conn)
            }
        }
    }

    async fn end(self) {
        match self {
            Stall::Sqlite(mut conn) => conn.execute("ROLLBACK").await.map(|_| ()),
            Stall::Postgres(mut conn) => conn.execute("ROLLBACK").await.map(|_| ()),
        }
        .expect("release");
    }
}

async fn a_full_ledger_queue_answers_busy_at_once(backend: Backend) {
    let h = Harness::start_with(backend, &["--ledger-queue-rows-max", "8"]).await;
    let tenant = h.create_tenant("Busy").await;
    h.deposit(&tenant, "1000.00").await;
    h.create_account(&tenant, "alice001").await;
    let stall = Stall::start(&h.db, &tenant.tenant_id).await;

    let started = Instant::now();
    let native: Vec<_> = (0..24)
        .map(|i| {
            let (http, base, token) = (h.http.clone(), h.server.base.clone(), tenant.api_token.clone());
            tokio::spawn(async move {
                let response = http
                    .post(format!("{base}/v1/transfers"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("busy-{i}"))
                    .json(&json!({"from": {}, "to": {"username": "alice001"}, "amount": "1.00"}))
                    .send()
                    .await
                    .expect("an answer");
                let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap_or_default().to_owned());
                let (status, body) = status_and_json(response).await;
                (status, body, retry_after, started.elapsed())
            })
        })
        .collect();
    // Give the refusals time to come back while the worker is still held.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signed = signed_form(&tenant, &[("username", "alice001"), ("money", "1.00")], true);
    let sendcloud = sendcloud_post(&h.http, &h.server.base, "transferIn", &signed).await;
    stall.end().await;

    let mut busy = 0;
    let mut posted = 0;
    for task in native {
        let (status, body, retry_after, elapsed) = task.await.unwrap();
        match status {
            201 => posted += 1,
            503 => {
                assert_eq!(body["error"]["code"], "busy", "{body}");
                assert_eq!(retry_after.as_deref(), Some("1"));
                assert!(elapsed < Duration::from_secs(2), "a busy answer comes at once, not after the stall: {elapsed:?}");
                busy += 1;
            }
            other => panic!("a full queue refuses or queues, never fails: {other} {body}"),
        }
    }
    assert!(busy > 0 && posted > 0, "{busy} busy, {posted} posted");
    // SendCloud has no busy code: the endpoint's failure code, nothing moved.
    assert_code(&sendcloud, 104, "分账失败");
    let reply = h.sendcloud("list", &tenant, &[("username", "alice001")]).await;
    assert_eq!(reply["info"]["list"][0]["balance"].as_f64(), Some(posted as f64), "exactly the queued transfers were posted");
    h.assert_ledger_sound().await;
}
