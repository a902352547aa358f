//! In-process caches for the lookups every dialect request makes.
//!
//! Two kinds, with different correctness arguments:
//! - **Wallet ids** never change once created (accounts are never renamed or
//!   deleted, wallets never move owner), so caching them is always correct,
//!   across any number of processes.
//! - **Tenants by credential** can change (secrets rotate, settings change). A
//!   process drops its own entries when it makes such a change; other
//!   processes on the same database see it after at most [`CacheConfig::tenant_ttl`].
//!
//! Both are bounded: a full cache is emptied and refilled, which keeps the
//! memory bound without bookkeeping on the hot path.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use subledger_domain::ids::{TenantId, WalletId};
use subledger_domain::ledger::WalletPurpose;
use subledger_domain::money::Currency;

use crate::catalog::{Product, TariffBook};
use crate::tenants::Tenant;

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// How long a tenant found by credential is trusted without asking the database.
    pub tenant_ttl: Duration,
    /// Most entries of each cache.
    pub entries_max: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { tenant_ttl: Duration::from_secs(1), entries_max: 100_000 }
    }
}

/// Which wallet: the tenant's own (`username` `None`) or an account's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct WalletKey {
    pub tenant: TenantId,
    pub username: Option<String>,
    pub purpose: WalletPurpose,
    pub currency: Currency,
}

struct Bounded<K, V> {
    map: Mutex<HashMap<K, V>>,
    entries_max: usize,
}

impl<K: Eq + Hash, V: Clone> Bounded<K, V> {
    fn new(entries_max: usize) -> Self {
        Bounded { map: Mutex::new(HashMap::new()), entries_max: entries_max.max(1) }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn insert(&self, key: K, value: V) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.entries_max {
            map.clear();
        }
        map.insert(key, value);
    }

    fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

pub(crate) struct Caches {
    ttl: Duration,
    /// Per tenant: its catalog and tariff versions. Dropped here when this
    /// process changes them; other processes see changes after the TTL.
    products: Bounded<TenantId, (Arc<Vec<Product>>, Instant)>,
    tariffs: Bounded<TenantId, (Arc<TariffBook>, Instant)>,
    usernames: Bounded<(TenantId, String), subledger_domain::ids::AccountId>,
    tenants_by_app_id: Bounded<String, (Tenant, Instant)>,
    tenants_by_token_digest: Bounded<String, (Tenant, Instant)>,
    wallet_ids: Bounded<WalletKey, WalletId>,
}

impl Caches {
    pub fn new(config: &CacheConfig) -> Self {
        Caches {
            ttl: config.tenant_ttl,
            tenants_by_app_id: Bounded::new(config.entries_max),
            tenants_by_token_digest: Bounded::new(config.entries_max),
            wallet_ids: Bounded::new(config.entries_max),
            products: Bounded::new(config.entries_max),
            tariffs: Bounded::new(config.entries_max),
            usernames: Bounded::new(config.entries_max),
        }
    }

    fn fresh(&self, entry: Option<(Tenant, Instant)>) -> Option<Tenant> {
        entry.filter(|(_, at)| at.elapsed() < self.ttl).map(|(tenant, _)| tenant)
    }

    pub fn tenant_by_app_id(&self, app_id: &str) -> Option<Tenant> {
        self.fresh(self.tenants_by_app_id.get(&app_id.to_owned()))
    }

    pub fn remember_app_id(&self, tenant: &Tenant) {
        self.tenants_by_app_id.insert(tenant.app_id.clone(), (tenant.clone(), Instant::now()));
    }

    pub fn tenant_by_token_digest(&self, digest: &str) -> Option<Tenant> {
        self.fresh(self.tenants_by_token_digest.get(&digest.to_owned()))
    }

    pub fn remember_token_digest(&self, digest: String, tenant: &Tenant) {
        self.tenants_by_token_digest.insert(digest, (tenant.clone(), Instant::now()));
    }

    /// After this process changed a tenant: forget every tenant entry.
    pub fn forget_tenants(&self) {
        self.tenants_by_app_id.clear();
        self.tenants_by_token_digest.clear();
    }

    pub fn products(&self, tenant: TenantId) -> Option<Arc<Vec<Product>>> {
        self.products.get(&tenant).filter(|(_, at)| at.elapsed() < self.ttl).map(|(p, _)| p)
    }

    pub fn remember_products(&self, tenant: TenantId, products: Arc<Vec<Product>>) {
        self.products.insert(tenant, (products, Instant::now()));
    }

    pub fn tariffs(&self, tenant: TenantId) -> Option<Arc<TariffBook>> {
        self.tariffs.get(&tenant).filter(|(_, at)| at.elapsed() < self.ttl).map(|(t, _)| t)
    }

    pub fn remember_tariffs(&self, tenant: TenantId, book: Arc<TariffBook>) {
        self.tariffs.insert(tenant, (book, Instant::now()));
    }

    /// After this process changed a tenant's products or tariffs.
    pub fn forget_catalog(&self, tenant: TenantId) {
        self.products.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&tenant);
        self.tariffs.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&tenant);
    }

    /// Account ids by username never change (accounts are never renamed or deleted).
    pub fn account_id(&self, tenant: TenantId, username: &str) -> Option<subledger_domain::ids::AccountId> {
        self.usernames.get(&(tenant, username.to_owned()))
    }

    pub fn remember_account_id(&self, tenant: TenantId, username: String, id: subledger_domain::ids::AccountId) {
        self.usernames.insert((tenant, username), id);
    }

    pub fn wallet_id(&self, key: &WalletKey) -> Option<WalletId> {
        self.wallet_ids.get(key)
    }

    pub fn remember_wallet_id(&self, key: WalletKey, id: WalletId) {
        self.wallet_ids.insert(key, id);
    }
}
