//! What the bench binaries share: the release server as a child process, the
//! CLI, PostgreSQL databases of their own, `/proc` readings and percentiles,
//! and the load generator's HTTP client.

pub mod client;
pub mod load;

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const ADMIN_TOKEN: &str = "sla_bench_admin_token_0123456789abcdef";

/// `subledger serve` on a random local port, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub async fn start(binary: &str, database_url: &str) -> Server {
        Self::start_with(binary, database_url, &[]).await
    }

    /// The same, with more flags for `subledger serve`.
    pub async fn start_with(binary: &str, database_url: &str, extra_args: &[&str]) -> Server {
        let mut child = Command::new(binary)
            .args(["serve", "--addr", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
            .args(extra_args)
            .env("SUBLEDGER_DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} (build it with `cargo build --release`): {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut base = String::new();
        while let Some(line) = lines.next_line().await.expect("server output") {
            if let Some(address) = line.strip_prefix("subledger listening on ") {
                base = address.trim().to_owned();
                break;
            }
        }
        assert!(!base.is_empty(), "the server did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server { child, base }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Peak resident set size so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).map_or(0.0, |kb| kb / 1024.0)
    }
}

/// Runs a CLI command of the server binary and returns its JSON output.
pub async fn run_cli(binary: &str, database_url: &str, args: &[&str]) -> Value {
    let output = Command::new(binary).args(args).env("SUBLEDGER_DATABASE_URL", database_url).output().await.expect("CLI runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

pub fn psql(url: &str, sql: &str) {
    let status = std::process::Command::new("psql").args([url, "-qc", sql]).stdout(Stdio::null()).status().expect("psql runs");
    assert!(status.success(), "psql {sql}");
}

/// Applies `name=value` settings to a database (ALTER DATABASE … SET): its new sessions get them.
pub fn set_database_settings(server_url: &str, database: &str, settings: &[String]) {
    for setting in settings {
        let (key, value) = setting.split_once('=').expect("PostgreSQL settings are name=value");
        psql(server_url, &format!("ALTER DATABASE {database} SET {key} = '{value}'"));
    }
}

/// The first value `psql` prints for a query.
pub fn psql_value(url: &str, sql: &str) -> String {
    let output = std::process::Command::new("psql").args([url, "-qAtc", sql]).output().expect("psql runs");
    assert!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The same server URL with another database.
pub fn with_database(url: &str, name: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}", &base[..path_start])
}

/// A fresh scratch folder under the system's temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("subledger-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The value of a metric line (`name value`) in Prometheus text, or 0.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(0.0)
}

/// The `p` quantile (0–1) of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let index = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[index] as f64 / 1000.0
}

/// CPU seconds (user + system) a process, or one of its threads, has used.
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // Linux reports /proc times in USER_HZ, which is 100 on every mainstream configuration.
    100.0
}

/// CPU seconds of the whole machine so far, over all cores: (busy, all).
/// Busy is everything but idle and I/O wait, so it includes what no process
/// is charged for (softirq: much of loopback TCP) and other processes' work.
pub fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest times are inside user).
    let all: f64 = ticks.iter().take(8).sum();
    let waiting = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
    ((all - waiting) / clock_ticks_per_second(), all / clock_ticks_per_second())
}

/// CPU seconds of a process's threads by name (`comm`), e.g. `ledger`.
pub fn thread_cpu_seconds(pid: u32, name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    tasks.flatten().filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)).map(|t| cpu_seconds(&t.path().join("stat").to_string_lossy())).sum()
}

/// CPU seconds used so far by every process whose command is `name` (e.g.
/// `postgres`: the PostgreSQL server's backends, as far as they still run).
pub fn processes_cpu_seconds(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|e| cpu_seconds(&e.path().join("stat").to_string_lossy()))
        .sum()
}

/// Bytes a process has caused to be written to storage so far (`write_bytes`
/// of /proc/PID/io: page-cache writes as they are flushed, not socket writes).
pub fn storage_write_bytes(pid: u32) -> f64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
}

/// Size of a file in MiB, 0 if it does not exist.
pub fn file_mib(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
}

/// Where a benchmark runs: the backend, the PostgreSQL server, the release
/// server binary. Shared by the harnesses that start the server.
#[derive(clap::Args, Debug)]
pub struct Target {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: Backend,
    /// PostgreSQL server to use (databases of the run's own are created on it, then dropped).
    #[arg(long, env = "SUBLEDGER_BENCH_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres_url: String,
    /// The release server binary.
    #[arg(long, default_value = "target/release/subledger")]
    pub server: String,
}

/// The storage backend a benchmark runs on.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}
