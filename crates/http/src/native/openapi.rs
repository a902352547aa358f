//! The OpenAPI 3.1 document of the native API, served at `/openapi.json`:
//! what is said once for the whole API (title, tags, security schemes) is
//! here; each path comes from its handler's annotation, registered together
//! with its route ([`super::router`]).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "subledger native API", description = "Tenants, accounts, wallets and the ledger of subledger. Amounts are decimal strings with two places (and `*_minor` integers of cents/分)."),
    modifiers(&BearerTokens),
    tags(
        (name = "tenants", description = "Resellers and their credentials"),
        (name = "accounts", description = "Sub-accounts of a tenant"),
        (name = "wallets", description = "Balances, entries and money movements"),
        (name = "holds", description = "Two-phase transfers: reserve money, then post or void it; a hold voids itself at its timeout"),
        (name = "billing", description = "Products, tariffs, usage, bills"),
        (name = "seats", description = "Seats paid by their tenant, time cards, monthly function fees and rentals, and UUCall's billing views"),
        (name = "access", description = "Sessions, roles, sub-users and their applications, notices, the operation log. Each endpoint needs one application of the tree (`GET /v1/apps`): a session has only its sub-user's, the tenant's api_token every one; see docs/access-control.md"),
        (name = "ads", description = "The operator's side of the ad-account reseller dialect (`/api/v1`, see docs/ads.md): the ad platform serving the tenant, syncs, the blacklist, violation accounts"),
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
        components.add_security_scheme("session_token", bearer("A sub-user's session token (sls_…), from POST /v1/sessions"));
    }
}

/// The document as JSON text.
pub fn document(openapi: &utoipa::openapi::OpenApi) -> String {
    openapi.to_json().expect("the generated OpenAPI document serializes")
}
