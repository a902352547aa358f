//! Test support: start the real `subledger` binary on a random port over a
//! fresh database, and talk to it the way each dialect's clients do.
//!
//! Every test runs on both backends. PostgreSQL tests read the server URL
//! from `SUBLEDGER_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`),
//! create a database of their own, and drop it afterwards. Without the
//! variable at build time they are compiled as ignored (`build.rs` sets
//! `cfg(postgres_tests)` only with it), so `cargo test` counts as passed only
//! what ran; `.ci/run` sets it.

use std::process::Stdio;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::{Digest, Md5};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const ADMIN_TOKEN: &str = "sla_test_admin_token_0123456789abcdef";
pub const POSTGRES_ENV: &str = "SUBLEDGER_TEST_POSTGRES_URL";
pub const BINARY: &str = env!("CARGO_BIN_EXE_subledger");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares each listed `async fn name(backend: Backend)` as two tests,
/// `sqlite::name` and `postgres::name`, the latter ignored unless
/// `SUBLEDGER_TEST_POSTGRES_URL` was set when the suite was built.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[cfg_attr(not(postgres_tests), ignore = "set SUBLEDGER_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL half")]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A database of its own for one test.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A fresh database. PostgreSQL needs `SUBLEDGER_TEST_POSTGRES_URL`: a
    /// test that asks for it without the variable (built with it, or run
    /// with `--include-ignored`) fails rather than pass without running.
    pub async fn create(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let url = format!("sqlite://{}/subledger.db", dir.path().display());
                TestDb { url, backend, _dir: Some(dir), postgres: None }
            }
            Backend::Postgres => {
                let server_url = std::env::var(POSTGRES_ENV)
                    .unwrap_or_else(|_| panic!("{POSTGRES_ENV} is not set: the postgres::* tests need a PostgreSQL server (without the variable at build time they are ignored)"));
                sweep_stale_databases(&server_url).await;
                let name = format!("sl_t{}_{}", jiff::Timestamp::now().as_second(), unique_suffix());
                let mut admin = sqlx::PgConnection::connect(&server_url).await.expect("PostgreSQL from SUBLEDGER_TEST_POSTGRES_URL answers");
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create the test database");
                let url = replace_database(&server_url, &name);
                TestDb { url, backend, _dir: None, postgres: Some((server_url, name)) }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server_url, name)) = self.postgres.take() {
            // Drop runs outside async; clean up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                runtime.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&server_url).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                    }
                });
            })
            .join();
        }
    }
}

/// Drops test databases left by runs that crashed more than an hour ago.
async fn sweep_stale_databases(server_url: &str) {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    SWEPT.call_once(|| first = true);
    if !first {
        return;
    }
    let Ok(mut admin) = sqlx::PgConnection::connect(server_url).await else { return };
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'sl_t%'").fetch_all(&mut admin).await.unwrap_or_default();
    let hour_ago = jiff::Timestamp::now().as_second() - 3600;
    for name in names {
        let created: Option<i64> = name.strip_prefix("sl_t").and_then(|rest| rest.split('_').next()).and_then(|s| s.parse().ok());
        if created.is_some_and(|t| t < hour_ago) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
        }
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn unique_suffix() -> String {
    static COUNTER: AtomicI64 = AtomicI64::new(0);
    format!("{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A running server process. Killed when dropped.
pub struct TestServer {
    pub base: String,
    child: Child,
    /// What the server wrote to stderr (its log at `warn` and above).
    log: Arc<Mutex<String>>,
}

impl TestServer {
    pub async fn start(db: &TestDb, extra_args: &[&str]) -> TestServer {
        Self::spawn(Command::new(BINARY), db, extra_args).await
    }

    /// The server with its limit on open descriptors (soft and hard) set to
    /// `descriptors`, through util-linux's `prlimit`, which then runs the
    /// binary in its own place. `None` when `prlimit` is not installed.
    pub async fn start_with_descriptor_limit(db: &TestDb, descriptors: u64, extra_args: &[&str]) -> Option<TestServer> {
        std::process::Command::new("prlimit").arg("--version").stdout(Stdio::null()).status().ok().filter(|s| s.success())?;
        let mut command = Command::new("prlimit");
        command.args([format!("--nofile={descriptors}:{descriptors}").as_str(), "--", BINARY]);
        Some(Self::spawn(command, db, extra_args).await)
    }

    async fn spawn(mut command: Command, db: &TestDb, extra_args: &[&str]) -> TestServer {
        // Tests close months themselves unless they ask for the automatic close.
        let auto_close = if extra_args.contains(&"--auto-close-after-hours") { &[][..] } else { &["--auto-close-after-hours", "0"][..] };
        let mut child = command
            .args(["serve", "--addr", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN, "--db-connections", "4"])
            .args(auto_close)
            .args(extra_args)
            .env("SUBLEDGER_DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the subledger binary starts");
        // Keep the log for the test to read, and show it with the test's own output.
        let log = Arc::new(Mutex::new(String::new()));
        let mut log_lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = log_lines.next_line().await {
                eprintln!("{line}");
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read server stdout") {
                if let Some(address) = line.strip_prefix("subledger listening on ") {
                    return address.trim().to_owned();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the server listens within 60 s");
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        TestServer { base, child, log }
    }

    /// The server's log so far. A line written while answering a request may
    /// arrive a moment after the answer, so read it after a short wait.
    pub async fn log(&self) -> String {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.log.lock().unwrap().clone()
    }

    /// The server's process id (for reading its `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// SIGKILL: no shutdown, no flush. What a crash looks like.
    pub async fn kill_hard(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM and wait for a clean exit; returns the exit status success.
    pub async fn stop_gracefully(&mut self) -> bool {
        self.terminate();
        self.exited_successfully_within(Duration::from_secs(30)).await
    }

    /// SIGTERM: the server stops accepting, finishes what is in flight and exits.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }

    /// Whether the process exits, with success, within `limit`.
    pub async fn exited_successfully_within(&mut self, limit: Duration) -> bool {
        matches!(tokio::time::timeout(limit, self.child.wait()).await, Ok(Ok(status)) if status.success())
    }
}

/// Credentials of a tenant, as `POST /v1/tenants` returns them.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub tenant_id: String,
    pub app_id: String,
    pub app_key: String,
    pub api_token: String,
}

/// A server over a fresh database, with an HTTP client.
pub struct Harness {
    // Field order matters: the server is killed before its database is dropped.
    pub server: TestServer,
    pub db: TestDb,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start(backend: Backend) -> Harness {
        Self::start_with(backend, &[]).await
    }

    pub async fn start_with(backend: Backend, args: &[&str]) -> Harness {
        let db = TestDb::create(backend).await;
        let server = TestServer::start(&db, args).await;
        Harness { server, db, http: client() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// Runs the CLI against this test's database; returns (exit success, stdout, stderr).
    pub async fn cli(&self, args: &[&str]) -> (bool, String, String) {
        run_cli(&self.db.url, args).await
    }

    pub async fn create_tenant(&self, name: &str) -> Tenant {
        let (status, body) = self.admin_post("/v1/tenants", &json!({"name": name})).await;
        assert_eq!(status, 201, "{body}");
        Tenant {
            tenant_id: body["tenant_id"].as_str().expect("tenant_id").to_owned(),
            app_id: body["app_id"].as_str().expect("app_id").to_owned(),
            app_key: body["app_key"].as_str().expect("app_key").to_owned(),
            api_token: body["api_token"].as_str().expect("api_token").to_owned(),
        }
    }

    /// A recharge of the tenant's primary wallet.
    pub async fn deposit(&self, tenant: &Tenant, amount: &str) {
        let response = self
            .http
            .post(self.url(&format!("/v1/tenants/{}/deposits", tenant.tenant_id)))
            .bearer_auth(ADMIN_TOKEN)
            .header("Idempotency-Key", format!("deposit-{}", unique_suffix()))
            .json(&json!({"amount": amount}))
            .send()
            .await
            .expect("deposit request");
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.http.post(self.url(path)).bearer_auth(ADMIN_TOKEN).json(body).send().await.expect("admin request");
        status_and_json(response).await
    }

    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).bearer_auth(token).send().await.expect("GET request");
        status_and_json(response).await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let response = self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("POST request");
        status_and_json(response).await
    }

    /// A POST with an `Idempotency-Key`, as money-moving calls require.
    pub async fn post_json_keyed(&self, path: &str, token: &str, key: &str, body: &Value) -> (u16, Value) {
        let response = self.http.post(self.url(path)).bearer_auth(token).header("Idempotency-Key", key).json(body).send().await.expect("POST request");
        status_and_json(response).await
    }

    /// A signed SendCloud call: POST form with `appId`, a fresh `timestamp`
    /// and the signature, as the spec's curl examples send it.
    pub async fn sendcloud(&self, endpoint: &str, tenant: &Tenant, params: &[(&str, &str)]) -> Value {
        let body = signed_form(tenant, params, true);
        self.sendcloud_raw_post(endpoint, &body).await
    }

    pub async fn sendcloud_raw_post(&self, endpoint: &str, body: &str) -> Value {
        sendcloud_post(&self.http, &self.server.base, endpoint, body).await
    }

    pub async fn sendcloud_get(&self, endpoint: &str, query: &str) -> Value {
        let response = self.http.get(self.url(&format!("/api/subAccount/{endpoint}?{query}"))).send().await.expect("SendCloud request");
        assert_eq!(response.status(), 200);
        response.json().await.expect("a JSON envelope")
    }

    /// Creates a sub-account through SendCloud `create` and checks it worked.
    pub async fn create_account(&self, tenant: &Tenant, username: &str) {
        let reply = self.sendcloud("create", tenant, &[("username", username), ("userType", "1"), ("companyName", "公司"), ("companyUrl", "https://www.example.com"), ("pwd", "321Abc")]).await;
        assert_eq!(reply["statusCode"], 200, "{reply}");
    }

    /// Runs the CLI's `ledger verify` and asserts every invariant holds.
    pub async fn assert_ledger_sound(&self) -> Value {
        let (ok, stdout, stderr) = self.cli(&["ledger", "verify", "--json"]).await;
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("verify printed JSON: {stdout} {stderr}"));
        assert!(ok, "ledger invariants broken: {report}");
        report
    }
}

/// A SendCloud form post of `body` to the server at `base`.
pub async fn sendcloud_post(http: &reqwest::Client, base: &str, endpoint: &str, body: &str) -> Value {
    let response = http.post(format!("{base}/api/subAccount/{endpoint}")).header("Content-Type", "application/x-www-form-urlencoded").body(body.to_owned()).send().await.expect("SendCloud request");
    assert_eq!(response.status(), 200, "SendCloud answers HTTP 200 whatever the outcome");
    response.json().await.expect("a JSON envelope")
}

/// The tests' HTTP client. Its pooled connections go idle sooner than the
/// server's (75 s), so a request never goes out on a connection the server is
/// closing as idle (reqwest's default, 90 s, allows that race).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_idle_timeout(Duration::from_secs(30)).build().expect("an HTTP client")
}

pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub async fn run_cli(database_url: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY).args(args).env("SUBLEDGER_DATABASE_URL", database_url).output().await.expect("the CLI runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// SendCloud's signature, written here independently of the server's code:
/// md5(`key&k1=v1&…&key`) over the parameters sorted by name.
pub fn sign(app_key: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "signature").collect();
    sorted.sort();
    let joined: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text = format!("{app_key}&{}&{app_key}", joined.join("&"));
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The current time in milliseconds, as clients send it.
pub fn fresh_timestamp_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Signatures issued by this test process. Two identical requests signed in
/// the same millisecond would be one request replayed (and refused), so the
/// second is signed a millisecond later, as a real client's would be.
fn first_use(signature: &str) -> bool {
    static ISSUED: std::sync::Mutex<Option<std::collections::HashSet<String>>> = std::sync::Mutex::new(None);
    ISSUED.lock().unwrap().get_or_insert_with(Default::default).insert(signature.to_owned())
}

pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn form(params: &[(String, String)]) -> String {
    params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// `params` plus `appId` (and a fresh `timestamp`), signed with the tenant's key, form-encoded.
pub fn signed_form(tenant: &Tenant, params: &[(&str, &str)], timestamp: bool) -> String {
    let mut all: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if !all.iter().any(|(k, _)| k == "appId") {
        all.push(("appId".into(), tenant.app_id.clone()));
    }
    if timestamp && !all.iter().any(|(k, _)| k == "timestamp") {
        let now = fresh_timestamp_ms();
        for later_ms in 0.. {
            let mut attempt = all.clone();
            attempt.push(("timestamp".into(), (now + later_ms).to_string()));
            let signature = sign(&tenant.app_key, &attempt);
            if first_use(&signature) {
                attempt.push(("signature".into(), signature));
                return form(&attempt);
            }
        }
    }
    let signature = sign(&tenant.app_key, &all);
    all.push(("signature".into(), signature));
    form(&all)
}

/// Asserts a SendCloud envelope carries `code` with the spec's message.
#[track_caller]
pub fn assert_code(reply: &Value, code: u16, message: &str) {
    assert_eq!(reply["statusCode"], code, "expected {code} {message}, got {reply}");
    assert_eq!(reply["message"], message, "{reply}");
    assert_eq!(reply["result"], code == 200, "{reply}");
}

/// Runs raw SQL against the test's database (fault injection, stored-effect checks).
pub async fn sql(db: &TestDb, statement: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.expect("connect to the test database");
    sqlx::raw_sql(statement).execute(&mut conn).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
}

pub async fn sql_i64(db: &TestDb, query: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.expect("connect to the test database");
    sqlx::query_scalar::<_, i64>(query).fetch_one(&mut conn).await.unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// A trigger that makes every insert into (or update of) `table` fail: how the
/// storage-failure codes (101, 102, 104) are triggered.
pub async fn break_writes(db: &TestDb, table: &str, operation: &str) {
    let statement = match db.backend {
        Backend::Sqlite => format!("CREATE TRIGGER injected_failure BEFORE {operation} ON {table} BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"),
        Backend::Postgres => format!(
            "CREATE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END; $$;
             CREATE TRIGGER injected_failure BEFORE {operation} ON {table} FOR EACH ROW EXECUTE FUNCTION injected_failure();"
        ),
    };
    sql(db, &statement).await;
}

/// Removes what [`break_writes`] installed.
pub async fn heal_writes(db: &TestDb, table: &str) {
    let statement = match db.backend {
        Backend::Sqlite => "DROP TRIGGER injected_failure".to_owned(),
        Backend::Postgres => format!("DROP TRIGGER injected_failure ON {table}; DROP FUNCTION injected_failure()"),
    };
    sql(db, &statement).await;
}

/// Makes inserts into `table` fail when `column` holds `value`: a request
/// the database refuses, for tests of what happens around it.
pub async fn poison_writes(db: &TestDb, table: &str, column: &str, value: &str) {
    let statement = match db.backend {
        Backend::Sqlite => format!("CREATE TRIGGER poisoned BEFORE INSERT ON {table} WHEN NEW.{column} = '{value}' BEGIN SELECT RAISE(ABORT, 'poisoned value'); END;"),
        Backend::Postgres => format!(
            "CREATE FUNCTION poisoned() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.{column} = '{value}' THEN RAISE EXCEPTION 'poisoned value'; END IF; RETURN NEW; END; $$;
             CREATE TRIGGER poisoned BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION poisoned();"
        ),
    };
    sql(db, &statement).await;
}

/// Removes a trigger `name` (and its function) installed by [`poison_writes`].
pub async fn heal_writes_named(db: &TestDb, table: &str, name: &str) {
    let statement = match db.backend {
        Backend::Sqlite => format!("DROP TRIGGER {name}"),
        Backend::Postgres => format!("DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}()"),
    };
    sql(db, &statement).await;
}

/// What a close report (one month of the native API's or the CLI's answer)
/// says of one currency: `field` is `billed`, `settled` or `outstanding`;
/// "0.00" when the month billed and settled nothing in it.
pub fn close_amount(month: &Value, currency: &str, field: &str) -> String {
    let entry = month["currencies"].as_array().unwrap_or_else(|| panic!("a close report: {month}")).iter().find(|c| c["currency"] == currency);
    entry.map_or_else(|| "0.00".to_owned(), |c| c[field].as_str().unwrap_or_else(|| panic!("{field} in {c}")).to_owned())
}
