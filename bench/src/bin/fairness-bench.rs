//! fairness-bench: tenant A's `transferIn` latency while tenant B's month
//! closes, against the same latency with no close running, in one run.
//!
//! Set-up over the native API: tenant A with `--accounts` sub-accounts and
//! money; per round a tenant B with `--close-accounts` sub-accounts (every
//! `--postpaid-every`-th postpaid, the rest funded), a per-unit SMS tariff,
//! and `--events-per-account` events each in the previous month. Then, per
//! round: a baseline phase of A's signed SendCloud `transferIn` load (the lean
//! client, `--connections` keep-alive connections), and a close phase: the
//! same load, with B's `POST /v1/bills/close` sent one second in. It prints,
//! for the transfers sent while the close ran, p50/p99/max latency and the
//! transfer rate, against the baseline's; the target is a p99 at most 2× the
//! baseline's.
//!
//!     bench/run.sh fairness sqlite    # or postgres; flags after the backend, see --help
//!     bench/run.sh fairness sqlite --server-arg=--close-chunk-accounts=200

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hyper::header::AUTHORIZATION;
use serde_json::{Value, json};
use subledger_bench::client::{Connection, Endpoint};
use subledger_bench::load::{Phase, TransferIn, drive, drive_until};
use subledger_bench::{Backend, Server, Target, psql, run_cli, temp_dir, with_database};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "transferIn latency of one tenant while another tenant's month closes")]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Tenant A's concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Worker threads of the client's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Tenant A's sub-accounts receiving transfers.
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    /// Tenant B's sub-accounts, each billed by the close.
    #[arg(long, default_value_t = 10_000)]
    close_accounts: usize,
    /// Usage events per B account in the closed month.
    #[arg(long, default_value_t = 2)]
    events_per_account: usize,
    /// Every this many B accounts one is postpaid (settled at close).
    #[arg(long, default_value_t = 2)]
    postpaid_every: usize,
    /// Seconds of each baseline phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds (each with a tenant B of its own: a month closes once).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Connections used for the set-up calls.
    #[arg(long, default_value_t = 16)]
    setup_connections: usize,
    /// A flag for `subledger serve` (repeatable), e.g.
    /// `--server-arg=--close-chunk-accounts=200`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

/// One set-up call of the native API.
struct Call {
    method: hyper::Method,
    path: String,
    body: Value,
    /// Money-moving calls carry an Idempotency-Key.
    key: Option<String>,
}

impl Call {
    fn new(method: hyper::Method, path: impl Into<String>, body: Value) -> Call {
        Call { method, path: path.into(), body, key: None }
    }
}

/// Makes `calls` to the native API of `base` with `token`, `connections` at
/// a time; each must answer `expected`.
async fn native_calls(base: &str, token: &str, connections: usize, calls: Vec<Call>, expected: u16) {
    let calls = Arc::new(std::sync::Mutex::new(calls.into_iter()));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (base, token, calls) = (base.to_owned(), token.to_owned(), calls.clone());
            tokio::spawn(async move {
                let mut connection = Connection::open(&base).await.expect("connect");
                loop {
                    let Some(call) = calls.lock().expect("calls").next() else { break };
                    let mut endpoint = Endpoint::new(call.method, &base, &call.path).header(AUTHORIZATION, &format!("Bearer {token}")).header(hyper::header::CONTENT_TYPE, "application/json");
                    if let Some(key) = &call.key {
                        endpoint = endpoint.header(hyper::header::HeaderName::from_static("idempotency-key"), key);
                    }
                    let answer = connection.send(endpoint.request(call.body.to_string())).await.expect("an answer");
                    assert_eq!(answer.status.as_u16(), expected, "{}: {}", call.path, String::from_utf8_lossy(&answer.body));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a set-up worker");
    }
}

/// A tenant made with the CLI: its API token, app id and key.
struct Tenant {
    token: String,
    app_id: String,
    app_key: String,
    public_id: String,
}

async fn tenant(args: &Args, url: &str, name: &str, deposit: &str) -> Tenant {
    let created = run_cli(&args.target.server, url, &["tenant", "create", "--name", name, "--json"]).await;
    let public_id = created["tenant_id"].as_str().expect("tenant id").to_owned();
    run_cli(&args.target.server, url, &["wallet", "deposit", "--tenant", &public_id, "--amount", deposit, "--json"]).await;
    let text = |field: &str| created[field].as_str().expect(field).to_owned();
    Tenant { token: text("api_token"), app_id: text("app_id"), app_key: text("app_key"), public_id }
}

/// Tenant B of one round: accounts, funds, a tariff, and usage in `month`.
async fn closing_tenant(args: &Args, server: &Server, url: &str, round: usize, month_start: &str) -> Tenant {
    let b = tenant(args, url, &format!("B{round}"), "1000000000.00").await;
    let names: Vec<String> = (0..args.close_accounts).map(|i| format!("b{round}x{i:06}")).collect();
    let base = &server.base;
    let conns = args.setup_connections;
    native_calls(base, &b.token, conns, names.iter().map(|n| Call::new(hyper::Method::POST, "/v1/accounts", json!({"username": n, "daily_quota": 1_000_000_000}))).collect(), 201).await;
    let postpaid = |i: usize| args.postpaid_every > 0 && i.is_multiple_of(args.postpaid_every);
    let billing = names.iter().enumerate().filter(|(i, _)| postpaid(*i)).map(|(_, n)| Call::new(hyper::Method::PUT, format!("/v1/accounts/{n}/billing"), json!({"mode": "postpaid"}))).collect();
    native_calls(base, &b.token, conns, billing, 204).await;
    let funding = names
        .iter()
        .enumerate()
        .filter(|(i, _)| !postpaid(*i))
        .map(|(_, n)| Call { key: Some(format!("fund-{n}")), ..Call::new(hyper::Method::POST, "/v1/transfers", json!({"from": {}, "to": {"username": n}, "amount": "1000.00"})) })
        .collect();
    native_calls(base, &b.token, conns, funding, 201).await;
    let tariff = json!({"product": "sms", "model": {"model": "per_unit", "price": "0.05", "increment": "1"}, "effective_from": "2020-01-01T00:00:00Z"});
    native_calls(base, &b.token, 1, vec![Call::new(hyper::Method::POST, "/v1/tariffs", tariff)], 201).await;
    let mut batches = Vec::new();
    let events: Vec<Value> = names
        .iter()
        .flat_map(|n| (0..args.events_per_account).map(move |e| (n, e)))
        .enumerate()
        .map(|(i, (n, _))| json!({"id": format!("r{round}e{i:09}"), "account": n, "product": "sms", "quantity": 1, "occurred_at": month_start}))
        .collect();
    for chunk in events.chunks(1_000) {
        batches.push(Call::new(hyper::Method::POST, "/v1/usage", json!({"events": chunk})));
    }
    native_calls(base, &b.token, 4, batches, 200).await;
    b
}

/// Latencies of the transfers sent within `[from, to)` (µs from the phase's start).
fn window(phase: &Phase, from_us: u64, to_us: u64) -> Vec<u64> {
    let mut latencies: Vec<u64> = phase.sent_at_us.iter().zip(&phase.latencies_us).filter(|(sent, _)| (from_us..to_us).contains(sent)).map(|(_, latency)| *latency).collect();
    latencies.sort_unstable();
    latencies
}

fn main() {
    let args = Args::parse();
    subledger_bench::client::runtime(args.client_threads).block_on(run(args));
}

async fn run(args: Args) {
    let dir = temp_dir("fairness-bench");
    let postgres_name = format!("subledger_fairness_{}", std::process::id());
    let url = match args.target.backend {
        Backend::Sqlite => format!("sqlite://{}/fairness.db", dir.display()),
        Backend::Postgres => {
            psql(&args.target.postgres_url, &format!("CREATE DATABASE {postgres_name}"));
            with_database(&args.target.postgres_url, &postgres_name)
        }
    };
    let a = tenant(&args, &url, "A", "100000000.00").await;
    let server_args: Vec<&str> = args.server_args.iter().map(String::as_str).collect();
    let server = Server::start_with(&args.target.server, &url, &server_args).await;
    let usernames: Vec<Arc<str>> = (0..args.accounts).map(|i| Arc::from(format!("a{i:06}"))).collect();
    native_calls(&server.base, &a.token, args.setup_connections, usernames.iter().map(|n| Call::new(hyper::Method::POST, "/v1/accounts", json!({"username": &**n}))).collect(), 201).await;
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").expect("the tenants' zone");
    let this_month = jiff::Timestamp::now().to_zoned(zone).date().first_of_month();
    let previous = this_month.checked_sub(jiff::Span::new().months(1)).expect("a previous month");
    let month = previous.strftime("%Y-%m").to_string();
    let month_start = previous.at(12, 0, 0, 0).to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone")).expect("noon").timestamp().to_string();
    let started = Instant::now();
    let mut closers = Vec::new();
    for round in 0..args.rounds {
        closers.push(closing_tenant(&args, &server, &url, round, &month_start).await);
    }
    eprintln!(
        "set-up done in {:.0} s: tenant A with {} accounts; {} tenant(s) B with {} accounts and {} events each in {month}; server pid {}, flags {:?}",
        started.elapsed().as_secs_f64(),
        args.accounts,
        args.rounds,
        args.close_accounts,
        args.events_per_account,
        server.pid(),
        args.server_args
    );

    let transfer_in = Arc::new(Endpoint::post_form(&server.base, "/api/subAccount/transferIn"));
    let (app_id, app_key): (Arc<str>, Arc<str>) = (Arc::from(a.app_id.as_str()), Arc::from(a.app_key.as_str()));
    let load = |worker: usize| TransferIn::of_worker(transfer_in.clone(), app_id.clone(), app_key.clone(), &usernames, worker, args.connections);
    // Warm-up.
    drive(&server.base, server.pid(), args.connections, 2, load).await;

    println!("{:>5} {:>22} {:>22} {:>9} {:>14} {:>14} {:>8}", "round", "baseline p50/p99 (ms)", "during p50/p99 (ms)", "max (ms)", "baseline tr/s", "during tr/s", "p99 ×");
    let mut ratios = Vec::new();
    for (round, b) in closers.iter().enumerate() {
        let baseline = drive(&server.base, server.pid(), args.connections, args.seconds, load).await;
        let (close_from, close_to) = (Arc::new(std::sync::Mutex::new(None)), Arc::new(std::sync::Mutex::new(None)));
        let close = {
            let (base, token, month, from, to) = (server.base.clone(), b.token.clone(), month.clone(), close_from.clone(), close_to.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut connection = Connection::open(&base).await.expect("connect");
                let endpoint = Endpoint::post_json(&base, "/v1/bills/close").header(AUTHORIZATION, &format!("Bearer {token}"));
                *from.lock().expect("from") = Some(Instant::now());
                let answer = connection.send(endpoint.request(json!({"month": month}).to_string())).await.expect("the close answers");
                *to.lock().expect("to") = Some(Instant::now());
                assert_eq!(answer.status.as_u16(), 200, "close: {}", String::from_utf8_lossy(&answer.body));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        let during = drive_until(&server.base, server.pid(), args.connections, load, close).await;
        let origin = during.started.expect("a started phase");
        let from = close_from.lock().expect("from").expect("the close was sent").duration_since(origin);
        let to = close_to.lock().expect("to").expect("the close answered").duration_since(origin);
        let latencies = window(&during, from.as_micros() as u64, to.as_micros() as u64);
        let mut base_sorted = baseline.latencies_us.clone();
        base_sorted.sort_unstable();
        let p = |sorted: &[u64], q| subledger_bench::percentile_ms(sorted, q);
        let ratio = p(&latencies, 0.99) / p(&base_sorted, 0.99).max(f64::MIN_POSITIVE);
        ratios.push(ratio);
        println!(
            "{:>5} {:>22} {:>22} {:>9.1} {:>14.0} {:>14.0} {:>8.2}",
            round + 1,
            format!("{:.2} / {:.2}", p(&base_sorted, 0.5), p(&base_sorted, 0.99)),
            format!("{:.2} / {:.2}", p(&latencies, 0.5), p(&latencies, 0.99)),
            latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
            baseline.rate(),
            latencies.len() as f64 / (to - from).as_secs_f64(),
            ratio
        );
        eprintln!(
            "round {}: tenant {}'s close of {month} took {:.3} s; {} transfers sent meanwhile; failures {} (baseline {})",
            round + 1,
            b.public_id,
            (to - from).as_secs_f64(),
            latencies.len(),
            during.failures,
            baseline.failures
        );
    }
    let worst = ratios.iter().copied().fold(0.0, f64::max);
    println!("{}  p99 during a close / baseline p99: worst {worst:.2} (target ≤ 2)", if worst <= 2.0 { "MET  " } else { "UNMET" });
    drop(server);
    if args.target.backend == Backend::Postgres {
        psql(&args.target.postgres_url, &format!("DROP DATABASE IF EXISTS {postgres_name} WITH (FORCE)"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
