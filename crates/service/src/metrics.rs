//! Metrics of the service layer, registered into the server's Prometheus registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// What the ledger batcher reports.
#[derive(Clone)]
pub struct LedgerMetrics {
    pub batch_transfers: Histogram,
    pub commit_seconds: Histogram,
    pub batches_retried: Counter,
    pub batches_failed: Counter,
    pub batches_split: Counter,
    pub transfers_posted: Counter,
    pub transfers_rejected: Counter,
    pub transfers_replayed: Counter,
    pub usage_batch_seconds: Histogram,
    pub holds_opened: Counter,
    pub holds_posted: Counter,
    pub holds_voided: Counter,
    pub holds_expired: Counter,
}

impl LedgerMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = LedgerMetrics {
            batch_transfers: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 14)),
            batches_retried: Counter::default(),
            batches_failed: Counter::default(),
            batches_split: Counter::default(),
            transfers_posted: Counter::default(),
            transfers_rejected: Counter::default(),
            transfers_replayed: Counter::default(),
            usage_batch_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 14)),
            holds_opened: Counter::default(),
            holds_posted: Counter::default(),
            holds_voided: Counter::default(),
            holds_expired: Counter::default(),
        };
        let ledger = registry.sub_registry_with_prefix("subledger_ledger");
        ledger.register("batch_transfers", "Transfer requests per ledger batch", metrics.batch_transfers.clone());
        ledger.register("commit_seconds", "Time to write and commit one ledger batch", metrics.commit_seconds.clone());
        ledger.register("batches_retried", "Ledger batches run again after a transient conflict", metrics.batches_retried.clone());
        ledger.register("batches_failed", "Ledger batches that failed and answered every caller with an error", metrics.batches_failed.clone());
        ledger.register("batches_split", "Ledger batches that failed and were committed in halves to isolate the request at fault", metrics.batches_split.clone());
        ledger.register("transfers_posted", "Transfers posted", metrics.transfers_posted.clone());
        ledger.register("transfers_rejected", "Transfers refused by a ledger rule", metrics.transfers_rejected.clone());
        ledger.register("transfers_replayed", "Requests answered from an earlier outcome of their idempotency key", metrics.transfers_replayed.clone());
        ledger.register("usage_batch_seconds", "Time to rate, record and commit one batch of usage events", metrics.usage_batch_seconds.clone());
        ledger.register("holds_opened", "Holds opened (money reserved)", metrics.holds_opened.clone());
        ledger.register("holds_posted", "Holds posted", metrics.holds_posted.clone());
        ledger.register("holds_voided", "Holds voided by their owner", metrics.holds_voided.clone());
        ledger.register("holds_expired", "Holds voided at their timeout", metrics.holds_expired.clone());
        metrics
    }
}
