//! The service layer: every rule that needs state lives here, once, and every
//! dialect (SendCloud, native, CLI …) calls it. It takes domain types that the
//! edge has already parsed, decides, and uses storage inside the transactions
//! it chooses.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod ads;
pub mod billing;
mod cache;
pub mod catalog;
mod change;
mod error;
pub mod exports;
pub mod funds;
pub mod holds;
pub mod ledger;
pub mod metrics;
pub mod notices;
pub mod oplog;
pub mod rates;
pub mod recharges;
pub mod roles;
pub mod seat_bills;
pub mod seats;
pub mod secrets;
pub mod sessions;
pub mod signed_requests;
pub mod statements;
pub mod subusers;
pub mod tenants;
pub mod timecards;
pub mod usage;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use subledger_storage::Store;
use tokio::task::JoinHandle;

pub use access::{AccessConfig, Caller};
pub use cache::CacheConfig;
use cache::Caches;
pub use change::Change;
pub use error::{Resource, ServiceError, ServiceResult};
pub use ledger::{Ledger, LedgerConfig};

/// Settings of the service layer.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Sub-accounts a new tenant may have (SendCloud 417 beyond it); each
    /// tenant's own limit can then be changed.
    pub account_limit_default: i64,
    /// Daily request quota of a new account unless its tenant says otherwise.
    pub daily_quota_default: i64,
    pub ledger: LedgerConfig,
    pub cache: CacheConfig,
    /// Sessions and login locks.
    pub access: AccessConfig,
    /// The ad-account reseller dialect's platforms and jobs.
    pub ads: ads::AdsConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            account_limit_default: 10_000,
            daily_quota_default: 2_500,
            ledger: LedgerConfig::default(),
            cache: CacheConfig::default(),
            access: AccessConfig::default(),
            ads: ads::AdsConfig::default(),
        }
    }
}

/// Everything a request needs: the store, the ledger worker and the settings.
/// Shared by all requests of a process.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub ledger: Ledger,
    pub config: ServiceConfig,
    caches: Arc<Caches>,
    ads: Arc<ads::AdsRuntime>,
}

impl Services {
    /// Starts the service layer (and its ledger worker) on an open store.
    /// The worker ends once every clone of the returned `Services` is dropped
    /// and its queue is drained; await the handle to flush before exiting.
    pub fn start(store: Store, config: ServiceConfig, registry: &mut Registry) -> (Services, JoinHandle<()>) {
        let metrics = metrics::LedgerMetrics::new(registry);
        let (ledger, worker) = Ledger::start(store.clone(), config.ledger.clone(), metrics);
        let caches = Arc::new(Caches::new(&config.cache));
        let ads = Arc::new(ads::AdsRuntime::new(store.clone(), config.ads.clone()));
        (Services { store, ledger, config, caches, ads }, worker)
    }
}

/// The current instant in stored form (microseconds since the epoch).
pub(crate) fn now_us() -> i64 {
    subledger_domain::calendar::to_unix_micros(jiff::Timestamp::now())
}
