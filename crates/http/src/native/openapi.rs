//! The OpenAPI 3.1 document of the native API, generated from the handlers'
//! annotations and served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, bills, catalog, tenants, usage, wallets};

#[derive(OpenApi)]
#[openapi(
    info(title = "subledger native API", description = "Tenants, accounts, wallets and the ledger of subledger. Amounts are decimal strings with two places (and `*_minor` integers of cents/分)."),
    paths(
        tenants::create, tenants::list, tenants::show, tenants::update, tenants::rotate_secrets, tenants::current,
        accounts::list, accounts::create, accounts::show, accounts::set_quota, accounts::freeze, accounts::unfreeze,
        wallets::list, wallets::entries, wallets::deposit, wallets::transfer, wallets::show_transfer, wallets::tenant_overdraft, wallets::account_overdraft,
        catalog::list_products, catalog::add_product, catalog::list_tariffs, catalog::set_tariff, catalog::set_billing, usage::ingest,
        bills::list, bills::close, bills::export, bills::daily,
    ),
    modifiers(&BearerTokens),
    tags(
        (name = "tenants", description = "Resellers and their credentials"),
        (name = "accounts", description = "Sub-accounts of a tenant"),
        (name = "wallets", description = "Balances, entries and money movements"),
        (name = "billing", description = "Products, tariffs, usage, bills"),
    )
)]
pub struct NativeApi;

struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description.to_owned())).build());
        components.add_security_scheme("api_token", bearer("A tenant's api_token (slt_…)"));
        components.add_security_scheme("admin_token", bearer("The server's admin token (sla_…)"));
    }
}

/// The document as JSON text.
pub fn document() -> String {
    NativeApi::openapi().to_json().expect("the generated OpenAPI document serializes")
}
