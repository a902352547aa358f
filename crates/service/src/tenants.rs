//! Tenants: creation with their credentials and wallets, lookup by each
//! dialect's kind of credential, and settings.

use subledger_domain::access::Language;
use subledger_domain::account::{DailyQuota, TenantName};
use subledger_domain::calendar::TenantTimeZone;
use subledger_domain::ids::{TenantId, TenantPublicId};
use subledger_domain::ledger::WalletPurpose;
use subledger_domain::money::Currency;
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_domain::paging::Page;
use subledger_storage::tenants::{self as store_tenants, NewTenant, TenantChanges, TenantRecord};
use subledger_storage::wallets::{self as store_wallets, WalletOwner};
use subledger_storage::{StorageError, WriteTx};

use crate::Change;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::secrets::{random_base62, random_lower36, token_digest};
use crate::{Services, now_us};

/// A tenant, with its settings parsed.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub public_id: TenantPublicId,
    pub name: String,
    pub timezone: TenantTimeZone,
    /// Operation log descriptions and application names are given in it.
    pub language: Language,
    pub app_id: String,
    pub account_limit: i64,
    pub default_daily_quota: i64,
    pub created_at_us: i64,
    app_key: String,
}

impl Tenant {
    fn from_record(record: TenantRecord) -> ServiceResult<Tenant> {
        let timezone = TenantTimeZone::parse(&record.timezone).map_err(|e| ServiceError::Storage(StorageError::Corrupt(e.to_string())))?;
        Ok(Tenant {
            id: record.tenant_id(),
            public_id: TenantPublicId(record.public_id),
            name: record.name,
            timezone,
            language: Language::parse(&record.language).map_err(|e| ServiceError::Storage(StorageError::Corrupt(e.to_string())))?,
            app_id: record.app_id,
            account_limit: record.account_limit,
            default_daily_quota: record.default_daily_quota,
            created_at_us: record.created_at_us,
            app_key: record.app_key,
        })
    }

    /// The SendCloud signing key (`app_key`), with which the dialect recomputes
    /// a request's signature.
    pub fn signing_key(&self) -> &str {
        &self.app_key
    }
}

/// A tenant just created or re-keyed, with the secrets shown this once.
#[derive(Debug, Clone)]
pub struct TenantWithSecrets {
    pub tenant: Tenant,
    pub app_key: String,
    pub api_token: String,
}

/// Changes to a tenant's settings; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    pub name: Option<TenantName>,
    pub timezone: Option<TenantTimeZone>,
    pub language: Option<Language>,
    pub account_limit: Option<i64>,
    pub default_daily_quota: Option<DailyQuota>,
}

/// Most tenants one listing returns.
pub const TENANT_PAGE_MAX: i64 = 200;
/// Most accounts a tenant may be allowed (a bound on the setting itself).
pub const ACCOUNT_LIMIT_MAX: i64 = 10_000_000;

const APP_ID_CHARS: usize = 24;
const APP_KEY_CHARS: usize = 32;
const API_TOKEN_CHARS: usize = 40;
pub const API_TOKEN_PREFIX: &str = "slt_";

fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", random_base62(API_TOKEN_CHARS))
}

impl Services {
    pub async fn create_tenant(&self, name: TenantName, timezone: TenantTimeZone, change: &Change) -> ServiceResult<TenantWithSecrets> {
        let public_id = format!("tn_{}", random_lower36(16));
        let app_id = random_lower36(APP_ID_CHARS);
        let app_key = random_base62(APP_KEY_CHARS);
        let api_token = new_api_token();
        let now = now_us();
        let mut tx = self.store.begin_write().await?;
        let id = store_tenants::insert(
            &mut tx,
            &NewTenant {
                public_id: &public_id,
                name: name.as_str(),
                timezone: timezone.name(),
                app_id: &app_id,
                app_key: &app_key,
                api_token_sha256: &token_digest(&api_token),
                account_limit: self.config.account_limit_default,
                default_daily_quota: self.config.daily_quota_default,
                now_us: now,
            },
        )
        .await?;
        // Wallets in the built-in products' currency; others open on first use.
        create_tenant_wallets(&mut tx, id, subledger_domain::catalog::BUILTIN_CURRENCY, now).await?;
        change.commit(tx, id, Operation::new(OperationKind::TenantCreate, name.as_str())).await?;
        let tenant = self.tenant(id).await?;
        Ok(TenantWithSecrets { tenant, app_key, api_token })
    }

    pub async fn tenant(&self, id: TenantId) -> ServiceResult<Tenant> {
        let record = store_tenants::get(&self.store, id).await?.ok_or(ServiceError::NotFound(Resource::Tenant))?;
        Tenant::from_record(record)
    }

    pub async fn tenant_by_app_id(&self, app_id: &str) -> ServiceResult<Option<Tenant>> {
        if let Some(tenant) = self.caches.tenant_by_app_id(app_id) {
            return Ok(Some(tenant));
        }
        let tenant = store_tenants::find_by_app_id(&self.store, app_id).await?.map(Tenant::from_record).transpose()?;
        if let Some(tenant) = &tenant {
            self.caches.remember_app_id(tenant);
        }
        Ok(tenant)
    }

    /// Finds a tenant by its `tn_…` id or its app id (what the CLI's `--tenant` takes).
    pub async fn find_tenant(&self, reference: &str) -> ServiceResult<Tenant> {
        let record = match store_tenants::find_by_public_id(&self.store, reference).await? {
            Some(record) => Some(record),
            None => store_tenants::find_by_app_id(&self.store, reference).await?,
        };
        Tenant::from_record(record.ok_or(ServiceError::NotFound(Resource::Tenant))?)
    }

    /// The tenant whose native API token this is, if any. The lookup is by
    /// digest, so the token itself is never compared or stored.
    pub async fn tenant_by_api_token(&self, token: &str) -> ServiceResult<Option<Tenant>> {
        if !token.starts_with(API_TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        let digest = token_digest(token);
        if let Some(tenant) = self.caches.tenant_by_token_digest(&digest) {
            return Ok(Some(tenant));
        }
        let tenant = store_tenants::find_by_token_sha256(&self.store, &digest).await?.map(Tenant::from_record).transpose()?;
        if let Some(tenant) = &tenant {
            self.caches.remember_token_digest(digest, tenant);
        }
        Ok(tenant)
    }

    pub async fn list_tenants(&self, page: Page) -> ServiceResult<(i64, Vec<Tenant>)> {
        let limit = page.limit.min(TENANT_PAGE_MAX);
        let total = store_tenants::count(&self.store).await?;
        let tenants = store_tenants::list(&self.store, page.offset, limit).await?.into_iter().map(Tenant::from_record).collect::<ServiceResult<_>>()?;
        Ok((total, tenants))
    }

    pub async fn update_tenant(&self, id: TenantId, update: TenantUpdate, change: &Change) -> ServiceResult<Tenant> {
        if let Some(limit) = update.account_limit
            && !(0..=ACCOUNT_LIMIT_MAX).contains(&limit)
        {
            return Err(ServiceError::Invalid { field: "account_limit", reason: format!("must be from 0 to {ACCOUNT_LIMIT_MAX}") });
        }
        let mut tx = self.store.begin_write().await?;
        let changes = TenantChanges {
            name: update.name.as_ref().map(TenantName::as_str),
            timezone: update.timezone.as_ref().map(TenantTimeZone::name),
            language: update.language.map(Language::as_str),
            account_limit: update.account_limit,
            default_daily_quota: update.default_daily_quota.map(DailyQuota::get),
            ..TenantChanges::default()
        };
        if !store_tenants::update(&mut tx, id, &changes, now_us()).await? {
            return Err(ServiceError::NotFound(Resource::Tenant));
        }
        change.commit(tx, id, Operation::new(OperationKind::TenantUpdate, "")).await?;
        self.caches.forget_tenants();
        self.tenant(id).await
    }

    /// Issues new secrets (the old ones stop working at once) and shows them this once.
    pub async fn rotate_tenant_secrets(&self, id: TenantId, change: &Change) -> ServiceResult<TenantWithSecrets> {
        let app_key = random_base62(APP_KEY_CHARS);
        let api_token = new_api_token();
        let digest = token_digest(&api_token);
        let mut tx = self.store.begin_write().await?;
        let changes = TenantChanges { app_key: Some(&app_key), api_token_sha256: Some(&digest), ..TenantChanges::default() };
        if !store_tenants::update(&mut tx, id, &changes, now_us()).await? {
            return Err(ServiceError::NotFound(Resource::Tenant));
        }
        change.commit(tx, id, Operation::new(OperationKind::TenantRotateSecrets, "")).await?;
        self.caches.forget_tenants();
        Ok(TenantWithSecrets { tenant: self.tenant(id).await?, app_key, api_token })
    }
}

/// The tenant's own wallets of a currency: `primary` and `promo` (floor 0 until
/// an overdraft is granted) and the system wallets `world` and `revenue`
/// (unbounded, since they stand for the outside).
pub(crate) async fn create_tenant_wallets(tx: &mut WriteTx, tenant: TenantId, currency: Currency, now: i64) -> ServiceResult<()> {
    let owner = WalletOwner::Tenant(tenant);
    for (purpose, floor) in [(WalletPurpose::Primary, Some(0)), (WalletPurpose::Promo, Some(0)), (WalletPurpose::World, None), (WalletPurpose::Revenue, None)] {
        store_wallets::ensure(tx, owner, purpose, currency, floor, now).await?;
    }
    Ok(())
}
