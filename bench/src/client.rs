//! The load generator's HTTP client: one hyper HTTP/1 connection per worker,
//! kept alive, with each endpoint's request head prepared once.
//!
//! A general-purpose client (reqwest: a pool, a connector, a boxed body and a
//! task hand-off per request) took about 12 µs of CPU per `/healthz` request
//! on the 2-core development machine, against about 8.5 µs for the server to
//! answer it, and that CPU is taken from the server. Here a worker owns its
//! connection; the per-request work is cloning the prepared head (reference
//! counts and one small header map), the body, and reading the answer: about
//! 7.3 µs per `/healthz`, two thirds of it in the kernel (bench/README.md).

use std::io;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One endpoint of the server: method, path and the headers every request to
/// it carries, built once and cloned per request.
#[derive(Clone, Debug)]
pub struct Endpoint {
    method: Method,
    /// Origin form (`/path?query`): an HTTP/1 connection sends the target as given.
    path: Uri,
    headers: HeaderMap,
}

impl Endpoint {
    /// `base` is the server's `http://host:port`, as `Server::base` holds it.
    pub fn new(method: Method, base: &str, path: &str) -> Endpoint {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(authority(base)).expect("a host header"));
        Endpoint { method, path: path.parse().expect("a request path"), headers }
    }

    pub fn get(base: &str, path: &str) -> Endpoint {
        Endpoint::new(Method::GET, base, path)
    }

    /// A POST of `application/x-www-form-urlencoded` bodies (SendCloud).
    pub fn post_form(base: &str, path: &str) -> Endpoint {
        Endpoint::new(Method::POST, base, path).header(CONTENT_TYPE, "application/x-www-form-urlencoded")
    }

    /// A POST of JSON bodies.
    pub fn post_json(base: &str, path: &str) -> Endpoint {
        Endpoint::new(Method::POST, base, path).header(CONTENT_TYPE, "application/json")
    }

    /// The same endpoint with one more header on every request.
    pub fn header(mut self, name: HeaderName, value: &str) -> Endpoint {
        self.headers.insert(name, HeaderValue::from_str(value).expect("a header value"));
        self
    }

    /// A request to this endpoint; hyper adds `content-length` from the body.
    pub fn request(&self, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body.into()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.path.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// `host:port` of `http://host:port`.
fn authority(base: &str) -> &str {
    let rest = base.strip_prefix("http://").unwrap_or(base);
    rest.split('/').next().unwrap_or(rest)
}

/// A status and the whole body of an answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON, for set-up calls and checks off the hot path.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("HTTP {} answer is not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body)))
    }
}

/// One keep-alive HTTP/1 connection; requests go one at a time.
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects to `base` (`http://host:port`). The connection's I/O runs as a
    /// task of its own on the current runtime until the `Connection` is
    /// dropped. (Polling it inside `send` instead, to save the hand-off
    /// between the two tasks, measured no less client CPU per request.)
    pub async fn open(base: &str) -> io::Result<Connection> {
        let stream = TcpStream::connect(authority(base)).await?;
        // A request is one write; waiting for the previous answer's ACK
        // (Nagle) would add latency, not save packets.
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(io::Error::other)?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; an error
            // then also fails the request in flight, which is where it counts.
            let _ = connection.await;
        });
        Ok(Connection { sender })
    }

    /// Sends `request` and reads the whole answer.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> io::Result<Answer> {
        self.sender.ready().await.map_err(io::Error::other)?;
        let response = self.sender.send_request(request).await.map_err(io::Error::other)?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(io::Error::other)?.to_bytes();
        Ok(Answer { status, body })
    }
}

/// A runtime for the client with `threads` worker threads, so that the
/// client's share of the machine is a setting (`--client-threads`).
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).thread_name("client").enable_all().build().expect("the client runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_prepared_head() {
        let endpoint = Endpoint::post_form("http://127.0.0.1:8080", "/api/subAccount/transferIn");
        let request = endpoint.request("a=1");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/api/subAccount/transferIn");
        assert_eq!(request.headers()[HOST], "127.0.0.1:8080");
        assert_eq!(request.headers()[CONTENT_TYPE], "application/x-www-form-urlencoded");
    }
}
