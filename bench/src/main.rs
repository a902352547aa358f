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

use clap::Parser;
use hyper::body::Bytes;
use hyper::header::AUTHORIZATION;
use serde_json::json;
use subledger_bench::client::{Connection, Endpoint};
use subledger_bench::load::{Healthz, Phase, TransferIn, drive};
use subledger_bench::{Backend, Target};
use subledger_bench::{Server, psql, run_cli, temp_dir, with_database};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Benchmark subledger's SendCloud transferIn hot path against /healthz (and pgbench on PostgreSQL)")]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Concurrent client connections (one keep-alive connection per worker).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Worker threads of the client's runtime. The server runs on the same
    /// cores: a client is not the bottleneck when more threads do not raise
    /// the `/healthz` rate (see bench/README.md).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Before the measured rounds, run both phases once per round on a client
    /// runtime of each of these thread counts in turn (e.g. `1,2,4`) and print
    /// their rates: when more client threads do not raise them, the client is
    /// not what limits them.
    #[arg(long, value_delimiter = ',')]
    client_threads_check: Vec<usize>,
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
    /// Another server binary to compare with (e.g. a build of the commit
    /// before a change), over a database of its own: its rounds alternate
    /// with the server's, so that both see the same machine.
    #[arg(long)]
    baseline_server: Option<String>,
}

/// Everything the two phases need, cheap to clone onto another runtime.
#[derive(Clone)]
struct Loads {
    base: String,
    server_pid: u32,
    connections: usize,
    healthz: Arc<Endpoint>,
    transfer_in: Arc<Endpoint>,
    app_id: Arc<str>,
    app_key: Arc<str>,
    usernames: Arc<Vec<Arc<str>>>,
}

impl Loads {
    async fn healthz_phase(&self, seconds: u64) -> Phase {
        drive(&self.base, self.server_pid, self.connections, seconds, |_worker| Healthz { endpoint: self.healthz.clone() }).await
    }

    async fn transfer_phase(&self, seconds: u64) -> Phase {
        let transfer_in = |worker: usize| TransferIn::of_worker(self.transfer_in.clone(), self.app_id.clone(), self.app_key.clone(), &self.usernames, worker, self.connections);
        drive(&self.base, self.server_pid, self.connections, seconds, transfer_in).await
    }
}

/// Both phases on client runtimes of each `--client-threads-check` size,
/// interleaved over `--rounds`; prints each size's rates and CPU.
async fn check_client_threads(loads: &Loads, args: &Args) {
    let runtimes: Vec<_> = args.client_threads_check.iter().map(|&threads| (threads, subledger_bench::client::runtime(threads))).collect();
    let mut totals: Vec<(Phase, Phase)> = runtimes.iter().map(|_| (Phase::empty(), Phase::empty())).collect();
    for round in 1..=args.rounds {
        for ((threads, runtime), (health, transfers)) in runtimes.iter().zip(&mut totals) {
            let (loads, seconds) = (loads.clone(), args.seconds);
            // Spawned there, the phase's connections and workers run on that runtime's threads only.
            let (h, t) = runtime.spawn(async move { (loads.healthz_phase(seconds).await, loads.transfer_phase(seconds).await) }).await.expect("check phase");
            eprintln!("check round {round}, {threads} client threads: /healthz {:.0} req/s, transferIn {:.0} transfers/s", h.rate(), t.rate());
            health.absorb(h);
            transfers.absorb(t);
        }
    }
    for ((threads, _), (health, transfers)) in runtimes.iter().zip(&totals) {
        println!("client threads {threads}: /healthz {:.0} req/s ({}), transferIn {:.0} transfers/s ({})", health.rate(), health.cpu_summary(), transfers.rate(), transfers.cpu_summary());
    }
    // A runtime may not be dropped inside another's async context.
    for (_, runtime) in runtimes {
        runtime.shutdown_background();
    }
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

fn main() {
    let args = Args::parse();
    subledger_bench::client::runtime(args.client_threads).block_on(run(args));
}

/// One server over a database of its own, set up and ready to load.
struct Deployment {
    server: Server,
    loads: Loads,
    database_url: String,
    /// The PostgreSQL database to drop afterwards.
    postgres_database: Option<String>,
}

/// Starts `binary` over a fresh database named after `name`, with one funded
/// tenant and its sub-accounts (through the CLI and native API).
async fn deploy(args: &Args, binary: &str, name: &str, dir: &std::path::Path) -> Deployment {
    let (database_url, postgres_database) = match args.target.backend {
        Backend::Sqlite => (format!("sqlite://{}/{name}.db", dir.display()), None),
        Backend::Postgres => {
            let database = format!("subledger_{name}");
            psql(&args.target.postgres_url, &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
            psql(&args.target.postgres_url, &format!("CREATE DATABASE {database}"));
            (with_database(&args.target.postgres_url, &database), Some(database))
        }
    };
    let tenant = run_cli(binary, &database_url, &["tenant", "create", "--name", "Bench Reseller", "--json"]).await;
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    run_cli(binary, &database_url, &["wallet", "deposit", "--tenant", &tenant_id, "--amount", "1000000000.00", "--json"]).await;
    let server = Server::start(binary, &database_url).await;
    let base = server.base.clone();
    let mut setup = Connection::open(&base).await.expect("connect to the server");
    let api_token = tenant["api_token"].as_str().unwrap();
    let create_account = Endpoint::post_json(&base, "/v1/accounts").header(AUTHORIZATION, &format!("Bearer {api_token}"));
    let usernames: Vec<Arc<str>> = (0..args.accounts).map(|i| Arc::from(format!("bench{i:06}"))).collect();
    for username in &usernames {
        let answer = setup.send(create_account.request(json!({"username": &**username}).to_string())).await.expect("create account");
        assert_eq!(answer.status, 201, "create {username}: {}", String::from_utf8_lossy(&answer.body));
    }
    let loads = Loads {
        base: base.clone(),
        server_pid: server.pid(),
        connections: args.connections,
        healthz: Arc::new(Endpoint::get(&base, "/healthz")),
        transfer_in: Arc::new(Endpoint::post_form(&base, "/api/subAccount/transferIn")),
        app_id: Arc::from(tenant["app_id"].as_str().unwrap()),
        app_key: Arc::from(tenant["app_key"].as_str().unwrap()),
        usernames: Arc::new(usernames),
    };
    // Warm both paths.
    loads.healthz_phase(2).await;
    loads.transfer_phase(2).await;
    Deployment { server, loads, database_url, postgres_database }
}

/// The two phases summed over the rounds, with each round's ratio.
struct Measured {
    health: Phase,
    transfers: Phase,
    round_ratios: Vec<f64>,
}

impl Measured {
    fn new() -> Measured {
        Measured { health: Phase::empty(), transfers: Phase::empty(), round_ratios: Vec::new() }
    }

    /// One round on `loads`: `/healthz`, then `transferIn`.
    async fn round(&mut self, loads: &Loads, seconds: u64, label: &str) {
        let h = loads.healthz_phase(seconds).await;
        let t = loads.transfer_phase(seconds).await;
        eprintln!("{label}: /healthz {:.0} req/s, transferIn {:.0} transfers/s, ratio {:.3}", h.rate(), t.rate(), t.rate() / h.rate());
        eprintln!("  /healthz   {}", h.cpu_summary());
        eprintln!("  transferIn {}", t.cpu_summary());
        self.round_ratios.push(t.rate() / h.rate());
        self.health.absorb(h);
        self.transfers.absorb(t);
    }

    fn ratio(&self) -> f64 {
        self.transfers.rate() / self.health.rate()
    }

    fn print(&self, prefix: &str) {
        println!("{prefix}/healthz             {:.0} req/s ({} failed)", self.health.rate(), self.health.failures);
        println!("{prefix}transferIn           {:.0} transfers/s ({} failed)", self.transfers.rate(), self.transfers.failures);
        println!("{prefix}latency p50 / p99    {:.2} ms / {:.2} ms", self.transfers.percentile_ms(0.50), self.transfers.percentile_ms(0.99));
        println!("{prefix}ratio to /healthz    {:.3} (rounds: {})", self.ratio(), self.round_ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", "));
        println!("{prefix}/healthz   {}", self.health.cpu_summary());
        println!("{prefix}transferIn {}", self.transfers.cpu_summary());
    }
}

async fn run(args: Args) {
    let dir = temp_dir("bench");
    let mut deployment = deploy(&args, &args.target.server, "bench", &dir).await;
    eprintln!("set-up done: {} accounts on {:?}; {} client threads; warming up …", args.accounts, args.target.backend, args.client_threads);
    let mut baseline = match &args.baseline_server {
        Some(binary) => Some(deploy(&args, binary, "bench_baseline", &dir).await),
        None => None,
    };
    if !args.client_threads_check.is_empty() {
        check_client_threads(&deployment.loads, &args).await;
    }
    // Interleaved: the server under test and the baseline take turns, round by round.
    let mut measured = Measured::new();
    let mut measured_baseline = Measured::new();
    for round in 1..=args.rounds {
        measured.round(&deployment.loads, args.seconds, &format!("round {round}")).await;
        if let Some(baseline) = &baseline {
            measured_baseline.round(&baseline.loads, args.seconds, &format!("round {round}, baseline")).await;
        }
    }
    let peak_rss = deployment.server.peak_rss_mib();
    // A connection of its own: the set-up's has outlived the server's idle timeout by now.
    let mut scrape = Connection::open(&deployment.server.base).await.expect("connect to the server");
    let metrics = scrape.send(Endpoint::get(&deployment.server.base, "/metrics").request(Bytes::new())).await.expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics.body);
    let metric = |name: &str| subledger_bench::metric(&metrics, name);
    let batches = metric("subledger_ledger_batch_transfers_count");
    let batch_mean = metric("subledger_ledger_batch_transfers_sum") / batches.max(1.0);
    let commit_mean_ms = 1000.0 * metric("subledger_ledger_commit_seconds_sum") / metric("subledger_ledger_commit_seconds_count").max(1.0);

    let ratio = measured.ratio();
    println!("backend              {:?}", args.target.backend);
    println!("connections          {} (client threads {})", args.connections, args.client_threads);
    println!("sub-accounts         {}", args.accounts);
    measured.print("");
    println!("peak server RSS      {peak_rss:.1} MiB");
    println!("ledger batches       {batches:.0}, mean {batch_mean:.1} transfers, mean commit {commit_mean_ms:.2} ms");
    if let Some(binary) = &args.baseline_server {
        println!("baseline             {binary}, interleaved round by round");
        measured_baseline.print("baseline ");
        let server_us = |m: &Measured| m.transfers.cpu_per_request_us().0;
        println!("transferIn server CPU per request: {:.1} µs against {:.1} µs for the baseline", server_us(&measured), server_us(&measured_baseline));
    }
    let mut verdicts = vec![(format!("RSS {peak_rss:.0} MiB <= 150 MiB"), peak_rss <= 150.0)];
    if args.target.backend == Backend::Sqlite {
        verdicts.push((format!("ratio {ratio:.3} >= 0.25 x /healthz"), ratio >= 0.25));
    }
    let mut databases = vec![];
    for deployment in std::iter::once(&mut deployment).chain(baseline.as_mut()) {
        databases.push((deployment.database_url.clone(), deployment.postgres_database.take()));
    }
    drop(deployment);
    drop(baseline);
    if args.keep_database {
        for (url, _) in &databases {
            println!("database kept: {url}");
        }
        return;
    }
    if args.target.backend == Backend::Postgres {
        let tps = pgbench(&args.target.postgres_url, args.connections, args.seconds, args.pgbench_scale);
        let pg_ratio = measured.transfers.rate() / tps;
        println!("pgbench tpcb-like    {tps:.0} tps (scale {}, {} clients)", args.pgbench_scale, args.connections);
        println!("ratio to pgbench     {pg_ratio:.2}");
        verdicts.push((format!("ratio {pg_ratio:.2} >= 3 x pgbench tpcb-like"), pg_ratio >= 3.0));
    }
    for (_, postgres_database) in databases {
        if let Some(name) = postgres_database {
            psql(&args.target.postgres_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
    for (what, met) in verdicts {
        println!("{}  {what}", if met { "MET " } else { "MISS" });
    }
    let _ = std::fs::remove_dir_all(&dir);
}
