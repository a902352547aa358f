//! close-bench: month close for many accounts, in-process (no HTTP).
//!
//! For each number of events per account asked for, on a fresh database: one
//! tenant (Asia/Shanghai), N funded accounts (every `--postpaid-every`-th one
//! postpaid, the rest prepaid), per-unit SMS and graduated e-mail tariffs, then
//! usage seeded through `Services::ingest_usage` in batches of 1,000 with
//! time-ordered ids, every event in the previous month of the tenant's zone.
//! Then it times `Services::close_month` for that month: one transaction that
//! bills every account from the month rollups and settles the postpaid ones.
//! The close must take about as long at 1,000 events per account as at 100,
//! since it never reads raw events.
//!
//!     bench/run.sh close sqlite    # or postgres; flags after the backend, see --help

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use prometheus_client::registry::Registry;
use serde_json::json;
use subledger_bench::Backend;
use subledger_bench::{file_mib, psql, psql_value, set_database_settings, temp_dir, with_database};
use subledger_domain::account::{DailyQuota, TenantName, UserType, Username};
use subledger_domain::calendar::{TenantTimeZone, to_unix_micros};
use subledger_domain::money::{Currency, PositiveAmount};
use subledger_domain::rating::{PriceModel, Quantity};
use subledger_domain::usage::Outcome;
use subledger_service::Change;
use subledger_service::accounts::NewAccountInput;
use subledger_service::funds::{Holder, MoveOptions, WalletRef};
use subledger_service::usage::UsageEventIn;
use subledger_service::{ServiceConfig, Services};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Benchmark month close (Services::close_month) at several usage volumes, in-process")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// PostgreSQL server to use (a database of each run's own is created on it, then dropped).
    #[arg(long, env = "SUBLEDGER_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Accounts billed.
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    /// Events per account in the closed month, one run per value (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000])]
    events_per_account: Vec<usize>,
    /// Distinct accounts in one seeding batch of 1,000 events (a divisor of
    /// 1,000 and of --accounts). Fewer is faster to seed; the close reads the
    /// same rollups either way.
    #[arg(long, default_value_t = 10)]
    seed_accounts_per_batch: usize,
    /// Batches in flight while seeding.
    #[arg(long, default_value_t = 4)]
    seed_tasks: usize,
    /// Every this many accounts one is postpaid (settled at close); 0: none.
    #[arg(long, default_value_t = 2)]
    postpaid_every: usize,
    /// Before the close, let the database catch up with the seeding: on
    /// SQLite a TRUNCATE checkpoint of the WAL (which the background PASSIVE
    /// checkpoints cannot finish under sustained ingestion), on PostgreSQL
    /// VACUUM ANALYZE and CHECKPOINT (for servers without autovacuum).
    #[arg(long)]
    settle_before_close: bool,
    /// PostgreSQL settings for the bench's databases (`name=value`, repeatable;
    /// applied with ALTER DATABASE … SET), e.g. `log_min_duration_statement=50`.
    #[arg(long)]
    postgres_setting: Vec<String>,
    /// Leave the databases behind for inspection.
    #[arg(long)]
    keep_database: bool,
}

const BATCH: usize = 1_000;
const PRODUCTS: [&str; 2] = ["sms", "email"];

struct Result {
    events_per_account: usize,
    events: u64,
    set_up: Duration,
    seed: Duration,
    close: Duration,
    bills: usize,
    billed_cents: i64,
    settled_cents: i64,
    outstanding_cents: i64,
    database_mib: f64,
}

/// The seeding plan: batch `b` covers `per_batch` accounts of one group,
/// `BATCH / per_batch` events each, the next slice of their month.
struct Plan {
    accounts: usize,
    events_per_account: usize,
    per_batch: usize,
    month_start_us: i64,
    month_span_us: i64,
}

impl Plan {
    fn batches(&self) -> u64 {
        (self.accounts * self.events_per_account / BATCH) as u64
    }

    fn events(&self, usernames: &[String], b: u64) -> Vec<UsageEventIn> {
        let groups = (self.accounts / self.per_batch) as u64;
        let (group, round) = ((b % groups) as usize, (b / groups) as usize);
        let per_account = BATCH / self.per_batch;
        (0..BATCH)
            .map(|j| {
                let account = group * self.per_batch + j % self.per_batch;
                // The account's k-th event of the month, spread evenly over it.
                let k = round * per_account + j / self.per_batch;
                let at = self.month_start_us + (k as i64 * self.month_span_us) / self.events_per_account as i64 + account as i64;
                UsageEventIn {
                    id: format!("{:012}", b * BATCH as u64 + j as u64),
                    username: usernames[account].clone(),
                    product: PRODUCTS[k % PRODUCTS.len()].to_owned(),
                    quantity: Quantity::from_milli(1000).expect("one unit"),
                    occurred_at_us: at,
                    attributes: Default::default(),
                }
            })
            .collect()
    }
}

/// What `--settle-before-close` does (see there).
fn settle(args: &Args, database_url: &str) {
    match args.backend {
        Backend::Sqlite => {
            let path = database_url.trim_start_matches("sqlite://");
            let conn = rusqlite::Connection::open(path).expect("bench connection to the database");
            conn.busy_timeout(Duration::from_secs(60)).expect("busy timeout");
            let (busy, frames): (i64, i64) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?))).expect("checkpoint");
            eprintln!("  settled: WAL checkpointed ({frames} frames, busy {busy}) and truncated");
        }
        Backend::Postgres => {
            psql(database_url, "VACUUM ANALYZE");
            psql(database_url, "CHECKPOINT");
            eprintln!("  settled: VACUUM ANALYZE, CHECKPOINT");
        }
    }
}

async fn run(args: &Args, database_url: &str, events_per_account: usize) -> Result {
    let started = Instant::now();
    let store = subledger_storage::Store::open(database_url, &Default::default()).await.expect("database opens");
    let mut registry = Registry::default();
    let config = ServiceConfig { account_limit_default: 1_000_000, daily_quota_default: DailyQuota::MAX, ..ServiceConfig::default() };
    let (services, worker) = Services::start(store, config, &mut registry);
    let timezone = TenantTimeZone::parse("Asia/Shanghai").expect("zone");
    let tenant = services.create_tenant(TenantName::parse("Close Bench").expect("name"), timezone.clone(), &Change::by(subledger_domain::oplog::Actor::Cli)).await.expect("tenant").tenant;
    let funds = PositiveAmount::new(100_000_000_000).expect("amount");
    services.deposit(&tenant, &WalletRef::primary(Holder::Tenant), funds, Currency::Cny, MoveOptions::default(), &Change::by(subledger_domain::oplog::Actor::Cli)).await.expect("deposit");
    let from_2020 = Some(to_unix_micros("2020-01-01T00:00:00Z".parse::<jiff::Timestamp>().expect("instant")));
    let sms: PriceModel = serde_json::from_value(json!({"model": "per_unit", "price": "0.05", "increment": "1"})).expect("model");
    let email: PriceModel = serde_json::from_value(json!({"model": "graduated", "tiers": [
        {"min": "0", "max": "200", "unit": "1", "price": "0.01"},
        {"min": "200", "unit": "1", "price": "0.005"}
    ]}))
    .expect("model");
    services.set_tariff(&tenant, "sms", None, from_2020, sms, &Change::by(subledger_domain::oplog::Actor::Cli)).await.expect("sms tariff");
    services.set_tariff(&tenant, "email", None, from_2020, email, &Change::by(subledger_domain::oplog::Actor::Cli)).await.expect("email tariff");

    // Accounts: created, funded, every n-th postpaid; a few at a time.
    let usernames: Arc<Vec<String>> = Arc::new((0..args.accounts).map(|i| format!("close{i:06}")).collect());
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (services, tenant, usernames, next) = (services.clone(), tenant.clone(), usernames.clone(), next.clone());
            let postpaid_every = args.postpaid_every;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(name) = usernames.get(i) else { break };
                    let username = Username::parse(name).expect("username");
                    let input = NewAccountInput {
                        username: username.clone(),
                        user_type: UserType::IFaxin,
                        phone: None,
                        email: None,
                        company_name: None,
                        company_url: None,
                        password: None,
                        daily_quota: Some(DailyQuota::new(DailyQuota::MAX).expect("quota")),
                        funding: Default::default(),
                    };
                    services.create_account(&tenant, input, &Change::by(subledger_domain::oplog::Actor::Cli)).await.expect("account");
                    let amount = PositiveAmount::new(100_000).expect("amount");
                    let to = WalletRef::primary(Holder::Account(username));
                    services
                        .transfer(&tenant, &WalletRef::primary(Holder::Tenant), &to, amount, Currency::Cny, MoveOptions::default(), &Change::by(subledger_domain::oplog::Actor::Cli))
                        .await
                        .expect("transfer")
                        .posted()
                        .expect("funded");
                    if postpaid_every > 0 && i.is_multiple_of(postpaid_every) {
                        services.set_billing_mode(&tenant, name, true, &Change::by(subledger_domain::oplog::Actor::Cli)).await.expect("postpaid");
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("account task");
    }
    let set_up = started.elapsed();

    // Usage: the whole previous month of the tenant's zone.
    let month = timezone.month_of(jiff::Timestamp::now()).previous();
    let (start, end) = timezone.month_bounds(month);
    let plan = Arc::new(Plan {
        accounts: args.accounts,
        events_per_account,
        per_batch: args.seed_accounts_per_batch,
        month_start_us: to_unix_micros(start),
        month_span_us: to_unix_micros(end) - to_unix_micros(start) - 1_000_000_000,
    });
    let seeding = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..args.seed_tasks.max(1))
        .map(|_| {
            let (services, tenant, usernames, next, plan) = (services.clone(), tenant.clone(), usernames.clone(), next.clone(), plan.clone());
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= plan.batches() {
                        break;
                    }
                    let results = services.ingest_usage(&tenant, plan.events(&usernames, b), &Change::by(subledger_domain::oplog::Actor::Cli)).await.expect("usage batch");
                    if let Some(refused) = results.iter().find(|r| r.duplicate || !matches!(r.outcome, Outcome::Accepted(_))) {
                        panic!("event {} was not accepted: {:?} (duplicate: {})", refused.id, refused.outcome, refused.duplicate);
                    }
                    if b > 0 && b.is_multiple_of(1000) {
                        eprintln!("  seeded {} events", b * BATCH as u64);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("seeding task");
    }
    let seed = seeding.elapsed();
    if args.settle_before_close {
        settle(args, database_url);
    }
    if args.backend == Backend::Sqlite {
        let path = std::path::PathBuf::from(format!("{}-wal", database_url.trim_start_matches("sqlite://")));
        eprintln!("  before the close: WAL {:.0} MiB", file_mib(&path));
    }

    let closing = Instant::now();
    let reports = services.close_month(&tenant, month, &Change::by(subledger_domain::oplog::Actor::Cli)).await.expect("close");
    let close = closing.elapsed();
    assert_eq!(reports.len(), 1, "only {month} had usage");
    let report = &reports[0];
    assert!(!report.already_closed && report.bills == args.accounts, "every account gets a bill: {report:?}");
    drop(services);
    let _ = worker.await;
    Result {
        events_per_account,
        events: plan.batches() * BATCH as u64,
        set_up,
        seed,
        close,
        bills: report.bills,
        // The bench's usage is of built-in products, all in yuan.
        billed_cents: report.by_currency[&Currency::Cny].billed_cents,
        settled_cents: report.by_currency[&Currency::Cny].settled_cents,
        outstanding_cents: report.by_currency[&Currency::Cny].outstanding_cents,
        database_mib: 0.0,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let k = args.seed_accounts_per_batch;
    assert!(k > 0 && BATCH.is_multiple_of(k) && args.accounts.is_multiple_of(k), "--seed-accounts-per-batch must divide 1,000 and --accounts");
    for &e in &args.events_per_account {
        assert!(e.is_multiple_of(BATCH / k), "--events-per-account {e} must be a multiple of {} (1,000 / --seed-accounts-per-batch)", BATCH / k);
    }
    let mut results = Vec::new();
    for &events_per_account in &args.events_per_account {
        let dir = temp_dir(&format!("close-bench-{events_per_account}"));
        let postgres_name = format!("subledger_close_bench_{}_{events_per_account}", std::process::id());
        let url = match args.backend {
            Backend::Sqlite => format!("sqlite://{}/close.db", dir.display()),
            Backend::Postgres => {
                psql(&args.postgres_url, &format!("CREATE DATABASE {postgres_name}"));
                set_database_settings(&args.postgres_url, &postgres_name, &args.postgres_setting);
                with_database(&args.postgres_url, &postgres_name)
            }
        };
        eprintln!("{:?}: {} accounts, {events_per_account} events each …", args.backend, args.accounts);
        let mut result = run(&args, &url, events_per_account).await;
        result.database_mib = match args.backend {
            Backend::Sqlite => file_mib(&dir.join("close.db")) + file_mib(&dir.join("close.db-wal")),
            Backend::Postgres => psql_value(&args.postgres_url, &format!("SELECT pg_database_size('{postgres_name}')")).parse::<f64>().unwrap_or(0.0) / (1024.0 * 1024.0),
        };
        eprintln!(
            "  set-up {:.1} s; seeded {} events in {:.1} s ({:.0} events/s); close {:.3} s: {} bills, billed {:.2}, settled {:.2}, outstanding {:.2}; database {:.0} MiB",
            result.set_up.as_secs_f64(),
            result.events,
            result.seed.as_secs_f64(),
            result.events as f64 / result.seed.as_secs_f64(),
            result.close.as_secs_f64(),
            result.bills,
            result.billed_cents as f64 / 100.0,
            result.settled_cents as f64 / 100.0,
            result.outstanding_cents as f64 / 100.0,
            result.database_mib
        );
        if args.keep_database {
            println!("database kept: {url}");
        } else {
            if args.backend == Backend::Postgres {
                psql(&args.postgres_url, &format!("DROP DATABASE IF EXISTS {postgres_name} WITH (FORCE)"));
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        results.push(result);
    }

    println!("backend {:?}, {} accounts (every {} postpaid), products sms (per unit) and email (graduated)", args.backend, args.accounts, args.postpaid_every);
    println!("| events/account | events | seed | seed rate | close | bills | settled | database |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &results {
        println!(
            "| {} | {} | {:.1} s | {:.0} events/s | {:.3} s | {} | {:.2} | {:.0} MiB |",
            r.events_per_account,
            r.events,
            r.seed.as_secs_f64(),
            r.events as f64 / r.seed.as_secs_f64(),
            r.close.as_secs_f64(),
            r.bills,
            r.settled_cents as f64 / 100.0,
            r.database_mib
        );
    }
    if let (Some(first), Some(last)) = (results.first(), results.last())
        && results.len() > 1
    {
        let ratio = last.close.as_secs_f64() / first.close.as_secs_f64();
        println!("close time ratio ({} vs {} events/account): {ratio:.2}", last.events_per_account, first.events_per_account);
        println!("{}  close time does not grow with events (ratio {ratio:.2} <= 1.5)", if ratio <= 1.5 { "MET " } else { "MISS" });
    }
}
