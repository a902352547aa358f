//! Ad accounts resold on Meta: the service layer of the ad-account reseller
//! dialect (`/api/v1`, `/lb/api/v1`).
//!
//! A tenant (an agency) is served by one ad platform ([`Upstream`]): Meta's
//! Graph API with the agency's Business Manager and system-user token, or the
//! built-in [`sandbox`] (the default, made on first use). What the platform
//! knows is synced into the database by a background job ([`sync`]), so that
//! lists and insights answer from local data; writes go to the platform at
//! once. Money moves only through the ledger: raising a spend cap is funded
//! from the tenant's USD wallet in two phases ([`caps`]), and Meta's reported
//! spend moves to the tenant's `ad_payable` wallet.
//!
//! Upstream calls never run on the ledger worker and never inside a database
//! transaction; each write runs in a task of its own, so a client that goes
//! away does not stop it half-way.

pub mod caps;
pub mod insights;
mod operator;
pub mod sandbox;
pub mod sync;
#[cfg(test)]
mod test_db;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde_json::{Map, Value};
use subledger_ads::graph::{GraphApi, GraphConfig};
use subledger_ads::{AdPlatform, Business, CreationRequest, InsightsRow, InsightsWindow, Pixel, PlatformResult, Scope};
use subledger_domain::ads::{AdStatus, BlacklistLevel, RechargeRefusal, recharge_refusal};
use subledger_domain::calendar::{Day, to_unix_micros};
use subledger_storage::ads::{self as store_ads, AdAccountRecord, ConnectionRecord, RequestRecord};

use crate::error::{Resource, ServiceError, ServiceResult};
use crate::secrets::SealingKey;
use crate::tenants::Tenant;
use crate::{Change, Services, now_us};

pub use operator::{AdConnectionInput, BlacklistInput};
pub use sandbox::{Sandbox, SandboxConfig};

/// Most accounts one page of `account_list` holds (spec: 1027 beyond 500).
pub const AD_ACCOUNT_PAGE_SIZE_MAX: i64 = 500;
/// Longest `search_id` kept; a longer one is refused as invalid.
pub const SEARCH_ID_CHARS_MAX: usize = 128;
/// Longest id of an ad account, request, Business Manager or pixel accepted.
pub const AD_ID_CHARS_MAX: usize = 64;

/// How the ad dialect reaches its platforms and how often it syncs.
#[derive(Debug, Clone)]
pub struct AdsConfig {
    pub graph: GraphConfig,
    pub sandbox: SandboxConfig,
    /// Seals tenants' Meta tokens; without it only the sandbox can be used.
    pub token_key: Option<SealingKey>,
    /// How long a synced tenant waits for its next sync.
    pub sync_every: Duration,
    /// How long a process holds a tenant's sync lease (a sync that takes longer
    /// may be joined by another process, which is safe, only wasteful).
    pub sync_lease: Duration,
    /// How far back a sync reads insights, in days (today included).
    pub insights_days: u32,
    /// How long a cap change's reservation lasts before it voids itself; the
    /// recovery job settles unknown outcomes well within it.
    pub hold_timeout: Duration,
    /// How old an unsettled write must be before the recovery job settles it
    /// (longer than an upstream call's deadline, so a live call is never raced).
    pub recovery_after: Duration,
}

impl Default for AdsConfig {
    fn default() -> Self {
        AdsConfig {
            graph: GraphConfig::default(),
            sandbox: SandboxConfig::default(),
            token_key: None,
            sync_every: Duration::from_secs(300),
            sync_lease: Duration::from_secs(600),
            insights_days: 7,
            hold_timeout: Duration::from_secs(3_600),
            recovery_after: Duration::from_secs(60),
        }
    }
}

/// What serves the ad dialect, shared by every request.
pub struct AdsRuntime {
    pub config: AdsConfig,
    graph: GraphApi,
    sandbox: Sandbox,
    /// Names this process in sync leases.
    process_id: String,
    /// Insights answers valid until the tenant's next sync.
    answers: insights::InsightsAnswers,
}

impl AdsRuntime {
    pub fn new(store: subledger_storage::Store, config: AdsConfig) -> AdsRuntime {
        AdsRuntime {
            graph: GraphApi::new(config.graph.clone()),
            sandbox: Sandbox::new(store, config.sandbox.clone()),
            config,
            process_id: format!("{}-{}", std::process::id(), crate::secrets::random_lower36(8)),
            answers: insights::InsightsAnswers::default(),
        }
    }
}

/// The platform serving one tenant.
#[derive(Clone)]
pub enum Upstream {
    Graph(GraphApi),
    Sandbox(Sandbox),
}

/// Calls the same method on whichever platform serves.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)+) => {
        impl AdPlatform for Upstream {
            $(async fn $name(&self, scope: &Scope, $($arg: $ty),*) -> PlatformResult<$out> {
                match self {
                    Upstream::Graph(graph) => graph.$name(scope, $($arg),*).await,
                    Upstream::Sandbox(sandbox) => sandbox.$name(scope, $($arg),*).await,
                }
            })+
        }
    };
}

forward! {
    creation_requests() -> Vec<CreationRequest>;
    ad_accounts() -> Vec<subledger_ads::AdAccount>;
    ad_account(account_id: &str) -> subledger_ads::AdAccount;
    set_spend_cap(account_id: &str, spend_cap_cents: i64) -> ();
    reset_spend_cap(account_id: &str) -> ();
    businesses(account_id: &str) -> Vec<Business>;
    bind_business(account_id: &str, business_id: &str) -> ();
    unbind_business(account_id: &str, business_id: &str) -> ();
    pixels(account_id: &str) -> Vec<Pixel>;
    bind_pixel(account_id: &str, pixel_id: &str) -> ();
    unbind_pixel(account_id: &str, pixel_id: &str) -> ();
    daily_insights(account_id: &str, window: &InsightsWindow) -> Vec<InsightsRow>;
}

/// Why the reseller's rules refused a request, before anything was asked upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdRefusal {
    /// The account cannot be topped up now (1020, 1021, 1013).
    #[error("{0}")]
    Recharge(RechargeRefusal),
    /// A closed account cannot be reset (1013).
    #[error("the ad account's status is {0} ({code}): it cannot be reset", code = .0.code())]
    ResetStatus(AdStatus),
    /// The cap asked for does not exceed what Meta has already spent (1007).
    #[error("the spend cap must be above the amount already spent ({amount_spent_cents} cents)")]
    CapNotAboveSpent { amount_spent_cents: i64 },
    /// The operator paused unbinding Business Managers (1022).
    #[error("unbinding Business Managers is paused")]
    UnbindingPaused,
    /// This `search_id`'s write, or another money change of the account, is
    /// still under way; asking again later answers its outcome (1011).
    #[error("a change of this ad account is still being applied; ask again with the same search_id")]
    InProgress,
    /// The platform's answer was lost and reading the account back showed the
    /// change was not applied: nothing changed (1011).
    #[error("the ad platform did not answer in time and the change was not applied")]
    NotApplied,
    /// The `search_id` was used before for another request.
    #[error("this search_id was already used for another request")]
    SearchIdReused,
}

/// A write of the dialect: its idempotency key and who asks.
#[derive(Debug, Clone)]
pub struct AdWrite {
    /// The request's `search_id`: a replay answers the first outcome.
    pub search_id: Option<String>,
    pub change: Change,
}

/// An ad account creation request, as last synced.
#[derive(Debug, Clone, PartialEq)]
pub struct AdRequestView {
    /// The form's id (`oe_request_id`), which `get_request_list` lists.
    pub id: String,
    /// Meta's AdAccountCreationRequest id.
    pub aac_id: String,
    pub status: String,
    pub company_name: String,
    pub time_created_us: i64,
    pub time_updated_us: i64,
    /// The ad accounts it issued: (account id, name).
    pub ad_accounts: Vec<(String, String)>,
    /// Meta's fields, as Meta gave them.
    pub fields: Map<String, Value>,
}

/// An ad account, as last synced (or read just now), with the reseller's view of it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdAccountView {
    pub id: String,
    pub name: String,
    pub request_id: Option<String>,
    pub company_name: String,
    pub status: AdStatus,
    pub meta_status: i64,
    pub disable_reason: i64,
    pub currency: String,
    pub spend_cap_cents: i64,
    pub amount_spent_cents: i64,
    pub total_spent_cents: i64,
    pub created_time_us: i64,
    pub violation: bool,
    pub violation_reason: String,
    /// The opening company's blacklist level in force now.
    pub blacklist: BlacklistLevel,
    pub fields: Map<String, Value>,
    pub synced_at_us: i64,
}

/// Which accounts `account_list` lists: created on these days of the tenant (both included).
#[derive(Debug, Clone, Default)]
pub struct AdAccountFilter {
    pub created_from: Option<Day>,
    pub created_until: Option<Day>,
}

fn json_object(text: &str) -> ServiceResult<Map<String, Value>> {
    serde_json::from_str(text).map_err(|e| ServiceError::Storage(subledger_storage::StorageError::Corrupt(format!("stored ad fields are not a JSON object: {e}"))))
}

fn request_view(record: RequestRecord) -> ServiceResult<AdRequestView> {
    let fields = json_object(&record.fields)?;
    let ad_accounts = fields
        .get("adaccounts")
        .and_then(|edge| edge.get("data"))
        .and_then(Value::as_array)
        .map(|accounts| {
            accounts
                .iter()
                .filter_map(|a| {
                    let id = a.get("account_id").and_then(Value::as_str)?;
                    Some((id.to_owned(), a.get("name").and_then(Value::as_str).unwrap_or_default().to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(AdRequestView {
        id: record.id,
        aac_id: record.aac_id,
        status: record.status,
        company_name: record.company_name,
        time_created_us: record.time_created_us,
        time_updated_us: record.time_updated_us,
        ad_accounts,
        fields,
    })
}

fn account_view(record: AdAccountRecord, now_us: i64) -> ServiceResult<AdAccountView> {
    let blacklist = match record.blacklist_level {
        Some(level) => BlacklistLevel::from_code(level)
            .ok_or_else(|| ServiceError::Storage(subledger_storage::StorageError::Corrupt(format!("blacklist level {level}"))))?
            .in_force(record.blacklist_until_us, now_us),
        None => BlacklistLevel::None,
    };
    Ok(AdAccountView {
        status: AdStatus::of(record.meta_status, record.spend_cap_cents, record.amount_spent_cents),
        fields: json_object(&record.fields)?,
        id: record.id,
        name: record.name,
        request_id: record.request_id,
        company_name: record.company_name,
        meta_status: record.meta_status,
        disable_reason: record.disable_reason,
        currency: record.currency,
        spend_cap_cents: record.spend_cap_cents,
        amount_spent_cents: record.amount_spent_cents,
        total_spent_cents: record.total_spent_cents,
        created_time_us: record.created_time_us,
        violation: record.violation != 0,
        violation_reason: record.violation_reason,
        blacklist,
        synced_at_us: record.synced_at_us,
    })
}

/// The sandbox's Business Manager id for a tenant: digits, stable.
fn sandbox_business_id(tenant: &Tenant) -> String {
    format!("{}", 1_000_000_000_000_000 + tenant.id.0)
}

impl Services {
    /// The tenant's connection, made (the sandbox) on first use.
    pub(crate) async fn ad_connection(&self, tenant: &Tenant) -> ServiceResult<ConnectionRecord> {
        if let Some(connection) = store_ads::connection(&self.store, tenant.id).await? {
            return Ok(connection);
        }
        let mut tx = self.store.begin_write().await?;
        store_ads::insert_connection_if_absent(&mut tx, tenant.id, "sandbox", &sandbox_business_id(tenant), None, now_us()).await?;
        tx.commit().await?;
        store_ads::connection(&self.store, tenant.id).await?.ok_or(ServiceError::NotFound(Resource::Tenant))
    }

    /// The platform serving the tenant and the scope of its calls.
    pub async fn ad_upstream(&self, tenant: &Tenant) -> ServiceResult<(Upstream, Scope)> {
        let connection = self.ad_connection(tenant).await?;
        let mut scope = Scope { tenant_id: tenant.id.0, business_id: connection.business_id, access_token: String::new() };
        match (connection.platform.as_str(), connection.token_sealed) {
            ("graph", Some(sealed)) => {
                let key = self.ads.config.token_key.as_ref().ok_or(ServiceError::Unavailable("the server has no --ads-token-key: Meta tokens cannot be opened"))?;
                scope.access_token = key.open(&sealed, &token_context(tenant)).map_err(|_| ServiceError::Unavailable("the tenant's Meta token does not open with the server's key"))?;
                Ok((Upstream::Graph(self.ads.graph.clone()), scope))
            }
            _ => Ok((Upstream::Sandbox(self.ads.sandbox.clone()), scope)),
        }
    }

    /// Ids of the tenant's creation requests in creation order, after the
    /// request `after` when given.
    pub async fn ad_request_ids(&self, tenant: &Tenant, after: Option<&str>) -> ServiceResult<Vec<String>> {
        self.ad_connection(tenant).await?;
        let after = match after {
            Some(id) => {
                let request = store_ads::request(&self.store, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::AdRequest))?;
                Some((request.time_created_us, request.id))
            }
            None => None,
        };
        Ok(store_ads::request_ids_after(&self.store, tenant.id, after.as_ref().map(|(at, id)| (*at, id.as_str())), store_ads::ADS_LIST_MAX).await?)
    }

    /// A creation request by the form's id.
    pub async fn ad_request(&self, tenant: &Tenant, id: &str) -> ServiceResult<AdRequestView> {
        request_view(store_ads::request(&self.store, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::AdRequest))?)
    }

    /// A creation request by Meta's id.
    pub async fn ad_creation_request(&self, tenant: &Tenant, aac_id: &str) -> ServiceResult<AdRequestView> {
        request_view(store_ads::request_by_aac(&self.store, tenant.id, aac_id).await?.ok_or(ServiceError::NotFound(Resource::AdRequest))?)
    }

    /// An ad account of the tenant, as last synced. Another tenant's account
    /// is not found, exactly like an unknown one.
    pub async fn ad_account(&self, tenant: &Tenant, id: &str) -> ServiceResult<AdAccountView> {
        account_view(store_ads::account(&self.store, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::AdAccount))?, now_us())
    }

    /// An ad account read from the platform now (`account_info`); its synced
    /// fields are refreshed, its money stays as the ledger funds it.
    pub async fn ad_account_info(&self, tenant: &Tenant, id: &str) -> ServiceResult<AdAccountView> {
        let mut view = self.ad_account(tenant, id).await?;
        let (upstream, scope) = self.ad_upstream(tenant).await?;
        let fresh = upstream.ad_account(&scope, id).await.map_err(ServiceError::Upstream)?;
        view.name = fresh.name;
        view.meta_status = fresh.account_status;
        view.disable_reason = fresh.disable_reason;
        view.fields = fresh.fields;
        view.spend_cap_cents = fresh.spend_cap_cents;
        view.amount_spent_cents = fresh.amount_spent_cents;
        view.status = AdStatus::of(view.meta_status, view.spend_cap_cents, view.amount_spent_cents);
        Ok(view)
    }

    /// A page (numbered from 1) of the tenant's accounts, newest first, and how many match.
    pub async fn ad_accounts(&self, tenant: &Tenant, filter: &AdAccountFilter, page_num: i64, page_size: i64) -> ServiceResult<(Vec<AdAccountView>, i64)> {
        if !(1..=AD_ACCOUNT_PAGE_SIZE_MAX).contains(&page_size) || page_num < 1 {
            return Err(ServiceError::Invalid { field: "page_size", reason: format!("page_num must be 1 or more and page_size from 1 to {AD_ACCOUNT_PAGE_SIZE_MAX}") });
        }
        let offset = (page_num - 1).checked_mul(page_size).filter(|offset| *offset <= subledger_domain::paging::Page::OFFSET_MAX);
        let Some(offset) = offset else { return Err(ServiceError::Invalid { field: "page_num", reason: "too far".to_owned() }) };
        self.ad_connection(tenant).await?;
        let from_us = filter.created_from.map_or(i64::MIN, |day| to_unix_micros(tenant.timezone.start_of_day(day)));
        let until_us = filter.created_until.map_or(i64::MAX, |day| to_unix_micros(tenant.timezone.start_of_day(day.next())));
        let (total, records) = store_ads::accounts_page(&self.store, tenant.id, from_us, until_us, offset, page_size).await?;
        let now = now_us();
        Ok((records.into_iter().map(|r| account_view(r, now)).collect::<ServiceResult<_>>()?, total))
    }

    /// Whether the account can be topped up now, and if not why.
    pub async fn ad_recharge_status(&self, tenant: &Tenant, id: &str) -> ServiceResult<Option<RechargeRefusal>> {
        let account = self.ad_account(tenant, id).await?;
        Ok(recharge_refusal(account.violation, account.blacklist, account.status))
    }

    /// The Business Managers the account is shared with, read from the platform now.
    pub async fn ad_businesses(&self, tenant: &Tenant, id: &str) -> ServiceResult<Vec<Business>> {
        self.ad_account(tenant, id).await?;
        let (upstream, scope) = self.ad_upstream(tenant).await?;
        let businesses = upstream.businesses(&scope, id).await.map_err(ServiceError::Upstream)?;
        self.remember_businesses(tenant, id, &businesses).await?;
        Ok(businesses)
    }

    /// The pixels the account can use, read from the platform now.
    pub async fn ad_pixels(&self, tenant: &Tenant, id: &str) -> ServiceResult<Vec<Pixel>> {
        self.ad_account(tenant, id).await?;
        let (upstream, scope) = self.ad_upstream(tenant).await?;
        let pixels = upstream.pixels(&scope, id).await.map_err(ServiceError::Upstream)?;
        self.remember_pixels(tenant, id, &pixels).await?;
        Ok(pixels)
    }

    pub(crate) async fn remember_businesses(&self, tenant: &Tenant, id: &str, businesses: &[Business]) -> ServiceResult<()> {
        let rows: Vec<_> = businesses.iter().map(|b| (b.id.clone(), b.name.clone(), serde_json::to_string(&b.permitted_tasks).unwrap_or_else(|_| "[]".to_owned()))).collect();
        let mut tx = self.store.begin_write().await?;
        store_ads::replace_businesses(&mut tx, tenant.id, id, &rows).await?;
        Ok(tx.commit().await?)
    }

    pub(crate) async fn remember_pixels(&self, tenant: &Tenant, id: &str, pixels: &[Pixel]) -> ServiceResult<()> {
        let rows: Vec<_> = pixels.iter().map(|p| (p.id.clone(), p.name.clone())).collect();
        let mut tx = self.store.begin_write().await?;
        store_ads::replace_pixels(&mut tx, tenant.id, id, &rows).await?;
        Ok(tx.commit().await?)
    }
}

/// What a tenant's sealed token is bound to.
fn token_context(tenant: &Tenant) -> String {
    format!("ads-token:tenant:{}", tenant.id.0)
}
