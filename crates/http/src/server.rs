//! The accept loop: each connection is served by hyper's HTTP/1 server, under
//! limits that `axum::serve` does not offer.
//!
//! - **Connection cap.** At most `connections_max` connections are open. One
//!   more is admitted by closing the connection that has waited longest
//!   without a request in flight (an idle keep-alive, a half-sent head), so a
//!   client holding every slot with stalled connections cannot starve the
//!   others: a new connection always gets in while some connection is only
//!   waiting. Only when every connection has a request in flight is the new
//!   one refused, at once, with a bare `503` and `Retry-After`.
//! - **Header-read timeout.** A request head must be complete within
//!   `header_read_timeout`, counted from the accept for a connection's first
//!   request and from the first byte of each later one. Trickling bytes does
//!   not extend it.
//! - **Idle timeout.** A connection with no request in flight that moves no
//!   byte either way for `idle_timeout` is closed: a keep-alive connection
//!   waiting for its next request, or a response the client stopped reading
//!   (hyper has no write timeout).
//!
//! hyper's own `header_read_timeout` is switched off on purpose: it starts
//! whenever hyper waits for a head, so it also ends every keep-alive wait and
//! the idle time could never exceed it. Behind a load balancer the idle time
//! must outlast the balancer's own (often 60 s) while a head should take
//! milliseconds, so both are timed here, by one watchdog per connection.
//! Requests in flight are bounded elsewhere: by each dialect's deadline and
//! the in-flight cap (`crate::admit`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::Service;

use crate::metrics::{ConnectionDrop, HttpMetrics};

/// Default of `--http-header-read-timeout-ms`. A client sends its head in one
/// packet, within milliseconds of connecting; 10 s leaves room for a slow
/// link and still frees a stalled connection quickly.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default of `--http-idle-timeout-ms`: nginx's keep-alive time, longer than
/// the 60 s idle time of common load balancers, so the balancer, not this
/// server, closes a pooled connection and never sends a request into a close.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 75_000;
/// Default of `--http-connections-max`. Each open connection costs a
/// descriptor and some kilobytes of buffers; 4,096 is far above what the
/// back offices calling this server keep open, and small enough for any host.
pub const CONNECTIONS_MAX_DEFAULT: usize = 4_096;

/// What a connection may hold, each a setting of `subledger serve`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub connections_max: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS_DEFAULT),
            idle_timeout: Duration::from_millis(IDLE_TIMEOUT_MS_DEFAULT),
            connections_max: CONNECTIONS_MAX_DEFAULT,
        }
    }
}

/// Largest request head (request line and headers), answered 431 beyond it,
/// and the size up to which a connection's read buffer grows. hyper's own
/// buffer limit, about 400 KiB, would let the connection cap's worth of
/// stalled heads hold 1.6 GiB; at 64 KiB (the size of a SendCloud body) they
/// hold a few hundred MiB at most, and no client sends heads a tenth that size.
pub const REQUEST_HEAD_BYTES_MAX: usize = 64 * 1024;

/// The answer to a connection beyond the cap when none can be evicted. It
/// goes out before any byte of the request is read, so it cannot be in a
/// dialect's format.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// How long the accept loop pauses after an error that is not one
/// connection's (out of descriptors or memory); pending connections wait in
/// the listen backlog meanwhile.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` completes; then stops
/// accepting, lets every connection finish the request it is serving, and
/// returns once all are closed.
pub(crate) async fn run(listener: TcpListener, router: Router, limits: ConnectionLimits, metrics: HttpMetrics, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let connections = Arc::new(Connections::new(limits, metrics));
    let mut http = hyper::server::conn::http1::Builder::new();
    // Timed by the watchdog instead; see the module's comment.
    http.header_read_timeout(None);
    http.max_header_size(REQUEST_HEAD_BYTES_MAX);
    http.max_buf_size(REQUEST_HEAD_BYTES_MAX);
    // Dropping the sender tells every connection to finish.
    let (stop, stopped) = watch::channel(());
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match connections.admit().await {
                    Some(connection) => {
                        tasks.spawn(serve_connection(stream, peer, connection, connections.clone(), http.clone(), router.clone(), stopped.clone()));
                    }
                    None => {
                        // A fresh socket's send buffer is empty: this short write completes at once.
                        let _ = stream.try_write(REFUSAL);
                    }
                },
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed; pausing the accept loop");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            // Reaps finished connections so the set stays as small as the open ones.
            Some(_) = tasks.join_next() => {}
        }
    }
    drop(listener);
    drop(stop);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Errors of one connection that went away before it was accepted.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset)
}

async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    connection: Arc<Connection>,
    connections: Arc<Connections>,
    http: hyper::server::conn::http1::Builder,
    router: Router,
    mut stopped: watch::Receiver<()>,
) {
    let _open = OpenConnection { connection: connection.clone(), connections: connections.clone() };
    let service = {
        let connection = connection.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // The client's address, for the login limit per address.
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let in_flight = connection.request_started();
            let response = router.clone().call(request);
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        })
    };
    let served = http.serve_connection(TokioIo::new(Watched { stream, connection: connection.clone() }), service);
    let mut served = pin!(served);
    let mut stopping = false;
    let limits = &connections.limits;
    loop {
        let wake = match connection.verdict(limits) {
            Verdict::KeepUntil(ms) => connection.clock.instant(ms),
            Verdict::Drop(reason) => {
                connections.metrics.connection_dropped(reason);
                break;
            }
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break;
            }
            // Counted by `admit`, which chose it.
            () = connection.evict.notified() => break,
            // The sender is dropped at shutdown: finish the request being served, then close.
            _ = stopped.changed(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Milliseconds since the server started; cheap to store in atomics and to compare across connections.
#[derive(Clone, Copy)]
struct Clock {
    epoch: Instant,
}

impl Clock {
    fn now_ms(self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn instant(self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}

/// The open connections, for the cap.
struct Connections {
    live: Mutex<Live>,
    /// Signalled each time a connection's socket is closed.
    closed: Notify,
    next_id: AtomicU64,
    clock: Clock,
    limits: ConnectionLimits,
    metrics: HttpMetrics,
}

struct Live {
    /// Connections that may be evicted: every open one but those already evicted.
    by_id: HashMap<u64, Arc<Connection>>,
    /// Open sockets, evicted ones included until their task has closed them:
    /// the cap counts descriptors, so eviction must finish before admission.
    sockets: usize,
}

impl Connections {
    fn new(limits: ConnectionLimits, metrics: HttpMetrics) -> Connections {
        Connections { live: Mutex::new(Live { by_id: HashMap::new(), sockets: 0 }), closed: Notify::new(), next_id: AtomicU64::new(0), clock: Clock { epoch: Instant::now() }, limits, metrics }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection. At the cap, it first evicts the connection
    /// that has waited longest without a request in flight and waits until
    /// that one's socket is closed (its task wakes at once). `None` when the
    /// cap is reached and every connection is serving a request.
    async fn admit(&self) -> Option<Arc<Connection>> {
        loop {
            {
                let mut live = self.live();
                if live.sockets < self.limits.connections_max {
                    return Some(self.register(&mut live));
                }
                // With an evicted socket still closing, wait for it rather than evict another.
                if live.by_id.len() == live.sockets {
                    let victim = live.by_id.values().filter_map(|c| c.waiting_since_ms().map(|since| (since, c.id))).min().map(|(_, id)| id);
                    match victim.and_then(|id| live.by_id.remove(&id)) {
                        Some(victim) => {
                            victim.evict.notify_one();
                            self.metrics.connection_dropped(ConnectionDrop::Evicted);
                        }
                        None => {
                            self.metrics.connection_dropped(ConnectionDrop::Refused);
                            return None;
                        }
                    }
                }
            }
            // A close between the check above and this wait leaves a permit, so none is missed.
            self.closed.notified().await;
        }
    }

    fn register(&self, live: &mut Live) -> Arc<Connection> {
        let now = self.clock.now_ms();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            id,
            clock: self.clock,
            requests_in_flight: AtomicU32::new(0),
            last_activity_ms: AtomicU64::new(now),
            // The first head is timed from the accept.
            head_started_ms: AtomicU64::new(now),
            evict: Notify::new(),
        });
        live.by_id.insert(id, connection.clone());
        live.sockets += 1;
        self.metrics.connection_opened();
        connection
    }
}

/// Unregisters a connection when its task ends, however it ends; its socket
/// is closed by then (it is dropped before this guard).
struct OpenConnection {
    connection: Arc<Connection>,
    connections: Arc<Connections>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        {
            let mut live = self.connections.live();
            // Already gone if it was evicted.
            live.by_id.remove(&self.connection.id);
            live.sockets -= 1;
        }
        self.connections.closed.notify_one();
        self.connections.metrics.connection_closed();
    }
}

/// No head in progress.
const NO_HEAD: u64 = u64::MAX;

/// What the watchdog knows of one connection. Written by its own task (the
/// socket and its requests), read by the accept loop when it picks a
/// connection to evict; a stale read there only picks a worse victim.
struct Connection {
    id: u64,
    clock: Clock,
    requests_in_flight: AtomicU32,
    /// When a byte last moved either way, or a request was last answered.
    last_activity_ms: AtomicU64,
    /// When the head now being read began, or `NO_HEAD`.
    head_started_ms: AtomicU64,
    evict: Notify,
}

impl Connection {
    fn bytes_read(&self) {
        let now = self.clock.now_ms();
        self.last_activity_ms.store(now, Ordering::Relaxed);
        // Bytes that arrive while no request is in flight begin the next head.
        if self.requests_in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started_ms.compare_exchange(NO_HEAD, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Bytes written, or a request answered.
    fn touch(&self) {
        self.last_activity_ms.store(self.clock.now_ms(), Ordering::Relaxed);
    }

    /// hyper calls the service once the head is complete.
    fn request_started(self: &Arc<Self>) -> RequestInFlight {
        self.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
        self.requests_in_flight.fetch_add(1, Ordering::Relaxed);
        RequestInFlight(self.clone())
    }

    fn activity(&self) -> Activity {
        let head_started_ms = self.head_started_ms.load(Ordering::Relaxed);
        Activity {
            requests_in_flight: self.requests_in_flight.load(Ordering::Relaxed),
            last_activity_ms: self.last_activity_ms.load(Ordering::Relaxed),
            head_started_ms: (head_started_ms != NO_HEAD).then_some(head_started_ms),
        }
    }

    fn verdict(&self, limits: &ConnectionLimits) -> Verdict {
        verdict(self.activity(), self.clock.now_ms(), limits)
    }

    /// Since when the connection has been waiting without a request in flight; `None` while one is.
    fn waiting_since_ms(&self) -> Option<u64> {
        let activity = self.activity();
        (activity.requests_in_flight == 0).then(|| activity.head_started_ms.map_or(activity.last_activity_ms, |head| head.min(activity.last_activity_ms)))
    }
}

/// A request being served on a connection: from its complete head until its
/// response head is ready (the body's bytes then count as activity).
struct RequestInFlight(Arc<Connection>);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.0.requests_in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A snapshot of a connection's state, in milliseconds of the server's clock.
#[derive(Debug, Clone, Copy)]
struct Activity {
    requests_in_flight: u32,
    last_activity_ms: u64,
    head_started_ms: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Look again at this time (or when something else wakes the watchdog).
    KeepUntil(u64),
    Drop(ConnectionDrop),
}

/// Whether a connection has outlived a limit, and otherwise when to look again.
fn verdict(activity: Activity, now_ms: u64, limits: &ConnectionLimits) -> Verdict {
    let header_ms = u64::try_from(limits.header_read_timeout.as_millis()).unwrap_or(u64::MAX);
    let idle_ms = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    // A head or an idle spell that begins after now ends no sooner than now +
    // its limit, so looking again by then never misses a deadline.
    let next_look = now_ms.saturating_add(header_ms.min(idle_ms));
    if activity.requests_in_flight > 0 {
        // The dialect's deadline bounds a request in flight.
        return Verdict::KeepUntil(next_look);
    }
    let idle_until = activity.last_activity_ms.saturating_add(idle_ms);
    let (deadline, reason) = match activity.head_started_ms.map(|started| started.saturating_add(header_ms)) {
        Some(head_until) if head_until <= idle_until => (head_until, ConnectionDrop::HeaderTimeout),
        _ => (idle_until, ConnectionDrop::IdleTimeout),
    };
    if now_ms >= deadline { Verdict::Drop(reason) } else { Verdict::KeepUntil(deadline.min(next_look)) }
}

/// The socket, noting on its connection every byte that moves.
struct Watched {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let filled = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > filled {
            this.connection.bytes_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            this.connection.touch();
        }
        result
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            this.connection.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits { header_read_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(75), connections_max: 4 };

    fn waiting(last_activity_ms: u64, head_started_ms: Option<u64>) -> Activity {
        Activity { requests_in_flight: 0, last_activity_ms, head_started_ms }
    }

    #[test]
    fn a_head_must_be_complete_within_the_header_timeout_however_it_trickles() {
        // Accepted at 0; a byte every few seconds keeps it active but not alive.
        assert_eq!(verdict(waiting(9_000, Some(0)), 9_000, &LIMITS), Verdict::KeepUntil(10_000));
        assert_eq!(verdict(waiting(9_999, Some(0)), 10_000, &LIMITS), Verdict::Drop(ConnectionDrop::HeaderTimeout));
    }

    #[test]
    fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        // The previous answer at 1,000; no byte since.
        assert_eq!(verdict(waiting(1_000, None), 50_000, &LIMITS), Verdict::KeepUntil(60_000));
        assert_eq!(verdict(waiting(1_000, None), 70_000, &LIMITS), Verdict::KeepUntil(76_000));
        assert_eq!(verdict(waiting(1_000, None), 76_000, &LIMITS), Verdict::Drop(ConnectionDrop::IdleTimeout));
    }

    #[test]
    fn a_stalled_head_goes_at_whichever_limit_comes_first() {
        let short_idle = ConnectionLimits { idle_timeout: Duration::from_secs(2), ..LIMITS };
        assert_eq!(verdict(waiting(100, Some(0)), 2_100, &short_idle), Verdict::Drop(ConnectionDrop::IdleTimeout));
        assert_eq!(verdict(waiting(100, Some(0)), 2_099, &short_idle), Verdict::KeepUntil(2_100));
    }

    #[test]
    fn a_request_in_flight_is_never_timed_out_here() {
        let busy = Activity { requests_in_flight: 1, last_activity_ms: 0, head_started_ms: None };
        assert_eq!(verdict(busy, 1_000_000, &LIMITS), Verdict::KeepUntil(1_010_000));
    }

    #[test]
    fn the_watchdog_looks_again_before_a_later_head_could_expire() {
        // Idle until 76,000, but a head beginning right after this look would expire at 11,000.
        assert_eq!(verdict(waiting(1_000, None), 1_000, &LIMITS), Verdict::KeepUntil(11_000));
    }
}
