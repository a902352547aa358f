//! The command line, run the way scripts and the README run it.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    tenant_create_prints_usable_credentials,
    deposits_from_the_command_line,
    sign_prints_what_the_server_accepts,
    cli_errors_are_clear,
    catalog_tariffs_and_billing_mode_from_the_command_line,
    usage_import_counts_every_line_and_never_charges_twice,
    bill_close_show_and_export_a_past_month,
    billing_command_errors_are_clear,
    holds_from_the_command_line,
);

async fn tenant_create_prints_usable_credentials(backend: Backend) {
    let h = Harness::start(backend).await;
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
    let h = Harness::start(backend).await;
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
    let balances: Vec<(String, String)> = wallets["items"].as_array().unwrap().iter().map(|w| (w["purpose"].as_str().unwrap().to_owned(), w["balance"].as_str().unwrap().to_owned())).collect();
    assert!(balances.contains(&("primary".into(), "1010.00".into())), "{balances:?}");
    assert!(balances.contains(&("promo".into(), "50.00".into())), "{balances:?}");
    h.assert_ledger_sound().await;
}

async fn sign_prints_what_the_server_accepts(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Signer").await;
    h.deposit(&tenant, "100.00").await;
    h.create_account(&tenant, "signeduser").await;
    let (ok, body, stderr) = h.cli(&["sign", "--tenant", &tenant.tenant_id, "username=signeduser", "money=12.50"]).await;
    assert!(ok, "{stderr}");
    assert!(body.contains("appId=") && body.contains("timestamp=") && body.contains("signature="), "{body}");
    assert_code(&h.sendcloud_raw_post("transferIn", body.trim()).await, 200, "请求成功");
    // With the key given directly (no database needed), including non-ASCII values.
    let (ok, body, stderr) =
        run_cli("sqlite:///nonexistent/never-opened.db", &["sign", "--app-id", &tenant.app_id, "--app-key", &tenant.app_key, "username=signeduser", "companyName=公司 & Co"]).await;
    assert!(ok, "{stderr}");
    assert_code(&h.sendcloud_raw_post("list", body.trim()).await, 200, "请求成功");
}

async fn cli_errors_are_clear(backend: Backend) {
    let h = Harness::start(backend).await;
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

/// Runs the CLI, asserts it succeeded, and parses what it printed as JSON.
async fn cli_json(h: &Harness, args: &[&str]) -> Value {
    let (ok, stdout, stderr) = h.cli(args).await;
    assert!(ok, "{args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {stdout}"))
}

/// Runs the CLI, asserts it failed, and returns what it said on stderr.
async fn cli_error(h: &Harness, args: &[&str]) -> String {
    let (ok, stdout, stderr) = h.cli(args).await;
    assert!(!ok, "{args:?} should have failed: {stdout}");
    stderr
}

/// A tenant (time zone Asia/Shanghai) with one sub-account holding `balance` in its primary wallet.
async fn tenant_with_account(h: &Harness, name: &str, username: &str, balance: &str) -> Tenant {
    let tenant = h.create_tenant(name).await;
    cli_json(h, &["account", "create", "--tenant", &tenant.tenant_id, "--username", username, "--json"]).await;
    cli_json(h, &["wallet", "deposit", "--tenant", &tenant.tenant_id, "--username", username, "--amount", balance, "--json"]).await;
    tenant
}

async fn primary_balance(h: &Harness, tenant: &Tenant, username: &str) -> String {
    let wallets = cli_json(h, &["wallet", "balances", "--tenant", &tenant.tenant_id, "--username", username, "--json"]).await;
    let primary = wallets["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary" && w["currency"] == "CNY").expect("a primary CNY wallet");
    primary["balance"].as_str().unwrap().to_owned()
}

const SMS_AT_5_CENTS: &str = r#"{"model":"per_unit","price":"0.05","increment":"1"}"#;

async fn catalog_tariffs_and_billing_mode_from_the_command_line(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = tenant_with_account(&h, "Cli Catalog", "alice001", "10.00").await;
    let t = tenant.app_id.as_str();

    // Products: the built-in catalog, then one of the tenant's own.
    let added = cli_json(&h, &["product", "add", "--tenant", t, "--code", "fax_page", "--name", "传真", "--unit", "页", "--order-type", "901", "--grouping", "country", "--json"]).await;
    assert_eq!(added["code"], "fax_page");
    assert_eq!(added["grouping"], "country");
    assert_eq!(added["builtin"], false);
    let listed = cli_json(&h, &["product", "list", "--tenant", &tenant.tenant_id, "--json"]).await;
    let items = listed["items"].as_array().unwrap();
    let sms = items.iter().find(|p| p["code"] == "sms").expect("the built-in sms product");
    assert_eq!((sms["order_type"].as_i64(), sms["builtin"].as_bool()), (Some(10), Some(true)));
    let own = items.iter().find(|p| p["code"] == "fax_page").expect("the added product");
    assert_eq!((own["order_type"].as_i64(), own["unit"].as_str(), own["name"].as_str()), (Some(901), Some("页"), Some("传真")));
    let (ok, table, _) = h.cli(&["product", "list", "--tenant", t]).await;
    assert!(ok && table.contains("fax_page") && table.contains("sms"), "{table}");
    let stderr = cli_error(&h, &["product", "add", "--tenant", t, "--code", "fax_page", "--name", "x", "--unit", "x", "--order-type", "902"]).await;
    assert!(stderr.contains("a product with this code exists"), "{stderr}");
    let stderr = cli_error(&h, &["product", "add", "--tenant", t, "--code", "Bad-Code", "--name", "x", "--unit", "x", "--order-type", "902"]).await;
    assert!(stderr.contains("invalid code"), "{stderr}");
    let stderr = cli_error(&h, &["product", "add", "--tenant", t, "--code", "fax2", "--name", "x", "--unit", "x", "--order-type", "902", "--grouping", "city"]).await;
    assert!(stderr.contains("invalid value 'city'"), "{stderr}");

    // Tariffs: a default, an account's override, and a per-country price for the own product.
    let default = cli_json(&h, &["tariff", "set", "--tenant", t, "--product", "sms", "--effective-from", "2020-01-01T00:00:00Z", "--model", SMS_AT_5_CENTS, "--json"]).await;
    assert_eq!(default["product"], "sms");
    assert_eq!(default["account_id"], Value::Null);
    assert_eq!(default["effective_from"], "2020-01-01T00:00:00Z");
    assert_eq!(default["model"]["price"], "0.05");
    let override_ = cli_json(
        &h,
        &[
            "tariff",
            "set",
            "--tenant",
            t,
            "--product",
            "sms",
            "--username",
            "alice001",
            "--effective-from",
            "2021-06-01T08:00:00+08:00",
            "--model",
            r#"{"model":"per_unit","price":"0.04","increment":1}"#,
            "--json",
        ],
    )
    .await;
    assert!(override_["account_id"].is_i64(), "{override_}");
    assert_eq!(override_["username"], "alice001");
    assert_eq!(override_["effective_from"], "2021-06-01T00:00:00Z");
    cli_json(&h, &["tariff", "set", "--tenant", t, "--product", "fax_page", "--model", r#"{"model":"by_country","prices":[{"country_id":86,"name":"中国","price":"0.1"}]}"#, "--json"]).await;
    let all = cli_json(&h, &["tariff", "list", "--tenant", t, "--json"]).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    let sms_only = cli_json(&h, &["tariff", "list", "--tenant", t, "--product", "sms", "--json"]).await;
    let versions: Vec<(&str, &str)> = sms_only["items"].as_array().unwrap().iter().map(|v| (v["product"].as_str().unwrap(), v["model"]["price"].as_str().unwrap())).collect();
    assert_eq!(versions, [("sms", "0.05"), ("sms", "0.04")]);
    // The server rates with what the CLI set.
    let (status, answer) = h.get_json("/v1/tariffs?product=sms", &tenant.api_token).await;
    assert_eq!((status, answer["items"].as_array().map(Vec::len)), (200, Some(2)), "{answer}");

    // Billing mode.
    let postpaid = cli_json(&h, &["account", "billing", "--tenant", t, "--username", "alice001", "--mode", "postpaid", "--json"]).await;
    assert_eq!(postpaid["billing_mode"], "postpaid");
    let stderr = cli_error(&h, &["account", "billing", "--tenant", t, "--username", "ghost001", "--mode", "prepaid"]).await;
    assert!(stderr.contains("account not found"), "{stderr}");
    let stderr = cli_error(&h, &["account", "billing", "--tenant", t, "--username", "alice001", "--mode", "later"]).await;
    assert!(stderr.contains("invalid value 'later'"), "{stderr}");
    // A postpaid account is charged nothing now.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.jsonl");
    std::fs::write(&file, "{\"id\":\"p1\",\"account\":\"alice001\",\"product\":\"sms\",\"quantity\":2}\n").unwrap();
    let report = cli_json(&h, &["usage", "import", "--tenant", t, file.to_str().unwrap(), "--json"]).await;
    assert_eq!((report["accepted"].as_u64(), &report["charged"]), (Some(1), &json!({"CNY": "0.00"})), "{report}");
    cli_json(&h, &["account", "billing", "--tenant", t, "--username", "alice001", "--mode", "prepaid", "--json"]).await;
    std::fs::write(&file, "{\"id\":\"p2\",\"account\":\"alice001\",\"product\":\"sms\",\"quantity\":2}\n").unwrap();
    let report = cli_json(&h, &["usage", "import", "--tenant", t, file.to_str().unwrap(), "--json"]).await;
    assert_eq!((report["accepted"].as_u64(), &report["charged"]), (Some(1), &json!({"CNY": "0.08"})), "the override's price: {report}");
    assert_eq!(primary_balance(&h, &tenant, "alice001").await, "9.92");
    h.assert_ledger_sound().await;
}

async fn usage_import_counts_every_line_and_never_charges_twice(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = tenant_with_account(&h, "Cli Usage", "alice001", "100.00").await;
    let t = tenant.tenant_id.as_str();
    cli_json(&h, &["tariff", "set", "--tenant", t, "--product", "sms", "--effective-from", "2020-01-01T00:00:00Z", "--model", SMS_AT_5_CENTS, "--json"]).await;
    cli_json(
        &h,
        &[
            "tariff",
            "set",
            "--tenant",
            t,
            "--product",
            "intl_sms",
            "--effective-from",
            "2020-01-01T00:00:00Z",
            "--model",
            r#"{"model":"by_country","prices":[{"country_id":1,"name":"USA","price":"0.25"}]}"#,
            "--json",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();

    // CSV: extra columns become attributes; empty cells are left out.
    let csv_file = dir.path().join("usage.csv");
    std::fs::write(
        &csv_file,
        "id,account,product,quantity,occurred_at,country\n\
         c1,alice001,sms,1,2026-01-05T10:00:00+08:00,\n\
         c2,alice001,sms,2.000,,\n\
         c3,alice001,intl_sms,4,,1\n\
         c4,alice001,sms,ten,,\n\
         c1,alice001,sms,1,,\n\
         c5,alice001,no_such_product,1,,\n\
         c6,alice001,sms,1\n\
         c7,ghost001,sms,1,,\n\
         c8,alice001,intl_sms,1,,\n",
    )
    .unwrap();
    let csv_path = csv_file.to_str().unwrap();
    let report = cli_json(&h, &["usage", "import", "--tenant", t, csv_path, "--batch-size", "2", "--json"]).await;
    assert_eq!(report["format"], "csv");
    assert_eq!(report["events"], 9, "{report}");
    assert_eq!(report["accepted"], 3, "{report}");
    assert_eq!(report["duplicates"], 1, "{report}");
    assert_eq!(report["rejected"], 5, "{report}");
    assert_eq!(report["rejected_by_reason"], serde_json::json!({"malformed": 2, "unknown_product": 1, "unknown_account": 1, "missing_attribute": 1}), "{report}");
    // 1 + 2 messages at 0.05, 4 to country 1 at 0.25.
    assert_eq!(report["charged"], json!({"CNY": "1.15"}), "{report}");
    let malformed: Vec<(u64, &str)> = report["malformed"].as_array().unwrap().iter().map(|m| (m["line"].as_u64().unwrap(), m["error"].as_str().unwrap())).collect();
    assert_eq!(malformed.len(), 2, "{report}");
    assert_eq!(malformed[0].0, 5);
    assert!(malformed[0].1.contains("quantity \"ten\""), "{report}");
    assert_eq!(malformed[1].0, 8);
    assert!(malformed[1].1.contains("4 fields"), "{report}");
    assert_eq!(primary_balance(&h, &tenant, "alice001").await, "98.85");

    // JSON lines: string or number quantities, attributes, a malformed line, a
    // blank line, an id used twice, and one the service will not take at all.
    let jsonl_file = dir.path().join("usage.jsonl");
    let long_id = "x".repeat(200);
    std::fs::write(
        &jsonl_file,
        format!(
            "{{\"id\":\"j1\",\"account\":\"alice001\",\"product\":\"sms\",\"quantity\":\"3\",\"occurred_at\":\"2026-01-05T02:00:00Z\"}}\n\
             {{\"id\":\"j2\",\"account\":\"alice001\",\"product\":\"intl_sms\",\"quantity\":1,\"attributes\":{{\"country\":1}}}}\n\
             \n\
             {{\"id\":\"j3\",\"account\":\"alice001\",\"product\":\"sms\",\"quantity\":1.5}}\n\
             {{\"id\":\"j1\",\"account\":\"alice001\",\"product\":\"sms\",\"quantity\":\"3\"}}\n\
             {{\"id\":\"{long_id}\",\"account\":\"alice001\",\"product\":\"sms\",\"quantity\":1}}\n\
             {{\"id\":\"c2\",\"account\":\"alice001\",\"product\":\"sms\",\"quantity\":2}}\n\
             {{\"id\":\"j4\",\"account\":\"alice001\",\"product\":\"sms\",\"quantity\":1,\"occurred_at\":\"last tuesday\"}}\n\
             {{\"id\":\"j5\",\"account\":\"alice001\",\"product\":\"sms\",\"quantity\":1}}\n"
        ),
    )
    .unwrap();
    let jsonl_path = jsonl_file.to_str().unwrap();
    let report = cli_json(&h, &["usage", "import", "--tenant", &tenant.app_id, jsonl_path, "--json"]).await;
    assert_eq!(report["format"], "jsonl");
    assert_eq!((report["events"].as_u64(), report["accepted"].as_u64(), report["duplicates"].as_u64()), (Some(8), Some(3), Some(2)), "{report}");
    assert_eq!(report["rejected_by_reason"], serde_json::json!({"malformed": 3}), "{report}");
    let lines: Vec<u64> = report["malformed"].as_array().unwrap().iter().map(|m| m["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [4, 6, 8], "{report}");
    assert_eq!(report["charged"], json!({"CNY": "0.45"}), "3 + 1 messages at 0.05, 1 at 0.25: {report}");
    assert_eq!(primary_balance(&h, &tenant, "alice001").await, "98.40");

    // Importing both again charges nothing: every event is a duplicate.
    for (path, events, malformed) in [(csv_path, 9, 2), (jsonl_path, 8, 3)] {
        let again = cli_json(&h, &["usage", "import", "--tenant", t, path, "--json"]).await;
        assert_eq!(again["events"], events, "{again}");
        assert_eq!(again["accepted"], 0, "{again}");
        assert_eq!(again["duplicates"], events - malformed, "{again}");
        assert_eq!(again["rejected_by_reason"], serde_json::json!({"malformed": malformed}), "{again}");
        assert_eq!(again["charged"], json!({}), "nothing charged, in any currency: {again}");
    }
    assert_eq!(primary_balance(&h, &tenant, "alice001").await, "98.40");

    // A spreadsheet's CSV: byte-order mark, CRLF, quoted names, a quoted
    // value over two lines, blank and empty rows. Line numbers are the file's.
    let excel = dir.path().join("excel.CSV");
    std::fs::write(
        &excel,
        "\u{feff}\"id\",\"account\",\"product\",\"quantity\",\"note\"\r\n\
         x1,alice001,sms,1,\"two\r\nlines, and a comma\"\r\n\
         \r\n\
         ,,,,\r\n\
         x2,alice001,sms,-1,\r\n\
         x3,alice001,sms,\"1\",\"\"\"quoted\"\"\"\r\n",
    )
    .unwrap();
    let report = cli_json(&h, &["usage", "import", "--tenant", t, excel.to_str().unwrap(), "--json"]).await;
    assert_eq!((report["format"].as_str(), report["events"].as_u64(), report["accepted"].as_u64()), (Some("csv"), Some(3), Some(2)), "{report}");
    assert_eq!(report["malformed"][0]["line"], 6, "{report}");
    assert_eq!(report["charged"], json!({"CNY": "0.10"}), "{report}");
    assert_eq!(primary_balance(&h, &tenant, "alice001").await, "98.30");

    // The human report, and --format for a file whose extension says nothing.
    let renamed = dir.path().join("usage.txt");
    std::fs::copy(&jsonl_file, &renamed).unwrap();
    let (ok, text, stderr) = h.cli(&["usage", "import", "--tenant", t, renamed.to_str().unwrap(), "--format", "jsonl", "--quiet"]).await;
    assert!(ok, "{stderr}");
    assert!(text.contains("duplicates  5") && text.contains("line 4:") && text.contains("charged     0.00"), "{text}");
    assert!(!stderr.contains('%'), "no progress bar without a terminal: {stderr}");
    h.assert_ledger_sound().await;
}

/// The previous month in Asia/Shanghai (`YYYY-MM`) and an instant in it (RFC 3339).
fn previous_month() -> (String, String) {
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let last_day = jiff::Timestamp::now().to_zoned(zone.clone()).date().first_of_month().yesterday().unwrap();
    let instant = jiff::civil::date(last_day.year(), last_day.month(), 15).at(12, 0, 0, 0).to_zoned(zone).unwrap().timestamp();
    (format!("{:04}-{:02}", last_day.year(), last_day.month()), instant.to_string())
}

async fn bill_close_show_and_export_a_past_month(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = tenant_with_account(&h, "Cli Bills", "alice001", "100.00").await;
    let t = tenant.tenant_id.as_str();
    cli_json(&h, &["account", "create", "--tenant", t, "--username", "bob00001", "--json"]).await;
    cli_json(&h, &["wallet", "deposit", "--tenant", t, "--username", "bob00001", "--amount", "1.00", "--json"]).await;
    cli_json(&h, &["account", "billing", "--tenant", t, "--username", "bob00001", "--mode", "postpaid", "--json"]).await;
    cli_json(&h, &["tariff", "set", "--tenant", t, "--product", "sms", "--effective-from", "2020-01-01T00:00:00Z", "--model", SMS_AT_5_CENTS, "--json"]).await;
    let graduated = r#"{"model":"graduated","tiers":[{"min":"0","max":"10","unit":"0","price":"1.00"},{"min":"10","unit":"5","price":"0.30"}]}"#;
    cli_json(&h, &["tariff", "set", "--tenant", t, "--product", "email", "--effective-from", "2020-01-01T00:00:00Z", "--model", graduated, "--json"]).await;
    let (month, at) = previous_month();
    let dir = tempfile::tempdir().unwrap();
    let usage = dir.path().join("last-month.ndjson");
    let mut lines = String::new();
    for (i, (account, product, quantity)) in [("alice001", "sms", 3), ("alice001", "email", 12), ("bob00001", "sms", 7), ("alice001", "sms", 2)].iter().enumerate() {
        lines.push_str(&format!("{{\"id\":\"m{i}\",\"account\":\"{account}\",\"product\":\"{product}\",\"quantity\":{quantity},\"occurred_at\":\"{at}\"}}\n"));
    }
    std::fs::write(&usage, lines).unwrap();
    let report = cli_json(&h, &["usage", "import", "--tenant", t, usage.to_str().unwrap(), "--json"]).await;
    assert_eq!(report["accepted"], 4, "{report}");

    let closed = cli_json(&h, &["bill", "close", "--tenant", t, "--month", &month, "--json"]).await;
    let reports = closed["months"].as_array().unwrap();
    let last = reports.last().unwrap();
    assert_eq!(last["month"], month.as_str());
    assert_eq!(last["already_closed"], false);
    assert_eq!(last["bills"], 2);
    // alice: 5 sms = 0.25, 12 e-mails = 1.00 + one started block of 5 = 1.30; bob: 7 sms = 0.35.
    assert_eq!(close_amount(last, "CNY", "billed"), "1.90", "{closed}");
    // Bob is postpaid: his 0.35 is settled at close.
    assert_eq!(close_amount(last, "CNY", "settled"), "0.35", "{closed}");
    assert_eq!(close_amount(last, "CNY", "outstanding"), "0.00", "{closed}");
    assert_eq!(last["currencies"].as_array().map(Vec::len), Some(1), "only yuan was billed: {closed}");
    let again = cli_json(&h, &["bill", "close", "--tenant", &tenant.app_id, "--month", &month, "--json"]).await;
    assert_eq!(again["months"].as_array().unwrap().last().unwrap()["already_closed"], true, "{again}");
    let (ok, text, stderr) = h.cli(&["bill", "close", "--tenant", t, "--month", &month]).await;
    assert!(ok && text.contains("already closed"), "{text} {stderr}");

    // All tenants at once: a month that has not ended yet is reported, not fatal.
    let other = h.create_tenant("Cli Bills Other").await;
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let today = jiff::Timestamp::now().to_zoned(zone).date();
    let current = format!("{:04}-{:02}", today.year(), today.month());
    let everyone = cli_json(&h, &["bill", "close", "--month", &current, "--json"]).await;
    let statuses: Vec<&str> = everyone["tenants"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["skipped", "skipped"], "{everyone}");
    assert!(everyone["tenants"][0]["reason"].as_str().unwrap().contains("has not ended"), "{everyone}");
    let everyone = cli_json(&h, &["bill", "close", "--month", &month, "--json"]).await;
    let by_tenant: Vec<(&str, bool)> =
        everyone["tenants"].as_array().unwrap().iter().map(|t| (t["tenant_id"].as_str().unwrap(), t["months"].as_array().unwrap().last().unwrap()["already_closed"].as_bool().unwrap())).collect();
    assert!(by_tenant.contains(&(t, true)) && by_tenant.contains(&(other.tenant_id.as_str(), false)), "{everyone}");
    assert_eq!(primary_balance(&h, &tenant, "bob00001").await, "0.65");
    assert_eq!(primary_balance(&h, &tenant, "alice001").await, "98.45");

    // Show: totals are the sums of their lines.
    let shown = cli_json(&h, &["bill", "show", "--tenant", t, "--month", &month, "--json"]).await;
    assert_eq!(shown["closed"], true);
    let bills = shown["bills"].as_array().unwrap();
    assert_eq!(bills.len(), 2, "{shown}");
    let mut grand_total = 0;
    for bill in bills {
        let lines = bill["lines"].as_array().unwrap();
        assert!(!lines.is_empty());
        let sum: i64 = lines.iter().map(|l| l["money_minor"].as_i64().unwrap()).sum();
        assert_eq!(bill["total_minor"].as_i64().unwrap(), sum, "{bill}");
        grand_total += sum;
    }
    assert_eq!(shown["totals"], json!([{"currency": "CNY", "total": "1.90", "total_minor": grand_total}]), "{shown}");
    let alice = cli_json(&h, &["bill", "show", "--tenant", t, "--month", &month, "--username", "alice001", "--json"]).await;
    let alice_bills = alice["bills"].as_array().unwrap();
    assert_eq!(alice_bills.len(), 1);
    let products: Vec<(&str, &str, &str)> =
        alice_bills[0]["lines"].as_array().unwrap().iter().map(|l| (l["product"].as_str().unwrap(), l["quantity"].as_str().unwrap(), l["money"].as_str().unwrap())).collect();
    assert_eq!(products.len(), 2);
    assert!(products.contains(&("sms", "5", "0.25")) && products.contains(&("email", "12", "1.30")), "{products:?}");
    let email = alice_bills[0]["lines"].as_array().unwrap().iter().find(|l| l["product"] == "email").unwrap();
    assert_eq!(email["detail"].as_array().map(Vec::len), Some(2), "two tiers: {email}");
    let (ok, text, _) = h.cli(&["bill", "show", "--tenant", t, "--month", &month]).await;
    assert!(ok && text.contains("alice001") && text.contains("bob00001") && text.contains("total 1.90"), "{text}");

    // Export: CSV (to a file and to stdout) and XLSX.
    let csv_out = dir.path().join("bills.csv");
    let (ok, said, stderr) = h.cli(&["bill", "export", "--tenant", t, "--month", &month, "--format", "csv", "--out", csv_out.to_str().unwrap()]).await;
    assert!(ok, "{stderr}");
    assert!(said.contains("wrote"), "{said}");
    let mut reader = csv::Reader::from_path(&csv_out).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, ["username", "month", "line", "kind", "for_month", "order_type", "description", "quantity", "unit", "money", "bill_total", "currency"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| &r[1] == month.as_str() && &r[11] == "CNY"));
    let bob: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[0] == "bob00001").collect();
    assert_eq!(bob.len(), 1);
    assert_eq!((&bob[0][5], &bob[0][7], &bob[0][9], &bob[0][10]), ("10", "7", "0.35", "0.35"));
    let money: i64 = rows.iter().map(|r| r[9].replace('.', "").parse::<i64>().unwrap()).sum();
    assert_eq!(money, 190);
    let (ok, stdout, stderr) = h.cli(&["bill", "export", "--tenant", t, "--month", &month, "--format", "csv", "--out", "-"]).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.as_bytes(), std::fs::read(&csv_out).unwrap().as_slice());
    let xlsx_out = dir.path().join("bills.xlsx");
    let (ok, _, stderr) = h.cli(&["bill", "export", "--tenant", t, "--month", &month, "--format", "xlsx", "--out", xlsx_out.to_str().unwrap()]).await;
    assert!(ok, "{stderr}");
    let xlsx = std::fs::read(&xlsx_out).unwrap();
    assert!(xlsx.len() > 100 && xlsx.starts_with(b"PK"), "an XLSX is a zip file");
    let stderr = cli_error(&h, &["bill", "export", "--tenant", t, "--month", &month, "--format", "xlsx", "--out", "-"]).await;
    assert!(stderr.contains("give --out a file path"), "{stderr}");
    h.assert_ledger_sound().await;
}

async fn billing_command_errors_are_clear(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Cli Billing Errors").await;
    let t = tenant.tenant_id.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("usage.csv");
    std::fs::write(&file, "id,account,product,quantity\n").unwrap();
    let path = file.to_str().unwrap();
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let today = jiff::Timestamp::now().to_zoned(zone).date();
    let current = format!("{:04}-{:02}", today.year(), today.month());
    let (past, _) = previous_month();

    // Unknown tenant, whichever command.
    for args in [
        vec!["product", "list", "--tenant", "tn_nobody"],
        vec!["tariff", "list", "--tenant", "tn_nobody"],
        vec!["tariff", "set", "--tenant", "tn_nobody", "--product", "sms", "--model", SMS_AT_5_CENTS],
        vec!["usage", "import", "--tenant", "tn_nobody", path],
        vec!["bill", "close", "--tenant", "tn_nobody", "--month", &past],
        vec!["bill", "show", "--tenant", "tn_nobody", "--month", &past],
        vec!["bill", "export", "--tenant", "tn_nobody", "--month", &past, "--format", "csv", "--out", "-"],
    ] {
        let stderr = cli_error(&h, &args).await;
        assert!(stderr.contains("tenant not found"), "{args:?}: {stderr}");
    }
    // Bad months.
    for month in ["2024-13", "202401", "2024-1", "last"] {
        let stderr = cli_error(&h, &["bill", "close", "--tenant", t, "--month", month]).await;
        assert!(stderr.contains("yyyy-MM"), "{month}: {stderr}");
        let stderr = cli_error(&h, &["bill", "show", "--tenant", t, "--month", month]).await;
        assert!(stderr.contains("yyyy-MM"), "{month}: {stderr}");
    }
    // A month that has not ended.
    let stderr = cli_error(&h, &["bill", "close", "--tenant", t, "--month", &current]).await;
    assert!(stderr.contains("has not ended yet"), "{stderr}");
    let stderr = cli_error(&h, &["bill", "close", "--tenant", t, "--month", "2999-01"]).await;
    assert!(stderr.contains("has not ended yet"), "{stderr}");
    // Exporting a month that is not closed.
    let stderr = cli_error(&h, &["bill", "export", "--tenant", t, "--month", &past, "--format", "csv", "--out", "-"]).await;
    assert!(stderr.contains("not closed"), "{stderr}");
    // Tariffs: unknown product, bad model JSON, a model that breaks its own rules, a bad instant.
    let stderr = cli_error(&h, &["tariff", "set", "--tenant", t, "--product", "no_such_product", "--model", SMS_AT_5_CENTS, "--json"]).await;
    assert!(stderr.contains("product not found"), "{stderr}");
    for model in ["{not json", r#"{"model":"per_unit","price":"0.05"}"#, r#"{"model":"per_minute","price":"1"}"#, r#"{"model":"per_unit","price":0.05,"increment":"1"}"#] {
        let stderr = cli_error(&h, &["tariff", "set", "--tenant", t, "--product", "sms", "--model", model]).await;
        assert!(stderr.contains("invalid price model JSON"), "{model}: {stderr}");
    }
    let stderr = cli_error(&h, &["tariff", "set", "--tenant", t, "--product", "sms", "--model", r#"{"model":"per_unit","price":"0.05","increment":"0"}"#]).await;
    assert!(stderr.contains("invalid model"), "{stderr}");
    let stderr = cli_error(&h, &["tariff", "set", "--tenant", t, "--product", "sms", "--effective-from", "2024-01-01", "--model", SMS_AT_5_CENTS, "--json"]).await;
    assert!(stderr.contains("RFC 3339"), "{stderr}");
    let stderr = cli_error(&h, &["tariff", "set", "--tenant", t, "--product", "sms", "--username", "ghost001", "--model", SMS_AT_5_CENTS, "--json"]).await;
    assert!(stderr.contains("account not found"), "{stderr}");
    // Usage files: missing, unknown extension, a header without the needed columns, batch size out of range.
    let stderr = cli_error(&h, &["usage", "import", "--tenant", t, dir.path().join("missing.csv").to_str().unwrap()]).await;
    assert!(stderr.contains("cannot open"), "{stderr}");
    let odd = dir.path().join("usage.dat");
    std::fs::write(&odd, "").unwrap();
    let stderr = cli_error(&h, &["usage", "import", "--tenant", t, odd.to_str().unwrap()]).await;
    assert!(stderr.contains("--format"), "{stderr}");
    std::fs::write(&file, "id,account,quantity\ne1,alice001,1\n").unwrap();
    let stderr = cli_error(&h, &["usage", "import", "--tenant", t, path]).await;
    assert!(stderr.contains("no \"product\" column"), "{stderr}");
    let stderr = cli_error(&h, &["usage", "import", "--tenant", t, path, "--batch-size", "1001"]).await;
    assert!(stderr.contains("from 1 to 1000"), "{stderr}");
}

async fn holds_from_the_command_line(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("cli-holds").await;
    h.deposit(&tenant, "50.00").await;
    let t = tenant.tenant_id.as_str();
    let held = cli_json(&h, &["hold", "create", "--tenant", t, "--to-wallet", "promo", "--amount", "20.00", "--timeout-seconds", "600", "--json"]).await;
    assert_eq!((held["state"].as_str(), held["amount"].as_str()), (Some("pending"), Some("20.00")), "{held}");
    let id = held["hold_id"].as_str().expect("hold_id").to_owned();
    let balances = cli_json(&h, &["wallet", "balances", "--tenant", t, "--json"]).await;
    let primary = balances["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary").expect("primary").clone();
    assert_eq!((primary["balance"].as_str(), primary["reserved"].as_str(), primary["available"].as_str()), (Some("50.00"), Some("20.00"), Some("30.00")), "{primary}");
    let stderr = cli_error(&h, &["hold", "create", "--tenant", t, "--to-wallet", "promo", "--amount", "30.01"]).await;
    assert!(stderr.contains("insufficient"), "{stderr}");

    let posted = cli_json(&h, &["hold", "post", "--tenant", t, &id, "--amount", "5.00", "--json"]).await;
    assert_eq!((posted["state"].as_str(), posted["posted"]["amount"].as_str()), (Some("posted"), Some("5.00")), "{posted}");
    let second = cli_json(&h, &["hold", "create", "--tenant", t, "--to-wallet", "promo", "--amount", "1.00", "--json"]).await;
    let second_id = second["hold_id"].as_str().unwrap().to_owned();
    let voided = cli_json(&h, &["hold", "void", "--tenant", t, &second_id, "--json"]).await;
    assert_eq!(voided["state"].as_str(), Some("voided"), "{voided}");
    let stderr = cli_error(&h, &["hold", "post", "--tenant", t, &second_id]).await;
    assert!(stderr.contains("no longer pending"), "{stderr}");
    let listed = cli_json(&h, &["hold", "list", "--tenant", t, "--state", "voided", "--json"]).await;
    assert_eq!(listed["items"].as_array().map(|items| items.iter().map(|i| i["hold_id"].clone()).collect::<Vec<_>>()), Some(vec![Value::from(second_id.clone())]), "{listed}");
    let shown = cli_json(&h, &["hold", "show", "--tenant", t, &id, "--json"]).await;
    assert_eq!(shown["state"].as_str(), Some("posted"), "{shown}");
    let stderr = cli_error(&h, &["hold", "show", "--tenant", t, "12x"]).await;
    assert!(stderr.contains("not a whole number"), "{stderr}");
    h.assert_ledger_sound().await;
}
