//! The server's limits on connections and requests, seen from the wire:
//! stalled and trickled heads, idle keep-alive, the connection cap (eviction
//! and refusal), the in-flight cap in each dialect's format, bounded metric
//! labels, and a graceful stop with a request in flight.
//!
//! These tests speak HTTP/1.1 byte by byte over raw sockets, because the
//! point is what a client that misbehaves on purpose sees. Nothing here
//! touches storage, so they run on SQLite only.

use std::io;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Backend, Harness, TestDb, TestServer, client};

/// One client connection, written and read byte by byte.
struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
    opened: Instant,
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("a JSON body: {}", self.body))
    }
}

impl Raw {
    async fn connect(h: &Harness) -> Raw {
        Self::try_connect(h).await.expect("connect to the server")
    }

    async fn try_connect(h: &Harness) -> io::Result<Raw> {
        let address = h.server.base.strip_prefix("http://").expect("an http:// base");
        let stream = TcpStream::connect(address).await?;
        Ok(Raw { stream, buffer: Vec::new(), opened: Instant::now() })
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("the server takes the bytes");
    }

    /// Reads more bytes; false once the server has closed the connection.
    async fn read_more(&mut self) -> bool {
        matches!(self.stream.read_buf(&mut self.buffer).await, Ok(n) if n > 0)
    }

    /// The next response (with a `content-length`, as every answer of this
    /// server has); `None` if the server closes the connection first.
    async fn response(&mut self) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if !self.read_more().await {
                return None;
            }
        };
        let head = String::from_utf8(self.buffer[..head_end].to_vec()).expect("a UTF-8 head");
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status line");
        let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
        let length: usize = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.parse().expect("a length")).expect("a content-length");
        while self.buffer.len() < head_end + 4 + length {
            if !self.read_more().await {
                return None;
            }
        }
        let body = String::from_utf8(self.buffer[head_end + 4..head_end + 4 + length].to_vec()).expect("a UTF-8 body");
        self.buffer.drain(..head_end + 4 + length);
        Some(RawResponse { status, headers, body })
    }

    /// Sends a request and reads its response, which must come within 10 s.
    async fn exchange(&mut self, request: &[u8]) -> RawResponse {
        self.send(request).await;
        tokio::time::timeout(Duration::from_secs(10), self.response()).await.expect("an answer within 10 s").expect("an answer before the close")
    }

    /// Whether the server closes the connection (EOF or reset) within `limit`.
    async fn closed_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                match self.stream.read_buf(&mut self.buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}

/// A keep-alive GET.
fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").into_bytes()
}

/// The start of a request whose head never ends.
const STALLED_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-stalled: ";

/// A SendCloud `list` whose body stops half-way: a request in flight for as
/// long as the client likes. [`release`] sends the rest.
const HELD_REQUEST: &[u8] = b"POST /api/subAccount/list HTTP/1.1\r\nhost: test\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 20\r\n\r\nstartNo=0";
const HELD_REQUEST_REST: &[u8] = b"&pageSize=1";

async fn hold_a_request(h: &Harness) -> Raw {
    let mut held = Raw::connect(h).await;
    held.send(HELD_REQUEST).await;
    held
}

/// Completes a held request and checks that it was served: unsigned, so
/// SendCloud answers 401 (appId missing) in its envelope.
async fn release(held: &mut Raw) {
    held.send(HELD_REQUEST_REST).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), held.response()).await.expect("an answer within 10 s").expect("the held request is answered");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["statusCode"], 401, "{}", answer.body);
}

/// `/healthz` on a new connection; returns how long it took, connection included.
async fn healthz_within(h: &Harness, limit: Duration) -> Duration {
    let started = Instant::now();
    let answered = tokio::time::timeout(limit, async {
        let mut probe = Raw::connect(h).await;
        probe.send(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").await;
        probe.response().await
    })
    .await;
    let elapsed = started.elapsed();
    let answer = answered.unwrap_or_else(|_| panic!("/healthz answers within {limit:?}")).expect("/healthz answers before closing");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "ok");
    elapsed
}

async fn metrics_text(h: &Harness) -> String {
    let response = h.http.get(h.url("/metrics")).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("the metrics text")
}

/// The value of one series (`name` with its labels as written, e.g. `x_total{reason="evicted"}`); 0 if absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' '))).map_or(0.0, |value| value.trim().parse().expect("a number"))
}

fn dropped(text: &str, reason: &str) -> f64 {
    metric(text, &format!("subledger_http_connections_dropped_total{{reason=\"{reason}\"}}"))
}

/// Waits until the server counts `count` requests in flight.
async fn wait_for_in_flight(h: &Harness, count: u32) {
    let started = Instant::now();
    while metric(&metrics_text(h).await, "subledger_http_requests_in_flight") != f64::from(count) {
        assert!(started.elapsed() < Duration::from_secs(10), "{count} requests in flight within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Raises this process's soft limit on descriptors to `needed`; false when the hard limit is lower.
fn descriptors_for(needed: u64) -> bool {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    match limit.current {
        None => true,
        Some(soft) if soft >= needed => true,
        Some(_) if limit.maximum.is_none_or(|hard| hard >= needed) => setrlimit(Resource::Nofile, Rlimit { current: Some(needed), maximum: limit.maximum }).is_ok(),
        Some(_) => false,
    }
}

const STALLED_CONNECTIONS: usize = 1_100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_heads_are_closed_and_healthz_answers_throughout() {
    // Our 1,100 sockets, the harness's own and some slack.
    if !descriptors_for(STALLED_CONNECTIONS as u64 + 200) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\nSKIP: stalled_heads_are_closed_and_healthz_answers_throughout needs {} open descriptors; the hard limit is lower.\n", STALLED_CONNECTIONS + 200);
        return;
    }
    // Long enough that opening 1,100 connections and probing fits in it while the rest of the
    // suite loads the machine (3 s did not, once the suite grew).
    let header_read_timeout = Duration::from_millis(8_000);
    let h = Harness::start_with(Backend::Sqlite, &["--http-header-read-timeout-ms", "8000", "--http-idle-timeout-ms", "60000"]).await;
    let first_opened = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED_CONNECTIONS);
    for _ in 0..STALLED_CONNECTIONS {
        let mut connection = Raw::connect(&h).await;
        connection.send(STALLED_HEAD).await;
        stalled.push(connection);
    }
    let mut latencies = Vec::new();
    for _ in 0..5 {
        latencies.push(healthz_within(&h, Duration::from_secs(1)).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each stalled connection is either open or was evicted to make room (when
    // this machine's descriptor limit made the server lower its cap).
    let text = metrics_text(&h).await;
    let (open, evicted) = (metric(&text, "subledger_http_connections_open"), dropped(&text, "evicted"));
    assert!(first_opened.elapsed() < header_read_timeout, "the probes ran while every head was pending ({:?})", first_opened.elapsed());
    assert!(open + evicted >= STALLED_CONNECTIONS as f64, "open {open}, evicted {evicted}");

    let waits: Vec<_> = stalled
        .into_iter()
        .map(|mut connection| {
            tokio::spawn(async move {
                let closed = connection.closed_within(header_read_timeout + Duration::from_secs(8)).await;
                (closed, connection.opened.elapsed())
            })
        })
        .collect();
    let mut closed_after = Vec::new();
    for wait in waits {
        let (closed, after) = wait.await.expect("the wait finishes");
        assert!(closed, "every stalled head is closed by the server");
        closed_after.push(after);
    }
    let earliest = closed_after.iter().min().copied().unwrap_or_default();
    let latest = closed_after.iter().max().copied().unwrap_or_default();
    if evicted == 0.0 {
        assert!(earliest >= header_read_timeout - Duration::from_millis(100), "not closed before the header-read timeout ({earliest:?})");
    }
    let text = metrics_text(&h).await;
    assert!(dropped(&text, "header_timeout") + evicted >= STALLED_CONNECTIONS as f64, "{text}");
    assert!(metric(&text, "subledger_http_connections_open") <= 2.0, "only the metrics client's connection is left: {text}");
    eprintln!("stalled heads: /healthz took {latencies:?}; closed {earliest:?} to {latest:?} after opening; {evicted} evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_low_descriptor_limit_the_cap_shrinks_and_healthz_still_answers() {
    // The 1,024 descriptors and 1,100 stalled heads, scaled down.
    const DESCRIPTORS: u64 = 256;
    const STALLED: usize = 250;
    if !descriptors_for(STALLED as u64 + 200) {
        return;
    }
    let db = TestDb::create(Backend::Sqlite).await;
    let Some(server) = TestServer::start_with_descriptor_limit(&db, DESCRIPTORS, &["--http-header-read-timeout-ms", "60000"]).await else {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\nSKIP: under_a_low_descriptor_limit_the_cap_shrinks_and_healthz_still_answers needs util-linux's prlimit.\n");
        return;
    };
    let h = Harness { server, db, http: client() };
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut connection = Raw::connect(&h).await;
        connection.send(STALLED_HEAD).await;
        stalled.push(connection);
    }
    for _ in 0..5 {
        healthz_within(&h, Duration::from_secs(1)).await;
    }
    let text = metrics_text(&h).await;
    let (open, evicted) = (metric(&text, "subledger_http_connections_open"), dropped(&text, "evicted"));
    // The cap was lowered below the descriptor limit, with room to spare for the database.
    assert!(open < (DESCRIPTORS - 32) as f64, "open {open}");
    assert!(evicted > 0.0 && open + evicted >= STALLED as f64, "open {open}, evicted {evicted}");
    assert_eq!(dropped(&text, "refused"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_is_cut_at_the_header_read_timeout() {
    let h = Harness::start_with(Backend::Sqlite, &["--http-header-read-timeout-ms", "1500", "--http-idle-timeout-ms", "60000"]).await;
    let mut trickle = Raw::connect(&h).await;
    trickle.send(b"GET /healthz HTTP/1.1\r\nx-trickle: ").await;
    // A byte every 200 ms: active, but never a complete head.
    let closed_after = loop {
        if trickle.closed_within(Duration::from_millis(200)).await {
            break trickle.opened.elapsed();
        }
        assert!(trickle.opened.elapsed() < Duration::from_secs(10), "the trickled head is closed within 10 s");
        if trickle.stream.write_all(b"a").await.is_err() {
            break trickle.opened.elapsed();
        }
    };
    assert!(closed_after >= Duration::from_millis(1_400) && closed_after < Duration::from_secs(5), "closed after {closed_after:?}");
    assert_eq!(dropped(&metrics_text(&h).await, "header_timeout"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_is_refused() {
    let h = Harness::start(Backend::Sqlite).await;
    let mut client = Raw::connect(&h).await;
    // Just over the 64 KiB a head may take.
    let answer = client.exchange(format!("GET /healthz HTTP/1.1\r\nhost: test\r\nx-big: {}\r\n\r\n", "a".repeat(64 * 1024)).as_bytes()).await;
    assert_eq!(answer.status, 431);
    // A head of 60 KiB is served.
    let mut client = Raw::connect(&h).await;
    let answer = client.exchange(format!("GET /healthz HTTP/1.1\r\nhost: test\r\nx-big: {}\r\n\r\n", "a".repeat(60 * 1024)).as_bytes()).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_close_after_the_idle_timeout_and_busy_ones_stay() {
    let h = Harness::start_with(Backend::Sqlite, &["--http-idle-timeout-ms", "1000", "--http-header-read-timeout-ms", "5000"]).await;

    // Idle after one answer: closed a second later.
    let mut idle = Raw::connect(&h).await;
    assert_eq!(idle.exchange(&get("/healthz")).await.status, 200);
    let answered = Instant::now();
    assert!(idle.closed_within(Duration::from_secs(5)).await, "the idle connection is closed");
    let idle_for = answered.elapsed();
    assert!(idle_for >= Duration::from_millis(900) && idle_for < Duration::from_secs(4), "closed after {idle_for:?} idle");

    // A request every 300 ms for 3 s keeps one connection open throughout.
    let mut busy = Raw::connect(&h).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let answer = busy.exchange(&get("/healthz")).await;
        assert_eq!(answer.status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A request in flight longer than the idle timeout is not cut either.
    let mut held = hold_a_request(&h).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    release(&mut held).await;

    let text = metrics_text(&h).await;
    assert!(dropped(&text, "idle_timeout") >= 1.0, "{text}");
    assert_eq!(dropped(&text, "header_timeout"), 0.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_the_longest_waiting_connection_is_evicted() {
    let h = Harness::start_with(Backend::Sqlite, &["--http-connections-max", "4", "--http-header-read-timeout-ms", "60000"]).await;
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut connection = Raw::connect(&h).await;
        connection.send(STALLED_HEAD).await;
        stalled.push(connection);
        // Accepted in this order, a few milliseconds apart.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every probe gets in, however the stalled connections hold the cap.
    for _ in 0..5 {
        healthz_within(&h, Duration::from_secs(1)).await;
    }
    let mut closed = Vec::new();
    for connection in &mut stalled {
        closed.push(connection.closed_within(Duration::from_millis(300)).await);
    }
    assert!(closed[0], "the oldest stalled connection made room");
    assert!(closed.windows(2).all(|pair| pair[0] || !pair[1]), "the oldest go first: {closed:?}");
    let evicted = closed.iter().filter(|c| **c).count();
    let text = metrics_text(&h).await;
    assert!(dropped(&text, "evicted") >= evicted as f64, "{text}");
    assert_eq!(dropped(&text, "refused"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_with_every_connection_busy_a_new_one_is_refused() {
    let h = Harness::start_with(Backend::Sqlite, &["--http-connections-max", "2"]).await;
    let mut first = hold_a_request(&h).await;
    wait_for_in_flight(&h, 1).await;
    // The second held request fills the cap. Until its head is read it is
    // only waiting, and a probe would evict it instead of being refused; then
    // hold it again.
    let mut second = hold_a_request(&h).await;
    let refusal = 'probe: {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut probe = Raw::connect(&h).await;
            match tokio::time::timeout(Duration::from_secs(1), probe.response()).await {
                Ok(Some(refusal)) => {
                    assert!(probe.closed_within(Duration::from_secs(1)).await, "a refused connection is closed");
                    break 'probe refusal;
                }
                _ if second.closed_within(Duration::from_millis(100)).await => second = hold_a_request(&h).await,
                _ => panic!("the probe was neither refused nor admitted by evicting a waiting connection"),
            }
        }
        panic!("a connection beyond the cap is refused while every connection is busy");
    };
    assert_eq!(refusal.status, 503);
    assert_eq!(refusal.header("retry-after"), Some("1"));
    assert_eq!(refusal.body, "");
    // Both held requests were left alone and are served.
    release(&mut first).await;
    release(&mut second).await;
    // Now waiting, they make room again.
    healthz_within(&h, Duration::from_secs(1)).await;
    let text = metrics_text(&h).await;
    assert!(dropped(&text, "refused") >= 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_in_flight_cap_each_dialect_answers_busy() {
    let h = Harness::start_with(Backend::Sqlite, &["--http-requests-in-flight-max", "1"]).await;
    let mut held = hold_a_request(&h).await;
    wait_for_in_flight(&h, 1).await;

    let native = h.http.get(h.url("/v1/accounts")).send().await.expect("native request");
    assert_eq!(native.status(), 503);
    assert_eq!(native.headers()["retry-after"], "1");
    let body: Value = native.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "busy", "{body}");

    let sendcloud = h.http.post(h.url("/api/subAccount/list")).form(&[("appId", "x")]).send().await.expect("SendCloud request");
    assert_eq!(sendcloud.status(), 200, "SendCloud answers HTTP 200 whatever the outcome");
    assert_eq!(sendcloud.headers()["retry-after"], "1");
    let body: Value = sendcloud.json().await.expect("an envelope");
    assert_eq!(body, json!({"message": "请求失败", "result": false, "info": {}, "statusCode": 400}));

    let telephony = h.http.get(h.url("/balance/charges?accountId=a")).send().await.expect("telephony request");
    assert_eq!(telephony.status(), 503);
    assert_eq!(telephony.headers()["retry-after"], "1");
    let body: Value = telephony.json().await.expect("an envelope");
    assert_eq!(body, json!({"code": 503, "msg": "服务繁忙，请稍后重试", "data": null}));

    // Liveness and readiness are outside the cap.
    healthz_within(&h, Duration::from_secs(1)).await;
    assert_eq!(h.http.get(h.url("/readyz")).send().await.expect("readyz").status(), 200);
    let text = metrics_text(&h).await;
    assert_eq!(metric(&text, "subledger_http_requests_refused_total"), 3.0, "{text}");

    release(&mut held).await;
    wait_for_in_flight(&h, 0).await;
    let native = h.http.get(h.url("/v1/accounts")).send().await.expect("native request");
    assert_eq!(native.status(), 401, "served again once the held request is done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_share_one_metric_label() {
    const REQUESTS: usize = 2_000;
    let h = Harness::start(Backend::Sqlite).await;
    let mut client = Raw::connect(&h).await;
    let paths = ["/healthz", "/v1/accounts", "/api/subAccount/list", "/balance/charges", "/nowhere"];
    for i in 0..REQUESTS {
        // 200 bytes, a different method each time.
        let method = format!("M{i:0199}");
        let answer = client.exchange(format!("{method} {} HTTP/1.1\r\nhost: test\r\n\r\n", paths[i % paths.len()]).as_bytes()).await;
        assert!(answer.status >= 400, "a made-up method is refused ({})", answer.status);
    }
    let text = metrics_text(&h).await;
    let request_series: Vec<&str> = text.lines().filter(|l| l.starts_with("subledger_http_requests_total{")).collect();
    let other: f64 = request_series.iter().filter(|l| l.contains("method=\"other\"")).map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)).sum();
    assert_eq!(other, REQUESTS as f64, "every made-up method counts as other: {text}");
    assert!(request_series.len() <= 2 * paths.len() + 1, "a few series, not one per method: {}", request_series.len());
    assert!(!text.contains("M0000"), "no made-up method reaches the metrics");
    assert!(text.len() < 64 * 1024, "/metrics stays small ({} bytes)", text.len());
    eprintln!("made-up methods: /metrics is {} bytes with {} request series", text.len(), request_series.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_out_of_range_are_refused_at_start() {
    let db = TestDb::create(Backend::Sqlite).await;
    for (flag, value, message) in [
        ("--http-header-read-timeout-ms", "99", "--http-header-read-timeout-ms must be from 100 to 600000"),
        ("--http-idle-timeout-ms", "3600001", "--http-idle-timeout-ms must be from 100 to 3600000"),
        ("--http-connections-max", "0", "--http-connections-max and --http-requests-in-flight-max must be from 1 to 1000000"),
        ("--http-requests-in-flight-max", "0", "--http-connections-max and --http-requests-in-flight-max must be from 1 to 1000000"),
    ] {
        let (ok, _, stderr) = crate::support::run_cli(&db.url, &["serve", "--addr", "127.0.0.1:0", flag, value]).await;
        assert!(!ok, "{flag} {value} is refused");
        assert!(stderr.contains(message), "{flag} {value}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_finishes_the_request_in_flight_and_closes_stalled_heads() {
    let mut h = Harness::start_with(Backend::Sqlite, &["--http-header-read-timeout-ms", "2000"]).await;
    let mut held = hold_a_request(&h).await;
    let mut stalled = Raw::connect(&h).await;
    stalled.send(STALLED_HEAD).await;
    wait_for_in_flight(&h, 1).await;

    h.server.terminate();
    // Stopped accepting.
    let started = Instant::now();
    while Raw::try_connect(&h).await.is_ok() {
        assert!(started.elapsed() < Duration::from_secs(5), "the listener closes at SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The request in flight is still served, and its connection then closed.
    release(&mut held).await;
    assert!(held.closed_within(Duration::from_secs(2)).await, "no keep-alive after the stop");
    assert!(stalled.closed_within(Duration::from_secs(5)).await, "a stalled head gets no more than the header-read timeout");
    assert!(h.server.exited_successfully_within(Duration::from_secs(10)).await, "the server exits cleanly");
}
