//! Business Manager and pixel bindings: `account_binding_bm`,
//! `account_remove_bm`, `account_business_list`, `account_binding_pixel`,
//! `account_remove_pixel`, `account_pixel_list`.

use serde_json::{Map, Value, json};

use super::error::{Refusal, code};
use super::{Call, Codes, Reply, requested_fields};

pub const BIND_BUSINESS: Codes = &[code::ID_MISSING, code::ID_INVALID, code::BUSINESS_ID_MISSING, code::UPSTREAM_TIMEOUT];
pub const UNBIND_BUSINESS: Codes = &[code::ID_MISSING, code::ID_INVALID, code::BUSINESS_ID_MISSING, code::UPSTREAM_TIMEOUT, code::UNBINDING_PAUSED];
/// As the spec lists them (1008 and 1022 cannot arise on a read).
pub const BUSINESS_LIST: Codes = &[code::ID_MISSING, code::ID_INVALID, code::BUSINESS_ID_MISSING, code::UPSTREAM_TIMEOUT, code::UNBINDING_PAUSED];
pub const PIXEL_WRITE: Codes = &[code::ID_MISSING, code::ID_INVALID, code::UPSTREAM_TIMEOUT, code::PIXEL_ID_MISSING];
pub const PIXEL_LIST: Codes = &[code::ID_MISSING, code::ID_INVALID, code::META_REFUSED, code::UPSTREAM_TIMEOUT];

/// The fields of a Business Manager `account_business_list` can give.
const BUSINESS_FIELDS: [&str; 3] = ["id", "name", "permitted_tasks"];

/// The account and the Business Manager of a binding (1002/1003, 1008).
fn account_and_business(call: &Call) -> Result<(String, String), Refusal> {
    let id = call.params.account_id()?;
    let business_id = call.params.required_id("business_id", code::BUSINESS_ID_MISSING, code::SYSTEM)?;
    Ok((id, business_id))
}

/// The account and the pixel of a binding (1002/1003, 1023).
fn account_and_pixel(call: &Call) -> Result<(String, String), Refusal> {
    let id = call.params.account_id()?;
    let pixel_id = call.params.required_id("pixel_id", code::PIXEL_ID_MISSING, code::SYSTEM)?;
    Ok((id, pixel_id))
}

/// `account_binding_bm`: shares the account with a Business Manager.
pub async fn bind_business(call: Call) -> Result<Reply, Refusal> {
    let (id, business_id) = account_and_business(&call)?;
    call.state.services.bind_ad_business(&call.tenant, &call.write(), &id, &business_id).await?;
    Reply::done()
}

/// `account_remove_bm`: stops sharing the account with a Business Manager.
pub async fn unbind_business(call: Call) -> Result<Reply, Refusal> {
    let (id, business_id) = account_and_business(&call)?;
    call.state.services.unbind_ad_business(&call.tenant, &call.write(), &id, &business_id).await?;
    Reply::done()
}

/// `account_business_list`: the Business Managers the account is shared
/// with, each with the fields asked (all three when `fields` is absent).
pub async fn business_list(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.account_id()?;
    let fields = requested_fields(&call.params, &BUSINESS_FIELDS, &BUSINESS_FIELDS)?;
    let businesses = call.state.services.ad_businesses(&call.tenant, &id).await?;
    let data: Vec<Map<String, Value>> = businesses
        .into_iter()
        .map(|business| {
            fields
                .iter()
                .map(|name| {
                    let value = match *name {
                        "id" => json!(business.id),
                        "name" => json!(business.name),
                        _ => json!(business.permitted_tasks),
                    };
                    ((*name).to_owned(), value)
                })
                .collect()
        })
        .collect();
    Reply::data(&data)
}

/// `account_binding_pixel`: shares a pixel with the account.
pub async fn bind_pixel(call: Call) -> Result<Reply, Refusal> {
    let (id, pixel_id) = account_and_pixel(&call)?;
    call.state.services.bind_ad_pixel(&call.tenant, &call.write(), &id, &pixel_id).await?;
    Reply::done()
}

/// `account_remove_pixel`: stops sharing a pixel with the account.
pub async fn unbind_pixel(call: Call) -> Result<Reply, Refusal> {
    let (id, pixel_id) = account_and_pixel(&call)?;
    call.state.services.unbind_ad_pixel(&call.tenant, &call.write(), &id, &pixel_id).await?;
    Reply::done()
}

/// `account_pixel_list`: the pixels bound to the account, `{id, name}` each.
pub async fn pixel_list(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.account_id()?;
    let pixels = call.state.services.ad_pixels(&call.tenant, &id).await?;
    let data: Vec<Value> = pixels.into_iter().map(|pixel| json!({ "id": pixel.id, "name": pixel.name })).collect();
    Reply::data(&data)
}
