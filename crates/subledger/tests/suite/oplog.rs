//! The operation log: every committed change of every dialect and of the CLI
//! leaves exactly one entry, written with the change; a change that fails
//! leaves none. Read here straight from the table, so that these tests hold
//! whatever endpoint later shows the log.

use serde_json::json;

use crate::billing::{per_unit, tariff, usage};
use crate::on_both_backends;
use crate::support::*;

on_both_backends!(sendcloud_changes_are_logged_once, native_cli_and_admin_changes_name_their_actor, a_change_that_fails_leaves_no_entry,);

/// One entry as stored: (kind, actor_kind, subject, outcome).
type Entry = (String, String, String, String);

async fn entries(h: &Harness, tenant: &Tenant) -> Vec<Entry> {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&h.db.url).await.expect("connect to the test database");
    sqlx::query_as::<_, Entry>("SELECT o.kind, o.actor_kind, o.subject, o.outcome FROM operations o JOIN tenants t ON t.id = o.tenant_id WHERE t.public_id = $1 ORDER BY o.id")
        .bind(&tenant.tenant_id)
        .fetch_all(&mut conn)
        .await
        .expect("the operation log")
}

fn entry(kind: &str, actor: &str, subject: &str, outcome: &str) -> Entry {
    (kind.to_owned(), actor.to_owned(), subject.to_owned(), outcome.to_owned())
}

async fn sendcloud_changes_are_logged_once(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Logged").await;
    h.deposit(&tenant, "100.00").await;
    let before = entries(&h, &tenant).await;
    assert_eq!(before, [entry("tenant.create", "admin", "Logged", "done"), entry("funds.deposit", "admin", "Logged", "done")]);

    let create = [("username", "logged01"), ("userType", "1"), ("companyName", "公司"), ("companyUrl", "https://www.example.com"), ("pwd", "321Abc")];
    assert_code(&h.sendcloud("create", &tenant, &create).await, 200, "请求成功");
    // Refused before any write: the username is taken.
    assert_eq!(h.sendcloud("create", &tenant, &create).await["statusCode"], 418);
    assert_code(&h.sendcloud("transferIn", &tenant, &[("username", "logged01"), ("money", "60.00")]).await, 200, "请求成功");
    // Refused by the ledger and stored under its key: logged with its reason.
    assert_eq!(h.sendcloud("transferIn", &tenant, &[("username", "logged01"), ("money", "60.00")]).await["statusCode"], 420);
    assert_code(&h.sendcloud("quota", &tenant, &[("username", "logged01"), ("quota", "2500")]).await, 200, "请求成功");
    assert_eq!(h.sendcloud("quota", &tenant, &[("username", "logged01"), ("quota", "-1")]).await["statusCode"], 400);
    // Reads log nothing.
    assert_code(&h.sendcloud("list", &tenant, &[]).await, 200, "请求成功");

    let after = entries(&h, &tenant).await;
    assert_eq!(
        after[before.len()..],
        [
            entry("account.create", "tenant", "logged01", "done"),
            entry("funds.transfer", "tenant", "Logged → logged01", "done"),
            entry("funds.transfer", "tenant", "Logged → logged01", "insufficient_funds"),
            entry("account.quota", "tenant", "logged01", "done"),
        ]
    );
}

async fn native_cli_and_admin_changes_name_their_actor(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Actors").await;
    let token = tenant.api_token.as_str();
    let (ok, _, stderr) = h.cli(&["wallet", "deposit", "--tenant", &tenant.app_id, "--amount", "50.00"]).await;
    assert!(ok, "{stderr}");
    let (status, body) = h.post_json("/v1/accounts", token, &json!({"username": "actor001", "user_type": "ifaxin"})).await;
    assert_eq!(status, 201, "{body}");
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    usage(&h, token, json!([{"id": "u1", "account": "actor001", "product": "sms", "quantity": 1}])).await;
    let (status, body) = h.post_json("/v1/accounts/actor001/freeze", token, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (ok, _, stderr) = h.cli(&["account", "unfreeze", "--tenant", &tenant.app_id, "--username", "actor001"]).await;
    assert!(ok, "{stderr}");

    let kinds: Vec<(String, String)> = entries(&h, &tenant).await.into_iter().map(|(kind, actor, _, _)| (kind, actor)).collect();
    let expected = [
        ("tenant.create", "admin"),
        ("funds.deposit", "cli"),
        ("account.create", "tenant"),
        ("tariff.set", "tenant"),
        ("usage.ingest", "tenant"),
        ("account.freeze", "tenant"),
        ("account.unfreeze", "cli"),
    ];
    assert_eq!(kinds, expected.map(|(k, a)| (k.to_owned(), a.to_owned())));
}

async fn a_change_that_fails_leaves_no_entry(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Failing").await;
    let logged = entries(&h, &tenant).await.len();
    break_writes(&h.db, "accounts", "INSERT").await;
    let reply = h.sendcloud("create", &tenant, &[("username", "failed01"), ("userType", "1"), ("companyName", "公司"), ("companyUrl", "https://www.example.com"), ("pwd", "321Abc")]).await;
    assert_eq!(reply["statusCode"], 101, "{reply}");
    heal_writes(&h.db, "accounts").await;
    // The entry is refused, so the change rolls back with it.
    break_writes(&h.db, "operations", "INSERT").await;
    let (status, body) = h.post_json("/v1/accounts", &tenant.api_token, &json!({"username": "failed02", "user_type": "ifaxin"})).await;
    assert_eq!(status, 500, "{body}");
    heal_writes(&h.db, "operations").await;
    let (status, body) = h.get_json("/v1/accounts/failed02", &tenant.api_token).await;
    assert_eq!(status, 404, "a change whose entry failed did not happen: {body}");
    assert_eq!(entries(&h, &tenant).await.len(), logged, "no entry for a change that failed");
}
