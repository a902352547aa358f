//! Products (built-in and the tenant's own) and tariffs (effective-dated, per
//! tenant with per-account overrides).

use std::collections::HashMap;
use std::sync::Arc;

use subledger_domain::account::{CompanyNameError, Username, parse_display_name};
use subledger_domain::catalog::{self, BUILTIN, BillCategory, ProductKind, TelephonyItem};
use subledger_domain::ids::AccountId;
use subledger_domain::money::Currency;
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_domain::rating::{Grouping, PriceModel};
use subledger_storage::catalog::{self as store_catalog, NewTariff, ProductRecord};
use subledger_storage::{StorageError, UniqueKey};

use crate::Change;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::tenants::Tenant;
use crate::{Services, now_us};

/// A product as every layer sees it, whichever list it comes from.
#[derive(Debug, Clone)]
pub struct Product {
    pub code: String,
    pub name: String,
    pub unit: String,
    pub order_type: i64,
    pub grouping: Grouping,
    /// What its tariffs price in, its usage is charged in and its bills are
    /// in. It never changes (running totals per product are in it).
    pub currency: Currency,
    pub supplement_order_type: i64,
    pub refund_order_type: Option<i64>,
    pub quantity_meaning: String,
    pub builtin: bool,
    pub telephony: Option<TelephonyItem>,
    /// Metered, or a monthly fee billed by subscription.
    pub kind: ProductKind,
    /// Where its money shows in UUCall's charge bills.
    pub category: BillCategory,
}

impl Product {
    pub(crate) fn from_builtin(p: &catalog::Product) -> Product {
        Product {
            code: p.code.to_owned(),
            name: p.name.to_owned(),
            unit: p.unit.to_owned(),
            order_type: p.order_type,
            grouping: p.grouping,
            currency: p.currency,
            supplement_order_type: p.supplement,
            refund_order_type: p.refund,
            quantity_meaning: p.quantity_meaning.to_owned(),
            builtin: true,
            telephony: p.telephony,
            kind: p.kind,
            category: p.category,
        }
    }

    fn from_record(r: ProductRecord) -> ServiceResult<Product> {
        let corrupt = |what: &str, value: &str| ServiceError::Storage(StorageError::Corrupt(format!("{what} {value:?} of product {}", r.code)));
        let grouping = Grouping::parse(&r.grouping).ok_or_else(|| corrupt("grouping", &r.grouping))?;
        let kind = ProductKind::parse(&r.kind).ok_or_else(|| corrupt("kind", &r.kind))?;
        let category = BillCategory::of_kind(kind, BillCategory::parse_usage(&r.bill_category).ok_or_else(|| corrupt("bill category", &r.bill_category))?);
        Ok(Product {
            code: r.code,
            name: r.name,
            unit: r.unit,
            order_type: r.order_type,
            grouping,
            currency: r.currency,
            supplement_order_type: r.supplement_order_type,
            refund_order_type: r.refund_order_type,
            quantity_meaning: r.quantity_meaning,
            builtin: false,
            telephony: None,
            kind,
            category,
        })
    }

    /// The line product of this product's bill lines.
    pub fn line_product(&self) -> subledger_domain::billing::LineProduct {
        subledger_domain::billing::LineProduct {
            code: self.code.clone(),
            order_type: self.order_type,
            name: self.name.clone(),
            unit: self.unit.clone(),
            currency: self.currency,
            supplement_order_type: self.supplement_order_type,
            supplement_name: catalog::supplement_name(self.supplement_order_type, &self.name),
            refund_order_type: self.refund_order_type,
        }
    }
}

/// A tenant's own product, as asked for.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub code: String,
    pub name: String,
    pub unit: String,
    pub order_type: i64,
    pub grouping: Grouping,
    /// What its tariffs price in.
    pub currency: Currency,
    /// `orderType` of its supplementary (补扣) lines and charges; default 15 (人工补扣).
    pub supplement_order_type: Option<i64>,
    /// `orderType` of its refunds (返账); without it, refunds carry the supplement code.
    pub refund_order_type: Option<i64>,
    /// What an event's quantity counts, for people reading the catalog.
    pub quantity_meaning: Option<String>,
    /// `Usage` (default), or `Function` / `Rental`: a monthly fee per
    /// subscribed account (grouping `none`, priced by a `recurring` tariff).
    pub kind: ProductKind,
    /// The basic-bill column of a metered product's money (default `Other`);
    /// function fees and rentals are the function bill whatever this says.
    pub bill_category: BillCategory,
}

/// One version of a tariff.
#[derive(Debug, Clone)]
pub struct TariffVersion {
    pub id: i64,
    pub product_code: String,
    /// The product's currency: the model's prices are in it.
    pub currency: Currency,
    /// `None`: the tenant's default; `Some`: an override for one account.
    pub account: Option<AccountId>,
    /// The overridden account's username.
    pub username: Option<String>,
    pub effective_from_us: i64,
    pub model: Arc<PriceModel>,
    pub created_at_us: i64,
}

/// All of a tenant's tariff versions, by product, oldest first.
#[derive(Debug, Default)]
pub struct TariffBook {
    by_product: HashMap<String, Vec<TariffVersion>>,
}

impl TariffBook {
    /// The version in force for `account` at `at_us`: its own override if it
    /// has one in force, else the tenant's default.
    pub fn in_force(&self, product: &str, account: AccountId, at_us: i64) -> Option<&TariffVersion> {
        let versions = self.by_product.get(product)?;
        let latest = |wanted: Option<AccountId>| versions.iter().rev().find(|v| v.account == wanted && v.effective_from_us <= at_us);
        latest(Some(account)).or_else(|| latest(None))
    }

    /// The tenant's default version in force at `at_us` (overrides left out).
    pub fn default_in_force(&self, product: &str, at_us: i64) -> Option<&TariffVersion> {
        self.by_product.get(product)?.iter().rev().find(|v| v.account.is_none() && v.effective_from_us <= at_us)
    }

    /// The versions of one product (or all), ordered by product, then the
    /// default before overrides (by username), then start.
    pub fn listed(&self, product: Option<&str>) -> Vec<&TariffVersion> {
        let mut versions: Vec<&TariffVersion> = self.versions().filter(|v| product.is_none_or(|p| p == v.product_code)).collect();
        versions.sort_by(|a, b| (a.product_code.as_str(), &a.username, a.effective_from_us).cmp(&(b.product_code.as_str(), &b.username, b.effective_from_us)));
        versions
    }

    pub fn versions(&self) -> impl Iterator<Item = &TariffVersion> {
        self.by_product.values().flatten()
    }
}

/// Most products a tenant may add.
pub const TENANT_PRODUCTS_MAX: i64 = 1_000;

impl Services {
    /// The built-in catalog followed by the tenant's own products.
    pub async fn products(&self, tenant: &Tenant) -> ServiceResult<Arc<Vec<Product>>> {
        if let Some(products) = self.caches.products(tenant.id) {
            return Ok(products);
        }
        let mut products: Vec<Product> = BUILTIN.iter().map(Product::from_builtin).collect();
        products.extend(store_catalog::products(&self.store, tenant.id).await?.into_iter().map(Product::from_record).collect::<ServiceResult<Vec<_>>>()?);
        let products = Arc::new(products);
        self.caches.remember_products(tenant.id, products.clone());
        Ok(products)
    }

    pub async fn product(&self, tenant: &Tenant, code: &str) -> ServiceResult<Product> {
        self.products(tenant).await?.iter().find(|p| p.code == code).cloned().ok_or(ServiceError::NotFound(Resource::Product))
    }

    pub async fn add_product(&self, tenant: &Tenant, product: NewProduct, change: &Change) -> ServiceResult<Product> {
        if !catalog::is_valid_code(&product.code) {
            return Err(ServiceError::Invalid { field: "code", reason: "must be 2-40 lowercase letters, digits or _, a letter first".to_owned() });
        }
        // Shown on bills and exports, so held to the rule of company names: no control characters.
        let (name, unit) = match (parse_display_name(&product.name, 100), parse_display_name(&product.unit, 20)) {
            (Ok(name), Ok(unit)) => (name, unit),
            _ => return Err(ServiceError::Invalid { field: "product", reason: "name (1-100 characters) and unit (1-20) are required, without control characters".to_owned() }),
        };
        let codes = [Some(product.order_type), product.supplement_order_type, product.refund_order_type];
        if codes.iter().flatten().any(|code| !(1..=9_999).contains(code)) {
            return Err(ServiceError::Invalid { field: "order_type", reason: "orderType codes run from 1 to 9999".to_owned() });
        }
        let quantity_meaning = match product.quantity_meaning.as_deref().map(|text| parse_display_name(text, 200)) {
            None | Some(Err(CompanyNameError::Empty)) => String::new(),
            Some(Ok(text)) => text,
            Some(Err(CompanyNameError::Invalid)) => return Err(ServiceError::Invalid { field: "quantity_meaning", reason: "at most 200 characters, without control characters".to_owned() }),
        };
        if product.kind == ProductKind::Seat || !matches!(product.bill_category, BillCategory::CallIn | BillCategory::CallOut | BillCategory::InternalVoice | BillCategory::Sms | BillCategory::Other) {
            return Err(ServiceError::Invalid {
                field: "kind",
                reason: "a product is usage, function or rental, and a usage product's bill category call_in, call_out, internal_voice, sms or other".to_owned(),
            });
        }
        if product.kind.is_monthly_fee() && product.grouping != Grouping::None {
            return Err(ServiceError::Invalid { field: "grouping", reason: "a function or rental is billed per subscribed account: its grouping is none".to_owned() });
        }
        let existing = self.products(tenant).await?;
        if existing.iter().any(|p| p.code == product.code) {
            return Err(ServiceError::Conflict("a product with this code exists"));
        }
        if existing.iter().filter(|p| !p.builtin).count() as i64 >= TENANT_PRODUCTS_MAX {
            return Err(ServiceError::Invalid { field: "product", reason: format!("a tenant may add at most {TENANT_PRODUCTS_MAX} products") });
        }
        let record = ProductRecord {
            code: product.code,
            name,
            unit,
            order_type: product.order_type,
            grouping: product.grouping.as_str().to_owned(),
            currency: product.currency,
            supplement_order_type: product.supplement_order_type.unwrap_or(catalog::MANUAL_SUPPLEMENT),
            refund_order_type: product.refund_order_type,
            quantity_meaning,
            kind: product.kind.as_str().to_owned(),
            bill_category: if product.kind.is_monthly_fee() { BillCategory::Other } else { product.bill_category }.as_str().to_owned(),
            created_at_us: now_us(),
        };
        let mut tx = self.store.begin_write().await?;
        store_catalog::insert_product(&mut tx, tenant.id, &record).await.map_err(|e| match e {
            StorageError::UniqueViolation { key: UniqueKey::ProductCode, .. } => ServiceError::Conflict("a product with this code exists"),
            other => other.into(),
        })?;
        change.commit(tx, tenant.id, Operation::new(OperationKind::ProductAdd, record.code.as_str()).with_detail(record.currency.to_string())).await?;
        self.caches.forget_catalog(tenant.id);
        Product::from_record(record)
    }

    /// The tenant's tariff versions (cached; dropped when a tariff changes here).
    pub async fn tariff_book(&self, tenant: &Tenant) -> ServiceResult<Arc<TariffBook>> {
        if let Some(book) = self.caches.tariffs(tenant.id) {
            return Ok(book);
        }
        let products = self.products(tenant).await?;
        let mut book = TariffBook::default();
        for record in store_catalog::tariffs(&self.store, tenant.id).await? {
            let model: PriceModel = serde_json::from_str(&record.model).map_err(|e| ServiceError::Storage(StorageError::Corrupt(format!("tariff {}: {e}", record.id))))?;
            // A tariff is set only for a product of the catalog, and products are never removed.
            let product = products
                .iter()
                .find(|p| p.code == record.product_code)
                .ok_or_else(|| ServiceError::Storage(StorageError::Corrupt(format!("tariff {} of product {:?}, which is not in the catalog", record.id, record.product_code))))?;
            book.by_product.entry(record.product_code.clone()).or_default().push(TariffVersion {
                id: record.id,
                currency: product.currency,
                product_code: record.product_code,
                account: record.account_id.map(AccountId),
                username: record.username,
                effective_from_us: record.effective_from_us,
                model: Arc::new(model),
                created_at_us: record.created_at_us,
            });
        }
        let book = Arc::new(book);
        self.caches.remember_tariffs(tenant.id, book.clone());
        Ok(book)
    }

    /// Adds a tariff version: from `effective_from_us` on (default: now), for
    /// all the tenant's accounts or, with `account`, as that account's override.
    /// Events already rated keep their price; monthly models are settled at
    /// close with the version in force at the end of the month.
    pub async fn set_tariff(
        &self,
        tenant: &Tenant,
        product_code: &str,
        account_name: Option<&Username>,
        effective_from_us: Option<i64>,
        model: PriceModel,
        change: &Change,
    ) -> ServiceResult<TariffVersion> {
        let product = self.product(tenant, product_code).await?;
        model.validate().map_err(|e| ServiceError::Invalid { field: "model", reason: e.to_string() })?;
        let needs = model.grouping();
        if product.kind.is_monthly_fee() {
            // A monthly fee's price is a price per month per subscription.
            if !matches!(model, PriceModel::Recurring { .. }) {
                return Err(ServiceError::Invalid { field: "model", reason: format!("product {} is a monthly fee: its tariff is recurring (a price per month)", product.code) });
            }
        } else if needs != Grouping::None && needs != product.grouping {
            return Err(ServiceError::Invalid { field: "model", reason: format!("product {} is not grouped the way this model needs ({needs:?})", product.code) });
        }
        let account = match account_name {
            Some(username) => Some(self.account(tenant, username.as_str()).await?.id),
            None => None,
        };
        let username = account_name.map(|u| u.as_str().to_owned());
        let now = now_us();
        let effective_from_us = effective_from_us.unwrap_or(now);
        let model_json = serde_json::to_string(&model).expect("price models serialize");
        let mut tx = self.store.begin_write().await?;
        let id = store_catalog::insert_tariff(&mut tx, &NewTariff { tenant: tenant.id, account, product_code, effective_from_us, model: &model_json, now_us: now }).await.map_err(|e| match e {
            StorageError::UniqueViolation { key: UniqueKey::TariffVersion, .. } => ServiceError::Conflict("a version of this tariff starts at the same instant"),
            other => other.into(),
        })?;
        let subject = match &username {
            Some(username) => format!("{product_code} / {username}"),
            None => product_code.to_owned(),
        };
        change.commit(tx, tenant.id, Operation::new(OperationKind::TariffSet, subject).with_detail(format!("from {effective_from_us} us"))).await?;
        self.caches.forget_catalog(tenant.id);
        Ok(TariffVersion { id, product_code: product_code.to_owned(), currency: product.currency, account, username, effective_from_us, model: Arc::new(model), created_at_us: now })
    }

    /// Whether an account pays per event (prepaid) or at month close (postpaid).
    pub async fn set_billing_mode(&self, tenant: &Tenant, username: &str, postpaid: bool, change: &Change) -> ServiceResult<()> {
        let mut tx = self.store.begin_write().await?;
        if !store_catalog::set_billing_mode(&mut tx, tenant.id, username, if postpaid { "postpaid" } else { "prepaid" }, now_us()).await? {
            return Err(ServiceError::NotFound(Resource::Account));
        }
        change.commit(tx, tenant.id, Operation::new(OperationKind::AccountBilling, username).with_detail(if postpaid { "postpaid" } else { "prepaid" })).await?;
        Ok(())
    }
}
