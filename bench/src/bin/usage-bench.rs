//! usage-bench: usage ingestion over HTTP, `POST /v1/usage`, against the
//! release server.
//!
//! One run per (accounts per batch, connections) setting, each on a fresh
//! database and server. Set-up (CLI and native API): one tenant with a large
//! deposit, N sub-accounts (daily quota at its maximum) funded from it, and a
//! per-unit tariff on each product. After a warm-up, every connection sends
//! batches of events back to back for a fixed time: ids are zero-padded
//! sequence numbers (time-ordered), each batch names the next accounts in
//! turn, and every answer is parsed and its counts checked: all events must
//! be accepted. It prints events/s, batch latency percentiles, the server's
//! peak RSS (VmHWM), the ledger worker's time per batch, where the CPU went
//! (server, its ledger thread, PostgreSQL, this client) and, on SQLite, the
//! storage writes per batch and the size of the WAL.
//!
//!     bench/run.sh usage sqlite    # or postgres; flags after the backend, see --help

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hyper::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::{Value, json};
use subledger_bench::client::{Connection, Endpoint};
use subledger_bench::{Backend, Target};
use subledger_bench::{
    Server, cpu_seconds, file_mib, metric, percentile_ms, processes_cpu_seconds, psql, run_cli, set_database_settings, storage_write_bytes, temp_dir, thread_cpu_seconds, with_database,
};
use subledger_domain::calendar::from_unix_micros;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Benchmark usage ingestion (POST /v1/usage) over HTTP against the release server")]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Sub-accounts the events are spread over.
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    /// Concurrent connections, one run per value (comma-separated). Each run
    /// starts over on a fresh database and server.
    #[arg(long, value_delimiter = ',', default_values_t = [2, 4, 8])]
    connections: Vec<usize>,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of warm-up before each measured phase.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Events per request (the API takes at most 1,000).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Distinct accounts in one batch, one run per value (comma-separated;
    /// default: as many as the batch has events, up to --accounts). Batch k
    /// covers the next accounts in turn.
    #[arg(long, value_delimiter = ',')]
    accounts_per_batch: Vec<usize>,
    /// Products the events name, each with a per-unit tariff (comma-separated
    /// built-in codes). With several, they take turns per batch (and per
    /// round over the batch's accounts).
    #[arg(long, value_delimiter = ',', default_values_t = ["sms".to_owned()])]
    products: Vec<String>,
    /// Price per unit of every product (CNY).
    #[arg(long, default_value = "0.05")]
    price: String,
    /// PostgreSQL settings for the bench's databases (`name=value`, repeatable;
    /// applied with ALTER DATABASE … SET), e.g. `log_min_duration_statement=0`
    /// to see each statement's time in the server log.
    #[arg(long)]
    postgres_setting: Vec<String>,
    /// Leave the benchmark's databases behind for inspection.
    #[arg(long)]
    keep_database: bool,
}

/// What every connection needs to build its batches.
struct Load {
    base: String,
    /// `POST /v1/usage` with the tenant's bearer token.
    endpoint: Endpoint,
    usernames: Vec<String>,
    products: Vec<String>,
    batch: usize,
    accounts_per_batch: usize,
    /// The next event id: batches take consecutive ranges, so ids arrive in
    /// (nearly) increasing order.
    next_id: AtomicU64,
}

impl Load {
    /// The JSON body of the batch whose first id is `first`.
    fn body(&self, first: u64) -> String {
        let n = self.usernames.len();
        let k = self.accounts_per_batch;
        let batch_no = first / self.batch as u64;
        let start = (batch_no as usize).wrapping_mul(k) % n;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_micros() as i64;
        let occurred_at = from_unix_micros(now).to_string();
        let mut body = String::with_capacity(self.batch * 128);
        body.push_str("{\"events\":[");
        for j in 0..self.batch {
            if j > 0 {
                body.push(',');
            }
            let account = &self.usernames[(start + j % k) % n];
            let product = &self.products[(batch_no as usize + j / k) % self.products.len()];
            let _ = write!(body, r#"{{"id":"{:012}","account":"{account}","product":"{product}","quantity":1,"occurred_at":"{occurred_at}"}}"#, first + j as u64);
        }
        body.push_str("]}");
        body
    }
}

/// The counts of an answer; the per-event results are skipped unless something was refused.
#[derive(Deserialize)]
struct Counts {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
}

#[derive(Default)]
struct Tally {
    batches: u64,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    /// Requests that failed (transport error or non-200).
    failures: u64,
    latencies_us: Vec<u64>,
    first_problem: Option<String>,
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        self.batches += other.batches;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.failures += other.failures;
        self.latencies_us.extend(other.latencies_us);
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
    }
}

/// One connection: batches back to back until `stop`.
async fn connection(load: Arc<Load>, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally { latencies_us: Vec::with_capacity(10_000), ..Tally::default() };
    let mut connection = match Connection::open(&load.base).await {
        Ok(connection) => connection,
        Err(e) => {
            tally.failures += 1;
            tally.first_problem = Some(format!("cannot connect: {e}"));
            return tally;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let first = load.next_id.fetch_add(load.batch as u64, Ordering::Relaxed);
        let body = load.body(first);
        let sent = Instant::now();
        let problem = match connection.send(load.endpoint.request(body)).await {
            Ok(answer) if answer.status == 200 => {
                let elapsed = sent.elapsed().as_micros() as u64;
                match serde_json::from_slice::<Counts>(&answer.body) {
                    Ok(counts) => {
                        tally.batches += 1;
                        tally.latencies_us.push(elapsed);
                        tally.accepted += counts.accepted;
                        tally.duplicates += counts.duplicates;
                        tally.rejected += counts.rejected;
                        if counts.accepted as usize != load.batch { Some(first_refusal(&answer.body)) } else { None }
                    }
                    Err(e) => Some(format!("unreadable answer: {e}")),
                }
            }
            Ok(answer) => Some(format!("HTTP {}: {}", answer.status, String::from_utf8_lossy(&answer.body))),
            Err(e) => {
                // The connection is gone: count it and stop this worker.
                tally.failures += 1;
                tally.first_problem.get_or_insert(format!("request failed: {e}"));
                break;
            }
        };
        if let Some(problem) = problem {
            if !problem.starts_with("event ") {
                tally.failures += 1;
            }
            tally.first_problem.get_or_insert(problem);
        }
    }
    tally
}

/// Describes the first event of an answer that was not accepted.
fn first_refusal(bytes: &[u8]) -> String {
    let answer: Value = serde_json::from_slice(bytes).unwrap_or_default();
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    results.iter().find(|r| r["status"] != "accepted").map_or_else(|| "event ?: not accepted".to_owned(), |r| format!("event {}: {} ({})", r["id"], r["status"], r["reason"]))
}

/// Readings taken before and after a phase.
struct Readings {
    at: Instant,
    server_cpu: f64,
    ledger_cpu: f64,
    client_cpu: f64,
    postgres_cpu: f64,
    usage_batches: f64,
    usage_seconds: f64,
    written_bytes: f64,
}

async fn readings(http: &reqwest::Client, server: &Server) -> Readings {
    let metrics = http.get(format!("{}/metrics", server.base)).send().await.expect("metrics").text().await.expect("metrics text");
    let pid = server.pid();
    Readings {
        at: Instant::now(),
        server_cpu: cpu_seconds(&format!("/proc/{pid}/stat")),
        ledger_cpu: thread_cpu_seconds(pid, "ledger"),
        client_cpu: cpu_seconds("/proc/self/stat"),
        postgres_cpu: processes_cpu_seconds("postgres"),
        usage_batches: metric(&metrics, "subledger_ledger_usage_batch_seconds_count"),
        usage_seconds: metric(&metrics, "subledger_ledger_usage_batch_seconds_sum"),
        written_bytes: storage_write_bytes(pid),
    }
}

/// Runs `connections` connections for `seconds`.
async fn phase(load: &Arc<Load>, connections: usize, seconds: u64) -> Tally {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..connections).map(|_| tokio::spawn(connection(load.clone(), stop.clone()))).collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for worker in workers {
        tally.absorb(worker.await.expect("connection"));
    }
    tally
}

/// One measured run: a fresh database and server, one setting.
struct Run {
    accounts_per_batch: usize,
    connections: usize,
    events_per_second: f64,
    batches: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// Mean time the ledger worker spent on one batch (rate, record, commit).
    worker_ms: f64,
    /// Share of wall time the ledger thread was on a CPU.
    ledger_busy: f64,
    /// CPU per accepted event, in µs.
    server_us: f64,
    ledger_us: f64,
    client_us: f64,
    postgres_us: f64,
    /// Storage writes caused by the server per batch (KiB), WAL size at the end (MiB).
    written_kib: f64,
    wal_mib: f64,
    peak_rss_mib: f64,
    tally: Tally,
}

/// A database of the run's own: its URL, and what to remove afterwards.
struct Database {
    url: String,
    dir: std::path::PathBuf,
    postgres_name: Option<String>,
}

impl Database {
    fn create(args: &Args, run: usize) -> Database {
        let dir = temp_dir(&format!("usage-bench-{run}"));
        match args.target.backend {
            Backend::Sqlite => Database { url: format!("sqlite://{}/usage.db", dir.display()), dir, postgres_name: None },
            Backend::Postgres => {
                let name = format!("subledger_usage_bench_{}_{run}", std::process::id());
                psql(&args.target.postgres_url, &format!("CREATE DATABASE {name}"));
                set_database_settings(&args.target.postgres_url, &name, &args.postgres_setting);
                Database { url: with_database(&args.target.postgres_url, &name), dir, postgres_name: Some(name) }
            }
        }
    }

    fn drop_it(self, args: &Args) {
        if let Some(name) = &self.postgres_name {
            psql(&args.target.postgres_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Set-up (a tenant with money, funded accounts, a tariff per product), warm-up, then one measured phase.
async fn run(args: &Args, database: &Database, accounts_per_batch: usize, connections: usize) -> Run {
    let tenant = run_cli(&args.target.server, &database.url, &["tenant", "create", "--name", "Usage Bench", "--json"]).await;
    let tenant_id = tenant["tenant_id"].as_str().expect("tenant id").to_owned();
    run_cli(&args.target.server, &database.url, &["wallet", "deposit", "--tenant", &tenant_id, "--amount", "10000000000.00", "--json"]).await;
    let server = Server::start(&args.target.server, &database.url).await;
    let http = reqwest::Client::new();
    let token = tenant["api_token"].as_str().expect("api token").to_owned();
    let post = |path: &str, body: Value| http.post(format!("{}{path}", server.base)).bearer_auth(&token).json(&body);
    let usernames: Vec<String> = (0..args.accounts).map(|i| format!("usage{i:06}")).collect();
    for name in &usernames {
        let created = post("/v1/accounts", json!({"username": name, "daily_quota": 1_000_000_000})).send().await.expect("create account");
        assert_eq!(created.status(), 201, "create {name}: {}", created.text().await.unwrap_or_default());
        let funded = post("/v1/transfers", json!({"from": {}, "to": {"username": name}, "amount": "1000000.00"})).header("Idempotency-Key", format!("fund:{name}")).send().await.expect("fund account");
        assert_eq!(funded.status(), 201, "fund {name}: {}", funded.text().await.unwrap_or_default());
    }
    for product in &args.products {
        let model = json!({"model": "per_unit", "price": args.price, "increment": "1"});
        let set = post("/v1/tariffs", json!({"product": product, "model": model, "effective_from": "2020-01-01T00:00:00Z"})).send().await.expect("set tariff");
        assert_eq!(set.status(), 201, "tariff {product}: {}", set.text().await.unwrap_or_default());
    }
    let load = Arc::new(Load {
        base: server.base.clone(),
        endpoint: Endpoint::post_json(&server.base, "/v1/usage").header(AUTHORIZATION, &format!("Bearer {token}")),
        usernames,
        products: args.products.clone(),
        batch: args.batch,
        accounts_per_batch,
        next_id: AtomicU64::new(1),
    });
    eprintln!("set-up done: {} funded accounts; batches of {} events over {accounts_per_batch} accounts, {connections} connections; server pid {}", args.accounts, args.batch, server.pid());

    let mut tally = phase(&load, connections, args.warmup).await;
    let before = readings(&http, &server).await;
    let mut measured = phase(&load, connections, args.seconds).await;
    let after = readings(&http, &server).await;
    let elapsed = after.at.duration_since(before.at).as_secs_f64();
    let events = (measured.accepted as f64).max(1.0);
    measured.latencies_us.sort_unstable();
    let batches = (after.usage_batches - before.usage_batches).max(1.0);
    let per_event_us = |cpu: f64| 1e6 * cpu / events;
    let result = Run {
        accounts_per_batch,
        connections,
        events_per_second: measured.accepted as f64 / elapsed,
        batches: measured.batches,
        p50_ms: percentile_ms(&measured.latencies_us, 0.50),
        p99_ms: percentile_ms(&measured.latencies_us, 0.99),
        worker_ms: 1000.0 * (after.usage_seconds - before.usage_seconds) / batches,
        ledger_busy: (after.ledger_cpu - before.ledger_cpu) / elapsed,
        server_us: per_event_us(after.server_cpu - before.server_cpu),
        ledger_us: per_event_us(after.ledger_cpu - before.ledger_cpu),
        client_us: per_event_us(after.client_cpu - before.client_cpu),
        postgres_us: per_event_us(after.postgres_cpu - before.postgres_cpu),
        written_kib: (after.written_bytes - before.written_bytes) / 1024.0 / batches,
        wal_mib: file_mib(&database.dir.join("usage.db-wal")),
        peak_rss_mib: server.peak_rss_mib(),
        tally: Tally::default(),
    };
    tally.absorb(measured);
    eprintln!(
        "  {:.0} events/s ({} batches), p50 {:.1} ms, p99 {:.1} ms; worker {:.2} ms/batch, ledger thread {:.0}% busy; CPU per event: server {:.2} µs (ledger thread {:.2}), client {:.2} µs{}",
        result.events_per_second,
        result.batches,
        result.p50_ms,
        result.p99_ms,
        result.worker_ms,
        100.0 * result.ledger_busy,
        result.server_us,
        result.ledger_us,
        result.client_us,
        if args.target.backend == Backend::Postgres { format!(", PostgreSQL {:.2} µs", result.postgres_us) } else { String::new() },
    );
    eprintln!("  server wrote {:.0} KiB to storage per batch; peak RSS {:.1} MiB", result.written_kib, result.peak_rss_mib);
    if args.target.backend == Backend::Sqlite {
        eprintln!("  WAL file {:.0} MiB, database {:.0} MiB", result.wal_mib, file_mib(&database.dir.join("usage.db")));
    }
    Run { tally, ..result }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!((1..=1000).contains(&args.batch), "--batch must be 1 to 1000");
    let spreads: Vec<usize> = if args.accounts_per_batch.is_empty() { vec![args.batch] } else { args.accounts_per_batch.clone() };
    let mut runs = Vec::new();
    for spread in spreads {
        for &connections in &args.connections {
            let database = Database::create(&args, runs.len());
            runs.push(run(&args, &database, spread.clamp(1, args.accounts), connections).await);
            if args.keep_database {
                println!("database kept: {}", database.url);
            } else {
                database.drop_it(&args);
            }
        }
    }

    let mut problems = Tally::default();
    for run in &mut runs {
        problems.absorb(std::mem::take(&mut run.tally));
    }
    println!("backend {:?}, {} accounts, batches of {} events, products {}, {} s per run", args.target.backend, args.accounts, args.batch, args.products.join(", "), args.seconds);
    println!("| accounts/batch | connections | events/s | batch p50 / p99 | worker/batch | ledger thread busy | server CPU/event (ledger) | written/batch | peak RSS |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &runs {
        println!(
            "| {} | {} | {:.0} | {:.1} / {:.1} ms | {:.1} ms | {:.0}% | {:.1} µs ({:.1}){} | {:.0} KiB | {:.0} MiB |",
            r.accounts_per_batch,
            r.connections,
            r.events_per_second,
            r.p50_ms,
            r.p99_ms,
            r.worker_ms,
            100.0 * r.ledger_busy,
            r.server_us,
            r.ledger_us,
            if args.target.backend == Backend::Postgres { format!(" + PostgreSQL {:.1} µs", r.postgres_us) } else { String::new() },
            r.written_kib,
            r.peak_rss_mib
        );
    }
    let best = runs.iter().max_by(|a, b| a.events_per_second.total_cmp(&b.events_per_second)).expect("a run");
    let peak_rss = runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
    println!(
        "best: {:.0} events/s at {} connections, {} accounts per batch (p99 {:.1} ms); peak server RSS {peak_rss:.1} MiB",
        best.events_per_second, best.connections, best.accounts_per_batch, best.p99_ms
    );
    println!("events sent: {} accepted, {} duplicate, {} rejected; {} failed requests", problems.accepted, problems.duplicates, problems.rejected, problems.failures);
    if let Some(problem) = &problems.first_problem {
        println!("first problem: {problem}");
    }
    let all_accepted = problems.duplicates == 0 && problems.rejected == 0 && problems.failures == 0;
    let mut verdicts = vec![(format!("RSS {peak_rss:.0} MiB <= 300 MiB"), peak_rss <= 300.0), ("every event accepted".to_owned(), all_accepted)];
    if args.target.backend == Backend::Sqlite {
        verdicts.push((format!("{:.0} events/s >= 100,000", best.events_per_second), best.events_per_second >= 100_000.0));
    }
    for (what, met) in verdicts {
        println!("{}  {what}", if met { "MET " } else { "MISS" });
    }
}
