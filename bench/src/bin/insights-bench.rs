//! insights-bench: ad insights reads from synced data, in-process (no HTTP).
//!
//! Set-up: one tenant (Asia/Shanghai); for `--accounts` ad accounts,
//! `--days` days of synced insights ending yesterday, written through the
//! storage the sync job writes with: per day the account as a whole (with
//! action lists) and every synced breakdown (20 countries, 30 regions, 6 age
//! ranges, 3 genders, 18 age × gender, 4 platforms): 82 rows a day.
//!
//! Then each query shape is read for `--seconds` by `--concurrency` tasks
//! calling `Services::ad_insights` / `ad_insights_breakdowns` directly, each
//! read a random account and a random range of the synced days, and its rate
//! and latency percentiles printed; then all shapes mixed. Every answer must
//! have rows.
//!
//! The shapes are JSON parameters as the dialect receives them
//! ([`Shape::params`]), parsed by the domain as the dialect parses them, so
//! the same bodies can drive the server over HTTP.
//!
//!     cargo build --release -p subledger-bench --bin insights-bench
//!     target/release/insights-bench --backend sqlite    # or postgres; see --help

use std::time::{Duration, Instant};

use clap::Parser;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use subledger_bench::{Backend, file_mib, percentile_ms, psql, psql_value, temp_dir, with_database};
use subledger_domain::account::TenantName;
use subledger_domain::calendar::{Day, TenantTimeZone};
use subledger_domain::insights::{ActionLists, ActionStats, Breakdown, BreakdownsParams, BreakdownsQuery, DailyMetrics, DailyRow, InsightsParams, InsightsQuery};
use subledger_domain::paging::Page;
use subledger_service::ads::insights::insights_today;
use subledger_service::tenants::Tenant;
use subledger_service::{Change, ServiceConfig, Services};
use subledger_storage::ad_insights::{self, InsightsKey};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Benchmark ad insights reads (Services::ad_insights, ad_insights_breakdowns) from synced data, in-process")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// PostgreSQL server to use (a database of the run's own is created on it, then dropped).
    #[arg(long, env = "SUBLEDGER_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Ad accounts of the tenant.
    #[arg(long, default_value_t = 50)]
    accounts: usize,
    /// Days synced per account, ending yesterday.
    #[arg(long, default_value_t = 400)]
    days: i64,
    /// Concurrent reading tasks.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds each shape (and the mix) is read for.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Leave the database behind for inspection (or for `--reuse`).
    #[arg(long)]
    keep_database: bool,
    /// Read a database a run with `--keep-database` (and the same
    /// `--accounts` and `--days`, the same day) left, instead of filling one.
    #[arg(long)]
    reuse: Option<String>,
}

/// The values of each breakdown's columns, per day.
fn breakdown_values(breakdown: Breakdown) -> Vec<Vec<String>> {
    const COUNTRIES: [&str; 20] = ["US", "GB", "DE", "FR", "BR", "MX", "IN", "ID", "JP", "KR", "TH", "VN", "PH", "MY", "AU", "CA", "IT", "ES", "TR", "SA"];
    const AGES: [&str; 6] = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"];
    const GENDERS: [&str; 3] = ["female", "male", "unknown"];
    let one = |values: &[&str]| values.iter().map(|v| vec![(*v).to_owned()]).collect();
    match breakdown.key() {
        "country" => one(&COUNTRIES),
        "region" => (0..30).map(|r| vec![format!("Region {r:02}, Somewhere")]).collect(),
        "age" => one(&AGES),
        "gender" => one(&GENDERS),
        "age,gender" => AGES.iter().flat_map(|a| GENDERS.iter().map(move |g| vec![(*a).to_owned(), (*g).to_owned()])).collect(),
        "publisher_platform" => one(&["facebook", "instagram", "audience_network", "messenger"]),
        other => panic!("a breakdown this bench does not know: {other}"),
    }
}

/// A day's metrics, varied by a seed; with lists, as Graph reports them.
fn metrics(seed: u64, lists: bool) -> DailyMetrics {
    let n = (seed % 997) as i64;
    let stats = |entries: &[(&str, i64)]| ActionStats::new(entries.iter().map(|(t, v)| ((*t).to_owned(), *v))).expect("small values");
    let action_lists = if lists {
        ActionLists {
            actions: stats(&[("link_click", 100 * (n % 50 + 1)), ("landing_page_view", 100 * (n % 40)), ("omni_purchase", 100 * (n % 5))]),
            action_values: stats(&[("omni_purchase", 2_999 * (n % 5))]),
            conversions: ActionStats::default(),
            conversion_values: ActionStats::default(),
        }
    } else {
        ActionLists::default()
    };
    DailyMetrics { spend_cents: 1_000 + 37 * n, impressions: 5_000 + 11 * n, clicks: 50 + n % 60, reach: 4_000 + 7 * n, inline_link_clicks: 40 + n % 50, total_postbacks: n % 4, action_lists }
}

async fn fill(services: &Services, tenant: &Tenant, args: &Args, yesterday: Day) -> u64 {
    let first = Day(yesterday.0.checked_sub(jiff::Span::new().days(args.days - 1)).expect("a day"));
    let days: Vec<Day> = std::iter::successors(Some(first), |d| Some(d.next())).take(args.days as usize).collect();
    let mut written = 0;
    for account in 0..args.accounts {
        let account_id = account_id(account);
        let mut batches: Vec<(Option<Breakdown>, Vec<DailyRow>)> =
            vec![(None, days.iter().enumerate().map(|(i, d)| DailyRow { day: *d, breakdown_values: Vec::new(), metrics: metrics((account * 1_000 + i) as u64, true) }).collect())];
        for breakdown in Breakdown::all() {
            let values = breakdown_values(breakdown);
            let rows = days
                .iter()
                .enumerate()
                .flat_map(|(i, d)| {
                    values.iter().enumerate().map(move |(v, value)| DailyRow { day: *d, breakdown_values: value.clone(), metrics: metrics((account * 7 + i * 31 + v) as u64, v % 3 == 0) })
                })
                .collect();
            batches.push((Some(breakdown), rows));
        }
        for (breakdown, rows) in batches {
            let mut tx = services.store.begin_write().await.expect("a write transaction");
            ad_insights::upsert_days(&mut tx, &InsightsKey { tenant: tenant.id, account_id: &account_id, breakdown }, &rows, 0).await.expect("rows stored");
            tx.commit().await.expect("committed");
            written += rows.len() as u64;
        }
    }
    written
}

fn account_id(index: usize) -> String {
    format!("{}", 120_000_000_000_000 + index)
}

/// A query shape: how its parameters are made, and which operation reads it.
struct Shape {
    name: &'static str,
    breakdowns: bool,
    /// The parameters, as JSON the dialect would receive, for the synced
    /// days ending `yesterday`, `days` of them; `pick` draws random numbers.
    params: fn(&mut Rng, Day, i64) -> Value,
}

/// `{since, until}` of `length` days ending a random number of days before `yesterday`, within the synced days.
fn range(rng: &mut Rng, yesterday: Day, synced_days: i64, length: i64) -> Value {
    let back = rng.below((synced_days - length).max(1));
    let until = yesterday.0.checked_sub(jiff::Span::new().days(back)).expect("a day");
    let since = until.checked_sub(jiff::Span::new().days(length - 1)).expect("a day");
    json!({"since": since.to_string(), "until": until.to_string()})
}

const SHAPES: [Shape; 4] = [
    Shape { name: "30 days, all_days", breakdowns: false, params: |r, y, d| json!({"fields": ["spend", "impressions", "clicks", "cpc", "ctr"], "time_range": range(r, y, d, 30)}) },
    Shape { name: "90 days, daily", breakdowns: false, params: |r, y, d| json!({"fields": ["spend", "impressions", "clicks", "actions"], "time_range": range(r, y, d, 90), "time_increment": "1"}) },
    Shape {
        name: "a year, monthly",
        breakdowns: false,
        params: |r, y, d| json!({"fields": ["spend", "reach", "frequency", "purchase_roas"], "time_range": range(r, y, d, 365), "time_increment": "monthly"}),
    },
    Shape {
        name: "30 days by country, limit 50",
        breakdowns: true,
        params: |r, y, d| json!({"fields": ["spend", "impressions", "cpm"], "time_range": range(r, y, d, 30), "breakdowns": "country", "sort": "spend_descending", "limit": 50}),
    },
];

/// Random numbers, the same every run (SplitMix64), so runs ask the same queries.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as i64
    }
}

/// One read of a shape: parsed as the dialect parses, answered by the service. Returns the rows.
async fn read(services: &Services, tenant: &Tenant, shape: &Shape, params: &Value, today: Day) -> usize {
    let account = account_id(params["account"].as_u64().expect("an account") as usize);
    if shape.breakdowns {
        let query = BreakdownsQuery::parse(&BreakdownsParams::of(params), today).expect("a valid query");
        services.ad_insights_breakdowns(tenant, &account, &query).await.expect("an answer").len()
    } else {
        let query = InsightsQuery::parse(&InsightsParams::of(params), today).expect("a valid query");
        services.ad_insights(tenant, &account, &query).await.expect("an answer").len()
    }
}

struct Measured {
    reads: usize,
    rows: usize,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

/// Reads `shapes` (one after another, per task) for `seconds` on `concurrency` tasks.
async fn measure(services: &Services, tenant: &Tenant, args: &Args, shapes: &'static [Shape], seed: u64) -> Measured {
    let today = insights_today(tenant);
    let yesterday = today.previous();
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|task| {
            let (services, tenant, accounts, days) = (services.clone(), tenant.clone(), args.accounts as i64, args.days);
            tokio::spawn(async move {
                let mut rng = Rng(seed << 32 | task as u64);
                let (mut latencies_us, mut rows) = (Vec::new(), 0);
                let mut turn = task;
                while Instant::now() < deadline {
                    let shape = &shapes[turn % shapes.len()];
                    turn += 1;
                    let mut params = (shape.params)(&mut rng, yesterday, days);
                    params["account"] = json!(rng.below(accounts));
                    let at = Instant::now();
                    let answered = read(&services, &tenant, shape, &params, today).await;
                    latencies_us.push(at.elapsed().as_micros() as u64);
                    assert!(answered > 0, "{}: no rows for {params}", shape.name);
                    rows += answered;
                }
                (latencies_us, rows)
            })
        })
        .collect();
    let mut measured = Measured { reads: 0, rows: 0, latencies_us: Vec::new(), elapsed: Duration::ZERO };
    for task in tasks {
        let (mut latencies_us, rows) = task.await.expect("a task");
        measured.reads += latencies_us.len();
        measured.rows += rows;
        measured.latencies_us.append(&mut latencies_us);
    }
    measured.elapsed = started.elapsed();
    measured.latencies_us.sort_unstable();
    measured
}

fn report(name: &str, m: &Measured) {
    println!(
        "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.1} |",
        m.reads,
        m.reads as f64 / m.elapsed.as_secs_f64(),
        percentile_ms(&m.latencies_us, 0.5),
        percentile_ms(&m.latencies_us, 0.99),
        m.rows as f64 / m.reads.max(1) as f64
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = temp_dir("insights-bench");
    let postgres_name = format!("subledger_insights_bench_{}", std::process::id());
    let url = match (&args.reuse, args.backend) {
        (Some(url), _) => url.clone(),
        (None, Backend::Sqlite) => format!("sqlite://{}/insights.db", dir.display()),
        (None, Backend::Postgres) => {
            psql(&args.postgres_url, &format!("CREATE DATABASE {postgres_name}"));
            with_database(&args.postgres_url, &postgres_name)
        }
    };
    let store = subledger_storage::Store::open(&url, &Default::default()).await.expect("database opens");
    let (services, worker) = Services::start(store, ServiceConfig::default(), &mut Registry::default());
    let tenant = if args.reuse.is_some() {
        let (_, tenants) = services.list_tenants(Page::new(0, 1, 1).expect("a page")).await.expect("tenants");
        tenants.into_iter().next().expect("the filled database's tenant")
    } else {
        let zone = TenantTimeZone::parse("Asia/Shanghai").expect("zone");
        let tenant = services.create_tenant(TenantName::parse("Insights Bench").expect("name"), zone, &Change::by(subledger_domain::oplog::Actor::Cli)).await.expect("tenant").tenant;
        let seeding = Instant::now();
        let rows = fill(&services, &tenant, &args, insights_today(&tenant).previous()).await;
        let database_mib = match args.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(dir.join("insights.db")).expect("the database");
                conn.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);").expect("analyze");
                file_mib(&dir.join("insights.db"))
            }
            Backend::Postgres => {
                psql(&url, "VACUUM ANALYZE ad_insights_daily");
                psql_value(&args.postgres_url, &format!("SELECT pg_database_size('{postgres_name}')")).parse::<f64>().unwrap_or(0.0) / (1024.0 * 1024.0)
            }
        };
        let seconds = seeding.elapsed().as_secs_f64();
        eprintln!(
            "{:?}: {rows} daily rows ({} accounts × {} days × 82) stored in {seconds:.1} s ({:.0} rows/s); database {database_mib:.0} MiB",
            args.backend,
            args.accounts,
            args.days,
            rows as f64 / seconds
        );
        tenant
    };

    println!("backend {:?}, {} accounts × {} days, {} tasks, {} s per shape", args.backend, args.accounts, args.days, args.concurrency, args.seconds);
    println!("| query | reads | reads/s | p50 ms | p99 ms | rows/answer |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut mixed_rate = 0.0;
    for (index, shape) in SHAPES.iter().enumerate() {
        let measured = measure(&services, &tenant, &args, std::slice::from_ref(shape), index as u64).await;
        report(shape.name, &measured);
    }
    let measured = measure(&services, &tenant, &args, &SHAPES, 99).await;
    report("all four, mixed", &measured);
    mixed_rate += measured.reads as f64 / measured.elapsed.as_secs_f64();
    println!("{}  mixed reads ≥ 5,000/s ({mixed_rate:.0}/s)", if mixed_rate >= 5_000.0 { "MET " } else { "MISS" });

    drop(services);
    let _ = worker.await;
    match (args.keep_database || args.reuse.is_some(), args.backend) {
        (true, _) => println!("database kept: {url}"),
        (false, Backend::Postgres) => psql(&args.postgres_url, &format!("DROP DATABASE IF EXISTS {postgres_name} WITH (FORCE)")),
        (false, Backend::Sqlite) => {}
    }
    if !args.keep_database && args.reuse.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
