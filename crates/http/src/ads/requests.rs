//! Ad account creation requests: `get_request_list`, `get_request_detail`,
//! `get_aac_request_detail`. They read what the sync stored; the spec's
//! fields are taken from Meta's `AdAccountCreationRequest` fields where Meta
//! has them and are `null` where it has nothing (the mapping is in
//! `docs/ads.md`).

use serde_json::{Map, Value, json};
use subledger_service::ads::AdRequestView;

use super::error::{Refusal, code};
use super::{Call, Codes, Reply, graph_time};

/// The spec lists 1001 only; an unknown `id` is 1003 as everywhere else.
pub const REQUEST_LIST: Codes = &[code::ID_INVALID];
/// The spec lists 1001 only; the ids of these two are answered like the
/// other operations' (1002 missing, 1003 unknown).
pub const REQUEST_DETAIL: Codes = &[code::ID_MISSING, code::ID_INVALID];

/// `get_request_list`: the form ids of the tenant's requests, oldest first;
/// with `id`, only those created after that request.
pub async fn request_list(call: Call) -> Result<Reply, Refusal> {
    let after = call.params.optional_text("id", code::ID_INVALID)?;
    let ids = call.state.services.ad_request_ids(&call.tenant, after.as_deref()).await?;
    Reply::data(&json!({ "list": ids }))
}

/// `get_request_detail`: one request by its form id (`id`).
pub async fn request_detail(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.id()?;
    let request = call.state.services.ad_request(&call.tenant, &id).await?;
    Reply::data(&request_detail_data(&call, &request))
}

/// `get_aac_request_detail`: one request by Meta's id (`ad_account_creation_request_id`),
/// with the ad accounts it issued.
pub async fn aac_request_detail(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.required_id("ad_account_creation_request_id", code::ID_MISSING, code::ID_INVALID)?;
    let request = call.state.services.ad_creation_request(&call.tenant, &id).await?;
    let meta = Meta(&request.fields);
    let accounts: Vec<Value> = request.ad_accounts.iter().map(|(account_id, name)| json!({ "name": name, "account_id": account_id })).collect();
    Reply::data(&json!({
        "id": request.aac_id,
        "status": request.status,
        "contact": meta.get("contact"),
        "disapproval_reasons": meta.list("disapproval_reasons"),
        "request_change_reasons": meta.list("request_change_reasons"),
        "official_website_url": meta.get("official_website_url"),
        "legal_entity_name_in_local_language": meta.text_or("legal_entity_name_in_local_language", &request.company_name),
        "address_in_local_language": meta.get("address_in_local_language"),
        "promotable_page_ids": meta.list("promotable_page_ids"),
        "promotable_urls": meta.list("promotable_urls"),
        "promotable_app_ids": meta.list("promotable_app_ids"),
        "business_registration_id": meta.get("business_registration_id"),
        "vertical_v2": meta.get("vertical_v2"),
        "subvertical_v2": meta.get("subvertical_v2"),
        "adaccounts": { "data": accounts },
    }))
}

/// The spec's request detail, field by field.
fn request_detail_data(call: &Call, request: &AdRequestView) -> Value {
    let meta = Meta(&request.fields);
    let requested: Vec<&Map<String, Value>> = meta.list("ad_accounts_info").iter().filter_map(Value::as_object).collect();
    let accounts_info: Vec<Value> = requested.iter().map(|info| json!({ "ad_account_name": info.get("name"), "timezone_id": info.get("timezone_id"), "account_type": Value::Null })).collect();
    let timezone = |at_us| graph_time(&call.tenant.timezone, at_us);
    json!({
        "id": request.id,
        "ad_account_creation_request_id": { "id": request.aac_id },
        "ad_account_creation_request_status": request.status,
        "ad_account_number": requested.len(),
        "ad_accounts_info": accounts_info,
        "business_manager_id": meta.get("advertiser_business_id").or_else(|| meta.at(&["advertiser_business", "id"])),
        "business_registration": meta.get("business_registration"),
        "business_registration_id": meta.get("business_registration_id"),
        "chinese_address": meta.get("address_in_chinese").or_else(|| meta.get("address_in_local_language")),
        "chinese_legal_entity_name": meta.text_or("chinese_legal_entity_name", &request.company_name),
        "city": meta.at(&["address_in_english", "city"]),
        "contact": meta.at(&["contact", "email"]),
        "disapprove_reason": meta.reasons("disapproval_reasons"),
        "official_website_url": meta.get("official_website_url"),
        "payment_type": Value::Null,
        "phone_number": Value::Null,
        "planning_agency_name": meta.at(&["planning_agency_business", "name"]),
        "promotable_page_ids": meta.list("promotable_page_ids"),
        "promotable_pages": Value::Null,
        "promotable_app_ids": meta.list("promotable_app_ids"),
        "promotable_urls": meta.list("promotable_urls"),
        "request_changes_reason": meta.reasons("request_change_reasons"),
        "reviewed_user": Value::Null,
        "spend_limit": Value::Null,
        "status": request.status,
        "subvertical": meta.get("subvertical"),
        "subvertical_v2": meta.get("subvertical_v2"),
        "time_created": timezone(request.time_created_us),
        "time_updated": timezone(request.time_updated_us),
        "time_zone": requested.first().and_then(|info| info.get("timezone_id")),
        "token": Value::Null,
        "user_id": meta.at(&["creator", "id"]),
        "user_name": meta.at(&["creator", "name"]),
        "used_reseller_link": Value::Null,
        "vertical": meta.get("vertical"),
        "vertical_v2": meta.get("vertical_v2"),
        "viewed_by_reseller": Value::Null,
        "zip_code": meta.at(&["address_in_english", "zip"]),
        "ad_account_limit": Value::Null,
        "org_ad_account_count": Value::Null,
    })
}

/// Meta's fields of a request, as synced.
struct Meta<'a>(&'a Map<String, Value>);

impl Meta<'_> {
    /// A field, `None` (written `null`) when Meta has none.
    fn get(&self, name: &str) -> Option<Value> {
        self.0.get(name).filter(|value| !value.is_null()).cloned()
    }

    /// A member of nested objects (`contact.email`).
    fn at(&self, path: &[&str]) -> Option<Value> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(self.0.get(*first)?, |value, name| value.get(name)).filter(|value| !value.is_null()).cloned()
    }

    /// A list field; empty when Meta has none.
    fn list(&self, name: &str) -> &[Value] {
        self.0.get(name).and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    /// A text field, or `fallback` when Meta has none.
    fn text_or(&self, name: &str, fallback: &str) -> Value {
        self.get(name).unwrap_or_else(|| Value::String(fallback.to_owned()))
    }

    /// The `reason`s of a list of Meta's reasons, one per line; `None` when there are none.
    fn reasons(&self, name: &str) -> Option<String> {
        let reasons: Vec<&str> = self.0.get(name)?.as_array()?.iter().filter_map(|reason| reason.get("reason")?.as_str()).collect();
        (!reasons.is_empty()).then(|| reasons.join("\n"))
    }
}
