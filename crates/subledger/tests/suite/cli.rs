//! The command line, run the way scripts and the README run it.

use serde_json::Value;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(tenant_create_prints_usable_credentials, deposits_from_the_command_line, sign_prints_what_the_server_accepts, cli_errors_are_clear);

async fn tenant_create_prints_usable_credentials(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let (ok, stdout, stderr) = h.cli(&["tenant", "create", "--name", "Script Co", "--timezone", "Asia/Shanghai", "--json"]).await;
    assert!(ok, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).expect("one JSON object");
    for field in ["tenant_id", "app_id", "app_key", "api_token"] {
        assert!(created[field].as_str().is_some_and(|v| !v.is_empty()), "{field} in {created}");
    }
    let tenant = Tenant {
        tenant_id: created["tenant_id"].as_str().unwrap().into(),
        app_id: created["app_id"].as_str().unwrap().into(),
        app_key: created["app_key"].as_str().unwrap().into(),
        api_token: created["api_token"].as_str().unwrap().into(),
    };
    // The printed secrets work at once on the running server.
    let (status, _) = h.get_json("/v1/tenant", &tenant.api_token).await;
    assert_eq!(status, 200);
    assert_code(&h.sendcloud("list", &tenant, &[]).await, 200, "请求成功");
    // Bearer tokens are stored hashed, never as given.
    assert_eq!(sql_i64(&h.db, &format!("SELECT COUNT(*) FROM tenants WHERE api_token_sha256 = '{}'", tenant.api_token)).await, 0);
    assert_eq!(sql_i64(&h.db, &format!("SELECT COUNT(*) FROM tenants WHERE api_token_sha256 LIKE '%{}%'", &tenant.api_token[4..])).await, 0);
}

async fn deposits_from_the_command_line(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let tenant = h.create_tenant("Cli Funds").await;
    let h = &h;
    let deposit = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = h.cli(&args).await;
        assert!(ok, "{stderr}");
        serde_json::from_str::<Value>(&stdout).expect("one JSON object")
    };
    let base = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["wallet", "deposit", "--tenant", &tenant.app_id, "--json"].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let first = deposit(base(&["--amount", "1000.00", "--note", "opening balance"])).await;
    assert_eq!(first["balance"], "1000.00");
    assert_eq!(first["wallet"], "primary");
    let promo = deposit(base(&["--amount", "50", "--wallet", "promo"])).await;
    assert_eq!(promo["balance"], "50.00");
    let keyed = deposit(base(&["--amount", "10.00", "--idempotency-key", "invoice-7"])).await;
    assert_eq!(keyed["balance"], "1010.00");
    let replay = deposit(base(&["--amount", "10.00", "--idempotency-key", "invoice-7"])).await;
    assert_eq!(replay["replayed"], true);
    assert_eq!(replay["transfer_id"], keyed["transfer_id"]);
    // The server sees what the CLI wrote.
    let (_, wallets) = h.get_json("/v1/wallets", &tenant.api_token).await;
    let balances: Vec<(String, String)> = wallets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["purpose"].as_str().unwrap().to_owned(), w["balance"].as_str().unwrap().to_owned()))
        .collect();
    assert!(balances.contains(&("primary".into(), "1010.00".into())), "{balances:?}");
    assert!(balances.contains(&("promo".into(), "50.00".into())), "{balances:?}");
    h.assert_ledger_sound().await;
}

async fn sign_prints_what_the_server_accepts(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let tenant = h.create_tenant("Signer").await;
    h.deposit(&tenant, "100.00").await;
    h.create_account(&tenant, "signeduser").await;
    let (ok, body, stderr) = h.cli(&["sign", "--tenant", &tenant.tenant_id, "username=signeduser", "money=12.50"]).await;
    assert!(ok, "{stderr}");
    assert!(body.contains("appId=") && body.contains("timestamp=") && body.contains("signature="), "{body}");
    assert_code(&h.sendcloud_raw_post("transferIn", body.trim()).await, 200, "请求成功");
    // With the key given directly (no database needed), including non-ASCII values.
    let (ok, body, stderr) = run_cli("sqlite:///nonexistent/never-opened.db", &["sign", "--app-id", &tenant.app_id, "--app-key", &tenant.app_key, "username=signeduser", "companyName=公司 & Co"]).await;
    assert!(ok, "{stderr}");
    assert_code(&h.sendcloud_raw_post("list", body.trim()).await, 200, "请求成功");
}

async fn cli_errors_are_clear(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let tenant = h.create_tenant("Errors").await;
    let (ok, _, stderr) = h.cli(&["wallet", "deposit", "--tenant", &tenant.app_id, "--amount", "12.345"]).await;
    assert!(!ok);
    assert!(stderr.contains("two decimal places"), "{stderr}");
    let (ok, _, stderr) = h.cli(&["wallet", "deposit", "--tenant", "tn_nobody", "--amount", "1"]).await;
    assert!(!ok);
    assert!(stderr.contains("tenant not found"), "{stderr}");
    let (ok, _, stderr) = h.cli(&["account", "freeze", "--tenant", &tenant.app_id, "--username", "ghost001"]).await;
    assert!(!ok);
    assert!(stderr.contains("account not found"), "{stderr}");
}
