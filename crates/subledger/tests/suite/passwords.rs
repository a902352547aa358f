//! Password hashing is bounded: argon2 takes about 19 MiB per hash, so a
//! flood of SendCloud `create` calls must neither hash before the cheap checks
//! (a taken username costs no hash at all) nor hash more passwords at once
//! than the machine has cores. Measured on the server's peak resident memory
//! (`VmHWM`), which unbounded hashing drives past a gigabyte.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(taken_usernames_cost_no_hash, concurrent_creates_hash_a_few_at_a_time);

/// Memory one argon2 hash with the default parameters takes (19 MiB), rounded up.
const HASH_BYTES: u64 = 20 << 20;

/// Peak resident memory of a process so far, in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("a VmHWM line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM in kB");
    kib * 1024
}

fn create_params(username: &str) -> Vec<(&str, &str)> {
    vec![("username", username), ("userType", "1"), ("companyName", "公司"), ("companyUrl", "https://www.example.com"), ("pwd", "321Abc")]
}

/// Sends every body to `create` over `connections` concurrent connections
/// and returns the status codes, in no particular order.
async fn flood(h: &Harness, bodies: Vec<String>, connections: usize) -> Vec<i64> {
    let url = h.url("/api/subAccount/create");
    let mut queues: Vec<Vec<String>> = vec![Vec::new(); connections];
    for (i, body) in bodies.into_iter().enumerate() {
        queues[i % connections].push(body);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for queue in queues {
        // One client per task: each task is a connection of its own.
        let (http, url) = (client(), url.clone());
        tasks.spawn(async move {
            let mut codes = Vec::with_capacity(queue.len());
            for body in queue {
                let response = http.post(&url).header("Content-Type", "application/x-www-form-urlencoded").body(body).send().await.expect("create request");
                let reply: Value = response.json().await.expect("a JSON envelope");
                codes.push(reply["statusCode"].as_i64().expect("a statusCode"));
            }
            codes
        });
    }
    let mut codes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        codes.extend(done.expect("a create task"));
    }
    codes
}

/// 512 creates of a taken username from 256 connections all answer 418, and
/// none of them hashes: the server's peak memory barely moves.
async fn taken_usernames_cost_no_hash(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Taken Flood").await;
    assert_code(&h.sendcloud("create", &tenant, &create_params("taken001")).await, 200, "请求成功");
    let before = peak_rss_bytes(h.server.pid());
    let bodies: Vec<String> = (0..512).map(|_| signed_form(&tenant, &create_params("taken001"), true)).collect();
    let started = Instant::now();
    let codes = flood(&h, bodies, 256).await;
    let after = peak_rss_bytes(h.server.pid());
    eprintln!("taken usernames: 512 creates in {:?}, peak RSS {} MiB before, {} MiB after", started.elapsed(), before >> 20, after >> 20);
    assert_eq!(codes.len(), 512);
    assert!(codes.iter().all(|c| *c == 418), "every create of a taken username answers 418: {codes:?}");
    // The kernel updates the peak lazily, so it may even read lower than before.
    let grown = after.saturating_sub(before);
    assert!(grown < 4 * HASH_BYTES, "a taken username must cost no hash: peak RSS grew by {} MiB", grown >> 20);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM accounts").await, 1);
}

/// Concurrent creates of free usernames all succeed, and no more passwords
/// are hashed at once than there are cores: peak memory grows by about that
/// many hashes, not by one per request.
async fn concurrent_creates_hash_a_few_at_a_time(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Free Flood").await;
    assert_code(&h.sendcloud("create", &tenant, &create_params("warmup01")).await, 200, "请求成功");
    let before = peak_rss_bytes(h.server.pid());
    let names: Vec<String> = (0..64).map(|i| format!("free{i:04}")).collect();
    let bodies: Vec<String> = names.iter().map(|name| signed_form(&tenant, &create_params(name), true)).collect();
    let started = Instant::now();
    let codes = flood(&h, bodies, 64).await;
    let elapsed = started.elapsed();
    let after = peak_rss_bytes(h.server.pid());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    eprintln!("free usernames: 64 creates in {elapsed:?}, peak RSS {} MiB before, {} MiB after ({cores} cores)", before >> 20, after >> 20);
    assert!(codes.iter().all(|c| *c == 200), "every create of a free username succeeds: {codes:?}");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM accounts").await, 65);
    // Hashes at once are bounded by the cores; allow as much again for the
    // allocator keeping freed blocks, and 64 MiB for everything else.
    let bound = 2 * cores * HASH_BYTES + (64 << 20);
    let grown = after.saturating_sub(before);
    assert!(grown < bound, "peak RSS grew by {} MiB, more than {} MiB", grown >> 20, bound >> 20);
    assert!(elapsed < Duration::from_secs(15), "64 creates took {elapsed:?}");
}
