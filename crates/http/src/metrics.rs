//! The `subledger_http_*` metrics for `/metrics`: requests per route, and the
//! connection and request limits at work.
//!
//! Every label value comes from a fixed set, so no client can make the metrics
//! grow: made-up methods count as `other` and unknown paths as `unmatched`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

/// Why the server closed a connection on its own initiative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionDrop {
    /// Turned away at accept: the connection cap was reached and every
    /// connection had a request in flight.
    Refused,
    /// Closed to make room under the connection cap: it had waited longest
    /// without a request in flight.
    Evicted,
    /// Its request head was not complete within the header-read timeout.
    HeaderTimeout,
    /// No request in flight and no byte either way for the idle timeout.
    IdleTimeout,
}

impl ConnectionDrop {
    fn label(self) -> &'static str {
        match self {
            ConnectionDrop::Refused => "refused",
            ConnectionDrop::Evicted => "evicted",
            ConnectionDrop::HeaderTimeout => "header_timeout",
            ConnectionDrop::IdleTimeout => "idle_timeout",
        }
    }
}

#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    requests_refused: Counter,
    requests_in_flight: Gauge,
    connections_open: Gauge,
    connections_dropped: Family<DropLabels, Counter>,
}

impl HttpMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_1, 2.0, 18))),
            requests_refused: Counter::default(),
            requests_in_flight: Gauge::default(),
            connections_open: Gauge::default(),
            connections_dropped: Family::default(),
        };
        let http = registry.sub_registry_with_prefix("subledger_http");
        http.register("requests", "HTTP requests answered, by method, route and status", metrics.requests.clone());
        http.register("request_seconds", "HTTP request latency, by method and route", metrics.latency.clone());
        http.register("requests_refused", "Requests answered busy at once because the in-flight cap was reached", metrics.requests_refused.clone());
        http.register("requests_in_flight", "Requests of the APIs being served now (the in-flight cap counts these)", metrics.requests_in_flight.clone());
        http.register("connections_open", "Client connections open now", metrics.connections_open.clone());
        http.register("connections_dropped", "Connections the server closed on its own initiative, by reason", metrics.connections_dropped.clone());
        // Every reason shows from the start, so a rate over it never starts from a missing series.
        for reason in [ConnectionDrop::Refused, ConnectionDrop::Evicted, ConnectionDrop::HeaderTimeout, ConnectionDrop::IdleTimeout] {
            let _ = metrics.connections_dropped.get_or_create(&DropLabels { reason: reason.label() });
        }
        metrics
    }

    pub(crate) fn request_refused(&self) {
        self.requests_refused.inc();
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub(crate) fn request_admitted(&self) -> InFlight {
        self.requests_in_flight.inc();
        InFlight(self.requests_in_flight.clone())
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub(crate) fn connection_dropped(&self, reason: ConnectionDrop) {
        self.connections_dropped.get_or_create(&DropLabels { reason: reason.label() }).inc();
    }
}

/// A request counted in `requests_in_flight`, however it ends (answered, timed out, or dropped with its connection).
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The method as a label: one of the methods the API serves, or `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts and times every request under its route template
/// (never the raw path) and a method from a fixed set, so label values stay few.
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    metrics.latency.get_or_create(&RouteLabels { method, route: route.clone() }).observe(elapsed);
    metrics.requests.get_or_create(&RequestLabels { method, route, status: response.status().as_u16() }).inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_fixed_set_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        assert_eq!(method_label(&Method::CONNECT), "other");
        assert_eq!(method_label(&Method::from_bytes(b"MADEUP").unwrap()), "other");
    }
}
