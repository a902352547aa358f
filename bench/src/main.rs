//! subledger-bench: drives the real server over HTTP and reports ratios.
//!
//! One run, one machine, one client: it first measures the server's `/healthz`
//! rate, then signed SendCloud `transferIn` calls from one tenant (a single
//! hot parent wallet) to many sub-accounts, at the same concurrency. It prints
//! transfers/s, latency percentiles, the ratio to `/healthz`, and the
//! server's peak RSS. On PostgreSQL it also runs `pgbench -b tpcb-like` at the
//! same client count against the same PostgreSQL server and prints that ratio.
//! Absolute numbers are noise on a shared 2-core machine; the ratios are the result.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use subledger_bench::{Backend, Target};
use subledger_bench::{Server, psql, run_cli, temp_dir, with_database};

#[derive(Parser, Debug)]
#[command(about = "Benchmark subledger's SendCloud transferIn hot path against /healthz (and pgbench on PostgreSQL)")]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Sub-accounts receiving transfers.
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds of (/healthz phase, transferIn phase), interleaved so that both
    /// rates see the same machine; rates are summed over all rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// pgbench scale factor (PostgreSQL only).
    #[arg(long, default_value_t = 64)]
    pgbench_scale: u32,
    /// Leave the benchmark's database behind for inspection (and skip pgbench).
    #[arg(long)]
    keep_database: bool,
}

/// Latencies and count of one measured phase.
struct Phase {
    requests: u64,
    failures: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Phase {
    fn empty() -> Phase {
        Phase { requests: 0, failures: 0, elapsed: Duration::ZERO, latencies_us: Vec::new() }
    }

    fn absorb(&mut self, other: Phase) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        subledger_bench::percentile_ms(&sorted, p)
    }
}

/// Runs `connections` workers for `seconds`, each calling `request(worker, i)`
/// in a loop on its own keep-alive connection.
async fn drive<F, Fut>(connections: usize, seconds: u64, request: F) -> Phase
where
    F: Fn(reqwest::Client, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let (request, stop) = (request.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
                let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::with_capacity(200_000));
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    if request(http.clone(), worker, i).await {
                        ok += 1;
                        latencies.push(sent.elapsed().as_micros() as u64);
                    } else {
                        failed += 1;
                    }
                    i += 1;
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut phase = Phase { requests: 0, failures: 0, elapsed: Duration::ZERO, latencies_us: Vec::new() };
    for worker in workers {
        let (ok, failed, latencies) = worker.await.expect("worker");
        phase.requests += ok;
        phase.failures += failed;
        phase.latencies_us.extend(latencies);
    }
    phase.elapsed = started.elapsed();
    phase
}

/// `pgbench -b tpcb-like` at the same client count; returns its tps.
fn pgbench(server_url: &str, clients: usize, seconds: u64, scale: u32) -> f64 {
    let database = "subledger_bench_pgbench";
    psql(server_url, &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
    psql(server_url, &format!("CREATE DATABASE {database}"));
    let url = with_database(server_url, database);
    eprintln!("pgbench: initializing scale {scale} …");
    let init = std::process::Command::new("pgbench").args(["-i", "-q", "-s", &scale.to_string(), &url]).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("pgbench runs");
    assert!(init.success(), "pgbench -i");
    let output = std::process::Command::new("pgbench").args(["-b", "tpcb-like", "-c", &clients.to_string(), "-j", "2", "-T", &seconds.to_string(), &url]).output().expect("pgbench runs");
    let text = String::from_utf8_lossy(&output.stdout);
    psql(server_url, &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
    text.lines().find_map(|l| l.strip_prefix("tps = ").and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.parse().ok())).unwrap_or_else(|| panic!("no tps in pgbench output:\n{text}"))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let _dir = temp_dir("bench");
    let database_url = match args.target.backend {
        Backend::Sqlite => format!("sqlite://{}/bench.db", _dir.display()),
        Backend::Postgres => {
            let name = "subledger_bench";
            psql(&args.target.postgres_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            psql(&args.target.postgres_url, &format!("CREATE DATABASE {name}"));
            with_database(&args.target.postgres_url, name)
        }
    };

    // Set-up: one tenant, funded, with its sub-accounts; through the CLI and native API.
    let tenant = run_cli(&args.target.server, &database_url, &["tenant", "create", "--name", "Bench Reseller", "--json"]).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    run_cli(&args.target.server, &database_url, &["wallet", "deposit", "--tenant", &tenant_id, "--amount", "1000000000.00", "--json"]).await;
    let server = Server::start(&args.target.server, &database_url).await;
    let http = reqwest::Client::new();
    let api_token = tenant["api_token"].as_str().unwrap().to_owned();
    let usernames: Arc<Vec<String>> = Arc::new((0..args.accounts).map(|i| format!("bench{i:06}")).collect());
    for name in usernames.iter() {
        let response = http.post(format!("{}/v1/accounts", server.base)).bearer_auth(&api_token).json(&json!({"username": name})).send().await.expect("create account");
        assert_eq!(response.status(), 201);
    }
    eprintln!("set-up done: {} accounts on {:?}; warming up …", args.accounts, args.target.backend);

    let base = Arc::new(server.base.clone());
    let healthz = {
        let base = base.clone();
        move |http: reqwest::Client, _: usize, _: u64| {
            let url = format!("{base}/healthz");
            // Read the whole answer, as the transfer phase does.
            async move {
                match http.get(url).send().await {
                    Ok(response) if response.status().is_success() => response.text().await.is_ok(),
                    _ => false,
                }
            }
        }
    };
    let app_id = Arc::new(tenant["app_id"].as_str().unwrap().to_owned());
    let app_key = Arc::new(tenant["app_key"].as_str().unwrap().to_owned());
    let connections = args.connections;
    let last_millis: Arc<Vec<AtomicI64>> = Arc::new((0..connections).map(|_| AtomicI64::new(0)).collect());
    let transfer = {
        let (base, usernames) = (base.clone(), usernames.clone());
        move |http: reqwest::Client, worker: usize, i: u64| {
            // Worker w sends to accounts w, w+connections, …; no two workers share
            // an account, so (username, millisecond) makes every signature unique.
            let accounts_of_worker = (usernames.len() - worker % usernames.len()).div_ceil(connections).max(1);
            let index = (worker + connections * (i as usize % accounts_of_worker)) % usernames.len();
            let params = vec![
                ("appId".to_owned(), app_id.to_string()),
                ("username".to_owned(), usernames[index].clone()),
                ("money".to_owned(), "1.00".to_owned()),
                ("timestamp".to_owned(), unique_millis(&last_millis[worker]).to_string()),
            ];
            let body = subledger_http::sendcloud::signature::signed_form(&app_key, &params);
            let url = format!("{base}/api/subAccount/transferIn");
            async move {
                let Ok(response) = http.post(url).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await else { return false };
                response.json::<Value>().await.is_ok_and(|reply| reply["statusCode"] == 200)
            }
        }
    };
    // Warm both paths, then interleave the measured phases.
    drive(args.connections, 2, healthz.clone()).await;
    drive(args.connections, 2, transfer.clone()).await;
    let mut health = Phase::empty();
    let mut transfers = Phase::empty();
    let mut round_ratios = Vec::new();
    for round in 1..=args.rounds {
        let h = drive(args.connections, args.seconds, healthz.clone()).await;
        let t = drive(args.connections, args.seconds, transfer.clone()).await;
        eprintln!("round {round}: /healthz {:.0} req/s, transferIn {:.0} transfers/s, ratio {:.3}", h.rate(), t.rate(), t.rate() / h.rate());
        round_ratios.push(t.rate() / h.rate());
        health.absorb(h);
        transfers.absorb(t);
    }
    let peak_rss = server.peak_rss_mib();
    let metrics = http.get(format!("{}/metrics", server.base)).send().await.expect("metrics").text().await.expect("metrics text");
    let metric = |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(0.0);
    let batches = metric("subledger_ledger_batch_transfers_count ");
    let batch_mean = metric("subledger_ledger_batch_transfers_sum ") / batches.max(1.0);
    let commit_mean_ms = 1000.0 * metric("subledger_ledger_commit_seconds_sum ") / metric("subledger_ledger_commit_seconds_count ").max(1.0);

    let ratio = transfers.rate() / health.rate();
    println!("backend              {:?}", args.target.backend);
    println!("connections          {}", args.connections);
    println!("sub-accounts         {}", args.accounts);
    println!("/healthz             {:.0} req/s", health.rate());
    println!("transferIn           {:.0} transfers/s ({} failed)", transfers.rate(), transfers.failures);
    println!("latency p50 / p99    {:.2} ms / {:.2} ms", transfers.percentile_ms(0.50), transfers.percentile_ms(0.99));
    println!("ratio to /healthz    {ratio:.3} (rounds: {})", round_ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", "));
    println!("peak server RSS      {peak_rss:.1} MiB");
    println!("ledger batches       {batches:.0}, mean {batch_mean:.1} transfers, mean commit {commit_mean_ms:.2} ms");
    let mut verdicts = vec![(format!("RSS {peak_rss:.0} MiB <= 150 MiB"), peak_rss <= 150.0)];
    if args.target.backend == Backend::Sqlite {
        verdicts.push((format!("ratio {ratio:.3} >= 0.25 x /healthz"), ratio >= 0.25));
    }
    drop(server);
    if args.keep_database {
        println!("database kept: {database_url}");
        return;
    }
    if args.target.backend == Backend::Postgres {
        let tps = pgbench(&args.target.postgres_url, args.connections, args.seconds, args.pgbench_scale);
        let pg_ratio = transfers.rate() / tps;
        println!("pgbench tpcb-like    {tps:.0} tps (scale {}, {} clients)", args.pgbench_scale, args.connections);
        println!("ratio to pgbench     {pg_ratio:.2}");
        verdicts.push((format!("ratio {pg_ratio:.2} >= 3 x pgbench tpcb-like"), pg_ratio >= 3.0));
        psql(&args.target.postgres_url, "DROP DATABASE IF EXISTS subledger_bench WITH (FORCE)");
    }
    for (what, met) in verdicts {
        println!("{}  {what}", if met { "MET " } else { "MISS" });
    }
    let _ = std::fs::remove_dir_all(&_dir);
}

/// Milliseconds, never the same twice for one worker (`last` is that worker's).
fn unique_millis(last: &AtomicI64) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let next = now.max(last.load(Ordering::Relaxed) + 1);
    last.store(next, Ordering::Relaxed);
    next
}
