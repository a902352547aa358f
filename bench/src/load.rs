//! Closed-loop load over the lean client: workers that each send the next
//! request of their [`Load`] as soon as the last answer is read, and what a
//! measured phase saw (latencies, counts, CPU). Shared by the harnesses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::Request;
use hyper::body::Bytes;
use serde::Deserialize;

use crate::client::{Answer, Connection, Endpoint};
use crate::{cpu_seconds, machine_cpu_seconds};

/// Latencies, count and CPU of one measured phase.
pub struct Phase {
    pub requests: u64,
    pub failures: u64,
    pub elapsed: Duration,
    pub latencies_us: Vec<u64>,
    /// When each answered request was sent, in µs from the phase's start (same order as `latencies_us`).
    pub sent_at_us: Vec<u64>,
    /// CPU seconds (user + system) the server and this client used meanwhile.
    pub server_cpu_s: f64,
    pub client_cpu_s: f64,
    /// The whole machine's CPU seconds meanwhile: busy, and all (cores × time).
    pub machine_busy_s: f64,
    pub machine_all_s: f64,
    /// When the phase started (the origin of `sent_at_us`).
    pub started: Option<Instant>,
}

impl Phase {
    pub fn empty() -> Phase {
        Phase {
            requests: 0,
            failures: 0,
            elapsed: Duration::ZERO,
            latencies_us: Vec::new(),
            sent_at_us: Vec::new(),
            server_cpu_s: 0.0,
            client_cpu_s: 0.0,
            machine_busy_s: 0.0,
            machine_all_s: 0.0,
            started: None,
        }
    }

    pub fn absorb(&mut self, other: Phase) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        self.sent_at_us.extend(other.sent_at_us);
        self.server_cpu_s += other.server_cpu_s;
        self.client_cpu_s += other.client_cpu_s;
        self.machine_busy_s += other.machine_busy_s;
        self.machine_all_s += other.machine_all_s;
    }

    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        crate::percentile_ms(&sorted, p)
    }

    /// CPU per answered request, in µs: (server, client).
    pub fn cpu_per_request_us(&self) -> (f64, f64) {
        let requests = self.requests.max(1) as f64;
        (1e6 * self.server_cpu_s / requests, 1e6 * self.client_cpu_s / requests)
    }

    /// Where the CPU went: server and client per request, the client's share
    /// of the two, and how busy the machine was (what neither is charged for
    /// is softirq, i.e. loopback TCP, and other processes).
    pub fn cpu_summary(&self) -> String {
        let (server_us, client_us) = self.cpu_per_request_us();
        let both = (self.server_cpu_s + self.client_cpu_s).max(f64::MIN_POSITIVE);
        let seconds = self.elapsed.as_secs_f64();
        format!(
            "CPU per request: server {server_us:.1} µs, client {client_us:.1} µs ({:.0}% of the two); machine {:.0}% busy, {:.2} cores in the two, {:.2} elsewhere",
            100.0 * self.client_cpu_s / both,
            100.0 * self.machine_busy_s / self.machine_all_s.max(f64::MIN_POSITIVE),
            both / seconds,
            (self.machine_busy_s - both).max(0.0) / seconds,
        )
    }
}

/// What one worker sends and how it judges an answer.
pub trait Load: Send + 'static {
    fn request(&mut self) -> Request<Full<Bytes>>;
    fn accepted(&self, answer: &Answer) -> bool;
}

/// Runs `connections` workers for `seconds`, each on its own keep-alive
/// connection, sending the next request of its `Load` as soon as the last
/// answer is read.
pub async fn drive<L: Load>(base: &str, server_pid: u32, connections: usize, seconds: u64, load_of_worker: impl Fn(usize) -> L) -> Phase {
    drive_until(base, server_pid, connections, load_of_worker, tokio::time::sleep(Duration::from_secs(seconds))).await
}

/// As [`drive`], until `done` completes.
pub async fn drive_until<L: Load>(base: &str, server_pid: u32, connections: usize, load_of_worker: impl Fn(usize) -> L, done: impl std::future::Future<Output = ()>) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let mut opened = Vec::with_capacity(connections);
    for worker in 0..connections {
        opened.push((Connection::open(base).await.expect("connect to the server"), load_of_worker(worker)));
    }
    let server_cpu = || cpu_seconds(&format!("/proc/{server_pid}/stat"));
    let client_cpu = || cpu_seconds("/proc/self/stat");
    let (server_before, client_before, machine_before) = (server_cpu(), client_cpu(), machine_cpu_seconds());
    let started = Instant::now();
    let workers: Vec<_> = opened
        .into_iter()
        .map(|(mut connection, mut load)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                // Grows as needed; at 150k req/s over 64 workers a 5 s phase holds ~12k each.
                let (mut ok, mut failed, mut latencies, mut sent_at) = (0u64, 0u64, Vec::with_capacity(16_384), Vec::with_capacity(16_384));
                while !stop.load(Ordering::Relaxed) {
                    let request = load.request();
                    let sent = Instant::now();
                    match connection.send(request).await {
                        Ok(answer) if load.accepted(&answer) => {
                            ok += 1;
                            latencies.push(sent.elapsed().as_micros() as u64);
                            sent_at.push(sent.duration_since(started).as_micros() as u64);
                        }
                        Ok(_) => failed += 1,
                        Err(_) => {
                            failed += 1;
                            break;
                        }
                    }
                }
                (ok, failed, latencies, sent_at)
            })
        })
        .collect();
    done.await;
    stop.store(true, Ordering::Relaxed);
    let mut phase = Phase::empty();
    for worker in workers {
        let (ok, failed, latencies, sent_at) = worker.await.expect("worker");
        phase.requests += ok;
        phase.failures += failed;
        phase.latencies_us.extend(latencies);
        phase.sent_at_us.extend(sent_at);
    }
    phase.elapsed = started.elapsed();
    phase.started = Some(started);
    phase.server_cpu_s = server_cpu() - server_before;
    phase.client_cpu_s = client_cpu() - client_before;
    let machine_after = machine_cpu_seconds();
    phase.machine_busy_s = machine_after.0 - machine_before.0;
    phase.machine_all_s = machine_after.1 - machine_before.1;
    phase
}

/// `GET /healthz`, reading each whole answer as the transfer phase does.
pub struct Healthz {
    pub endpoint: Arc<Endpoint>,
}

impl Load for Healthz {
    fn request(&mut self) -> Request<Full<Bytes>> {
        self.endpoint.request(Bytes::new())
    }

    fn accepted(&self, answer: &Answer) -> bool {
        answer.status.is_success()
    }
}

/// Signed SendCloud `transferIn` of 1.00 from the tenant to the worker's own
/// accounts in turn: worker w sends to accounts w, w+connections, …, so no
/// two workers share an account.
pub struct TransferIn {
    pub endpoint: Arc<Endpoint>,
    pub app_id: Arc<str>,
    pub app_key: Arc<str>,
    pub usernames: Vec<Arc<str>>,
    next: usize,
    /// The latest timestamp this worker signed, and the floor for the current
    /// turn over its accounts: (username, timestamp) must never repeat, so a
    /// new turn starts past every timestamp of the last one.
    last_ms: i64,
    turn_floor_ms: i64,
}

impl TransferIn {
    /// The load of worker `worker` of `workers`: accounts worker, worker + workers, …
    pub fn of_worker(endpoint: Arc<Endpoint>, app_id: Arc<str>, app_key: Arc<str>, usernames: &[Arc<str>], worker: usize, workers: usize) -> TransferIn {
        let usernames = usernames.iter().skip(worker % usernames.len()).step_by(workers).cloned().collect();
        TransferIn { endpoint, app_id, app_key, usernames, next: 0, last_ms: 0, turn_floor_ms: 0 }
    }
}

impl Load for TransferIn {
    fn request(&mut self) -> Request<Full<Bytes>> {
        if self.next == self.usernames.len() {
            self.next = 0;
        }
        if self.next == 0 {
            self.turn_floor_ms = self.last_ms + 1;
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        self.last_ms = now_ms.max(self.turn_floor_ms);
        let timestamp = self.last_ms.to_string();
        let username = &self.usernames[self.next];
        self.next += 1;
        let params = [("appId", &*self.app_id), ("username", username), ("money", "1.00"), ("timestamp", timestamp.as_str())];
        self.endpoint.request(subledger_http::sendcloud::signature::signed_form(&self.app_key, &params))
    }

    fn accepted(&self, answer: &Answer) -> bool {
        /// The one field of SendCloud's envelope the check needs.
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(rename = "statusCode")]
            status_code: u16,
        }
        answer.status.is_success() && serde_json::from_slice::<Envelope>(&answer.body).is_ok_and(|envelope| envelope.status_code == 200)
    }
}
