//! Tenant products and tariff versions.

use std::sync::LazyLock;

use subledger_domain::ids::{AccountId, TenantId};
use subledger_domain::money::Currency;

use crate::rows::{self, NewTariffRow, ProductRow, Row};
use crate::{Result, Store, WriteTx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRecord {
    pub code: String,
    pub name: String,
    pub unit: String,
    pub order_type: i64,
    pub grouping: String,
    /// What its tariffs price in; it never changes.
    pub currency: Currency,
    pub supplement_order_type: i64,
    pub refund_order_type: Option<i64>,
    pub quantity_meaning: String,
    /// `usage`, `function` or `rental`.
    pub kind: String,
    /// Its usage's column of the basic bill: `call_in`, `call_out`, `internal_voice`, `sms` or `other`.
    pub bill_category: String,
    pub created_at_us: i64,
}

static INSERT_PRODUCT: LazyLock<String> = LazyLock::new(rows::sqlx_insert::<ProductRow<&str>>);

pub async fn insert_product(tx: &mut WriteTx, tenant: TenantId, product: &ProductRecord) -> Result<()> {
    sqlx::query_with(&INSERT_PRODUCT, ProductRow::of(tenant, product).sqlx_arguments()?).execute(tx.conn()).await?;
    Ok(())
}

static PRODUCTS: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM products WHERE tenant_id = $1 ORDER BY code", rows::columns::<ProductRow<String>>(None)));

pub async fn products(store: &Store, tenant: TenantId) -> Result<Vec<ProductRecord>> {
    let rows: Vec<ProductRow<String>> = sqlx::query_as(&PRODUCTS).bind(tenant.0).fetch_all(store.reader()).await?;
    rows.into_iter().map(ProductRecord::try_from).collect()
}

/// A version of a tariff. `model` is the JSON of a `PriceModel`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TariffRecord {
    pub id: i64,
    pub account_id: Option<i64>,
    /// The overridden account's username.
    pub username: Option<String>,
    pub product_code: String,
    pub effective_from_us: i64,
    pub model: String,
    pub created_at_us: i64,
}

pub struct NewTariff<'a> {
    pub tenant: TenantId,
    pub account: Option<AccountId>,
    pub product_code: &'a str,
    pub effective_from_us: i64,
    pub model: &'a str,
    pub now_us: i64,
}

static INSERT_TARIFF: LazyLock<String> = LazyLock::new(|| format!("{} RETURNING id", rows::sqlx_insert::<NewTariffRow<&str>>()));

pub async fn insert_tariff(tx: &mut WriteTx, tariff: &NewTariff<'_>) -> Result<i64> {
    Ok(sqlx::query_scalar_with(&INSERT_TARIFF, NewTariffRow::from(tariff).sqlx_arguments()?).fetch_one(tx.conn()).await?)
}

/// Every version of the tenant's tariffs (defaults and overrides), oldest first.
pub async fn tariffs(store: &Store, tenant: TenantId) -> Result<Vec<TariffRecord>> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.account_id, a.username, t.product_code, t.effective_from_us, t.model, t.created_at_us
         FROM tariffs t LEFT JOIN accounts a ON a.id = t.account_id
         WHERE t.tenant_id = $1 ORDER BY t.product_code, t.effective_from_us, t.id",
    )
    .bind(tenant.0)
    .fetch_all(store.reader())
    .await?)
}

/// Account ids of these usernames in the tenant (absent names are left out).
pub async fn account_ids(store: &Store, tenant: TenantId, usernames: &[&str]) -> Result<Vec<(String, AccountId)>> {
    let names = serde_json::Value::Array(usernames.iter().map(|u| serde_json::Value::String((*u).to_owned())).collect()).to_string();
    let sql = match store.backend() {
        crate::Backend::Sqlite => "SELECT username, id FROM accounts WHERE tenant_id = $1 AND username IN (SELECT value FROM json_each($2))",
        crate::Backend::Postgres => "SELECT username, id FROM accounts WHERE tenant_id = $1 AND username = ANY(ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))",
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(sql).bind(tenant.0).bind(names).fetch_all(store.reader()).await?;
    Ok(rows.into_iter().map(|(name, id)| (name, AccountId(id))).collect())
}

pub async fn set_billing_mode(tx: &mut WriteTx, tenant: TenantId, username: &str, mode: &str, now_us: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE accounts SET billing_mode = $3, updated_at_us = $4 WHERE tenant_id = $1 AND username = $2")
        .bind(tenant.0)
        .bind(username)
        .bind(mode)
        .bind(now_us)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}
