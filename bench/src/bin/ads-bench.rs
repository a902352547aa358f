//! ads-bench: the ad-account reseller dialect against the release server,
//! with the Graph implementation calling a fake Graph API (in this process)
//! that answers every call `--upstream-latency-ms` late.
//!
//! 1. **Spend cap changes.** `--callers` concurrent clients each raise the
//!    spend cap of an ad account of their own through
//!    `POST /api/v1/change_spend_cap` for `--seconds`; every change is a hold,
//!    a Graph call and a post. The target (issue 10): at least 400 changes/s
//!    with p99 under 400 ms at a 100 ms upstream — only if upstream calls run
//!    concurrently. Afterwards every cap at the fake equals subledger's and
//!    `ledger verify` holds.
//! 2. **Insights reads** from synced data: `--readers` concurrent clients ask
//!    `GET /api/v1/account_insights` (30 days, all_days / daily / monthly) and
//!    `account_insights_breakdowns` (by country) of random accounts; the
//!    upstream is not called. Target: at least 5,000 reads/s.
//!
//!     bench/run.sh ads sqlite    # or postgres; flags after the backend, see --help

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Map, Value, json};
use subledger_bench::{ADMIN_TOKEN, Backend, Server, Target, percentile_ms, psql, run_cli, temp_dir, with_database};
use subledger_fake_graph::{AccountSeed, Control, FakeGraph, FakeOptions};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Benchmark the ad dialect: spend cap changes through a slow fake Graph API, and insights reads")]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Ad accounts at the fake (one per cap-changing caller, at least).
    #[arg(long, default_value_t = 128)]
    accounts: usize,
    /// Concurrent clients changing spend caps.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// How long the spend cap phase lasts.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The fake Graph API answers this late during the spend cap phase.
    #[arg(long, default_value_t = 100)]
    upstream_latency_ms: u64,
    /// Days of insights seeded per account (ending today).
    #[arg(long, default_value_t = 30)]
    insights_days: i64,
    /// Concurrent clients reading insights.
    #[arg(long, default_value_t = 32)]
    readers: usize,
    /// Insights reads in all.
    #[arg(long, default_value_t = 40_000)]
    reads: usize,
    /// Leave the database behind for inspection.
    #[arg(long)]
    keep_database: bool,
}

const BUSINESS: &str = "100200300400";
const TOKEN: &str = "EAAB-bench-system-user-token";
const TOKEN_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn account_id(index: usize) -> String {
    format!("{}", 7_000_000_000_000_000u64 + index as u64)
}

/// Meta's objects: the agency, its token, the accounts, their daily insights (plain and by country).
fn seed(args: &Args, today: jiff::civil::Date) -> Vec<Control> {
    let mut controls = vec![Control::AddBusiness { id: BUSINESS.to_owned(), name: "Bench Agency".to_owned() }, Control::AddToken { token: TOKEN.to_owned(), business_id: BUSINESS.to_owned() }];
    for index in 0..args.accounts {
        let id = account_id(index);
        controls.push(Control::AddAdAccount(AccountSeed {
            account_id: id.clone(),
            business_id: BUSINESS.to_owned(),
            name: format!("bench account {index}"),
            spend_cap_cents: 0,
            created_time: "2026-01-05T08:00:00+0000".to_owned(),
            ..AccountSeed::default()
        }));
        for back in 0..args.insights_days {
            let day = today.checked_sub(jiff::Span::new().days(back)).expect("a day");
            let spend_cents = 1_000 + ((index as i64 * 7_919 + back * 104_729) % 50_000);
            let metrics = |share: i64| -> Map<String, Value> {
                let cents = spend_cents * share / 100;
                let mut row = Map::new();
                row.insert("spend".to_owned(), json!(format!("{}.{:02}", cents / 100, cents % 100)));
                row.insert("impressions".to_owned(), json!((cents * 3).to_string()));
                row.insert("clicks".to_owned(), json!((cents / 40).to_string()));
                row.insert("reach".to_owned(), json!((cents * 2).to_string()));
                row.insert("actions".to_owned(), json!([{"action_type": "purchase", "value": (cents / 900).to_string()}]));
                row.insert("action_values".to_owned(), json!([{"action_type": "purchase", "value": format!("{}.00", cents / 30)}]));
                row
            };
            controls.push(Control::AddInsights { account_id: id.clone(), day: day.to_string(), breakdown: None, rows: vec![metrics(100)] });
            let countries = [("US", 50), ("GB", 30), ("DE", 20)];
            let rows = countries
                .iter()
                .map(|(country, share)| {
                    let mut row = metrics(*share);
                    row.insert("country".to_owned(), json!(country));
                    row
                })
                .collect();
            controls.push(Control::AddInsights { account_id: id.clone(), day: day.to_string(), breakdown: Some("country".to_owned()), rows });
        }
    }
    controls
}

async fn admin(http: &reqwest::Client, method: reqwest::Method, url: String, token: &str, body: Value) -> (u16, Value) {
    let response = http.request(method, url).bearer_auth(token).header("Idempotency-Key", format!("bench-{}", uuid_like())).json(&body).send().await.expect("a request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn uuid_like() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn summary(label: &str, mut latencies_us: Vec<u64>, elapsed: Duration, failures: u64) {
    latencies_us.sort_unstable();
    let rate = latencies_us.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<34} {:>8} ok {:>6} failed {:>10.0}/s  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        latencies_us.len(),
        failures,
        rate,
        percentile_ms(&latencies_us, 0.50),
        percentile_ms(&latencies_us, 0.99),
        percentile_ms(&latencies_us, 1.0)
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(args.accounts >= args.callers, "--accounts must be at least --callers: each caller changes an account of its own");
    let today = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::get("America/Los_Angeles").expect("a zone")).date();
    let fake = FakeGraph::start_with(FakeOptions { listen: "127.0.0.1:0".parse().expect("an address"), ..FakeOptions::default() }).await.expect("the fake Graph API");
    fake.seed(seed(&args, today)).expect("seeding the fake");

    let dir = temp_dir("ads-bench");
    let (url, postgres_name) = match args.target.backend {
        Backend::Sqlite => (format!("sqlite://{}/ads.db", dir.display()), None),
        Backend::Postgres => {
            let name = format!("subledger_ads_bench_{}", std::process::id());
            psql(&args.target.postgres_url, &format!("CREATE DATABASE {name}"));
            (with_database(&args.target.postgres_url, &name), Some(name))
        }
    };
    let graph_url = fake.base_url();
    let insights_days = args.insights_days.to_string();
    let server_args = [
        "--ads-graph-url",
        graph_url.as_str(),
        "--ads-graph-version",
        fake.api_version(),
        "--ads-token-key",
        TOKEN_KEY,
        "--ads-sync-seconds",
        "0",
        "--ads-insights-days",
        insights_days.as_str(),
        "--rate-limit-tenant-per-second",
        "0",
    ];
    let server = Server::start_with(&args.target.server, &url, &server_args).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.callers.max(args.readers) * 2).build().expect("a client");
    let base = server.base.clone();

    let (status, tenant) = admin(&http, reqwest::Method::POST, format!("{base}/v1/tenants"), ADMIN_TOKEN, json!({"name": "Ads Bench"})).await;
    assert_eq!(status, 201, "{tenant}");
    let (tenant_id, token) = (tenant["tenant_id"].as_str().expect("tenant_id").to_owned(), tenant["api_token"].as_str().expect("api_token").to_owned());
    let (status, body) = admin(&http, reqwest::Method::POST, format!("{base}/v1/tenants/{tenant_id}/deposits"), ADMIN_TOKEN, json!({"amount": "100000000.00", "currency": "USD"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin(&http, reqwest::Method::PUT, format!("{base}/v1/ads/connection"), &token, json!({"platform": "graph", "business_id": BUSINESS, "access_token": TOKEN})).await;
    assert_eq!(status, 204, "{body}");
    let synced = Instant::now();
    let (status, report) = admin(&http, reqwest::Method::POST, format!("{base}/v1/ads/sync"), &token, json!({})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accounts"], json!(args.accounts), "{report}");
    println!("synced {} accounts with {} days of insights in {:.1} s ({:?})", args.accounts, args.insights_days, synced.elapsed().as_secs_f64(), args.target.backend);

    // Phase 1: spend cap changes through a slow upstream.
    fake.apply(Control::SetLatency { ms: args.upstream_latency_ms }).expect("latency");
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let failures = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for caller in 0..args.callers {
        let (http, base, token, failures) = (http.clone(), base.clone(), token.clone(), failures.clone());
        callers.push(tokio::spawn(async move {
            let id = account_id(caller);
            let mut latencies_us = Vec::new();
            let mut cap_cents = 10_000;
            while Instant::now() < deadline {
                cap_cents += 100;
                let body = json!({"id": id, "access_token": token, "amount_usd": cap_cents, "req_header": {"search_id": format!("cap-{caller}-{cap_cents}")}});
                let sent = Instant::now();
                let reply: Value = http.post(format!("{base}/api/v1/change_spend_cap")).json(&body).timeout(Duration::from_secs(30)).send().await.expect("a reply").json().await.expect("JSON");
                if reply["resp_header"]["code"] == json!(1) {
                    latencies_us.push(sent.elapsed().as_micros() as u64);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("change_spend_cap failed: {reply}");
                    cap_cents -= 100;
                }
            }
            (id, cap_cents, latencies_us)
        }));
    }
    let mut latencies = Vec::new();
    let mut final_caps = Vec::new();
    for caller in callers {
        let (id, cap, caller_latencies) = caller.await.expect("a caller");
        latencies.extend(caller_latencies);
        final_caps.push((id, cap));
    }
    summary("change_spend_cap (upstream 100 ms)", latencies, started.elapsed(), failures.load(Ordering::Relaxed));
    fake.apply(Control::SetLatency { ms: 0 }).expect("latency");
    for (id, cap) in &final_caps {
        let at_meta = fake.ad_account(id).expect("the account at the fake").spend_cap_cents;
        assert_eq!(at_meta, *cap, "account {id}: the fake's cap is subledger's last change");
    }

    // Phase 2: insights reads from synced data.
    let since = today.checked_sub(jiff::Span::new().days(args.insights_days - 1)).expect("a day").to_string();
    let until = today.to_string();
    let started = Instant::now();
    let failures = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for reader in 0..args.readers {
        let (http, base, token, failures, since, until) = (http.clone(), base.clone(), token.clone(), failures.clone(), since.clone(), until.clone());
        let count = args.reads / args.readers;
        let accounts = args.accounts;
        readers.push(tokio::spawn(async move {
            let mut rng = Rng(0xA5A5_0000 + reader as u64);
            let mut latencies_us = Vec::with_capacity(count);
            for _ in 0..count {
                let id = account_id(rng.next() as usize % accounts);
                let time_range = json!({"since": since, "until": until});
                let (path, body) = match rng.next() % 4 {
                    0 => ("account_insights", json!({"id": id, "access_token": token, "time_range": time_range, "fields": ["spend", "impressions", "clicks", "ctr", "cpc"]})),
                    1 => ("account_insights", json!({"id": id, "access_token": token, "time_range": time_range, "fields": ["spend", "purchase_roas"], "time_increment": "1"})),
                    2 => ("account_insights", json!({"id": id, "access_token": token, "time_range": time_range, "fields": ["spend", "impressions"], "time_increment": "monthly"})),
                    _ => (
                        "account_insights_breakdowns",
                        json!({"id": id, "access_token": token, "time_range": time_range, "breakdowns": "country", "fields": ["spend", "clicks"], "limit": 50, "sort": "spend_descending"}),
                    ),
                };
                let sent = Instant::now();
                let reply: Value = http.get(format!("{base}/api/v1/{path}")).json(&body).timeout(Duration::from_secs(30)).send().await.expect("a reply").json().await.expect("JSON");
                if reply["resp_header"]["code"] == json!(1) && reply["data"].as_array().is_some_and(|rows| !rows.is_empty()) {
                    latencies_us.push(sent.elapsed().as_micros() as u64);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("{path} failed: {reply}");
                }
            }
            latencies_us
        }));
    }
    let mut latencies = Vec::new();
    for reader in readers {
        latencies.extend(reader.await.expect("a reader"));
    }
    summary("insights reads (synced data)", latencies, started.elapsed(), failures.load(Ordering::Relaxed));

    let report = run_cli(&args.target.server, &url, &["ledger", "verify", "--json"]).await;
    assert_eq!(report["ad_accounts_off_their_funding"], json!(0), "{report}");
    assert_eq!(report["holds_outliving_timeout"], json!(0), "{report}");
    println!("ledger verify: funded = spent + remaining cap for every account");
    drop(server);
    if !args.keep_database {
        if let Some(name) = postgres_name {
            psql(&args.target.postgres_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
