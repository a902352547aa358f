//! oplog-bench: operation-log queries over a large log, through the UUCall
//! dialect's `GET /rest/power/oplog`, against the release server.
//!
//! Set-up: one tenant (CLI), then `--entries` operation-log entries written
//! straight into the database in one statement (as a month of a busy call
//! center would leave them: 200 sub-users taking turns, one entry in five by
//! the enterprise's own token, spread evenly over the last 30 days), then the
//! server. Each query shape is then asked `--queries` times by `--concurrency`
//! workers, with fresh random values, and its latency percentiles printed:
//! the newest page, one sub-user's entries, an hour, one sub-user's day, one
//! entry by id, and one sub-user's day a month back. Every answer must be
//! 200; the shapes that must find entries are checked to find some.
//!
//!     bench/run.sh oplog sqlite    # or postgres; flags after the backend, see --help

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use subledger_bench::{Backend, Server, Target, percentile_ms, psql, psql_value, run_cli, temp_dir, with_database};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Benchmark operation-log queries (GET /rest/power/oplog) over a large log")]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Entries written into the log before the queries.
    #[arg(long, default_value_t = 1_000_000)]
    entries: i64,
    /// Queries of each shape.
    #[arg(long, default_value_t = 400)]
    queries: usize,
    /// Concurrent workers.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Leave the database behind for inspection.
    #[arg(long)]
    keep_database: bool,
}

/// Sub-users whose names the seeded entries carry.
const ACTORS: i64 = 200;
/// The seeded entries span this many days, ending now.
const SPAN_DAYS: i64 = 30;

/// The seeding statement: `entries` rows for tenant `tenant_id`, the newest
/// at `end_us`. One statement per backend; the rows are the same.
fn seed_sql(backend: Backend, tenant_id: i64, entries: i64, end_us: i64) -> String {
    let step_us = SPAN_DAYS * 86_400_000_000 / entries;
    let start_us = end_us - entries * step_us;
    let select = format!(
        "SELECT {tenant_id}, {start_us} + i * {step_us},
                CASE WHEN i % 5 = 0 THEN 'tenant' ELSE 'sub_user' END,
                CASE WHEN i % 5 = 0 THEN NULL ELSE 1000000 + i % {ACTORS} END,
                CASE WHEN i % 5 = 0 THEN NULL ELSE 'agent' || (i % {ACTORS}) END,
                CASE WHEN i % 3 = 0 THEN 'usage.ingest' ELSE 'funds.transfer' END,
                'agent' || ((i + 7) % {ACTORS}), '1.00 CNY', 'done'"
    );
    let columns = "INSERT INTO operations (tenant_id, at_us, actor_kind, actor_account_id, actor_name, kind, subject, detail, outcome)";
    match backend {
        Backend::Sqlite => format!("{columns} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {entries}) {select} FROM n"),
        Backend::Postgres => format!("{columns} {select} FROM generate_series(1::bigint, {entries}) AS n(i)"),
    }
}

/// A query shape: its name and how to build its query string.
struct Shape {
    name: &'static str,
    /// Must its answers hold entries?
    finds: bool,
    query: fn(&mut Rng, &Context) -> String,
}

struct Context {
    uid: i64,
    /// The newest seeded entry, and the span covered.
    end: jiff::Zoned,
    first_id: i64,
    entries: i64,
}

/// A small deterministic generator (xorshift), so runs ask the same queries.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i64
    }
}

fn time(at: &jiff::Zoned) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S").to_string().replace(' ', "%20")
}

fn window(context: &Context, back: jiff::SignedDuration, length: jiff::SignedDuration) -> String {
    let start = context.end.checked_sub(back).expect("a time");
    let end = start.checked_add(length).expect("a time");
    format!("startTime={}&endTime={}", time(&start), time(&end))
}

const SHAPES: [Shape; 6] = [
    Shape { name: "newest page", finds: true, query: |_, c| format!("uid={}", c.uid) },
    Shape { name: "one sub-user", finds: true, query: |r, c| format!("uid={}&subUserName=agent{}", c.uid, 1 + r.below(ACTORS - 1)) },
    Shape {
        name: "one hour",
        finds: true,
        query: |r, c| format!("uid={}&{}", c.uid, window(c, jiff::SignedDuration::from_hours(1 + r.below(SPAN_DAYS * 24 - 2)), jiff::SignedDuration::from_hours(1))),
    },
    Shape {
        name: "one sub-user's day",
        finds: true,
        query: |r, c| {
            format!(
                "uid={}&subUserName=agent{}&{}",
                c.uid,
                1 + r.below(ACTORS - 1),
                window(c, jiff::SignedDuration::from_hours(24 * (1 + r.below(SPAN_DAYS - 2))), jiff::SignedDuration::from_hours(24))
            )
        },
    },
    Shape { name: "one entry by id", finds: true, query: |r, c| format!("uid={}&id={}", c.uid, c.first_id + r.below(c.entries)) },
    Shape {
        name: "a sub-user's day a month back",
        finds: true,
        query: |r, c| format!("uid={}&subUserName=agent{}&{}", c.uid, 1 + r.below(ACTORS - 1), window(c, jiff::SignedDuration::from_hours(24 * (SPAN_DAYS - 1)), jiff::SignedDuration::from_hours(24))),
    },
];

/// The entries an answer holds: an array, or the first array inside an object.
fn entries_in(answer: &Value) -> usize {
    match answer {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.values().find_map(|v| v.as_array()).map_or(0, Vec::len),
        _ => 0,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = temp_dir("oplog-bench");
    let (url, postgres_name) = match args.target.backend {
        Backend::Sqlite => (format!("sqlite://{}/oplog.db", dir.display()), None),
        Backend::Postgres => {
            let name = format!("subledger_oplog_bench_{}", std::process::id());
            psql(&args.target.postgres_url, &format!("CREATE DATABASE {name}"));
            (with_database(&args.target.postgres_url, &name), Some(name))
        }
    };
    let tenant = run_cli(&args.target.server, &url, &["tenant", "create", "--name", "Oplog Bench", "--json"]).await;
    let public_id = tenant["tenant_id"].as_str().expect("tenant_id").to_owned();
    let token = tenant["api_token"].as_str().expect("api_token").to_owned();
    let lookup = format!("SELECT id FROM tenants WHERE public_id = '{public_id}'");
    let end_us = jiff::Timestamp::now().as_microsecond();
    let seed = Instant::now();
    let (uid, first_id) = match args.target.backend {
        Backend::Sqlite => {
            let path = dir.join("oplog.db");
            let conn = rusqlite::Connection::open(&path).expect("the database");
            let uid: i64 = conn.query_row(&lookup, [], |row| row.get(0)).expect("the tenant");
            conn.execute_batch(&format!("{}; ANALYZE;", seed_sql(Backend::Sqlite, uid, args.entries, end_us))).expect("seeding");
            let first: i64 = conn.query_row("SELECT MIN(id) FROM operations WHERE kind <> 'tenant.create'", [], |row| row.get(0)).expect("first id");
            (uid, first)
        }
        Backend::Postgres => {
            let uid: i64 = psql_value(&url, &lookup).parse().expect("the tenant id");
            psql(&url, &seed_sql(Backend::Postgres, uid, args.entries, end_us));
            psql(&url, "ANALYZE operations");
            let first: i64 = psql_value(&url, "SELECT MIN(id) FROM operations WHERE kind <> 'tenant.create'").parse().expect("first id");
            (uid, first)
        }
    };
    println!("seeded {} entries in {:.1} s ({:?})", args.entries, seed.elapsed().as_secs_f64(), args.target.backend);

    let server = Server::start(&args.target.server, &url).await;
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").expect("the tenant's zone");
    let context = Arc::new(Context { uid, end: jiff::Timestamp::from_microsecond(end_us).expect("now").to_zoned(zone), first_id, entries: args.entries });
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build().expect("a client");
    println!("{:<32} {:>9} {:>9} {:>9} {:>10}", "query", "p50 ms", "p99 ms", "max ms", "entries");
    for (index, shape) in SHAPES.iter().enumerate() {
        let mut workers = Vec::new();
        for worker in 0..args.concurrency {
            let (http, base, token, context) = (http.clone(), server.base.clone(), token.clone(), context.clone());
            let count = args.queries / args.concurrency + usize::from(worker < args.queries % args.concurrency);
            workers.push(tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((index as u64) << 32 | worker as u64));
                let mut latencies_us = Vec::with_capacity(count);
                let mut found = 0;
                for _ in 0..count {
                    let query = (shape.query)(&mut rng, &context);
                    let started = Instant::now();
                    let response = http.get(format!("{base}/rest/power/oplog?{query}")).bearer_auth(&token).timeout(Duration::from_secs(30)).send().await.expect("the request");
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    latencies_us.push(started.elapsed().as_micros() as u64);
                    assert_eq!(status, 200, "{query}: {body}");
                    found += entries_in(&body);
                }
                (latencies_us, found)
            }));
        }
        let mut latencies_us = Vec::new();
        let mut found = 0;
        for worker in workers {
            let (mut l, f) = worker.await.expect("a worker");
            latencies_us.append(&mut l);
            found += f;
        }
        latencies_us.sort_unstable();
        assert!(!shape.finds || found > 0, "{}: no entries found", shape.name);
        println!("{:<32} {:>9.2} {:>9.2} {:>9.2} {:>10}", shape.name, percentile_ms(&latencies_us, 0.5), percentile_ms(&latencies_us, 0.99), *latencies_us.last().unwrap_or(&0) as f64 / 1000.0, found);
    }
    println!("server peak RSS {:.0} MiB", server.peak_rss_mib());
    drop(server);
    if !args.keep_database {
        if let Some(name) = postgres_name {
            psql(&args.target.postgres_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
