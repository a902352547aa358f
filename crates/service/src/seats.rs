//! Seats: accounts funded by their tenant (UUCall sub-users), and the
//! monthly items they subscribe to (function fees, rentals, the seat fee).
//!
//! - **Funding.** A tenant-funded account's usage and its close settlements
//!   are paid from its tenant's spendable wallets (promo first, then
//!   primary); its usage, rollups and bills stay its own. Storage's
//!   `usage_account_select` is where the paying wallets are chosen, for the
//!   usage engine and the close alike.
//! - **The seat fee.** Becoming tenant-funded (at creation, or with
//!   [`Services::set_funding`]) opens a subscription to the built-in `seat`
//!   product from that instant; going back to its own funding ends it. It
//!   costs what the tenant's `recurring` tariff of `seat` says (no tariff:
//!   nothing).
//! - **Subscriptions** to functions and rentals start and end in a month
//!   that is not closed or closing, nor followed by one (at most 400 days
//!   back, like usage), so a closed month's bill never changes. Month close
//!   charges each one pro-rated by the days of the month it was in force
//!   (`seats::fee_line`).

use subledger_domain::account::Funding;
use subledger_domain::calendar::{Month, from_unix_micros, to_unix_micros};
use subledger_domain::catalog::{ProductKind, SEAT_PRODUCT};
use subledger_domain::ids::{AccountId, SubscriptionId};
use subledger_domain::money::Currency;
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_domain::paging::Page;
use subledger_domain::rating::{PriceModel, UnitPrice};
use subledger_storage::subscriptions::{self as store_subscriptions, SubscriptionRecord};
use subledger_storage::{StorageError, UniqueKey, WriteTx, accounts as store_accounts, tenants as store_tenants};

use crate::accounts::Account;
use crate::catalog::Product;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::tenants::Tenant;
use crate::{Change, Services, now_us};

/// Largest page of a subscription listing.
pub const SUBSCRIPTION_PAGE_MAX: i64 = 200;

/// An account's subscription to a monthly item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub account: AccountId,
    pub product_code: String,
    pub from_us: i64,
    /// `None`: until further notice.
    pub until_us: Option<i64>,
}

impl From<SubscriptionRecord> for Subscription {
    fn from(r: SubscriptionRecord) -> Self {
        Subscription { id: r.id, account: r.account, product_code: r.product_code, from_us: r.from_us, until_us: r.until_us }
    }
}

/// A monthly item's price as the tenant's default tariff sets it now
/// (UUCall `funrate` / `hirerate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringRate {
    pub product_code: String,
    pub name: String,
    /// What the price is per: the product's unit per month, e.g. `个/月`.
    pub charge_unit: String,
    /// A month's price, in `currency`.
    pub price: UnitPrice,
    pub currency: Currency,
    /// When it is charged next: the start of next month in the tenant's zone
    /// (UUCall `nextRateTime`), where the month being used is closed.
    pub next_charge_at_us: i64,
}

impl Services {
    /// Sets whose wallets pay for an account: its own, or its tenant's (a
    /// seat, which also opens its seat fee's subscription from now; going
    /// back to its own ends it).
    pub async fn set_funding(&self, tenant: &Tenant, username: &str, funding: Funding, change: &Change) -> ServiceResult<Account> {
        let now = now_us();
        let mut tx = self.store.begin_write().await?;
        let record = store_accounts::set_funding(&mut tx, tenant.id, username, funding.as_str(), now).await?.ok_or(ServiceError::NotFound(Resource::Account))?;
        let account = AccountId(record.id);
        match funding {
            Funding::Tenant => open_seat(&mut tx, tenant, account, now).await?,
            Funding::Own => {
                store_subscriptions::end_open(&mut tx, tenant.id, account, SEAT_PRODUCT, now).await?;
            }
        }
        change.commit(tx, tenant.id, Operation::new(OperationKind::AccountFunding, username).with_detail(funding.as_str())).await?;
        Account::from_record(record)
    }

    /// Subscribes an account to a function, rental or seat product from
    /// `from_us` (default: now; not before the current month). Refused with
    /// `Conflict` while a subscription to it is in force at or after that instant.
    pub async fn subscribe_function(&self, tenant: &Tenant, username: &str, product_code: &str, from_us: Option<i64>, change: &Change) -> ServiceResult<Subscription> {
        let product = self.monthly_item(tenant, product_code).await?;
        let account = self.account(tenant, username).await?;
        let now = now_us();
        let from_us = from_us.unwrap_or(now);
        let mut tx = self.store.begin_write().await?;
        in_open_month(&mut tx, tenant, from_us, "from").await?;
        if store_subscriptions::in_force_from(&mut tx, tenant.id, account.id, &product.code, from_us).await? {
            return Err(ServiceError::Conflict("the account is subscribed to this product then"));
        }
        let id = store_subscriptions::insert(&mut tx, tenant.id, account.id, &product.code, from_us, now).await.map_err(subscribed_already)?;
        let operation = Operation::new(OperationKind::FunctionSubscribe, format!("{username} / {}", product.code)).with_detail(format!("from {}", from_unix_micros(from_us)));
        change.commit(tx, tenant.id, operation).await?;
        Ok(Subscription { id, account: account.id, product_code: product.code, from_us, until_us: None })
    }

    /// Ends an account's open subscription to a product at `until_us`
    /// (default: now; not before the current month). `NotFound(Product)`
    /// when it has none open.
    pub async fn unsubscribe_function(&self, tenant: &Tenant, username: &str, product_code: &str, until_us: Option<i64>, change: &Change) -> ServiceResult<Subscription> {
        let product = self.monthly_item(tenant, product_code).await?;
        let account = self.account(tenant, username).await?;
        let until_us = until_us.unwrap_or_else(now_us);
        let mut tx = self.store.begin_write().await?;
        in_open_month(&mut tx, tenant, until_us, "until").await?;
        let ended = store_subscriptions::end_open(&mut tx, tenant.id, account.id, &product.code, until_us).await?.ok_or(ServiceError::NotFound(Resource::Product))?;
        let operation = Operation::new(OperationKind::FunctionUnsubscribe, format!("{username} / {}", product.code)).with_detail(format!("until {}", from_unix_micros(until_us)));
        change.commit(tx, tenant.id, operation).await?;
        Ok(ended.into())
    }

    /// An account's username (accounts are never deleted, so an id the
    /// tenant has always has one; another tenant's is `NotFound`).
    pub async fn username_of(&self, tenant: &Tenant, account: AccountId) -> ServiceResult<String> {
        store_accounts::username_of(&self.store, tenant.id, account).await?.ok_or(ServiceError::NotFound(Resource::Account))
    }

    /// A page of the tenant's subscriptions (or one account's), newest first.
    pub async fn subscriptions(&self, tenant: &Tenant, account: Option<AccountId>, page: Page) -> ServiceResult<(i64, Vec<Subscription>)> {
        let (total, records) = store_subscriptions::list(&self.store, tenant.id, account, page.offset, page.limit.clamp(0, SUBSCRIPTION_PAGE_MAX)).await?;
        Ok((total, records.into_iter().map(Subscription::from).collect()))
    }

    /// The function fees with a default tariff in force now (UUCall `funrate`).
    pub async fn function_rates(&self, tenant: &Tenant) -> ServiceResult<Vec<RecurringRate>> {
        self.recurring_rates(tenant, ProductKind::Function).await
    }

    /// The rentals with a default tariff in force now (UUCall `hirerate`).
    pub async fn rental_rates(&self, tenant: &Tenant) -> ServiceResult<Vec<RecurringRate>> {
        self.recurring_rates(tenant, ProductKind::Rental).await
    }

    async fn recurring_rates(&self, tenant: &Tenant, kind: ProductKind) -> ServiceResult<Vec<RecurringRate>> {
        let products = self.products(tenant).await?;
        let tariffs = self.tariff_book(tenant).await?;
        let now = jiff::Timestamp::now();
        let next_charge_at_us = to_unix_micros(tenant.timezone.month_bounds(tenant.timezone.month_of(now)).1);
        Ok(products
            .iter()
            .filter(|p| p.kind == kind)
            .filter_map(|p| {
                // The tenant's default: an account's override is not a rate of the tenant.
                let version = tariffs.default_in_force(&p.code, to_unix_micros(now))?;
                let PriceModel::Recurring { price } = *version.model else { return None };
                Some(RecurringRate { product_code: p.code.clone(), name: p.name.clone(), charge_unit: format!("{}/月", p.unit), price, currency: p.currency, next_charge_at_us })
            })
            .collect())
    }

    /// A product billed by subscription, or `NotFound(Product)` / `Invalid`.
    async fn monthly_item(&self, tenant: &Tenant, code: &str) -> ServiceResult<Product> {
        let product = self.product(tenant, code).await?;
        if !product.kind.is_monthly_fee() {
            return Err(ServiceError::Invalid { field: "product", reason: format!("{code} is metered by usage, not a function, rental or seat") });
        }
        Ok(product)
    }
}

/// Refuses an instant in a month whose bill is written or being written
/// (that month or a later one closed or closing) or older than usage may
/// be, after locking the tenant row: a close takes it too (PostgreSQL; on
/// SQLite the write lock), so no close reads the subscriptions between the
/// check and the commit.
async fn in_open_month(tx: &mut WriteTx, tenant: &Tenant, at_us: i64, field: &'static str) -> ServiceResult<()> {
    store_tenants::lock(tx, tenant.id).await?.ok_or(ServiceError::NotFound(Resource::Tenant))?;
    let month: Month = tenant.timezone.month_of(from_unix_micros(at_us));
    if at_us < now_us() - crate::usage::LATE_USAGE_DAYS_MAX * 24 * 3_600 * 1_000_000 {
        return Err(ServiceError::Invalid { field, reason: format!("at most {} days back", crate::usage::LATE_USAGE_DAYS_MAX) });
    }
    if store_subscriptions::month_billed(tx, tenant.id, &month.to_string()).await? {
        return Err(ServiceError::Invalid { field, reason: format!("{month} (in {}) or a later month is closed or closing: its bills are written", tenant.timezone.name()) });
    }
    Ok(())
}

/// Opens the seat fee's subscription of an account from `now`, in the
/// caller's transaction, unless one is open already.
pub(crate) async fn open_seat(tx: &mut WriteTx, tenant: &Tenant, account: AccountId, now: i64) -> ServiceResult<()> {
    if store_subscriptions::in_force_from(tx, tenant.id, account, SEAT_PRODUCT, now).await? {
        return Ok(());
    }
    store_subscriptions::insert(tx, tenant.id, account, SEAT_PRODUCT, now, now).await.map_err(subscribed_already)?;
    Ok(())
}

/// Ends every open subscription of an account at `now` (its seat fee
/// included), in the caller's transaction: cancelling a sub-user (access
/// state 3) calls this, so a cancelled seat pays for no day after it.
pub async fn end_subscriptions(tx: &mut WriteTx, tenant: &Tenant, account: AccountId, now: i64) -> ServiceResult<()> {
    store_subscriptions::end_all_open(tx, tenant.id, account, now).await?;
    Ok(())
}

fn subscribed_already(error: StorageError) -> ServiceError {
    match error {
        StorageError::UniqueViolation { key: UniqueKey::SubscriptionOpen, .. } => ServiceError::Conflict("the account is subscribed to this product then"),
        other => other.into(),
    }
}
