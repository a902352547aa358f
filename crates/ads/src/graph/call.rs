//! One Graph call, start to end: its turn under the rate limits, its
//! attempts under one deadline, which failures are tried again, and the
//! `PlatformError` a failure ends as.
//!
//! What may be tried again depends on what the call does ([`Repeat`]):
//!
//! | failure of an attempt | read | idempotent write | write done once |
//! | --- | --- | --- | --- |
//! | no connection (the request never left) | again | again | again |
//! | Meta's rate-limit error (refused, nothing done) | again, after the wait Meta asks | same | same |
//! | Meta's error marked `is_transient`, code 2 | again | again | again |
//! | Meta's code 1 ("unknown error"), HTTP 5xx without Graph's error object | again | again | `Unavailable` |
//! | attempt timed out, connection lost after sending | again | `Timeout` / `Unavailable` | `Timeout` / `Unavailable` |
//! | Meta's other errors (code 100/33 → `NotFound`, else `Refused`), an answer that does not parse (`Malformed`) | final | final | final |
//!
//! Waits between attempts are exponential with full jitter (a uniform draw
//! in `0..min(max, base × 2^retry)`), and nothing waits past the deadline:
//! a wait that would pass it ends the call with the last failure (a rate
//! limit as `RateLimited`), and the deadline passing during an attempt ends
//! it as `Timeout`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::time::Instant;

use super::GraphApi;
use super::throttle::Reported;
use super::wire::GraphError;
use crate::{PlatformError, PlatformResult, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verb {
    Get,
    Post,
    Delete,
}

/// How a call may be repeated after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeat {
    /// Reads: whatever may pass is tried again.
    Read,
    /// Writes that leave the same state however often they are applied
    /// (an absolute spend cap, a binding): tried again when Meta did not
    /// get them or answered with a transient error.
    Idempotent,
    /// Writes that must not be applied twice (a spend reset): tried again
    /// only when Meta certainly did not apply them.
    Once,
}

/// One Graph request: `path` is relative to the version (`act_42/agencies`).
#[derive(Debug, Clone)]
pub(super) struct Call<'a> {
    pub verb: Verb,
    pub path: String,
    pub params: Vec<(String, String)>,
    pub repeat: Repeat,
    /// The ad account the call is about, for `X-Ad-Account-Usage`.
    pub account_id: Option<&'a str>,
}

impl Call<'_> {
    pub fn new(verb: Verb, path: String, repeat: Repeat) -> Call<'static> {
        Call { verb, path, params: Vec::new(), repeat, account_id: None }
    }

    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push((name.to_owned(), value.into()));
        self
    }

    pub fn on_account(self, account_id: &str) -> Call<'_> {
        Call { account_id: Some(account_id), ..self }
    }
}

/// Why one attempt gave no usable answer.
#[derive(Debug)]
enum Failure {
    /// The request never left (no connection): Meta did nothing.
    NotSent(String),
    /// No answer within the attempt's time: Meta may have acted.
    TimedOut,
    /// The connection broke after the request went out: Meta may have acted.
    Lost(String),
    /// HTTP 5xx without Graph's error object (a proxy, an outage).
    ServerError(StatusCode),
    /// Meta's error object.
    Graph(GraphError),
    Malformed(String),
}

impl Failure {
    /// What failed, for logs (messages stay out: Meta's could echo a token).
    fn kind(&self) -> &'static str {
        match self {
            Failure::NotSent(_) => "not sent",
            Failure::TimedOut => "timed out",
            Failure::Lost(_) => "connection lost",
            Failure::ServerError(_) => "server error",
            Failure::Graph(error) if error.is_rate_limit() => "rate limited",
            Failure::Graph(_) => "graph error",
            Failure::Malformed(_) => "malformed",
        }
    }

    fn may_repeat(&self, repeat: Repeat) -> bool {
        match self {
            Failure::NotSent(_) => true,
            Failure::TimedOut | Failure::Lost(_) => repeat == Repeat::Read,
            Failure::ServerError(_) => repeat != Repeat::Once,
            Failure::Graph(error) if error.is_rate_limit() => true,
            // Code 1 is Meta's "unknown error": the write may have been done.
            Failure::Graph(error) => error.is_transient() && (error.code != 1 || error.is_transient || repeat != Repeat::Once),
            Failure::Malformed(_) => false,
        }
    }

    fn into_error(self, retry_after: Duration, token: &str) -> PlatformError {
        match self {
            Failure::NotSent(why) | Failure::Lost(why) => PlatformError::Unavailable(redact(why, token)),
            Failure::TimedOut => PlatformError::Timeout,
            Failure::ServerError(status) => PlatformError::Unavailable(format!("HTTP {}", status.as_u16())),
            Failure::Graph(error) if error.is_not_found() => PlatformError::NotFound,
            Failure::Graph(error) if error.is_rate_limit() => PlatformError::RateLimited { retry_after_s: whole_seconds(retry_after).max(1) },
            Failure::Graph(error) if error.is_transient() => PlatformError::Unavailable(redact(error.message, token)),
            Failure::Graph(error) => PlatformError::Refused { code: error.code, subcode: error.subcode, message: redact(error.message, token) },
            Failure::Malformed(why) => PlatformError::Malformed(redact(why, token)),
        }
    }
}

/// Meta's messages and transport errors never carry the token in practice;
/// this makes sure of it.
fn redact(message: String, token: &str) -> String {
    if token.is_empty() || !message.contains(token) { message } else { message.replace(token, "<redacted>") }
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// A uniform draw in `0..bound` from the OS's generator (full jitter).
fn jitter(bound: Duration) -> Duration {
    let bound_ns = bound.as_nanos().min(u128::from(u64::MAX)) as u64;
    if bound_ns == 0 {
        return Duration::ZERO;
    }
    // Should the OS refuse randomness, waiting the whole bound is still a correct backoff.
    let draw = getrandom::u64().unwrap_or(u64::MAX);
    Duration::from_nanos(draw % bound_ns)
}

impl GraphApi {
    /// Runs `call` until it succeeds, fails for good, or `deadline` passes;
    /// answers Graph's JSON.
    pub(super) async fn send(&self, scope: &Scope, call: &Call<'_>, deadline: Instant) -> PlatformResult<Value> {
        let config = &self.inner.config;
        let keys = self.inner.throttle.keys(scope.tenant_id, &scope.business_id, call.account_id);
        let mut retry = 0u32;
        loop {
            self.inner.throttle.admit(&keys, deadline).await?;
            let now = Instant::now();
            if now >= deadline {
                return Err(PlatformError::Timeout);
            }
            let attempt_deadline = deadline.min(now + config.attempt_timeout);
            let failure = match tokio::time::timeout_at(attempt_deadline, self.attempt(scope, call)).await {
                Err(_) => Failure::TimedOut,
                Ok(Err(failure)) => failure,
                Ok(Ok((headers, body))) => {
                    let reported = Reported::from_headers(&headers);
                    self.inner.throttle.record(scope.tenant_id, call.account_id, &reported);
                    match answer(body) {
                        Ok(value) => return Ok(value),
                        Err(Failure::Graph(error)) if error.is_rate_limit() => {
                            // When Meta said how long to wait, the throttle now knows
                            // and waits (or refuses) on the next turn.
                            if let Some(block) = reported.longest_block() {
                                tracing::debug!(path = %call.path, code = error.code, wait_s = block.as_secs(), "graph rate limit");
                                if retry < config.max_retries && Instant::now() + block <= deadline {
                                    retry += 1;
                                    continue;
                                }
                                return Err(Failure::Graph(error).into_error(block, &scope.access_token));
                            }
                            Failure::Graph(error)
                        }
                        Err(failure) => failure,
                    }
                }
            };
            if Instant::now() >= deadline && matches!(failure, Failure::TimedOut) {
                return Err(PlatformError::Timeout);
            }
            let wait = jitter(config.backoff_max.min(config.backoff_base.saturating_mul(1 << retry.min(20))));
            tracing::debug!(path = %call.path, retry, failure = failure.kind(), "graph attempt failed");
            if !failure.may_repeat(call.repeat) || retry >= config.max_retries || Instant::now() + wait >= deadline {
                return Err(failure.into_error(wait, &scope.access_token));
            }
            retry += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// One HTTP exchange: the token as `access_token` (query on GET, form
    /// field otherwise), the answer's body read up to its size limit.
    async fn attempt(&self, scope: &Scope, call: &Call<'_>) -> Result<(HeaderMap, (StatusCode, Vec<u8>)), Failure> {
        let inner = &self.inner;
        let url = format!("{}/{}", inner.root, call.path);
        let token = [("access_token", scope.access_token.as_str())];
        let request = match call.verb {
            Verb::Get => inner.client.get(url).query(&call.params).query(&token),
            Verb::Post | Verb::Delete => {
                let mut form: Vec<(&str, &str)> = call.params.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
                form.extend(token);
                let builder = if call.verb == Verb::Post { inner.client.post(url) } else { inner.client.delete(url) };
                builder.form(&form)
            }
        };
        let mut response = request.send().await.map_err(|error| {
            // The URL of a GET holds the token: errors are kept without it.
            let error = error.without_url();
            if error.is_connect() { Failure::NotSent(format!("could not connect to Graph: {error}")) } else { Failure::Lost(format!("the connection to Graph failed: {error}")) }
        })?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| Failure::Lost(format!("Graph's answer broke off: {}", error.without_url())))? {
            if body.len() + chunk.len() > inner.config.max_response_bytes {
                return Err(Failure::Malformed(format!("Graph's answer is larger than {} bytes", inner.config.max_response_bytes)));
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(verb = ?call.verb, path = %call.path, status = status.as_u16(), bytes = body.len(), "graph answered");
        Ok((headers, (status, body)))
    }
}

/// Graph's answer as JSON, or the failure it stands for.
fn answer((status, body): (StatusCode, Vec<u8>)) -> Result<Value, Failure> {
    let parsed = serde_json::from_slice::<Value>(&body);
    if let Ok(value) = &parsed
        && let Some(error) = GraphError::from_body(value)
    {
        return Err(Failure::Graph(error));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        // Graph says so with its error object; a bare 429 (from a proxy) means the same.
        return Err(Failure::Graph(GraphError { code: 4, subcode: None, message: "HTTP 429 Too Many Requests".to_owned(), is_transient: false }));
    }
    if status.is_server_error() {
        return Err(Failure::ServerError(status));
    }
    if !status.is_success() {
        return Err(Failure::Malformed(format!("HTTP {} without Graph's error object", status.as_u16())));
    }
    parsed.map_err(|_| Failure::Malformed("Graph's answer is not JSON".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(code: i64, is_transient: bool) -> Failure {
        Failure::Graph(GraphError { code, subcode: None, message: "m".to_owned(), is_transient })
    }

    #[test]
    fn writes_are_repeated_only_when_meta_did_not_act() {
        for repeat in [Repeat::Read, Repeat::Idempotent, Repeat::Once] {
            assert!(Failure::NotSent(String::new()).may_repeat(repeat));
            assert!(graph(17, false).may_repeat(repeat), "a rate-limit refusal changed nothing");
            assert!(graph(2, false).may_repeat(repeat));
            assert!(graph(190, true).may_repeat(repeat));
            assert!(!graph(100, false).may_repeat(repeat));
            assert!(!Failure::Malformed(String::new()).may_repeat(repeat));
        }
        assert!(Failure::TimedOut.may_repeat(Repeat::Read));
        assert!(!Failure::TimedOut.may_repeat(Repeat::Idempotent));
        assert!(!Failure::Lost(String::new()).may_repeat(Repeat::Once));
        assert!(Failure::ServerError(StatusCode::BAD_GATEWAY).may_repeat(Repeat::Idempotent));
        assert!(!Failure::ServerError(StatusCode::BAD_GATEWAY).may_repeat(Repeat::Once));
        assert!(graph(1, false).may_repeat(Repeat::Idempotent));
        assert!(!graph(1, false).may_repeat(Repeat::Once));
    }

    #[test]
    fn failures_end_as_platform_errors() {
        let not_found = Failure::Graph(GraphError { code: 100, subcode: Some(33), message: "no".to_owned(), is_transient: false });
        assert_eq!(not_found.into_error(Duration::ZERO, "t"), PlatformError::NotFound);
        assert_eq!(graph(80_004, false).into_error(Duration::from_millis(1500), "t"), PlatformError::RateLimited { retry_after_s: 2 });
        assert_eq!(graph(2, false).into_error(Duration::ZERO, "t"), PlatformError::Unavailable("m".to_owned()));
        assert_eq!(graph(200, false).into_error(Duration::ZERO, "t"), PlatformError::Refused { code: 200, subcode: None, message: "m".to_owned() });
        let echoed = Failure::Graph(GraphError { code: 190, subcode: None, message: "bad token SECRET".to_owned(), is_transient: false });
        assert_eq!(echoed.into_error(Duration::ZERO, "SECRET"), PlatformError::Refused { code: 190, subcode: None, message: "bad token <redacted>".to_owned() });
    }

    #[test]
    fn answers_are_read_by_status_and_body() {
        assert!(answer((StatusCode::OK, br#"{"success":true}"#.to_vec())).is_ok());
        assert!(matches!(answer((StatusCode::BAD_REQUEST, br#"{"error":{"code":100,"message":"x"}}"#.to_vec())), Err(Failure::Graph(_))));
        assert!(matches!(answer((StatusCode::BAD_GATEWAY, b"<html>".to_vec())), Err(Failure::ServerError(_))));
        assert!(matches!(answer((StatusCode::NOT_FOUND, b"<html>".to_vec())), Err(Failure::Malformed(_))));
        assert!(matches!(answer((StatusCode::TOO_MANY_REQUESTS, Vec::new())), Err(Failure::Graph(error)) if error.is_rate_limit()));
        assert!(matches!(answer((StatusCode::OK, b"<html>".to_vec())), Err(Failure::Malformed(_))));
    }

    #[test]
    fn jitter_stays_under_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(10)) < Duration::from_millis(10));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
