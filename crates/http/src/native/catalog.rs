//! `/v1/products`, `/v1/tariffs` and accounts' billing mode.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::account::Username;
use subledger_domain::calendar::from_unix_micros;
use subledger_domain::catalog::{BillCategory, ProductKind};
use subledger_domain::rating::{Grouping, PriceModel};
use subledger_service::catalog::{NewProduct, Product, TariffVersion};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, Granted, need};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct ProductView {
    pub code: String,
    pub name: String,
    /// Unit of the billed quantity (`component` of SendCloud bill lines).
    pub unit: String,
    /// SendCloud `orderType` of its bill lines.
    pub order_type: i64,
    /// `none`, `country` (events carry attribute `country`) or `item` (attribute `item`).
    pub grouping: String,
    /// `CNY` or `USD`: what its tariffs price in, its usage is charged in
    /// (from the account's wallets of this currency) and its bills are in.
    pub currency: String,
    pub supplement_order_type: i64,
    pub refund_order_type: Option<i64>,
    /// What an event's quantity counts.
    pub quantity_meaning: String,
    pub builtin: bool,
    /// Telephony group (`pstn`, `voip`, `messages`) for telephony items.
    pub telephony_group: Option<String>,
    /// `usage`, `function`, `rental` or `seat` (the last three: monthly fees by subscription).
    pub kind: String,
    /// Where its money shows in UUCall's charge bills: `seat`, `call_in`,
    /// `call_out`, `internal_voice`, `sms`, `function` or `other`.
    pub bill_category: String,
}

impl From<&Product> for ProductView {
    fn from(p: &Product) -> Self {
        ProductView {
            code: p.code.clone(),
            name: p.name.clone(),
            unit: p.unit.clone(),
            order_type: p.order_type,
            grouping: p.grouping.as_str().to_owned(),
            currency: p.currency.code().to_owned(),
            supplement_order_type: p.supplement_order_type,
            refund_order_type: p.refund_order_type,
            quantity_meaning: p.quantity_meaning.clone(),
            builtin: p.builtin,
            telephony_group: p.telephony.map(|t| t.group.key().to_owned()),
            kind: p.kind.as_str().to_owned(),
            bill_category: p.category.as_str().to_owned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProductList {
    pub items: Vec<ProductView>,
}

/// The catalog: built-in products and the tenant's own
#[utoipa::path(get, path = "/v1/products", tag = "billing", security(("api_token" = [])),
    responses((status = 200, body = ProductList), (status = 401, body = ErrorBody)))]
pub async fn list_products(Granted { tenant, .. }: Granted<need::RatesView>, State(state): State<AppState>) -> Result<Json<ProductList>, ApiError> {
    let products = state.services.products(&tenant).await?;
    Ok(Json(ProductList { items: products.iter().map(ProductView::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProductBody {
    pub code: String,
    pub name: String,
    pub unit: String,
    pub order_type: i64,
    /// `none` (default), `country` or `item`.
    pub grouping: Option<String>,
    /// `CNY` (default) or `USD`: what its tariffs price in. It never changes.
    pub currency: Option<String>,
    /// `orderType` of its supplementary (补扣) lines; default 15 (人工补扣).
    pub supplement_order_type: Option<i64>,
    /// `orderType` of its refunds (返账); default: refunds carry the supplement code.
    pub refund_order_type: Option<i64>,
    /// What an event's quantity counts (at most 200 characters).
    pub quantity_meaning: Option<String>,
    /// `usage` (default: metered by events), `function` or `rental` (a
    /// monthly fee per subscribed account, priced by a `recurring` tariff).
    pub kind: Option<String>,
    /// A usage product's column in UUCall's basic bill: `call_in`,
    /// `call_out`, `internal_voice`, `sms` or `other` (default).
    pub bill_category: Option<String>,
}

/// Add a product of the tenant's own
#[utoipa::path(post, path = "/v1/products", tag = "billing", security(("api_token" = [])), request_body = NewProductBody,
    responses((status = 201, body = ProductView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_product(Granted { tenant, caller, .. }: Granted<need::RatesManage>, State(state): State<AppState>, ApiJson(body): ApiJson<NewProductBody>) -> Result<impl IntoResponse, ApiError> {
    let name = body.grouping.as_deref().unwrap_or("none");
    let grouping = Grouping::parse(name).ok_or_else(|| ApiError::bad_request("invalid_grouping", &format!("grouping must be none, country or item, not {name:?}")))?;
    let currency = super::wallets::parse_currency(body.currency.as_deref())?;
    let kind_name = body.kind.as_deref().unwrap_or("usage");
    let kind = ProductKind::parse(kind_name).ok_or_else(|| ApiError::bad_request("invalid_kind", &format!("kind must be usage, function or rental, not {kind_name:?}")))?;
    let category_name = body.bill_category.as_deref().unwrap_or("other");
    let bill_category = BillCategory::parse_usage(category_name)
        .ok_or_else(|| ApiError::bad_request("invalid_bill_category", &format!("bill_category must be call_in, call_out, internal_voice, sms or other, not {category_name:?}")))?;
    let product = state
        .services
        .add_product(
            &tenant,
            NewProduct {
                code: body.code,
                name: body.name,
                unit: body.unit,
                order_type: body.order_type,
                grouping,
                currency,
                supplement_order_type: body.supplement_order_type,
                refund_order_type: body.refund_order_type,
                quantity_meaning: body.quantity_meaning,
                kind,
                bill_category,
            },
            &caller.change(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ProductView::from(&product))))
}

#[derive(Serialize, ToSchema)]
pub struct TariffView {
    pub tariff_id: i64,
    pub product: String,
    /// The product's currency, which the model's prices are in.
    pub currency: String,
    /// The account this version overrides the tenant's default for.
    pub account_id: Option<i64>,
    /// Its username.
    pub username: Option<String>,
    /// RFC 3339: from when this version is in force.
    pub effective_from: String,
    /// The price model (see `PriceModel` in the docs).
    #[schema(value_type = Object)]
    pub model: PriceModel,
    pub created_at: String,
}

impl From<&TariffVersion> for TariffView {
    fn from(v: &TariffVersion) -> Self {
        TariffView {
            tariff_id: v.id,
            product: v.product_code.clone(),
            currency: v.currency.code().to_owned(),
            account_id: v.account.map(|a| a.0),
            username: v.username.clone(),
            effective_from: from_unix_micros(v.effective_from_us).to_string(),
            model: (*v.model).clone(),
            created_at: from_unix_micros(v.created_at_us).to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TariffList {
    pub items: Vec<TariffView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TariffQuery {
    pub product: Option<String>,
}

/// Tariff versions (defaults and per-account overrides)
#[utoipa::path(get, path = "/v1/tariffs", tag = "billing", security(("api_token" = [])), params(TariffQuery),
    responses((status = 200, body = TariffList), (status = 401, body = ErrorBody)))]
pub async fn list_tariffs(Granted { tenant, .. }: Granted<need::RatesView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<TariffQuery>) -> Result<Json<TariffList>, ApiError> {
    let book = state.services.tariff_book(&tenant).await?;
    Ok(Json(TariffList { items: book.listed(query.product.as_deref()).into_iter().map(TariffView::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTariffBody {
    pub product: String,
    /// Override for this account only; without it, the tenant's default.
    pub username: Option<String>,
    /// RFC 3339; default: now.
    pub effective_from: Option<String>,
    #[schema(value_type = Object)]
    pub model: serde_json::Value,
}

pub(super) fn parse_instant(text: &str) -> Result<i64, ApiError> {
    subledger_domain::calendar::parse_instant_us(text).map_err(|e| ApiError::bad_request("invalid_time", &e))
}

/// Set a tariff version
#[utoipa::path(post, path = "/v1/tariffs", tag = "billing", security(("api_token" = [])), request_body = NewTariffBody,
    responses((status = 201, body = TariffView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_tariff(Granted { tenant, caller, .. }: Granted<need::RatesManage>, State(state): State<AppState>, ApiJson(body): ApiJson<NewTariffBody>) -> Result<impl IntoResponse, ApiError> {
    let model: PriceModel = serde_json::from_value(body.model).map_err(|e| ApiError::bad_request("invalid_model", &e.to_string()))?;
    model.validate().map_err(|e| ApiError::bad_request("invalid_model", &e.to_string()))?;
    let username = body.username.as_deref().map(Username::parse).transpose().map_err(|e| ApiError::bad_request("invalid_username", &e.to_string()))?;
    let from = body.effective_from.as_deref().map(parse_instant).transpose()?;
    let version = state.services.set_tariff(&tenant, &body.product, username.as_ref(), from, model, &caller.change()).await?;
    Ok((StatusCode::CREATED, Json(TariffView::from(&version))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingBody {
    /// `prepaid` (charged per event) or `postpaid` (charged at month close).
    pub mode: String,
}

/// Set how an account pays for usage
#[utoipa::path(put, path = "/v1/accounts/{username}/billing", tag = "billing", security(("api_token" = [])), params(("username" = String, Path)),
    request_body = BillingBody, responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_billing(
    Granted { tenant, caller, .. }: Granted<need::RatesManage>,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<BillingBody>,
) -> Result<StatusCode, ApiError> {
    let postpaid = match body.mode.as_str() {
        "prepaid" => false,
        "postpaid" => true,
        other => return Err(ApiError::bad_request("invalid_mode", &format!("mode must be prepaid or postpaid, not {other:?}"))),
    };
    state.services.set_billing_mode(&tenant, &username, postpaid, &caller.change()).await?;
    Ok(StatusCode::NO_CONTENT)
}
