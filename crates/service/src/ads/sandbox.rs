//! The sandbox: Meta simulated inside subledger, the default upstream of
//! every tenant that has not configured the Graph API (`docs/ads-sandbox.md`).
//!
//! What Meta would answer is computed by the pure world of
//! [`subledger_ads::sandbox_model`] from the seed, the tenant, its epoch and
//! the clock: creation requests and their review, the ad accounts they issue,
//! spend and insights. Only what the sandbox was told is stored (migration
//! 0011): the tenant's epoch (its first use), each ad account's spend segment
//! in force and the last one of each day it changed, and the bindings that
//! differ from the start. Every write applies only over what it read, in a
//! transaction, so that several server processes share one sandbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use subledger_ads::sandbox_model::{self as model, AccountProfile, Segment, World, WorldConfig};
use subledger_ads::{AdAccount, AdPlatform, Business, CreationRequest, InsightsRow, InsightsWindow, Pixel, PlatformError, PlatformResult, Scope};
use subledger_domain::ids::TenantId;
use subledger_storage::ad_sandbox::{self, BindingKind, SpendRecord};
use subledger_storage::{StorageError, Store};
use writes::{Change, Writer};

/// Settings of the sandbox, shared by every tenant it serves. See
/// `docs/ads-sandbox.md` for what each changes.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Every draw of every tenant's world derives from it.
    pub seed: u64,
    /// How long a creation request stays in each review status.
    pub review_step_seconds: u64,
    /// How often a new creation request appears.
    pub request_every_seconds: u64,
    /// Requests a tenant's sandbox makes at most (up to 1,048,575).
    pub requests_max: u32,
    /// The range of ad accounts' average daily spend, in cents.
    pub daily_spend_cents_min: i64,
    pub daily_spend_cents_max: i64,
    /// Requests that exist when a tenant's sandbox starts.
    pub initial_requests: u32,
    /// Ad accounts disabled some day after their creation, per mille.
    pub disabled_per_mille: u32,
    /// Pixels each tenant's sandbox owns (up to 16).
    pub pixels_per_tenant: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            seed: 20_240_501,
            review_step_seconds: 600,
            request_every_seconds: 6 * 3_600,
            requests_max: 200,
            daily_spend_cents_min: 5_000,
            daily_spend_cents_max: 50_000,
            initial_requests: 4,
            disabled_per_mille: 60,
            pixels_per_tenant: 4,
        }
    }
}

impl SandboxConfig {
    /// The world's settings, in microseconds.
    pub fn world(&self) -> WorldConfig {
        let micros = |seconds: u64| i64::try_from(seconds).unwrap_or(i64::MAX).saturating_mul(1_000_000);
        WorldConfig {
            seed: self.seed,
            review_step_us: micros(self.review_step_seconds),
            request_every_us: micros(self.request_every_seconds),
            requests_max: self.requests_max,
            initial_requests: self.initial_requests,
            daily_spend_cents_min: self.daily_spend_cents_min,
            daily_spend_cents_max: self.daily_spend_cents_max,
            disabled_per_mille: self.disabled_per_mille,
            pixels_per_tenant: self.pixels_per_tenant,
        }
    }

    /// What is out of bounds, if anything (for a command line to refuse);
    /// [`Sandbox::new`] brings each setting within its bounds instead.
    pub fn check(&self) -> Result<(), String> {
        self.world().check()
    }
}

/// The sandbox ad platform. Cheap to clone; clones share the epochs read.
#[derive(Clone)]
pub struct Sandbox {
    store: Store,
    world: Arc<WorldConfig>,
    /// `None`: the service's clock; otherwise a fixed instant (tests).
    now_us: Option<i64>,
    /// Tenants' epochs, which never change once stored.
    epochs: Arc<Mutex<HashMap<i64, i64>>>,
    writer: Arc<Writer>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("world", &self.world).field("now_us", &self.now_us).finish_non_exhaustive()
    }
}

/// A storage failure, logged; the caller sees only that the sandbox is
/// unavailable (never the database's words).
fn unavailable(error: StorageError) -> PlatformError {
    tracing::warn!(%error, "the ad sandbox's storage failed");
    PlatformError::Unavailable("the sandbox's storage failed".to_owned())
}

fn refused(message: String) -> PlatformError {
    PlatformError::Refused { code: 100, subcode: None, message }
}

fn segment(record: SpendRecord) -> Segment {
    Segment {
        seq: record.seq,
        at_us: record.at_us,
        local_day: record.local_day,
        cap_cents: record.cap_cents,
        amount_spent_cents: record.amount_spent_cents,
        lifetime_spent_cents: record.lifetime_spent_cents,
    }
}

fn record(segment: &Segment) -> SpendRecord {
    SpendRecord {
        seq: segment.seq,
        at_us: segment.at_us,
        local_day: segment.local_day,
        cap_cents: segment.cap_cents,
        amount_spent_cents: segment.amount_spent_cents,
        lifetime_spent_cents: segment.lifetime_spent_cents,
    }
}

impl Sandbox {
    /// A sandbox on `store`; settings out of bounds are brought within them.
    pub fn new(store: Store, config: SandboxConfig) -> Sandbox {
        Sandbox { writer: Arc::new(Writer::new(store.clone())), store, world: Arc::new(config.world().bounded()), now_us: None, epochs: Arc::default() }
    }

    /// For tests: the same sandbox at another instant (microseconds since
    /// the epoch). Writes made through it happen at that instant.
    pub fn at(&self, now_us: i64) -> Sandbox {
        Sandbox { now_us: Some(now_us), ..self.clone() }
    }

    fn now(&self) -> i64 {
        self.now_us.unwrap_or_else(crate::now_us)
    }

    /// The tenant's epoch, stored at its first use (by whichever process
    /// came first).
    async fn epoch(&self, tenant_id: i64, now_us: i64) -> PlatformResult<i64> {
        if let Some(epoch) = self.epochs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&tenant_id) {
            return Ok(*epoch);
        }
        let tenant = TenantId(tenant_id);
        let epoch = match ad_sandbox::epoch(&self.store, tenant).await.map_err(unavailable)? {
            Some(epoch) => epoch,
            None => {
                let mut tx = self.store.begin_write().await.map_err(unavailable)?;
                let epoch = ad_sandbox::start(&mut tx, tenant, now_us).await.map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                epoch
            }
        };
        self.epochs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(tenant_id, epoch);
        Ok(epoch)
    }

    async fn world(&self, scope: &Scope, now_us: i64) -> PlatformResult<World<'_>> {
        let epoch = self.epoch(scope.tenant_id, now_us).await?;
        World::new(&self.world, scope.tenant_id, epoch).ok_or_else(|| PlatformError::Unavailable(format!("the sandbox serves tenant ids below 2^30, not {}", scope.tenant_id)))
    }

    /// The account, if it exists now and is the tenant's.
    async fn account(&self, scope: &Scope, account_id: &str, now_us: i64) -> PlatformResult<(World<'_>, AccountProfile)> {
        let world = self.world(scope, now_us).await?;
        let account = world.account(account_id, now_us).ok_or(PlatformError::NotFound)?;
        Ok((world, account))
    }

    async fn segment_in_force(&self, scope: &Scope, account: &AccountProfile) -> PlatformResult<Segment> {
        let stored = ad_sandbox::spend(&self.store, TenantId(scope.tenant_id), &account.account_id).await.map_err(unavailable)?;
        Ok(stored.map_or_else(|| account.first_segment(), segment))
    }

    /// Starts the segment a change makes of the one in force (see [`writes`]).
    async fn write_spend(&self, scope: &Scope, account_id: &str, change: Change) -> PlatformResult<()> {
        let now_us = self.now();
        let (_, account) = self.account(scope, account_id, now_us).await?;
        self.writer.apply(TenantId(scope.tenant_id), account, now_us, change).await
    }

    /// Binds or unbinds, after checking the account.
    async fn write_binding(&self, scope: &Scope, account_id: &str, kind: BindingKind, target_id: &str, bind: bool) -> PlatformResult<bool> {
        let now_us = self.now();
        self.account(scope, account_id, now_us).await?;
        let tenant = TenantId(scope.tenant_id);
        let bound_from_start = kind == BindingKind::Business && target_id == scope.business_id;
        let mut tx = self.store.begin_write().await.map_err(unavailable)?;
        let changed = if bind {
            ad_sandbox::bind(&mut tx, tenant, account_id, kind, target_id, now_us).await.map(|()| true)
        } else {
            ad_sandbox::unbind(&mut tx, tenant, account_id, kind, target_id, bound_from_start, now_us).await
        }
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(changed)
    }

    /// The ids of what the account is bound to now: those bound from the
    /// start (`from_start`) unless unbound since, and those bound since.
    async fn bound(&self, scope: &Scope, account_id: &str, kind: BindingKind, from_start: Option<&str>) -> PlatformResult<Vec<String>> {
        let rows = ad_sandbox::bindings(&self.store, TenantId(scope.tenant_id), account_id, kind).await.map_err(unavailable)?;
        let start = from_start.filter(|id| !rows.iter().any(|row| row.target_id == *id)).map(str::to_owned);
        Ok(start.into_iter().chain(rows.into_iter().filter(|row| row.bound).map(|row| row.target_id)).collect())
    }
}

impl AdPlatform for Sandbox {
    async fn creation_requests(&self, scope: &Scope) -> PlatformResult<Vec<CreationRequest>> {
        let now_us = self.now();
        Ok(self.world(scope, now_us).await?.creation_requests(&scope.business_id, now_us))
    }

    async fn ad_accounts(&self, scope: &Scope) -> PlatformResult<Vec<AdAccount>> {
        let now_us = self.now();
        let world = self.world(scope, now_us).await?;
        let written: HashMap<String, SpendRecord> = ad_sandbox::all_spend(&self.store, TenantId(scope.tenant_id)).await.map_err(unavailable)?.into_iter().collect();
        Ok(world
            .accounts(now_us)
            .iter()
            .map(|account| {
                let in_force = written.get(&account.account_id).copied().map_or_else(|| account.first_segment(), segment);
                account.ad_account(&in_force, &scope.business_id, now_us)
            })
            .collect())
    }

    async fn ad_account(&self, scope: &Scope, account_id: &str) -> PlatformResult<AdAccount> {
        let now_us = self.now();
        let (_, account) = self.account(scope, account_id, now_us).await?;
        let in_force = self.segment_in_force(scope, &account).await?;
        Ok(account.ad_account(&in_force, &scope.business_id, now_us))
    }

    async fn set_spend_cap(&self, scope: &Scope, account_id: &str, spend_cap_cents: i64) -> PlatformResult<()> {
        self.write_spend(scope, account_id, Change::Cap(spend_cap_cents)).await
    }

    async fn reset_spend_cap(&self, scope: &Scope, account_id: &str) -> PlatformResult<()> {
        self.write_spend(scope, account_id, Change::Reset).await
    }

    async fn businesses(&self, scope: &Scope, account_id: &str) -> PlatformResult<Vec<Business>> {
        self.account(scope, account_id, self.now()).await?;
        let bound = self.bound(scope, account_id, BindingKind::Business, Some(&scope.business_id)).await?;
        Ok(bound.iter().map(|id| model::business(id, &scope.business_id)).collect())
    }

    async fn bind_business(&self, scope: &Scope, account_id: &str, business_id: &str) -> PlatformResult<()> {
        if !model::business_id_valid(business_id) {
            return Err(refused(format!("Invalid parameter: business {business_id:?} is not a Business Manager id")));
        }
        self.write_binding(scope, account_id, BindingKind::Business, business_id, true).await.map(|_| ())
    }

    async fn unbind_business(&self, scope: &Scope, account_id: &str, business_id: &str) -> PlatformResult<()> {
        if !model::business_id_valid(business_id) {
            return Err(refused(format!("Invalid parameter: business {business_id:?} is not a Business Manager id")));
        }
        match self.write_binding(scope, account_id, BindingKind::Business, business_id, false).await? {
            true => Ok(()),
            false => Err(refused(format!("Invalid parameter: business {business_id} has no access to ad account act_{account_id}"))),
        }
    }

    async fn pixels(&self, scope: &Scope, account_id: &str) -> PlatformResult<Vec<Pixel>> {
        let now_us = self.now();
        let (world, _) = self.account(scope, account_id, now_us).await?;
        let bound = self.bound(scope, account_id, BindingKind::Pixel, None).await?;
        Ok(bound.iter().filter_map(|id| world.pixel(id)).collect())
    }

    async fn bind_pixel(&self, scope: &Scope, account_id: &str, pixel_id: &str) -> PlatformResult<()> {
        let (world, _) = self.account(scope, account_id, self.now()).await?;
        if world.pixel(pixel_id).is_none() {
            return Err(refused(format!("Invalid parameter: pixel {pixel_id:?} does not exist or cannot be shared by this business")));
        }
        self.write_binding(scope, account_id, BindingKind::Pixel, pixel_id, true).await.map(|_| ())
    }

    async fn unbind_pixel(&self, scope: &Scope, account_id: &str, pixel_id: &str) -> PlatformResult<()> {
        match self.write_binding(scope, account_id, BindingKind::Pixel, pixel_id, false).await? {
            true => Ok(()),
            false => Err(refused(format!("Invalid parameter: pixel {pixel_id:?} is not shared with ad account act_{account_id}"))),
        }
    }

    async fn daily_insights(&self, scope: &Scope, account_id: &str, window: &InsightsWindow) -> PlatformResult<Vec<InsightsRow>> {
        let now_us = self.now();
        let (_, account) = self.account(scope, account_id, now_us).await?;
        let history = match account.insights_days(window, now_us) {
            Some((first, last)) => ad_sandbox::spend_days(&self.store, TenantId(scope.tenant_id), account_id, first, last).await.map_err(unavailable)?.into_iter().map(segment).collect(),
            None => Vec::new(),
        };
        account.daily_insights(&history, window, now_us)
    }
}

mod writes;

#[cfg(test)]
mod tests;
