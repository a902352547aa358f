//! soak: minutes of mixed load against the release server, watching its
//! memory and (on SQLite) the size of its write-ahead log.
//!
//! What runs at once, until `--seconds` have passed:
//! - transfers: signed SendCloud `transferIn` of 0.01 to the accounts;
//! - reads, on every connection of the read pool: SendCloud `list` (signed),
//!   native accounts, wallets, wallet entries, bills, daily bills and the
//!   month's CSV export, and the telephony balance and overview;
//! - usage: `POST /v1/usage` batches of 100 events;
//! - administration: signed SendCloud `quota` and `create`, deposits;
//! - a `/metrics` scrape every second.
//!
//! Every 10 s it prints the request rates, the server's resident memory
//! (VmRSS) and the WAL's size. At the end it judges the run: no request
//! failed (no 5xx, no transport error), the WAL stayed within
//! `--wal-bound-mib`, and memory was flat: the last third of the samples
//! peaks no higher than the middle third's peak plus `--rss-slack-percent`.
//! It exits non-zero when a verdict fails.
//!
//!     bench/run.sh soak sqlite --seconds 300    # or postgres; see --help

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use subledger_bench::{Backend, Server, Target, file_mib, psql, run_cli, temp_dir, with_database};
use subledger_domain::calendar::from_unix_micros;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Soak the release server with mixed load; watch RSS and the SQLite WAL")]
struct Args {
    #[command(flatten)]
    target: Target,
    /// How long the mixed load runs.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// Sub-accounts the load spreads over.
    #[arg(long, default_value_t = 500)]
    accounts: usize,
    /// Concurrent clients per kind of load.
    #[arg(long, default_value_t = 4)]
    transfer_clients: usize,
    #[arg(long, default_value_t = 16)]
    read_clients: usize,
    #[arg(long, default_value_t = 2)]
    usage_clients: usize,
    /// The largest WAL file the run may see (SQLite): the documented 64 MiB
    /// limit plus what writers append before the checkpoint takes the gate.
    #[arg(long, default_value_t = 72.0)]
    wal_bound_mib: f64,
    /// How much the last third's RSS peak may exceed the middle third's.
    #[arg(long, default_value_t = 10.0)]
    rss_slack_percent: f64,
    /// Extra flags for `subledger serve`.
    #[arg(long, allow_hyphen_values = true)]
    serve_arg: Vec<String>,
}

/// Requests answered and failed, per kind of load.
#[derive(Default)]
struct Counters {
    transfers: AtomicU64,
    reads: AtomicU64,
    usage_events: AtomicU64,
    admin: AtomicU64,
    /// 5xx answers and transport errors: a soak must have none.
    failures: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

impl Counters {
    fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_failure.lock().expect("lock");
        first.get_or_insert(what);
    }
}

/// What every client needs.
struct Load {
    base: String,
    token: String,
    app_id: String,
    app_key: String,
    usernames: Vec<String>,
    wallet_ids: Vec<i64>,
    month: String,
    counters: Counters,
    stop: AtomicBool,
}

impl Load {
    /// A signed SendCloud form with a timestamp no other call of this client used.
    fn signed(&self, params: &[(&str, &str)], last_ms: &AtomicI64) -> String {
        // One client signs one request at a time: a timestamp one past its
        // last keeps every signature of the client unique.
        let ms = jiff::Timestamp::now().as_millisecond().max(last_ms.load(Ordering::Relaxed) + 1);
        last_ms.store(ms, Ordering::Relaxed);
        let mut all: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        all.push(("appId".to_owned(), self.app_id.clone()));
        all.push(("timestamp".to_owned(), ms.to_string()));
        subledger_http::sendcloud::signature::signed_form(&self.app_key, &all)
    }

    /// Checks an answer: a 5xx or a transport error is a failure; anything else counts as answered.
    async fn answered(&self, what: &str, response: reqwest::Result<reqwest::Response>) -> Option<Value> {
        match response {
            Ok(response) if response.status().is_server_error() => {
                let status = response.status();
                self.counters.fail(format!("{what}: HTTP {status} {}", response.text().await.unwrap_or_default()));
                None
            }
            Ok(response) if !response.headers().get("content-type").is_some_and(|t| t.as_bytes().starts_with(b"application/json")) => match response.bytes().await {
                Ok(_) => Some(Value::Null),
                Err(error) => {
                    self.counters.fail(format!("{what}: answer cut: {error}"));
                    None
                }
            },
            Ok(response) => match response.json::<Value>().await {
                Ok(body) => Some(body),
                Err(error) => {
                    self.counters.fail(format!("{what}: unreadable answer: {error}"));
                    None
                }
            },
            Err(error) => {
                self.counters.fail(format!("{what}: {error}"));
                None
            }
        }
    }
}

async fn transfer_client(target: Arc<Load>, client: usize, clients: usize) {
    let http = reqwest::Client::new();
    let last_ms = AtomicI64::new(0);
    let mine: Vec<&String> = target.usernames.iter().skip(client).step_by(clients).collect();
    let mut i = 0;
    while !target.stop.load(Ordering::Relaxed) {
        let username = mine[i % mine.len()];
        i += 1;
        let body = target.signed(&[("username", username), ("money", "1.00")], &last_ms);
        let response = http.post(format!("{}/api/subAccount/transferIn", target.base)).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await;
        if let Some(reply) = target.answered("transferIn", response).await {
            if reply["statusCode"] == 200 {
                target.counters.transfers.fetch_add(1, Ordering::Relaxed);
            } else {
                target.counters.fail(format!("transferIn refused: {reply}"));
            }
        }
    }
}

async fn read_client(target: Arc<Load>, client: usize) {
    let http = reqwest::Client::new();
    let last_ms = AtomicI64::new(0);
    let start_no = client.to_string();
    let mut i = client;
    while !target.stop.load(Ordering::Relaxed) {
        i += 1;
        let username = &target.usernames[i % target.usernames.len()];
        let wallet = target.wallet_ids[i % target.wallet_ids.len()];
        let base = &target.base;
        let get = |path: String| http.get(format!("{base}{path}")).bearer_auth(&target.token).send();
        let (what, response) = match i % 10 {
            0 => {
                let body = target.signed(&[("startNo", &start_no), ("pageSize", "50")], &last_ms);
                ("list", http.post(format!("{base}/api/subAccount/list")).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await)
            }
            1 => ("accounts", get(format!("/v1/accounts?offset={}&limit=50", i % target.usernames.len())).await),
            2 => ("wallets", get(format!("/v1/wallets?username={username}")).await),
            3 => ("entries", get(format!("/v1/wallets/{wallet}/entries?limit=100")).await),
            4 => ("bills", get(format!("/v1/bills?month={}&limit=50", target.month)).await),
            5 => ("daily", get(format!("/v1/accounts/{username}/daily?from={0}-01&to={0}-28", target.month)).await),
            6 => ("balance", get(format!("/balance/getAccountAmount/{username}")).await),
            7 => ("overview", get(format!("/balance/getConsumerOverview/{username}")).await),
            8 => ("export", get(format!("/v1/bills/export?month={}&format=csv", target.month)).await),
            _ => ("account", get(format!("/v1/accounts/{username}")).await),
        };
        if target.answered(what, response).await.is_some() {
            target.counters.reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn usage_client(target: Arc<Load>, client: usize, next_id: Arc<AtomicU64>) {
    let http = reqwest::Client::new();
    const BATCH: u64 = 100;
    while !target.stop.load(Ordering::Relaxed) {
        let first = next_id.fetch_add(BATCH, Ordering::Relaxed);
        let occurred_at = from_unix_micros(jiff::Timestamp::now().as_microsecond()).to_string();
        let mut body = String::from("{\"events\":[");
        for j in 0..BATCH {
            if j > 0 {
                body.push(',');
            }
            let account = &target.usernames[((first + j) as usize + client) % target.usernames.len()];
            let product = if j % 2 == 0 { "sms" } else { "email" };
            let _ = write!(body, r#"{{"id":"soak-{:012}","account":"{account}","product":"{product}","quantity":1,"occurred_at":"{occurred_at}"}}"#, first + j);
        }
        body.push_str("]}");
        let response = http.post(format!("{}/v1/usage", target.base)).bearer_auth(&target.token).header("Content-Type", "application/json").body(body).send().await;
        if let Some(answer) = target.answered("usage", response).await {
            target.counters.usage_events.fetch_add(answer["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
        }
    }
}

async fn admin_client(target: Arc<Load>) {
    let http = reqwest::Client::new();
    let last_ms = AtomicI64::new(0);
    let mut i = 0usize;
    while !target.stop.load(Ordering::Relaxed) {
        i += 1;
        let (what, response) = match i % 3 {
            0 => {
                let quota = (1_000_000 + i).to_string();
                let body = target.signed(&[("username", &target.usernames[i % target.usernames.len()]), ("quota", &quota)], &last_ms);
                ("quota", http.post(format!("{}/api/subAccount/quota", target.base)).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await)
            }
            1 => {
                let username = format!("soaknew{i:07}");
                let body = target.signed(&[("username", &username), ("userType", "1"), ("companyName", "Soak"), ("companyUrl", "https://example.com"), ("pwd", "321Abc")], &last_ms);
                ("create", http.post(format!("{}/api/subAccount/create", target.base)).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await)
            }
            _ => (
                "transfer back",
                http.post(format!("{}/v1/transfers", target.base))
                    .bearer_auth(&target.token)
                    .header("Idempotency-Key", format!("soak-back-{i}"))
                    .json(&json!({"from": {"username": target.usernames[i % target.usernames.len()]}, "to": {}, "amount": "0.50"}))
                    .send()
                    .await,
            ),
        };
        if target.answered(what, response).await.is_some() {
            target.counters.admin.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scrape_metrics(target: Arc<Load>) {
    let http = reqwest::Client::new();
    while !target.stop.load(Ordering::Relaxed) {
        let response = http.get(format!("{}/metrics", target.base)).send().await;
        if let Err(error) = response.and_then(|r| r.error_for_status()) {
            target.counters.fail(format!("/metrics: {error}"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Resident memory of a process now, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).map_or(0.0, |kb| kb / 1024.0)
}

struct Sample {
    at_s: f64,
    rss_mib: f64,
    wal_mib: f64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let dir = temp_dir("soak");
    let postgres_name = format!("subledger_soak_{}", std::process::id());
    let url = match args.target.backend {
        Backend::Sqlite => format!("sqlite://{}/soak.db", dir.display()),
        Backend::Postgres => {
            psql(&args.target.postgres_url, &format!("CREATE DATABASE {postgres_name}"));
            with_database(&args.target.postgres_url, &postgres_name)
        }
    };
    let wal = dir.join("soak.db-wal");
    let tenant = run_cli(&args.target.server, &url, &["tenant", "create", "--name", "Soak", "--json"]).await;
    let tenant_id = tenant["tenant_id"].as_str().expect("tenant id").to_owned();
    run_cli(&args.target.server, &url, &["wallet", "deposit", "--tenant", &tenant_id, "--amount", "1000000000.00", "--json"]).await;
    let serve_args: Vec<&str> = args.serve_arg.iter().map(String::as_str).collect();
    let server = Server::start_with(&args.target.server, &url, &serve_args).await;
    let token = tenant["api_token"].as_str().expect("api token").to_owned();
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{}{path}", server.base)).bearer_auth(&token).json(&body);
    let mut usernames = Vec::with_capacity(args.accounts);
    let mut wallet_ids = Vec::with_capacity(args.accounts);
    for i in 0..args.accounts {
        let name = format!("soak{i:06}");
        let created = post("/v1/accounts", json!({"username": name, "daily_quota": 1_000_000_000})).send().await.expect("create account");
        assert_eq!(created.status(), 201, "create {name}: {}", created.text().await.unwrap_or_default());
        let funded = post("/v1/transfers", json!({"from": {}, "to": {"username": name}, "amount": "100000.00"})).header("Idempotency-Key", format!("fund:{name}")).send().await.expect("fund");
        assert_eq!(funded.status(), 201, "fund {name}");
        let wallets: Value = http.get(format!("{}/v1/wallets?username={name}", server.base)).bearer_auth(&token).send().await.expect("wallets").json().await.expect("json");
        wallet_ids.push(wallets["items"][0]["id"].as_str().and_then(|s| s.parse().ok()).or_else(|| wallets["items"][0]["id"].as_i64()).unwrap_or(1));
        usernames.push(name);
    }
    for product in ["sms", "email"] {
        let model = json!({"model": "per_unit", "price": "0.01", "increment": "1"});
        let set = post("/v1/tariffs", json!({"product": product, "model": model, "effective_from": "2020-01-01T00:00:00Z"})).send().await.expect("tariff");
        assert_eq!(set.status(), 201, "tariff {product}: {}", set.text().await.unwrap_or_default());
    }
    let month = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone")).strftime("%Y-%m").to_string();
    let target = Arc::new(Load {
        base: server.base.clone(),
        token,
        app_id: tenant["app_id"].as_str().expect("app id").to_owned(),
        app_key: tenant["app_key"].as_str().expect("app key").to_owned(),
        usernames,
        wallet_ids,
        month,
        counters: Counters::default(),
        stop: AtomicBool::new(false),
    });
    eprintln!(
        "set-up done: {} funded accounts; {} transfer, {} read, {} usage clients, 1 admin; server pid {}; {} s",
        args.accounts,
        args.transfer_clients,
        args.read_clients,
        args.usage_clients,
        server.pid(),
        args.seconds
    );

    let mut tasks = Vec::new();
    for client in 0..args.transfer_clients {
        tasks.push(tokio::spawn(transfer_client(target.clone(), client, args.transfer_clients)));
    }
    for client in 0..args.read_clients {
        tasks.push(tokio::spawn(read_client(target.clone(), client)));
    }
    let next_id = Arc::new(AtomicU64::new(0));
    for client in 0..args.usage_clients {
        tasks.push(tokio::spawn(usage_client(target.clone(), client, next_id.clone())));
    }
    tasks.push(tokio::spawn(admin_client(target.clone())));
    tasks.push(tokio::spawn(scrape_metrics(target.clone())));

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut wal_max_mib: f64 = 0.0;
    let mut last_print = Instant::now();
    println!("{:>6} {:>10} {:>10} {:>10} {:>8} {:>9} {:>9} {:>8}", "t (s)", "transfer/s", "reads/s", "events/s", "admin/s", "RSS MiB", "WAL MiB", "failures");
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let wal_mib = file_mib(&wal);
        wal_max_mib = wal_max_mib.max(wal_mib);
        if last_print.elapsed() >= Duration::from_secs(10) {
            let seconds = last_print.elapsed().as_secs_f64();
            last_print = Instant::now();
            let c = &target.counters;
            let now = (c.transfers.load(Ordering::Relaxed), c.reads.load(Ordering::Relaxed), c.usage_events.load(Ordering::Relaxed), c.admin.load(Ordering::Relaxed));
            let rate = |a: u64, b: u64| (a - b) as f64 / seconds;
            let sample = Sample { at_s: started.elapsed().as_secs_f64(), rss_mib: rss_mib(server.pid()), wal_mib };
            println!(
                "{:>6.0} {:>10.0} {:>10.0} {:>10.0} {:>8.0} {:>9.1} {:>9.1} {:>8}",
                sample.at_s,
                rate(now.0, last.0),
                rate(now.1, last.1),
                rate(now.2, last.2),
                rate(now.3, last.3),
                sample.rss_mib,
                sample.wal_mib,
                c.failures.load(Ordering::Relaxed)
            );
            last = now;
            samples.push(sample);
        }
    }
    target.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }

    let failures = target.counters.failures.load(Ordering::Relaxed);
    let third = samples.len() / 3;
    let peak = |s: &[Sample]| s.iter().map(|s| s.rss_mib).fold(0.0, f64::max);
    let (middle_peak, last_peak) = (peak(&samples[third..2 * third]), peak(&samples[2 * third..]));
    let rss_flat = last_peak <= middle_peak * (1.0 + args.rss_slack_percent / 100.0);
    let wal_bounded = wal_max_mib <= args.wal_bound_mib;
    println!();
    println!("failures (5xx or transport): {failures}{}", target.counters.first_failure.lock().expect("lock").as_deref().map(|f| format!(" — first: {f}")).unwrap_or_default());
    println!(
        "RSS: first sample {:.1} MiB, middle-third peak {middle_peak:.1} MiB, last-third peak {last_peak:.1} MiB: {}",
        samples.first().map_or(0.0, |s| s.rss_mib),
        if rss_flat { "flat" } else { "GROWING" }
    );
    if args.target.backend == Backend::Sqlite {
        println!("WAL: largest {wal_max_mib:.1} MiB (bound {:.0} MiB): {}", args.wal_bound_mib, if wal_bounded { "bounded" } else { "OVER THE BOUND" });
    }
    drop(server);
    if args.target.backend == Backend::Postgres {
        psql(&args.target.postgres_url, &format!("DROP DATABASE IF EXISTS {postgres_name} WITH (FORCE)"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    if failures == 0 && rss_flat && (wal_bounded || args.target.backend == Backend::Postgres) { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}
